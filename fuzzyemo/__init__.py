"""fuzzyemo: declarative fuzzy rules that turn faces into fine-grained emotion labels.

The rule engine implements the FCIS/FKIS fuzzy systems of ST-F2M (see SPEC.md and
docs/semantics.md). Importing fuzzyemo and running inference needs only numpy/scipy;
video, training and plotting live behind extras.
"""

from ._engine import Engine, InferenceResult
from ._errors import InputError, Problem, RuleBaseError
from ._export import json_schema_files, to_fll, to_json
from ._geometry import Baseline, Calibration, measure, raw_features
from ._landmarks import LandmarkScheme
from ._membership import MembershipFunction
from ._rulebase import (
    Component,
    EmotionRules,
    EngineOptions,
    Rule,
    RuleBase,
    Term,
    default_rules_dir,
    parse_coding,
)
from ._version import __version__
from ._vocab import (
    CLASS_NAMES,
    COMPONENT_TERMS,
    COMPONENTS,
    EMOTIONS,
    INTENSITIES,
    NEUTRAL_INDEX,
    UNKNOWN_INDEX,
    class_index,
    class_name,
)

__all__ = [
    "Baseline",
    "Calibration",
    "LandmarkScheme",
    "CLASS_NAMES",
    "COMPONENTS",
    "COMPONENT_TERMS",
    "EMOTIONS",
    "INTENSITIES",
    "NEUTRAL_INDEX",
    "UNKNOWN_INDEX",
    "Component",
    "EmotionRules",
    "Engine",
    "EngineOptions",
    "InferenceResult",
    "InputError",
    "MembershipFunction",
    "Problem",
    "Rule",
    "RuleBase",
    "RuleBaseError",
    "Term",
    "__version__",
    "class_index",
    "class_name",
    "default_rules_dir",
    "json_schema_files",
    "measure",
    "parse_coding",
    "raw_features",
    "to_fll",
    "to_json",
]

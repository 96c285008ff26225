"""fuzzyemo: declarative fuzzy rules that turn faces into fine-grained emotion labels.

The rule engine implements the FCIS/FKIS fuzzy systems of ST-F2M (see SPEC.md and
docs/semantics.md). Importing fuzzyemo and running inference needs only numpy/scipy;
video, training and plotting live behind extras. The annotation API (``annotate``,
``write_annotations``, ``read_annotations``, ``plot_timeline``, ``write_overlay``,
``OneEuro``) is imported on first use, so ``import fuzzyemo`` stays light.
"""

from importlib import import_module
from typing import Any

from ._engine import Engine, InferenceResult
from ._errors import InputError, Problem, RuleBaseError
from ._export import json_schema_files, to_fll, to_json
from ._geometry import Baseline, Calibration, NeutralWarning, measure, raw_features
from ._landmarks import LandmarkScheme
from ._membership import MembershipFunction
from ._rulebase import (
    Component,
    Condition,
    EmotionRules,
    EngineOptions,
    Rule,
    RuleBase,
    Term,
    default_rules_dir,
    parse_coding,
    profile_dir,
    profiles,
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

# Public name -> (private module, attribute), imported on first access (PEP 562).
_LAZY = {
    "annotate": ("._annotate", "annotate"),
    "annotate_to": ("._scale.annotate_run", "annotate_to"),
    "write_annotations": ("._annotate", "write_table"),
    "relabel": ("._annotate", "relabel"),
    "read_annotations": ("._annotate", "read_annotations"),
    "plot_timeline": ("._plots", "plot_timeline"),
    "write_overlay": ("._plots", "write_overlay"),
    "OneEuro": ("._smoothing", "OneEuro"),
    "MediaWarning": ("._video", "MediaWarning"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(import_module(module, __name__), attr)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'fuzzyemo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    "Condition",
    "EmotionRules",
    "Engine",
    "EngineOptions",
    "InferenceResult",
    "InputError",
    "MediaWarning",
    "MembershipFunction",
    "NeutralWarning",
    "OneEuro",
    "Problem",
    "Rule",
    "RuleBase",
    "RuleBaseError",
    "Term",
    "__version__",
    "annotate",
    "annotate_to",
    "class_index",
    "class_name",
    "default_rules_dir",
    "json_schema_files",
    "measure",
    "parse_coding",
    "plot_timeline",
    "profile_dir",
    "profiles",
    "raw_features",
    "read_annotations",
    "relabel",
    "to_fll",
    "to_json",
    "write_annotations",
    "write_overlay",
]

"""YAML loading that remembers where every value came from.

PyYAML's composer gives nodes with start marks; we construct plain Python values ourselves
and keep a map from each value's path (tuple of keys and indices) to its (line, column),
both 1-based, so validation errors can say ``file:line:col``. Duplicate mapping keys, which
YAML silently overwrites, are reported instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from ._errors import Problem, RuleBaseError, did_you_mean
from ._vocab import COMPONENTS

Positions = dict[tuple, tuple[int, int]]


def load_yaml(path: Path, display: str | None = None) -> tuple[Any, Positions]:
    """Parse ``path``; return (data, positions). Raises RuleBaseError with a position."""
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleBaseError([Problem(shown, 1, 1, f"cannot read file: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise RuleBaseError([Problem(shown, 1, 1, "file is not UTF-8 text")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"invalid YAML: {exc.problem or exc.context}"
        raise RuleBaseError([Problem(shown, line, col, message)]) from None
    positions: Positions = {}
    problems: list[Problem] = []
    constructor = yaml.SafeLoader("")

    def build(n: yaml.Node, at: tuple) -> Any:
        positions[at] = (n.start_mark.line + 1, n.start_mark.column + 1)
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in n.value:
                key = constructor.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)):
                    problems.append(Problem(shown, key_node.start_mark.line + 1,
                                            key_node.start_mark.column + 1,
                                            "mapping keys must be plain names"))
                    continue
                if key in out:
                    problems.append(Problem(shown, key_node.start_mark.line + 1,
                                            key_node.start_mark.column + 1,
                                            f"duplicate key {key!r}",
                                            "YAML keeps only the last one; remove or rename one"))
                out[key] = build(value_node, (*at, key))
                # Point a key's problems at its key rather than at its value's first child.
                positions[(*at, key)] = (key_node.start_mark.line + 1,
                                         key_node.start_mark.column + 1)
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(item, (*at, i)) for i, item in enumerate(n.value)]
        return constructor.construct_object(n, deep=True)

    data = build(node, ()) if node is not None else None
    if problems:
        raise RuleBaseError(problems)
    return data, positions


def top_level_problem(data: Any) -> str:
    """What is wrong with a file whose top is not a mapping, in words: an empty file (or only
    comments) says so instead of naming Python's NoneType."""
    if data is None:
        return "the file is empty (or holds only comments): expected a mapping of keys"
    kind = {list: "a list", str: "a single text value", int: "a single number",
            float: "a single number", bool: "a single true/false"}.get(type(data),
                                                                        type(data).__name__)
    return f"expected a mapping of keys at the top of the file, got {kind}"


def position(positions: Positions, loc: tuple) -> tuple[int, int]:
    """Best known position for ``loc``: the value itself, else its nearest ancestor."""
    loc = tuple(loc)
    while loc:
        if loc in positions:
            return positions[loc]
        loc = loc[:-1]
    return positions.get((), (1, 1))


def components_section(data: Any, add: Callable[..., None], formats: tuple[str, ...],
                       shape: str) -> Mapping | None:
    """The ``components`` mapping of a ``{format, components}`` file (calibration.yaml,
    aus.yaml), with the top level's problems reported through ``add(loc, message, hint)``.
    None when there is no usable mapping (nothing further can be checked); ``shape`` says in
    the error what one component should look like. ``formats[0]`` is the current format."""
    if not isinstance(data, Mapping):
        add((), top_level_problem(data))
        return None
    for key in data:
        if key not in ("format", "components"):
            add((key,), f"unknown key {key!r}", did_you_mean(str(key), ("format", "components")))
    if data.get("format") not in formats:
        add(("format",) if "format" in data else (),
            f"format must be {formats[0]!r}, got {data.get('format')!r}")
    comps = data.get("components")
    if not isinstance(comps, Mapping):
        add(("components",) if "components" in data else (),
            f"components must be a mapping of component name -> {shape}")
        return None
    return comps


def component_entries(comps: Mapping, add: Callable[..., None], expected: str
                      ) -> Iterator[tuple[str, tuple, Mapping]]:
    """``(name, loc, spec)`` for each entry of a ``components`` mapping that names one of the
    12 components and is a mapping; the others are reported through ``add`` (``expected``
    says what the mapping should hold, e.g. "plus, minus and full")."""
    for name, spec in comps.items():
        loc = ("components", name)
        if name not in COMPONENTS:
            add(loc, f"unknown component {name!r}", did_you_mean(str(name), COMPONENTS))
        elif not isinstance(spec, Mapping):
            add(loc, f"{name}: expected a mapping with {expected}")
        else:
            yield name, loc, spec


def known_keys(spec: Mapping, loc: tuple, allowed: tuple[str, ...], label: str,
               add: Callable[..., None]) -> bool:
    """Report each key of ``spec`` not in ``allowed`` as ``{label}: unknown key`` with a
    did-you-mean; True when every key is known."""
    ok = True
    for key in spec:
        if key not in allowed:
            add((*loc, key), f"{label}: unknown key {key!r}", did_you_mean(str(key), allowed))
            ok = False
    return ok

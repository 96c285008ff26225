"""All hyperparameters of a run in one dataclass, loadable from YAML/JSON.

No torch here: the CLI validates a config (and prints its errors as one line) before it
imports torch.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzzyemo._errors import InputError, did_you_mean

ENCODERS = ("stgcn", "plain", "conv4")
METHODS = ("maml", "protonet", "single")
FUZZY_SOURCES = ("columns", "engine")
BASELINES = ("auto", "subject", "dataset", "none")


@dataclass
class Config:
    """One run. Field names are the keys of the config file (YAML or JSON)."""

    # -- reproducibility
    seed: int = 0
    # -- data and tasks (Section IV-A)
    window: int = 16             # frames per window (views are cut into windows)
    stride: int = 8              # hop between windows of one view
    max_gap: int = 2             # bridge up to this many `unknown` frames inside a view (masked)
    min_view_length: int = 1     # views with fewer valid frames are dropped
    baseline: str = "auto"       # landmark baseline: subject median | dataset mean | none
    test_split: str | None = None   # split name(s) for meta-test; None: "test" or the last name
    train_splits: list[str] | None = None  # None: every split that is not a test split
    modality_prefixes: list[str] = field(default_factory=lambda: ["emb_"])
    n_way: int = 5
    k_shot: int = 5
    q_query: int = 5
    sample_unit: str = "auto"    # view | window | auto (views when enough exist)
    # -- model (Section IV-B)
    encoder: str = "stgcn"       # stgcn (g of the paper) | plain (no spatio-temporal) | conv4
    hidden: int = 32
    kernel: int = 3              # temporal kernel of the gated convolutions
    blocks: int = 1              # spatio-temporal blocks (GLU conv, graph conv, GLU conv)
    fuzzy: bool = True           # the fuzzy layer F
    fuzzy_source: str = "columns"   # columns (precomputed) | engine (recomputed from components)
    fuzzy_memberships: bool = False  # also append the 12x3 FCIS memberships (engine only)
    lambda_fcis: float | None = None  # engine knobs for fuzzy_source=engine (None: rule base's)
    lambda_fkis: float | None = None
    use_components: bool = True  # component measurements as node features
    image_size: int = 24         # conv4: landmark raster side (or crop side)
    image_prefix: str = "crop_"  # conv4: per-frame aligned crop columns crop_0.. if present
    # -- optimisation (Eqs. 6 and 7)
    method: str = "maml"         # maml | protonet | single (no bi-level: --no-meta)
    inner_steps: int = 1
    inner_steps_test: int = 5
    alpha: float = 0.4           # inner learning rate
    beta: float = 1e-3           # outer (Adam) learning rate
    weight_decay: float = 0.0
    first_order: bool = False
    meta_batch: int = 4          # tasks per outer step (vmapped)
    steps: int = 600             # outer steps
    log_every: int = 50
    checkpoint_every: int = 200
    val_episodes: int = 0        # episodes on the test split logged every log_every (0: off)
    # -- evaluation
    eval_episodes: int = 300
    device: str = "auto"
    threads: int = 1             # CPU intra-op threads (0: torch's default); see docs/model.md

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(msg: str) -> None:
            raise InputError(f"config: {msg}")

        if self.encoder not in ENCODERS:
            bad(f"encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if self.method not in METHODS:
            bad(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.fuzzy_source not in FUZZY_SOURCES:
            bad(f"fuzzy_source must be columns or engine, got {self.fuzzy_source!r}")
        if self.baseline not in BASELINES:
            bad(f"baseline must be one of {', '.join(BASELINES)}, got {self.baseline!r}")
        if self.sample_unit not in ("auto", "view", "window"):
            bad(f"sample_unit must be auto, view or window, got {self.sample_unit!r}")
        for name in ("window", "stride", "n_way", "k_shot", "q_query", "hidden", "kernel",
                     "meta_batch", "image_size", "log_every", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                bad(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("steps", "inner_steps", "inner_steps_test", "eval_episodes", "max_gap",
                     "val_episodes", "blocks", "min_view_length", "threads"):
            if int(getattr(self, name)) < 0:
                bad(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.n_way < 2:
            bad("n_way must be >= 2")
        if self.kernel % 2 == 0:
            bad(f"kernel must be odd (same-length temporal convolution), got {self.kernel}")
        if self.fuzzy_memberships and self.fuzzy_source != "engine":
            bad("fuzzy_memberships needs fuzzy_source: engine (memberships are not columns)")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            bad(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.alpha <= 0 or self.beta <= 0:
            bad("alpha and beta must be > 0")

    # -- I/O -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> Config:
        names = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                hint = did_you_mean(str(key), names)
                raise InputError(f"{source}: unknown key {key!r}" + (f" ({hint})" if hint else ""))
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        clean: dict[str, Any] = {}
        for key, value in data.items():
            t = str(types[key])
            try:
                if value is None:
                    clean[key] = None
                elif t.startswith("int"):
                    if isinstance(value, bool) or float(value) != int(value):
                        raise ValueError
                    clean[key] = int(value)
                elif t.startswith("float"):
                    clean[key] = float(value)
                elif t == "bool":
                    if not isinstance(value, bool):
                        raise ValueError
                    clean[key] = value
                elif t.startswith("list"):
                    clean[key] = [str(v) for v in (value if isinstance(value, list) else [value])]
                else:
                    clean[key] = str(value)
            except (TypeError, ValueError):
                raise InputError(f"{source}: {key} has the wrong type ({value!r}; "
                                 f"expected {t})") from None
        try:
            return cls(**clean)
        except InputError as exc:
            raise InputError(str(exc).replace("config:", f"{source}:", 1)) from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Config:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: config file not found")
        text = p.read_text(encoding="utf-8")
        try:
            if p.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{p}: cannot parse config: {first}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InputError(f"{p}: a config file must be a mapping of key: value")
        return cls.from_dict(data, str(p))

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    def dump(self, path: str | os.PathLike) -> None:
        """Write as YAML, atomically."""
        import yaml

        from ._io import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

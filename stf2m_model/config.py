"""All hyperparameters of a run in one dataclass, loadable from YAML/JSON.

No torch here: the CLI validates a config (and prints its errors as one line) before it
imports torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzzyemo._errors import InputError, did_you_mean

ENCODERS = ("stgcn", "plain", "conv4")
SPATIAL = ("views", "regions", "none")
METHODS = ("maml", "anil", "reptile", "protonet", "supervised")
FUZZY = ("learned", "precomputed", "none")
BASELINES = ("auto", "subject", "dataset", "none")
LANDMARKS = ("auto", "named", "raw", "none")
CLASS_SPLITS = ("disjoint", "shared")
# Settings that change neither the trained weights nor what is evaluated on: not in run keys.
NOT_IN_KEY = ("eval_episodes", "seeds", "log_every", "checkpoint_every")
DEVICE_HINT = "device must be auto, cpu, cuda or cuda:N"


def check_device(name: str) -> None:
    """One-line error for a device name torch cannot use here (before any long work)."""
    if name in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", name):
        return
    raise InputError(f"{DEVICE_HINT}, got {name!r}")


@dataclass
class Config:
    """One run. Field names are the keys of the config file (YAML or JSON)."""

    # -- reproducibility
    seed: int = 0
    seeds: int = 3               # experiments: models per variant (seed, seed + 1, ...)
    # -- data and tasks (Section IV-A, III-A)
    window: int = 16             # frames per window (views are cut into windows)
    stride: int = 8              # hop between windows of one view
    max_gap: int = 2             # bridge up to this many `unknown` frames inside a view (masked)
    min_view_length: int = 1     # views with fewer valid frames are dropped
    baseline: str = "auto"       # landmark baseline: subject median | dataset mean | none
    landmarks: str = "auto"      # named points of the scheme | raw landmarks | none
    positions: bool = False      # positional encoding input (a label proxy on time-locked data)
    use_components: bool = True  # the 12 component measurements as inputs
    test_split: str | None = None   # split name(s) for meta-test; None: "test" or the last name
    val_split: str | None = None    # split(s) for the lambda search; None: val/valid/validation
    train_splits: list[str] | None = None  # None: every split that is not test or val
    class_split: str = "disjoint"  # meta-train/meta-test classes: disjoint | shared
    test_classes: list[str] | None = None  # fixed meta-test classes (disjoint); None: drawn
    test_class_fraction: float = 0.34  # share of the classes drawn for meta-test (>= n_way)
    class_split_seed: int = 0    # draw of the meta-test classes (fixed across model seeds)
    modality_prefixes: list[str] = field(default_factory=lambda: ["emb_"])
    n_way: int = 5
    k_shot: int = 5
    q_query: int = 5
    sample_unit: str = "auto"    # view | window | auto (views when enough exist)
    # -- model (Section IV-B)
    encoder: str = "stgcn"       # stgcn (g of the paper) | plain (no spatio-temporal) | conv4
    spatial: str = "views"       # Eq. 4 message passing: across the task's views | regions | none
    temporal: bool = True        # gated temporal convolutions (Eq. 3)
    hidden: int = 64
    kernel: int = 3              # temporal kernel of the gated convolutions
    blocks: int = 1              # spatio-temporal blocks (GLU conv, spatial conv, GLU conv)
    fuzzy: str = "learned"       # F(Z) differentiable FCIS/FKIS | precomputed columns | none
    rules: str | None = None     # rule base directory (or profile name); None: the default
    lambda_fcis: float | None = None  # lambda1 / lambda2 of the rule base (None: its own)
    lambda_fkis: float | None = None
    image_size: int = 24         # conv4: landmark raster side (or crop side)
    image_prefix: str = "crop_"  # conv4: per-frame aligned crop columns crop_0.. if present
    # -- optimisation (Eqs. 6 and 7)
    method: str = "maml"         # maml | anil | reptile | protonet | supervised (--no-meta)
    inner_steps: int = 1
    inner_steps_test: int = 1     # test-time steps (more than trained for overshoot at alpha)
    finetune_steps: int = 100    # supervised: head fine-tuning steps on the support set
    alpha: float = 0.4           # inner learning rate
    beta: float = 1e-3           # outer (Adam) learning rate
    weight_decay: float = 0.0
    first_order: bool = False
    meta_batch: int = 4          # tasks per outer step (vmapped)
    steps: int = 600             # outer steps
    log_every: int = 50
    checkpoint_every: int = 200
    # -- evaluation
    eval_episodes: int = 300
    device: str = "auto"
    threads: int = 1             # CPU intra-op threads (0: torch's default); see docs/model.md

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(msg: str) -> None:
            raise InputError(f"config: {msg}")

        for key, choices in (("encoder", ENCODERS), ("spatial", SPATIAL), ("method", METHODS),
                             ("fuzzy", FUZZY), ("baseline", BASELINES),
                             ("landmarks", LANDMARKS), ("class_split", CLASS_SPLITS),
                             ("sample_unit", ("auto", "view", "window"))):
            if getattr(self, key) not in choices:
                value = getattr(self, key)
                hint = " (method 'single' became 'supervised')" if value == "single" else ""
                bad(f"{key} must be one of {', '.join(choices)}, got {value!r}{hint}")
        for name in ("window", "stride", "n_way", "k_shot", "q_query", "hidden", "kernel",
                     "meta_batch", "image_size", "log_every", "checkpoint_every", "seeds"):
            if int(getattr(self, name)) < 1:
                bad(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("steps", "inner_steps", "inner_steps_test", "eval_episodes", "max_gap",
                     "blocks", "min_view_length", "threads", "finetune_steps"):
            if int(getattr(self, name)) < 0:
                bad(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.n_way < 2:
            bad("n_way must be >= 2")
        if self.kernel % 2 == 0:
            bad(f"kernel must be odd (same-length temporal convolution), got {self.kernel}")
        if not 0.0 < self.test_class_fraction < 1.0:
            bad(f"test_class_fraction must be in (0, 1), got {self.test_class_fraction}")
        if self.test_classes and self.class_split != "disjoint":
            bad("test_classes needs class_split: disjoint")
        try:
            check_device(self.device)
        except InputError as exc:
            bad(str(exc))
        if self.alpha <= 0 or self.beta <= 0:
            bad("alpha and beta must be > 0")
        if self.method == "reptile" and self.inner_steps < 2:
            bad("reptile needs inner_steps >= 2 (with one step it is joint training, whose "
                "gradient the shared output row makes zero); try 5")
        for name in ("lambda_fcis", "lambda_fkis"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                bad(f"{name} must be > 0, got {v}")

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

    def key(self, *extra: str) -> str:
        """A short hash of every setting (and ``extra`` strings, e.g. data and rule hashes):
        experiment runs are stored under it, so a changed setting is never a stale reuse."""
        settings = {k: v for k, v in self.to_dict().items() if k not in NOT_IN_KEY}
        text = json.dumps(settings, sort_keys=True) + "\0" + "\0".join(extra)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def dump(self, path: str | os.PathLike) -> None:
        """Write as YAML, atomically."""
        import yaml

        from ._io import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

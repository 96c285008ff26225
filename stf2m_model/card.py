"""MODEL_CARD.md of a run directory, rebuilt from its JSON files after train and evaluate."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ._io import atomic_write_text


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _pct(m: dict) -> str:
    return f"{100 * m['mean']:.2f} ± {100 * m['ci95']:.2f}"


def write_card(run_dir: str | os.PathLike) -> Path:
    run = Path(run_dir)
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text()) if (run / "config.yaml").is_file() \
        else {}
    tr = _load(run / "train.json")
    ev = _load(run / "evaluation.json")
    ds = tr.get("data_summary", {})
    enc = {"stgcn": "spatio-temporal (gated temporal conv + region-graph message passing)",
           "plain": "plain per-frame MLP (no spatio-temporal module)",
           "conv4": "Conv4 image backbone"}.get(cfg.get("encoder"), cfg.get("encoder"))
    method = {"maml": "bi-level (MAML-style, Eqs. 6-7)" + (
        ", first-order" if cfg.get("first_order") else ", second-order"),
        "protonet": "ProtoNet (prototype distances, no inner loop)",
        "single": "single-level training (no bi-level optimisation)"}.get(cfg.get("method"))
    lines = [
        "# Model card: ST-F2M run", "",
        "## Model", "",
        "f = h ∘ F ∘ g (ST-F2M, Section IV of the paper; see docs/model.md).", "",
        f"- encoder g: {enc}; hidden {cfg.get('hidden')}, temporal kernel {cfg.get('kernel')}, "
        f"{cfg.get('blocks')} block(s)",
        f"- fuzzy layer F: {'on' if cfg.get('fuzzy') else 'off'}"
        + (f" (source: {cfg.get('fuzzy_source')}, memberships: {cfg.get('fuzzy_memberships')}, "
           f"lambda1={cfg.get('lambda_fcis') or 'rule base'}, "
           f"lambda2={cfg.get('lambda_fkis') or 'rule base'})" if cfg.get("fuzzy") else ""),
        f"- optimisation: {method}; alpha={cfg.get('alpha')}, beta={cfg.get('beta')}, "
        f"inner steps {cfg.get('inner_steps')} (test {cfg.get('inner_steps_test')}), "
        f"meta-batch {cfg.get('meta_batch')}, {cfg.get('steps')} outer steps, seed {cfg.get('seed')}",
        f"- tasks: {cfg.get('n_way')}-way {cfg.get('k_shot')}-shot, {cfg.get('q_query')} query "
        f"per class; windows of {cfg.get('window')} frames (stride {cfg.get('stride')})",
        f"- parameters: {tr.get('parameters', '?')}", "",
        "## Data", "",
        f"- file: `{tr.get('data', '?')}` (sha256 `{(tr.get('data_sha256') or '?')[:16]}…`)",
        f"- {ds.get('frames', '?')} frames, {ds.get('views', '?')} views, "
        f"{ds.get('windows', '?')} windows, {ds.get('landmarks', '?')} landmarks "
        f"(region graph from {ds.get('graph', '?')}), "
        f"{ds.get('modality_columns', 0)} extra modality column(s)",
        f"- meta-train/meta-test: subject-independent splits (test split: "
        f"{cfg.get('test_split') or 'auto'}); sampling unit: {tr.get('sample_unit', '?')}", "",
        "## Training", "",
        f"- device {tr.get('device', '?')}, {tr.get('steps', '?')} steps in "
        f"{tr.get('seconds', '?')} s ({tr.get('steps_per_second', '?')} steps/s), torch "
        f"{tr.get('torch', '?')}",
        f"- final meta-train query loss {tr.get('final_train_loss')}, accuracy "
        f"{tr.get('final_train_acc')}", "",
    ]
    if ev:
        c18, c6 = ev["classes18"], ev["emotions6"]
        lines += [
            "## Evaluation", "",
            f"{ev['episodes']} meta-test episodes on `{ev.get('data', '?')}`"
            + (f", corruption {ev['corruption']['kind']} {ev['corruption']['level']}"
               if ev.get("corruption", {}).get("kind", "none") != "none" else "")
            + f"; chance accuracy {100 * ev['chance_accuracy']:.1f}%. Mean ± 95% CI (%).", "",
            "| labels | accuracy | recall (macro) |", "|---|---|---|",
            f"| 18 classes | {_pct(c18['accuracy'])} | {_pct(c18['recall_macro'])} |",
            f"| 6 emotions | {_pct(c6['accuracy'])} | {_pct(c6['recall_macro'])} |", "",
        ]
        if ev.get("figures"):
            lines += ["![18 classes](confusion_18.png) ![6 emotions](confusion_6.png)", ""]
    lines += [
        "## Intended use and limitations", "",
        "- Research on few-shot fine-grained emotion recognition from facial landmarks. Not "
        "for decisions about people: labels are rule-derived emotion *expressions*, not felt "
        "emotions.",
        "- DISFA-FER / WFLW-FER labels are produced by the same fuzzy rule base whose outputs "
        "the fuzzy layer F feeds to the classifier, so with F on the task is partly circular; "
        "compare with the `--no-fuzzy` ablation to see what the landmarks alone carry.",
        "- Subject-independent evaluation only within the dataset's own population.", "",
    ]
    return atomic_write_text(run / "MODEL_CARD.md", "\n".join(lines))

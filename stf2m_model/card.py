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
    spatial = {"views": "message passing across the task's views (Eq. 4)",
               "regions": "message passing over facial regions (ours)",
               "none": "no message passing"}.get(cfg.get("spatial"), cfg.get("spatial"))
    enc = {"stgcn": "spatio-temporal: " + ("gated temporal conv, " if cfg.get("temporal")
                                           else "no temporal conv, ") + spatial,
           "plain": "plain per-frame MLP (no spatio-temporal module)",
           "conv4": "Conv4 image backbone"}.get(cfg.get("encoder"), cfg.get("encoder"))
    method = {"maml": "bi-level (MAML-style, Eqs. 6-7)" + (
        ", first-order" if cfg.get("first_order") else ", second-order"),
        "anil": "ANIL (inner loop on the output layer only)",
        "reptile": "Reptile (first-order)",
        "protonet": "ProtoNet (prototype distances, no inner loop)",
        "supervised": "supervised 18-class training, fine-tuned on the support set "
                      "(no bi-level optimisation)"}.get(cfg.get("method"))
    fuzzy = {"learned": "F(Z): learned projection to the 12 components -> differentiable "
                        "FCIS/FKIS (rules.json)",
             "precomputed": "the input's precomputed engine scores (baseline)",
             "none": "off"}.get(cfg.get("fuzzy"), cfg.get("fuzzy"))
    lines = [
        "# Model card: ST-F2M run", "",
        "## Model", "",
        "f = h ∘ F ∘ g (ST-F2M, Section IV of the paper; see docs/model.md).", "",
        f"- encoder g: {enc}; hidden {cfg.get('hidden')}, temporal kernel {cfg.get('kernel')}, "
        f"{cfg.get('blocks')} block(s)",
        f"- fuzzy layer F: {fuzzy}"
        + (f" (lambda1={cfg.get('lambda_fcis') or 'rule base'}, "
           f"lambda2={cfg.get('lambda_fkis') or 'rule base'})" if cfg.get("fuzzy") != "none"
           else ""),
        f"- inputs: landmarks {ds.get('landmarks', '?')} ({ds.get('points', '?')} points"
        f"{', scheme ' + str(ds.get('scheme')) if ds.get('scheme') else ''}), components "
        f"{'on' if cfg.get('use_components') else 'off'}, positions "
        f"{'on' if cfg.get('positions') else 'off'}",
        f"- optimisation: {method}; alpha={cfg.get('alpha')}, beta={cfg.get('beta')}, "
        f"inner steps {cfg.get('inner_steps')} (test {cfg.get('inner_steps_test')}), "
        f"meta-batch {cfg.get('meta_batch')}, {cfg.get('steps')} outer steps, seed {cfg.get('seed')}",
        f"- tasks: {cfg.get('n_way')}-way {cfg.get('k_shot')}-shot, {cfg.get('q_query')} query "
        f"per class; windows of {cfg.get('window')} frames (stride {cfg.get('stride')})",
        f"- parameters: {tr.get('parameters', '?')}", "",
        "## Data", "",
        f"- file: `{tr.get('data', '?')}` (sha256 `{(tr.get('data_sha256') or '?')[:16]}…`)",
        f"- {ds.get('frames', '?')} frames, {ds.get('views', '?')} views, "
        f"{ds.get('windows', '?')} windows, {ds.get('modality_columns', 0)} extra modality "
        "column(s)",
        f"- meta-train/meta-test: subject-independent splits (test split: "
        f"{cfg.get('test_split') or 'auto'}), classes {tr.get('class_split', '?')}; "
        f"sampling unit: {tr.get('sample_unit', '?')}",
        f"- meta-train classes: {', '.join(tr.get('train_classes', [])) or '?'}",
        f"- meta-test classes: {', '.join(tr.get('test_classes', [])) or '?'}",
        f"- reference support for `fuzzyemo predict`: "
        f"{', '.join(tr.get('support_classes', [])) or '?'}", "",
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
        "- DISFA-FER / WFLW-FER labels are produced by the same fuzzy rule base that the "
        "fuzzy layer F embeds, from the same 12 components the model may read, so with F or "
        "the components on the task is partly circular; compare with the `--no-fuzzy` "
        "ablation (landmarks only) to see what the landmarks alone carry.",
        "- Predictions choose among the reference support's classes (neutral included); "
        "they are never 'unknown' for a frame with a face.",
        "- Subject-independent evaluation only within the dataset's own population.", "",
    ]
    return atomic_write_text(run / "MODEL_CARD.md", "\n".join(lines))

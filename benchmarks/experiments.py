"""The experiment tables of docs/model.md ("Results"), on a generated table.

    python benchmarks/experiments.py [-o results/] [--sets all] [--episodes 100]
                                     [--subjects 27] [--frames 1500]

Generates a DISFA-FER-like table with tests/stf2m_fixtures.py (27 subjects x 1,500
frames, every class, seed 0; 18 train, 4 validation and 5 test subjects) and runs
``fuzzyemo experiment`` on it with the default config (3 seeds per variant), printing
each table. No licensed data is involved, and none of these numbers says anything about
real faces: the point is that the protocol, the ablations and the baselines run end to end
and can be compared under identical conditions. Runs are keyed by their settings, so a
rerun after an interruption continues where it stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", type=Path, default=Path("results"))
    ap.add_argument("--sets", default="all", help="ablation, baselines, robustness, lambda "
                                                  "or all (comma-separated)")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--subjects", type=int, default=27)
    ap.add_argument("--frames", type=int, default=1500)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()

    import stf2m_fixtures as fx
    import torch

    from stf2m_model.config import Config
    from stf2m_model.experiments import run_experiment

    torch.set_num_threads(1)
    args.output.mkdir(parents=True, exist_ok=True)
    data = args.output / "synthetic-disfa.parquet"
    if not data.is_file():
        df = fx.disfa_like(n_subjects=args.subjects, n_frames=args.frames, seed=0)
        train_subjects = sorted(df.loc[df["split"] == "train", "subject"].unique())
        df.loc[df["subject"].isin(train_subjects[-4:]), "split"] = "val"
        fx.write(df, data)
    config = Config(seeds=args.seeds, device="cpu")
    for name in args.sets.split(","):
        t0 = time.perf_counter()
        table = run_experiment(name.strip(), data, args.output, config,
                               log=lambda s: print(s, file=sys.stderr, flush=True),
                               episodes=args.episodes)
        print(table.read_text())
        print(f"({name}: {time.perf_counter() - t0:.0f} s)\n", flush=True)


if __name__ == "__main__":
    main()

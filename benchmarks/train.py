"""Speed of the ST-F2M model: a full default training run, inference, vmap against a loop.

    python benchmarks/train.py [--data DISFA-FER.parquet] [--device auto|cpu|cuda]
                               [--repeat 3] [--no-full-run]

Without ``--data`` a DISFA-FER-sized table is generated (27 subjects x 4,845 frames,
tests/stf2m_fixtures.py). In one process it measures, each ``--repeat`` times (median and
range are printed):

- the full default run: ``stf2m_model.train.train`` with ``Config()`` as it is (all outer
  steps, preprocessing, reference support, card), wall clock; ``--no-full-run`` skips it;
- outer meta-steps/s (forward, inner loop, backward, Adam) with the tasks ``vmap``-ed
  (``meta.meta_loss``) and with a plain Python loop over tasks (``meta.meta_loss_loop``),
  same batches, second and first order, at the default config and with 16 tiny tasks;
- inference: windows classified per second by the deployed model (a run adapted to its
  reference support, every class + neutral), forward only, batch 512, and frames labelled
  per second by ``Predictor.predict`` end to end on a 2-subject table;
- test episodes per second (adaptation on the support set + query predictions).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from stf2m_model import meta  # noqa: E402
from stf2m_model.config import Config  # noqa: E402
from stf2m_model.data import EpisodeSampler, FrameData, class_partition, read_parquet  # noqa: E402
from stf2m_model.fuzzy import rules_dict  # noqa: E402
from stf2m_model.model import build_model  # noqa: E402
from stf2m_model.train import resolve_device, setup_torch, to_batch  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _stats(values: list[float]) -> str:
    v = sorted(values)
    return f"{np.median(v):,.2f} (range {v[0]:,.2f}-{v[-1]:,.2f}, n={len(v)})"


def steps_per_second(model, batches, config, fn, device, repeat: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=config.beta)
    loss, _ = fn(model, meta.params_of(model), *batches[0], config)  # warm-up
    loss.backward()
    _sync(device)
    t0 = time.perf_counter()
    for i in range(repeat):
        loss, _ = fn(model, meta.params_of(model), *batches[i % len(batches)], config)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _sync(device)
    return repeat / (time.perf_counter() - t0)


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} CPUs ({cpu}), load {load:.1f}, Python "
            f"{platform.python_version()}, torch {torch.__version__}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="a built parquet (default: generated)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of each measurement")
    ap.add_argument("--steps", type=int, default=10, help="timed meta-steps per measurement")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-full-run", action="store_true", help="skip the full training run")
    args = ap.parse_args()
    config = Config(threads=args.threads, device=args.device)
    setup_torch(config)
    device = resolve_device(args.device)
    print(f"machine: {machine()}, device {device}, threads {torch.get_num_threads()}")
    tmp = Path(tempfile.mkdtemp(prefix="stf2m-bench-"))
    if args.data:
        df = read_parquet(args.data)
        path, source = args.data, str(args.data)
    else:
        import stf2m_fixtures as fx

        df = fx.disfa_like(n_subjects=27, n_frames=4845, seed=0)
        path = fx.write(df, tmp / "disfa-sized.parquet")
        source = "generated DISFA-FER-sized table (27 x 4,845 frames)"
    t0 = time.perf_counter()
    data = FrameData.build(df, config)
    print(f"data: {source}: {data.n_frames:,} frames, {len(data.win_label):,} windows; "
          f"preprocessing {time.perf_counter() - t0:.1f} s")

    # -- the full default run, for real
    if not args.no_full_run:
        from stf2m_model.train import train

        walls = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            summary = train(path, tmp / f"run{i}", config, frame=df)
            walls.append(time.perf_counter() - t0)
        print(f"full default run ({summary['steps']} steps, {summary['parameters']:,} "
              f"parameters, `train()` end to end): {_stats([w / 60 for w in walls])} min; "
              f"training alone {summary['steps_per_second']:.2f} steps/s")

    part = class_partition(data, config)
    sampler = EpisodeSampler(data, data.split_windows("train"), config, part["train"],
                             part["unit"])
    rules = rules_dict()
    print(f"{config.n_way}-way {config.k_shot}-shot {config.q_query}-query, window "
          f"{config.window}, meta-batch {config.meta_batch}, hidden {config.hidden}")
    for label, cfg in (("default config", config),
                       ("16 tiny tasks (5-way 1-shot 1-query, 4 frames, hidden 8)",
                        config.replace(window=4, k_shot=1, q_query=1, hidden=8,
                                       meta_batch=16))):
        torch.manual_seed(0)
        model = build_model(data.prep.layout, cfg, rules, data.prep).to(device)
        batches = [to_batch(data, sampler.sample(cfg.meta_batch), device) for _ in range(4)]
        for order, c in (("second", cfg), ("first", cfg.replace(first_order=True))):
            v = [steps_per_second(model, batches, c, meta.meta_loss, device, args.steps)
                 for _ in range(args.repeat)]
            lp = [steps_per_second(model, batches, c, meta.meta_loss_loop, device, args.steps)
                  for _ in range(args.repeat)]
            ratio = [a / b for a, b in zip(v, lp, strict=True)]
            print(f"meta-steps/s, {label}, {order} order: vmap {_stats(v)}; per-task loop "
                  f"{_stats(lp)}; vmap/loop {_stats(ratio)}")

    # -- inference with a deployed model (a trained run if we made one, else untrained)
    from stf2m_model.predict import Predictor
    from stf2m_model.train import train as train_run

    run = tmp / "run0"
    if not (run / "model.pt").is_file():
        train_run(path, run, config.replace(steps=1), frame=df)
    predictor = Predictor.load(run, device=str(device))
    x = data.gather(np.resize(data.split_windows("test"), 4096))
    rates = []
    for _ in range(args.repeat):
        predictor.window_probabilities(x[:512])
        _sync(device)
        t0 = time.perf_counter()
        predictor.window_probabilities(x, batch_size=512)
        _sync(device)
        rates.append(len(x) / (time.perf_counter() - t0))
    print(f"inference ({len(predictor.classes)} classes, support of "
          f"{predictor.deployed.n_support} windows as senders): {_stats(rates)} windows/s "
          f"({config.window} frames each, batch 512)")
    new = df[df["subject"].isin(sorted(df["subject"].unique())[:2])].drop(columns=["split"])
    frames = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        predictor.predict(new)
        frames.append(len(new) / (time.perf_counter() - t0))
    print(f"Predictor.predict end to end ({len(new):,} frames, stride {config.stride}): "
          f"{_stats(frames)} frames/s")
    test = EpisodeSampler(data, data.split_windows("test"), config, part["test"],
                          part["unit"], seed=1)
    ep = to_batch(data, test.sample(50), device)
    model = predictor.deployed.model
    from stf2m_model.train import load_run

    _, _, model = load_run(run, device)
    params = {k: v.detach() for k, v in meta.params_of(model).items()}
    eps = []
    for _ in range(args.repeat):
        with torch.no_grad():
            meta.predict(model, params, ep[0], ep[1], ep[2], config)
            _sync(device)
            t0 = time.perf_counter()
            meta.predict(model, params, ep[0], ep[1], ep[2], config)
            _sync(device)
        eps.append(50 / (time.perf_counter() - t0))
    print(f"test episodes ({config.inner_steps_test} adaptation step(s), 50 vmapped): "
          f"{_stats(eps)} episodes/s")


if __name__ == "__main__":
    main()

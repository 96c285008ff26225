"""Meta-training and inference speed of the ST-F2M model, vmap against a per-task loop.

    python benchmarks/train.py [--data DISFA-FER.parquet] [--device auto|cpu|cuda]

Without ``--data`` a DISFA-FER-sized table is generated (27 subjects x 4,845 frames,
tests/stf2m_fixtures.py). In the same run and on the same batches it times

- outer meta-steps/s (forward, inner loop, backward, Adam) with the tasks ``vmap``-ed
  (``stf2m_model.meta.meta_loss``) and with a plain Python loop over tasks
  (``meta_loss_loop``), second and first order;
- inference: windows (sequences) classified per second by a trained head, no adaptation;
- test episodes per second (adaptation on the support set + query predictions);

and extrapolates a full default-config training run (``steps`` outer steps).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from stf2m_model import meta  # noqa: E402
from stf2m_model.config import Config  # noqa: E402
from stf2m_model.data import EpisodeSampler, FrameData, read_parquet  # noqa: E402
from stf2m_model.model import build_model  # noqa: E402
from stf2m_model.train import resolve_device, setup_torch, to_batch  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="a built parquet (default: generated)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeat", type=int, default=10, help="timed meta-steps per variant")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    config = Config(threads=args.threads)
    setup_torch(config)
    device = resolve_device(args.device)
    t0 = time.perf_counter()
    if args.data:
        df = read_parquet(args.data)
        source = str(args.data)
    else:
        import stf2m_fixtures as fx

        df = fx.disfa_like(n_subjects=27, n_frames=4845, seed=0)
        source = "generated DISFA-FER-sized table (27 x 4,845 frames)"
    data = FrameData.build(df, config)
    prep_s = time.perf_counter() - t0
    sampler = EpisodeSampler(data, data.split_windows("train"), config)
    model = build_model(data.prep.layout, data.prep.adjacency, config).to(device)
    batches = [to_batch(data, sampler.sample(config.meta_batch), device) for _ in range(4)]
    print(f"data: {source}: {data.n_frames:,} frames, {len(data.win_label):,} windows; "
          f"preprocessing {prep_s:.1f} s")
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
          f"{config.n_way}-way {config.k_shot}-shot {config.q_query}-query, window "
          f"{config.window}, meta-batch {config.meta_batch}, hidden {config.hidden}, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters")
    rows = []
    for order, cfg in (("second", config), ("first", config.replace(first_order=True))):
        v = steps_per_second(model, batches, cfg, meta.meta_loss, device, args.repeat)
        lp = steps_per_second(model, batches, cfg, meta.meta_loss_loop, device, args.repeat)
        rows.append((order, v, lp))
        print(f"meta-steps/s, {order} order: vmap {v:.2f}, per-task loop {lp:.2f} "
              f"(vmap {v / lp:.2f}x)")
    # the per-task overhead regime: many tiny tasks, where vmap's batching pays most
    tiny = config.replace(window=4, k_shot=1, q_query=1, hidden=8, meta_batch=16)
    tiny_model = build_model(data.prep.layout, data.prep.adjacency, tiny).to(device)
    tiny_batches = [to_batch(data, sampler.sample(tiny.meta_batch), device) for _ in range(4)]
    v = steps_per_second(tiny_model, tiny_batches, tiny, meta.meta_loss, device, args.repeat)
    lp = steps_per_second(tiny_model, tiny_batches, tiny, meta.meta_loss_loop, device,
                          args.repeat)
    print(f"meta-steps/s, second order, 16 tiny tasks (5-way 1-shot, 4 frames, hidden 8): "
          f"vmap {v:.2f}, per-task loop {lp:.2f} (vmap {v / lp:.2f}x)")
    full = config.steps / rows[0][1] + prep_s
    print(f"full default run ({config.steps} second-order steps): ~{full / 60:.1f} min")
    # inference: sequences per second, forward only
    x = torch.as_tensor(data.gather(np.resize(data.split_windows("test"), 1024))).to(device)
    with torch.no_grad():
        model(x[:64])
        _sync(device)
        t0 = time.perf_counter()
        n = 0
        while time.perf_counter() - t0 < 2.0:
            model(x)
            n += len(x)
        _sync(device)
        seq_s = n / (time.perf_counter() - t0)
    print(f"inference: {seq_s:,.0f} sequences/s ({config.window} frames each, batch 1024)")
    test = EpisodeSampler(data, data.split_windows("test"), config, seed=1)
    ep = to_batch(data, test.sample(50), device)
    params = {k: v.detach() for k, v in meta.params_of(model).items()}
    with torch.no_grad():
        meta.predict(model, params, ep[0], ep[1], ep[2], config)
        _sync(device)
        t0 = time.perf_counter()
        meta.predict(model, params, ep[0], ep[1], ep[2], config)
        _sync(device)
    print(f"test episodes ({config.inner_steps_test} adaptation steps): "
          f"{50 / (time.perf_counter() - t0):.1f} episodes/s")


if __name__ == "__main__":
    main()

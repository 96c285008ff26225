"""Benchmark: the rule engine (SPEC section 3) against scikit-fuzzy and pyfuzzylite.

    python benchmarks/engine.py                 # 1,000,000 rows, peers ~15 s each
    python benchmarks/engine.py --rows 200000 --peer-seconds 5 --repeat 1   # quicker

    # pyfuzzylite 8 (vectorised) needs numpy < 2, so it gets its own interpreter:
    python -m venv /tmp/fl8 && /tmp/fl8/bin/pip install "pyfuzzylite==8.0.6" "numpy<2"
    python benchmarks/engine.py --fuzzylite8-python /tmp/fl8/bin/python

What it measures, all on one rule base (``--rules NAME|PATH``, default the shipped ``paper``
profile, 177 rules, so numbers stay comparable across releases) and in one run:

1. ``Engine.evaluate`` (the full pipeline: clip, memberships, rules, centroid, scores,
   labels) on N rows of two workloads:
   - ``uniform``: every measurement uniform in [-1.2, 1.2] (what the task names; most
     such rows fire no rule, so they are cheap after the rule step),
   - ``faces``: rows centred on a random rule's antecedent with noise (every row fires
     rules, often several levels: the demanding case).
   Compilation is timed separately; the best and the median of ``--repeat`` runs are
   reported.
2. The peers on a sample of the same rows, sized so each takes about ``--peer-seconds``:
   scikit-fuzzy's control API (per row: its array mode drops an output for the whole
   array as soon as one row leaves that emotion unactivated) and pyfuzzylite 7 (scalar
   API, one ``process()`` per row); with ``--fuzzylite8-python``, also pyfuzzylite 8's
   vectorised engine (whole arrays per ``process()``) in that interpreter, timed there
   on the same rows in the same run. Their eccentricities are compared with ours.
3. Peak memory of ``evaluate`` (tracemalloc) at several n and chunk sizes: the working
   memory beyond the result arrays is bounded by the chunk, not by n.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzzyemo  # noqa: E402
from fuzzyemo import RuleBase  # noqa: E402


# ============================================================================ machine
def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    info = {"cpu": cpu, "cores": str(os.cpu_count()), "python": platform.python_version(),
            "numpy": np.__version__, "fuzzyemo": fuzzyemo.__version__,
            "platform": platform.platform()}
    for mod, attr in (("skfuzzy", "__version__"), ("fuzzylite", "__version__")):
        try:
            info[mod] = getattr(__import__(mod), attr)
        except Exception:  # noqa: BLE001 - a missing peer is reported, not fatal
            info[mod] = "not installed"
    return info


def _load() -> str:
    try:
        return ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unavailable"


# ============================================================================ workloads
def workload(kind: str, n: int, compiled: dict[str, Any], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.2, 1.2, (n, 12))
    if kind == "uniform":
        return x
    # "faces": each row centred on one rule's antecedent (codes + N(0, 0.25) noise).
    names = [c["name"] for c in compiled["components"]]
    rules = [r for e in compiled["emotions"] for r in e["rules"]]
    antecedents = np.zeros((len(rules), 12))
    named = np.zeros((len(rules), 12), dtype=bool)
    for i, r in enumerate(rules):
        for c, v in r["when"].items():
            if isinstance(v, list):  # hedged or repeated conditions (docs/exports.md)
                v = next((o["code"] for o in v if o["code"] is not None), 0)
            antecedents[i, names.index(c)] = v
            named[i, names.index(c)] = True
    pick = rng.integers(0, len(rules), n)
    centred = antecedents[pick] + rng.normal(0.0, 0.25, (n, 12))
    return np.where(named[pick], centred, x)


HEDGE_CHAINS = [(), ("very",), ("somewhat",), ("extremely",), ("seldom",)]


def hedged_variant(rb: RuleBase) -> RuleBase:
    """The rule base with hedges everywhere (a stress test of the hedged rows): condition j
    of rule i gets HEDGE_CHAINS[(i + j) % 5], and every third rule repeats its first
    condition as 'not very <term>' (a component named twice)."""
    from dataclasses import replace

    i = 0
    emotions = []
    for emo in rb.emotions:
        rules = []
        for r in emo.rules:
            conds = [(c, v, HEDGE_CHAINS[(i + j) % len(HEDGE_CHAINS)])
                     for j, (c, v) in enumerate(r.conditions)]
            if i % 3 == 0:
                conds.insert(1, (conds[0][0], conds[0][1], ("not", "very")))
            rules.append(replace(r, conditions=tuple((c, v) for c, v, _ in conds),
                                 hedges=tuple(h for _, _, h in conds)))
            i += 1
        emotions.append(replace(emo, rules=tuple(rules)))
    return replace(rb, emotions=tuple(emotions))


def time_engine(engine: Any, x: np.ndarray, repeat: int) -> list[float]:
    engine.evaluate(x[:20000])  # warm-up: thread pool, caches
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        engine.evaluate(x)
        times.append(time.perf_counter() - t)
    return times


# ============================================================================ peers
def run_peer(peer: Any, x: np.ndarray, target_s: float) -> tuple[int, float, np.ndarray]:
    """Warm up, then evaluate batches of rows until ~target_s seconds have passed."""
    peer.eccentricity(x[:1])  # first call: one-time setup (e.g. skfuzzy's rule order)
    parts, n, secs, batch = [], 0, 0.0, 5
    while secs < target_s and n < len(x):
        t = time.perf_counter()
        parts.append(peer.eccentricity(x[n:n + batch]))
        secs += time.perf_counter() - t
        n += len(parts[-1])
        per_row = secs / n
        batch = int(min(max((target_s - secs) / per_row, 1), 200))
    return n, secs, np.concatenate(parts)


def compare(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, int]:
    """Max |difference| where both are defined, and the number of NaN-pattern mismatches."""
    both = ~np.isnan(ours) & ~np.isnan(theirs)
    diff = float(np.max(np.abs(ours[both] - theirs[both]))) if both.any() else 0.0
    return diff, int((np.isnan(ours) != np.isnan(theirs)).sum())


def fuzzylite8_peer(python: str, compiled: dict[str, Any], rb: RuleBase,
                    target_s: float) -> list[tuple[str, str, int, float]]:
    """Time pyfuzzylite 8's vectorised engine in ``python`` (numpy < 2) on shared rows."""
    # More rows than the scalar peers: a vectorised engine gets through many in target_s.
    sample = workload("faces", 200_000, compiled, seed=1)
    sample[1::2] = workload("uniform", 100_000, compiled, seed=2)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, f) for f in ("compiled.json", "x.npy", "out.npz")]
        Path(paths[0]).write_text(json.dumps(compiled), encoding="utf-8")
        np.save(paths[1], sample)
        script = str(Path(__file__).resolve().parent / "_peers.py")
        done = subprocess.run([python, script, "fuzzylite8", *paths, str(target_s)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            print(f"pyfuzzylite 8 peer failed: {done.stderr.strip().splitlines()[-1:]}")
            return []
        with np.load(paths[2]) as out:
            n, secs = int(out["rows"]), float(out["seconds"])
            ecc, version, np_version = out["eccentricity"], str(out["version"]), str(out["numpy"])
            build_s = float(out["build_seconds"])
    ours = rb.compile(precision="double").evaluate(sample[:n]).eccentricity
    diff, nan_mismatch = compare(ours, ecc)
    name = f"pyfuzzylite {version} vectorised"
    print(f"{name} (numpy {np_version}, own interpreter): build {build_s:.1f} s; {n} rows "
          f"in one call of {secs:.2f} s; eccentricity vs fuzzyemo (double): max |diff| "
          f"{diff:.2e} over {int((~np.isnan(ecc)).sum())} defined values, NaN-pattern "
          f"mismatches {nan_mismatch}")
    return [(name, "faces+uniform", n, secs)]


# ============================================================================ memory
def peak_memory(rb: RuleBase, x: np.ndarray, chunk_size: int) -> tuple[float, float]:
    """(peak traced MiB during evaluate, MiB of the result arrays)."""
    engine = rb.compile(chunk_size=chunk_size)
    engine.evaluate(x[:1000])
    tracemalloc.start()
    tracemalloc.reset_peak()
    res = engine.evaluate(x)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    held = sum(np.asarray(a).nbytes for a in (res.codes, res.activations, res.eccentricity,
                                               res.scores, res.class_index))
    return peak / 2**20, held / 2**20


# ============================================================================ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--peer-seconds", type=float, default=15.0)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--rules", default="paper", metavar="NAME|PATH",
                    help="a shipped rule profile or a rule directory (default: paper)")
    ap.add_argument("--hedges", action="store_true",
                    help="time a hedged variant of the rule base: every condition hedged in "
                         "turn (very, somewhat, extremely, seldom, none), every third rule "
                         "with a second condition on its first component")
    ap.add_argument("--fuzzylite8-python", metavar="PYTHON",
                    help="an interpreter with pyfuzzylite 8 (numpy < 2) for the vectorised peer")
    args = ap.parse_args(argv)

    info = machine()
    print("machine: " + "; ".join(f"{k} {v}" for k, v in info.items()))
    print(f"command: python benchmarks/engine.py {' '.join(sys.argv[1:])}".rstrip())
    # The machine may be shared: the load average says whether others competed for it.
    print("load average (1, 5, 15 min) at start: " + _load())
    rb = RuleBase.load(args.rules)
    if args.hedges:
        rb = hedged_variant(rb)
    compiled = rb.to_dict()
    hedged = any(r.hedged for r in rb.rules)
    if hedged and not args.no_peers:
        print("peers skipped: they are built from plain {component: code} rules, and this "
              "rule base has hedges (pyfuzzylite evaluates hedged FLL: tests/test_export.py)")
        args.no_peers = True
    n_rules = sum(len(e["rules"]) for e in compiled["emotions"])
    t = time.perf_counter()
    engine = rb.compile()
    compile_s = time.perf_counter() - t
    hedged_rows = len(engine.hedged_rows)
    print(f"rule base: {rb.profile or rb.source}{' (hedged variant)' if args.hedges else ''}, "
          f"{n_rules} rules, {hedged_rows} hedged membership rows; compile {compile_s * 1000:.0f} ms; "
          f"chunk_size {engine.chunk_size}, n_jobs {engine.n_jobs}"
          + (f", precision {getattr(engine, 'dtype', np.float64)}" if hasattr(engine, "dtype")
             else ""))

    table: list[tuple[str, str, int, float]] = []
    for kind in ("uniform", "faces"):
        x = workload(kind, args.rows, compiled)
        times = time_engine(engine, x, args.repeat)
        best, med = min(times), statistics.median(times)
        res = engine.evaluate(x[:200000])
        fired = float((np.nan_to_num(res.activations) > 0).any(axis=1).mean())
        neutral = float((res.class_index == -1).mean())
        print(f"fuzzyemo {kind:8s} {args.rows:>9,d} rows: best {best:.3f} s "
              f"({args.rows / best:,.0f} rows/s), median {med:.3f} s "
              f"({args.rows / med:,.0f} rows/s); rows firing a rule {fired:.0%}, "
              f"neutral {neutral:.0%}")
        table.append(("fuzzyemo", kind, args.rows, best))

    if not args.no_peers:
        sample = workload("faces", 5000, compiled, seed=1)
        # Mix in uniform rows so the sample also has inactive emotions (NaN centroids).
        sample[1::2] = workload("uniform", 2500, compiled, seed=2)
        ours = rb.compile(precision="double").evaluate(sample).eccentricity \
            if hasattr(engine, "dtype") else engine.evaluate(sample).eccentricity
        ours_default = engine.evaluate(sample).eccentricity
        from _peers import FuzzyLitePeer, SkfuzzyControlPeer

        for make in (lambda: SkfuzzyControlPeer(compiled), lambda: FuzzyLitePeer(compiled)):
            t = time.perf_counter()
            try:
                peer = make()
            except ImportError as exc:
                print(f"peer skipped: {exc}")
                continue
            build_s = time.perf_counter() - t
            n, secs, ecc = run_peer(peer, sample, args.peer_seconds)
            diff, nan_mismatch = compare(ours[:n], ecc)
            diff_default, _ = compare(ours_default[:n], ecc)
            defined = int((~np.isnan(ecc)).sum())
            print(f"{peer.name}: build {build_s:.1f} s; {n} rows in {secs:.2f} s; "
                  f"eccentricity vs fuzzyemo (double): max |diff| {diff:.2e} over {defined} "
                  f"defined values, NaN-pattern mismatches {nan_mismatch}; vs the default "
                  f"engine: {diff_default:.2e}")
            table.append((peer.name, "faces+uniform", n, secs))
        if args.fuzzylite8_python:
            table.extend(fuzzylite8_peer(args.fuzzylite8_python, compiled, rb,
                                         args.peer_seconds))

    base = table[0][2] / table[0][3]
    print()
    print("| engine | workload | rows | seconds | rows/s | ratio vs fuzzyemo (uniform) |")
    print("|---|---|---:|---:|---:|---:|")
    for name, kind, n, secs in table:
        rate = n / secs
        ratio = f"{rate / base:.2f}" if rate >= 0.01 * base else f"1/{base / rate:,.0f}"
        print(f"| {name} | {kind} | {n:,d} | {secs:.3f} | {rate:,.1f} | {ratio} |")

    print(f"\nload average at end of timings: {_load()}")
    if not args.no_memory:
        print()
        print("| rows | chunk_size | peak traced MiB | result arrays MiB | working MiB |")
        print("|---:|---:|---:|---:|---:|")
        default = engine.chunk_size
        runs = [(100_000, default), (1_000_000, default)]
        runs += [(1_000_000, c) for c in (4096, 16384, 65536, 262144) if c != default]
        for n, chunk in runs:
            if n > args.rows:
                continue
            x = workload("faces", n, compiled, seed=3)
            peak, held = peak_memory(rb, x, chunk)
            print(f"| {n:,d} | {chunk:,d} | {peak:.1f} | {held:.1f} | {peak - held:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

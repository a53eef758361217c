"""Serving speed: pair-risk scores per second and forecasts for 10,000 VMs (medians of repeats).

    .venv/bin/python benchmarks/bench_predict_throughput.py [--vms 10000] [--pairs 1000000]

Models are trained first on a synthetic cluster (their size, not their accuracy, sets the speed:
100 rounds of depth-5 trees for the risk model, 150 rounds of depth-6 trees x 4 quantiles for the
forecaster, ``parallel_trees`` trees a round, as in the defaults). Forecasts are timed for one
horizon, for the planner's default (``[plan] horizon_steps``, 1-3 intervals ahead) and for six.
Scoring uses ``inplace_predict`` on float32 arrays, nthread=2.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cotenancy.model import VM, ClusterState, Host, Inventory, Resources, TelemetryWindow
from cotenancy.predict import features as feats
from cotenancy.predict import risk as risk_module
from cotenancy.predict.forecast import HybridForecaster, TrainingConfig, train_forecaster
from cotenancy.predict.history import PairDataset
from cotenancy.predict.risk import XGBoostRiskModel, train_risk

STEP = 300.0


def cluster(n_vms: int, n_hosts: int, window: int, seed: int = 0) -> ClusterState:
    rng = np.random.default_rng(seed)
    t = 1_700_000_000.0 + STEP * np.arange(window)
    size = rng.choice([2000.0, 4000.0, 8000.0], n_vms)
    phase = rng.uniform(0, 2 * np.pi, n_vms)[:, None]
    day = np.sin(2 * np.pi * np.arange(window)[None, :] / 288 + phase)
    cpu = np.clip(size[:, None] * (0.3 + 0.2 * day + rng.normal(0, 0.05, (n_vms, window))), 0, None)
    memory = np.clip(2048 * (0.5 + 0.1 * day), 0, None) + rng.normal(0, 10, (n_vms, window))
    hosts = {
        f"h{i:05d}": Host(f"h{i:05d}", f"h{i}", Resources(cpu=64000.0, memory=262144.0))
        for i in range(n_hosts)
    }
    names = sorted(hosts)
    vms = {
        f"vm{i:06d}": VM(f"vm{i:06d}", f"vm{i}", names[i % n_hosts], Resources(cpu=size[i], memory=4096.0))
        for i in range(n_vms)
    }
    telemetry = TelemetryWindow(sorted(vms), t, {"cpu": cpu, "memory": np.abs(memory)}, STEP)
    inventory = Inventory(hosts=hosts, vms=vms)
    return ClusterState(now=float(t[-1]) + STEP, inventory=inventory, telemetry=telemetry)


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=10_000)
    parser.add_argument("--hosts", type=int, default=1_000)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--chunk", type=int, default=risk_module.SCORE_CHUNK, help="pairs per batch in score_pairs"
    )
    args = parser.parse_args()
    risk_module.SCORE_CHUNK = args.chunk
    rng = np.random.default_rng(1)
    workdir = Path(tempfile.mkdtemp(prefix="cotenancy-bench-"))

    print("training a default-size risk model on synthetic pair features ...", file=sys.stderr)
    rows = 60_000
    x = rng.normal(size=(rows, len(feats.PAIR_FEATURES))).astype(np.float32)
    y = (x[:, 2] + 0.5 * x[:, 5] + rng.normal(0, 0.5, rows)) > 1.5
    data = PairDataset(x, y, np.repeat(np.arange(rows // 100), 100), np.arange(rows), x[:, 1], x[:, 5])
    risk = XGBoostRiskModel(model_path=workdir / "risk.json")
    risk.save(train_risk(data))

    print("training a default-size forecaster on the synthetic cluster ...", file=sys.stderr)
    history = cluster(400, 40, 4 * 288, seed=2)
    forecaster = HybridForecaster(model_path=workdir / "forecast.json")
    forecaster.save(
        train_forecaster(
            history.telemetry.values,
            history.telemetry.timestamps,
            STEP,
            config=TrainingConfig(horizons=(1, 6, 12), max_rows=60_000),
        )
    )

    state = cluster(args.vms, args.hosts, 312)
    n = args.vms
    pairs = rng.integers(0, n, size=(args.pairs, 2))
    candidate = rng.integers(0, args.hosts, size=args.pairs)
    risk.score_pairs(state, pairs[:1000], candidate[:1000])  # builds and caches the round's context
    context_seconds = timed(lambda: (setattr(risk, "_cache", None), risk.context(state)), args.repeats)

    def one_batch() -> np.ndarray:
        x, placed = risk.context(state).features(pairs, candidate)
        return np.where(placed, risk.score_features(x), 0.0)

    if not np.array_equal(one_batch(), risk.score_pairs(state, pairs, candidate)):
        raise SystemExit("score_pairs (in chunks) and the one-batch path disagree")
    # side by side, alternating, so both see the same machine
    batch_times, chunk_times = [], []
    for _ in range(args.repeats):
        batch_times.append(timed(one_batch, 1))
        chunk_times.append(timed(lambda: risk.score_pairs(state, pairs, candidate), 1))
    scoring, batched = statistics.median(chunk_times), statistics.median(batch_times)
    xs, _ = risk.context(state).features(pairs, candidate)
    booster_only = timed(lambda: risk.score_features(xs), args.repeats)
    print(
        f"pair risk: {args.pairs / scoring / 1e6:.2f} M pair scores/s end to end "
        f"(features + XGBoost + calibration; {scoring:.3f} s for {args.pairs:,} pairs on candidate hosts)"
    )
    print(
        f"           {args.pairs / batched / 1e6:.2f} M pair scores/s as one batch, side by side "
        f"({batched:.3f} s; score_pairs / one batch = {scoring / batched:.2f})"
    )
    print(
        f"           {args.pairs / booster_only / 1e6:.2f} M pair scores/s for the model alone "
        f"(inplace_predict float32, nthread=2)"
    )
    print(
        f"           per-round context for {n:,} VMs / {args.hosts:,} hosts: {context_seconds * 1000:.0f} ms"
    )
    for horizons in ((6,), tuple(range(1, 4)), tuple(range(1, 7))):
        seconds = timed(lambda h=horizons: forecaster.forecast(state, h, (0.5, 0.95)), args.repeats)
        print(f"forecast: {n:,} VMs x cpu+memory x horizons {horizons} x p50/p95 in {seconds:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

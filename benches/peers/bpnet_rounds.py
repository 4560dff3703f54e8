#!/usr/bin/env python3
"""Wall time per training epoch of our BPNet example and of bpnet-lite's BPNet on the same
yeast windows, in alternating rounds (ours, theirs, ours, theirs, ...).

  python3 benches/peers/bpnet_rounds.py --peer-python /work/pyenvs/torch311/bin/python \\
      --rounds 3 --epochs 3

Each round runs ``target/release/examples/bpnet --epochs E --export-windows DIR`` (build it
first: ``cargo build --release --example bpnet``) and then ``bpnet_yeast.py --windows DIR
--epochs E`` on the windows it exported (same architecture, optimiser, batch, clipping and
augmentation; see that script). Ours: burn-train's whole fit divided by the epochs
(``seconds_per_epoch`` in its metrics; it includes the validation pass after each epoch and
the checkpoints). Theirs: the median of its per-epoch training times (validation excluded).
Prints one JSON line per run and a summary: per-epoch seconds of each round, the ratio
ours / theirs (median and worst), and both models' test-chromosome measures, computed by
bpnet-lite's ``calculate_performance_measures`` on our exported predictions and on its own.
Round ``r`` runs both with seed ``r - 1`` (the example's ``--seed``; ``bpnet_yeast.py`` reads
it from the exported manifest): the initialisation, the GC-matched background draw and the
batch order change between rounds, so the medians of the held-out measures summarise five
trainings of each model rather than one (with one seed, bpnet-lite's measures repeat exactly
and a single initialisation decides the comparison). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def ours(binary: str, epochs: int, windows: str, out: str, seed: int) -> float:
    run = subprocess.run(
        [binary, "--epochs", str(epochs), "--seed", str(seed), "--export-windows", windows,
         "--out", out],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    for line in run.stdout.splitlines():
        if line.startswith("seconds_per_epoch:"):
            return float(line.split(":")[1])
    raise SystemExit("no seconds_per_epoch in the example's output")


def theirs(python: str, epochs: int, windows: str, threads: int) -> float:
    run = subprocess.run(
        [python, os.path.join(HERE, "bpnet_yeast.py"), "--windows", windows,
         "--epochs", str(epochs), "--torch-threads", str(threads)],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


def held_out(metrics: dict | None) -> dict | None:
    """Test-chromosome measures of one side: profile MNLL and JSD on the peaks, count
    Pearson on the peaks and on all windows (bpnet-lite's calculate_performance_measures)."""
    if not metrics or not metrics.get("profile_default"):
        return None
    prof = metrics["profile_default"]
    return {"profile_mnll": prof["profile_mnll"], "profile_jsd": prof["profile_jsd"],
            "count_pearson_peaks": metrics["count_peaks"]["count_pearson"],
            "count_pearson_all": metrics["count_all"]["count_pearson"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--peer-python", required=True, help="Python with torch and bpnet-lite")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--binary", default=os.path.join(ROOT, "target/release/examples/bpnet"))
    args = p.parse_args()
    ratios, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        windows, out = os.path.join(tmp, "windows"), os.path.join(tmp, "out")
        for r in range(args.rounds):
            a = ours(args.binary, args.epochs, windows, out, seed=r)
            final = theirs(args.peer_python, args.epochs, windows, args.torch_threads)
            b = float(final["median_epoch_seconds"])
            rows.append({"round": r + 1, "seed": r, "ours_s_per_epoch": a, "bpnet_lite_s_per_epoch": b,
                         "ratio": a / b,
                         "ours_test": held_out(final["metrics"].get("ours")),
                         "bpnet_lite_test": held_out(final["metrics"].get("bpnet-lite"))})
            print(json.dumps(rows[-1]), flush=True)
            ratios.append(a / b)
    print(json.dumps({"suite": "bpnet-yeast-rounds", "epochs": args.epochs,
                      "torch_threads": args.torch_threads,
                      "ratio_median": statistics.median(ratios), "ratio_worst": max(ratios)}))


if __name__ == "__main__":
    sys.exit(main())

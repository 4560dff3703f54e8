#!/usr/bin/env python3
"""Our scVI example against scvi-tools' SCVI on the same cells, in alternating rounds.

  python3 benches/peers/scvi_rounds.py --peer-python /work/pyenvs/torch311/bin/python \\
      --rounds 3 [--epochs 300] [--data data/pbmc68k_reduced_labeled]

Each round runs ``target/release/examples/scvi --export-split FILE`` (build it first:
``cargo build --release --example scvi``) and then this script's ``--peer`` mode in the torch
environment on the same training and held-out cells and genes (the split the example wrote).
The peer trains ``scvi.model.SCVI`` with the example's settings: one hidden layer of 128,
10 latent, dropout 0.1, NB likelihood, per-gene dispersion, no batch or layer norm, observed
library size, batch 128, Adam (lr 1e-3, eps 1e-8, no weight decay), the KL weight rising
linearly over the first quarter of the training steps, no validation split or early
stopping. Both train on the training cells only.

Reported per run: seconds of training per epoch (ours: burn-train's fit including its
validation pass after each epoch; theirs: ``model.train``) and the held-out negative ELBO
per cell (ours: 20-sample Monte Carlo estimate; theirs: minus ``model.get_elbo`` on the
held-out cells, one sample). Prints one JSON line per round and a summary with the ratio ours/theirs,
median and worst. Our side needs the standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def ours(binary: str, data: str, epochs: int, split: str, out: str) -> dict:
    run = subprocess.run(
        [binary, "--data", data, "--epochs", str(epochs), "--export-split", split, "--out", out],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    m = dict(line.split(": ", 1) for line in run.stdout.splitlines() if ": " in line)
    return {"s_per_epoch": float(m["train_seconds"]) / epochs,
            "heldout_neg_elbo": float(m["vae_heldout_neg_elbo_per_cell"]),
            "cells_train": int(m["cells_train"]), "genes": int(m["genes"])}


def theirs(python: str, split: str, epochs: int, threads: int) -> dict:
    run = subprocess.run(
        [python, os.path.abspath(__file__), "--peer", split, "--epochs", str(epochs),
         "--torch-threads", str(threads)],
        check=True, capture_output=True, text=True, cwd=ROOT,
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


def read_10x(directory: str):
    """Cells x genes CSR, cell names, gene names (column 2 of features.tsv, as our reader)."""
    import gzip

    import scipy.io

    def lines(name):
        for cand in (name + ".gz", name):
            path = os.path.join(directory, cand)
            if os.path.exists(path):
                opener = gzip.open if cand.endswith(".gz") else open
                with opener(path, "rt") as f:
                    return [ln.rstrip("\n").split("\t") for ln in f if ln.strip()]
        raise FileNotFoundError(os.path.join(directory, name))

    mtx = next(os.path.join(directory, c) for c in ("matrix.mtx.gz", "matrix.mtx")
               if os.path.exists(os.path.join(directory, c)))
    x = scipy.io.mmread(mtx).T.tocsr().astype("float32")
    cells = [r[0] for r in lines("barcodes.tsv")]
    genes = [r[1] if len(r) > 1 else r[0] for r in lines("features.tsv")]
    return x, cells, genes


def peer(args) -> None:
    import importlib.metadata as md

    import anndata
    import numpy as np
    import scvi
    import torch

    torch.set_num_threads(args.torch_threads)
    scvi.settings.seed = 42
    with open(args.peer) as f:
        split = json.load(f)
    x, cells, genes = read_10x(os.path.join(ROOT, split["data"]))
    row = {c: i for i, c in enumerate(cells)}
    col = {g: j for j, g in enumerate(genes)}
    gene_idx = np.array([col[g] for g in split["genes"]])

    def subset(names):
        a = anndata.AnnData(x[np.array([row[c] for c in names])][:, gene_idx])
        a.obs_names, a.var_names = list(names), list(split["genes"])
        return a

    train, heldout = subset(split["train_cells"]), subset(split["heldout_cells"])
    scvi.model.SCVI.setup_anndata(train)
    model = scvi.model.SCVI(train, n_hidden=128, n_latent=10, n_layers=1, dropout_rate=0.1,
                            gene_likelihood="nb", dispersion="gene", use_batch_norm="none",
                            use_layer_norm="none")
    batch = 128
    steps = args.epochs * -(-train.n_obs // batch)
    t0 = time.perf_counter()
    model.train(max_epochs=args.epochs, batch_size=batch, train_size=1.0, accelerator="cpu",
                early_stopping=False, enable_progress_bar=False, check_val_every_n_epoch=None,
                plan_kwargs={"lr": 1e-3, "eps": 1e-8, "weight_decay": 0.0,
                             "n_epochs_kl_warmup": None, "n_steps_kl_warmup": steps // 4,
                             "max_kl_weight": 1.0})
    seconds = time.perf_counter() - t0
    # scvi-tools 1.4 returns the ELBO itself (a log-likelihood bound, negative here).
    elbo = float(model.get_elbo(heldout, batch_size=batch))
    print(json.dumps({"s_per_epoch": seconds / args.epochs, "heldout_neg_elbo": -elbo,
                      "cells_train": train.n_obs, "genes": train.n_vars,
                      "torch_threads": torch.get_num_threads(),
                      "versions": {k: md.version(k) for k in ("scvi-tools", "torch")}}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--peer-python", help="Python with torch and scvi-tools")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--data", default="data/pbmc68k_reduced_labeled")
    p.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--binary", default=os.path.join(ROOT, "target/release/examples/scvi"))
    p.add_argument("--peer", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.peer:
        return peer(args)
    if not args.peer_python:
        p.error("--peer-python is required")
    ratios, elbos = [], []
    with tempfile.TemporaryDirectory() as tmp:
        split, out = os.path.join(tmp, "split.json"), os.path.join(tmp, "out")
        for r in range(args.rounds):
            a = ours(args.binary, args.data, args.epochs, split, out)
            b = theirs(args.peer_python, split, args.epochs, args.torch_threads)
            if (a["cells_train"], a["genes"]) != (b["cells_train"], b["genes"]):
                raise SystemExit(f"different data: ours {a}, theirs {b}")
            ratio = a["s_per_epoch"] / b["s_per_epoch"]
            ratios.append(ratio)
            elbos.append((a["heldout_neg_elbo"], b["heldout_neg_elbo"]))
            print(json.dumps({"round": r + 1, "ours": a, "scvi_tools": b, "ratio": ratio}),
                  flush=True)
    print(json.dumps({"suite": "scvi-rounds", "epochs": args.epochs, "data": args.data,
                      "torch_threads": args.torch_threads,
                      "ratio_median": statistics.median(ratios), "ratio_worst": max(ratios),
                      "ours_neg_elbo_median": statistics.median(e[0] for e in elbos),
                      "theirs_neg_elbo_median": statistics.median(e[1] for e in elbos)}))


if __name__ == "__main__":
    sys.exit(main())

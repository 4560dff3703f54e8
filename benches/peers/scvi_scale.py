#!/usr/bin/env python3
"""scvi-tools' side of benches/scale.rs: one epoch of scvi.model.SCVI on the same atlas.

  python benches/peers/scvi_scale.py target/scale/atlas_100000.h5ad [--threads 2]

Reads the .h5ad into memory (scvi-tools trains from an in-memory AnnData; the file is the
one benches/scale.rs wrote), then trains SCVI with the architecture of examples/scvi:
one hidden layer of 128, 10 latent, dropout 0.1, NB likelihood, per-gene dispersion, no
batch/layer norm, observed library size; Adam lr 1e-3, batch 128, all cells for training
(train_size=1.0), one epoch, CPU. Prints one JSON line: load and train seconds, cells/s
over the training epoch, CPU seconds and peak RSS (ru_maxrss) of this process.

Runs in the torch environment of benches/peers/README.md with scvi-tools installed; prints
a "skipped" record without it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("path")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument(
        "--keep-index-dtypes",
        action="store_true",
        help="train on indptr/indices as written (scipy's slow path for mixed dtypes)",
    )
    p.add_argument("--profile-keys", action="store_true", help="print Lightning's profile")
    p.add_argument(
        "--progress", action="store_true", help="Lightning's progress bar on stderr"
    )
    a = p.parse_args()
    record = {"mode": "train", "impl": "scvi-tools", "source": "memory"}
    try:
        import importlib.metadata as md

        import anndata
        import scvi
        import torch
    except ImportError as e:
        print(json.dumps({**record, "skipped": f"scvi-tools not importable: {e}"}))
        return
    torch.set_num_threads(a.threads)
    scvi.settings.seed = 42
    t0 = time.perf_counter()
    adata = anndata.read_h5ad(a.path)
    # benches/scale.rs streams the file out and so writes `indptr` as int64 next to int32
    # `indices` (valid, and what CELLxGENE files have). scipy then scans every index of the
    # matrix to pick a dtype on each minibatch row selection: 24.7 ms against 0.10 ms per
    # batch of 128 at 10^5 cells, which made scvi-tools quadratic in cells. Give scipy the
    # matched int32 pair it would build itself, so this is scvi-tools' best case.
    x = adata.X
    if a.keep_index_dtypes:
        record["index_dtypes"] = "as written"
    elif x.indptr.dtype != x.indices.dtype and x.nnz < 2**31:
        x.indptr = x.indptr.astype(x.indices.dtype)
        record["index_dtypes"] = "indptr cast to " + str(x.indices.dtype)
    scvi.model.SCVI.setup_anndata(adata)
    model = scvi.model.SCVI(
        adata,
        n_hidden=128,
        n_latent=10,
        n_layers=1,
        dropout_rate=0.1,
        gene_likelihood="nb",
        dispersion="gene",
        use_batch_norm="none",
        use_layer_norm="none",
    )
    from lightning.pytorch.profilers import SimpleProfiler

    profiler = SimpleProfiler()
    # Forward (encoder, sampling, decoder) and loss are timed around the module's own
    # methods; data, backward and the optimiser step come from Lightning's profiler.
    clocks = {"forward": 0.0, "loss": 0.0}

    def timed(fn, phase):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                clocks[phase] += time.perf_counter() - t

        return wrapper

    module = model.module
    module.inference = timed(module.inference, "forward")
    module.generative = timed(module.generative, "forward")
    module.loss = timed(module.loss, "loss")
    t1 = time.perf_counter()
    model.train(
        max_epochs=1,
        batch_size=a.batch,
        train_size=1.0,
        accelerator="cpu",
        plan_kwargs={"lr": 1e-3},
        enable_progress_bar=a.progress,
        profiler=profiler,
    )
    t2 = time.perf_counter()
    spent = {k: sum(v) for k, v in profiler.recorded_durations.items()}

    def hook(suffix):
        return sum(v for k, v in spent.items() if k.endswith(suffix))

    step = hook("optimizer_step")  # runs the closure: training_step, backward
    phases = {
        "data": hook("train_dataloader_next"),
        "forward": clocks["forward"],
        "loss": clocks["loss"],
        "backward": hook("Strategy.backward"),
        "optimizer": step - hook("Strategy.training_step") - hook("Strategy.backward"),
        # the rest of scvi-tools' training_step: its metrics
        "other": hook("Strategy.training_step") - clocks["forward"] - clocks["loss"],
    }
    record["phases_s"] = {k: round(v, 2) for k, v in phases.items()}
    if a.profile_keys:
        record["profiler_s"] = {k: round(v, 3) for k, v in spent.items()}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    n = adata.n_obs
    print(
        json.dumps(
            {
                **record,
                "cells": n,
                "genes": adata.n_vars,
                "batch": a.batch,
                "threads": a.threads,
                "open_s": round(t1 - t0, 2),
                "train_s": round(t2 - t1, 2),
                "cells_per_s": round(n / (t2 - t1)),
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
                "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
                "versions": {
                    k: md.version(k) for k in ("scvi-tools", "torch", "anndata")
                },
                "pid": os.getpid(),
            }
        )
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Train bpnet-lite's real ``BPNet`` on the windows our Rust BPNet example exports, and
report per-epoch training wall time and held-out metrics (ours too, if exported).

Input: ``--windows DIR`` as written by our example:

  manifest.json          input_len, output_len, n_filters, n_layers, trimming,
                         count_loss_weight, epochs, batch_size, lr, seed, grad_clip_norm,
                         reverse_complement, splits.{train,valid,test}.n
  S.sequence.f32         S in train/valid/test: little-endian float32, C order,
                         [n, 4, input_len], one-hot A,C,G,T
  S.profiles.f32         [n, 2, output_len], per-base counts of the two strands
  S.labels.f32           [n], 1.0 = peak window, 0.0 = background window
  ours.test.logits.f32   optional, [n_test, 2, output_len]: our model's profile logits
  ours.test.logcounts.f32  optional, [n_test, 1]: our model's predicted log counts

What is run (float32, CPU, no autocast):

  1. torch.manual_seed(seed); model = bpnetlite.bpnet.BPNet(n_filters, n_layers,
     n_outputs=2, n_control_tracks=0, count_loss_weight, trimming=trimming, verbose=False)
     (input_len - 2*trimming must equal output_len); when the manifest has
     count_bias_init, model.linear.bias is set to it (our example starts the count head at
     the mean training log count). Adam(model.parameters(), lr).
  2. Per epoch, timed with time.perf_counter (training only, validation excluded; batch
     assembly included, as BPNet.fit's train_time includes its DataLoader): a random
     permutation of the train split (torch.randperm) cut into minibatches of batch_size
     (the last one may be partial, like a DataLoader without drop_last); with
     reverse_complement each example independently with probability 1/2 (torch.rand) gets
     X[:, ::-1, ::-1] and y[::-1, ::-1] (torch.flip over channels and positions, as
     bpnetlite.io's generators do). Then, as BPNet.fit's inner loop: optimizer.zero_grad();
     model.train(); logits, logcounts = model(X); _, _, loss =
     bpnetlite.losses._mixture_loss(y, logits, logcounts, count_loss_weight, labels);
     loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1);
     optimizer.step().
     A minibatch without any peak window would make _mixture_loss's profile term the mean
     of an empty tensor (NaN), which would turn every weight into NaN; such a minibatch is
     skipped (no step) and counted in the epoch record ("skipped_peakless_batches").
  3. After each epoch (no grad, model.eval(), batches of batch_size): valid-split
     _mixture_loss(y, logits, logcounts, count_loss_weight) without labels, as BPNet.fit
     validates ("valid_profile_loss", "valid_count_loss"), and with labels
     ("valid_profile_loss_peaks": MNLL over the peak windows only). One JSON line.
  4. Test split predicted (no grad, batches). bpnetlite.performance.
     calculate_performance_measures(logits, true_counts, logcounts, kernel_sigma=7,
     kernel_width=81) on the raw logits (it applies log_softmax per strand itself), once
     with its defaults (no smoothing) and once with smooth_true=True; for the count
     measures once on the peak windows and once on all test windows (peaks + background).
     Profile measures (profile_mnll, profile_jsd, profile_pearson, profile_spearman):
     nan-ignoring mean over (test peak windows x 2 strands), with the number of NaNs left
     out. Count measures (count_pearson, count_spearman, count_mse) over the peak windows
     and over all windows. The same for our exported predictions when present.
  5. Final JSON line (also written to --out): {"suite": "bpnet-lite", "version", "torch",
     "threads", "epochs", "train_seconds_per_epoch", "median_epoch_seconds",
     "metrics": {"bpnet-lite": {...}, "ours": {...} or null}, ...}.

Loading: ``bpnetlite/bpnet.py`` is loaded by file path (``BPNET_SRC=<dir containing
bpnetlite/>`` overrides where), as a submodule of a bare package object whose __path__ is
that directory, so its relative imports (.losses, .performance, .logging) load the real
files while the package's __init__ (which imports chrombpnet and its stack) is not run.
bpnet.py imports h5py, tqdm and tangermeme.predict at its top; none of them is used by
BPNet.__init__, BPNet.forward, _mixture_loss or calculate_performance_measures. Only the
ones that fail to import (ImportError) are replaced, before the load, by stub modules:
  * tangermeme, tangermeme.predict: ``predict`` raises if called (it is used only by
    BPNet.fit / BPNet.predict, which this script does not call);
  * h5py, tqdm: empty modules (tqdm.tqdm raises if called);
  * pandas (imported by bpnetlite/logging.py; BPNet.__init__ only constructs its Logger,
    whose start/add/save, the pandas users, are never called): empty module.
The record's "stubbed" field lists what was stubbed in the run.

Threads: PyTorch's default intra-op thread count unless --torch-threads N. Prints one
JSON object per line on stdout.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import importlib.metadata as md
import importlib.util
import json
import math
import os
import statistics
import sys
import time
import types

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

SUITE = "bpnet-lite"
PKG = "_bpnetlite_peer"
PROFILE_MEASURES = ("profile_mnll", "profile_jsd", "profile_pearson", "profile_spearman")
COUNT_MEASURES = ("count_pearson", "count_spearman", "count_mse")


# --------------------------------------------------------------------------- loading


def _raiser(name):
    def f(*_a, **_k):
        raise RuntimeError(f"{name} is a stub in bpnet_yeast.py and must not be called")

    return f


def _stub(name: str, package: bool = False) -> types.ModuleType:
    """An empty module with a ModuleSpec (torch._dynamo calls find_spec on some names in
    sys.modules, pandas among them, and fails on a module without __spec__)."""
    m = types.ModuleType(name)
    m.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=package)
    if package:
        m.__path__ = []
    sys.modules[name] = m
    return m


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


def _stub_missing() -> list[str]:
    """Insert stub modules for the top-level imports of bpnet.py / logging.py that cannot
    be imported (see the module doc). Returns the names stubbed."""
    stubbed = []
    if not _importable("tangermeme.predict"):
        for k in [k for k in sys.modules if k == "tangermeme" or k.startswith("tangermeme.")]:
            del sys.modules[k]
        tm = _stub("tangermeme", package=True)
        tp = _stub("tangermeme.predict")
        tp.predict = _raiser("tangermeme.predict.predict")
        tm.predict = tp
        stubbed += ["tangermeme", "tangermeme.predict"]
    if not _importable("h5py"):
        _stub("h5py")
        stubbed.append("h5py")
    if not _importable("tqdm"):
        _stub("tqdm").tqdm = _raiser("tqdm.tqdm")
        stubbed.append("tqdm")
    if not _importable("pandas"):
        _stub("pandas")
        stubbed.append("pandas")
    return stubbed


def load_bpnetlite():
    """-> (bpnet module, losses module, performance module, version, stubbed)."""
    src = os.environ.get("BPNET_SRC")
    if src:
        pkg_dir = os.path.join(src, "bpnetlite")
    else:
        spec = importlib.util.find_spec("bpnetlite")
        if spec is None:
            raise SystemExit("bpnet-lite not found: pip install --no-deps bpnet-lite==1.1.0, "
                             "or set BPNET_SRC")
        pkg_dir = list(spec.submodule_search_locations)[0]
    if not os.path.isfile(os.path.join(pkg_dir, "bpnet.py")):
        raise SystemExit(f"no bpnet.py in {pkg_dir}")
    try:
        version = md.version("bpnet-lite")
    except md.PackageNotFoundError:
        version = "unknown"
    stubbed = _stub_missing()
    pkg = types.ModuleType(PKG)
    pkg.__path__ = [pkg_dir]
    pkg.__package__ = PKG
    sys.modules[PKG] = pkg
    bpnet = importlib.import_module(PKG + ".bpnet")
    losses = importlib.import_module(PKG + ".losses")
    performance = importlib.import_module(PKG + ".performance")
    return bpnet, losses, performance, version, stubbed


# --------------------------------------------------------------------------- data


def _read_f32(path, shape):
    a = np.fromfile(path, dtype="<f4")
    want = math.prod(shape)
    if a.size != want:
        raise SystemExit(f"{path}: {a.size} float32 values, expected {want} for shape {shape}")
    return a.reshape(shape).astype(np.float32, copy=False)


def load_windows(d):
    with open(os.path.join(d, "manifest.json")) as f:
        man = json.load(f)
    for k in ("input_len", "output_len", "n_filters", "n_layers", "trimming",
              "count_loss_weight", "epochs", "batch_size", "lr", "seed", "splits"):
        if k not in man:
            raise SystemExit(f"manifest.json: missing {k!r}")
    il, ol = int(man["input_len"]), int(man["output_len"])
    if il - 2 * int(man["trimming"]) != ol:
        raise SystemExit(f"manifest: input_len {il} - 2*trimming {man['trimming']} != "
                         f"output_len {ol}")
    if float(man.get("grad_clip_norm", 1.0)) != 1.0:
        print(f"warning: manifest grad_clip_norm {man['grad_clip_norm']}; BPNet.fit clips at 1, "
              "which is what runs here", file=sys.stderr)
    data = {}
    for s in ("train", "valid", "test"):
        n = int(man["splits"][s]["n"])
        x = _read_f32(os.path.join(d, f"{s}.sequence.f32"), (n, 4, il))
        y = _read_f32(os.path.join(d, f"{s}.profiles.f32"), (n, 2, ol))
        lab = _read_f32(os.path.join(d, f"{s}.labels.f32"), (n,))
        if not np.isin(lab, (0.0, 1.0)).all():
            raise SystemExit(f"{s}.labels.f32: values other than 0.0 / 1.0")
        data[s] = (x, y, lab)
    ours = None
    pl, pc = (os.path.join(d, "ours.test.logits.f32"), os.path.join(d, "ours.test.logcounts.f32"))
    if os.path.exists(pl) or os.path.exists(pc):
        if not (os.path.exists(pl) and os.path.exists(pc)):
            raise SystemExit("need both ours.test.logits.f32 and ours.test.logcounts.f32")
        nt = data["test"][0].shape[0]
        ours = (_read_f32(pl, (nt, 2, ol)), _read_f32(pc, (nt, 1)))
    return man, data, ours


# --------------------------------------------------------------------------- model


def predict(model, x, batch_size):
    import torch

    model.eval()
    lg, lc = [], []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            a, b = model(x[i:i + batch_size])
            lg.append(a)
            lc.append(b)
    return torch.cat(lg), torch.cat(lc)


def _nanmean(t):
    v = t.detach().double().numpy().ravel()
    nan = int(np.isnan(v).sum())
    return (float(np.nanmean(v)) if nan < v.size else None), nan


def evaluate(perf, logits, logcounts, y, labels):
    """calculate_performance_measures on the peak windows (profile + count measures),
    with and without smooth_true, and on all windows (count measures)."""
    peaks = labels == 1
    out = {"n_windows": int(y.shape[0]), "n_peaks": int(peaks.sum())}
    kw = dict(kernel_sigma=7, kernel_width=81)
    for variant, extra in (("default", {}), ("smooth_true", {"smooth_true": True})):
        if out["n_peaks"] == 0:
            out["profile_" + variant] = out["count_peaks"] = None
            continue
        m = perf.calculate_performance_measures(logits[peaks], y[peaks], logcounts[peaks],
                                                **kw, **extra)
        prof = {}
        for k in PROFILE_MEASURES:
            mean, nan = _nanmean(m[k])
            prof[k] = mean
            prof[k + "_nan"] = nan
        out["profile_" + variant] = prof
        cnt = {k: float(m[k].reshape(-1)[0]) for k in COUNT_MEASURES}
        if variant == "default":
            out["count_peaks"] = cnt
    m = perf.calculate_performance_measures(logits, y, logcounts, **kw,
                                            measures=list(COUNT_MEASURES))
    out["count_all"] = {k: float(m[k].reshape(-1)[0]) for k in COUNT_MEASURES}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--windows", required=True, help="directory exported by our BPNet example")
    p.add_argument("--epochs", type=int, default=None, help="default: the manifest's")
    p.add_argument("--seed", type=int, default=None, help="default: the manifest's")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="torch.set_num_threads(N) (default: PyTorch's own, one per core)")
    p.add_argument("--out", default=None, help="also write the final JSON object here")
    args = p.parse_args()

    man, data, ours = load_windows(args.windows)
    bpnet, losses, perf, version, stubbed = load_bpnetlite()
    import torch

    versions = C.torch_setup(args, **{"bpnet-lite": version})
    epochs = int(man["epochs"] if args.epochs is None else args.epochs)
    seed = int(man["seed"] if args.seed is None else args.seed)
    bs = int(man["batch_size"])
    clw = float(man["count_loss_weight"])
    rc = bool(man.get("reverse_complement", False))

    t = {s: tuple(torch.from_numpy(a) for a in data[s]) for s in data}
    x_tr, y_tr, lab_tr = t["train"]
    x_va, y_va, lab_va = t["valid"]
    n_tr = x_tr.shape[0]

    torch.manual_seed(seed)
    model = bpnet.BPNet(n_filters=int(man["n_filters"]), n_layers=int(man["n_layers"]),
                        n_outputs=2, n_control_tracks=0, count_loss_weight=clw,
                        trimming=int(man["trimming"]), verbose=False)
    if man.get("count_bias_init") is not None:
        # As our example: the count head starts at the mean training log count.
        with torch.no_grad():
            model.linear.bias.fill_(float(man["count_bias_init"]))
    optimizer = torch.optim.Adam(model.parameters(), lr=float(man["lr"]))

    load_start = os.getloadavg()[0]
    epoch_s = []
    for epoch in range(epochs):
        tic = time.perf_counter()
        perm = torch.randperm(n_tr)
        flip = torch.rand(n_tr) < 0.5 if rc else None
        prof_l, cnt_l, skipped = [], [], 0
        for i in range(0, n_tr, bs):
            idx = perm[i:i + bs]
            X, y, labels = x_tr[idx], y_tr[idx], lab_tr[idx]
            if rc:
                f = flip[idx]
                if bool(f.any()):
                    X[f] = torch.flip(X[f], [1, 2])
                    y[f] = torch.flip(y[f], [1, 2])
            if not bool((labels == 1).any()):
                skipped += 1
                continue
            optimizer.zero_grad()
            model.train()
            logits, logcounts = model(X)
            pl, cl, loss = losses._mixture_loss(y, logits, logcounts, model.count_loss_weight,
                                                labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1)
            optimizer.step()
            prof_l.append(pl.detach())
            cnt_l.append(cl.detach())
        epoch_s.append(time.perf_counter() - tic)

        lg, lc = predict(model, x_va, bs)
        with torch.no_grad():
            vp, vc, _ = losses._mixture_loss(y_va, lg, lc, model.count_loss_weight)
            vpp = (losses._mixture_loss(y_va, lg, lc, model.count_loss_weight, lab_va)[0]
                   if bool((lab_va == 1).any()) else None)
        tp = float(torch.stack(prof_l).mean()) if prof_l else None
        if tp is not None and not math.isfinite(tp):
            raise SystemExit(f"epoch {epoch}: non-finite training loss")
        C.emit({"epoch": epoch, "train_seconds": round(epoch_s[-1], 6),
                "valid_profile_loss": float(vp), "valid_count_loss": float(vc),
                "valid_profile_loss_peaks": None if vpp is None else float(vpp),
                "train_profile_loss_mean": tp,
                "train_count_loss_mean": float(torch.stack(cnt_l).mean()) if cnt_l else None,
                "batches": math.ceil(n_tr / bs), "skipped_peakless_batches": skipped})

    x_te, y_te, lab_te = t["test"]
    lg, lc = predict(model, x_te, bs)
    metrics = {"bpnet-lite": evaluate(perf, lg, lc, y_te, lab_te), "ours": None}
    if ours is not None:
        metrics["ours"] = evaluate(perf, torch.from_numpy(ours[0]), torch.from_numpy(ours[1]),
                                   y_te, lab_te)

    rec = {"suite": SUITE, "name": "bpnet_yeast", "version": version,
           "torch": versions["torch"], "python": versions["python"],
           "threads": versions["torch_threads"], **C.env_threads(),
           "windows": os.path.abspath(args.windows), "stubbed": stubbed,
           "epochs": epochs, "seed": seed, "batch_size": bs, "lr": float(man["lr"]),
           "count_loss_weight": clw, "reverse_complement": rc,
           "n": {s: int(data[s][0].shape[0]) for s in data},
           "n_params": sum(q.numel() for q in model.parameters()),
           "load1": [round(load_start, 2), round(os.getloadavg()[0], 2)],
           "train_seconds_per_epoch": [round(s, 6) for s in epoch_s],
           "median_epoch_seconds": round(statistics.median(epoch_s), 6) if epoch_s else None,
           "metrics": metrics}
    C.emit(rec)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rec, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Reference values of bpnet-lite 1.1.0's ``calculate_performance_measures`` for the Rust port
(examples/bpnet/measures.rs), written to examples/bpnet/testdata/measures_reference.json.

  /path/to/torch-env/bin/python benches/peers/bpnet_measures_reference.py [--out FILE]

``bpnetlite/performance.py`` (which does ``from .losses import MNLLLoss``) and ``losses.py`` are
loaded by file path as submodules of a stand-in package, so the package's ``__init__`` (the
whole model stack) is never imported. ``BPNET_SRC=<dir containing bpnetlite/>`` overrides
where they are found (as bpnet_bench.py).

Inputs (numpy ``default_rng(0)``, float32 as a model would produce them): n = 6 windows,
2 strands, L = 200 positions.
  counts          Poisson around a footprint (plus strand 5 bp upstream, minus 5 bp
                  downstream of the centre), per-window depth 0.3 ... 3; many ties (zeros);
                  all-zero strands: window 1 strand 1, window 4 strand 0, window 3 both.
  logits          log of the Poisson means + N(0, 1) noise; window 5 strand 0 constant
                  (uniform predicted profile: all predictions tied, Pearson denominator 0);
                  window 0 strand 1 rounded to 0.1 (many tied predictions).
  pred_log_counts [6, 1] log(1 + total) + N(0, 0.5), window 4 set equal to window 2 (a tie);
                  pred_log_counts_2 [6, 2] the same plus a second, noisier column.

Cases: (smooth_true, smooth_predictions) in {FF, TF, FT, TT} with bpnet-lite's default
kernel (sigma 7, width 81), TT with an even kernel (sigma 3, width 20), and FF with the
two-column pred_log_counts_2. Each case is evaluated in three variants:

  f64_stable  float64 tensors through performance.py with its hard-coded float32 casts
              made float64 (the smoothing kernel's ``torch.arange(..., dtype=torch.float32)``,
              ``batched_smoothed_function``'s ``torch.empty(...)`` result buffer, and
              ``spearman_corr``'s ``.type(torch.float32)`` ranks) and its ``argsort()`` made
              ``argsort(stable=True)``. This is what the Rust port computes (to ~1e-12).
  f32_stable  float32 tensors through the unmodified code except ``argsort(stable=True)``:
              bpnet-lite's own float32 arithmetic, without the tie-order lottery below.
  f32         float32 tensors through the real, unmodified performance.py.

Why ``stable=True``: spearman_corr's docstring says ties are broken by position, but
``torch.argsort()`` (stable=False) is not stable on CPU for rows longer than 16 (PyTorch
2.x; the permutation of tied elements is implementation- and CPU-dependent), so the f32
variant's Spearman values on tied data are not reproducible across machines.

Also ``smooth``: ``smooth_gaussian1d`` (float64 kernel) on single tracks for odd and even
widths, a width larger than the track, and width 1.

NaN is written as null, +-inf as the strings "inf" / "-inf" (JSON has no NaN).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as md
import importlib.util
import json
import math
import os
import platform
import sys
import types

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_OUT = os.path.join(ROOT, "examples", "bpnet", "testdata", "measures_reference.json")
PKG = "_bpnetlite_measures_ref"

MEASURES = ["profile_mnll", "profile_jsd", "profile_pearson", "profile_spearman",
            "count_pearson", "count_spearman", "count_mse"]

# (old, new, expected number of occurrences) in performance.py
STABLE_PATCH = [
    ("ranks1 = arr1.argsort().argsort()", "ranks1 = arr1.argsort(stable=True).argsort(stable=True)", 1),
    ("ranks2 = arr2.argsort().argsort()", "ranks2 = arr2.argsort(stable=True).argsort(stable=True)", 1),
]
F64_PATCH = [
    ("torch.arange(kernel_width, dtype=torch.float32,", "torch.arange(kernel_width, dtype=x.dtype,", 1),
    ("results = torch.empty(*logps.shape[:2])",
     "results = torch.empty(*logps.shape[:2], dtype=logps.dtype)", 1),
    (".argsort(stable=True).type(torch.float32)\n\tranks2",
     ".argsort(stable=True).type(arr1.dtype)\n\tranks2", 1),
    (".argsort(stable=True).type(torch.float32)\n\treturn",
     ".argsort(stable=True).type(arr2.dtype)\n\treturn", 1),
]


def bpnet_dir() -> tuple[str, str]:
    src = os.environ.get("BPNET_SRC")
    if src:
        path = os.path.join(src, "bpnetlite")
    else:
        spec = importlib.util.find_spec("bpnetlite")
        if spec is None:
            raise SystemExit("bpnet-lite not found: pip install --no-deps bpnet-lite==1.1.0, "
                             "or set BPNET_SRC")
        path = list(spec.submodule_search_locations)[0]
    try:
        version = md.version("bpnet-lite")
    except md.PackageNotFoundError:
        version = "unknown"
    return path, version


def load_performance(path: str):
    """The real performance.py, plus the two patched copies described in the docstring."""
    pkg = types.ModuleType(PKG)
    pkg.__path__ = [path]
    sys.modules[PKG] = pkg
    real = importlib.import_module(PKG + ".performance")  # `from .losses import` resolves

    file = os.path.join(path, "performance.py")
    with open(file) as f:
        source = f.read()

    def patched(name, patches):
        text = source
        for old, new, count in patches:
            found = text.count(old)
            if found != count:
                raise SystemExit(f"performance.py: expected {count}x {old!r}, found {found} "
                                 "(not bpnet-lite 1.1.0?)")
            text = text.replace(old, new)
        mod = types.ModuleType(f"{PKG}.{name}")
        mod.__package__ = PKG
        mod.__file__ = file
        sys.modules[mod.__name__] = mod
        exec(compile(text, f"{file} [{name}]", "exec"), mod.__dict__)
        return mod

    stable = patched("performance_stable", STABLE_PATCH)
    f64 = patched("performance_f64_stable", STABLE_PATCH + F64_PATCH)
    return real, stable, f64


def make_inputs():
    rng = np.random.default_rng(0)
    n, s, length = 6, 2, 200
    pos = np.arange(length)
    depth = np.array([0.3, 1.0, 3.0, 0.5, 0.8, 2.0])
    lam = np.empty((n, s, length))
    for w in range(n):
        for k, shift in enumerate((-5, 5)):
            lam[w, k] = depth[w] * (0.2 + 4.0 * np.exp(-0.5 * ((pos - 100 - shift) / 15.0) ** 2))
    counts = rng.poisson(lam).astype(np.float32)
    counts[1, 1, :] = 0
    counts[3, :, :] = 0
    counts[4, 0, :] = 0
    logits = (np.log(lam) + rng.normal(0.0, 1.0, size=lam.shape)).astype(np.float32)
    logits[5, 0, :] = 0.25
    logits[0, 1, :] = np.round(logits[0, 1, :], 1)
    total = counts.astype(np.float64).sum(axis=(1, 2))
    pred = (np.log1p(total) + rng.normal(0.0, 0.5, size=n)).astype(np.float32).reshape(n, 1)
    pred[4] = pred[2]
    pred2 = np.concatenate(
        [pred, (pred[:, 0] + rng.normal(0.0, 1.0, size=n)).astype(np.float32).reshape(n, 1)],
        axis=1)
    return dict(logits=logits, counts=counts, pred_log_counts=pred, pred_log_counts_2=pred2)


def num(x: float):
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def flat(a) -> list:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    return [num(v) for v in a.reshape(-1).tolist()]


def evaluate(mod, inputs, pred_key, dtype, smooth_true, smooth_predictions, sigma, width):
    t = {k: torch.from_numpy(inputs[k].astype(dtype)) for k in ("logits", "counts", pred_key)}
    out = mod.calculate_performance_measures(
        t["logits"], t["counts"], t[pred_key], kernel_sigma=sigma, kernel_width=width,
        smooth_true=smooth_true, smooth_predictions=smooth_predictions)
    res = {}
    for m in MEASURES:
        v = out[m]
        want = torch.float64 if dtype == np.float64 else torch.float32
        if v.dtype != want:
            raise SystemExit(f"{m}: dtype {v.dtype}, expected {want}")
        res[m] = flat(v)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)

    path, version = bpnet_dir()
    real, stable, f64 = load_performance(path)
    inputs = make_inputs()

    option_sets = [
        ("FF", False, False, 7.0, 81, "pred_log_counts"),
        ("TF", True, False, 7.0, 81, "pred_log_counts"),
        ("FT", False, True, 7.0, 81, "pred_log_counts"),
        ("TT", True, True, 7.0, 81, "pred_log_counts"),
        ("TT_even_kernel", True, True, 3.0, 20, "pred_log_counts"),
        ("FF_two_count_outputs", False, False, 7.0, 81, "pred_log_counts_2"),
    ]
    variants = [("f64_stable", f64, np.float64), ("f32_stable", stable, np.float32),
                ("f32", real, np.float32)]
    cases = []
    for name, st, sp, sigma, width, pred_key in option_sets:
        for variant, mod, dtype in variants:
            case = dict(name=name, variant=variant, pred_log_counts=pred_key,
                        n_outputs=int(inputs[pred_key].shape[1]),
                        options=dict(smooth_true=st, smooth_predictions=sp, sigma=sigma,
                                     width=width))
            case.update(evaluate(mod, inputs, pred_key, dtype, st, sp, sigma, width))
            cases.append(case)

    # smooth_gaussian1d on single tracks, float64 kernel (patched module).
    track = inputs["counts"][2, 0].astype(np.float64)
    short = inputs["counts"][2, 1, 90:120].astype(np.float64)
    smooth = []
    for x, sigma, width in [(track, 7.0, 81), (track, 7.0, 80), (track, 1.5, 5), (track, 1.5, 4),
                            (track, 1.0, 1), (short, 7.0, 81), (short, 2.0, 40)]:
        out = f64.smooth_gaussian1d(torch.from_numpy(x).reshape(1, 1, -1), sigma, width)
        smooth.append(dict(sigma=sigma, width=width, x=flat(x), out=flat(out)))

    n, s, length = inputs["counts"].shape
    doc = dict(
        generator="benches/peers/bpnet_measures_reference.py",
        bpnet_lite_version=version,
        torch_version=torch.__version__,
        numpy_version=np.__version__,
        torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
        machine=platform.machine(),
        shape=dict(n=n, strands=s, len=length),
        inputs={k: flat(v) for k, v in inputs.items()},
        cases=cases,
        smooth=smooth,
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, allow_nan=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out} (bpnet-lite {version}, torch {torch.__version__}, "
          f"{len(cases)} cases, {len(smooth)} smoothing tracks)")


if __name__ == "__main__":
    main()

"""Shared pieces of the peer benchmarks: seeded inputs, timing, memory, JSON output.

Needs only the standard library and numpy, so both reference environments (JAX and
PyTorch) import it and build bit-identical inputs from the same seeds.

Timing: after a warm-up (which includes JAX compilation), every repetition is timed on
its own with ``time.perf_counter`` around one complete forward+backward that waits for
its results (``block_until_ready`` / the synchronous PyTorch CPU backward). The script
reports the median and the min/max over the repetitions.

Peak memory (``peak_mem_mb``): the rise of the process's resident-set high-water mark
(Linux ``VmHWM``) during one forward+backward, above the resident set just before it,
measured in a separate process (``--mem-only``, see ``drive``) started with glibc's mmap
threshold pinned at 128 KiB (``MALLOC_MMAP_THRESHOLD_``), so that every large buffer is a
fresh mapping whose pages count when touched, instead of freed-but-resident heap memory
from the warm-up being reused unseen. After the warm-up (JAX compilation included),
Python garbage is collected, ``malloc_trim(0)`` hands free heap pages back and the
high-water mark is reset through ``/proc/self/clear_refs``. The inputs are resident
before the call and so are *not* counted; what is counted is everything the call itself
touches: intermediates, saved activations, gradients, outputs. It is a process-level
figure (page granularity, includes allocator slack), measured the same way for every
library. The timings come from processes with the default allocator settings.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import statistics
import sys
import time

import numpy as np

# --------------------------------------------------------------------------- inputs


def f32(x):
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


def scrna_nb(seed: int, cells: int = 512, genes: int = 2000):
    """scRNA-like NB data, float32: per-gene log-normal mean expression times a
    log-normal per-cell size factor, per-gene inverse dispersion ``theta`` (G,),
    counts drawn from NB(mu, theta); most entries are zero, as in droplet data."""
    rng = np.random.default_rng(seed)
    gene_mean = np.exp(rng.normal(-1.0, 1.5, genes))          # median ~0.37, long tail
    size = np.exp(rng.normal(0.0, 0.5, (cells, 1)))           # library-size factor
    mu = f32(np.clip(size * gene_mean, 1e-4, 1e4))
    theta = f32(np.exp(rng.uniform(np.log(0.3), np.log(30.0), genes)))
    th = np.broadcast_to(theta.astype(np.float64), mu.shape)
    counts = f32(rng.negative_binomial(th, th / (th + mu.astype(np.float64))))
    pi_logits = f32(rng.normal(-1.5, 1.0, (cells, genes)))
    return counts, mu, theta, pi_logits


def vae_inputs(seed: int, cells: int = 512, genes: int = 2000, latent: int = 10):
    """VAE ELBO inputs: x = log1p of scRNA-like counts, a noisy reconstruction, and
    encoder mean / log-variance for a 10-d latent."""
    counts, _, _, _ = scrna_nb(seed, cells, genes)
    rng = np.random.default_rng(seed + 1)
    x = f32(np.log1p(counts))
    x_recon = f32(x + rng.normal(0.0, 0.3, x.shape))
    mean = f32(rng.normal(0.0, 1.0, (cells, latent)))
    logvar = f32(rng.normal(0.0, 0.5, (cells, latent)))
    return x, x_recon, mean, logvar


def _softmax(a, axis=-1):
    a = a - a.max(axis=axis, keepdims=True)
    e = np.exp(a)
    return e / e.sum(axis=axis, keepdims=True)


def hmm_inputs(seed: int, batch: int, length: int, states: int, symbols: int):
    """Raw HMM parameters (DiffBio's parameterisation: normalised by log_softmax) and
    observation sequences (batch, length) sampled from that HMM (vectorised over the
    batch)."""
    rng = np.random.default_rng(seed)
    log_initial = f32(rng.normal(0.0, 0.5, states))
    log_transitions = f32(rng.normal(0.0, 1.0, (states, states)) + 2.0 * np.eye(states))
    log_emissions = f32(rng.normal(0.0, 1.0, (states, symbols)))
    pi = _softmax(log_initial.astype(np.float64))
    a_cum = np.cumsum(_softmax(log_transitions.astype(np.float64), -1), -1)
    e_cum = np.cumsum(_softmax(log_emissions.astype(np.float64), -1), -1)
    s = np.minimum(np.searchsorted(np.cumsum(pi), rng.uniform(size=batch)), states - 1)
    obs = np.empty((batch, length), dtype=np.int32)
    for t in range(length):
        u = rng.uniform(size=(2, batch))
        obs[:, t] = np.minimum((u[0][:, None] > e_cum[s]).sum(-1), symbols - 1)
        s = np.minimum((u[1][:, None] > a_cum[s]).sum(-1), states - 1)
    return log_initial, log_transitions, log_emissions, obs


def bpnet_inputs(seed: int, n: int = 64, strands: int = 2, length: int = 1000):
    """BPNet profile/count data: Poisson read counts per position with a per-region
    rate, unnormalised profile logits, predicted log total counts (n, 1), and peak
    labels (n,) with about half the regions labelled 1."""
    rng = np.random.default_rng(seed)
    y = f32(rng.poisson(rng.uniform(0.2, 4.0, (n, 1, 1)), (n, strands, length)))
    logits = f32(rng.normal(0.0, 1.0, (n, strands, length)))
    total = y.reshape(n, -1).sum(-1, keepdims=True).astype(np.float64)
    logcounts = f32(np.log1p(total) + rng.normal(0.0, 0.5, (n, 1)))
    labels = rng.integers(0, 2, n).astype(np.int64)
    labels[0] = 1
    return y, logits, logcounts, labels


def log1p_mse_inputs(seed: int, n: int = 64):
    rng = np.random.default_rng(seed)
    counts = f32(rng.poisson(rng.uniform(1, 500, (n, 1))))
    log_pred = f32(np.log1p(counts) + rng.normal(0.0, 0.7, (n, 1)))
    return log_pred, counts


# --------------------------------------------------------------------------- memory

MMAP_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_delta_mb(step) -> float | None:
    """Rise of VmHWM over VmRSS during one call of ``step`` (see the module doc)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    before = _status_kb("VmRSS")
    if before is None or not _reset_hwm():
        return None
    step()
    hwm = _status_kb("VmHWM")
    if hwm is None:
        return None
    return max(hwm - before, 0) / 1024.0


# --------------------------------------------------------------------------- timing


def time_step(step, min_reps: int, max_reps: int, min_time_s: float):
    times = []
    t_start = time.perf_counter()
    while len(times) < max_reps:
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
        if len(times) >= min_reps and time.perf_counter() - t_start >= min_time_s:
            break
    return times


def run_case(case: dict, step, args, warmup: int = 2, extra: dict | None = None) -> dict:
    """Warm up (compiles), then either time the repetitions (default) or, with
    --mem-only, measure the peak memory of one more call. Returns the record."""
    for _ in range(warmup):
        step()
    rec = dict(case)
    if args.mem_only:
        mem = peak_rss_delta_mb(step)
        rec.update(peak_mem_mb=None if mem is None else round(mem, 2), peak_mem_kind=MEM_KIND)
        return rec
    load_before = os.getloadavg()[0]
    times = time_step(step, args.min_reps, args.max_reps, args.min_time)
    rec.update(
        load1=[round(load_before, 2), round(os.getloadavg()[0], 2)],
        median_ms=float(f"{statistics.median(times):.6g}"),
        min_ms=float(f"{min(times):.6g}"),
        max_ms=float(f"{max(times):.6g}"),
        reps=len(times),
    )
    if extra:
        rec.update(extra)
    return rec


MEM_KIND = "rss_hwm_delta_one_fwd_bwd (MALLOC_MMAP_THRESHOLD_=131072)"


def torch_setup(args, **more) -> dict:
    """Apply --torch-threads, bring autograd and the thread pool up outside any
    measurement, and return the version record."""
    import torch

    if getattr(args, "torch_threads", None):
        torch.set_num_threads(args.torch_threads)
    w = torch.ones(8, requires_grad=True)
    (w * w).sum().backward()
    return {"torch": torch.__version__, "python": sys.version.split()[0],
            "torch_threads": torch.get_num_threads(), **more}


def torch_case(suite, name, shape, library, call, forward, leaves, args, versions) -> dict:
    """Time one PyTorch step: clear the leaves' grads, ``loss = forward()``,
    ``loss.backward()`` (synchronous on CPU)."""

    def step():
        for t in leaves:
            t.grad = None
        loss = forward()
        loss.backward()
        return loss

    loss = float(step().detach())
    if not finite(loss):
        raise RuntimeError(f"{name}: non-finite loss {loss}")
    return run_case(
        {"suite": suite, "name": name, "shape": shape, "library": library, "call": call,
         "dtype": "float32"},
        step, args, extra={"versions": versions, "loss": loss, **env_threads()},
    )


def emit(rec: dict):
    sys.stdout.write(json.dumps(rec) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- driver


def add_common_args(p):
    p.add_argument("--only", default="", help="comma-separated case names to run")
    p.add_argument("--list", action="store_true", help="list the case names and exit")
    p.add_argument("--in-process", action="store_true",
                   help="run every case in this process (default: one subprocess per case, "
                        "so that the memory figures do not see each other's allocations)")
    p.add_argument("--one", default="", help=argparse.SUPPRESS)
    p.add_argument("--mem-only", action="store_true",
                   help="only measure peak memory (all cases in one process, see drive())")
    p.add_argument("--no-mem", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--min-reps", type=int, default=10)
    p.add_argument("--max-reps", type=int, default=1000)
    p.add_argument("--min-time", type=float, default=2.0,
                   help="time repetitions until this many seconds have passed (and at least "
                        "--min-reps repetitions)")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="PyTorch scripts: torch.set_num_threads(N) (default: PyTorch's own default, "
                        "one per core)")
    return p


def _child(script: str, args, extra: list[str], env: dict | None = None):
    """Run this script again in a child process; -> (exit code, JSON records)."""
    import subprocess

    cmd = [sys.executable, script, "--min-reps", str(args.min_reps), "--max-reps",
           str(args.max_reps), "--min-time", str(args.min_time)] + extra
    if args.torch_threads:
        cmd += ["--torch-threads", str(args.torch_threads)]
    p = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True,
                       env=dict(os.environ, **(env or {})))
    return p.returncode, [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]


def _run_here(cases, names, args, suite):
    recs, rc = [], 0
    for name in names:
        try:
            recs.append(cases[name](args))
        except Exception as e:  # noqa: BLE001
            recs.append({"suite": suite, "name": name, "error": f"{type(e).__name__}: {e}"})
            rc = 1
    return rc, recs


def drive(cases: dict, args, script: str, suite: str):
    """Run the selected cases and print one JSON line per case.

    Timing: each case in its own child process of this interpreter (or all in this one
    with --in-process). Memory: one more child process runs every case with glibc's mmap
    threshold pinned at 128 KiB (MALLOC_MMAP_THRESHOLD_, set at process start: large
    buffers are then fresh mappings, so the resident-set rise sees every one instead of
    freed-but-resident heap memory being reused) and its figures are merged in. The
    timing processes run with the default allocator settings."""
    if args.list:
        print("\n".join(cases))
        return 0
    names = [n for n in args.only.split(",") if n] or list(cases)
    unknown = [n for n in names if n not in cases]
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; known: {list(cases)}")
    if args.mem_only and any(os.environ.get(k) != v for k, v in MMAP_ENV.items()):
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, **MMAP_ENV))
    if args.one or args.mem_only or args.in_process:
        rc, recs = _run_here(cases, [args.one] if args.one else names, args, suite)
    else:
        rc, recs = 0, []
        for name in names:
            code, got = _child(script, args, ["--one", name])
            if code != 0 or not got:
                got = got or [{"suite": suite, "name": name, "error": f"case process exited {code}"}]
                rc = 1
            recs += got
    if not (args.one or args.mem_only or args.no_mem):
        code, mem = _child(script, args, ["--mem-only", "--only", ",".join(names)], MMAP_ENV)
        by_name = {r.get("name"): r for r in mem}
        for r in recs:
            m = by_name.get(r.get("name"), {})
            r["peak_mem_mb"] = m.get("peak_mem_mb")
            r["peak_mem_kind"] = m.get("peak_mem_kind", f"memory process failed ({code})")
    for r in recs:
        emit(r)
    return rc


def finite(x) -> bool:
    return math.isfinite(float(x))


def env_threads() -> dict:
    return {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")
            if k in os.environ}

#!/usr/bin/env python3
"""Time our losses against the reference (peer) implementations, alternating; print one table.

    python3 benches/peers/run.py                    # 5 rounds of every row, memory, limits
    python3 benches/peers/run.py --rounds 7 --only nb,zinb --no-mem

A shared machine's load drifts over minutes, so timing all of ours and then all of theirs
compares two different machines. Here every row runs in rounds, ours then theirs, seconds
apart: A, B, A, B, ... (``--rounds``, at least 5). Each round gives one ratio ours/theirs;
the table shows their median, their range and the worst round, and a target counts as met
only if the worst round meets it. The load average is recorded with every measurement.

Ours: one criterion run of the bench binary (``cargo bench --bench losses|hmm --no-run``
builds it once) per round, ``--warm-up-time 1 --measurement-time <--seconds>
--sample-size 20``, filtered to
that benchmark (or, for rows with variants, to all its variants: the fastest is taken and
named); criterion's median. Criterion itself stays the tool for our own regressions:
``cargo bench`` as usual.

Theirs: one process of the peer script per round (``--one <case> --min-time <--seconds>``),
which warms up (compiles) and then times repetitions; the median. The peer scripts run in
the two reference environments (see README.md): --jax-python (DiffBio, Python >= 3.12) and
--torch-python (bpnet-lite, scvi-tools), by default $PEERS_VENVS/jax312/bin/python and
$PEERS_VENVS/torch311/bin/python with PEERS_VENVS defaulting to /work/pyenvs.

Limit: the least time the row's work can take on this machine, max(bytes / bandwidth,
flops / peak). Bytes: every input read once and every gradient written once (float32,
int32 symbols); flops: the formula's arithmetic with each transcendental function counted
as one operation (a lower bound). Bandwidth (torch ``add`` over 3 x 256 MiB, all cores) and
peak (torch ``mm`` 2048 x 2048 float32, all cores) are measured at the start of the run.

End to end (unless --no-e2e): ``scvi_rounds.py`` (our scVI example against scvi-tools'
SCVI) and ``bpnet_rounds.py`` (our BPNet example against bpnet-lite's BPNet), each with
--rounds alternating rounds, seconds of training per epoch and both sides' held-out metrics.

Memory (unless --no-mem): ``cargo bench --bench memory`` (our peak heap per step) and each
peer script's --mem-only run, once, after the timing rounds.

Writes <target>/peers/rounds.jsonl (every measurement), <target>/peers/table.md (the table).
Needs only the Python standard library itself.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# benchmark, shape, ours (criterion "group/id", in cargo bench BENCH), peer (suite, name),
# target ratio ours/theirs (None: for information only), whether criterion variants
# "<id>_<suffix>" count (the fastest is taken and named), work (bytes, flops) for the limit.
B, G, L = 512, 2000, 10  # cells, genes, latent
N = 64 * 2 * 1000  # BPNet profile elements
ROWS = [
    # benchmark, shape, bench, ours id, suite, peer name, target, variants, (bytes, flops)
    ("NB", "512x2000, theta (2000)", "losses", "nb/fwd_bwd_512x2000", "diffbio", "nb", 0.5,
     False, (4 * (3 * B * G + 2 * G), 25 * B * G)),
    ("NB", "512x2000, theta (2000)", "losses", "nb/fwd_bwd_512x2000", "scvi-tools", "nb_scvi",
     None, False, (4 * (3 * B * G + 2 * G), 25 * B * G)),
    ("ZINB", "512x2000, theta (2000)", "losses", "zinb/fwd_bwd_512x2000", "diffbio", "zinb", 0.5,
     False, (4 * (6 * B * G + 2 * G), 35 * B * G)),
    ("ZINB", "512x2000, theta (2000)", "losses", "zinb/fwd_bwd_512x2000", "scvi-tools",
     "zinb_scvi", None, False, (4 * (6 * B * G + 2 * G), 35 * B * G)),
    ("VAE ELBO", "512x2000 + latent 512x10", "losses", "vae/fwd_bwd_512x2000_l10", "diffbio",
     "vae", 0.5, False, (4 * (3 * B * G + 4 * B * L), 5 * B * G + 12 * B * L)),
    # forward and backward recursions: 2 S^2 multiply-adds per step each
    ("HMM", "B=64 T=1000 S=4 E=4", "hmm", "hmm/fwd_bwd_b64_t1000_s4", "diffbio",
     "hmm_b64_t1000_s4_e4", 0.5, True, (4 * 64 * 1000, 8 * 64 * 1000 * 16)),
    ("HMM", "B=8 T=10000 S=8 E=4", "hmm", "hmm/fwd_bwd_b8_t10000_s8", "diffbio",
     "hmm_b8_t10000_s8_e4", 0.5, True, (4 * 8 * 10000, 8 * 8 * 10000 * 64)),
    ("MNLL", "64x2x1000 (log_softmax+MNLL)", "losses", "mnll/fwd_bwd_64x2x1000", "bpnet-lite",
     "mnll", 0.5, False, (12 * N, 10 * N)),
    ("MNLL", "64x2000 (MNLL on logps)", "losses", "mnll/fwd_bwd_64x2000_log_probs",
     "bpnet-lite", "mnll_logps", 0.5, False, (12 * N, 6 * N)),
    ("BPNet mixture", "64x2x1000, labels", "losses", "bpnet_mixture/fwd_bwd_64x2x1000",
     "bpnet-lite", "bpnet_mixture", 0.5, False, (12 * N, 12 * N)),
    ("BPNet mixture", "64x2x1000, no labels", "losses", "bpnet_mixture/fwd_bwd_64x2x1000",
     "bpnet-lite", "bpnet_mixture_nolabels", None, False, (12 * N, 12 * N)),
    ("log1p-MSE", "64x1", "losses", "log1p_mse/fwd_bwd_64", "bpnet-lite", "log1p_mse", 0.5,
     False, (4 * 3 * 64, 6 * 64)),
]

# peer suite -> (script, interpreter)
SUITES = {"diffbio": ("diffbio_bench.py", "jax"), "bpnet-lite": ("bpnet_bench.py", "torch"),
          "scvi-tools": ("scvi_bench.py", "torch")}


def target_dir() -> str:
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")


def criterion_dir() -> str:
    return os.environ.get("CRITERION_HOME") or os.path.join(target_dir(), "criterion")


def load1() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def log(msg: str):
    print(f"[run] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- ours


def bench_executables(benches: list[str]) -> dict[str, str]:
    """Build the bench binaries once; -> {bench name: executable}."""
    cmd = ["cargo", "bench", "--no-run", "--message-format=json"]
    for b in benches:
        cmd += ["--bench", b]
    log(" ".join(cmd))
    p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
    exes = {}
    for line in p.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            if "bench" in msg["target"]["kind"] and msg["target"]["name"] in benches:
                exes[msg["target"]["name"]] = msg["executable"]
    missing = [b for b in benches if b not in exes]
    if missing:
        sys.exit(f"cargo built no executable for {missing}")
    return exes


def read_ours(group_id: str, variants: bool, since: float):
    """-> (median ms, criterion id) of the fastest matching estimate written since `since`."""
    group, _, base = group_id.partition("/")
    gdir = os.path.join(criterion_dir(), group)
    best = None
    for est in glob.glob(os.path.join(gdir, "**", "new", "estimates.json"), recursive=True):
        rel = os.path.relpath(os.path.dirname(os.path.dirname(est)), gdir).replace(os.sep, "/")
        if not (rel == base or (variants and rel.startswith(base + "_"))):
            continue
        if os.path.getmtime(est) < since:
            continue
        with open(est) as f:
            ns = float(json.load(f)["median"]["point_estimate"])
        if best is None or ns < best[0]:
            best = (ns, f"{group}/{rel}")
    return None if best is None else (best[0] / 1e6, best[1])


def ours_once(exe: str, group_id: str, variants: bool, seconds: float) -> dict:
    since = time.time() - 1
    filt = ["^" + group_id + "_"] if variants else ["--exact", group_id]
    cmd = [exe, "--bench", "--noplot", "--warm-up-time", "1", "--measurement-time",
           str(seconds), "--sample-size", "20"] + filt
    before = load1()
    p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, check=False)
    got = read_ours(group_id, variants, since)
    if p.returncode != 0 or got is None:
        return {"error": f"criterion exited {p.returncode}: {p.stdout[-500:]}"}
    return {"ms": got[0], "id": got[1], "load1": [before, load1()]}


def our_memory() -> dict:
    """Run `cargo bench --bench memory`; -> {criterion id: peak MB}."""
    path = os.path.join(target_dir(), "bench-mem.jsonl")
    p = subprocess.run(["cargo", "bench", "--bench", "memory"], cwd=ROOT, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = {}
    if p.returncode == 0 and os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                    out[r["id"]] = float(r["peak_mem_mb"])
                except (ValueError, KeyError, TypeError):
                    pass
    return out


# ----------------------------------------------------------------------------- theirs


def peer_once(python: str, suite: str, name: str, seconds: float, torch_threads) -> dict:
    script = os.path.join(HERE, SUITES[suite][0])
    cmd = [python, script, "--one", name, "--min-time", str(seconds), "--min-reps", "10"]
    if torch_threads:
        cmd += ["--torch-threads", str(torch_threads)]
    before = load1()
    p = subprocess.run(cmd, cwd=HERE, stdout=subprocess.PIPE, text=True, check=False)
    recs = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    r = recs[-1] if recs else {"error": f"peer exited {p.returncode}"}
    if "median_ms" not in r:
        return {"error": r.get("skipped") or r.get("error")}
    return {"ms": r["median_ms"], "reps": r.get("reps"), "load1": [before, load1()],
            "versions": r.get("versions", {})}


def peer_memory(python: str, suite: str, names: list[str]) -> dict:
    script = os.path.join(HERE, SUITES[suite][0])
    p = subprocess.run([python, script, "--mem-only", "--only", ",".join(names)], cwd=HERE,
                       stdout=subprocess.PIPE, text=True, check=False)
    recs = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    return {r.get("name"): r.get("peak_mem_mb") for r in recs}


# ----------------------------------------------------------------------------- end to end

# name, script, our example, extra arguments, what one round is
E2E = [
    ("scVI training", "scvi_rounds.py", "scvi", [],
     "PBMC 700 x 765, 300 epochs, vs scvi-tools SCVI"),
    ("BPNet training", "bpnet_rounds.py", "bpnet", ["--epochs", "3"],
     "yeast ATAC windows, 3 epochs, vs bpnet-lite BPNet"),
]


def end_to_end(script: str, example: str, extra: list[str], torch_python: str, rounds: int,
               out) -> list[dict]:
    """Run one of the alternating end-to-end scripts; -> its per-round records."""
    subprocess.run(["cargo", "build", "--release", "--example", example], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cmd = [sys.executable, os.path.join(HERE, script), "--peer-python", torch_python,
           "--rounds", str(rounds)] + extra
    log(" ".join(cmd[1:]))
    recs = []
    with subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True) as p:
        for line in p.stdout:
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            out.write(json.dumps({"script": script, **r}) + "\n")
            out.flush()
            if "round" in r:
                r["load1"] = load1()
                recs.append(r)
                log(f"{script} round {r['round']}: ratio {r['ratio']:.3f}")
    return recs


def e2e_row(name: str, shape: str, rounds: list[dict]) -> list[str]:
    """Table cells of an end-to-end row (seconds per epoch; target 0.5)."""
    def sides(r):
        if "ours" in r and isinstance(r["ours"], dict):  # scvi_rounds.py
            return r["ours"]["s_per_epoch"], r["scvi_tools"]["s_per_epoch"], "scvi-tools"
        return r["ours_s_per_epoch"], r["bpnet_lite_s_per_epoch"], "bpnet-lite"

    if not rounds:
        return [name, shape, "n/a"] + ["n/a"] * (len(HEADER) - 3)
    ours = [sides(r)[0] for r in rounds]
    theirs = [sides(r)[1] for r in rounds]
    ratios = [r["ratio"] for r in rounds]
    loads = [r["load1"] for r in rounds if r.get("load1") is not None]
    return [name, shape, sides(rounds[0])[2], f"{statistics.median(ours) * 1e3:.0f}",
            f"{statistics.median(theirs) * 1e3:.0f}", *ratio_cells(ratios, 0.5), "-", "-",
            "n/a" if not loads else f"{min(loads):.2f}-{max(loads):.2f}", "-", "-"]


def e2e_metrics(name: str, rounds: list[dict]) -> str | None:
    """One line with both sides' held-out metrics (medians over the rounds)."""
    med = statistics.median
    if not rounds:
        return None
    if "scvi_tools" in rounds[0]:
        return (f"{name}: held-out negative ELBO per cell (median of {len(rounds)}): ours "
                f"{med(r['ours']['heldout_neg_elbo'] for r in rounds):.2f}, scvi-tools "
                f"{med(r['scvi_tools']['heldout_neg_elbo'] for r in rounds):.2f}")
    done = [r for r in rounds if r.get("ours_test") and r.get("bpnet_lite_test")]
    if not done:
        return None
    parts = []
    for key in ("profile_mnll", "profile_jsd", "count_pearson_peaks", "count_pearson_all"):
        parts.append(f"{key} ours {med(r['ours_test'][key] for r in done):.4g} / bpnet-lite "
                     f"{med(r['bpnet_lite_test'][key] for r in done):.4g}")
    return f"{name}: test chromosomes (median of {len(done)}): " + "; ".join(parts)


# ----------------------------------------------------------------------------- limits

LIMITS_SNIPPET = r"""
import json, time, torch
def best(f, n):
    f(); t = []
    for _ in range(n):
        t0 = time.perf_counter(); f(); t.append(time.perf_counter() - t0)
    return min(t)
n = 64 << 20                       # 256 MiB of float32 per array
a, b, c = torch.ones(n), torch.ones(n), torch.empty(n)
bw = 3 * 4 * n / best(lambda: torch.add(a, b, out=c), 5)
m = 2048
x, y = torch.rand(m, m), torch.rand(m, m)
peak = 2 * m ** 3 / best(lambda: torch.mm(x, y), 5)
print(json.dumps({"bandwidth_gb_s": bw / 1e9, "peak_gflop_s": peak / 1e9,
                  "threads": torch.get_num_threads()}))
"""


def machine_limits(python: str) -> dict | None:
    if not os.path.exists(python):
        return None
    p = subprocess.run([python, "-c", LIMITS_SNIPPET], stdout=subprocess.PIPE, text=True,
                       check=False)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def limit_ms(work, machine) -> float | None:
    if machine is None:
        return None
    nbytes, flops = work
    return max(nbytes / (machine["bandwidth_gb_s"] * 1e9), flops / (machine["peak_gflop_s"] * 1e9)) * 1e3


# ----------------------------------------------------------------------------- table


def fmt_ms(x) -> str:
    if x is None:
        return "n/a"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


HEADER = ["benchmark", "shape", "theirs", "ours ms", "theirs ms", "ratio median",
          "ratio range", "worst", "target", "met?", "limit ms", "ours/limit", "load1",
          "ours MB", "theirs MB"]


def ratio_cells(ratios: list[float], target: float | None) -> list[str]:
    """The ratio median, range, worst round, target and whether the worst round meets it."""
    if target is None:
        tgt, met = "info", "-"
    else:
        tgt = f"<= {target:g}x"
        met = "n/a" if not ratios else ("yes" if max(ratios) <= target else "NO")
    if not ratios:
        return ["n/a", "n/a", "n/a", tgt, met]
    return [f"{statistics.median(ratios):.3f}", f"{min(ratios):.3f}-{max(ratios):.3f}",
            f"{max(ratios):.3f}", tgt, met]


def summarise(row, rounds: list[dict], machine, mem_ours: dict,
              mem_theirs: dict) -> tuple[list[str], list[str]]:
    bench, shape, _b, gid, suite, pname, target, _v, work = row
    ok = [r for r in rounds if "ms" in r["ours"] and "ms" in r["theirs"]]
    ratios = [r["ours"]["ms"] / r["theirs"]["ms"] for r in ok]
    ours_ms = statistics.median(r["ours"]["ms"] for r in ok) if ok else None
    theirs_ms = statistics.median(r["theirs"]["ms"] for r in ok) if ok else None
    loads = [x for r in rounds for side in ("ours", "theirs") for x in r[side].get("load1", [])
             if x is not None]
    lim = limit_ms(work, machine)
    ids = sorted({r["ours"]["id"] for r in ok})
    most_used = Counter(r["ours"]["id"] for r in ok).most_common(1)[0][0] if ok else None
    return [bench, shape, f"{suite}:{pname}", fmt_ms(ours_ms), fmt_ms(theirs_ms),
            *ratio_cells(ratios, target), fmt_ms(lim),
            "n/a" if lim is None or ours_ms is None else f"{ours_ms / lim:.1f}",
            "n/a" if not loads else f"{min(loads):.2f}-{max(loads):.2f}",
            fmt_mb(mem_ours.get(most_used) if ok else None),
            fmt_mb(mem_theirs.get((suite, pname)))], ids


def fmt_mb(x) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def render(rows: list[list[str]]) -> str:
    w = [max(len(HEADER[i]), *(len(r[i]) for r in rows)) for i in range(len(HEADER))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(cells)) + " |"

    sep = "|" + "|".join("-" * (n + 2) for n in w) + "|"
    return "\n".join([line(HEADER), sep] + [line(r) for r in rows])


# ----------------------------------------------------------------------------- main


def main():
    venvs = os.environ.get("PEERS_VENVS", "/work/pyenvs")
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jax-python", default=os.environ.get(
        "PEERS_JAX_PYTHON", os.path.join(venvs, "jax312", "bin", "python")))
    ap.add_argument("--torch-python", default=os.environ.get(
        "PEERS_TORCH_PYTHON", os.path.join(venvs, "torch311", "bin", "python")))
    ap.add_argument("--rounds", type=int, default=5, help="rounds per row (at least 5)")
    ap.add_argument("--seconds", type=float, default=2.0,
                    help="measurement time of each side in each round")
    ap.add_argument("--only", default="", help="comma-separated peer case names (rows)")
    ap.add_argument("--no-mem", action="store_true", help="skip the memory runs")
    ap.add_argument("--no-e2e", action="store_true",
                    help="skip the end-to-end training rounds (scvi_rounds.py, bpnet_rounds.py)")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="torch.set_num_threads(N) in the PyTorch peers (default: PyTorch's)")
    args = ap.parse_args()
    if args.rounds < 5:
        sys.exit("--rounds: at least 5 (the worst round decides whether a target is met)")

    only = [n for n in args.only.split(",") if n]
    rows = [r for r in ROWS if not only or r[5] in only]
    pythons = {"jax": args.jax_python, "torch": args.torch_python}
    out_dir = os.path.join(target_dir(), "peers")
    os.makedirs(out_dir, exist_ok=True)
    started = datetime.datetime.now().isoformat(timespec="seconds")
    load_start = load1()

    exes = bench_executables(sorted({r[2] for r in rows}))
    machine = machine_limits(args.torch_python)
    log(f"machine: {machine}")

    results, versions = [], {}
    with open(os.path.join(out_dir, "rounds.jsonl"), "w") as out:
        for row in rows:
            bench, shape, cargo_bench, gid, suite, pname, _t, variants, _w = row
            py = pythons[SUITES[suite][1]]
            rounds = []
            for i in range(args.rounds):
                ours = ours_once(exes[cargo_bench], gid, variants, args.seconds)
                theirs = (peer_once(py, suite, pname, args.seconds, args.torch_threads)
                          if os.path.exists(py) else {"error": f"{py} not found"})
                for k, v in theirs.pop("versions", {}).items():
                    versions[f"{suite} {k}" if k in ("python", "torch_threads") else k] = v
                rec = {"row": f"{bench} {shape} vs {suite}:{pname}", "round": i + 1,
                       "ours": ours, "theirs": theirs}
                out.write(json.dumps(rec) + "\n")
                out.flush()
                rounds.append(rec)
                ratio = (f"{ours['ms'] / theirs['ms']:.3f}" if "ms" in ours and "ms" in theirs
                         else f"error: {ours.get('error') or theirs.get('error')}")
                log(f"{gid} vs {suite}:{pname} round {i + 1}: ours {ours.get('ms')} ms, "
                    f"theirs {theirs.get('ms')} ms, ratio {ratio}")
            results.append((row, rounds))
        e2e = []
        if not args.no_e2e and not only and os.path.exists(args.torch_python):
            for name, script, example, extra, shape in E2E:
                e2e.append((name, shape, end_to_end(script, example, extra, args.torch_python,
                                                    args.rounds, out)))

    mem_ours, mem_theirs = {}, {}
    if not args.no_mem:
        mem_ours = our_memory()
        for suite, (_script, env) in SUITES.items():
            names = [r[5] for r in rows if r[4] == suite]
            if names and os.path.exists(pythons[env]):
                for name, mb in peer_memory(pythons[env], suite, names).items():
                    mem_theirs[(suite, name)] = mb

    table_rows, notes = [], []
    for row, rounds in results:
        cells, ids = summarise(row, rounds, machine, mem_ours, mem_theirs)
        table_rows.append(cells)
        if len(ids) > 1 or (ids and ids[0] != row[3]):
            notes.append(f"{row[3]}: fastest variant per round among {', '.join(ids)}")
        errs = {r[s].get("error") for r in rounds for s in ("ours", "theirs")} - {None}
        notes += [f"{row[4]}:{row[5]}: {e}" for e in errs]
    for name, shape, rounds in e2e:
        table_rows.append(e2e_row(name, shape, rounds))
        line = e2e_metrics(name, rounds)
        if line:
            notes.append(line)
    head = (f"diffbio-burn vs references, {args.rounds} alternating rounds per row: {started}, "
            f"{platform.node()}, {os.cpu_count()} CPUs, load average {load_start} (start) / "
            f"{load1()} (end)")
    mline = ("machine: not measured (no torch interpreter)" if machine is None else
             f"machine: {machine['bandwidth_gb_s']:.1f} GB/s (torch add, 3 x 256 MiB), "
             f"{machine['peak_gflop_s']:.0f} GFLOP/s (torch mm 2048^2 float32), "
             f"{machine['threads']} threads")
    foot = ["ratio = ours/theirs per round (criterion median / peer median, seconds apart); "
            "met = the worst round within the target.",
            "end-to-end rows: ms of training per epoch (scripts' docstrings say what each side "
            "includes), target 0.5x at equal or better held-out metrics (see rounds.jsonl).",
            "limit = max(bytes / bandwidth, flops / peak): inputs read and gradients written "
            "once; transcendentals counted as one flop (a lower bound).",
            mline,
            "MB: peak memory of one forward+backward (ours: heap, benches/memory.rs; theirs: "
            "resident-set rise, see README.md).",
            "peer versions: " + ", ".join(f"{k} {v}" for k, v in versions.items())]
    text = head + "\n\n" + render(table_rows) + "\n\n" + "\n".join(foot + notes) + "\n"
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

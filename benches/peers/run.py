#!/usr/bin/env python3
"""Run our criterion benches and the reference (peer) benchmarks in one go; print one table.

    python3 benches/peers/run.py                 # cargo bench (losses, hmm) + all peers
    python3 benches/peers/run.py --skip-ours     # peers only (ours from the last cargo bench)
    python3 benches/peers/run.py --skip-peers --peers-jsonl target/peers/peers.jsonl

Needs only the Python standard library itself; the peer scripts run in the two reference
environments (see README.md): --jax-python (DiffBio, Python >= 3.12) and --torch-python
(bpnet-lite, scvi-tools), by default $PEERS_VENVS/jax312/bin/python and
$PEERS_VENVS/torch311/bin/python with PEERS_VENVS defaulting to /work/pyenvs.

Ours: the median of criterion's last run, read from
<target>/criterion/<group>/<id>/new/estimates.json (``median.point_estimate``, in ns).
Our peak memory is shown when <target>/bench-mem.jsonl has a line
``{"id": "<group>/<id>", "peak_mem_mb": ...}`` for that bench (optional).
Writes <target>/peers/peers.jsonl (peer records), <target>/peers/table.md (the table).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# benchmark, shape, ours (criterion "group/id") -> peer (suite, name), target ratio
# ours/theirs (None: for information only), whether criterion variants "<id>_<suffix>" / "<id>/<param>" count
# (the best one is taken and named).
ROWS = [
    # benchmark       shape                          ours id                            peer suite    peer name                target variants
    ("NB",            "512x2000, theta (2000)",      "nb/fwd_bwd_512x2000",             "diffbio",    "nb",                     0.5,  False),
    ("NB",            "512x2000, theta (2000)",      "nb/fwd_bwd_512x2000",             "scvi-tools", "nb_scvi",                None, False),
    ("ZINB",          "512x2000, theta (2000)",      "zinb/fwd_bwd_512x2000",           "diffbio",    "zinb",                   0.5,  False),
    ("ZINB",          "512x2000, theta (2000)",      "zinb/fwd_bwd_512x2000",           "scvi-tools", "zinb_scvi",              None, False),
    ("VAE ELBO",      "512x2000 + latent 512x10",    "vae/fwd_bwd_512x2000_l10",        "diffbio",    "vae",                    1.0,  False),
    ("HMM",           "B=64 T=1000 S=4 E=4",         "hmm/fwd_bwd_b64_t1000_s4",        "diffbio",    "hmm_b64_t1000_s4_e4",    0.5,  True),
    ("HMM",           "B=8 T=10000 S=8 E=4",         "hmm/fwd_bwd_b8_t10000_s8",        "diffbio",    "hmm_b8_t10000_s8_e4",    0.5,  True),
    ("MNLL",          "64x2x1000 (log_softmax+MNLL)", "mnll/fwd_bwd_64x2x1000",         "bpnet-lite", "mnll",                   1.0,  False),
    ("MNLL",          "64x2000 (MNLL on logps)",     "mnll/fwd_bwd_64x2000_log_probs",  "bpnet-lite", "mnll_logps",             1.0,  False),
    ("BPNet mixture", "64x2x1000, labels",           "bpnet_mixture/fwd_bwd_64x2x1000", "bpnet-lite", "bpnet_mixture",          1.0,  False),
    ("BPNet mixture", "64x2x1000, no labels",        "bpnet_mixture/fwd_bwd_64x2x1000", "bpnet-lite", "bpnet_mixture_nolabels", None, False),
    ("log1p-MSE",     "64x1",                        "log1p_mse/fwd_bwd_64",            "bpnet-lite", "log1p_mse",              1.0,  False),
]

# peer script -> which interpreter runs it
SCRIPTS = [("diffbio_bench.py", "jax"), ("bpnet_bench.py", "torch"), ("scvi_bench.py", "torch")]
# `memory` writes target/bench-mem.jsonl (our peak memory per case).
CARGO_BENCHES = ["losses", "hmm", "memory"]


def target_dir() -> str:
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")


def criterion_dir() -> str:
    return os.environ.get("CRITERION_HOME") or os.path.join(target_dir(), "criterion")


def load_avg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


# ----------------------------------------------------------------------------- ours


def run_cargo_benches(log_dir: str, extra: list[str]) -> dict:
    status = {}
    for bench in CARGO_BENCHES:
        log = os.path.join(log_dir, f"cargo-bench-{bench}.log")
        cmd = ["cargo", "bench", "--bench", bench] + (["--"] + extra if extra else [])
        print(f"[run] {' '.join(cmd)}  (log: {os.path.relpath(log, ROOT)})", file=sys.stderr, flush=True)
        t0 = time.time()
        with open(log, "w") as f:
            p = subprocess.run(cmd, check=False, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
        status[bench] = p.returncode
        print(f"[run]   exit {p.returncode} after {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        if p.returncode != 0:
            with open(log) as f:
                tail = f.read()[-1500:]
            print(f"[run]   cargo bench --bench {bench} failed; its results are shown as n/a "
                  f"(or stale). Log tail:\n{tail}", file=sys.stderr, flush=True)
    return status


def our_ids(group_id: str, variants: bool) -> list[tuple[str, str]]:
    """(criterion id, estimates.json path) for this bench (and its variants)."""
    group, _, base = group_id.partition("/")
    gdir = os.path.join(criterion_dir(), group)
    found = []
    for est in glob.glob(os.path.join(gdir, "**", "new", "estimates.json"), recursive=True):
        rel = os.path.relpath(os.path.dirname(os.path.dirname(est)), gdir).replace(os.sep, "/")
        if rel == base or (variants and rel.startswith((base + "_", base + "/"))):
            found.append((f"{group}/{rel}", est))
    return sorted(found)


def read_ours(group_id: str, variants: bool, since: float | None):
    """-> (median ms, id used, stale?) or None."""
    best = None
    for cid, est in our_ids(group_id, variants):
        try:
            with open(est) as f:
                ns = float(json.load(f)["median"]["point_estimate"])
        except (OSError, KeyError, ValueError, TypeError):
            continue
        stale = since is not None and os.path.getmtime(est) < since
        if best is None or ns < best[0]:
            best = (ns, cid, stale)
    if best is None:
        return None
    return best[0] / 1e6, best[1], best[2]


def read_our_mem() -> dict:
    path = os.path.join(target_dir(), "bench-mem.jsonl")
    out = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                    out[r["id"]] = float(r["peak_mem_mb"])
                except (ValueError, KeyError, TypeError):
                    pass
    return out


# ----------------------------------------------------------------------------- peers


def run_peers(pythons: dict, peer_args: list[str], only: list[str], out_path: str) -> list[dict]:
    recs = []
    with open(out_path, "w") as out:
        for script, env in SCRIPTS:
            py = pythons[env]
            cmd = [py, os.path.join(HERE, script)] + peer_args
            print(f"[run] {env}: {py} {script} {' '.join(peer_args)}",
                  file=sys.stderr, flush=True)
            if not os.path.exists(py):
                print(f"[run]   interpreter {py} not found: skipped (see README.md for the set-up)",
                      file=sys.stderr, flush=True)
                continue
            if only:
                listed = subprocess.run([py, os.path.join(HERE, script), "--list"], check=False,
                                        stdout=subprocess.PIPE, text=True).stdout.split()
                mine = [n for n in only if n in listed]
                if not mine:
                    continue
                cmd += ["--only", ",".join(mine)]
            t0 = time.time()
            p = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True, cwd=HERE)
            for line in p.stdout.splitlines():
                if not line.startswith("{"):
                    continue
                r = json.loads(line)
                recs.append(r)
                out.write(line + "\n")
                if "median_ms" in r:
                    print(f"[run]   {r['suite']}/{r['name']}: median {r['median_ms']:.4g} ms "
                          f"({r['reps']} reps), peak {r.get('peak_mem_mb')} MB, load {r.get('load1')}",
                          file=sys.stderr)
                else:
                    print(f"[run]   {r['suite']}/{r['name']}: {r.get('skipped') or r.get('error')}",
                          file=sys.stderr)
            print(f"[run]   exit {p.returncode} after {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return recs


def load_peers(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(ln) for ln in f if ln.startswith("{")]


# ----------------------------------------------------------------------------- table


def fmt_ms(x) -> str:
    if x is None:
        return "n/a"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def fmt_mb(x) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def build_table(peers: list[dict], since: float | None) -> tuple[list[list[str]], list[str]]:
    by_name = {(r.get("suite"), r.get("name")): r for r in peers}
    mem = read_our_mem()
    notes = []
    rows = []
    for bench, shape, gid, suite, pname, target, variants in ROWS:
        pr = by_name.get((suite, pname))
        theirs = pr.get("median_ms") if pr else None
        ours = read_ours(gid, variants, since)
        ours_ms, used, stale = (ours if ours else (None, gid, False))
        ours_label = used + (" (stale)" if stale else "")
        if stale:
            notes.append(f"{used}: criterion result older than this run (its cargo bench failed?)")
        ratio = ours_ms / theirs if ours_ms is not None and theirs else None
        if target is None:
            tgt, met = "info", "-"
        else:
            tgt = f"<= {target:g}x"
            met = "n/a" if ratio is None else ("yes" if ratio <= target else "NO")
        rows.append([bench, shape, ours_label, fmt_ms(ours_ms), f"{suite}:{pname}", fmt_ms(theirs),
                     "n/a" if ratio is None else f"{ratio:.3f}", tgt, met,
                     fmt_mb(mem.get(used)), fmt_mb(pr.get("peak_mem_mb") if pr else None)])
        if pr and "median_ms" not in pr:
            notes.append(f"{suite}:{pname}: {pr.get('skipped') or pr.get('error')}")
    return rows, list(dict.fromkeys(notes))


HEADER = ["benchmark", "shape", "ours (criterion id)", "ours ms", "theirs", "theirs ms",
          "ours/theirs", "target", "met?", "ours MB", "theirs MB"]


def render(rows: list[list[str]]) -> str:
    w = [max(len(HEADER[i]), *(len(r[i]) for r in rows)) for i in range(len(HEADER))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(cells)) + " |"

    sep = "|" + "|".join("-" * (n + 2) for n in w) + "|"
    return "\n".join([line(HEADER), sep] + [line(r) for r in rows])


def versions_line(peers: list[dict]) -> str:
    seen = {}
    for r in peers:
        for k, v in (r.get("versions") or {}).items():
            seen.setdefault(f"{r.get('suite')}:{k}" if k == "python" else k, v)
    return ", ".join(f"{k} {v}" for k, v in seen.items())


def main():
    venvs = os.environ.get("PEERS_VENVS", "/work/pyenvs")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jax-python", default=os.environ.get("PEERS_JAX_PYTHON",
                                                           os.path.join(venvs, "jax312", "bin", "python")))
    ap.add_argument("--torch-python", default=os.environ.get("PEERS_TORCH_PYTHON",
                                                             os.path.join(venvs, "torch311", "bin", "python")))
    ap.add_argument("--skip-ours", action="store_true", help="do not run cargo bench (use the last results)")
    ap.add_argument("--skip-peers", action="store_true", help="do not run the peer scripts")
    ap.add_argument("--peers-jsonl", help="with --skip-peers: peer records from an earlier run")
    ap.add_argument("--quick", action="store_true",
                    help="shorter peer runs (--min-time 0.5 --min-reps 5) and criterion --quick")
    ap.add_argument("--only", default="", help="peer case names passed to the peer scripts")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="torch.set_num_threads(N) in the PyTorch peers (default: PyTorch's default)")
    args = ap.parse_args()

    out_dir = os.path.join(target_dir(), "peers")
    os.makedirs(out_dir, exist_ok=True)
    started = time.time()
    load_start = load_avg()
    try:
        if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
            print(f"[run] warning: load average {load_start} on {os.cpu_count()} CPUs: other work is "
                  "running; timings (PyTorch's multi-threaded ops above all) will be inflated",
                  file=sys.stderr, flush=True)
    except OSError:
        pass

    since = None
    if not args.skip_ours:
        since = started
        run_cargo_benches(out_dir, ["--quick"] if args.quick else [])

    peers_path = os.path.join(out_dir, "peers.jsonl")
    if args.skip_peers:
        src = args.peers_jsonl or peers_path
        peers = load_peers(src) if os.path.exists(src) else []
    else:
        peer_args = ["--min-time", "0.5", "--min-reps", "5"] if args.quick else []
        if args.torch_threads:
            peer_args += ["--torch-threads", str(args.torch_threads)]
        peers = run_peers({"jax": args.jax_python, "torch": args.torch_python}, peer_args,
                          [n for n in args.only.split(",") if n], peers_path)

    rows, notes = build_table(peers, since)
    table = render(rows)
    head = (f"diffbio-burn vs references — {datetime.datetime.now().isoformat(timespec='seconds')}, "
            f"{platform.node()}, {os.cpu_count()} CPUs, load average {load_start} (start) / "
            f"{load_avg()} (end)")
    foot = [("ours: criterion median (NdArray backend unless the bench says otherwise); theirs: median "
             "of the peer script's repetitions; ratio = ours/theirs, target = the issue's bound on it."),
            "MB: peak resident-memory rise during one forward+backward (peer scripts; see README.md).",
            f"peer versions: {versions_line(peers)}"] + notes
    text = head + "\n\n" + table + "\n\n" + "\n".join(foot) + "\n"
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

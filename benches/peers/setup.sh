#!/usr/bin/env bash
# Create the two reference environments for the peer benchmarks.
#
#   benches/peers/setup.sh [VENVS_DIR]      (default: $PEERS_VENVS, else /work/pyenvs)
#
# VENVS_DIR/jax312    Python >= 3.12: diffbio 0.1.9 (JAX)          -> diffbio_bench.py
# VENVS_DIR/torch311  Python 3.11:    torch, bpnet-lite, scvi-tools -> bpnet_bench.py, scvi_bench.py
#
# Interpreters: $PYTHON312 (any Python >= 3.12) and $PYTHON311, else found on PATH or
# among pyenv's installed versions.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venvs="${1:-${PEERS_VENVS:-/work/pyenvs}}"

# find_python MIN_MINOR MAX_MINOR [candidates...]: first that runs and has 3.MIN..3.MAX
find_python() {
    local lo="$1" hi="$2"; shift 2
    local c
    for c in "$@"; do
        [ -n "$c" ] || continue
        if "$c" -c "import sys; sys.exit(not ((3, $lo) <= sys.version_info[:2] <= (3, $hi)))" 2>/dev/null; then
            echo "$c"; return 0
        fi
    done
    return 1
}
pyenv_root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
shopt -s nullglob
py312="$(find_python 12 99 "${PYTHON312:-}" python3.12 python3.13 python3.14 python3 \
          "$pyenv_root"/versions/3.1[2-9]*/bin/python3)" || {
    echo "no Python >= 3.12 found: set PYTHON312=/path/to/python3.12 (see README.md)" >&2; exit 1; }
py311="$(find_python 11 11 "${PYTHON311:-}" python3.11 python3 "$pyenv_root"/versions/3.11*/bin/python3)" || {
    echo "no Python 3.11 found: set PYTHON311=/path/to/python3.11" >&2; exit 1; }
echo "JAX env:   $py312 ($("$py312" --version))"
echo "torch env: $py311 ($("$py311" --version))"

mkdir -p "$venvs"
"$py312" -m venv "$venvs/jax312"
"$venvs/jax312/bin/python" -m pip install --upgrade pip
"$venvs/jax312/bin/python" -m pip install -r "$here/requirements-jax.txt"

"$py311" -m venv "$venvs/torch311"
"$venvs/torch311/bin/python" -m pip install --upgrade pip
"$venvs/torch311/bin/python" -m pip install -r "$here/requirements-torch.txt"
"$venvs/torch311/bin/python" -m pip install --no-deps -r "$here/requirements-bpnet.txt"

echo "done: PEERS_VENVS=$venvs python3 benches/peers/run.py"

#!/usr/bin/env python3
"""Time scvi-tools' NB / ZINB log-likelihoods (PyTorch, CPU): forward + backward.

scvi-tools' ``log_zinb_positive`` is the ZINB the fixtures follow (DiffBio's own ZINB has
a soft zero mask, see diffbio_bench.py); ``log_nb_positive`` gives the PyTorch point of
comparison for NB. Same seeded scRNA-like inputs as diffbio_bench.py.

  zinb_scvi   -log_zinb_positive(counts, mu, theta[2000], pi_logits, eps=1e-8).mean();
              grads w.r.t. mu, theta, pi_logits (the fixtures' zinb case)
  nb_scvi     -log_nb_positive(counts, mu, theta[2000], eps=1e-8).mean();
              grads w.r.t. mu, theta

float32 on CPU, PyTorch's default thread count unless --torch-threads N (reported). Runs in the PyTorch
environment; if scvi-tools is not installed each case prints a record with "skipped".
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

SUITE = "scvi-tools"


def _setup(args):
    import importlib.metadata as md

    try:
        from scvi.distributions._negative_binomial import log_nb_positive, log_zinb_positive
    except ImportError as e:
        return None, None, {"skipped": f"scvi-tools not importable: {e}"}
    return log_nb_positive, log_zinb_positive, C.torch_setup(args, **{"scvi-tools": md.version("scvi-tools")})


def case_zinb(args):
    import torch

    _, zinb, ver = _setup(args)
    if zinb is None:
        return {"suite": SUITE, "name": "zinb_scvi", "shape": "512x2000", **ver}
    counts, mu, theta, pi_logits = C.scrna_nb(seed=1)
    x = torch.from_numpy(counts)
    m = torch.from_numpy(mu).requires_grad_(True)
    th = torch.from_numpy(theta).requires_grad_(True)
    pl = torch.from_numpy(pi_logits).requires_grad_(True)

    def fwd():
        return -zinb(x, m, th, pl, eps=1e-8).mean()

    return C.torch_case(SUITE, "zinb_scvi", "512x2000", "scvi-tools (PyTorch, CPU)",
                        "-log_zinb_positive(counts, mu, theta[2000], pi_logits, eps=1e-8).mean(); "
                        "backward to mu, theta, pi_logits", fwd, [m, th, pl], args, ver)


def case_nb(args):
    import torch

    nb, _, ver = _setup(args)
    if nb is None:
        return {"suite": SUITE, "name": "nb_scvi", "shape": "512x2000", **ver}
    counts, mu, theta, _ = C.scrna_nb(seed=1)
    x = torch.from_numpy(counts)
    m = torch.from_numpy(mu).requires_grad_(True)
    th = torch.from_numpy(theta).requires_grad_(True)

    def fwd():
        return -nb(x, m, th, eps=1e-8).mean()

    return C.torch_case(SUITE, "nb_scvi", "512x2000", "scvi-tools (PyTorch, CPU)",
                        "-log_nb_positive(counts, mu, theta[2000], eps=1e-8).mean(); "
                        "backward to mu, theta", fwd, [m, th], args, ver)


CASES = {"zinb_scvi": case_zinb, "nb_scvi": case_nb}


def main():
    p = C.add_common_args(argparse.ArgumentParser(description=__doc__,
                                                  formatter_class=argparse.RawDescriptionHelpFormatter))
    args = p.parse_args()
    return C.drive(CASES, args, os.path.abspath(__file__), SUITE)


if __name__ == "__main__":
    sys.exit(main())

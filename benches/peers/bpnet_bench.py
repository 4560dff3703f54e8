#!/usr/bin/env python3
"""Time bpnet-lite's losses (PyTorch, CPU): forward + backward of the real library calls.

``bpnetlite/losses.py`` is loaded by file path, as the fixture generator does
(shared/reference/generate.py): the package's ``__init__`` imports the whole model stack,
the losses need only torch. ``BPNET_SRC=<dir containing bpnetlite/>`` overrides where.

  mnll                    shape (64, 2, 1000), as the mixture loss uses MNLL: logits
                          flattened over strands x positions, log_softmax, then
                          MNLLLoss(logps, counts).mean(); grad w.r.t. the logits
  mnll_logps              MNLLLoss(logps, counts) alone on normalised logps (64, 2000)
                          (the fixtures' multinomial_nll case); grad of nll.sum() w.r.t. logps
  bpnet_mixture           _mixture_loss(y, logits, logcounts, count_loss_weight=1.0, labels)
                          with y, logits (64, 2, 1000), logcounts (64, 1), labels (64,)
                          (about half 1); grads of total w.r.t. logits, logcounts
  bpnet_mixture_nolabels  the same with labels=None
  log1p_mse               log1pMSELoss(log_pred (64, 1), counts (64, 1)); grad of
                          loss.mean() w.r.t. log_pred

float32 on CPU with PyTorch's default intra-op thread count (one per core) unless
--torch-threads N is given; torch.get_num_threads() is reported in every
record. Prints one JSON object per line.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

SUITE = "bpnet-lite"


def load_bpnet_losses():
    """bpnetlite/losses.py loaded by path (same as generate.py's _load_bpnet_losses)."""
    import importlib.metadata as md

    src = os.environ.get("BPNET_SRC")
    if src:
        path = os.path.join(src, "bpnetlite", "losses.py")
    else:
        spec = importlib.util.find_spec("bpnetlite")
        if spec is None:
            raise SystemExit("bpnet-lite not found: pip install --no-deps bpnet-lite==1.1.0, "
                             "or set BPNET_SRC")
        path = os.path.join(list(spec.submodule_search_locations)[0], "losses.py")
    try:
        version = md.version("bpnet-lite")
    except md.PackageNotFoundError:
        version = "unknown"
    spec = importlib.util.spec_from_file_location("bpnetlite_losses", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, version


def _setup(args):
    bl, bpv = load_bpnet_losses()
    return bl, C.torch_setup(args, **{"bpnet-lite": bpv})


def case_mnll(args):
    import torch

    bl, ver = _setup(args)
    y, logits, _, _ = C.bpnet_inputs(seed=5)
    n = y.shape[0]
    y_t = torch.from_numpy(y)
    lg = torch.from_numpy(logits).requires_grad_(True)

    def fwd():
        logps = torch.nn.functional.log_softmax(lg.reshape(n, -1), dim=-1)
        return bl.MNLLLoss(logps, y_t.reshape(n, -1)).mean()

    return C.torch_case(SUITE, "mnll", "64x2x1000", "bpnet-lite (PyTorch, CPU)",
                      "MNLLLoss(log_softmax(logits.reshape(64, -1)), y.reshape(64, -1)).mean(); "
                      "backward to logits", fwd, [lg], args, ver)


def case_mnll_logps(args):
    import torch

    bl, ver = _setup(args)
    y, logits, _, _ = C.bpnet_inputs(seed=5)
    n = y.shape[0]
    logps0 = torch.nn.functional.log_softmax(torch.from_numpy(logits).reshape(n, -1), dim=-1)
    lp = logps0.detach().clone().requires_grad_(True)
    y_t = torch.from_numpy(y).reshape(n, -1)

    def fwd():
        return bl.MNLLLoss(lp, y_t).sum()

    return C.torch_case(SUITE, "mnll_logps", "64x2000", "bpnet-lite (PyTorch, CPU)",
                      "MNLLLoss(logps, counts).sum() on normalised logps; backward to logps",
                      fwd, [lp], args, ver)


def _mixture(args, name, with_labels):
    import torch

    bl, ver = _setup(args)
    y, logits, logcounts, labels = C.bpnet_inputs(seed=5)
    y_t = torch.from_numpy(y)
    lg = torch.from_numpy(logits).requires_grad_(True)
    lc = torch.from_numpy(logcounts).requires_grad_(True)
    lab = torch.from_numpy(labels) if with_labels else None

    def fwd():
        _, _, total = bl._mixture_loss(y_t, lg, lc, 1.0, lab)
        return total

    return C.torch_case(SUITE, name, "64x2x1000", "bpnet-lite (PyTorch, CPU)",
                      f"_mixture_loss(y, logits, logcounts, count_loss_weight=1.0, "
                      f"labels{'' if with_labels else '=None'}); backward of total to logits, "
                      "logcounts", fwd, [lg, lc], args, ver)


def case_mixture(args):
    return _mixture(args, "bpnet_mixture", True)


def case_mixture_nolabels(args):
    return _mixture(args, "bpnet_mixture_nolabels", False)


def case_log1p_mse(args):
    import torch

    bl, ver = _setup(args)
    log_pred, counts = C.log1p_mse_inputs(seed=6)
    lp = torch.from_numpy(log_pred).requires_grad_(True)
    c = torch.from_numpy(counts)

    def fwd():
        return bl.log1pMSELoss(lp, c).mean()

    return C.torch_case(SUITE, "log1p_mse", "64x1", "bpnet-lite (PyTorch, CPU)",
                      "log1pMSELoss(log_pred (64,1), counts (64,1)).mean(); backward to log_pred",
                      fwd, [lp], args, ver)


CASES = {
    "mnll": case_mnll,
    "mnll_logps": case_mnll_logps,
    "bpnet_mixture": case_mixture,
    "bpnet_mixture_nolabels": case_mixture_nolabels,
    "log1p_mse": case_log1p_mse,
}


def main():
    p = C.add_common_args(argparse.ArgumentParser(description=__doc__,
                                                  formatter_class=argparse.RawDescriptionHelpFormatter))
    args = p.parse_args()
    return C.drive(CASES, args, os.path.abspath(__file__), SUITE)


if __name__ == "__main__":
    sys.exit(main())

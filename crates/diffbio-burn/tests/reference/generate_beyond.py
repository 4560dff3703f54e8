#!/usr/bin/env python3
"""Reference fixtures for the diffbio-burn losses beyond the public set.

Functions (names fixed by the Rust parity harness):
  negative_binomial_mixture, beta_binomial, beta_binomial_mean,
  dirichlet_multinomial, dirichlet_multinomial_profile

Values and gradients come from running the reference libraries in float64 on CPU:
  * negative_binomial_mixture: scvi-tools NegativeBinomialMixture(...).log_prob (shared theta)
    or scvi.distributions._negative_binomial.log_mixture_nb (separate theta_2; see below),
    gradients by torch.autograd.
  * beta_binomial(_mean): values scipy.stats.betabinom.logpmf; gradients by torch.autograd of
    pyro.distributions.BetaBinomial(...).log_prob (values cross-checked against scipy).
  * dirichlet_multinomial(_profile): values scipy.stats.dirichlet_multinomial.logpmf (row by row);
    gradients by torch.autograd of pyro.distributions.DirichletMultinomial(...).log_prob.

Independent checks run on every case (summary printed at the end):
  * values: second reference (pyro vs scipy; scipy nbinom mixture for the NB mixture) and an
    mpmath (40 digits) lgamma formula;
  * gradients: central finite differences at 40 digits of the mpmath formula for a few elements;
  * conditioning: every float input perturbed by a relative 6e-8 (float32 half-ulp), outputs and
    gradients must move by < 0.1 * (atol + rtol*|y|).

Usage:
  python generate_beyond.py [--out DIR]          # write fixtures (default ../fixtures)
  python generate_beyond.py --check [--out DIR]  # re-validate the written files only
"""

import argparse
import json
import math
import os
import sys
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures"))

RTOL, ATOL = 1e-4, 1e-5
EPS = 1e-8
HALF_ULP = 6e-8
COND_LIMIT = 0.1
GRAD_FLOOR = 1e-8  # FD comparison: |fd - autograd| / max(|fd|, GRAD_FLOOR) <= 1e-7  # perturbation must move results by < this fraction of the tolerance

FUNCTIONS = (
    "negative_binomial_mixture",
    "beta_binomial",
    "beta_binomial_mean",
    "dirichlet_multinomial",
    "dirichlet_multinomial_profile",
)

# names per function: (inputs required, inputs optional, outputs, grads.of, grads wrt required,
# grads wrt optional (present iff the input is present), count-like inputs)
SPEC = {
    "negative_binomial_mixture": dict(
        inputs=["counts", "mu_1", "mu_2", "theta_1", "pi_logits"], optional=["theta_2"],
        outputs=["loss", "nll"], of="loss", wrt=["mu_1", "mu_2", "theta_1", "pi_logits"],
        wrt_opt=["theta_2"], counts=["counts"]),
    "beta_binomial": dict(
        inputs=["counts", "total_counts", "alpha", "beta"], optional=[],
        outputs=["loss", "nll"], of="loss", wrt=["alpha", "beta"], wrt_opt=[],
        counts=["counts", "total_counts"]),
    "beta_binomial_mean": dict(
        inputs=["counts", "total_counts", "mu", "concentration"], optional=[],
        outputs=["loss", "nll"], of="loss", wrt=["mu", "concentration"], wrt_opt=[],
        counts=["counts", "total_counts"]),
    "dirichlet_multinomial": dict(
        inputs=["log_alpha", "counts"], optional=[], outputs=["nll"], of="nll",
        wrt=["log_alpha"], wrt_opt=[], counts=["counts"]),
    "dirichlet_multinomial_profile": dict(
        inputs=["logits", "log_precision", "counts"], optional=[], outputs=["nll"], of="nll",
        wrt=["logits", "log_precision"], wrt_opt=[], counts=["counts"]),
}


def f32(x):
    """Round to the nearest float32 and return float64 (exactly representable in f32)."""
    return np.asarray(np.float32(np.asarray(x, dtype=np.float64)), dtype=np.float32).astype(np.float64)


def loguniform(rng, lo, hi, size):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


# ----------------------------------------------------------------------------------------------
# lazy imports of the reference stacks (so --check needs only numpy + scipy)
# ----------------------------------------------------------------------------------------------
_T = {}


def torch_stack():
    if not _T:
        warnings.filterwarnings("ignore")
        import torch
        torch.set_num_threads(1)
        torch.set_default_dtype(torch.float64)
        import pyro
        import pyro.distributions as pdist
        import scvi
        from scvi.distributions import NegativeBinomialMixture
        from scvi.distributions._negative_binomial import log_mixture_nb
        _T.update(torch=torch, pyro=pyro, pdist=pdist, scvi=scvi,
                  NBM=NegativeBinomialMixture, log_mixture_nb=log_mixture_nb)
    return _T


def versions():
    import scipy
    t = torch_stack()
    return dict(torch=t["torch"].__version__, pyro=t["pyro"].__version__,
                scvi=t["scvi"].__version__, scipy=scipy.__version__, numpy=np.__version__)


# ----------------------------------------------------------------------------------------------
# references: inputs (dict of float64 numpy arrays) -> outputs, grads, aux (second-reference values)
# ----------------------------------------------------------------------------------------------
def _tensors(inputs, wrt):
    torch = torch_stack()["torch"]
    out = {}
    for k, v in inputs.items():
        t = torch.tensor(v, dtype=torch.float64)
        if k in wrt:
            t.requires_grad_(True)
        out[k] = t
    return out


def _grads(of, tens, wrt):
    torch = torch_stack()["torch"]
    gs = torch.autograd.grad(of.sum(), [tens[k] for k in wrt])
    return {k: g.detach().numpy().copy() for k, g in zip(wrt, gs)}


def ref_nb_mixture(inputs, config):
    T = torch_stack()
    wrt = ["mu_1", "mu_2", "theta_1", "pi_logits"] + (["theta_2"] if "theta_2" in inputs else [])
    t = _tensors(inputs, wrt)
    if "theta_2" in inputs:
        # NegativeBinomialMixture(theta2=...) is unusable in scvi-tools 1.4.2: its __init__ stores
        # broadcast_all(mu1, theta2) (a tuple) as self.theta2, so log_prob raises TypeError.
        th2 = t["theta_2"]
        th1 = t["theta_1"]
        if th1.dim() == 1:
            th1 = th1.view(1, -1).expand_as(t["mu_1"])
            th2 = th2.view(1, -1).expand_as(t["mu_1"])
        lp = T["log_mixture_nb"](t["counts"], t["mu_1"], t["mu_2"], th1, th2, t["pi_logits"],
                                 eps=config["eps"])
    else:
        d = T["NBM"](mu1=t["mu_1"], mu2=t["mu_2"], theta1=t["theta_1"],
                     mixture_logits=t["pi_logits"])
        lp = d.log_prob(t["counts"])
    nll = -lp
    loss = nll.mean()
    grads = _grads(loss, t, wrt)
    outputs = {"loss": np.array(loss.item()), "nll": nll.detach().numpy().copy()}
    return outputs, grads, {}


def _bb_scipy(k, n, a, b):
    from scipy.stats import betabinom
    return betabinom.logpmf(k, n, a, b)


def ref_beta_binomial(inputs, config, mean_param=False):
    T = torch_stack()
    torch = T["torch"]
    wrt = ["mu", "concentration"] if mean_param else ["alpha", "beta"]
    t = _tensors(inputs, wrt)
    if mean_param:
        a = t["mu"] * t["concentration"]
        b = (1.0 - t["mu"]) * t["concentration"]
    else:
        a, b = t["alpha"], t["beta"]
    d = T["pdist"].BetaBinomial(concentration1=a, concentration0=b,
                                total_count=t["total_counts"], validate_args=False)
    lp = d.log_prob(t["counts"])
    loss = (-lp).mean()
    grads = _grads(loss, t, wrt)
    an, bn = a.detach().numpy(), b.detach().numpy()
    lp_scipy = _bb_scipy(inputs["counts"], inputs["total_counts"], an, bn)
    nll = -lp_scipy
    outputs = {"loss": np.array(nll.mean()), "nll": nll}
    aux = {"pyro_nll": -lp.detach().numpy().copy()}
    return outputs, grads, aux


def _dm_scipy(counts, alpha):
    from scipy.stats import dirichlet_multinomial
    L = counts.shape[-1]
    c2 = counts.reshape(-1, L)
    a2 = alpha.reshape(-1, L)
    out = np.empty(c2.shape[0])
    for i in range(c2.shape[0]):
        n = int(round(c2[i].sum()))
        out[i] = dirichlet_multinomial.logpmf(c2[i], a2[i], n)
    return out.reshape(counts.shape[:-1])


def ref_dirmult(inputs, config, profile=False):
    T = torch_stack()
    torch = T["torch"]
    wrt = ["logits", "log_precision"] if profile else ["log_alpha"]
    t = _tensors(inputs, wrt)
    if profile:
        alpha = torch.softmax(t["logits"], dim=-1) * torch.exp(t["log_precision"]).unsqueeze(-1)
    else:
        alpha = torch.exp(t["log_alpha"])
    n = t["counts"].sum(-1)
    d = T["pdist"].DirichletMultinomial(concentration=alpha, total_count=n, validate_args=False)
    lp = d.log_prob(t["counts"])
    grads = _grads(-lp, t, wrt)
    nll = -_dm_scipy(inputs["counts"], alpha.detach().numpy())
    aux = {"pyro_nll": -lp.detach().numpy().copy()}
    return {"nll": nll}, grads, aux


REFS = {
    "negative_binomial_mixture": ref_nb_mixture,
    "beta_binomial": lambda i, c: ref_beta_binomial(i, c, False),
    "beta_binomial_mean": lambda i, c: ref_beta_binomial(i, c, True),
    "dirichlet_multinomial": lambda i, c: ref_dirmult(i, c, False),
    "dirichlet_multinomial_profile": lambda i, c: ref_dirmult(i, c, True),
}


def reference_string(fn, inputs, vc):
    v = versions()
    tv = f"torch {v['torch']} CPU"
    if fn == "negative_binomial_mixture":
        if "theta_2" in inputs:
            call = ("scvi-tools {s} scvi.distributions._negative_binomial.log_mixture_nb(x=counts, "
                    "mu_1, mu_2, theta_1, theta_2, pi_logits, eps=1e-08) (called directly: "
                    "NegativeBinomialMixture(theta2=...) raises TypeError in 1.4.2)").format(s=v["scvi"])
        else:
            call = ("scvi-tools {s} scvi.distributions.NegativeBinomialMixture(mu1=mu_1, mu2=mu_2, "
                    "theta1=theta_1, mixture_logits=pi_logits).log_prob(counts) "
                    "(-> log_mixture_nb, eps=1e-08, shared theta)").format(s=v["scvi"])
        return (f"{call} ({tv}), float64; nll = -log_prob, loss = nll.mean(); weight sigmoid(pi_logits) "
                f"on component 1; gradients by torch.autograd of that call. Cross-check: scipy "
                f"{v['scipy']} stats.nbinom.logpmf mixed by logaddexp (no eps) differs by max "
                f"{vc['second_rel']:.1e} rel (eps=1e-8 inside scVI's logs); 40-digit mpmath eps-aware "
                f"formula agrees to {vc['mpmath_rel']:.1e} rel")
    if fn in ("beta_binomial", "beta_binomial_mean"):
        pre = ""
        if fn == "beta_binomial_mean":
            pre = "alpha = mu*concentration, beta = (1-mu)*concentration (float64); "
        return (f"{pre}values: scipy {v['scipy']} scipy.stats.betabinom.logpmf(counts, total_counts, "
                f"alpha, beta), float64; nll = -logpmf, loss = nll.mean(); gradients by torch.autograd of "
                f"pyro {v['pyro']} pyro.distributions.BetaBinomial(concentration1=alpha, "
                f"concentration0=beta, total_count=total_counts).log_prob(counts) ({tv}, float64), "
                f"{agree(vc)}")
    if fn in ("dirichlet_multinomial", "dirichlet_multinomial_profile"):
        al = ("alpha = exp(log_alpha)" if fn == "dirichlet_multinomial" else
              "alpha = softmax(logits, -1) * exp(log_precision)[..., None]")
        return (f"{al} (float64); values: scipy {v['scipy']} scipy.stats.dirichlet_multinomial."
                f"logpmf(counts_row, alpha_row, n=row sum) row by row, float64; nll = -logpmf; "
                f"gradients by torch.autograd of pyro {v['pyro']} pyro.distributions."
                f"DirichletMultinomial(concentration=alpha, total_count=counts.sum(-1))."
                f"log_prob(counts) ({tv}, float64), {agree(vc)}")
    raise KeyError(fn)


def agree(vc):
    s = (f"whose values agree with scipy's to {vc['second_rel']:.1e} rel / {vc['second_abs']:.1e} abs")
    if not vc["strict_ok"]:
        s += (" (float64 lgamma cancellation at concentrations ~1e6; scipy vs 40-digit mpmath: "
              f"{vc['mpmath_abs']:.1e} abs)")
    return s


# ----------------------------------------------------------------------------------------------
# independent mpmath formulas (40 digits) and finite differences
# ----------------------------------------------------------------------------------------------
import mpmath as mp  # noqa: E402

mp.mp.dps = 40


def mp_nb_logp(x, mu, th, eps):
    """scVI's eps-aware NB log pmf."""
    x, mu, th = mp.mpf(x), mp.mpf(mu), mp.mpf(th)
    lt = mp.log(th + mu + eps)
    return (th * (mp.log(th + eps) - lt) + x * (mp.log(mu + eps) - lt)
            + mp.loggamma(x + th) - mp.loggamma(th) - mp.loggamma(x + 1))


def mp_nbmix_nll(x, mu1, mu2, th1, th2, pi, eps):
    l1 = mp_nb_logp(x, mu1, th1, eps)
    l2 = mp_nb_logp(x, mu2, th2, eps)
    pi = mp.mpf(pi)
    ls1 = -mp.log(1 + mp.exp(-pi))   # log sigmoid(pi)
    ls2 = -mp.log(1 + mp.exp(pi))    # log sigmoid(-pi)
    a, b = ls1 + l1, ls2 + l2
    m = max(a, b)
    return -(m + mp.log(mp.exp(a - m) + mp.exp(b - m)))


def mp_bb_logp(k, n, a, b):
    k, n, a, b = (mp.mpf(v) for v in (k, n, a, b))
    G = mp.loggamma
    return (G(n + 1) - G(k + 1) - G(n - k + 1) + G(k + a) + G(n - k + b) - G(n + a + b)
            - G(a) - G(b) + G(a + b))


def mp_dm_logp(c, alpha):
    G = mp.loggamma
    c = [mp.mpf(v) for v in c]
    alpha = [mp.mpf(v) if not isinstance(v, mp.mpf) else v for v in alpha]
    N, A = mp.fsum(c), mp.fsum(alpha)
    s = G(A) - G(N + A) + G(N + 1)
    for ci, ai in zip(c, alpha):
        s += G(ci + ai) - G(ai) - G(ci + 1)
    return s


def mp_softmax(z):
    z = [mp.mpf(v) for v in z]
    m = max(z)
    e = [mp.exp(v - m) for v in z]
    s = mp.fsum(e)
    return [v / s for v in e]


def mp_elementwise_nll(fn, inputs, config, idx, over):
    """mpmath nll of element idx (multi-index of the nll output), inputs given as dict name->
    (numpy array or mp overrides dict). `over` maps (name, flat index) -> mp value."""
    def val(name, mi):
        arr = inputs[name]
        flat = int(np.ravel_multi_index(mi, arr.shape)) if arr.ndim else 0
        return over.get((name, flat), mp.mpf(float(arr.reshape(-1)[flat])))

    if fn == "negative_binomial_mixture":
        b, g = idx
        thi = (g,) if inputs["theta_1"].ndim == 1 else (b, g)
        th1 = val("theta_1", thi)
        th2 = val("theta_2", thi) if "theta_2" in inputs else th1
        return mp_nbmix_nll(val("counts", idx), val("mu_1", idx), val("mu_2", idx), th1, th2,
                            val("pi_logits", idx), mp.mpf(config["eps"]))
    if fn == "beta_binomial":
        return -mp_bb_logp(val("counts", idx), val("total_counts", idx), val("alpha", idx),
                           val("beta", idx))
    if fn == "beta_binomial_mean":
        mu, c = val("mu", idx), val("concentration", idx)
        return -mp_bb_logp(val("counts", idx), val("total_counts", idx), mu * c, (1 - mu) * c)
    if fn in ("dirichlet_multinomial", "dirichlet_multinomial_profile"):
        L = inputs["counts"].shape[-1]
        c = [val("counts", tuple(idx) + (j,)) for j in range(L)]
        if fn == "dirichlet_multinomial":
            alpha = [mp.exp(val("log_alpha", tuple(idx) + (j,))) for j in range(L)]
        else:
            p = mp_softmax([val("logits", tuple(idx) + (j,)) for j in range(L)])
            prec = mp.exp(val("log_precision", tuple(idx)))
            alpha = [pj * prec for pj in p]
        return -mp_dm_logp(c, alpha)
    raise KeyError(fn)


def dependents(fn, inputs, name, flat):
    """Output-element multi-indices of nll that depend on input element (name, flat)."""
    arr = inputs[name]
    mi = np.unravel_index(flat, arr.shape)
    if fn == "negative_binomial_mixture":
        if arr.ndim == 1:  # theta (G,)
            B = inputs["mu_1"].shape[0]
            return [(b, int(mi[0])) for b in range(B)]
        return [tuple(int(v) for v in mi)]
    if fn in ("beta_binomial", "beta_binomial_mean"):
        return [tuple(int(v) for v in mi)]
    if fn == "dirichlet_multinomial_profile" and name == "log_precision":
        return [tuple(int(v) for v in mi)]
    return [tuple(int(v) for v in mi[:-1])]  # row of a (..., L) input


def mp_values(fn, inputs, config):
    """Full mpmath nll output array (float64)."""
    shp = inputs["counts"].shape if fn not in ("dirichlet_multinomial",
                                               "dirichlet_multinomial_profile") \
        else inputs["counts"].shape[:-1]
    out = np.empty(shp)
    for mi in np.ndindex(*shp):
        out[mi] = float(mp_elementwise_nll(fn, inputs, config, mi, {}))
    return out


def fd_gradient(fn, inputs, config, name, flat, n_total):
    x0 = mp.mpf(float(inputs[name].reshape(-1)[flat]))
    h = abs(x0) * mp.mpf("1e-12") if x0 != 0 else mp.mpf("1e-12")
    deps = dependents(fn, inputs, name, flat)

    def F(x):
        return mp.fsum(mp_elementwise_nll(fn, inputs, config, d, {(name, flat): x}) for d in deps)

    g = (F(x0 + h) - F(x0 - h)) / (2 * h)
    if SPEC[fn]["of"] == "loss":
        g = g / n_total
    return float(g)


# ----------------------------------------------------------------------------------------------
# case definitions
# ----------------------------------------------------------------------------------------------
def sample_nb(rng, mu, theta):
    lam = rng.gamma(shape=theta, scale=mu / theta)
    return rng.poisson(lam).astype(np.float64)


def nb_mixture_case(rng, name, B, G, *, mu1_range, fg_range, theta_range, theta_shape,
                    separate, pi_range, note=None):
    mu_1 = f32(np.maximum(loguniform(rng, *mu1_range, (B, G)), 1e-3))
    mu_2 = f32(mu_1 * (1.0 + loguniform(rng, *fg_range, (B, G))))
    tshape = (G,) if theta_shape == "G" else (B, G)
    theta_1 = f32(loguniform(rng, *theta_range, tshape))
    theta_2 = f32(loguniform(rng, *theta_range, tshape)) if separate else None
    pi_logits = f32(rng.uniform(*pi_range, (B, G)))
    t1 = np.broadcast_to(theta_1, (B, G))
    t2 = np.broadcast_to(theta_2 if separate else theta_1, (B, G))
    comp1 = rng.uniform(size=(B, G)) < 1.0 / (1.0 + np.exp(-pi_logits))
    counts = np.where(comp1, sample_nb(rng, mu_1, t1), sample_nb(rng, mu_2, t2))
    inputs = {"counts": counts, "mu_1": mu_1, "mu_2": mu_2, "theta_1": theta_1}
    if separate:
        inputs["theta_2"] = theta_2
    inputs["pi_logits"] = pi_logits
    return dict(case=name, function="negative_binomial_mixture", config={"eps": EPS},
                inputs=inputs, note=note)


def sample_bb(rng, n, a, b):
    p = rng.beta(np.maximum(a, 1e-300), np.maximum(b, 1e-300))
    p = np.nan_to_num(p, nan=0.5)
    return rng.binomial(n.astype(np.int64), np.clip(p, 0, 1)).astype(np.float64)


def bb_case(rng, name, B, G, *, n_max, a=None, b=None, n_zero=0, mean=None, note=None):
    n = rng.integers(1, n_max + 1, (B, G)).astype(np.float64)
    if n_zero:
        z = rng.choice(B * G, n_zero, replace=False)
        n.reshape(-1)[z] = 0.0
    if mean is None:
        alpha, beta = f32(a), f32(b)
        k = sample_bb(rng, n, alpha, beta)
        inputs = {"counts": k, "total_counts": n, "alpha": alpha, "beta": beta}
        fn = "beta_binomial"
    else:
        mu, conc = f32(mean[0]), f32(mean[1])
        k = sample_bb(rng, n, mu * conc, (1 - mu) * conc)
        inputs = {"counts": k, "total_counts": n, "mu": mu, "concentration": conc}
        fn = "beta_binomial_mean"
    return dict(case=name, function=fn, config={}, inputs=inputs, note=note)


def sample_dm(rng, alpha, n):
    shp = alpha.shape
    a2 = alpha.reshape(-1, shp[-1])
    n2 = np.broadcast_to(n, shp[:-1]).reshape(-1)
    out = np.zeros_like(a2)
    for i in range(a2.shape[0]):
        g = rng.gamma(a2[i])
        if not np.isfinite(g).all() or g.sum() <= 0:
            g = (a2[i] == a2[i].max()).astype(float)
        out[i] = rng.multinomial(int(n2[i]), g / g.sum())
    return out.reshape(shp).astype(np.float64)


def dm_case(rng, name, shape, *, la_range, n_range, zero_row=False, note=None, tolerance=None):
    log_alpha = f32(rng.uniform(*la_range, shape))
    n = rng.integers(n_range[0], n_range[1] + 1, shape[:-1])
    counts = sample_dm(rng, np.exp(log_alpha), n)
    if zero_row:
        counts.reshape(-1, shape[-1])[1] = 0.0
    c = dict(case=name, function="dirichlet_multinomial", config={},
             inputs={"log_alpha": log_alpha, "counts": counts}, note=note)
    if tolerance:
        c["tolerance"] = tolerance
    return c


def dm_profile_case(rng, name, shape, *, logit_sd, lp_range, n_range, zero_row=False, note=None):
    logits = f32(rng.normal(0.0, logit_sd, shape))
    log_precision = f32(rng.uniform(*lp_range, shape[:-1]))
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    n = rng.integers(n_range[0], n_range[1] + 1, shape[:-1])
    counts = sample_dm(rng, p * np.exp(log_precision)[..., None], n)
    if zero_row:
        counts.reshape(-1, shape[-1])[2] = 0.0
    return dict(case=name, function="dirichlet_multinomial_profile", config={},
                inputs={"logits": logits, "log_precision": log_precision, "counts": counts},
                note=note)


def all_cases():
    rng = np.random.default_rng(20240617)
    cases = []
    # ---- negative_binomial_mixture
    cases.append(nb_mixture_case(rng, "nb_mixture_shared_theta_3x5", 3, 5, mu1_range=(0.1, 20.0),
                                 fg_range=(0.5, 5.0), theta_range=(0.5, 20.0), theta_shape="G",
                                 separate=False, pi_range=(-3.0, 3.0)))
    cases.append(nb_mixture_case(rng, "nb_mixture_separate_theta_4x5", 4, 5, mu1_range=(0.5, 30.0),
                                 fg_range=(0.5, 8.0), theta_range=(0.3, 50.0), theta_shape="BG",
                                 separate=True, pi_range=(-4.0, 4.0)))
    cases.append(nb_mixture_case(rng, "nb_mixture_sparse_6x8", 6, 8, mu1_range=(1e-3, 0.5),
                                 fg_range=(0.1, 3.0), theta_range=(0.05, 10.0), theta_shape="BG",
                                 separate=False, pi_range=(-3.0, 3.0),
                                 note="theta_1 (B,G) without theta_2 (shared dispersion, full shape); "
                                      "mostly-zero counts, mu_1 down to 1e-3"))
    cases.append(nb_mixture_case(rng, "nb_mixture_protein_4x6", 4, 6, mu1_range=(50.0, 400.0),
                                 fg_range=(5.0, 30.0), theta_range=(1.0, 50.0), theta_shape="G",
                                 separate=True, pi_range=(-4.0, 4.0),
                                 note="totalVI protein-like: mu_2 = mu_1*(1+foreground), foreground "
                                      "5..30, counts up to a few thousand; theta_1, theta_2 (G,)"))
    cases.append(nb_mixture_case(rng, "nb_mixture_theta_range_4x6", 4, 6, mu1_range=(0.05, 50.0),
                                 fg_range=(0.2, 10.0), theta_range=(1e-2, 1e4), theta_shape="BG",
                                 separate=True, pi_range=(-8.0, 8.0),
                                 note="theta_1, theta_2 log-uniform in [1e-2, 1e4], pi_logits in [-8, 8]"))
    # ---- beta_binomial
    B, G = 4, 6
    cases.append(bb_case(rng, "betabinom_moderate_4x6", B, G, n_max=50,
                         a=loguniform(rng, 0.1, 20.0, (B, G)), b=loguniform(rng, 0.1, 20.0, (B, G)),
                         n_zero=2, note="two elements have total_counts = 0 (nll 0, zero gradient)"))
    B, G = 5, 8
    pm = np.where(rng.uniform(size=(B, G)) < 0.5, rng.uniform(0.01, 0.08, (B, G)),
                  rng.uniform(0.92, 0.99, (B, G)))
    s = loguniform(rng, 2.0, 60.0, (B, G))
    cases.append(bb_case(rng, "betabinom_methylation_5x8", B, G, n_max=200, a=pm * s, b=(1 - pm) * s,
                         n_zero=3, note="methylation-like: mean near 0 or 1, counts near 0 or n, "
                                        "n up to 200; three elements with total_counts = 0"))
    B, G = 4, 6
    cases.append(bb_case(rng, "betabinom_small_conc_4x6", B, G, n_max=50,
                         a=loguniform(rng, 1e-3, 1e-1, (B, G)), b=loguniform(rng, 1e-3, 1e-1, (B, G)),
                         note="alpha, beta in [1e-3, 1e-1]: mass at 0 and n"))
    p = rng.uniform(0.05, 0.95, (B, G))
    s = loguniform(rng, 1e3, 1e6, (B, G))
    cases.append(bb_case(rng, "betabinom_large_conc_4x6", B, G, n_max=1000, a=p * s, b=(1 - p) * s,
                         note="alpha+beta in [1e3, 1e6], n up to 1000: near the binomial limit"))
    # ---- beta_binomial_mean
    B, G = 3, 4
    cases.append(bb_case(rng, "betabinom_mean_basic_3x4", B, G, n_max=30,
                         mean=(rng.uniform(0.05, 0.95, (B, G)), loguniform(rng, 0.5, 50.0, (B, G))),
                         n_zero=1, note="one element with total_counts = 0"))
    B, G = 4, 5
    mu = rng.uniform(0.02, 0.98, (B, G))
    mu[0, 0], mu[1, 2], mu[2, 4] = 1e-3, 0.01, 0.99
    cases.append(bb_case(rng, "betabinom_mean_large_conc_4x5", B, G, n_max=200,
                         mean=(mu, loguniform(rng, 1e2, 1e6, (B, G))),
                         note="concentration in [1e2, 1e6], n up to 200 (500 made d/dmu sensitive to "
                              "float32 rounding of mu near the mode), mu from 1e-3 to 0.99"))
    mu = rng.uniform(0.02, 0.98, (B, G))
    mu[3, 1] = 1e-3
    cases.append(bb_case(rng, "betabinom_mean_small_conc_4x5", B, G, n_max=40,
                         mean=(mu, loguniform(rng, 1e-2, 1.0, (B, G))),
                         note="concentration in [1e-2, 1]"))
    # ---- dirichlet_multinomial
    cases.append(dm_case(rng, "dirmult_2d_4x10", (4, 10), la_range=(-1.0, 2.0), n_range=(5, 50)))
    cases.append(dm_case(rng, "dirmult_sparse_5x20", (5, 20), la_range=(-3.0, 1.0), n_range=(1, 6),
                         zero_row=True, note="mostly-zero counts; row 1 sums to 0 (nll 0, zero "
                                             "gradient)"))
    cases.append(dm_case(rng, "dirmult_3d_3x2x8", (3, 2, 8), la_range=(-1.0, 3.0), n_range=(5, 60),
                         note="BPNet-like (n, strands, L)"))
    cases.append(dm_case(rng, "dirmult_large_conc_4x6", (4, 6), la_range=(5.0, 12.0),
                         n_range=(5, 40), tolerance={"rtol": RTOL, "atol": 1e-4},
                         note="log_alpha in [5, 12]: near the multinomial limit. atol 1e-4 (rtol "
                         "unchanged): here d nll/d log_alpha ~ c - N*alpha/sum(alpha), and a "
                         "float32 half-ulp of log_alpha (~5e-7 absolute at 12) moves alpha by "
                         "~5e-7 relative, i.e. gradients near 0 by up to ~1.3e-6 absolute (0.13 of "
                         "the default atol); with atol 1e-4 that input-rounding sensitivity is "
                         "< 0.04 of the tolerance. nll (~10) and gradients of size >~1 are still "
                         "held to rtol 1e-4"))
    cases.append(dm_case(rng, "dirmult_small_conc_4x6", (4, 6), la_range=(-6.0, -2.0),
                         n_range=(1, 30), note="log_alpha in [-6, -2]: counts concentrate on few "
                                               "categories"))
    # ---- dirichlet_multinomial_profile
    cases.append(dm_profile_case(rng, "dirmult_profile_2d_4x10", (4, 10), logit_sd=1.5,
                                 lp_range=(0.0, 12.0), n_range=(5, 80)))
    cases.append(dm_profile_case(rng, "dirmult_profile_3d_3x2x12", (3, 2, 12), logit_sd=1.5,
                                 lp_range=(0.0, 12.0), n_range=(5, 100),
                                 note="BPNet-like (n, strands, L); log_precision (n, strands)"))
    cases.append(dm_profile_case(rng, "dirmult_profile_sparse_4x16", (4, 16), logit_sd=2.0,
                                 lp_range=(0.0, 3.0), n_range=(1, 8), zero_row=True,
                                 note="low precision, few counts; row 2 sums to 0 (nll 0, zero "
                                      "gradient)"))
    return cases


# ----------------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------------
def rel_err(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12), initial=0.0))


def abs_err(a, b):
    return float(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float)), initial=0.0))


def tol_ratio(new, ref, tol=None):
    tol = tol or {"rtol": RTOL, "atol": ATOL}
    new, ref = np.asarray(new, float), np.asarray(ref, float)
    return float(np.max(np.abs(new - ref) / (tol["atol"] + tol["rtol"] * np.abs(ref)), initial=0.0))


def float_inputs(fn, inputs):
    return [k for k in inputs if k not in SPEC[fn]["counts"]]


def conditioning(fn, inputs, config, outputs, grads, rng, tol=None):
    """Max over perturbations of |delta| / (atol + rtol |y|) for outputs and grads."""
    ref = REFS[fn]
    worst, where = 0.0, ""
    names = float_inputs(fn, inputs)
    trials = [[k] for k in names] + [names]
    for tr in trials:
        pert = dict(inputs)
        for k in tr:
            sgn = rng.choice([-1.0, 1.0], inputs[k].shape)
            pert[k] = inputs[k] * (1.0 + HALF_ULP * sgn)
        o2, g2, _ = ref(pert, config)
        for k in outputs:
            r = tol_ratio(o2[k], outputs[k], tol)
            if r > worst:
                worst, where = r, f"{'+'.join(tr)}->{k}"
        for k in grads:
            r = tol_ratio(g2[k], grads[k], tol)
            if r > worst:
                worst, where = r, f"{'+'.join(tr)}->d/d{k}"
    return worst, where


def value_checks(fn, inputs, config, outputs, aux):
    res = {}
    nll = outputs["nll"]
    mpv = mp_values(fn, inputs, config)
    res["mpmath_rel"] = rel_err(nll, mpv)
    res["mpmath_abs"] = abs_err(nll, mpv)
    if fn == "negative_binomial_mixture":
        from scipy.stats import nbinom
        B, G = nll.shape
        t1 = np.broadcast_to(inputs["theta_1"], (B, G))
        t2 = np.broadcast_to(inputs.get("theta_2", inputs["theta_1"]), (B, G))
        x = inputs["counts"]
        l1 = nbinom.logpmf(x, t1, t1 / (t1 + inputs["mu_1"]))
        l2 = nbinom.logpmf(x, t2, t2 / (t2 + inputs["mu_2"]))
        pi = inputs["pi_logits"]
        lsig = -np.logaddexp(0.0, -pi)
        lsigm = -np.logaddexp(0.0, pi)
        indep = -np.logaddexp(lsig + l1, lsigm + l2)
        res["second_ref"] = "scipy.nbinom mixture (no eps)"
        res["second_rel"] = rel_err(nll, indep)
        res["second_abs"] = abs_err(nll, indep)
    else:
        p = aux["pyro_nll"]
        res["second_ref"] = "pyro vs scipy"
        res["second_rel"] = rel_err(p, nll)
        res["second_abs"] = abs_err(p, nll)
        d = np.abs(p - nll)
        strict = (d <= 1e-12) | (d <= 1e-10 * np.abs(nll))
        # float64 floor: both references sum lgamma terms of size ~lgamma(1e6) ~ 1.3e7 at large
        # concentrations, whose cancellation leaves ~ulp(1e7) ~ 2e-9 absolute in either of them.
        floor = 16 * np.finfo(np.float64).eps * lgamma_scale(fn, inputs)
        res["strict_ok"] = bool(np.all(strict))
        res["floor_ratio"] = float(np.max(d / floor))
        if not np.all(strict | (d <= floor)):
            raise AssertionError(f"pyro vs scipy disagree: rel {res['second_rel']:.3e} "
                                 f"abs {res['second_abs']:.3e}")
    return res


def lgamma_scale(fn, inputs):
    """Sum of |lgamma terms| in the log pmf (the scale of float64 cancellation error)."""
    from scipy.special import gammaln
    c = inputs["counts"]
    if fn in ("beta_binomial", "beta_binomial_mean"):
        n = inputs["total_counts"]
        if fn == "beta_binomial":
            a, b = inputs["alpha"], inputs["beta"]
        else:
            a = inputs["mu"] * inputs["concentration"]
            b = (1 - inputs["mu"]) * inputs["concentration"]
        terms = [c + a, n - c + b, n + a + b, a, b, a + b, n + 1, c + 1, n - c + 1]
        return sum(np.abs(gammaln(t)) for t in terms)
    if fn == "dirichlet_multinomial":
        alpha = np.exp(inputs["log_alpha"])
    else:
        z = inputs["logits"] - inputs["logits"].max(-1, keepdims=True)
        alpha = np.exp(z) / np.exp(z).sum(-1, keepdims=True) * np.exp(inputs["log_precision"])[..., None]
    A, N = alpha.sum(-1), c.sum(-1)
    return (np.abs(gammaln(A)) + np.abs(gammaln(N + A)) + np.abs(gammaln(N + 1))
            + (np.abs(gammaln(c + alpha)) + np.abs(gammaln(alpha)) + np.abs(gammaln(c + 1))).sum(-1))


def grad_checks(fn, inputs, config, grads, rng, per_input=3):
    n_total = inputs["counts"].size if SPEC[fn]["of"] == "loss" else None
    worst_rel, worst_abs, n = 0.0, 0.0, 0
    for name, g in grads.items():
        picks = rng.choice(g.size, min(per_input, g.size), replace=False)
        for flat in picks:
            fd = fd_gradient(fn, inputs, config, name, int(flat), n_total)
            ad = float(g.reshape(-1)[flat])
            err = abs(fd - ad)
            worst_abs = max(worst_abs, err)
            # relative to the element, with a floor of 1e-8 (three decades below atol): tiny
            # gradients (|g| ~ 1e-11..1e-14, e.g. d/dtheta at theta ~ 1e4) carry a float64
            # cancellation error of ~1e-17 absolute in autograd, which is irrelevant here
            worst_rel = max(worst_rel, err / max(abs(fd), GRAD_FLOOR))
            n += 1
    return {"fd_rel": worst_rel, "fd_abs": worst_abs, "fd_n": n}


# ----------------------------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------------------------
def enc(arr, dtype=None):
    arr = np.asarray(arr, dtype=np.float64)
    d = {"shape": list(arr.shape)}
    if dtype:
        d["dtype"] = dtype
    data = [float(v) + 0.0 for v in arr.reshape(-1)]  # + 0.0 turns -0.0 into 0.0
    if not all(math.isfinite(v) for v in data):
        raise ValueError("non-finite value")
    d["data"] = data
    return d


def build_fixture(c, outputs, grads, vc):
    fn = c["function"]
    spec = SPEC[fn]
    fx = {
        "case": c["case"],
        "function": fn,
        "reference": reference_string(fn, c["inputs"], vc),
        "config": c["config"],
        "inputs": {k: enc(v, "f64") for k, v in c["inputs"].items()},
        "outputs": {k: enc(outputs[k]) for k in spec["outputs"]},
        "grads": {"of": spec["of"], "wrt": {k: enc(grads[k]) for k in grads}},
        "tolerance": c.get("tolerance", {"rtol": RTOL, "atol": ATOL}),
    }
    if c.get("note"):
        fx["note"] = c["note"]
    return fx


TOP_REQUIRED = {"case", "function", "reference", "config", "inputs", "outputs", "grads"}
TOP_ALLOWED = TOP_REQUIRED | {"tolerance", "note"}


def check_file(path):
    """Structural validation (numpy only) + scipy value recomputation. Returns list of errors."""
    errs = []
    with open(path) as f:
        fx = json.load(f)
    stem = os.path.splitext(os.path.basename(path))[0]
    keys = set(fx)
    if not TOP_REQUIRED <= keys or not keys <= TOP_ALLOWED:
        errs.append(f"top-level keys {sorted(keys)}")
    if fx.get("case") != stem:
        errs.append("case != file stem")
    fn = fx.get("function")
    if fn not in SPEC:
        return errs + [f"unknown function {fn}"]
    spec = SPEC[fn]

    def arr(d, need_dtype):
        ks = set(d)
        want = {"shape", "data"} | ({"dtype"} if need_dtype else set())
        if ks != want:
            errs.append(f"entry keys {sorted(ks)}")
        a = np.array(d["data"], dtype=np.float64)
        if a.size != int(np.prod(d["shape"], dtype=np.int64)):
            errs.append("len(data) != prod(shape)")
            return a
        if not np.all(np.isfinite(a)):
            errs.append("non-finite")
        if need_dtype and d.get("dtype") != "f64":
            errs.append("dtype != f64")
        return a.reshape(d["shape"])

    inp = {k: arr(v, True) for k, v in fx["inputs"].items()}
    names = set(inp)
    if not set(spec["inputs"]) <= names or not names <= set(spec["inputs"]) | set(spec["optional"]):
        errs.append(f"input names {sorted(names)}")
    for k, a in inp.items():
        if not np.array_equal(f32(a), a):
            errs.append(f"input {k} not float32-exact")
    for k in spec["counts"]:
        a = inp.get(k)
        if a is not None and (np.any(a < 0) or np.any(a != np.round(a))):
            errs.append(f"{k} not non-negative integers")
    out = {k: arr(v, False) for k, v in fx["outputs"].items()}
    if set(out) != set(spec["outputs"]):
        errs.append(f"output names {sorted(out)}")
    g = fx["grads"]
    if set(g) != {"of", "wrt"} or g.get("of") != spec["of"]:
        errs.append("grads.of / keys")
    wrt_want = set(spec["wrt"]) | {k for k in spec["wrt_opt"] if k in inp}
    if set(g["wrt"]) != wrt_want:
        errs.append(f"grads.wrt names {sorted(g['wrt'])}")
    for k, v in g["wrt"].items():
        a = arr(v, False)
        if k in inp and list(a.shape) != list(inp[k].shape):
            errs.append(f"grad {k} shape")
    tol = fx.get("tolerance", {"rtol": RTOL, "atol": ATOL})
    if set(tol) != {"rtol", "atol"} or tol["rtol"] > 1e-3:
        errs.append("tolerance")
    if errs:
        return errs
    # function-specific shape/domain rules
    if fn in ("negative_binomial_mixture", "beta_binomial", "beta_binomial_mean"):
        shp = inp["counts"].shape
        if len(shp) != 2 or out["nll"].shape != shp or out["loss"].shape != ():
            errs.append("shapes")
        for k in inp:
            if k in ("theta_1", "theta_2"):
                if inp[k].shape not in (shp, shp[1:]):
                    errs.append(f"{k} shape")
                if "theta_2" in inp and inp["theta_2"].shape != inp["theta_1"].shape:
                    errs.append("theta_2 shape != theta_1 shape")
            elif inp[k].shape != shp:
                errs.append(f"{k} shape")
        if not np.isclose(out["loss"], out["nll"].mean(), rtol=1e-12, atol=0):
            errs.append("loss != mean(nll)")
        if fn == "negative_binomial_mixture":
            if np.any(inp["mu_1"] < 1e-3) or np.any(inp["mu_2"] < 1e-3):
                errs.append("mu < 1e-3")
            if np.any(inp["theta_1"] <= 0):
                errs.append("theta <= 0")
        else:
            if np.any(inp["counts"] > inp["total_counts"]):
                errs.append("counts > total_counts")
            if fn == "beta_binomial":
                a, b = inp["alpha"], inp["beta"]
            else:
                mu, c = inp["mu"], inp["concentration"]
                if np.any(mu < 1e-3 * (1 - 1e-6)) or np.any(mu > 1 - 1e-3) or np.any(c <= 0):
                    errs.append("mu/concentration domain")
                a, b = mu * c, (1 - mu) * c
            if np.any(a <= 0) or np.any(b <= 0):
                errs.append("alpha/beta domain")
            lp = _bb_scipy(inp["counts"], inp["total_counts"], a, b)
            if tol_ratio(-lp, out["nll"]) > 1e-3:
                errs.append("scipy recomputation of nll differs")
    else:
        shp = inp["counts"].shape
        if out["nll"].shape != shp[:-1]:
            errs.append("nll shape")
        if fn == "dirichlet_multinomial":
            if inp["log_alpha"].shape != shp:
                errs.append("log_alpha shape")
            alpha = np.exp(inp["log_alpha"])
        else:
            if inp["logits"].shape != shp or inp["log_precision"].shape != shp[:-1]:
                errs.append("logits/log_precision shape")
            z = inp["logits"] - inp["logits"].max(-1, keepdims=True)
            p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
            alpha = p * np.exp(inp["log_precision"])[..., None]
        if not errs and tol_ratio(-_dm_scipy(inp["counts"], alpha), out["nll"]) > 1e-3:
            errs.append("scipy recomputation of nll differs")
    return errs


def run_check(out_dir):
    files = sorted(f for f in os.listdir(out_dir) if f.endswith(".json"))
    n, bad = 0, 0
    for f in files:
        p = os.path.join(out_dir, f)
        with open(p) as fh:
            fn = json.load(fh).get("function")
        if fn not in FUNCTIONS:
            continue
        n += 1
        errs = check_file(p)
        if errs:
            bad += 1
            print(f"FAIL {f}: {'; '.join(errs)}")
        else:
            print(f"ok   {f}")
    print(f"checked {n} files of functions {', '.join(FUNCTIONS)}: {bad} failed")
    return 1 if bad or n == 0 else 0


# ----------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT, help="fixture directory (default %(default)s)")
    ap.add_argument("--check", action="store_true", help="only re-validate the files in --out")
    args = ap.parse_args()
    if args.check:
        return run_check(args.out)

    os.makedirs(args.out, exist_ok=True)
    chk_rng = np.random.default_rng(7)  # separate stream: checks never change the fixtures
    rows, failures = [], []
    for c in all_cases():
        fn = c["function"]
        outputs, grads, aux = REFS[fn](c["inputs"], c["config"])
        vc = value_checks(fn, c["inputs"], c["config"], outputs, aux)
        gc = grad_checks(fn, c["inputs"], c["config"], grads, chk_rng)
        cond, where = conditioning(fn, c["inputs"], c["config"], outputs, grads, chk_rng,
                                   c.get("tolerance"))
        fx = build_fixture(c, outputs, grads, vc)
        path = os.path.join(args.out, c["case"] + ".json")
        with open(path, "w") as f:
            json.dump(fx, f, indent=1)
            f.write("\n")
        errs = check_file(path)
        if errs:
            failures.append(f"{c['case']}: {errs}")
        if gc["fd_rel"] > 1e-7:
            failures.append(f"{c['case']}: finite differences rel {gc['fd_rel']:.2e}")
        if cond > COND_LIMIT:
            failures.append(f"{c['case']}: ill-conditioned wrt f32 input rounding "
                            f"({cond:.3f} of tolerance at {where})")
        rows.append((c["case"], vc, gc, cond, where))

    print("value checks: second reference (rel, abs; '*' = outside 1e-10 rel / 1e-12 abs but within "
          "the float64 lgamma-cancellation floor), mpmath 40-digit formula (rel, abs); gradient "
          "check: central FD at 40 digits (max rel, n elements); cond: max shift under 6e-8 input "
          "perturbation as a fraction of atol + rtol|y|")
    print(f"{'case':32s} {'2nd ref':>29s} {'rel':>9s} {'abs':>9s}  | {'mp rel':>9s} {'mp abs':>9s} | "
          f"{'FD rel':>9s} (n) | {'cond':>7s}")
    for case, vc, gc, cond, where in rows:
        star = " " if vc.get("strict_ok", True) else "*"
        print(f"{case:32s} {vc['second_ref']:>29s} {vc['second_rel']:9.2e} {vc['second_abs']:9.2e}{star} | "
              f"{vc['mpmath_rel']:9.2e} {vc['mpmath_abs']:9.2e} | {gc['fd_rel']:9.2e} ({gc['fd_n']:2d}) | "
              f"{cond:7.4f} {where}")
    print(f"wrote {len(rows)} fixtures to {args.out}; versions: {versions()}")
    if failures:
        print("FAILURES:\n  " + "\n  ".join(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

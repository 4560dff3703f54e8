#!/usr/bin/env python3
"""Reference for the categorical-HMM Baum-Welch (EM) implementation.

Produces hmm_em_hmmlearn.json next to this file.

Reference engine: hmmlearn 0.3.3 ``CategoricalHMM.fit`` with
``implementation="log"`` (float64).  An independent float64 numpy
Baum-Welch (scaled forward-backward) in this file cross-checks hmmlearn.

Run with:  /tmp/adenv/bin/python hmm_em_hmmlearn.py
(Python 3.11, hmmlearn==0.3.3, numpy, scipy; the versions actually used are
written into the JSON "reference" string.)

Facts about hmmlearn 0.3.3 that this fixture relies on (read from its source,
and asserted below where possible):

* ``_AbstractHMM.fit`` loop, per iteration:
      stats, curr_logprob = self._do_estep(X, lengths)
      lower_bound = self._compute_lower_bound(curr_logprob)
      self._do_mstep(stats)
      self.monitor_.report(lower_bound)
      if self.monitor_.converged: break
  For ``BaseHMM`` (CategoricalHMM) ``_compute_lower_bound(x)`` returns ``x``
  unchanged, so ``monitor_.history[i]`` (0-based) is the plain data
  log-likelihood (sum over sequences) under the parameters *before* the
  (i+1)-th M-step, i.e. after i M-steps; history[0] is the log-likelihood of
  the starting model.  No log-prior term is added, even with Dirichlet priors.
* ``ConvergenceMonitor.converged`` is
      iter == n_iter or (len(history) >= 2 and history[-1] - history[-2] < tol)
  With tol = -inf the second clause is never true (x < -inf is False for
  every float including -inf and nan), so exactly n_iter iterations run.
  ``history`` is an unbounded deque in 0.3.3, so it holds all n_iter entries.
* M-step (BaseHMM._do_mstep + CategoricalHMM._do_mstep):
      startprob = max(startprob_prior - 1 + E[start counts], 0)
      startprob = where(old startprob == 0, 0, startprob); normalise (sum)
      transmat  = max(transmat_prior - 1 + E[transition counts], 0)
      transmat  = where(old transmat == 0, 0, transmat);  normalise rows
                  (a row summing to 0 is divided by 1, i.e. left all-zero)
      emission  = max(emissionprob_prior - 1 + E[emission counts], 0)
                  normalise rows (NO structural-zero mask for emissions)
  E[start counts][i]   = sum over sequences of gamma_0(i)
  E[trans counts][i,j] = sum over sequences, t = 0..T-2, of xi_t(i, j)
  E[emission counts][i,k] = sum over sequences/time with x_t = k of gamma_t(i)
"""

import json
import math
import os
import sys
import warnings

import numpy as np
import scipy
import hmmlearn
from hmmlearn.hmm import CategoricalHMM

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "hmm_em_hmmlearn.json")

S, E = 3, 4
K = 25
N_SEQ = 12
SEED = 20240611

# ---------------------------------------------------------------------------
# Models.  All values are dyadic rationals, so they are exact in float32 and
# float64 and every row sums to exactly 1.
# ---------------------------------------------------------------------------
# The truth shares the structural zeros used by the first starting model:
#   startprob[2] = 0, trans[0][2] = 0, trans[2][1] = 0.
TRUE_START = np.array([0.625, 0.375, 0.0])
TRUE_TRANS = np.array([
    [0.875, 0.125, 0.0],
    [0.0625, 0.8125, 0.125],
    [0.1875, 0.0, 0.8125],
])
TRUE_EMIS = np.array([
    [0.625, 0.25, 0.0625, 0.0625],
    [0.0625, 0.125, 0.6875, 0.125],
    [0.125, 0.0625, 0.0625, 0.75],
])

START_ZERO = {
    "initial": np.array([0.5, 0.5, 0.0]),
    "transitions": np.array([
        [0.75, 0.25, 0.0],
        [0.25, 0.5, 0.25],
        [0.375, 0.0, 0.625],
    ]),
    "emissions": np.array([
        [0.375, 0.25, 0.1875, 0.1875],
        [0.25, 0.25, 0.375, 0.125],
        [0.1875, 0.1875, 0.25, 0.375],
    ]),
}

START_DIRICHLET = {
    "initial": np.array([0.25, 0.5, 0.25]),
    "transitions": np.array([
        [0.5, 0.25, 0.25],
        [0.125, 0.75, 0.125],
        [0.25, 0.125, 0.625],
    ]),
    "emissions": np.array([
        [0.4375, 0.3125, 0.125, 0.125],
        [0.125, 0.25, 0.5, 0.125],
        [0.25, 0.125, 0.1875, 0.4375],
    ]),
}

RUNS = [
    ("no_prior_structural_zero", START_ZERO,
     {"initial": 1.0, "transitions": 1.0, "emissions": 1.0}),
    ("dirichlet_prior", START_DIRICHLET,
     {"initial": 2.0, "transitions": 3.0, "emissions": 1.5}),
]


def check_model(m):
    for key in ("initial", "transitions", "emissions"):
        a = np.atleast_2d(m[key])
        assert np.all(a >= 0)
        assert np.all(np.abs(a.sum(axis=1) - 1.0) <= 1e-15), key


# ---------------------------------------------------------------------------
# Sampling (own sampler, seeded numpy Generator)
# ---------------------------------------------------------------------------
def sample(rng):
    lengths = rng.integers(40, 161, size=N_SEQ)  # 40..160 inclusive
    seqs = []
    for T in lengths:
        z = rng.choice(S, p=TRUE_START)
        obs = np.empty(T, dtype=np.int64)
        for t in range(T):
            if t > 0:
                z = rng.choice(S, p=TRUE_TRANS[z])
            obs[t] = rng.choice(E, p=TRUE_EMIS[z])
        seqs.append(obs)
    return np.concatenate(seqs), lengths.astype(np.int64)


# ---------------------------------------------------------------------------
# Independent numpy Baum-Welch (scaled forward-backward, float64)
# ---------------------------------------------------------------------------
def split(obs, lengths):
    out, o = [], 0
    for T in lengths:
        out.append(obs[o:o + T])
        o += T
    return out


def forward_scaled(pi, A, B, x):
    T = len(x)
    alpha = np.empty((T, S))
    c = np.empty(T)
    a = pi * B[:, x[0]]
    c[0] = a.sum()
    alpha[0] = a / c[0]
    for t in range(1, T):
        a = (alpha[t - 1] @ A) * B[:, x[t]]
        c[t] = a.sum()
        alpha[t] = a / c[t]
    return alpha, c


def loglik(pi, A, B, obs, lengths):
    return float(sum(np.log(forward_scaled(pi, A, B, x)[1]).sum()
                     for x in split(obs, lengths)))


def np_em_step(pi, A, B, obs, lengths, prior):
    """One Baum-Welch iteration; returns (loglik before step, new pi, A, B)."""
    n_start = np.zeros(S)
    n_trans = np.zeros((S, S))
    n_emis = np.zeros((S, E))
    ll = 0.0
    for x in split(obs, lengths):
        T = len(x)
        alpha, c = forward_scaled(pi, A, B, x)
        ll += np.log(c).sum()
        beta = np.empty((T, S))
        beta[T - 1] = 1.0
        for t in range(T - 2, -1, -1):
            beta[t] = A @ (B[:, x[t + 1]] * beta[t + 1]) / c[t + 1]
        gamma = alpha * beta
        gamma /= gamma.sum(axis=1, keepdims=True)
        n_start += gamma[0]
        for t in range(T - 1):
            xi = (alpha[t][:, None] * A
                  * (B[:, x[t + 1]] * beta[t + 1])[None, :]) / c[t + 1]
            n_trans += xi
        for k in range(E):
            n_emis[:, k] += gamma[x == k].sum(axis=0)
    new_pi = np.maximum(prior["initial"] - 1.0 + n_start, 0.0)
    new_pi = np.where(pi == 0, 0.0, new_pi)
    new_pi = new_pi / new_pi.sum()
    new_A = np.maximum(prior["transitions"] - 1.0 + n_trans, 0.0)
    new_A = np.where(A == 0, 0.0, new_A)
    rs = new_A.sum(axis=1, keepdims=True)
    rs[rs == 0] = 1.0
    new_A = new_A / rs
    new_B = np.maximum(prior["emissions"] - 1.0 + n_emis, 0.0)
    rs = new_B.sum(axis=1, keepdims=True)
    rs[rs == 0] = 1.0
    new_B = new_B / rs
    return float(ll), new_pi, new_A, new_B


# ---------------------------------------------------------------------------
# hmmlearn
# ---------------------------------------------------------------------------
def make_model(start, prior, n_iter):
    m = CategoricalHMM(
        n_components=S, n_features=E, n_iter=n_iter, tol=-np.inf,
        init_params="", params="ste", implementation="log", random_state=0,
        startprob_prior=prior["initial"], transmat_prior=prior["transitions"],
        emissionprob_prior=prior["emissions"])
    m.startprob_ = start["initial"].copy()
    m.transmat_ = start["transitions"].copy()
    m.emissionprob_ = start["emissions"].copy()
    return m


def fit(start, prior, n_iter, X, lengths):
    m = make_model(start, prior, n_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # fail on any hmmlearn warning
        m.fit(X, lengths)
    assert m.monitor_.iter == n_iter, (m.monitor_.iter, n_iter)
    assert len(m.monitor_.history) == n_iter
    return m


def params_of(m):
    return m.startprob_.copy(), m.transmat_.copy(), m.emissionprob_.copy()


def maxabs(a, b):
    return float(max(np.max(np.abs(np.asarray(x) - np.asarray(y)))
                     for x, y in zip(a, b)))


def relerr(a, b):
    return abs(a - b) / abs(b)


def main():
    for _, start, _ in RUNS:
        check_model(start)
    check_model({"initial": TRUE_START, "transitions": TRUE_TRANS,
                 "emissions": TRUE_EMIS})

    rng = np.random.default_rng(SEED)
    obs, lengths = sample(rng)
    X = obs.reshape(-1, 1)
    assert lengths.min() >= 40 and lengths.max() <= 160

    runs_json = []
    checks = {}
    for name, start, prior in RUNS:
        m = fit(start, prior, K, X, lengths)
        history = [float(v) for v in m.monitor_.history]
        final = params_of(m)
        final_ll = float(m.score(X, lengths))

        # (a) history[i] == score under params after i M-steps.
        scores_after = []  # scores_after[i] = score after i+1 M-steps
        hist_dev = 0.0
        s0 = float(make_model(start, prior, 1).score(X, lengths))
        hist_dev = max(hist_dev, relerr(history[0], s0))
        for i in range(1, K + 1):
            mi = fit(start, prior, i, X, lengths)
            si = float(mi.score(X, lengths))
            scores_after.append(si)
            if i < K:
                hist_dev = max(hist_dev, relerr(history[i], si))
            # prefix consistency: fitting n_iter=i gives the first i entries
            assert list(mi.monitor_.history) == history[:i]
        assert scores_after[-1] == final_ll
        assert hist_dev < 1e-12, hist_dev

        # (b) own forward: final log-likelihood of final params.
        own_final_ll = loglik(*final, obs, lengths)
        ll_rel = relerr(own_final_ll, final_ll)
        assert ll_rel < 1e-10, ll_rel

        # (c) one own EM step from the start == hmmlearn after 1 iteration.
        m1 = fit(start, prior, 1, X, lengths)
        ll0, p1, a1, b1 = np_em_step(start["initial"], start["transitions"],
                                     start["emissions"], obs, lengths, prior)
        step1_dev = maxabs((p1, a1, b1), params_of(m1))
        ll0_rel = relerr(ll0, history[0])
        assert step1_dev < 1e-10, step1_dev
        assert ll0_rel < 1e-10, ll0_rel

        # (d) own EM for all K iterations vs hmmlearn (history and final).
        p, a, b = (start["initial"].copy(), start["transitions"].copy(),
                   start["emissions"].copy())
        own_hist = []
        for _ in range(K):
            ll, p, a, b = np_em_step(p, a, b, obs, lengths, prior)
            own_hist.append(ll)
        fullK_param_dev = maxabs((p, a, b), final)
        fullK_hist_rel = max(relerr(x, y) for x, y in zip(own_hist, history))

        # Structural zeros are preserved.
        if name == "no_prior_structural_zero":
            assert final[0][2] == 0.0
            assert final[1][0, 2] == 0.0 and final[1][2, 1] == 0.0
        else:
            assert np.all(final[0] > 0) and np.all(final[1] > 0)
            assert np.all(final[2] > 0)

        # Monotone history (EM on the likelihood for the no-prior run).
        diffs = np.diff(history)
        checks[name] = {
            "history_vs_score_max_rel": hist_dev,
            "final_ll_own_forward_rel": ll_rel,
            "step1_params_max_abs": step1_dev,
            "step1_ll0_rel": ll0_rel,
            "fullK_params_max_abs": fullK_param_dev,
            "fullK_history_max_rel": fullK_hist_rel,
            "min_history_increment": float(diffs.min()),
        }

        runs_json.append({
            "name": name,
            "prior": dict(prior),
            "iterations": K,
            "start": {
                "initial": start["initial"].tolist(),
                "transitions": start["transitions"].reshape(-1).tolist(),
                "emissions": start["emissions"].reshape(-1).tolist(),
            },
            "log_likelihood_history": history,
            "final": {
                "initial": final[0].tolist(),
                "transitions": final[1].reshape(-1).tolist(),
                "emissions": final[2].reshape(-1).tolist(),
            },
            "final_log_likelihood": final_ll,
        })

    ver = (f"hmmlearn {hmmlearn.__version__} CategoricalHMM.fit, "
           f"implementation='log', numpy {np.__version__}, float64")
    c0, c1 = checks["no_prior_structural_zero"], checks["dirichlet_prior"]
    notes = (
        "Generated by hmm_em_hmmlearn.py (scipy " + scipy.__version__ +
        ", Python " + sys.version.split()[0] + ", numpy default_rng seed " +
        str(SEED) + "). "
        "M-step (hmmlearn 0.3.3 BaseHMM._do_mstep + CategoricalHMM._do_mstep), "
        "with expected counts summed over all sequences: "
        "initial = max(prior_initial - 1 + sum_seq gamma_0, 0), then set to 0 "
        "where the CURRENT initial prob is 0, then divided by its sum; "
        "transitions[i][j] = max(prior_transitions - 1 + sum_seq sum_{t=0}^{T-2} "
        "xi_t(i,j), 0), then set to 0 where the CURRENT transition prob is 0, "
        "then each row divided by its row sum (a zero row sum is replaced by 1); "
        "emissions[i][k] = max(prior_emissions - 1 + sum_{t: x_t=k} gamma_t(i), "
        "0), each row divided by its row sum (no structural-zero mask on "
        "emissions). A scalar prior is the same Dirichlet concentration for "
        "every entry; prior 1.0 means no pseudo-counts (plain ML). "
        "log_likelihood_history[i] (0-based) is ConvergenceMonitor.history[i] = "
        "_compute_lower_bound(curr_logprob) = curr_logprob for BaseHMM, i.e. "
        "the plain data log-likelihood (natural log, summed over sequences) "
        "under the parameters BEFORE the (i+1)-th M-step (after i M-steps); "
        "history[0] is the log-likelihood of the start model. It does NOT "
        "include any log-prior term, also in the dirichlet_prior run; so "
        "history[i] == score(X, lengths) after i iterations (verified by "
        "refitting with n_iter=i, max rel dev " +
        f"{max(c0['history_vs_score_max_rel'], c1['history_vs_score_max_rel']):.2e}"
        "), and final_log_likelihood = score after K iterations (one more "
        "M-step than history[K-1]). tol=-inf: converged = (iter == n_iter) or "
        "(history[-1]-history[-2] < tol) so exactly K iterations run "
        "(asserted). Structural zeros in initial/transitions stay exactly 0. "
        "Independent numpy float64 scaled-forward-backward Baum-Welch agrees: "
        f"final ll rel dev {c0['final_ll_own_forward_rel']:.2e} / "
        f"{c1['final_ll_own_forward_rel']:.2e}; 1-step params max abs dev "
        f"{c0['step1_params_max_abs']:.2e} / {c1['step1_params_max_abs']:.2e}; "
        f"K-step params max abs dev {c0['fullK_params_max_abs']:.2e} / "
        f"{c1['fullK_params_max_abs']:.2e}; K-step history max rel dev "
        f"{c0['fullK_history_max_rel']:.2e} / {c1['fullK_history_max_rel']:.2e}"
        " (no_prior_structural_zero / dirichlet_prior). Start and true "
        "probabilities are dyadic rationals (exact in float32). "
        "Arrays are row-major: transitions[from*S + to], "
        "emissions[state*E + symbol]."
    )
    out = {
        "reference": ver,
        "notes": notes,
        "n_states": S,
        "n_symbols": E,
        "observations": obs.tolist(),
        "lengths": lengths.tolist(),
        "runs": runs_json,
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(json.dumps(checks, indent=1))
    for r in runs_json:
        print(r["name"], "history[0]", r["log_likelihood_history"][0],
              "history[-1]", r["log_likelihood_history"][-1],
              "final", r["final_log_likelihood"])
    print(ver)
    print("wrote", OUT)


if __name__ == "__main__":
    main()

//! The forward-backward algorithm in log space on tensors, batched over sequences: one
//! tensor step per time step over the whole batch, with **normalised** variables.
//!
//! ```text
//! α̃_0[b, j] = log π[j] + log B[j, x_0]
//! α̃_t[b, j] = logsumexp_i(α̂_{t-1}[b, i] + log A[i, j]) + log B[j, x_t]    ([B,S,1] + [1,S,S])
//! α̂_t = α̃_t - c_t,   c_t[b] = max_j α̃_t[b, j]   (untracked)
//! log p(x_b) = Σ_t c_t[b] + logsumexp_j α̂_{T_b - 1}[b, j]
//! ```
//!
//! `α̂_t` is the log filtering distribution up to a shift, so its entries stay `<= 0` and of the
//! size of the log-probabilities of the model, whatever `t`; the unnormalised `α_t` grows like
//! `log p(x_{0..t})`, and in float32 `exp(α_t + β_t - log p)` then cancels numbers of size
//! `|log p|` (an error of `~ 1e-7 · |log p|` per posterior, 4e-3 on a gradient at `T = 300`).
//! The backward variables are normalised the same way, and the posteriors are per-step
//! softmaxes of `α̂_t + β̂_t` (see [`posteriors_from`]), sums of non-positive terms: nothing
//! large cancels anywhere.
//!
//! The shifts are untracked constants: with `taped_gradient`, autodiff differentiates
//! `Σ_t c_t + logsumexp α̂_{T-1}` with the `c_t` held fixed, which is the exact derivative of
//! `log p(x)` (a constant shift of `α` changes nothing but the constant).
//!
//! With lengths, `α̂` is carried unchanged through the padded steps `t >= T_b` (its maximum is
//! exactly 0, so those steps add `c_t = 0`), and padded symbols contribute nothing.

use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Int, Tensor, backend::Backend};

use super::model::HmmLogProbs;
use crate::special::{constant, log_sum_exp};

/// The emission row each symbol reads, as DiffBio's `log_emit[:, obs]` in JAX: a negative
/// symbol `k` counts from the end (`k + E`, NumPy indexing), and what is still outside `0..E`
/// is clamped into it (JAX's gather clamps): `-1 → E - 1`, `-E → 0`, `-E - 1 → 0`,
/// `E + 3 → E - 1`. Only reached with validation off, or at padded positions.
pub(crate) fn symbol_index<B: Backend>(
    observations: Tensor<B, 2, Int>,
    n_emissions: usize,
) -> Tensor<B, 2, Int> {
    let e = n_emissions as i64;
    let negative = observations.clone().lower_elem(0);
    observations
        .clone()
        .mask_where(negative, observations + e)
        .clamp(0, e - 1)
}

/// `log B[j, x_t]` for every position: `[B, T, S]`. Symbols go through [`symbol_index`]
/// first, so padding (or, without validation, out-of-range symbols) can hold any value.
pub(crate) fn emission_terms<B: Backend>(
    log_emissions: Tensor<B, 2>,
    observations: Tensor<B, 2, Int>,
) -> Tensor<B, 3> {
    let [batch, len] = observations.dims();
    let [states, symbols] = log_emissions.dims();
    let index = symbol_index(observations, symbols).reshape([batch * len]);
    log_emissions
        .transpose()
        .select(0, index)
        .reshape([batch, len, states])
}

/// `(x - c, c)` with `c` the untracked maximum of `x` along `dim` (kept with size 1), or 0
/// where that slice is entirely `-inf`. The entries of `x - c` are `<= 0` with maximum 0.
pub(crate) fn shift_max<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    dim: usize,
) -> (Tensor<B, D>, Tensor<B, D>) {
    let max = constant(&x).max_dim(dim);
    let empty = max.clone().equal_elem(f64::NEG_INFINITY);
    let shift = max.mask_fill(empty, 0.0);
    (x - shift.clone(), shift)
}

/// The `T` time slices `[B, S]` of a `[B, T, S]` tensor.
pub(crate) fn time_steps<B: Backend>(x: Tensor<B, 3>) -> Vec<Tensor<B, 2>> {
    let [batch, len, states] = x.dims();
    x.chunk(len, 1)
        .into_iter()
        .map(|t| t.reshape([batch, states]))
        .collect()
}

/// The `T` columns `[B, S]` (broadcast over states) of a `[B, T]` mask.
pub(crate) fn mask_steps<B: Backend>(
    mask: Tensor<B, 2, Bool>,
    states: usize,
) -> Vec<Tensor<B, 2, Bool>> {
    let [batch, len] = mask.dims();
    mask.chunk(len, 1)
        .into_iter()
        .map(|m| m.expand([batch, states]))
        .collect()
}

/// One forward step: `logsumexp_i(α[b, i] + log A[i, j]) + e[b, j]`.
pub(crate) fn forward_step<B: Backend>(
    alpha: Tensor<B, 2>,
    log_transitions: Tensor<B, 3>,
    emission: Tensor<B, 2>,
) -> Tensor<B, 2> {
    let [batch, states] = alpha.dims();
    let summed = log_sum_exp(alpha.unsqueeze_dim::<3>(2) + log_transitions, 1);
    summed.reshape([batch, states]) + emission
}

/// The normalised forward variables of a batch (see the module docs).
pub(crate) struct Forward<B: Backend> {
    /// `α̂_t`, `[B, S]` each, `t = 0..T` (maximum 0 over states).
    pub alphas: Vec<Tensor<B, 2>>,
    /// `log p(x_b)`, `[B]`.
    pub log_likelihood: Tensor<B, 1>,
}

/// Normalised forward variables `α̂_t` and the log-likelihood; with a mask, `α̂` is carried
/// through padded steps. Differentiable (every step is taped when `lp` is tracked).
pub(crate) fn forward_alphas<B: Backend>(
    lp: &HmmLogProbs<B>,
    emissions: Tensor<B, 3>,
    valid: Option<Tensor<B, 2, Bool>>,
) -> Forward<B> {
    let [batch, _, states] = emissions.dims();
    let trans = lp.log_transitions.clone().unsqueeze::<3>();
    let steps = time_steps(emissions);
    let masks = valid.map(|v| mask_steps(v, states));
    let mut alphas = Vec::with_capacity(steps.len());
    let mut shifts = Vec::with_capacity(steps.len());
    let mut steps = steps.into_iter();
    let first = steps.next().expect("T >= 1");
    let (alpha, shift) = shift_max(lp.log_initial.clone().unsqueeze::<2>() + first, 1);
    alphas.push(alpha);
    shifts.push(shift);
    for (t, e) in steps.enumerate() {
        let prev = alphas.last().expect("α̂_0 exists").clone();
        let next = forward_step(prev.clone(), trans.clone(), e);
        let next = match &masks {
            Some(m) => prev.mask_where(m[t + 1].clone(), next),
            None => next,
        };
        let (alpha, shift) = shift_max(next, 1);
        alphas.push(alpha);
        shifts.push(shift);
    }
    let last = log_sum_exp(alphas.last().expect("T >= 1").clone(), 1);
    let log_likelihood = (Tensor::cat(shifts, 1).sum_dim(1) + last).reshape([batch]);
    Forward {
        alphas,
        log_likelihood,
    }
}

/// Normalised backward variables `β̂_t[b, i] ∝ p(x_{t+1..T_b} | z_t = i)` in log space
/// (maximum 0 over states), `[B, S]` each, for `t = 0..T`; `β̂_t = 0` for `t >= T_b - 1`
/// (the padded steps). Untracked use only (the shifts are not carried).
///
/// ```text
/// β̃_t[b, i] = logsumexp_j(log A[i, j] + log B[j, x_{t+1}] + β̂_{t+1}[b, j]),   β̂_t = β̃_t - max_i β̃_t
/// ```
pub(crate) fn backward_betas<B: Backend>(
    lp: &HmmLogProbs<B>,
    emissions: Tensor<B, 3>,
    valid: Option<Tensor<B, 2, Bool>>,
) -> Vec<Tensor<B, 2>> {
    let [batch, len, states] = emissions.dims();
    let trans = lp.log_transitions.clone().unsqueeze::<3>();
    let zero = Tensor::<B, 2>::zeros([batch, states], (&emissions.device(), emissions.dtype()));
    let steps = time_steps(emissions);
    let masks = valid.map(|v| mask_steps(v, states));
    let mut betas = vec![zero.clone(); len];
    for t in (0..len.saturating_sub(1)).rev() {
        let next = (steps[t + 1].clone() + betas[t + 1].clone()).unsqueeze_dim::<3>(1);
        let beta = log_sum_exp(trans.clone() + next, 2).reshape([batch, states]);
        let beta = shift_max(beta, 1).0;
        betas[t] = match &masks {
            Some(m) => zero.clone().mask_where(m[t + 1].clone(), beta),
            None => beta,
        };
    }
    betas
}

/// Posterior state marginals `γ_t[b, i] = p(z_t = i | x_b) = softmax_i(α̂_t + β̂_t)`,
/// `[B, T, S]`, from the stacked normalised forward and backward variables `[B, T, S]` (any
/// per-step shift of either cancels); 0 at padded positions.
pub(crate) fn posteriors_from<B: Backend>(
    alpha: Tensor<B, 3>,
    beta: Tensor<B, 3>,
    valid: Option<Tensor<B, 2, Bool>>,
) -> Tensor<B, 3> {
    let [batch, len, states] = alpha.dims();
    let gamma = softmax(alpha + beta, 2);
    match valid {
        Some(v) => gamma.mask_fill(
            v.bool_not()
                .unsqueeze_dim::<3>(2)
                .expand([batch, len, states]),
            0.0,
        ),
        None => gamma,
    }
}

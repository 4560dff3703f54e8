//! The forward algorithm in log space on tensors, batched over sequences: one tensor step
//! per time step over the whole batch.
//!
//! ```text
//! α_0[b, j] = log π[j] + log B[j, x_0]
//! α_t[b, j] = logsumexp_i(α_{t-1}[b, i] + log A[i, j]) + log B[j, x_t]     ([B,S,1] + [1,S,S])
//! log p(x_b) = logsumexp_j α_{T_b - 1}[b, j]
//! ```
//!
//! With lengths, `α` is carried unchanged through the padded steps `t >= T_b`, so padded
//! symbols contribute nothing.

use burn::tensor::{Bool, Int, Tensor, backend::Backend};

use super::model::HmmLogProbs;
use crate::special::log_sum_exp;

/// `log B[j, x_t]` for every position: `[B, T, S]`. Symbols are clamped into `0..E` first,
/// so padding (or, without validation, out-of-range symbols) can hold any value.
pub(crate) fn emission_terms<B: Backend>(
    log_emissions: Tensor<B, 2>,
    observations: Tensor<B, 2, Int>,
) -> Tensor<B, 3> {
    let [batch, len] = observations.dims();
    let [states, symbols] = log_emissions.dims();
    let index = observations
        .clamp(0, symbols as i64 - 1)
        .reshape([batch * len]);
    log_emissions
        .transpose()
        .select(0, index)
        .reshape([batch, len, states])
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

/// Forward variables `α_t`, `[B, S]` each, for `t = 0..T`; with a mask, `α` is carried
/// through padded steps. Differentiable (every step is taped when `lp` is tracked).
pub(crate) fn forward_alphas<B: Backend>(
    lp: &HmmLogProbs<B>,
    emissions: Tensor<B, 3>,
    valid: Option<Tensor<B, 2, Bool>>,
) -> Vec<Tensor<B, 2>> {
    let states = lp.log_initial.dims()[0];
    let trans = lp.log_transitions.clone().unsqueeze::<3>();
    let steps = time_steps(emissions);
    let masks = valid.map(|v| mask_steps(v, states));
    let mut alphas = Vec::with_capacity(steps.len());
    let mut steps = steps.into_iter();
    let first = steps.next().expect("T >= 1");
    alphas.push(lp.log_initial.clone().unsqueeze::<2>() + first);
    for (t, e) in steps.enumerate() {
        let prev = alphas.last().expect("α_0 exists").clone();
        let next = forward_step(prev.clone(), trans.clone(), e);
        let next = match &masks {
            Some(m) => prev.mask_where(m[t + 1].clone(), next),
            None => next,
        };
        alphas.push(next);
    }
    alphas
}

/// `log p(x_b)` from the last forward variable, `[B]`.
pub(crate) fn log_likelihood_from_alpha<B: Backend>(alpha: Tensor<B, 2>) -> Tensor<B, 1> {
    let [batch, _] = alpha.dims();
    log_sum_exp(alpha, 1).reshape([batch])
}

/// Backward variables `β_t[b, i] = log p(x_{t+1..T_b} | z_t = i)`, `[B, S]` each, for
/// `t = 0..T`; `β_t = 0` for `t >= T_b - 1` (the padded steps).
///
/// ```text
/// β_t[b, i] = logsumexp_j(log A[i, j] + log B[j, x_{t+1}] + β_{t+1}[b, j])
/// ```
pub(crate) fn backward_betas<B: Backend>(
    lp: &HmmLogProbs<B>,
    emissions: Tensor<B, 3>,
    valid: Option<Tensor<B, 2, Bool>>,
) -> Vec<Tensor<B, 2>> {
    let [batch, len, states] = emissions.dims();
    let trans = lp.log_transitions.clone().unsqueeze::<3>();
    let steps = time_steps(emissions);
    let masks = valid.map(|v| mask_steps(v, states));
    let zero = Tensor::<B, 2>::zeros([batch, states], &lp.log_initial.device());
    let mut betas = vec![zero.clone(); len];
    for t in (0..len.saturating_sub(1)).rev() {
        let next = (steps[t + 1].clone() + betas[t + 1].clone()).unsqueeze_dim::<3>(1);
        let beta = log_sum_exp(trans.clone() + next, 2).reshape([batch, states]);
        betas[t] = match &masks {
            Some(m) => zero.clone().mask_where(m[t + 1].clone(), beta),
            None => beta,
        };
    }
    betas
}

/// Posterior state marginals `γ_t[b, i] = p(z_t = i | x_b) = exp(α_t + β_t - log p(x_b))`,
/// `[B, T, S]`, from the stacked forward and backward variables `[B, T, S]`; 0 at padded
/// positions.
pub(crate) fn posteriors_from<B: Backend>(
    alpha: Tensor<B, 3>,
    beta: Tensor<B, 3>,
    log_likelihood: Tensor<B, 1>,
    valid: Option<Tensor<B, 2, Bool>>,
) -> Tensor<B, 3> {
    let [batch, len, states] = alpha.dims();
    let ll = log_likelihood.reshape([batch, 1, 1]);
    let gamma = (alpha + beta - ll).exp();
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

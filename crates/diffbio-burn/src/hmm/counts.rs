//! The gradient of the log-likelihood as expected counts, and its attachment to the
//! normalised log-probabilities.
//!
//! `log p(x)` is a log-sum over state paths of `Σ` (log-probabilities along the path), so its
//! derivative with respect to each log-probability entry is that entry's expected number of
//! uses under the posterior over paths:
//!
//! ```text
//! ∂ log p(x) / ∂ log π[i]    = γ_0[i]
//! ∂ log p(x) / ∂ log A[i, j] = Σ_{t<T-1} ξ_t[i, j],  ξ_t[i, j] = exp(α_t[i] + log A[i, j] + log B[j, x_{t+1}] + β_{t+1}[j] - log p(x))
//! ∂ log p(x) / ∂ log B[i, k] = Σ_t γ_t[i] [x_t = k]
//! ```
//!
//! (The tensor paths form `γ_t` and `ξ_t` as per-step softmaxes of normalised variables, see
//! [`expected_counts`], so that nothing of the size of `log p(x)` cancels in float32.)
//!
//! These are computed without a tape (forward-backward on detached tensors, or on the host),
//! per sequence as a `[B, P]` matrix `G` (`P = S + S² + S·E`), and attached as
//!
//! ```text
//! ll = ll_value + G · (θ - θ̄)        θ = (log π, log A, log B) flattened, θ̄ = θ detached
//! ```
//!
//! which equals `ll_value` exactly and gives `∂(Σ_b w_b ll_b)/∂θ = Gᵀ w` for any upstream
//! weights `w` (a mean, a sum, per-sequence weights). Autodiff then only tapes the
//! `log_softmax` normalisation, one `[B, P] x [P, 1]` product and a few element-wise ops:
//! the tape holds `O(B·(S² + S·E))` floats instead of `O(B·T·S²)`.

use burn::tensor::activation::softmax;
use burn::tensor::{Bool, FloatDType, Int, Tensor, backend::Backend};

use super::forward::{posteriors_from, symbol_index};
use super::model::HmmLogProbs;
use crate::special::constant;

/// Largest `[B, C, S, S]` block (elements) materialised for the transition counts.
const XI_BLOCK: usize = 1 << 22;

/// Expected counts `[B, S + S² + S·E]` from the stacked normalised forward and backward
/// variables `[B, T, S]` (see the `forward` module; any per-step shift of either cancels) and
/// the emission terms `[B, T, S]` of the detached log-probabilities `lp`.
///
/// Every posterior is a per-step softmax of sums of non-positive terms, so no large numbers
/// cancel in float32:
///
/// ```text
/// γ_t = softmax_i(α̂_t[i] + β̂_t[i])
/// ξ_t = softmax_{i,j}(α̂_t[i] + log A[i, j] + log B[j, x_{t+1}] + β̂_{t+1}[j])
/// ```
///
/// The transition counts are summed over blocks of time steps (`[B, C, S, S]` with
/// `B·C·S² <= 4M`), so the transient memory stays bounded.
pub(crate) fn expected_counts<B: Backend>(
    lp: &HmmLogProbs<B>,
    emissions: Tensor<B, 3>,
    observations: Tensor<B, 2, Int>,
    valid: Option<Tensor<B, 2, Bool>>,
    alpha: Tensor<B, 3>,
    beta: Tensor<B, 3>,
) -> Tensor<B, 2> {
    let [batch, len, s] = alpha.dims();
    let e = lp.log_emissions.dims()[1];
    let device = alpha.device();
    let dtype = FloatDType::from(alpha.dtype());
    let gamma = posteriors_from(alpha.clone(), beta.clone(), valid.clone());

    let initial = gamma.clone().narrow(1, 0, 1).reshape([batch, s]);

    let symbols = symbol_index(observations, e)
        .unsqueeze_dim::<3>(2)
        .expand([batch, len, e]);
    let classes = Tensor::<B, 1, Int>::arange(0..e as i64, &device)
        .reshape([1, 1, e])
        .expand([batch, len, e]);
    let onehot = symbols.equal(classes).cast(dtype);
    let emission_counts = gamma.swap_dims(1, 2).matmul(onehot).reshape([batch, s * e]);

    let mut blocks = Vec::new();
    if len > 1 {
        let from = alpha.narrow(1, 0, len - 1);
        let to = (emissions + beta).narrow(1, 1, len - 1);
        let pad = valid.map(|v| v.narrow(1, 1, len - 1).bool_not());
        let log_a = lp.log_transitions.clone().reshape([1, 1, s, s]);
        let block = (XI_BLOCK / (batch * s * s)).max(1);
        let mut start = 0;
        while start < len - 1 {
            let n = block.min(len - 1 - start);
            let log_xi = from.clone().narrow(1, start, n).unsqueeze_dim::<4>(3)
                + log_a.clone()
                + to.clone().narrow(1, start, n).unsqueeze_dim::<4>(2);
            let mut xi = softmax(log_xi.reshape([batch, n, s * s]), 2);
            if let Some(p) = &pad {
                let p = p.clone().narrow(1, start, n).unsqueeze_dim::<3>(2);
                xi = xi.mask_fill(p.expand([batch, n, s * s]), 0.0);
            }
            blocks.push(xi.sum_dim(1).reshape([batch, s * s]));
            start += n;
        }
    }
    let transitions = match blocks.len() {
        0 => Tensor::zeros([batch, s * s], (&device, initial.dtype())),
        _ => blocks
            .into_iter()
            .reduce(|a, b| a + b)
            .expect("at least one block"),
    };
    Tensor::cat(vec![initial, transitions, emission_counts], 1)
}

/// `θ - θ̄` flattened, with 0 where `θ̄ = -inf` (a structural zero, whose count is 0).
fn delta<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, 1> {
    let n = x.shape().num_elements();
    let xc = constant(&x);
    let zero = xc.clone().equal_elem(f64::NEG_INFINITY);
    (x - xc).mask_fill(zero, 0.0).reshape([n])
}

/// `value + counts · (θ - θ̄)`: the per-sequence log-likelihoods `value [B]` (untracked) with
/// the gradient `counts [B, P]` attached to the tracked log-probabilities `lp`.
pub(crate) fn attach<B: Backend>(
    value: Tensor<B, 1>,
    lp: &HmmLogProbs<B>,
    counts: Tensor<B, 2>,
) -> Tensor<B, 1> {
    let [batch, p] = counts.dims();
    let theta = Tensor::cat(
        vec![
            delta(lp.log_initial.clone()),
            delta(lp.log_transitions.clone()),
            delta(lp.log_emissions.clone()),
        ],
        0,
    );
    value + counts.matmul(theta.reshape([p, 1])).reshape([batch])
}

//! Parallel-in-time forward algorithm: an associative scan over time of the log-semiring
//! matrix product (as in dynamax and pyro's `DiscreteHMM`), `O(log T)` sequential depth
//! instead of `T` dependent steps, for accelerators where each step is a kernel launch.
//!
//! With `M_t[i, j] = log A[i, j] + log B[j, x_t]` (`[B, T-1, S, S]`, the log-space identity at
//! padded steps) and `α_0 = log π + log B[·, x_0]`:
//!
//! ```text
//! α_t = α_0 ⊗ M_1 ⊗ ... ⊗ M_t          (prefix scan)
//! β_t = (M_{t+1} ⊗ ... ⊗ M_{T-1}) ⊗ 0  (suffix scan)
//! (X ⊗ Y)[i, j] = logsumexp_k (X[i, k] + Y[k, j])
//! ```
//!
//! The log-likelihood alone uses a pairwise tree reduction (`⌈log₂ T⌉` levels); α and β for
//! all `t` use work-efficient odd-even scans (`2·⌈log₂ T⌉` levels); both do `O(B·T·S³)`
//! work in `O(log T)` batches of `~15` tensor ops. Memory: the `[B, T, S, S]` elements and one
//! level's product at a time, `O(B·T·S²)`, plus the product's broadcast sum (`S` times that,
//! materialised in blocks of at most 2²⁴ elements); with `taped_gradient` the reduction tree
//! is taped, `O(B·T·S³)`.
//!
//! # Normalisation
//! A product of `k` elements has entries of the size of `log p(x_{t..t+k})`, which grows with
//! `k`; float32 sums of such numbers lose `~ 1e-7 · |log p|` each. Every element and every
//! product is therefore shifted to maximum 0 (an untracked constant per matrix, see
//! [`log_reduce`]): the reduction adds the shifts up into a separate log scale, and the scans
//! drop them (the forward and backward variables are normalised per step anyway, as in the
//! `forward` module; the log-likelihood then comes from the filtering distributions, see
//! [`forward_backward`]).
//!
//! # The log-semiring product
//! `X ⊗ Y` is a broadcast sum `X[.., i, k, 1] + Y[.., 1, k, j]` reduced over `k` with an
//! exact log-sum-exp (see [`log_matmul`]). An earlier version used one real matrix product
//! of exponentiated, row-shifted blocks (as pyro does); its limited dynamic range (`e^-87`
//! in f32) floored impossible or very unlikely entries, which over long sequences inflated
//! posteriors past 1 and turned gradients into NaN. The exact form has the range of the
//! `Sequential` algorithm at the same `O(B·T·S³)` work.

use burn::tensor::{Bool, Tensor, TensorData, backend::Backend};

use super::check::Batch;
use super::forward::{emission_terms, shift_max};
use super::model::HmmLogProbs;
use crate::special::log_sum_exp;

/// Largest `[.., M, K, N]` broadcast sum (elements) that [`log_matmul`] materialises at
/// once; larger products are split along the time axis.
const BROADCAST_MAX: usize = 1 << 24;

/// Batched log-semiring matrix product `[B, N, M, K] ⊗ [B, N, K, P] → [B, N, M, P]`,
/// `(X ⊗ Y)[i, j] = logsumexp_k (X[i, k] + Y[k, j])`, computed exactly: a broadcast sum
/// `[.., M, K, P]` (element-wise kernels over the whole batch; much faster than `B·N` tiny
/// matrix products for an HMM's `S × S` blocks) reduced by the `-inf`-exact
/// [`log_sum_exp`]. No exponentiated intermediate, so no range limit: structural zeros stay
/// `-inf` and tiny probabilities keep their exponent.
pub(crate) fn log_matmul<B: Backend>(x: Tensor<B, 4>, y: Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, n, m, k] = x.dims();
    let p = y.dims()[3];
    let per_step = b * m * k * p;
    let steps = (BROADCAST_MAX / per_step.max(1)).max(1);
    if steps < n {
        let parts = (0..n)
            .step_by(steps)
            .map(|start| {
                let len = steps.min(n - start);
                log_matmul(
                    x.clone().narrow(1, start, len),
                    y.clone().narrow(1, start, len),
                )
            })
            .collect();
        return Tensor::cat(parts, 1);
    }
    let sum = x.reshape([b * n, m, k, 1]) + y.reshape([b * n, 1, k, p]);
    log_sum_exp(sum, 2).reshape([b, n, m, p])
}

/// The log-space identity `[1, 1, S, S]`: 0 on the diagonal, `-inf` elsewhere, in the
/// dtype of `like` on its device.
fn log_identity<B: Backend, const D: usize>(s: usize, like: &Tensor<B, D>) -> Tensor<B, 4> {
    let data: Vec<f64> = (0..s * s)
        .map(|k| {
            if k / s == k % s {
                0.0
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    Tensor::from_data(
        TensorData::new(data, [1, 1, s, s]),
        (&like.device(), like.dtype()),
    )
}

/// `(x - c, c)` per matrix of `[B, N, S, S]`: `c [B, N]` is the untracked maximum entry of
/// each matrix (0 for an all `-inf` one), so the normalised matrices have maximum 0.
fn normalise<B: Backend>(x: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 2>) {
    let [b, n, s, p] = x.dims();
    let (x, shift) = shift_max(x.reshape([b, n, s * p]), 2);
    (x.reshape([b, n, s, p]), shift.reshape([b, n]))
}

/// Inclusive scan along dim 1 of `[B, N, S, S]`: `out[t] = x[0] ⊗ ... ⊗ x[t]`, or with
/// `reverse`, `out[t] = x[t] ⊗ ... ⊗ x[N-1]`.
///
/// Work-efficient odd-even recursion (as `jax.lax.associative_scan`): combine adjacent pairs,
/// scan the `N/2` pair products recursively, then fill in the other half with one more
/// product each. `O(N)` products in `2·⌈log₂ N⌉` dependent levels.
pub(crate) fn log_scan<B: Backend>(x: Tensor<B, 4>, reverse: bool) -> Tensor<B, 4> {
    let [b, n, s, _] = x.dims();
    if n == 1 {
        return x;
    }
    let x = if n % 2 == 1 {
        let eye = log_identity(s, &x).expand([b, 1, s, s]);
        Tensor::cat(vec![x, eye], 1)
    } else {
        x
    };
    let m = x.dims()[1] / 2;
    let pairs = x.reshape([b, m, 2 * s, s]);
    let even = pairs.clone().narrow(2, 0, s);
    let odd = pairs.narrow(2, s, s);
    let z = log_scan(normalise(log_matmul(even.clone(), odd.clone())).0, reverse);
    let (out_even, out_odd) = if reverse {
        // out[2k] = z[k], out[2k+1] = x[2k+1] ⊗ z[k+1] (the last odd one is x itself).
        let mut odds = vec![];
        if m > 1 {
            odds.push(
                normalise(log_matmul(
                    odd.clone().narrow(1, 0, m - 1),
                    z.clone().narrow(1, 1, m - 1),
                ))
                .0,
            );
        }
        odds.push(odd.narrow(1, m - 1, 1));
        (z, Tensor::cat(odds, 1))
    } else {
        // out[2k+1] = z[k], out[2k] = z[k-1] ⊗ x[2k] (the first even one is x itself).
        let mut evens = vec![even.clone().narrow(1, 0, 1)];
        if m > 1 {
            evens.push(
                normalise(log_matmul(
                    z.clone().narrow(1, 0, m - 1),
                    even.narrow(1, 1, m - 1),
                ))
                .0,
            );
        }
        (Tensor::cat(evens, 1), z)
    };
    Tensor::stack::<5>(vec![out_even, out_odd], 2)
        .reshape([b, 2 * m, s, s])
        .narrow(1, 0, n)
}

/// `x[0] ⊗ x[1] ⊗ ... ⊗ x[N-1]` of `[B, N, S, S]` by a pairwise tree, as a normalised
/// matrix `[B, S, S]` (maximum 0) and its untracked log scale `[B]`: the product is their sum.
/// Every level's products are normalised, so no entry grows with `N`.
pub(crate) fn log_reduce<B: Backend>(x: Tensor<B, 4>) -> (Tensor<B, 3>, Tensor<B, 1>) {
    let [batch, _, s, _] = x.dims();
    let (mut x, shift) = normalise(x);
    let mut scale = shift.sum_dim(1);
    loop {
        let n = x.dims()[1];
        if n == 1 {
            return (x.reshape([batch, s, s]), scale.reshape([batch]));
        }
        if n % 2 == 1 {
            let eye = log_identity(s, &x).expand([batch, 1, s, s]);
            x = Tensor::cat(vec![x, eye], 1);
        }
        let half = x.dims()[1] / 2;
        let pairs = x.reshape([batch, half, 2 * s, s]);
        let left = pairs.clone().narrow(2, 0, s);
        let right = pairs.narrow(2, s, s);
        let (product, shift) = normalise(log_matmul(left, right));
        x = product;
        scale = scale + shift.sum_dim(1);
    }
}

/// The scan elements `M_t`, `t = 1..T`, `[B, T-1, S, S]` (identity where `valid` is false),
/// and the first forward variable `α_0 [B, S]`.
fn elements<B: Backend>(
    lp: &HmmLogProbs<B>,
    emissions: Tensor<B, 3>,
    valid: Option<Tensor<B, 2, Bool>>,
) -> (Option<Tensor<B, 4>>, Tensor<B, 2>) {
    let [batch, len, s] = emissions.dims();
    let alpha0 = lp.log_initial.clone().unsqueeze::<2>()
        + emissions.clone().narrow(1, 0, 1).reshape([batch, s]);
    if len == 1 {
        return (None, alpha0);
    }
    let log_a = lp.log_transitions.clone().reshape([1, 1, s, s]);
    let mut m = log_a + emissions.narrow(1, 1, len - 1).unsqueeze_dim::<4>(2);
    if let Some(v) = valid {
        let pad = v
            .narrow(1, 1, len - 1)
            .bool_not()
            .reshape([batch, len - 1, 1, 1])
            .expand([batch, len - 1, s, s]);
        let eye = log_identity(s, &m).expand([batch, len - 1, s, s]);
        m = m.mask_where(pad, eye);
    }
    (Some(m), alpha0)
}

/// `log p(x_b)`, `[B]`, by the tree reduction (differentiable; taped if `lp` is tracked).
pub(crate) fn log_likelihood<B: Backend>(lp: &HmmLogProbs<B>, batch: &Batch<B>) -> Tensor<B, 1> {
    let em = emission_terms(lp.log_emissions.clone(), batch.observations.clone());
    let (m, alpha0) = elements(lp, em, batch.valid());
    let b = batch.batch;
    match m {
        None => log_sum_exp(alpha0, 1).reshape([b]),
        Some(m) => {
            let (total, scale) = log_reduce(m);
            let s = alpha0.dims()[1];
            let last = log_sum_exp(alpha0.unsqueeze_dim::<3>(2) + total, 1).reshape([b, s]);
            log_sum_exp(last, 1).reshape([b]) + scale
        }
    }
}

/// Normalised forward and backward variables `[B, T, S]` (see the `forward` module: `α̂_t`
/// is the log filtering distribution, `β̂_t` is shifted to maximum 0), the log-likelihood
/// `[B]` and the emission terms `[B, T, S]`, by prefix and suffix scans of normalised
/// matrices (untracked use only).
///
/// The scans drop the log scales of their products, so the log-likelihood comes from the
/// filtering distributions instead, one batched forward step for all `t` at once:
/// `log p(x) = logsumexp α_0 + Σ_{t>=1} c_t` with
/// `c_t = logsumexp_j(logsumexp_i(α̂_{t-1}[i] + log A[i, j]) + log B[j, x_t])`, the log
/// predictive probability of `x_t` (0 at padded steps).
pub(crate) fn forward_backward<B: Backend>(
    lp: &HmmLogProbs<B>,
    batch: &Batch<B>,
    valid: Option<Tensor<B, 2, Bool>>,
) -> (Tensor<B, 3>, Tensor<B, 3>, Tensor<B, 1>, Tensor<B, 3>) {
    let em = emission_terms(lp.log_emissions.clone(), batch.observations.clone());
    let [b, len, s] = em.dims();
    let (m, alpha0) = elements(lp, em.clone(), valid.clone());
    let ll0 = log_sum_exp(alpha0.clone(), 1).reshape([b]);
    let first = (alpha0.clone() - ll0.clone().reshape([b, 1])).reshape([b, 1, s]);
    let zeros = || Tensor::zeros([b, 1, s], (&em.device(), em.dtype()));
    let Some(m) = m else {
        return (first, zeros(), ll0, em);
    };
    let m = normalise(m).0;
    let prefix = log_scan(m.clone(), false);
    let rest =
        log_sum_exp(first.clone().reshape([b, 1, s, 1]) + prefix, 2).reshape([b, len - 1, s]);
    let rest = rest.clone() - log_sum_exp(rest, 2);
    let suffix = log_scan(m, true);
    let betas = shift_max(log_sum_exp(suffix, 3).reshape([b, len - 1, s]), 2).0;
    let alpha = Tensor::cat(vec![first, rest], 1);
    let beta = Tensor::cat(vec![betas, zeros()], 1);

    // c_t for t = 1..T from α̂_{t-1} (log filtering distributions, normalised to sum 1).
    let prev = alpha
        .clone()
        .narrow(1, 0, len - 1)
        .reshape([b, len - 1, s, 1]);
    let log_a = lp.log_transitions.clone().reshape([1, 1, s, s]);
    let predicted = log_sum_exp(prev + log_a, 2).reshape([b, len - 1, s]);
    let mut c = log_sum_exp(predicted + em.clone().narrow(1, 1, len - 1), 2).reshape([b, len - 1]);
    if let Some(v) = valid {
        c = c.mask_fill(v.narrow(1, 1, len - 1).bool_not(), 0.0);
    }
    let ll = ll0 + c.sum_dim(1).reshape([b]);
    (alpha, beta, ll, em)
}

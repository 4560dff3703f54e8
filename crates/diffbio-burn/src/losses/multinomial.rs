//! Multinomial negative log-likelihood over the last dimension, bpnet-lite's `MNLLLoss`
//! (BPNet's profile loss).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Tensor, backend::Backend};

use super::{check_output_rank, reduce};
use crate::Reduction;
use crate::dispatch::host_or;
use crate::real::Real;
use crate::special::{constant, lgamma_value};
use crate::validate;

const NAME: &str = "MultinomialNllLoss";

/// Configuration for [`MultinomialNllLoss`].
#[derive(Config, Debug)]
pub struct MultinomialNllLossConfig {
    /// Check that `counts` are finite and non-negative and `log_probs` finite, panicking on
    /// the first violation. One device read-back per input. Default `true`.
    #[config(default = true)]
    pub validate: bool,
    /// Use the fused CPU kernel on backends that keep tensors in host memory (NdArray; see
    /// [`host`](crate::host)). `false` forces the generic tensor-op path, which every other
    /// backend takes; both agree to float32 rounding. Default `true`.
    #[config(default = true)]
    pub fast_path: bool,
}

impl MultinomialNllLossConfig {
    /// Initialises a [`MultinomialNllLoss`].
    pub fn init(&self) -> MultinomialNllLoss {
        MultinomialNllLoss {
            validate: self.validate,
            fast_path: self.fast_path,
        }
    }
}

/// Negative log-likelihood of `counts` under a multinomial with log-probabilities
/// `log_probs` along the last dimension, including the combinatorial term:
///
/// ```text
/// nll[..] = -lgamma(N + 1) + Σ_l lgamma(counts[.., l] + 1) - Σ_l counts[.., l] · log_probs[.., l]
/// N = Σ_l counts[.., l]
/// ```
///
/// `log_probs` are used as given (bpnet-lite does not renormalise them either): pass the
/// output of a `log_softmax` over the last dimension. The gradient with respect to
/// `log_probs` is `-counts`; `counts` are data and get none.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::{Tensor, activation::log_softmax};
/// use diffbio_burn::Reduction;
/// use diffbio_burn::losses::multinomial::MultinomialNllLossConfig;
///
/// let device = Default::default();
/// let logits = Tensor::<NdArray, 2>::from_floats([[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]], &device);
/// let counts = Tensor::<NdArray, 2>::from_floats([[0.0, 1.0, 3.0], [2.0, 0.0, 1.0]], &device);
/// let loss = MultinomialNllLossConfig::new().init();
/// let per_row: Tensor<NdArray, 1> = loss.forward_no_reduction(log_softmax(logits, 1), counts);
/// let values: Vec<f32> = per_row.into_data().to_vec().unwrap();
/// // Uniform probabilities, counts (2, 0, 1): -log(3!/(2!·0!·1!) · 3⁻³) = log 9.
/// assert!((values[1] - 9f32.ln()).abs() < 1e-5);
/// ```
#[derive(Module, Clone, Debug)]
pub struct MultinomialNllLoss {
    /// See [`MultinomialNllLossConfig::validate`].
    pub validate: bool,
    /// See [`MultinomialNllLossConfig::fast_path`].
    pub fast_path: bool,
}

impl MultinomialNllLoss {
    /// The per-row NLL reduced to one value: `Mean`/`Auto` average the rows (bpnet-lite's
    /// profile loss), `Sum` adds them, `BatchMean` divides the sum by the size of the first
    /// dimension.
    ///
    /// # Shapes
    /// - `log_probs`, `counts`: `[..., L]`, rank at least 2
    /// - output: `[1]`
    ///
    /// # Panics
    /// See [`forward_no_reduction`](Self::forward_no_reduction).
    pub fn forward<B: Backend, const D: usize>(
        &self,
        log_probs: Tensor<B, D>,
        counts: Tensor<B, D>,
        reduction: Reduction,
    ) -> Tensor<B, 1> {
        self.check(&log_probs, &counts);
        host_or!(
            B,
            self.fast_path && non_empty(&counts),
            {
                let scale = super::reduction_scale(&counts.dims()[..D - 1], reduction);
                crate::host::profile::multinomial_nll(log_probs, &counts, Some(scale))
            },
            reduce(self.nll_keep_dim(log_probs, counts), reduction)
        )
    }

    /// The NLL of each row; the last dimension is removed.
    ///
    /// # Shapes
    /// - `log_probs`, `counts`: `[..., L]`, rank `D >= 2`
    /// - output: `[...]`, rank `D2 = D - 1`
    ///
    /// # Panics
    /// - If the shapes differ, or `D2 != D - 1`.
    /// - With `validate` on: if a count is negative or not finite, or a `log_probs` entry is
    ///   not finite.
    pub fn forward_no_reduction<B: Backend, const D: usize, const D2: usize>(
        &self,
        log_probs: Tensor<B, D>,
        counts: Tensor<B, D>,
    ) -> Tensor<B, D2> {
        check_output_rank::<D, D2>(NAME);
        self.check(&log_probs, &counts);
        host_or!(
            B,
            self.fast_path && non_empty(&counts),
            {
                let shape = leading_shape(counts.dims());
                crate::host::profile::multinomial_nll(log_probs, &counts, None).reshape(shape)
            },
            self.nll_keep_dim(log_probs, counts).squeeze_dim(D - 1)
        )
    }

    /// The NLL of `counts` under `softmax(logits)` over the last dimension, reduced:
    /// [`forward`](Self::forward) of `log_softmax(logits)`, fused (BPNet's profile loss from
    /// its unnormalised profile head). The gradient with respect to `logits` is
    /// `N·softmax(logits) - counts`.
    ///
    /// # Shapes
    /// - `logits`, `counts`: `[..., L]`, rank at least 2
    /// - output: `[1]`
    ///
    /// # Panics
    /// As [`forward_no_reduction`](Self::forward_no_reduction), naming `logits`.
    pub fn forward_logits<B: Backend, const D: usize>(
        &self,
        logits: Tensor<B, D>,
        counts: Tensor<B, D>,
        reduction: Reduction,
    ) -> Tensor<B, 1> {
        self.check_named("logits", &logits, &counts);
        host_or!(
            B,
            self.fast_path && non_empty(&counts),
            {
                let scale = super::reduction_scale(&counts.dims()[..D - 1], reduction);
                crate::host::profile::multinomial_nll_logits(logits, &counts, Some(scale))
            },
            reduce(self.nll_keep_dim(normalise(logits), counts), reduction,)
        )
    }

    /// The per-row NLL of `counts` under `softmax(logits)`; the last dimension is removed.
    /// See [`forward_logits`](Self::forward_logits).
    ///
    /// # Shapes
    /// - `logits`, `counts`: `[..., L]`, rank `D >= 2`
    /// - output: `[...]`, rank `D2 = D - 1`
    ///
    /// # Panics
    /// As [`forward_no_reduction`](Self::forward_no_reduction).
    pub fn forward_logits_no_reduction<B: Backend, const D: usize, const D2: usize>(
        &self,
        logits: Tensor<B, D>,
        counts: Tensor<B, D>,
    ) -> Tensor<B, D2> {
        check_output_rank::<D, D2>(NAME);
        self.check_named("logits", &logits, &counts);
        host_or!(
            B,
            self.fast_path && non_empty(&counts),
            {
                let shape = leading_shape(counts.dims());
                crate::host::profile::multinomial_nll_logits(logits, &counts, None).reshape(shape)
            },
            self.nll_keep_dim(normalise(logits), counts)
                .squeeze_dim(D - 1)
        )
    }

    /// Shape checks (always) and value checks (with `validate`).
    fn check<B: Backend, const D: usize>(&self, log_probs: &Tensor<B, D>, counts: &Tensor<B, D>) {
        self.check_named("log_probs", log_probs, counts);
    }

    fn check_named<B: Backend, const D: usize>(
        &self,
        name: &str,
        log_probs: &Tensor<B, D>,
        counts: &Tensor<B, D>,
    ) {
        check_rows(NAME, self.validate, (name, log_probs), counts);
    }

    /// The NLL of each row, keeping the last dimension with size 1. Callers check the inputs.
    pub(crate) fn nll_keep_dim<B: Backend, const D: usize>(
        &self,
        log_probs: Tensor<B, D>,
        counts: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let counts = constant(&counts);
        let last = D - 1;
        row_nll(
            counts.clone().sum_dim(last),
            (counts.clone() * log_probs).sum_dim(last),
            lgamma_value(counts + 1.0).sum_dim(last),
        )
    }
}

/// The checks of a loss over rows of counts in the last dimension (rank >= 2, `counts` and
/// the parameter `(name, x)` of one shape and dtype; with `validate`, finite `x` and finite
/// non-negative counts), panicking with messages naming `loss`.
pub(crate) fn check_rows<B: Backend, const D: usize>(
    loss: &str,
    validate: bool,
    (name, x): (&str, &Tensor<B, D>),
    counts: &Tensor<B, D>,
) {
    assert!(
        D >= 2,
        "{loss}: `{name}` and `counts` need rank >= 2 (rows of categories in the last \
         dimension), got rank {D} with shape {:?}",
        counts.dims()
    );
    validate::same_shape(loss, (name, &x.dims()), ("counts", &counts.dims()));
    validate::same_dtype(loss, (name, x), ("counts", counts));
    if validate {
        validate::finite(loss, name, x);
        validate::non_negative(loss, "counts", counts);
    }
}

/// The multinomial NLL of one row of counts `x` under log-probabilities `log p`, from the
/// row's sums `total = N = Σ x`, `dot = Σ x·log p` and `log_factorials = Σ ln x!`:
///
/// ```text
/// NLL = -ln N! + Σ ln x! - Σ x·log p
/// ```
///
/// With logits `l` in place of `log p`, `dot = Σ x·l - N·logsumexp(l)`. The gradient with
/// respect to `log p` is `-x`; with respect to `l`, `N·softmax(l) - x`. Shared by the host
/// kernels and the generic path.
#[inline(always)]
pub(crate) fn row_nll<R: Real>(total: R, dot: R, log_factorials: R) -> R {
    log_factorials - (total + 1.0).lgamma() - dot
}

/// `log_softmax` over the last dimension; an empty last dimension stays empty (Burn's
/// `log_softmax` takes the maximum over it, which panics).
fn normalise<B: Backend, const D: usize>(logits: Tensor<B, D>) -> Tensor<B, D> {
    if logits.dims()[D - 1] == 0 {
        logits
    } else {
        log_softmax(logits, D - 1)
    }
}

/// Whether a tensor has any element (the host kernels need rows of positive width; empty
/// inputs take the generic path, whose answer is the sum over nothing).
pub(crate) fn non_empty<B: Backend, const D: usize>(x: &Tensor<B, D>) -> bool {
    x.shape().num_elements() > 0
}

/// The shape `[...]` of `[..., L]` (rank `D2 = D - 1`, checked by the callers).
#[cfg_attr(not(feature = "ndarray"), allow(dead_code))]
fn leading_shape<const D: usize, const D2: usize>(dims: [usize; D]) -> [usize; D2] {
    let mut out = [0; D2];
    out.copy_from_slice(&dims[..D - 1]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    // One float type per test process: Burn 0.21 keys the default dtype by device, so an
    // `NdArray<f32>` test would make the `NdArray<f64>` tests of `special` compute in f32.
    type B = NdArray<f64>;

    #[test]
    fn single_category_certain_outcome_has_zero_nll() {
        let loss = MultinomialNllLossConfig::new().init();
        let log_probs = Tensor::<B, 2>::from_floats([[0.0]], &Default::default());
        let counts = Tensor::<B, 2>::from_floats([[17.0]], &Default::default());
        let nll: Tensor<B, 1> = loss.forward_no_reduction(log_probs, counts);
        assert!(nll.into_scalar().abs() < 1e-5);
    }
}

//! Mean squared error between predicted log counts and `log(1 + counts)`, bpnet-lite's
//! `log1pMSELoss` (BPNet's count loss).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::multinomial::non_empty;
use super::{check_output_rank, reduce};
use crate::Reduction;
use crate::dispatch::host_or;
use crate::real::Real;
use crate::special::constant;
use crate::validate;

const NAME: &str = "Log1pMseLoss";

/// Configuration for [`Log1pMseLoss`].
#[derive(Config, Debug)]
pub struct Log1pMseLossConfig {
    /// Check that `counts` are finite and non-negative and `log_pred` is finite, panicking on
    /// the first violation. One device read-back per input. Default `true`.
    #[config(default = true)]
    pub validate: bool,
    /// Use the fused host kernel on backends that keep tensors in host memory (see
    /// [`host`](crate::host)): one pass for the value and its derivative instead of a graph
    /// of small tensor operations, which is what a `[n, 1]` count head costs. `false` forces
    /// the generic tensor-op path, which every other backend takes; both agree to float32
    /// rounding. Default `true`.
    #[config(default = true)]
    pub fast_path: bool,
}

impl Log1pMseLossConfig {
    /// Initialises a [`Log1pMseLoss`].
    pub fn init(&self) -> Log1pMseLoss {
        Log1pMseLoss {
            validate: self.validate,
            fast_path: self.fast_path,
        }
    }
}

/// Squared error of predicted log counts, averaged over the last dimension:
///
/// ```text
/// loss[..] = mean_l (log(1 + counts[.., l]) - log_pred[.., l])²
/// ```
///
/// With BPNet's `[n, 1]` total-count shapes the element-wise output is `[n]`, as in
/// bpnet-lite. Unlike bpnet-lite, `log_pred` and `counts` must have the same shape: a `[n]`
/// prediction against `[n, 1]` counts does not compile (the ranks differ), and equal ranks
/// with different sizes panic, instead of bpnet-lite's silent `[n, n]` broadcast:
///
/// ```compile_fail
/// # use burn::backend::NdArray;
/// # use burn::tensor::Tensor;
/// # use diffbio_burn::Reduction;
/// # use diffbio_burn::losses::log1p_mse::Log1pMseLossConfig;
/// let device = Default::default();
/// let log_pred = Tensor::<NdArray, 1>::from_floats([2.3, 0.1], &device); // [n]
/// let counts = Tensor::<NdArray, 2>::from_floats([[9.0], [0.0]], &device); // [n, 1]
/// Log1pMseLossConfig::new().init().forward(log_pred, counts, Reduction::Mean);
/// ```
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use diffbio_burn::Reduction;
/// use diffbio_burn::losses::log1p_mse::Log1pMseLossConfig;
///
/// let device = Default::default();
/// let log_pred = Tensor::<NdArray, 2>::from_floats([[2.3], [0.1]], &device);
/// let counts = Tensor::<NdArray, 2>::from_floats([[9.0], [0.0]], &device);
/// let loss = Log1pMseLossConfig::new().init();
/// let per_region: Tensor<NdArray, 1> = loss.forward_no_reduction(log_pred.clone(), counts.clone());
/// assert_eq!(per_region.dims(), [2]);
/// let mean = loss.forward(log_pred, counts, Reduction::Mean).into_scalar();
/// assert!((mean - 0.005).abs() < 1e-4);
/// ```
#[derive(Module, Clone, Debug)]
pub struct Log1pMseLoss {
    /// See [`Log1pMseLossConfig::validate`].
    pub validate: bool,
    /// See [`Log1pMseLossConfig::fast_path`].
    pub fast_path: bool,
}

impl Log1pMseLoss {
    /// The element-wise loss reduced to one value: `Mean`/`Auto` average the per-row losses
    /// (bpnet-lite's count loss), `Sum` adds them, `BatchMean` divides the sum by the size of
    /// the first dimension.
    ///
    /// # Shapes
    /// - `log_pred`, `counts`: `[..., L]`, rank at least 2
    /// - output: `[1]`
    ///
    /// # Panics
    /// See [`forward_no_reduction`](Self::forward_no_reduction).
    pub fn forward<B: Backend, const D: usize>(
        &self,
        log_pred: Tensor<B, D>,
        counts: Tensor<B, D>,
        reduction: Reduction,
    ) -> Tensor<B, 1> {
        self.check(&log_pred, &counts);
        let dims = counts.dims();
        host_or!(
            B,
            self.fast_path && D >= 2 && non_empty(&counts),
            {
                // The mean over the last dimension, then the reduction over the rows.
                let rows = super::reduction_scale(&dims[..D - 1], reduction);
                let scale = rows / dims[D - 1] as f64;
                squared_errors_host(log_pred, counts, Some(scale)).total()
            },
            reduce(squared_errors(log_pred, counts).mean_dim(D - 1), reduction)
        )
    }

    /// The loss per row: the mean over the last dimension, which is removed.
    ///
    /// # Shapes
    /// - `log_pred`, `counts`: `[..., L]`, rank `D >= 2`
    /// - output: `[...]`, rank `D2 = D - 1`
    ///
    /// # Panics
    /// - If the shapes differ, or `D2 != D - 1`.
    /// - With `validate` on: if a count is negative or not finite, or `log_pred` is not
    ///   finite.
    pub fn forward_no_reduction<B: Backend, const D: usize, const D2: usize>(
        &self,
        log_pred: Tensor<B, D>,
        counts: Tensor<B, D>,
    ) -> Tensor<B, D2> {
        check_output_rank::<D, D2>(NAME);
        self.check(&log_pred, &counts);
        let per_element = host_or!(
            B,
            self.fast_path && non_empty(&counts),
            squared_errors_host(log_pred, counts, None).elementwise(),
            squared_errors(log_pred, counts)
        );
        per_element.mean_dim(D - 1).squeeze_dim(D - 1)
    }

    /// The shape, dtype and (with `validate`) value checks.
    fn check<B: Backend, const D: usize>(&self, log_pred: &Tensor<B, D>, counts: &Tensor<B, D>) {
        validate::same_shape(
            NAME,
            ("log_pred", &log_pred.dims()),
            ("counts", &counts.dims()),
        );
        validate::same_dtype(NAME, ("log_pred", log_pred), ("counts", counts));
        if self.validate {
            validate::finite(NAME, "log_pred", log_pred);
            validate::non_negative(NAME, "counts", counts);
        }
    }
}

/// `(log(1 + counts) - log_pred)²` element-wise (checked inputs), gradient to `log_pred`.
fn squared_errors<B: Backend, const D: usize>(
    log_pred: Tensor<B, D>,
    counts: Tensor<B, D>,
) -> Tensor<B, D> {
    residual(log_pred, constant(&counts)).square()
}

/// The same as a fused host kernel, element-wise (`scale: None`) or summed and multiplied by
/// `scale`, with `d/dlog_pred = -2·residual`.
#[cfg(feature = "ndarray")]
fn squared_errors_host<B: Backend, const D: usize>(
    log_pred: Tensor<B, D>,
    counts: Tensor<B, D>,
    scale: Option<f64>,
) -> crate::host::pointwise::Reduced<B, D> {
    crate::host::pointwise::map([log_pred, counts], [0], scale, |[p, c]| {
        let r = residual(p, c);
        (r * r, [-2.0 * r])
    })
}

/// `ln_1p(counts) - log_pred`: the loss is its square and its derivative with respect to
/// `log_pred` is `-2·residual`. Shared by the mixture loss's host kernel and generic path.
#[inline(always)]
pub(crate) fn residual<R: Real>(log_pred: R, counts: R) -> R {
    counts.ln_1p() - log_pred
}

//! The losses, one family per file, each following `burn::nn::loss` conventions.

pub mod beta_binomial;
pub mod bpnet;
pub mod dirichlet_multinomial;
pub(crate) mod gamma_ratio;
pub mod kl;
pub mod log1p_mse;
pub mod multinomial;
pub mod nb_mixture;
pub mod negative_binomial;
pub mod vae;
pub mod zinb;

use burn::tensor::{Tensor, backend::Backend};

use crate::Reduction;

/// Applies a [`Reduction`] to an element-wise loss of any rank: the sum times
/// [`reduction_scale`].
pub(crate) fn reduce<B: Backend, const D: usize>(
    loss: Tensor<B, D>,
    reduction: Reduction,
) -> Tensor<B, 1> {
    let scale = reduction_scale(&loss.dims(), reduction);
    loss.sum() * scale
}

/// The factor a [`Reduction`] applies to the sum of an element-wise loss of shape `dims`:
/// `Mean`/`Auto` `1/(number of elements)`, `Sum` 1, `BatchMean` `1/dims[0]`. The one
/// definition of the reductions: the generic path multiplies by it (burn-autodiff 0.21's
/// backward of a scalar *division* rounds the divisor's reciprocal to f32, even on f64
/// tensors) and the host kernels fuse it.
pub(crate) fn reduction_scale(dims: &[usize], reduction: Reduction) -> f64 {
    match reduction {
        Reduction::Mean | Reduction::Auto => 1.0 / dims.iter().product::<usize>() as f64,
        Reduction::Sum => 1.0,
        Reduction::BatchMean => 1.0 / dims[0] as f64,
    }
}

/// Panics unless `D2 + 1 == D`, for losses that reduce the last dimension of a rank-`D` input
/// and return a rank-`D2` tensor (Burn's `squeeze_dim` convention).
pub(crate) fn check_output_rank<const D: usize, const D2: usize>(loss: &str) {
    assert!(
        D >= 2 && D2 + 1 == D,
        "{loss}: reduces the last dimension, so a rank-{D} input needs output rank {}, got {D2} \
         (inputs must have rank >= 2)",
        D.saturating_sub(1)
    );
}

//! The Gaussian KL divergence of a VAE's approximate posterior from the standard normal
//! prior, and a linear KL warm-up schedule.

use burn::config::Config;
use burn::tensor::{Tensor, backend::Backend};

use crate::real::{Real, exp_m1_minus};
use crate::validate;

/// `KL(N(mean, exp(logvar)) ‖ N(0, 1))`, element-wise (one value per latent dimension):
///
/// ```text
/// kl = -½ · (1 + logvar - mean² - exp(logvar)) = ½ · (mean² + [exp(logvar) - 1 - logvar])
/// ```
///
/// The bracket is evaluated without cancellation near `logvar = 0` (where it is
/// `≈ logvar² / 2`), so the value keeps full relative accuracy for posteriors close to the
/// prior. Sum over the latent dimension for the per-sample KL, or pass the result to
/// [`VaeLoss::combine`](super::vae::VaeLoss::combine).
///
/// # Shapes
/// - `mean`, `logvar`: any shape `[..]`, the same for both
/// - output: the same shape
///
/// # Panics
/// If the shapes of `mean` and `logvar` differ.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use diffbio_burn::losses::kl::gaussian_kl;
///
/// let device = Default::default();
/// let mean = Tensor::<NdArray, 2>::from_floats([[0.0, 1.0]], &device);
/// let logvar = Tensor::<NdArray, 2>::from_floats([[0.0, 0.0]], &device);
/// let kl: Vec<f32> = gaussian_kl(mean, logvar).into_data().to_vec().unwrap();
/// assert_eq!(kl, vec![0.0, 0.5]);
/// ```
pub fn gaussian_kl<B: Backend, const D: usize>(
    mean: Tensor<B, D>,
    logvar: Tensor<B, D>,
) -> Tensor<B, D> {
    validate::same_shape(
        "gaussian_kl",
        ("mean", &mean.dims()),
        ("logvar", &logvar.dims()),
    );
    kl_terms(mean, logvar).0
}

/// The element-wise KL and its derivatives `(kl, [∂/∂mean, ∂/∂logvar])`, for the fused
/// kernel: `½(mean² + [eˡᵒᵍᵛᵃʳ - 1 - logvar])`, `mean`, `½·expm1(logvar)` (the bracket plus
/// `logvar`, so it keeps full relative accuracy near 0 too).
#[inline(always)]
pub(crate) fn kl_terms<R: Real>(mean: R, logvar: R) -> (R, [R; 2]) {
    let bracket = exp_m1_minus(logvar.clone());
    (
        (mean.clone().square() + bracket.clone()) * 0.5,
        [mean, (bracket + logvar) * 0.5],
    )
}

/// Configuration for [`KlWarmup`].
#[derive(Config, Debug)]
pub struct KlWarmupConfig {
    /// Number of epochs over which the KL weight rises linearly from `min_weight` to
    /// `max_weight` (scVI's `n_epochs_kl_warmup`). `0` means no warm-up.
    pub n_epochs: usize,
    /// The weight reached at the end of the warm-up and kept afterwards (the VAE's beta).
    /// Default `1.0`.
    #[config(default = 1.0)]
    pub max_weight: f64,
    /// The weight at epoch 0. Default `0.0`.
    #[config(default = 0.0)]
    pub min_weight: f64,
}

impl KlWarmupConfig {
    /// Initialises a [`KlWarmup`].
    ///
    /// # Panics
    /// If a weight is negative or not finite, or `min_weight > max_weight`.
    pub fn init(&self) -> KlWarmup {
        assert!(
            self.min_weight.is_finite()
                && self.max_weight.is_finite()
                && 0.0 <= self.min_weight
                && self.min_weight <= self.max_weight,
            "KlWarmup: need 0 <= min_weight <= max_weight (finite), got min_weight {} and \
             max_weight {}",
            self.min_weight,
            self.max_weight
        );
        KlWarmup {
            n_epochs: self.n_epochs,
            max_weight: self.max_weight,
            min_weight: self.min_weight,
        }
    }
}

/// Linear KL warm-up (annealing) of the ELBO's KL weight:
///
/// ```text
/// weight(epoch) = min_weight + (max_weight - min_weight) · min(1, epoch / n_epochs)
/// ```
///
/// # Example
/// ```
/// use diffbio_burn::losses::kl::KlWarmupConfig;
/// use diffbio_burn::losses::vae::VaeLossConfig;
///
/// let warmup = KlWarmupConfig::new(10).init();
/// assert_eq!(warmup.weight(0), 0.0);
/// assert_eq!(warmup.weight(5), 0.5);
/// assert_eq!(warmup.weight(25), 1.0);
/// for epoch in 0..3 {
///     let loss = VaeLossConfig::new().with_kl_weight(warmup.weight(epoch)).init();
///     // ... train one epoch with `loss`
/// #   let _ = loss;
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KlWarmup {
    n_epochs: usize,
    max_weight: f64,
    min_weight: f64,
}

impl KlWarmup {
    /// The KL weight for `epoch` (counted from 0).
    pub fn weight(&self, epoch: usize) -> f64 {
        self.weight_at(epoch as f64)
    }

    /// The KL weight at a fractional epoch (e.g. `epoch + batch / batches_per_epoch` for a
    /// per-step schedule).
    pub fn weight_at(&self, epoch: f64) -> f64 {
        let progress = if self.n_epochs == 0 {
            1.0
        } else {
            (epoch / self.n_epochs as f64).clamp(0.0, 1.0)
        };
        self.min_weight + (self.max_weight - self.min_weight) * progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_linear_and_saturates() {
        let w = KlWarmupConfig::new(4)
            .with_min_weight(0.2)
            .with_max_weight(1.0)
            .init();
        let weights: Vec<f64> = (0..6).map(|e| w.weight(e)).collect();
        assert_eq!(weights, vec![0.2, 0.4, 0.6000000000000001, 0.8, 1.0, 1.0]);
        assert_eq!(KlWarmupConfig::new(0).init().weight(0), 1.0);
    }

    #[test]
    #[should_panic(expected = "KlWarmup: need 0 <= min_weight <= max_weight")]
    fn inverted_weights_are_rejected() {
        KlWarmupConfig::new(3).with_min_weight(2.0).init();
    }
}

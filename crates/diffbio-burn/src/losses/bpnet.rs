//! BPNet's profile + count mixture loss, bpnet-lite's `_mixture_loss`.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, backend::Backend};

use super::log1p_mse::Log1pMseLoss;
use super::multinomial::MultinomialNllLoss;
use super::multinomial::non_empty;
use crate::Reduction;
use crate::dispatch::host_or;
use crate::real::Real;
use crate::validate;

const NAME: &str = "BpnetMixtureLoss";

/// Configuration for [`BpnetMixtureLoss`].
#[derive(Config, Debug)]
pub struct BpnetMixtureLossConfig {
    /// Weight of the count loss in the total: `total = profile + count_loss_weight · count`.
    /// bpnet-lite's command line sets it to the mean total count per strand of the training
    /// peaks. Must be finite and `>= 0`. Default `1.0`.
    #[config(default = 1.0)]
    pub count_loss_weight: f64,
    /// Check the inputs' value domain (`y` finite and `>= 0`, finite `logits` and
    /// `log_counts`, `labels` 0 or 1) and panic on the first violation. One device
    /// read-back per input. Default `true`.
    #[config(default = true)]
    pub validate: bool,
    /// Use the fused CPU kernel on backends that keep tensors in host memory (NdArray; see
    /// [`host`](crate::host)). `false` forces the generic tensor-op path, which every other
    /// backend takes; both agree to float32 rounding. Default `true`.
    #[config(default = true)]
    pub fast_path: bool,
}

impl BpnetMixtureLossConfig {
    /// Initialises a [`BpnetMixtureLoss`].
    ///
    /// # Panics
    /// If `count_loss_weight` is negative or not finite.
    pub fn init(&self) -> BpnetMixtureLoss {
        assert!(
            self.count_loss_weight.is_finite() && self.count_loss_weight >= 0.0,
            "{NAME}: count_loss_weight must be finite and >= 0, got {}",
            self.count_loss_weight
        );
        BpnetMixtureLoss {
            count_loss_weight: self.count_loss_weight,
            validate: self.validate,
            fast_path: self.fast_path,
        }
    }
}

/// The three parts of the BPNet loss, each a `[1]` tensor (reduced) or `[n]` (per region).
#[derive(Debug, Clone)]
pub struct BpnetLosses<B: Backend, const D: usize> {
    /// Multinomial NLL of the profiles (labelled regions only).
    pub profile: Tensor<B, D>,
    /// log1p-MSE of the total counts (every region).
    pub count: Tensor<B, D>,
    /// `profile + count_loss_weight · count`.
    pub total: Tensor<B, D>,
}

/// BPNet's mixture loss for a batch of `n` regions, `s` strands and `L` positions.
///
/// ```text
/// log_probs[i]  = log_softmax(logits[i] over strands × positions)
/// profile[i]    = MNLL(y[i]; log_probs[i])                 (see MultinomialNllLoss)
/// count[i]      = (log(1 + Σ y[i]) - log_counts[i])²       (see Log1pMseLoss)
/// profile       = mean of profile[i] over regions with labels[i] = 1 (all without labels)
/// count         = mean of count[i] over all regions
/// total         = profile + count_loss_weight · count
/// ```
///
/// A batch with no labelled region (no peak) has `profile = 0` and no profile gradient;
/// bpnet-lite returns NaN there, which poisons a whole training step.
///
/// # Example
/// ```
/// use burn::backend::{Autodiff, NdArray};
/// use burn::tensor::{Int, Tensor};
/// use diffbio_burn::losses::bpnet::BpnetMixtureLossConfig;
///
/// type B = Autodiff<NdArray>;
/// let device = Default::default();
/// // Two regions, two strands, three positions.
/// let y = Tensor::<B, 3>::from_floats(
///     [[[0.0, 4.0, 1.0], [1.0, 3.0, 0.0]], [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]],
///     &device,
/// );
/// let logits = Tensor::<B, 3>::zeros([2, 2, 3], &device).require_grad();
/// let log_counts = Tensor::<B, 2>::from_floats([[2.0], [0.5]], &device).require_grad();
/// let labels = Tensor::<B, 1, Int>::from_ints([1, 0], &device); // region 2 is not a peak
/// let loss = BpnetMixtureLossConfig::new().with_count_loss_weight(4.5).init();
/// let parts = loss.forward(y, logits.clone(), log_counts.clone(), Some(labels));
/// let grads = parts.total.backward();
/// assert!(logits.grad(&grads).is_some() && log_counts.grad(&grads).is_some());
/// ```
#[derive(Module, Clone, Debug)]
pub struct BpnetMixtureLoss {
    /// See [`BpnetMixtureLossConfig::count_loss_weight`].
    pub count_loss_weight: f64,
    /// See [`BpnetMixtureLossConfig::validate`].
    pub validate: bool,
    /// See [`BpnetMixtureLossConfig::fast_path`].
    pub fast_path: bool,
}

impl BpnetMixtureLoss {
    /// The profile, count and total losses as bpnet-lite reduces them (means; see the type
    /// docs). `labels` (`None`: every region is a peak) select the regions whose profile is
    /// scored.
    ///
    /// # Shapes
    /// - `y`, `logits`: `[n, s, L]`
    /// - `log_counts`: `[n, 1]`
    /// - `labels`: `[n]`, values 0 or 1
    /// - output: three `[1]` tensors
    ///
    /// # Panics
    /// See [`forward_no_reduction`](Self::forward_no_reduction).
    pub fn forward<B: Backend>(
        &self,
        y: Tensor<B, 3>,
        logits: Tensor<B, 3>,
        log_counts: Tensor<B, 2>,
        labels: Option<Tensor<B, 1, Int>>,
    ) -> BpnetLosses<B, 1> {
        self.forward_reduced(y, logits, log_counts, labels, Reduction::Mean)
    }

    /// As [`forward`](Self::forward) with a choice of [`Reduction`]: `Mean`/`Auto` as
    /// bpnet-lite (profile averaged over the labelled regions, count over all regions),
    /// `Sum` adds the per-region losses, `BatchMean` divides those sums by `n`.
    ///
    /// # Panics
    /// See [`forward_no_reduction`](Self::forward_no_reduction).
    pub fn forward_reduced<B: Backend>(
        &self,
        y: Tensor<B, 3>,
        logits: Tensor<B, 3>,
        log_counts: Tensor<B, 2>,
        labels: Option<Tensor<B, 1, Int>>,
        reduction: Reduction,
    ) -> BpnetLosses<B, 1> {
        host_or!(
            B,
            self.fast_path && non_empty(&y),
            {
                self.check(&y, &logits, &log_counts, labels.as_ref());
                let n = y.dims()[0];
                let inputs =
                    crate::host::profile::MixtureInputs::new(y, logits, log_counts, labels);
                let (profile, count) = crate::host::profile::mixture(inputs, |labelled| {
                    let (profile, count) = mixture_scales(reduction, n, labelled as f64);
                    Some(crate::host::profile::Scales { profile, count })
                });
                self.combine(profile, count)
            },
            self.reduced_generic(y, logits, log_counts, labels, reduction)
        )
    }

    /// The generic path of [`forward_reduced`](Self::forward_reduced).
    fn reduced_generic<B: Backend>(
        &self,
        y: Tensor<B, 3>,
        logits: Tensor<B, 3>,
        log_counts: Tensor<B, 2>,
        labels: Option<Tensor<B, 1, Int>>,
        reduction: Reduction,
    ) -> BpnetLosses<B, 1> {
        let n = y.dims()[0];
        let labelled = match &labels {
            Some(l) => float_like(l.clone(), &log_counts).sum(),
            None => Tensor::full([1], n as f64, (&log_counts.device(), log_counts.dtype())),
        };
        let per_region = self.forward_no_reduction(y, logits, log_counts, labels);
        let (profile_scale, count_scale) = mixture_scales(reduction, n, labelled);
        let profile = per_region.profile.sum() * profile_scale;
        self.combine(profile, per_region.count.sum() * count_scale)
    }

    /// The losses per region: `profile[i]` (0 for regions with label 0), `count[i]` and
    /// `total[i] = profile[i] + count_loss_weight · count[i]`.
    ///
    /// # Shapes
    /// - `y`, `logits`: `[n, s, L]`
    /// - `log_counts`: `[n, 1]`
    /// - `labels`: `[n]`
    /// - output: three `[n]` tensors
    ///
    /// # Panics
    /// - If `logits` and `y` differ in shape, `log_counts` is not `[n, 1]` or `labels` not
    ///   `[n]`.
    /// - With `validate` on: if `y` has a negative or non-finite entry, `logits` or
    ///   `log_counts` a non-finite one, or a label is not 0 or 1.
    pub fn forward_no_reduction<B: Backend>(
        &self,
        y: Tensor<B, 3>,
        logits: Tensor<B, 3>,
        log_counts: Tensor<B, 2>,
        labels: Option<Tensor<B, 1, Int>>,
    ) -> BpnetLosses<B, 1> {
        let [n, s, l] = y.dims();
        self.check(&y, &logits, &log_counts, labels.as_ref());
        host_or!(
            B,
            self.fast_path && non_empty(&y),
            {
                let inputs =
                    crate::host::profile::MixtureInputs::new(y, logits, log_counts, labels);
                let (profile, count) = crate::host::profile::mixture(inputs, |_| None);
                self.combine(profile, count)
            },
            {
                let unchecked_mse = Log1pMseLoss {
                    validate: false,
                    fast_path: false,
                };
                if s * l == 0 {
                    // No positions: the profile likelihood is an empty product (NLL 0) and
                    // every total count is 0. (Burn's `reshape` reads a 0 as "keep this
                    // dimension", so the general case below cannot handle it.)
                    let count = unchecked_mse.forward_no_reduction::<B, 2, 1>(
                        log_counts.clone(),
                        log_counts.zeros_like(),
                    );
                    return self.combine(count.zeros_like(), count);
                }
                let y = y.reshape([n, s * l]);
                let log_probs = log_softmax(logits.reshape([n, s * l]), 1);
                let unchecked_mnll = MultinomialNllLoss {
                    validate: false,
                    fast_path: false,
                };
                let profile = unchecked_mnll.nll_keep_dim(log_probs, y.clone());
                let profile = match labels {
                    Some(labels) => {
                        let labels = float_like(labels, &log_counts);
                        profile * labels.reshape([n, 1])
                    }
                    None => profile,
                };
                let unchecked_mse = Log1pMseLoss {
                    validate: false,
                    fast_path: false,
                };
                let count = unchecked_mse.forward_no_reduction::<B, 2, 1>(log_counts, y.sum_dim(1));
                self.combine(profile.reshape([n]), count)
            }
        )
    }

    /// Shape checks (always) and value checks (with `validate`).
    fn check<B: Backend>(
        &self,
        y: &Tensor<B, 3>,
        logits: &Tensor<B, 3>,
        log_counts: &Tensor<B, 2>,
        labels: Option<&Tensor<B, 1, Int>>,
    ) {
        let [n, s, l] = y.dims();
        validate::same_shape(NAME, ("y", &[n, s, l]), ("logits", &logits.dims()));
        validate::same_dtype(NAME, ("logits", logits), ("y", y));
        validate::same_dtype(NAME, ("logits", logits), ("log_counts", log_counts));
        validate::expect_shape(NAME, "log_counts", &log_counts.dims(), &[n, 1], "`[n, 1]`");
        if let Some(labels) = labels {
            validate::expect_shape(NAME, "labels", &labels.dims(), &[n], "`[n]`");
            if self.validate {
                validate::binary_labels(NAME, "labels", labels);
            }
        }
        if self.validate {
            validate::non_negative(NAME, "y", y);
            validate::finite(NAME, "logits", logits);
            validate::finite(NAME, "log_counts", log_counts);
        }
    }

    fn combine<B: Backend>(&self, profile: Tensor<B, 1>, count: Tensor<B, 1>) -> BpnetLosses<B, 1> {
        let total = profile.clone() + count.clone() * self.count_loss_weight;
        BpnetLosses {
            profile,
            count,
            total,
        }
    }
}

/// The factors `(profile, count)` by which a [`Reduction`] multiplies the summed per-region
/// profile and count losses of `n` regions, `labelled` of them peaks: `Mean`/`Auto` as
/// bpnet-lite (profile over the peaks, at least one, so that a batch without peaks gives 0
/// with zero gradient; count over all regions), `Sum` 1, `BatchMean` `1/n`. Shared by the
/// host kernel (`labelled` a number) and the generic path (a `[1]` tensor, no read-back).
pub(crate) fn mixture_scales<R: Real>(reduction: Reduction, n: usize, labelled: R) -> (R, f64) {
    let inv_n = 1.0 / n as f64;
    match reduction {
        Reduction::Mean | Reduction::Auto => (labelled.clamp_min(1.0).recip(), inv_n),
        Reduction::Sum => (labelled.full_like(1.0), 1.0),
        Reduction::BatchMean => (labelled.full_like(inv_n), inv_n),
    }
}

/// 0/1 labels as floats of `like`'s dtype (not the device default).
fn float_like<B: Backend>(labels: Tensor<B, 1, Int>, like: &Tensor<B, 2>) -> Tensor<B, 1> {
    labels.float().cast(like.dtype())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    // One float type per test process: Burn 0.21 keys the default dtype by device, so an
    // `NdArray<f32>` test would make the `NdArray<f64>` tests of `special` compute in f32.
    type B = NdArray<f64>;

    fn inputs() -> (Tensor<B, 3>, Tensor<B, 3>, Tensor<B, 2>) {
        let device = Default::default();
        let y = Tensor::from_floats([[[1.0, 2.0]], [[0.0, 3.0]]], &device);
        let logits = Tensor::from_floats([[[0.1, -0.2]], [[0.3, 0.0]]], &device);
        let log_counts = Tensor::from_floats([[1.0], [1.5]], &device);
        (y, logits, log_counts)
    }

    fn labels(v: [i64; 2]) -> Option<Tensor<B, 1, Int>> {
        Some(Tensor::from_ints(v, &Default::default()))
    }

    #[test]
    #[should_panic(
        expected = "BpnetMixtureLoss: count_loss_weight must be finite and >= 0, got -1"
    )]
    fn negative_weight_is_rejected_at_init() {
        BpnetMixtureLossConfig::new()
            .with_count_loss_weight(-1.0)
            .init();
    }

    #[test]
    fn all_labelled_equals_no_labels_and_no_peak_gives_zero_profile() {
        let loss = BpnetMixtureLossConfig::new().init();
        let (y, logits, log_counts) = inputs();
        let run = |labels| {
            let parts = loss.forward(y.clone(), logits.clone(), log_counts.clone(), labels);
            (parts.profile.into_scalar(), parts.count.into_scalar())
        };
        let (all, count) = run(None);
        assert_eq!(run(labels([1, 1])), (all, count));
        assert_eq!(run(labels([0, 0])), (0.0, count));
        assert!(all > 0.0);
    }
}

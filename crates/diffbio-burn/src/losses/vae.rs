//! The VAE evidence lower bound (ELBO) loss, DiffBio's `VAELoss`, and its composition with
//! count likelihoods (scVI).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Tensor, backend::Backend};

use super::kl::gaussian_kl;
use super::reduce;
use crate::Reduction;
use crate::dispatch::host_or;
use crate::real::{Real, sigmoid, softplus};
use crate::special::{constant, with_grad};
use crate::validate;

const NAME: &str = "VaeLoss";

/// The reconstruction term of [`VaeLoss`].
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum Reconstruction {
    /// Squared error `(x - x_recon)²` (Gaussian likelihood up to constants).
    Mse,
    /// Binary cross-entropy with `x_recon` given as **logits**, for `x ∈ [0, 1]`:
    /// `softplus(x_recon) - x · x_recon`, exact for all finite logits (DiffBio's
    /// `log(σ(z) + 1e-8)` caps the loss of a confident mistake at 18.4 and almost zeroes its
    /// gradient).
    Bce,
}

/// Configuration for [`VaeLoss`].
#[derive(Config, Debug)]
pub struct VaeLossConfig {
    /// Weight `beta` of the KL term. Must be finite and `>= 0`. Default `1.0`. Use
    /// [`KlWarmup`](super::kl::KlWarmup) for an annealed schedule.
    #[config(default = 1.0)]
    pub kl_weight: f64,
    /// The reconstruction term. Default [`Reconstruction::Mse`].
    #[config(default = "Reconstruction::Mse")]
    pub reconstruction: Reconstruction,
    /// Check the value domain (all inputs finite; `x ∈ [0, 1]` for BCE) and panic on the
    /// first violation. One device read-back per input. Default `true`.
    #[config(default = true)]
    pub validate: bool,
    /// Use the fused CPU kernels on backends that keep tensors in host memory (NdArray; see
    /// [`host`](crate::host)). `false` forces the generic tensor-op path, which every other
    /// backend takes; both agree to float32 rounding. Default `true`.
    #[config(default = true)]
    pub fast_path: bool,
}

impl VaeLossConfig {
    /// Initialises a [`VaeLoss`].
    ///
    /// # Panics
    /// If `kl_weight` is negative or not finite.
    pub fn init(&self) -> VaeLoss {
        assert!(
            self.kl_weight.is_finite() && self.kl_weight >= 0.0,
            "{NAME}: kl_weight must be finite and >= 0, got {}",
            self.kl_weight
        );
        VaeLoss {
            kl_weight: self.kl_weight,
            reconstruction: self.reconstruction,
            validate: self.validate,
            fast_path: self.fast_path,
        }
    }
}

/// The ELBO loss and its two terms.
#[derive(Debug, Clone)]
pub struct Elbo<B: Backend> {
    /// `recon + kl_weight · kl`, the quantity to minimise (`[1]`).
    pub loss: Tensor<B, 1>,
    /// The reduced reconstruction term (`[1]`).
    pub recon: Tensor<B, 1>,
    /// The reduced (unweighted) KL term (`[1]`).
    pub kl: Tensor<B, 1>,
}

/// The element-wise terms of the ELBO, before reduction.
#[derive(Debug, Clone)]
pub struct ElboTerms<B: Backend> {
    /// Reconstruction loss per feature, `[B, F]`.
    pub recon: Tensor<B, 2>,
    /// KL divergence per latent dimension, `[B, L]` (see [`gaussian_kl`]).
    pub kl: Tensor<B, 2>,
}

/// The negative ELBO of a Gaussian-latent VAE, DiffBio's `VAELoss`:
///
/// ```text
/// loss = R(recon[b, f]) + kl_weight · R(kl[b, l])
/// recon[b, f] = (x - x_recon)²                              (Mse)
///             = softplus(x_recon) - x · x_recon             (Bce, x_recon are logits)
/// kl[b, l]    = -½ · (1 + logvar - mean² - exp(logvar))
/// ```
///
/// where the reduction `R` is applied to each term separately: `Reduction::Mean` averages
/// each over all its elements (DiffBio's value), `Reduction::BatchMean` sums over features and
/// latent dimensions and averages over the batch (the textbook per-sample ELBO),
/// `Reduction::Sum` sums everything.
///
/// # Composing with a count likelihood (scVI)
/// [`combine`](Self::combine) takes any element-wise reconstruction NLL `[B, G]`, such as
/// the [`NegativeBinomialLoss`](super::negative_binomial::NegativeBinomialLoss) or
/// [`ZinbLoss`](super::zinb::ZinbLoss) of the decoder's `mu`:
///
/// ```
/// use burn::backend::{Autodiff, NdArray};
/// use burn::tensor::Tensor;
/// use diffbio_burn::Reduction;
/// use diffbio_burn::losses::kl::KlWarmupConfig;
/// use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
/// use diffbio_burn::losses::vae::VaeLossConfig;
///
/// type B = Autodiff<NdArray>;
/// let device = Default::default();
/// let counts = Tensor::<B, 2>::from_floats([[0.0, 5.0, 1.0], [2.0, 0.0, 9.0]], &device);
/// // Decoder output: gene proportions × library size, and per-gene inverse dispersion.
/// let mu = Tensor::<B, 2>::from_floats([[0.5, 4.0, 1.5], [1.5, 0.5, 9.0]], &device).require_grad();
/// let theta = Tensor::<B, 1>::from_floats([3.0, 10.0, 1.0], &device).require_grad();
/// // Encoder output: latent posterior.
/// let mean = Tensor::<B, 2>::from_floats([[0.1, -0.3], [0.5, 0.0]], &device).require_grad();
/// let logvar = Tensor::<B, 2>::from_floats([[-0.2, 0.1], [0.0, -1.0]], &device).require_grad();
///
/// let nb = NegativeBinomialLossConfig::new().init();
/// let warmup = KlWarmupConfig::new(400).init();
/// let vae = VaeLossConfig::new().with_kl_weight(warmup.weight(10)).init();
/// let elbo = vae.combine(
///     nb.forward_no_reduction(counts, mu.clone(), theta.clone()),
///     mean.clone(),
///     logvar.clone(),
///     Reduction::BatchMean, // NB NLL summed over genes + KL summed over latents, per cell
/// );
/// let grads = elbo.loss.backward();
/// assert!(mu.grad(&grads).is_some() && mean.grad(&grads).is_some());
/// ```
#[derive(Module, Clone, Debug)]
pub struct VaeLoss {
    /// See [`VaeLossConfig::kl_weight`].
    pub kl_weight: f64,
    /// See [`VaeLossConfig::reconstruction`].
    #[module(skip)]
    pub reconstruction: Reconstruction,
    /// See [`VaeLossConfig::validate`].
    pub validate: bool,
    /// See [`VaeLossConfig::fast_path`].
    pub fast_path: bool,
}

impl VaeLoss {
    /// The reduced ELBO loss and its terms (see the type docs for the reductions).
    ///
    /// # Shapes
    /// - `x`, `x_recon`: `[B, F]`
    /// - `mean`, `logvar`: `[B, L]`
    /// - output: three `[1]` tensors
    ///
    /// # Panics
    /// See [`forward_no_reduction`](Self::forward_no_reduction).
    pub fn forward<B: Backend>(
        &self,
        x: Tensor<B, 2>,
        x_recon: Tensor<B, 2>,
        mean: Tensor<B, 2>,
        logvar: Tensor<B, 2>,
        reduction: Reduction,
    ) -> Elbo<B> {
        self.check_recon(&x, &x_recon);
        self.check_latent(x.dims()[0], &mean, &logvar);
        let recon = self.recon_reduced(x, x_recon, reduction.clone());
        self.weigh(recon, self.kl_reduced(mean, logvar, reduction))
    }

    /// The element-wise reconstruction and KL terms.
    ///
    /// Gradients flow to `x_recon`, `mean` and `logvar`; `x` is data and gets none.
    ///
    /// # Shapes
    /// - `x`, `x_recon`: `[B, F]`
    /// - `mean`, `logvar`: `[B, L]`
    /// - output: `recon` `[B, F]`, `kl` `[B, L]`
    ///
    /// # Panics
    /// - If `x` and `x_recon`, or `mean` and `logvar`, differ in shape, or the batch sizes of
    ///   `x` and `mean` differ.
    /// - With `validate` on: if an input is not finite, or (BCE) `x` is outside `[0, 1]`.
    pub fn forward_no_reduction<B: Backend>(
        &self,
        x: Tensor<B, 2>,
        x_recon: Tensor<B, 2>,
        mean: Tensor<B, 2>,
        logvar: Tensor<B, 2>,
    ) -> ElboTerms<B> {
        self.check_recon(&x, &x_recon);
        self.check_latent(x.dims()[0], &mean, &logvar);
        ElboTerms {
            recon: self.recon_elements(x, x_recon),
            kl: self.kl_elements(mean, logvar),
        }
    }

    /// The ELBO with any element-wise reconstruction NLL `recon` (e.g. a negative-binomial
    /// NLL per cell and gene), reduced together with the Gaussian KL as in
    /// [`forward`](Self::forward). See the type docs for an scVI example.
    ///
    /// # Shapes
    /// - `recon`: `[B, F]`
    /// - `mean`, `logvar`: `[B, L]`
    /// - output: three `[1]` tensors
    ///
    /// # Panics
    /// If `mean` and `logvar` differ in shape or their batch size is not `B`; with `validate`
    /// on, if `mean` or `logvar` is not finite.
    pub fn combine<B: Backend>(
        &self,
        recon: Tensor<B, 2>,
        mean: Tensor<B, 2>,
        logvar: Tensor<B, 2>,
        reduction: Reduction,
    ) -> Elbo<B> {
        self.check_latent(recon.dims()[0], &mean, &logvar);
        let kl = self.kl_reduced(mean, logvar, reduction.clone());
        self.weigh(reduce(recon, reduction), kl)
    }

    /// Reduces element-wise terms and weights the KL.
    pub fn reduce_terms<B: Backend>(&self, terms: ElboTerms<B>, reduction: Reduction) -> Elbo<B> {
        let recon = reduce(terms.recon, reduction.clone());
        self.weigh(recon, reduce(terms.kl, reduction))
    }

    fn weigh<B: Backend>(&self, recon: Tensor<B, 1>, kl: Tensor<B, 1>) -> Elbo<B> {
        Elbo {
            loss: recon.clone() + kl.clone() * self.kl_weight,
            recon,
            kl,
        }
    }

    fn recon_elements<B: Backend>(&self, x: Tensor<B, 2>, x_recon: Tensor<B, 2>) -> Tensor<B, 2> {
        host_or!(
            B,
            self.fast_path,
            {
                let kind = self.reconstruction;
                crate::host::pointwise::map([x, x_recon], [1], None, move |[x, r]| {
                    let (value, d) = recon_terms(kind, x, r);
                    (value, [d])
                })
                .elementwise()
            },
            {
                let (value, d) = recon_terms(self.reconstruction, constant(&x), constant(&x_recon));
                with_grad(value, x_recon, d)
            }
        )
    }

    fn recon_reduced<B: Backend>(
        &self,
        x: Tensor<B, 2>,
        x_recon: Tensor<B, 2>,
        reduction: Reduction,
    ) -> Tensor<B, 1> {
        host_or!(
            B,
            self.fast_path,
            {
                let scale = Some(super::reduction_scale(&x.dims(), reduction));
                let kind = self.reconstruction;
                crate::host::pointwise::map([x, x_recon], [1], scale, move |[x, r]| {
                    let (value, d) = recon_terms(kind, x, r);
                    (value, [d])
                })
                .total()
            },
            reduce(self.recon_elements(x, x_recon), reduction)
        )
    }

    fn kl_elements<B: Backend>(&self, mean: Tensor<B, 2>, logvar: Tensor<B, 2>) -> Tensor<B, 2> {
        host_or!(
            B,
            self.fast_path,
            crate::host::pointwise::map(
                [mean, logvar],
                [0, 1],
                None,
                |[m, v]| super::kl::kl_terms(m, v)
            )
            .elementwise(),
            gaussian_kl(mean, logvar)
        )
    }

    fn kl_reduced<B: Backend>(
        &self,
        mean: Tensor<B, 2>,
        logvar: Tensor<B, 2>,
        reduction: Reduction,
    ) -> Tensor<B, 1> {
        host_or!(
            B,
            self.fast_path,
            {
                let scale = Some(super::reduction_scale(&mean.dims(), reduction));
                crate::host::pointwise::map([mean, logvar], [0, 1], scale, |[m, v]| {
                    super::kl::kl_terms(m, v)
                })
                .total()
            },
            reduce(gaussian_kl(mean, logvar), reduction)
        )
    }

    fn check_recon<B: Backend>(&self, x: &Tensor<B, 2>, x_recon: &Tensor<B, 2>) {
        validate::same_shape(NAME, ("x", &x.dims()), ("x_recon", &x_recon.dims()));
        validate::same_dtype(NAME, ("x_recon", x_recon), ("x", x));
        if self.validate {
            match self.reconstruction {
                Reconstruction::Mse => validate::finite(NAME, "x", x),
                Reconstruction::Bce => validate::unit_interval(NAME, "x", x),
            }
            validate::finite(NAME, "x_recon", x_recon);
        }
    }

    fn check_latent<B: Backend>(&self, batch: usize, mean: &Tensor<B, 2>, logvar: &Tensor<B, 2>) {
        validate::same_shape(NAME, ("mean", &mean.dims()), ("logvar", &logvar.dims()));
        validate::same_dtype(NAME, ("mean", mean), ("logvar", logvar));
        let latent_batch = mean.dims()[0];
        assert!(
            latent_batch == batch,
            "{NAME}: batch size of `mean` {:?} ({latent_batch}) does not match the \
             reconstruction's ({batch})",
            mean.dims()
        );
        if self.validate {
            validate::finite(NAME, "mean", mean);
            validate::finite(NAME, "logvar", logvar);
        }
    }
}

/// The element-wise reconstruction NLL of `x_recon` against data `x` and its derivative with
/// respect to `x_recon`: `(x - r)²`, `2(r - x)` (MSE) or, for BCE on logits,
/// `softplus(r) - x·r`, `sigmoid(r) - x` (the exact log-sigmoid form, no overflow).
#[inline(always)]
pub(crate) fn recon_terms<R: Real>(kind: Reconstruction, x: R, r: R) -> (R, R) {
    match kind {
        Reconstruction::Mse => {
            let diff = r - x;
            (diff.clone().square(), diff * 2.0)
        }
        Reconstruction::Bce => (softplus(r.clone()) - x.clone() * r.clone(), sigmoid(r) - x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    // One float type per test process: Burn 0.21 keys the default dtype by device, so an
    // `NdArray<f32>` test would make the `NdArray<f64>` tests of `special` compute in f32.
    type B = NdArray<f64>;

    fn t(v: [[f32; 2]; 2]) -> Tensor<B, 2> {
        Tensor::from_floats(v, &Default::default())
    }

    const X: [[f32; 2]; 2] = [[0.0, 1.0], [1.0, 0.0]];

    fn loss(reconstruction: Reconstruction) -> VaeLoss {
        VaeLossConfig::new()
            .with_reconstruction(reconstruction)
            .init()
    }

    #[test]
    #[should_panic(expected = "VaeLoss: kl_weight must be finite and >= 0, got -0.5")]
    fn negative_kl_weight_is_rejected_at_init() {
        VaeLossConfig::new().with_kl_weight(-0.5).init();
    }

    #[test]
    fn bce_is_exact_for_confident_mistakes() {
        // x = 0, logit 30: the exact loss is softplus(30) ≈ 30 (DiffBio's capped form: 18.42).
        let x = t([[0.0, 0.0], [0.0, 0.0]]);
        let z = t([[30.0, 30.0], [30.0, 30.0]]);
        let zero = t([[0.0, 0.0], [0.0, 0.0]]);
        let elbo = loss(Reconstruction::Bce).forward(x, z, zero.clone(), zero, Reduction::Mean);
        assert!((elbo.recon.into_scalar() - 30.0).abs() < 1e-5);
        assert_eq!(elbo.kl.into_scalar(), 0.0);
    }

    #[test]
    fn reductions_relate_as_documented() {
        let vae = VaeLossConfig::new().with_kl_weight(0.5).init();
        let x_recon = t([[0.5, 0.2], [0.9, -0.1]]);
        let (mean, logvar) = (t([[0.3, -1.0], [0.0, 2.0]]), t([[0.1, -0.5], [1.0, 0.0]]));
        let run = |r| {
            let e = vae.forward(t(X), x_recon.clone(), mean.clone(), logvar.clone(), r);
            [
                e.loss.into_scalar(),
                e.recon.into_scalar(),
                e.kl.into_scalar(),
            ]
        };
        let (mean_r, sum_r, batch_r) = (
            run(Reduction::Mean),
            run(Reduction::Sum),
            run(Reduction::BatchMean),
        );
        for i in 1..3 {
            assert!((sum_r[i] / 4.0 - mean_r[i]).abs() < 1e-6);
            assert!((sum_r[i] / 2.0 - batch_r[i]).abs() < 1e-6);
        }
        assert!((batch_r[0] - (batch_r[1] + 0.5 * batch_r[2])).abs() < 1e-6);
    }
}

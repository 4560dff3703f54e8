//! The scVI model (Lopez et al. 2018): a Gaussian encoder on log counts, an NB/ZINB decoder
//! with a learnable inverse dispersion per gene, and its burn-train steps.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Transaction};
use burn::train::metric::{Adaptor, ItemLazy};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use diffbio_burn::Reduction;
use diffbio_burn::losses::negative_binomial::{NegativeBinomialLoss, NegativeBinomialLossConfig};
use diffbio_burn::losses::vae::VaeLossConfig;
use diffbio_burn::losses::zinb::{ZinbLoss, ZinbLossConfig};
use diffbio_burn::nn::softmax;
use diffbio_burn::special::ln_1p;
use diffbio_burn_data::counts::CountsBatch;

use crate::common::train::BatchStats;

/// Architecture of [`Scvi`].
#[derive(Config, Debug)]
pub struct ScviConfig {
    /// Number of genes (input and output width); set from the data.
    pub n_genes: usize,
    /// Hidden layer width of encoder and decoder.
    #[config(default = 128)]
    pub n_hidden: usize,
    /// Latent dimension.
    #[config(default = 10)]
    pub n_latent: usize,
    /// Dropout rate after the encoder's hidden layer.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Zero-inflated NB likelihood (a dropout-logit head) instead of NB.
    #[config(default = false)]
    pub zero_inflated: bool,
}

/// The KL weight schedule of training: linear from 0 to `beta` over `warmup_iterations`
/// optimiser steps, counted by the train step itself (shared by the copies burn-train makes
/// of the model, e.g. one per device).
#[derive(Debug, Clone)]
pub struct KlSchedule {
    /// Steps over which the weight rises (0: `beta` from the start).
    pub warmup_iterations: usize,
    /// Final KL weight.
    pub beta: f64,
    /// Train steps taken so far.
    pub step: Arc<AtomicUsize>,
}

impl KlSchedule {
    /// The weight at `step`.
    pub fn weight(&self, step: usize) -> f64 {
        if self.warmup_iterations == 0 {
            return self.beta;
        }
        self.beta * (step as f64 / self.warmup_iterations as f64).min(1.0)
    }
}

impl ScviConfig {
    /// A freshly initialised model; `schedule` is the training's KL weight schedule.
    pub fn init<B: Backend>(&self, schedule: KlSchedule, device: &B::Device) -> Scvi<B> {
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        Scvi {
            encoder_hidden: linear(self.n_genes, self.n_hidden),
            encoder_mean: linear(self.n_hidden, self.n_latent),
            encoder_logvar: linear(self.n_hidden, self.n_latent),
            dropout: DropoutConfig::new(self.dropout).init(),
            decoder_hidden: linear(self.n_latent, self.n_hidden),
            decoder_scale: linear(self.n_hidden, self.n_genes),
            decoder_dropout: self
                .zero_inflated
                .then(|| linear(self.n_hidden, self.n_genes)),
            log_theta: Param::from_tensor(Tensor::zeros([self.n_genes], device)),
            warmup_iterations: schedule.warmup_iterations,
            beta: schedule.beta,
            step: schedule.step,
        }
    }
}

/// scVI's VAE: Gaussian encoder on log counts, NB/ZINB decoder with per-gene dispersion.
#[derive(Module, Debug)]
pub struct Scvi<B: Backend> {
    encoder_hidden: Linear<B>,
    encoder_mean: Linear<B>,
    encoder_logvar: Linear<B>,
    dropout: Dropout,
    decoder_hidden: Linear<B>,
    decoder_scale: Linear<B>,
    decoder_dropout: Option<Linear<B>>,
    /// `log theta`, `[G]`.
    log_theta: Param<Tensor<B, 1>>,
    warmup_iterations: usize,
    beta: f64,
    step: Arc<AtomicUsize>,
}

/// Decoder outputs for a batch of cells.
pub struct Decoded<B: Backend> {
    /// NB mean, `[n, G]`.
    pub mu: Tensor<B, 2>,
    /// ZINB dropout logits, `[n, G]`.
    pub pi_logits: Option<Tensor<B, 2>>,
}

impl<B: Backend> Scvi<B> {
    /// Posterior `(mean, logvar)`, each `[n, latent]`, from counts `[n, G]`.
    pub fn encode(&self, counts: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let h = self
            .dropout
            .forward(relu(self.encoder_hidden.forward(ln_1p(counts))));
        (
            self.encoder_mean.forward(h.clone()),
            self.encoder_logvar.forward(h),
        )
    }

    /// `mu = softmax(decoder(z)) × library` and the dropout logits; `library` is `[n, 1]`.
    pub fn decode(&self, z: Tensor<B, 2>, library: Tensor<B, 2>) -> Decoded<B> {
        let h = relu(self.decoder_hidden.forward(z));
        let proportions = softmax(self.decoder_scale.forward(h.clone()), 1);
        Decoded {
            mu: proportions * library,
            pi_logits: self.decoder_dropout.as_ref().map(|l| l.forward(h)),
        }
    }

    /// Inverse dispersion per gene, `[G]`.
    pub fn theta(&self) -> Tensor<B, 1> {
        self.log_theta.val().exp()
    }

    fn schedule(&self) -> KlSchedule {
        KlSchedule {
            warmup_iterations: self.warmup_iterations,
            beta: self.beta,
            step: self.step.clone(),
        }
    }

    /// The ELBO terms of a batch with one sampled `z` per cell, weighing the KL by `kl_weight`.
    pub fn forward_elbo(&self, batch: CountsBatch<B>, kl_weight: f64) -> ScviOutput<B> {
        let x = batch.counts;
        let (decoded, mean, logvar) = self.forward_sampled(x.clone(), batch.library);
        self.elbo(x, decoded, mean, logvar, kl_weight)
    }

    /// Encodes `counts`, draws one `z` per cell from the posterior and decodes it with
    /// `library`: `(decoded, mean, logvar)`.
    pub fn forward_sampled(
        &self,
        counts: Tensor<B, 2>,
        library: Tensor<B, 2>,
    ) -> (Decoded<B>, Tensor<B, 2>, Tensor<B, 2>) {
        let (mean, logvar) = self.encode(counts);
        let z = sample_latent(&mean, &logvar);
        (self.decode(z, library), mean, logvar)
    }

    /// The ELBO terms of counts `x` under the decoded distribution and the posterior
    /// `(mean, logvar)`.
    pub fn elbo(
        &self,
        x: Tensor<B, 2>,
        decoded: Decoded<B>,
        mean: Tensor<B, 2>,
        logvar: Tensor<B, 2>,
        kl_weight: f64,
    ) -> ScviOutput<B> {
        let batch_size = x.dims()[0];
        let recon = CountNll::new().nll(x, decoded, self.theta());
        let vae = VaeLossConfig::new()
            .with_kl_weight(kl_weight)
            .with_validate(false)
            .init();
        let elbo = vae.combine(recon, mean, logvar, Reduction::BatchMean);
        ScviOutput {
            loss: elbo.loss,
            recon: elbo.recon,
            kl: elbo.kl,
            kl_weight,
            batch_size,
        }
    }
}

/// One draw of `z` per cell from the posterior `N(mean, exp(logvar))` (reparameterised).
pub fn sample_latent<B: Backend>(mean: &Tensor<B, 2>, logvar: &Tensor<B, 2>) -> Tensor<B, 2> {
    let noise = mean.random_like(Distribution::Normal(0.0, 1.0));
    mean.clone() + (logvar.clone() * 0.5).exp() * noise
}

/// The count likelihood with validation off: the data are validated once by the reader, and
/// a check per step would read a flag back from the device every step (a GPU sync).
#[derive(Clone)]
pub struct CountNll {
    nb: NegativeBinomialLoss,
    zinb: ZinbLoss,
}

impl CountNll {
    /// NB and ZINB NLLs without per-step validation.
    pub fn new() -> Self {
        Self {
            nb: NegativeBinomialLossConfig::new()
                .with_validate(false)
                .init(),
            zinb: ZinbLossConfig::new().with_validate(false).init(),
        }
    }

    /// Element-wise NLL `[n, G]` of `counts` under the decoded distribution.
    pub fn nll<B: Backend>(
        &self,
        counts: Tensor<B, 2>,
        decoded: Decoded<B>,
        theta: Tensor<B, 1>,
    ) -> Tensor<B, 2> {
        match decoded.pi_logits {
            Some(pi) => self
                .zinb
                .forward_no_reduction(counts, decoded.mu, theta, pi),
            None => self.nb.forward_no_reduction(counts, decoded.mu, theta),
        }
    }
}

/// ELBO terms of a batch (per cell means), as the train and inference steps return them.
pub struct ScviOutput<B: Backend> {
    /// `recon + kl_weight · kl`, what training minimises.
    pub loss: Tensor<B, 1>,
    /// Count NLL per cell.
    pub recon: Tensor<B, 1>,
    /// KL divergence per cell.
    pub kl: Tensor<B, 1>,
    /// The KL weight of this step.
    pub kl_weight: f64,
    /// Cells in the batch.
    pub batch_size: usize,
}

/// [`ScviOutput`] read back to the host, for the metrics.
#[derive(Debug, Clone)]
pub struct ScviStats {
    /// Training objective per cell.
    pub loss: f64,
    /// Count NLL per cell.
    pub recon: f64,
    /// KL per cell.
    pub kl: f64,
    /// KL weight.
    pub kl_weight: f64,
    /// Cells in the batch.
    pub batch_size: usize,
}

impl BatchStats for ScviStats {
    fn batch_size(&self) -> usize {
        self.batch_size
    }
}

impl<B: Backend> ItemLazy for ScviOutput<B> {
    type ItemSync = ScviStats;

    fn sync(self) -> ScviStats {
        let [loss, recon, kl]: [_; 3] = Transaction::default()
            .register(self.loss)
            .register(self.recon)
            .register(self.kl)
            .execute()
            .try_into()
            .expect("three tensors");
        let scalar = |d: TensorData| d.convert::<f64>().to_vec::<f64>().expect("f64")[0];
        ScviStats {
            loss: scalar(loss),
            recon: scalar(recon),
            kl: scalar(kl),
            kl_weight: self.kl_weight,
            batch_size: self.batch_size,
        }
    }
}

impl Adaptor<ScviStats> for ScviStats {
    fn adapt(&self) -> ScviStats {
        self.clone()
    }
}

impl<B: AutodiffBackend> TrainStep for Scvi<B> {
    type Input = CountsBatch<B>;
    type Output = ScviOutput<B>;

    fn step(&self, batch: CountsBatch<B>) -> TrainOutput<ScviOutput<B>> {
        let schedule = self.schedule();
        let kl_weight = schedule.weight(schedule.step.fetch_add(1, Ordering::Relaxed));
        let output = self.forward_elbo(batch, kl_weight);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl<B: Backend> InferenceStep for Scvi<B> {
    type Input = CountsBatch<B>;
    type Output = ScviOutput<B>;

    /// Held-out terms with the full KL weight (β): the negative ELBO the model is judged by.
    fn step(&self, batch: CountsBatch<B>) -> ScviOutput<B> {
        self.forward_elbo(batch, self.beta)
    }
}

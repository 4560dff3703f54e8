//! Training on burn-train: the saved training config, the loss terms as metrics, and
//! `SupervisedTraining` with checkpoints, resume, the renderer and one or several devices.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use burn::optim::AdamConfig;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::train::{ExecutionStrategy, Learner, MultiDeviceOptim, SupervisedTraining};

use crate::common::train::{TermMetric, managed};
use crate::data::{Split, eval_loader, train_loader};
use crate::model::{KlSchedule, Scvi, ScviConfig, ScviStats};

/// Everything a run depends on; saved as `config.json` next to the model.
#[derive(Config, Debug)]
pub struct ScviTrainingConfig {
    /// The model's architecture (`n_genes` is set from the data).
    pub model: ScviConfig,
    /// Adam's settings.
    pub optimizer: AdamConfig,
    /// Held-out evaluation settings.
    pub eval: EvalConfig,
    /// Training epochs (the held-out ELBO stops improving after about 250 on the default data).
    #[config(default = 300)]
    pub epochs: usize,
    /// Cells per minibatch (across all devices).
    #[config(default = 128)]
    pub batch_size: usize,
    /// Adam's learning rate.
    #[config(default = 1e-3)]
    pub lr: f64,
    /// Fraction of the epochs over which the KL weight rises linearly from 0 to `beta`.
    #[config(default = 0.25)]
    pub warmup_fraction: f64,
    /// Final KL weight β.
    #[config(default = 1.0)]
    pub beta: f64,
    /// Fraction of cells held out for evaluation.
    #[config(default = 0.2)]
    pub heldout_fraction: f64,
    /// Use at most this many cells (a seeded random subset).
    pub max_cells: Option<usize>,
    /// Seed of the split, the minibatch order, the weights and the latent samples.
    #[config(default = 42)]
    pub seed: u64,
    /// Save a checkpoint (model and optimiser, for `--resume`) every this many epochs, and
    /// after the last.
    #[config(default = 10)]
    pub checkpoint_every: usize,
    /// Threads that densify minibatches ahead of the training step.
    #[config(default = 1)]
    pub num_workers: usize,
}

/// Held-out evaluation settings.
#[derive(Config, Debug)]
pub struct EvalConfig {
    /// Neighbours of the kNN label-transfer metric.
    #[config(default = 15)]
    pub knn_k: usize,
    /// Monte Carlo samples of the held-out ELBO estimate.
    #[config(default = 20)]
    pub elbo_samples: usize,
    /// Simulated draws per held-out cell in the posterior predictive check.
    #[config(default = 5)]
    pub ppc_draws: usize,
    /// Adam steps refining the baseline's per-gene theta.
    #[config(default = 50)]
    pub baseline_steps: usize,
}

impl ScviTrainingConfig {
    /// The defaults of every setting (the command line's defaults).
    pub fn defaults() -> Self {
        Self::new(
            ScviConfig::new(0),
            AdamConfig::new().with_epsilon(1e-8),
            EvalConfig::new(),
        )
    }
}

/// Trains on `split.train` (the KL weight counts per-device steps), validating each epoch on `split.heldout`, on `devices` (the first
/// one alone, or all of them data-parallel); resumes after epoch `resume` from the checkpoints
/// in `out` when asked. Returns the trained model.
pub fn train<B: AutodiffBackend>(
    config: &ScviTrainingConfig,
    split: &Split,
    out: &Path,
    devices: Vec<B::Device>,
    resume: Option<usize>,
) -> Scvi<B::InnerBackend> {
    let device = devices[0].clone();
    // burn-train gives each device its own minibatches of the loader's size and sums their
    // gradients: per-device batches of batch_size / devices keep the global batch.
    let device_batch = config.batch_size.div_ceil(devices.len());
    let steps_per_epoch = split.train.n_cells().div_ceil(device_batch);
    let warmup_epochs = (config.epochs as f64 * config.warmup_fraction).round() as usize;
    let schedule = KlSchedule {
        warmup_iterations: warmup_epochs * steps_per_epoch,
        beta: config.beta,
        step: Arc::new(AtomicUsize::new(resume.unwrap_or(0) * steps_per_epoch)),
    };
    let model = config.model.init::<B>(schedule, &device);
    let learner = Learner::new(model, config.optimizer.init(), config.lr);

    let mut training = SupervisedTraining::new(
        out,
        train_loader::<B>(&split.train, device_batch, config),
        eval_loader::<B::InnerBackend>(&split.heldout, config),
    )
    .metrics((
        TermMetric::<ScviStats>::new("Loss", |s| s.loss),
        TermMetric::<ScviStats>::new("Neg ELBO", |s| s.recon + s.kl),
        TermMetric::<ScviStats>::new("Reconstruction", |s| s.recon),
        TermMetric::<ScviStats>::new("KL", |s| s.kl),
        TermMetric::<ScviStats>::new("KL weight", |s| s.kl_weight),
    ));
    training = managed(
        training,
        out,
        config.epochs,
        config.checkpoint_every,
        resume,
    );
    if devices.len() > 1 {
        let strategy = ExecutionStrategy::multi(devices, MultiDeviceOptim::OptimMainDevice);
        training = training.with_training_strategy(strategy.into());
    }
    training.launch(learner).model
}

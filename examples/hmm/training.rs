//! Training on burn-train: the saved training config, the NLL per base as a metric, and
//! `SupervisedTraining` with a cosine-annealed learning rate, checkpoints and resume.

use std::path::Path;

use anyhow::{Result, anyhow};
use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::optim::AdamConfig;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::train::{Learner, SupervisedTraining};

use crate::common::train::{TermMetric, managed};
use crate::data::{Windows, loader};
use crate::model::{GeneFinder, GeneFinderConfig, HmmStats};

/// The name of the epoch metric (training and held-out windows) in burn-train's logs.
pub const NLL_PER_BASE: &str = "NLL per base";

/// Everything a run depends on; saved as `config.json` next to the model.
#[derive(Config, Debug)]
pub struct HmmTrainingConfig {
    /// The gene model's design and initial sizes.
    pub model: GeneFinderConfig,
    /// Adam's settings.
    pub optimizer: AdamConfig,
    /// Training epochs (the NLL moves by less than 0.001 nats per base after epoch 10).
    #[config(default = 30)]
    pub epochs: usize,
    /// Length (bp) of the windows the genome is cut into (the last one shorter).
    #[config(default = 2000)]
    pub chunk: usize,
    /// Every this many-th window is held out of training: burn-train's validation windows.
    #[config(default = 10)]
    pub heldout_every: usize,
    /// Windows per minibatch.
    #[config(default = 8)]
    pub batch_size: usize,
    /// Adam's initial learning rate (on the raw logits), cosine-annealed to `min_lr` over
    /// all the optimiser steps of the run.
    #[config(default = 0.05)]
    pub lr: f64,
    /// The learning rate of the last step of the cosine schedule.
    #[config(default = 0.0)]
    pub min_lr: f64,
    /// Width (bp) of the GC-content window of the baseline.
    #[config(default = 120)]
    pub window: usize,
    /// Seed of the minibatch order.
    #[config(default = 0)]
    pub seed: u64,
    /// Save a checkpoint (model, optimiser and schedule, for `--resume`) every this many
    /// epochs, and after the last.
    #[config(default = 10)]
    pub checkpoint_every: usize,
}

impl HmmTrainingConfig {
    /// The defaults of every setting (the command line's defaults).
    pub fn defaults() -> Self {
        Self::new(GeneFinderConfig::new(), AdamConfig::new())
    }

    /// Optimiser steps per epoch on `train_windows` windows.
    pub fn steps_per_epoch(&self, train_windows: usize) -> usize {
        train_windows.div_ceil(self.batch_size)
    }
}

/// The summed NLL over the bases of each batch, averaged over an epoch weighted by bases.
fn nll_per_base() -> TermMetric<HmmStats> {
    TermMetric::new(NLL_PER_BASE, |s| s.nll / s.bases as f64)
}

/// Trains `model` on `windows.train` with Adam and a cosine-annealed learning rate over all
/// `epochs × steps_per_epoch` steps, validating each epoch on `windows.heldout`; resumes
/// after epoch `resume` from the checkpoints in `out` when asked. Returns the trained model.
pub fn train<B: AutodiffBackend>(
    config: &HmmTrainingConfig,
    model: GeneFinder<B>,
    windows: &Windows,
    out: &Path,
    resume: Option<usize>,
) -> Result<GeneFinder<B::InnerBackend>> {
    let steps = config.epochs * config.steps_per_epoch(windows.train.len());
    let schedule = CosineAnnealingLrSchedulerConfig::new(config.lr, steps)
        .with_min_lr(config.min_lr)
        .init()
        .map_err(|e| anyhow!("--lr {} --min-lr {}: {e}", config.lr, config.min_lr))?;
    let learner = Learner::new(model, config.optimizer.init(), schedule);
    let training = SupervisedTraining::new(
        out,
        loader::<B>(&windows.train, config.batch_size, Some(config.seed)),
        loader::<B::InnerBackend>(&windows.heldout, config.batch_size, None),
    )
    .metric_train_numeric(nll_per_base())
    .metric_valid_numeric(nll_per_base());
    let training = managed(
        training,
        out,
        config.epochs,
        config.checkpoint_every,
        resume,
    );
    Ok(training.launch(learner).model)
}

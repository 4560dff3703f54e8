//! Training on burn-train: the saved training config, the loss terms as metrics, and
//! `SupervisedTraining` with checkpoints and resume.

use std::path::Path;

use anyhow::Result;
use burn::optim::AdamConfig;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use burn::train::{Learner, SupervisedTraining};

use crate::common::train::{TermMetric, managed};
use crate::data::{DataConfig, LabelledWindow, loader};
use crate::model::{BpnetConfig, BpnetModel, BpnetStats};

/// Metric names in burn-train's logs.
pub const LOSS: &str = "Mixture loss";
/// See [`LOSS`].
pub const PROFILE: &str = "Profile MNLL";
/// See [`LOSS`].
pub const COUNT: &str = "Count log1p-MSE";

/// Everything a run depends on; saved as `config.json` next to the model.
#[derive(Config, Debug)]
pub struct BpnetTrainingConfig {
    /// The architecture.
    pub model: BpnetConfig,
    /// The windows.
    pub data: DataConfig,
    /// Adam's settings: PyTorch's defaults, as bpnet-lite uses them (burn's default
    /// epsilon is 1e-5, PyTorch's 1e-8).
    pub optimizer: AdamConfig,
    /// Training epochs.
    #[config(default = 20)]
    pub epochs: usize,
    /// Windows per minibatch.
    #[config(default = 64)]
    pub batch_size: usize,
    /// Adam's learning rate (ChromBPNet's 0.001).
    #[config(default = 1e-3)]
    pub lr: f64,
    /// Weight of the count loss; `null` (the default): ChromBPNet's rule, the median total
    /// count of the training peak windows / 10.
    pub count_loss_weight: Option<f64>,
    /// Clip the joint gradient norm of all parameters to this each step (bpnet-lite's
    /// `clip_grad_norm_(…, 1)`); 0: off.
    #[config(default = 1.0)]
    pub grad_clip_norm: f64,
    /// Reverse-complement each training window with probability 1/2 (the two cut-end
    /// channels swapped and reversed).
    #[config(default = true)]
    pub reverse_complement: bool,
    /// Seed of the weights, data (background draws, synthetic data), minibatch order and
    /// augmentation.
    #[config(default = 0)]
    pub seed: u64,
    /// Save a checkpoint (model and optimiser, for `--resume`) every this many epochs, and
    /// after the last.
    #[config(default = 5)]
    pub checkpoint_every: usize,
}

impl BpnetTrainingConfig {
    /// The defaults of every setting (the command line's defaults).
    pub fn defaults() -> Self {
        Self::new(
            BpnetConfig::new(),
            DataConfig::new(),
            AdamConfig::new().with_epsilon(1e-8),
        )
    }

    /// The model's input length.
    pub fn input_len(&self) -> usize {
        self.model.input_len(self.data.output_len)
    }
}

fn metrics() -> [TermMetric<BpnetStats>; 3] {
    [
        TermMetric::new(LOSS, |s| s.total),
        TermMetric::new(PROFILE, |s| s.profile),
        TermMetric::new(COUNT, |s| s.count),
    ]
}

/// Trains `model` on `train`, validating each epoch on `valid`; resumes after epoch
/// `resume` from the checkpoints in `out` when asked. Returns the trained model.
pub fn train<B: AutodiffBackend>(
    config: &BpnetTrainingConfig,
    model: BpnetModel<B>,
    train: &[LabelledWindow],
    valid: &[LabelledWindow],
    out: &Path,
    resume: Option<usize>,
) -> Result<BpnetModel<B::InnerBackend>> {
    let learner = Learner::new(model, config.optimizer.init(), config.lr);
    let mut training = SupervisedTraining::new(
        out,
        loader::<B>(
            train,
            config.batch_size,
            Some((config.seed, config.reverse_complement)),
        ),
        loader::<B::InnerBackend>(valid, config.batch_size, None),
    );
    for (t, v) in metrics().into_iter().zip(metrics()) {
        training = training.metric_train_numeric(t).metric_valid_numeric(v);
    }
    let training = managed(
        training,
        out,
        config.epochs,
        config.checkpoint_every,
        resume,
    );
    Ok(training.launch(learner).model)
}

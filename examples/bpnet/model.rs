//! BPNet as bpnet-lite builds it (`bpnetlite.bpnet.BPNet` without control tracks), its
//! burn-train steps, and the batches it trains on.

use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig1d};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Transaction;
use burn::tensor::backend::AutodiffBackend;
use burn::train::metric::Adaptor;
use burn::train::{InferenceStep, ItemLazy, TrainOutput, TrainStep};
use diffbio_burn::losses::bpnet::BpnetMixtureLoss;
use diffbio_burn::nn::{conv1d, conv1d_relu, residual_conv1d_relu};

use crate::common::train::{BatchStats, clip_global_norm};

/// Width of the first convolution (bpnet-lite's `iconv`).
pub const STEM_KERNEL: usize = 21;
/// Width of the profile convolution (bpnet-lite's `fconv`).
pub const PROFILE_KERNEL: usize = 75;

/// The architecture (saved with the weights); bpnet-lite's `BPNet(n_filters, n_layers,
/// n_outputs=2, n_control_tracks=0)`.
#[derive(Config, Debug)]
pub struct BpnetConfig {
    /// Convolution filters (bpnet-lite's `n_filters`; its default is 64).
    #[config(default = 32)]
    pub n_filters: usize,
    /// Dilated residual layers, dilations `2, 4, …, 2^n_layers` (bpnet-lite's default 8).
    #[config(default = 6)]
    pub n_layers: usize,
}

impl BpnetConfig {
    /// Bases trimmed from each end of the input to give the output window, bpnet-lite's
    /// default `trimming = 47 + Σ_{i=1..n_layers} 2^i`: half the stem (10) and profile (37)
    /// kernels plus the reach of the dilated tower, so that every output base sees a full
    /// receptive field of real sequence.
    pub fn trimming(&self) -> usize {
        (STEM_KERNEL - 1) / 2
            + (PROFILE_KERNEL - 1) / 2
            + (1..=self.n_layers).map(|i| 1 << i).sum::<usize>()
    }

    /// The input length for a profile of `output_len` bases.
    pub fn input_len(&self, output_len: usize) -> usize {
        output_len + 2 * self.trimming()
    }

    /// The module, with PyTorch's default initialisation (Burn's default for `Conv1d` and
    /// `Linear`: Kaiming-uniform with gain `1/√3`).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Bpnet<B> {
        let conv = |cin, cout, k: usize, dilation: usize| {
            let pad = dilation * (k - 1) / 2;
            Conv1dConfig::new(cin, cout, k)
                .with_dilation(dilation)
                .with_padding(PaddingConfig1d::Explicit(pad, pad))
                .init(device)
        };
        let f = self.n_filters;
        Bpnet {
            stem: conv(4, f, STEM_KERNEL, 1),
            tower: (1..=self.n_layers).map(|i| conv(f, f, 3, 1 << i)).collect(),
            profile_head: conv(f, 2, PROFILE_KERNEL, 1),
            count_head: LinearConfig::new(f, 1).init(device),
            trimming: self.trimming(),
        }
    }
}

/// BPNet: a wide convolution, a dilated residual tower, a profile head (a wide convolution
/// over the tower's output, trimmed to the output window) and a count head (the tower's
/// output averaged over the output window plus the profile head's reach, then a linear
/// layer): log total counts of both strands together.
#[derive(Module, Debug)]
pub struct Bpnet<B: Backend> {
    /// `iconv`: 4 → filters, width 21.
    pub stem: Conv1d<B>,
    /// `rconvs`: filters → filters, width 3, dilation `2^i`.
    pub tower: Vec<Conv1d<B>>,
    /// `fconv`: filters → 2, width 75.
    pub profile_head: Conv1d<B>,
    /// `linear`: filters → 1.
    pub count_head: Linear<B>,
    /// Bases trimmed from each end (see [`BpnetConfig::trimming`]).
    pub trimming: usize,
}

impl<B: Backend> Bpnet<B> {
    /// Profile logits `[n, 2, L_in - 2·trimming]` and log total counts `[n, 1]` from one-hot
    /// DNA `[n, 4, L_in]`.
    ///
    /// # Panics
    /// If the input is not longer than twice the trimming.
    pub fn forward(&self, one_hot: Tensor<B, 3>) -> (Tensor<B, 3>, Tensor<B, 2>) {
        let [n, _, len] = one_hot.dims();
        let trim = self.trimming;
        assert!(
            len > 2 * trim,
            "Bpnet: input length {len} must exceed twice the trimming {trim}"
        );
        let mut h = conv1d_relu(&self.stem, one_hot);
        for layer in &self.tower {
            h = residual_conv1d_relu(layer, h);
        }
        let filters = h.dims()[1];
        // bpnet-lite convolves the whole window and trims; only the output window plus the
        // head's reach (37 bases a side) affects the kept logits, so convolve that alone.
        let reach = (PROFILE_KERNEL - 1) / 2;
        let around = h.slice([0..n, 0..filters, trim - reach..len - trim + reach]);
        let out_len = len - 2 * trim;
        let logits =
            conv1d(&self.profile_head, around.clone()).slice([0..n, 0..2, reach..reach + out_len]);
        let pooled = around.mean_dim(2).squeeze_dim::<2>(2);
        (logits, self.count_head.forward(pooled))
    }
}

/// A minibatch of windows.
#[derive(Debug, Clone)]
pub struct BpnetBatch<B: Backend> {
    /// One-hot DNA `[n, 4, L_in]`.
    pub sequence: Tensor<B, 3>,
    /// Per-base counts of the two strands (Tn5 cut ends) `[n, 2, L]`.
    pub profiles: Tensor<B, 3>,
    /// 1 for a peak window, 0 for background `[n]`.
    pub labels: Tensor<B, 1, Int>,
}

/// The model and the loss it trains with, as burn-train sees it.
#[derive(Module, Debug)]
pub struct BpnetModel<B: Backend> {
    /// The network.
    pub net: Bpnet<B>,
    /// bpnet-lite's mixture loss (its weight and flags; no parameters).
    pub loss: BpnetMixtureLoss,
    /// Clip the joint gradient norm of all parameters to this each step (bpnet-lite: 1);
    /// 0 turns clipping off.
    pub grad_clip_norm: f64,
}

impl<B: Backend> BpnetModel<B> {
    /// The mixture loss of a batch and its parts.
    pub fn forward_loss(&self, batch: BpnetBatch<B>) -> BpnetOutput<B> {
        let n = batch.labels.dims()[0];
        let (logits, log_counts) = self.net.forward(batch.sequence);
        let parts = self
            .loss
            .forward(batch.profiles, logits, log_counts, Some(batch.labels));
        BpnetOutput {
            total: parts.total,
            profile: parts.profile,
            count: parts.count,
            windows: n,
        }
    }
}

/// The loss of one batch, as the steps return it.
pub struct BpnetOutput<B: Backend> {
    /// `profile + count_loss_weight · count`, `[1]`.
    pub total: Tensor<B, 1>,
    /// Multinomial NLL per peak window, `[1]`.
    pub profile: Tensor<B, 1>,
    /// log1p-MSE of the total counts per window, `[1]`.
    pub count: Tensor<B, 1>,
    /// Windows in the batch.
    pub windows: usize,
}

/// [`BpnetOutput`] read back to the host, for the metrics.
#[derive(Debug, Clone)]
pub struct BpnetStats {
    /// The mixture loss.
    pub total: f64,
    /// The profile MNLL per peak window.
    pub profile: f64,
    /// The count log1p-MSE per window.
    pub count: f64,
    /// Windows.
    pub windows: usize,
}

impl BatchStats for BpnetStats {
    fn batch_size(&self) -> usize {
        self.windows
    }
}

impl<B: Backend> ItemLazy for BpnetOutput<B> {
    type ItemSync = BpnetStats;

    fn sync(self) -> BpnetStats {
        let [total, profile, count]: [_; 3] = Transaction::default()
            .register(self.total)
            .register(self.profile)
            .register(self.count)
            .execute()
            .try_into()
            .expect("three tensors");
        let scalar = |d: TensorData| d.convert::<f64>().to_vec::<f64>().expect("f64")[0];
        BpnetStats {
            total: scalar(total),
            profile: scalar(profile),
            count: scalar(count),
            windows: self.windows,
        }
    }
}

impl Adaptor<BpnetStats> for BpnetStats {
    fn adapt(&self) -> BpnetStats {
        self.clone()
    }
}

impl<B: AutodiffBackend> TrainStep for BpnetModel<B> {
    type Input = BpnetBatch<B>;
    type Output = BpnetOutput<B>;

    fn step(&self, batch: BpnetBatch<B>) -> TrainOutput<BpnetOutput<B>> {
        let output = self.forward_loss(batch);
        let grads = GradientsParams::from_grads(output.total.backward(), self);
        let grads = if self.grad_clip_norm > 0.0 {
            clip_global_norm(self, grads, self.grad_clip_norm)
        } else {
            grads
        };
        TrainOutput {
            grads,
            item: output,
        }
    }
}

impl<B: Backend> InferenceStep for BpnetModel<B> {
    type Input = BpnetBatch<B>;
    type Output = BpnetOutput<B>;

    fn step(&self, batch: BpnetBatch<B>) -> BpnetOutput<B> {
        self.forward_loss(batch)
    }
}

//! A small BPNet (Avsec et al. 2021) trained with diffbio-burn's profile + count mixture loss
//! on synthetic, seeded base-resolution data.
//!
//! ```sh
//! cargo run --release --example bpnet
//! cargo run --release --example bpnet -- --regions 8000 --epochs 40 --channels 64
//! ```
//!
//! * Data (generated from `--seed`): random background DNA (GC 42 %); peak regions get one to
//!   three planted instances of three motifs (position weight matrices around the consensus
//!   `GATAAG`, `TGACTCA`, `CCGCGNGGNGGCAG`), near the centre. Each instance leaves a
//!   strand-specific footprint: plus-strand reads pile up just upstream of the site,
//!   minus-strand reads just downstream, with a motif-specific spread and strength. Totals are
//!   log-normal (more for stronger motifs), reads are drawn multinomially from the profile
//!   (footprints over a flat background). Non-peak regions (label 0) have background sequence,
//!   few reads and a flat profile.
//! * Model: one-hot DNA `[n, 4, L_in]` → conv stem → dilated residual conv tower (dilation
//!   2, 4, 8, ...) → profile head (wide conv, centre crop: logits `[n, 2, L]`) and count head
//!   (global average pool → linear: log total count `[n, 1]`). Loss: `BpnetMixtureLoss` with
//!   `count_loss_weight` = mean total count per strand of the training peaks (bpnet-lite's
//!   command-line default); profiles of non-peaks are not scored. Adam.
//! * Metrics on held-out regions: profile multinomial NLL per peak against a uniform-profile
//!   baseline, median Jensen–Shannon distance between predicted and observed profiles (both
//!   strands, normalised jointly) against the uniform profile's, and Pearson r of predicted vs
//!   observed `log(1 + total)` over all held-out regions.
//! * Outputs in `--out`: `loss.png`, `profile_example.png`, `model.mpk` + `config.json`
//!   (reloaded to re-evaluate), `metrics.txt`.
mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};
use burn::config::Config;
use burn::module::{AutodiffModule, Module};
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig1d};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::relu;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::PadMode;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use clap::Parser;
use diffbio_burn::losses::bpnet::{BpnetMixtureLoss, BpnetMixtureLossConfig};
use diffbio_burn::losses::multinomial::MultinomialNllLossConfig;
use rand::distr::Distribution as _;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::LogNormal;

use common::metrics::{jensen_shannon_distance, median, pearson};
use common::{DeviceArg, Metrics, create_dir, default_out_dir, epoch_bar};

/// Train a small BPNet on synthetic base-resolution profiles.
#[derive(Parser, Debug, Clone)]
#[command(name = "bpnet", version)]
struct Args {
    /// Number of regions (peaks and non-peaks) to simulate.
    #[arg(long, default_value_t = 2000)]
    regions: usize,
    /// Fraction of simulated regions that are peaks (label 1).
    #[arg(long, default_value_t = 0.75)]
    peak_fraction: f64,
    /// Input sequence length.
    #[arg(long, default_value_t = 256)]
    input_len: usize,
    /// Output profile length (centre of the input).
    #[arg(long, default_value_t = 128)]
    output_len: usize,
    /// Training epochs (held-out metrics change little after about 12 on the defaults).
    #[arg(long, default_value_t = 12)]
    epochs: usize,
    /// Regions per minibatch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 4e-3)]
    lr: f64,
    /// Convolution channels.
    #[arg(long, default_value_t = 32)]
    channels: usize,
    /// Dilated residual layers (dilations 2, 4, ..., 2^layers).
    #[arg(long, default_value_t = 5)]
    layers: usize,
    /// Weight of the count loss; default: mean total count per strand of the training peaks.
    #[arg(long)]
    count_loss_weight: Option<f64>,
    /// Fraction of regions held out for evaluation.
    #[arg(long, default_value_t = 0.2)]
    heldout_fraction: f64,
    /// Random seed (data, split, minibatches, weights).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Compute device (wgpu needs `--features wgpu`).
    #[arg(long, value_enum, default_value_t = DeviceArg::Ndarray)]
    device: DeviceArg,
    /// Output directory.
    #[arg(long, default_value_os_t = default_out_dir("bpnet"))]
    out: PathBuf,
}

// ---------------------------------------------------------------------------------------
// Synthetic data
// ---------------------------------------------------------------------------------------

/// A motif: consensus (IUPAC `N` = any base), footprint spread (bp), read strength.
struct Motif {
    consensus: &'static str,
    spread: f64,
    strength: f64,
}

const MOTIFS: [Motif; 3] = [
    Motif {
        consensus: "GATAAG",
        spread: 3.0,
        strength: 1.0,
    },
    Motif {
        consensus: "TGACTCA",
        spread: 6.0,
        strength: 2.0,
    },
    Motif {
        consensus: "CCGCGNGGNGGCAG",
        spread: 10.0,
        strength: 3.0,
    },
];

/// Background base probabilities (A, C, G, T), GC 42 %.
const BACKGROUND: [f64; 4] = [0.29, 0.21, 0.21, 0.29];

fn base_index(b: u8) -> usize {
    match b {
        b'A' => 0,
        b'C' => 1,
        b'G' => 2,
        b'T' => 3,
        _ => unreachable!("only ACGT"),
    }
}

/// The PWM of a consensus: 85 % on the consensus base, the rest spread by background
/// frequency; `N` columns are background.
fn pwm(consensus: &str) -> Vec<[f64; 4]> {
    consensus
        .bytes()
        .map(|b| {
            if b == b'N' {
                return BACKGROUND;
            }
            let mut column = BACKGROUND.map(|p| 0.15 * p / (1.0 - BACKGROUND[base_index(b)]));
            column[base_index(b)] = 0.85;
            column
        })
        .collect()
}

/// Simulated regions: one-hot sequences, read profiles, peak labels.
struct Regions {
    /// `[n, 4, input_len]`, row-major.
    one_hot: Vec<f32>,
    /// `[n, 2, output_len]` read counts, row-major.
    reads: Vec<f32>,
    /// 1 for peaks, 0 for non-peaks.
    labels: Vec<i64>,
    n: usize,
}

impl Regions {
    fn subset(&self, idx: &[usize], input_len: usize, output_len: usize) -> Regions {
        let (a, b) = (4 * input_len, 2 * output_len);
        Regions {
            one_hot: idx
                .iter()
                .flat_map(|&i| &self.one_hot[i * a..(i + 1) * a])
                .copied()
                .collect(),
            reads: idx
                .iter()
                .flat_map(|&i| &self.reads[i * b..(i + 1) * b])
                .copied()
                .collect(),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            n: idx.len(),
        }
    }

    /// Total reads of region `i`.
    fn total(&self, i: usize, output_len: usize) -> f64 {
        let b = 2 * output_len;
        self.reads[i * b..(i + 1) * b]
            .iter()
            .map(|&v| v as f64)
            .sum()
    }
}

fn simulate(args: &Args, rng: &mut StdRng) -> Result<Regions> {
    let (lin, lout) = (args.input_len, args.output_len);
    if lout > lin || lout < 32 {
        bail!("need 32 <= --output-len <= --input-len, got {lout} and {lin}");
    }
    let pwms: Vec<Vec<[f64; 4]>> = MOTIFS.iter().map(|m| pwm(m.consensus)).collect();
    let background = WeightedIndex::new(BACKGROUND).expect("valid weights");
    let offset = (lin - lout) / 2;
    let (mut one_hot, mut reads, mut labels) = (vec![], vec![], vec![]);
    for _ in 0..args.regions {
        let peak = rng.random_bool(args.peak_fraction);
        let mut seq: Vec<usize> = (0..lin).map(|_| background.sample(rng)).collect();
        // Profile weights over [strand, position] of the output window: flat background.
        let mut profile = vec![1.0f64; 2 * lout];
        let mut log_mean_total = 2.0; // non-peak: ~7 reads
        if peak {
            log_mean_total = 3.5;
            for _ in 0..rng.random_range(1..=3) {
                let m = rng.random_range(0..MOTIFS.len());
                let motif = &MOTIFS[m];
                let width = pwms[m].len();
                // Site start within ±40 bp of the centre, inside the output window.
                let centre = lin / 2;
                let start = rng.random_range(centre - 40..centre + 40 - width);
                let reverse = rng.random_bool(0.5);
                for (k, column) in pwms[m].iter().enumerate() {
                    let base = WeightedIndex::new(column).expect("valid PWM").sample(rng);
                    // On the reverse strand, write the reverse complement.
                    let (pos, base) = if reverse {
                        (start + width - 1 - k, 3 - base)
                    } else {
                        (start + k, base)
                    };
                    seq[pos] = base;
                }
                // Footprint: plus-strand reads upstream of the site, minus-strand downstream.
                let (plus_at, minus_at) = (
                    start as f64 - offset as f64 - 4.0,
                    (start + width) as f64 - offset as f64 + 4.0,
                );
                for j in 0..lout {
                    let x = j as f64;
                    let bump = |c: f64| {
                        motif.strength * 60.0 / motif.spread
                            * (-0.5 * ((x - c) / motif.spread).powi(2)).exp()
                    };
                    profile[j] += bump(plus_at);
                    profile[lout + j] += bump(minus_at);
                }
                log_mean_total += 0.35 * motif.strength;
            }
        }
        let total = LogNormal::new(log_mean_total, 0.5)
            .expect("valid log-normal")
            .sample(rng)
            .round() as usize;
        let mut y = vec![0f32; 2 * lout];
        let draw = WeightedIndex::new(&profile).expect("positive profile");
        for _ in 0..total {
            y[draw.sample(rng)] += 1.0;
        }
        let mut oh = vec![0f32; 4 * lin];
        for (p, &b) in seq.iter().enumerate() {
            oh[b * lin + p] = 1.0;
        }
        one_hot.extend(oh);
        reads.extend(y);
        labels.push(i64::from(peak));
    }
    Ok(Regions {
        one_hot,
        reads,
        labels,
        n: args.regions,
    })
}

// ---------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------

/// Architecture of [`Bpnet`] (saved next to the weights as `config.json`).
#[derive(Config, Debug)]
struct BpnetConfig {
    /// Output profile length (centre crop of the input).
    output_len: usize,
    /// Convolution channels.
    #[config(default = 32)]
    channels: usize,
    /// Dilated residual layers.
    #[config(default = 5)]
    layers: usize,
    /// Stem kernel width (odd).
    #[config(default = 21)]
    stem_kernel: usize,
    /// Profile head kernel width (odd).
    #[config(default = 25)]
    profile_kernel: usize,
}

impl BpnetConfig {
    fn init<B: Backend>(&self, device: &B::Device) -> Bpnet<B> {
        // Length-preserving ("same") padding for odd kernels, spelled out because it depends
        // on the dilation.
        let conv = |cin, cout, k: usize, dilation: usize| {
            let pad = dilation * (k - 1) / 2;
            Conv1dConfig::new(cin, cout, k)
                .with_dilation(dilation)
                .with_padding(PaddingConfig1d::Explicit(pad, pad))
                .init(device)
        };
        let c = self.channels;
        Bpnet {
            stem: conv(4, c, self.stem_kernel, 1),
            tower: (1..=self.layers).map(|i| conv(c, c, 3, 1 << i)).collect(),
            profile_head: conv(c, 2, self.profile_kernel, 1),
            count_head: LinearConfig::new(c, 1).init(device),
            output_len: self.output_len,
        }
    }
}

/// BPNet: conv stem, dilated residual tower, profile and count heads.
#[derive(Module, Debug)]
struct Bpnet<B: Backend> {
    stem: Conv1d<B>,
    tower: Vec<Conv1d<B>>,
    profile_head: Conv1d<B>,
    count_head: Linear<B>,
    output_len: usize,
}

/// The same result as `conv.forward(x)` for a stride-1, ungrouped `Conv1d` with symmetric
/// padding, computed with matrix products on the layer's own parameters.
///
/// Burn 0.21's NdArray convolution is slow on small channel counts: one 32 → 32 channel,
/// kernel-3 layer on a `[64, 32, 256]` batch takes about 0.9 s forward + backward on our
/// 2-core CPU, against 37 ms here (and 0.41 s against 36 ms for the 32 → 2, kernel-25
/// profile head). Narrow-to-wide layers stack the shifted inputs (`im2col`) and multiply
/// once; wide-to-narrow layers multiply first and add the shifted products.
fn conv1d_matmul<B: Backend>(conv: &Conv1d<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [n, c_in, len] = x.dims();
    let weight = conv.weight.val(); // [c_out, c_in, k]
    let [c_out, _, k] = weight.dims();
    let d = conv.dilation;
    let pad = d * (k - 1) / 2;
    assert!(
        conv.stride == 1 && conv.groups == 1 && conv.padding == PaddingConfig1d::Explicit(pad, pad),
        "conv1d_matmul: only stride 1, one group and `same` padding"
    );
    let x = x.pad((pad, pad, 0, 0), PadMode::Constant(0.0));
    let y = if c_out > c_in {
        let columns: Vec<Tensor<B, 3>> = (0..k)
            .map(|j| x.clone().slice([0..n, 0..c_in, j * d..j * d + len]))
            .collect();
        let weight = weight.swap_dims(1, 2).reshape([1, c_out, k * c_in]);
        weight.matmul(Tensor::cat(columns, 1))
    } else {
        let products = weight
            .permute([2, 0, 1])
            .reshape([1, k * c_out, c_in])
            .matmul(x);
        (0..k)
            .map(|j| {
                products
                    .clone()
                    .slice([0..n, j * c_out..(j + 1) * c_out, j * d..j * d + len])
            })
            .reduce(|a, b| a + b)
            .expect("k >= 1")
    };
    match &conv.bias {
        Some(bias) => y + bias.val().reshape([1, c_out, 1]),
        None => y,
    }
}

impl<B: Backend> Bpnet<B> {
    /// Profile logits `[n, 2, L]` and log total counts `[n, 1]` from one-hot `[n, 4, L_in]`.
    fn forward(&self, one_hot: Tensor<B, 3>) -> (Tensor<B, 3>, Tensor<B, 2>) {
        let mut h = relu(conv1d_matmul(&self.stem, one_hot));
        for layer in &self.tower {
            h = h.clone() + relu(conv1d_matmul(layer, h));
        }
        let [n, _, len] = h.dims();
        let start = (len - self.output_len) / 2;
        let logits = conv1d_matmul(&self.profile_head, h.clone()).slice([
            0..n,
            0..2,
            start..start + self.output_len,
        ]);
        let pooled = h.mean_dim(2).squeeze_dim::<2>(2);
        (logits, self.count_head.forward(pooled))
    }
}

// ---------------------------------------------------------------------------------------
// Training and evaluation
// ---------------------------------------------------------------------------------------

/// Device tensors of a set of regions.
struct Batch<B: Backend> {
    x: Tensor<B, 3>,
    y: Tensor<B, 3>,
    labels: Tensor<B, 1, Int>,
}

fn to_device<B: Backend>(r: &Regions, args: &Args, device: &B::Device) -> Batch<B> {
    Batch {
        x: Tensor::from_data(
            TensorData::new(r.one_hot.clone(), [r.n, 4, args.input_len]),
            device,
        ),
        y: Tensor::from_data(
            TensorData::new(r.reads.clone(), [r.n, 2, args.output_len]),
            device,
        ),
        labels: Tensor::from_data(TensorData::new(r.labels.clone(), [r.n]), device),
    }
}

fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32 tensor data")
}

/// Held-out evaluation of a model.
struct Eval {
    /// Mixture loss parts (bpnet-lite's reduction).
    profile_loss: f64,
    count_loss: f64,
    total_loss: f64,
    /// Profile multinomial NLL per peak, model and uniform profile.
    profile_nll: f64,
    uniform_profile_nll: f64,
    /// Median JS distance over peaks, model and uniform profile.
    median_jsd: f64,
    uniform_median_jsd: f64,
    /// Pearson r of predicted vs observed log(1 + total), all regions.
    count_pearson: f64,
    /// Predicted probabilities of the first held-out peak, `[2 · L]`.
    example: Option<(usize, Vec<f32>)>,
}

fn evaluate<B: Backend>(
    model: &Bpnet<B>,
    data: &Batch<B>,
    host: &Regions,
    loss: &BpnetMixtureLoss,
    batch_size: usize,
) -> Eval {
    let n = host.n;
    let [_, s, l] = data.y.dims();
    let (mut logits, mut log_counts) = (vec![], vec![]);
    for start in (0..n).step_by(batch_size) {
        let end = (start + batch_size).min(n);
        let (lg, lc) = model.forward(data.x.clone().narrow(0, start, end - start));
        logits.push(lg);
        log_counts.push(lc);
    }
    let logits = Tensor::cat(logits, 0);
    let log_counts = Tensor::cat(log_counts, 0);
    let parts = loss.forward(
        data.y.clone(),
        logits.clone(),
        log_counts.clone(),
        Some(data.labels.clone()),
    );

    let flat = |t: Tensor<B, 3>| t.reshape([n, s * l]);
    let log_probs = burn::tensor::activation::log_softmax(flat(logits), 1);
    let mnll = MultinomialNllLossConfig::new().with_validate(false).init();
    let nll: Vec<f32> =
        to_vec(mnll.forward_no_reduction::<B, 2, 1>(log_probs.clone(), flat(data.y.clone())));
    let uniform = Tensor::<B, 2>::full([n, s * l], -((s * l) as f64).ln(), &data.y.device());
    let nll_uniform: Vec<f32> =
        to_vec(mnll.forward_no_reduction::<B, 2, 1>(uniform, flat(data.y.clone())));
    let probs = to_vec(log_probs.exp());
    let predicted_counts = to_vec(log_counts);

    let peaks: Vec<usize> = (0..n).filter(|&i| host.labels[i] == 1).collect();
    let mean_over =
        |v: &[f32]| peaks.iter().map(|&i| v[i] as f64).sum::<f64>() / peaks.len().max(1) as f64;
    let uniform_p = vec![1.0 / (s * l) as f64; s * l];
    let (mut jsd, mut jsd_uniform) = (vec![], vec![]);
    for &i in &peaks {
        let y = &host.reads[i * s * l..(i + 1) * s * l];
        let total: f64 = y.iter().map(|&v| v as f64).sum();
        if total == 0.0 {
            continue;
        }
        let observed: Vec<f64> = y.iter().map(|&v| v as f64 / total).collect();
        let predicted: Vec<f64> = probs[i * s * l..(i + 1) * s * l]
            .iter()
            .map(|&p| p as f64)
            .collect();
        jsd.push(jensen_shannon_distance(&predicted, &observed));
        jsd_uniform.push(jensen_shannon_distance(&uniform_p, &observed));
    }
    let observed_log: Vec<f64> = (0..n).map(|i| host.total(i, l).ln_1p()).collect();
    let predicted_log: Vec<f64> = predicted_counts.iter().map(|&v| v as f64).collect();
    Eval {
        profile_loss: parts.profile.into_scalar().elem(),
        count_loss: parts.count.into_scalar().elem(),
        total_loss: parts.total.into_scalar().elem(),
        profile_nll: mean_over(&nll),
        uniform_profile_nll: mean_over(&nll_uniform),
        median_jsd: median(&jsd),
        uniform_median_jsd: median(&jsd_uniform),
        count_pearson: pearson(&predicted_log, &observed_log),
        example: peaks
            .first()
            .map(|&i| (i, probs[i * s * l..(i + 1) * s * l].to_vec())),
    }
}

fn run<B: AutodiffBackend>(args: &Args, device: B::Device) -> Result<Metrics> {
    let start = Instant::now();
    create_dir(&args.out)?;
    B::seed(&device, args.seed);
    let mut rng = StdRng::seed_from_u64(args.seed);

    let all = simulate(args, &mut rng)?;
    let mut order: Vec<usize> = (0..all.n).collect();
    order.shuffle(&mut rng);
    let n_heldout = ((all.n as f64 * args.heldout_fraction).round() as usize).clamp(1, all.n - 1);
    let (heldout_idx, train_idx) = order.split_at(n_heldout);
    let train = all.subset(train_idx, args.input_len, args.output_len);
    let heldout = all.subset(heldout_idx, args.input_len, args.output_len);
    let train_peaks: Vec<usize> = (0..train.n).filter(|&i| train.labels[i] == 1).collect();
    if train_peaks.is_empty() {
        bail!("no training peaks: raise --regions or --peak-fraction");
    }
    // bpnet-lite's default: the mean total count per strand of the training peaks.
    let count_loss_weight = args.count_loss_weight.unwrap_or_else(|| {
        train_peaks
            .iter()
            .map(|&i| train.total(i, args.output_len))
            .sum::<f64>()
            / (2 * train_peaks.len()) as f64
    });
    eprintln!(
        "data: {} simulated regions ({} training, {} held-out; {} training peaks), \
         count_loss_weight {count_loss_weight:.2}",
        all.n,
        train.n,
        heldout.n,
        train_peaks.len()
    );

    let train_data = to_device::<B>(&train, args, &device);
    let heldout_data = to_device::<B::InnerBackend>(&heldout, args, &device);
    // Validate the data once (labels 0/1, counts >= 0); the training loop runs unchecked
    // because each check reads a flag back from the device (a GPU sync per step).
    let checked = BpnetMixtureLossConfig::new().init();
    let zeros = |n| Tensor::<B::InnerBackend, 2>::zeros([n, 1], &device);
    checked.forward(
        heldout_data.y.clone(),
        heldout_data.y.zeros_like(),
        zeros(heldout.n),
        Some(heldout_data.labels.clone()),
    );
    checked.forward(
        train_data.y.clone().inner(),
        train_data.y.clone().inner().zeros_like(),
        zeros(train.n),
        Some(train_data.labels.clone().inner()),
    );
    let loss = BpnetMixtureLossConfig::new()
        .with_count_loss_weight(count_loss_weight)
        .with_validate(false)
        .init();

    let config = BpnetConfig::new(args.output_len)
        .with_channels(args.channels)
        .with_layers(args.layers);
    let mut model = config.init::<B>(&device);
    // Start the count head at the mean training log count, so that the first steps are not
    // spent moving its bias there (the count loss is weighted by ~100).
    let mean_log_count = (0..train.n)
        .map(|i| train.total(i, args.output_len).ln_1p())
        .sum::<f64>()
        / train.n as f64;
    if let Some(bias) = model.count_head.bias.take() {
        model.count_head.bias = Some(bias.map(|b| b.zeros_like() + mean_log_count));
    }
    let mut optim = AdamConfig::new().init();
    let mut curves: [Vec<(f64, f64)>; 4] = Default::default();
    let bar = epoch_bar(args.epochs);
    let mut order: Vec<usize> = (0..train.n).collect();
    let train_start = Instant::now();
    for epoch in 0..args.epochs {
        order.shuffle(&mut rng);
        let mut epoch_loss = 0.0;
        for chunk in order.chunks(args.batch_size) {
            let idx: Vec<i64> = chunk.iter().map(|&i| i as i64).collect();
            let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [chunk.len()]), &device);
            let (logits, log_counts) = model.forward(train_data.x.clone().select(0, idx.clone()));
            let parts = loss.forward(
                train_data.y.clone().select(0, idx.clone()),
                logits,
                log_counts,
                Some(train_data.labels.clone().select(0, idx)),
            );
            epoch_loss += parts.total.clone().into_scalar().elem::<f64>() * chunk.len() as f64;
            let grads = GradientsParams::from_grads(parts.total.backward(), &model);
            model = optim.step(args.lr, model, grads);
        }
        let eval = evaluate(
            &model.valid(),
            &heldout_data,
            &heldout,
            &loss,
            args.batch_size,
        );
        let x = epoch as f64 + 1.0;
        curves[0].push((x, epoch_loss / train.n as f64));
        curves[1].push((x, eval.total_loss));
        curves[2].push((x, eval.profile_loss));
        curves[3].push((x, count_loss_weight * eval.count_loss));
        bar.set_message(format!(
            "held-out profile NLL {:.1} (uniform {:.1}), count r {:.3}",
            eval.profile_nll, eval.uniform_profile_nll, eval.count_pearson
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let train_seconds = train_start.elapsed().as_secs_f64();

    let trained = model.valid();
    let eval = evaluate(&trained, &heldout_data, &heldout, &loss, args.batch_size);

    let (_, loaded) = common::save_and_reload(&trained, &config, &args.out, &device, |c| {
        c.init::<B::InnerBackend>(&device)
    })?;
    let reloaded = evaluate(&loaded, &heldout_data, &heldout, &loss, args.batch_size);
    if reloaded.profile_nll != eval.profile_nll || reloaded.count_pearson != eval.count_pearson {
        bail!(
            "the reloaded model evaluates to profile NLL {} / count r {}, the trained one to {} / {}",
            reloaded.profile_nll,
            reloaded.count_pearson,
            eval.profile_nll,
            eval.count_pearson
        );
    }

    let mut metrics = Metrics::default();
    metrics.text("regions_train", train.n);
    metrics.text("regions_heldout", heldout.n);
    metrics.text(
        "peaks_heldout",
        heldout.labels.iter().filter(|&&l| l == 1).count(),
    );
    metrics.text("epochs", args.epochs);
    metrics.float("count_loss_weight", count_loss_weight);
    metrics.float("heldout_profile_nll_per_peak", eval.profile_nll);
    metrics.float("uniform_profile_nll_per_peak", eval.uniform_profile_nll);
    metrics.float("heldout_median_jsd", eval.median_jsd);
    metrics.float("uniform_median_jsd", eval.uniform_median_jsd);
    metrics.float("heldout_log_count_pearson", eval.count_pearson);
    metrics.float("heldout_mixture_loss", eval.total_loss);
    metrics.float("loaded_model_profile_nll_per_peak", reloaded.profile_nll);
    metrics.float("loaded_model_log_count_pearson", reloaded.count_pearson);

    common::plot::line_plot(
        &args.out.join("loss.png"),
        "BPNet training (mixture loss)",
        ("epoch", "loss"),
        &[
            ("train total", curves[0].clone()),
            ("held-out total", curves[1].clone()),
            ("held-out profile (MNLL)", curves[2].clone()),
            ("held-out weighted count (log1p-MSE)", curves[3].clone()),
        ],
    )?;
    if let Some((i, probs)) = &eval.example {
        plot_example(
            &args.out.join("profile_example.png"),
            &heldout,
            *i,
            probs,
            args,
        )?;
    }
    metrics.float("train_seconds", train_seconds);
    metrics.float("wall_seconds", start.elapsed().as_secs_f64());
    metrics.report(&args.out)?;
    eprintln!("outputs in {}", args.out.display());
    Ok(metrics)
}

/// Observed reads and predicted expected reads (probabilities × observed total) of one
/// held-out peak, plus strand up, minus strand down.
fn plot_example(path: &Path, data: &Regions, i: usize, probs: &[f32], args: &Args) -> Result<()> {
    let l = args.output_len;
    let y = &data.reads[i * 2 * l..(i + 1) * 2 * l];
    let total = data.total(i, l);
    let series = |v: &[f32], scale: f64, sign: f64| -> Vec<(f64, f64)> {
        v.iter()
            .enumerate()
            .map(|(j, &c)| (j as f64, sign * c as f64 * scale))
            .collect()
    };
    common::plot::line_plot(
        path,
        "held-out peak: observed vs predicted profile",
        (
            "position in output window (bp)",
            "reads (+ strand up, - strand down)",
        ),
        &[
            ("observed +", series(&y[..l], 1.0, 1.0)),
            ("observed -", series(&y[l..], 1.0, -1.0)),
            ("predicted +", series(&probs[..l], total, 1.0)),
            ("predicted -", series(&probs[l..], total, -1.0)),
        ],
    )
}

fn main() -> Result<()> {
    let args = Args::parse();
    dispatch_backend!(args.device, run, &args).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoke_tiny_bpnet() {
        let out = tempfile::tempdir().unwrap();
        let mut args = Args::parse_from([
            "bpnet",
            "--regions",
            "80",
            "--epochs",
            "2",
            "--input-len",
            "96",
            "--output-len",
            "48",
            "--channels",
            "8",
            "--layers",
            "2",
        ]);
        args.out = out.path().to_path_buf();
        let metrics =
            run::<burn::backend::Autodiff<burn::backend::NdArray>>(&args, Default::default())
                .unwrap();
        for name in [
            "heldout_profile_nll_per_peak",
            "uniform_profile_nll_per_peak",
            "heldout_median_jsd",
            "heldout_log_count_pearson",
        ] {
            let v = metrics.get(name).unwrap();
            assert!(v.is_finite(), "{name} = {v}");
        }
        assert_eq!(
            metrics.get("loaded_model_profile_nll_per_peak"),
            metrics.get("heldout_profile_nll_per_peak")
        );
        for file in [
            "loss.png",
            "profile_example.png",
            "model.mpk",
            "metrics.txt",
        ] {
            assert!(out.path().join(file).is_file(), "missing {file}");
        }
    }

    #[test]
    fn matmul_convolution_equals_burns() {
        type B = burn::backend::NdArray;
        let device = Default::default();
        let config = BpnetConfig::new(8);
        let model = config.init::<B>(&device);
        for (cin, conv) in [
            (4, &model.stem),
            (32, &model.tower[2]),
            (32, &model.profile_head),
        ] {
            let x =
                Tensor::<B, 3>::random([3, cin, 40], burn::tensor::Distribution::Default, &device);
            let expected = to_vec(conv.forward(x.clone()));
            let actual = to_vec(conv1d_matmul(conv, x));
            assert_eq!(expected.len(), actual.len());
            for (e, a) in expected.iter().zip(&actual) {
                assert!((e - a).abs() <= 1e-4 * (1.0 + e.abs()), "{e} vs {a}");
            }
        }
    }

    #[test]
    fn planted_motifs_read_as_their_consensus() {
        // The PWM puts 85 % on each consensus base; N columns are background.
        let m = pwm("GAN");
        assert_eq!(m[0][2], 0.85);
        assert_eq!(m[1][0], 0.85);
        assert_eq!(m[2], BACKGROUND);
        for column in &m {
            assert!((column.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }
}

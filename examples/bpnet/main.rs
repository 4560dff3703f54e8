//! A BPNet / ChromBPNet-style model of real yeast ATAC-seq (Tn5 cuts at base resolution),
//! trained with burn-train on diffbio-burn's profile + count mixture loss, and scored on
//! held-out chromosomes with bpnet-lite's performance measures.
//!
//! ```sh
//! cargo run --release --example bpnet                        # bundled yeast ATAC-seq
//! cargo run --release --example bpnet -- --data synthetic    # planted motifs (seconds)
//! cargo run --release --features wgpu --example bpnet -- --device wgpu
//! cargo run --release --example bpnet -- --export-windows w/ # for benches/peers/bpnet_yeast.py
//! cargo run --release --example bpnet -- --help              # every flag, with its default
//! ```
//!
//! * **Data** (`data`, with `diffbio-burn-data`): 467,908 paired-end fragments become Tn5 cut
//!   sites with ChromBPNet's shifts (`+4` on the start: the left cut; `-5` on the end: the
//!   right cut), two channels. One window per accessible region (MACS3 HMMRATAC
//!   narrowPeak), centred on its summit: the input is `output_len + 2 × trimming` bases
//!   (trimming as bpnet-lite: half the 21- and 75-wide kernels plus the dilated tower's
//!   reach, so every output base sees a full receptive field), the profile the central
//!   `output_len` (500) bases. Windows touching the rDNA repeat (chrXII:440–500 kb) are
//!   left out. Chromosomes chrII and chrIII are the validation set (burn-train's), chrIV and
//!   chrV the test set; every split gets its own GC-matched background windows (label 0,
//!   half as many as peaks) from its own chromosomes, away from the peaks, for the count
//!   head, as ChromBPNet's negatives. Training windows are reverse-complemented at random,
//!   the two cut channels swapped and reversed.
//! * **Model** (`model`): bpnet-lite's `BPNet` without control tracks: a 21-wide
//!   convolution, `n_layers` dilated residual convolutions (dilation `2^i`), a 75-wide
//!   profile convolution trimmed to the output window, and a linear count head on the
//!   tower's mean over the output window and the head's reach, predicting the log total
//!   count of both channels. Loss: `BpnetMixtureLoss` (one softmax over both channels, MNLL
//!   on peaks only, log1p-MSE of counts on every window) with ChromBPNet's
//!   `count_loss_weight` = median total count of training peaks / 10. Adam, the joint
//!   gradient norm clipped to 1 as bpnet-lite's `fit` does.
//! * **Training** (`training`): burn-train's `SupervisedTraining` + `Learner`; mixture loss,
//!   profile MNLL and count log1p-MSE are its metrics on training and validation windows;
//!   checkpoints (`--resume EPOCH`); flags derive from `BpnetTrainingConfig`, saved as
//!   `config.json` with the model.
//! * **Evaluation** (`eval`, `measures`): on the test chromosomes, bpnet-lite's
//!   `calculate_performance_measures` (ported, checked against its numbers): profile MNLL,
//!   Jensen–Shannon distance, Pearson and Spearman per peak and channel (raw, and with the
//!   observed profile smoothed by bpnet-lite's Gaussian, σ 7, width 81), and count Pearson,
//!   Spearman and MSE of log counts. Baselines: a uniform profile, and the average
//!   profile of the training peaks (the typical ATAC shape without the sequence) with
//!   counts from a least-squares fit on window GC content.
//! * **Biology check** (`footprint`): tangermeme's marginalisation. Reb1's motif
//!   `TTACCCG`, and a control of the same bases, are written into the centre of 256
//!   shuffled test background sequences; the predicted cuts with the motif minus without
//!   it show what the model learned, next to the cuts piled up around the motif's genomic
//!   sites in accessible regions (footprint depth: mean cuts within 5 bp of the motif
//!   centre over the mean 15–60 bp away).
//! * **Outputs** in `--out`: `loss.png`, `profile_example.png`, `footprint.png`, `model.mpk` + `config.json`,
//!   `metrics.txt`, and burn-train's `checkpoint/`, `train/`, `valid/` logs.
#[path = "../common/mod.rs"]
mod common;
mod data;
mod eval;
mod footprint;
mod measures;
mod model;
mod training;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, ensure};
use burn::module::Module;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::AutodiffBackend;
use clap::Args;
use diffbio_burn::losses::bpnet::BpnetMixtureLossConfig;

use common::config_cli::{exit_on_usage_error, parse_run};
use common::train::logged_curve;
use common::{DeviceArg, Metrics, bundled_data, create_dir, default_out_dir};
use data::{YeastFiles, peaks};
use model::BpnetModel;
use training::{BpnetTrainingConfig, COUNT, LOSS, PROFILE};

/// What to run on, and where; the training settings are flags of `BpnetTrainingConfig`.
#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// ATAC-seq fragments, `chrom start end` a line (plain or gzip).
    #[arg(long, default_value_os_t = bundled_data("yeast_atac/yeast_500k_SRR1822137.bedpe.gz"))]
    fragments: PathBuf,
    /// Accessible regions, narrowPeak (windows centre on the summits).
    #[arg(
        long,
        default_value_os_t = bundled_data("yeast_atac/hmmratac_yeast500k_bedpe_accessible_regions.narrowPeak")
    )]
    peaks: PathBuf,
    /// The genome, FASTA (plain or gzip).
    #[arg(long, default_value_os_t = bundled_data("yeast_atac/sacCer_R64.fa.gz"))]
    genome: PathBuf,
    /// Compute device (wgpu needs `--features wgpu`).
    #[arg(long, value_enum, default_value_t = DeviceArg::Ndarray)]
    device: DeviceArg,
    /// Continue from the checkpoint of this epoch in `--out`.
    #[arg(long)]
    resume: Option<usize>,
    /// Also write the windows (and, after training, the test predictions) as raw float32
    /// files with a `manifest.json` here, for `benches/peers/bpnet_yeast.py`.
    #[arg(long)]
    export_windows: Option<PathBuf>,
    /// Output directory.
    #[arg(long, default_value_os_t = default_out_dir("bpnet"))]
    out: PathBuf,
}

/// The command line: run arguments plus one flag per training setting.
fn parse(argv: impl IntoIterator<Item = String>) -> Result<(RunArgs, BpnetTrainingConfig)> {
    let about = "Train a BPNet on base-resolution ATAC-seq and score it on held-out chromosomes";
    parse_run("bpnet", about, &BpnetTrainingConfig::defaults(), argv)
}

fn run<B: AutodiffBackend>(
    (args, config): &(RunArgs, BpnetTrainingConfig),
    device: B::Device,
) -> Result<Metrics> {
    let start = Instant::now();
    create_dir(&args.out)?;
    ensure!(
        config.epochs >= 1 && config.batch_size >= 1 && config.model.n_filters >= 1,
        "--epochs, --batch-size and --n-filters must be at least 1"
    );
    B::seed(&device, config.seed);
    let input_len = config.input_len();
    let files = YeastFiles {
        fragments: args.fragments.clone(),
        peaks: args.peaks.clone(),
        genome: args.genome.clone(),
    };
    let splits = data::load(&files, &config.data, input_len, config.seed)?;
    let count_loss_weight = config
        .count_loss_weight
        .unwrap_or_else(|| splits.chrombpnet_count_loss_weight());
    let n_peaks = |w: &[data::LabelledWindow]| peaks(w).count();
    eprintln!(
        "data: {} training windows ({} peaks), {} validation ({}), {} test ({}); input {input_len} \
         bp, profile {} bp; count_loss_weight {count_loss_weight:.2}",
        splits.train.len(),
        n_peaks(&splits.train),
        splits.valid.len(),
        n_peaks(&splits.valid),
        splits.test.len(),
        n_peaks(&splits.test),
        config.data.output_len
    );
    if let Some(dir) = &args.export_windows {
        eval::export_windows(dir, config, &splits, count_loss_weight)?;
    }

    // Validate every window once (counts >= 0 and finite, labels 0/1); train unchecked (on a
    // GPU each check is a device read-back).
    let checked = BpnetMixtureLossConfig::new().init();
    let loss = BpnetMixtureLossConfig::new()
        .with_count_loss_weight(count_loss_weight)
        .with_validate(false)
        .init();
    for set in [&splits.train, &splits.valid, &splits.test] {
        for batch in data::loader::<B::InnerBackend>(set, config.batch_size, None).iter() {
            let [n, s, l] = batch.profiles.dims();
            let zeros = Tensor::zeros([n, s, l], &device);
            checked.forward(
                batch.profiles,
                zeros,
                Tensor::zeros([n, 1], &device),
                Some(batch.labels),
            );
        }
    }

    let mut net = config.model.init::<B>(&device);
    // Start the count head at the mean training log count (bpnet-lite starts it at 0 and
    // spends its first epochs moving it there); the peer script does the same.
    let mean_log_count = eval::mean_log_count(&splits.train);
    if let Some(bias) = net.count_head.bias.take() {
        net.count_head.bias = Some(bias.map(|b| b.zeros_like() + mean_log_count));
    }
    let model = BpnetModel {
        net,
        loss,
        grad_clip_norm: config.grad_clip_norm,
    };
    let config_path = args.out.join("config.json");
    config
        .save(&config_path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", config_path.display()))?;
    let train_start = Instant::now();
    let trained = training::train::<B>(
        config,
        model,
        &splits.train,
        &splits.valid,
        &args.out,
        args.resume,
    )?;
    let train_seconds = train_start.elapsed().as_secs_f64();
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    trained
        .net
        .clone()
        .save_file(args.out.join("model"), &recorder)?;

    let mut metrics = Metrics::default();
    for (name, value) in &splits.facts {
        metrics.text(name, value);
    }
    metrics.text("input_len", input_len);
    metrics.text("output_len", config.data.output_len);
    metrics.text("epochs", config.epochs);
    metrics.float("count_loss_weight", count_loss_weight);
    let predictions = eval::predict(&trained.net, &splits.test, config.batch_size);
    if let Some(dir) = &args.export_windows {
        eval::export_predictions(dir, &predictions)?;
    }
    eval::score(&mut metrics, &splits, &predictions)?;
    // Marginalisation over shuffled test background windows (composition kept).
    let background: Vec<_> = splits
        .test
        .iter()
        .filter(|w| w.label == 0)
        .take(256)
        .cloned()
        .collect();
    footprint::marginalise(
        &mut metrics,
        &args.out,
        &trained.net,
        &footprint::shuffled(&background, config.seed),
        splits.genomic.as_ref(),
    )?;

    common::plot::line_plot(
        &args.out.join("loss.png"),
        "BPNet training (mixture loss)",
        ("epoch", "loss"),
        &[
            ("training, mixture", logged_curve(&args.out, "train", LOSS)),
            (
                "validation, mixture",
                logged_curve(&args.out, "valid", LOSS),
            ),
            (
                "validation, profile MNLL",
                logged_curve(&args.out, "valid", PROFILE),
            ),
            (
                "validation, count log1p-MSE × weight",
                logged_curve(&args.out, "valid", COUNT)
                    .into_iter()
                    .map(|(x, y)| (x, y * count_loss_weight))
                    .collect(),
            ),
        ],
    )?;
    eval::plot_example(
        &args.out.join("profile_example.png"),
        &splits.test,
        &predictions,
    )?;
    metrics.float("train_seconds", train_seconds);
    metrics.float("seconds_per_epoch", train_seconds / config.epochs as f64);
    metrics.float("wall_seconds", start.elapsed().as_secs_f64());
    metrics.report(&args.out)?;
    eprintln!("outputs in {}", args.out.display());
    Ok(metrics)
}

fn main() -> Result<()> {
    common::join_rayon_pool();
    common::keep_freed_memory();
    let parsed = exit_on_usage_error(parse(std::env::args()))?;
    dispatch_backend!(parsed.0.device, run, &parsed).map(|_| ())
}

#[cfg(test)]
mod tests;

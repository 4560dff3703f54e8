//! scVI-style variational autoencoder for single-cell RNA-seq counts, trained with burn-train
//! on diffbio-burn's negative-binomial (or ZINB) likelihood and the VAE ELBO.
//!
//! ```sh
//! cargo run --release --example scvi                          # bundled labelled PBMCs
//! cargo run --release --example scvi -- --data data/pbmc_10x_v3_small --zero-inflated true
//! cargo run --release --example scvi -- --devices 2           # data-parallel on 2 devices
//! cargo run --release --example scvi -- --help                # every flag, with its default
//! ```
//!
//! * Data (`data`): a 10x directory, or with `--features hdf5` a 10x `.h5` or AnnData `.h5ad`
//!   (read sparse by `diffbio-burn-data`); cells without counts dropped, a seeded held-out
//!   split, genes without training counts dropped. Minibatches are densified one at a time.
//! * Model (`model`, scVI, Lopez et al. 2018): encoder on `log1p(counts)` → Gaussian latent,
//!   decoder → softmax gene proportions × library size = NB mean `mu`, learnable per-gene
//!   `theta`, optional ZINB dropout head. Loss per cell: NLL summed over genes + β·KL with a
//!   linear warm-up (`VaeLoss::combine`). Adam.
//! * Training (`training`): burn-train's `SupervisedTraining` + `Learner`; the loss, negative
//!   ELBO, reconstruction, KL and KL weight are its metrics on the training and held-out
//!   cells; checkpoints every epoch (`--resume EPOCH` continues); the terminal UI when stdout
//!   is a terminal, plain lines otherwise. Flags derive from `ScviTrainingConfig`, saved as
//!   `config.json` with the model.
//! * Evaluation (`eval`): held-out NLL (posterior mean) and Monte Carlo negative ELBO against a
//!   per-gene NB baseline; with labels, kNN accuracy (latent vs 10 PCs); plots.
//! * Posterior predictive check (`eval::posterior_predictive`): counts simulated from the fitted
//!   model for the held-out cells (`--ppc-draws` per cell; `diffbio_burn::distributions`),
//!   their per-gene mean, variance and zero fraction against the data's, in
//!   `posterior_predictive.png` and `metrics.txt`.
//! * Outputs in `--out`: `loss.png`, `posterior_predictive.png`, `latent.csv`, `latent.png` (with labels), `model.mpk` +
//!   `config.json`, `metrics.txt`, and burn-train's `checkpoint/`, `train/`, `valid/` logs.
#[path = "../common/mod.rs"]
mod common;
mod data;
mod eval;
mod model;
mod training;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::AutodiffBackend;
use clap::Args;

use common::config_cli::{exit_on_usage_error, parse_run};
use common::metrics::{Pca, knn_accuracy};
use common::train::logged_curve;
use common::{DeviceArg, Metrics, SeveralDevices, bundled_data, create_dir, default_out_dir};
use training::ScviTrainingConfig;

/// What to run on, and where; the training settings are flags of `ScviTrainingConfig`.
#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// Counts: a 10x directory, or (feature `hdf5`) a 10x `.h5` / AnnData `.h5ad` file.
    #[arg(long, default_value_os_t = bundled_data("pbmc68k_reduced_labeled"))]
    data: PathBuf,
    /// Labels: for a directory a `barcode<TAB>label` file (default: its labels.tsv); for
    /// `.h5ad` an `obs` column.
    #[arg(long)]
    labels: Option<String>,
    /// `.h5ad` layer holding the counts (e.g. `counts`); default `X`.
    #[arg(long)]
    layer: Option<String>,
    /// Compute device (wgpu needs `--features wgpu`).
    #[arg(long, value_enum, default_value_t = DeviceArg::Ndarray)]
    device: DeviceArg,
    /// Devices to train on, data-parallel (burn-train's multi-device strategy): with wgpu the
    /// first N discrete GPUs, with ndarray the CPU N times.
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Continue from the checkpoint of this epoch in `--out`.
    #[arg(long)]
    resume: Option<usize>,
    /// Output directory.
    #[arg(long, default_value_os_t = default_out_dir("scvi"))]
    out: PathBuf,
    /// Write the split (training and held-out cell names, kept genes) to this JSON file, for
    /// a peer to train on the same cells (benches/peers/scvi_rounds.py).
    #[arg(long)]
    export_split: Option<PathBuf>,
}

/// The command line: run arguments plus one flag per training setting.
fn parse(argv: impl IntoIterator<Item = String>) -> Result<(RunArgs, ScviTrainingConfig)> {
    let about =
        "Train an scVI-style VAE on a count matrix and compare it with a per-gene NB baseline";
    parse_run("scvi", about, &ScviTrainingConfig::defaults(), argv)
}

fn run<B: AutodiffBackend>(
    (args, config): &(RunArgs, ScviTrainingConfig),
    device: B::Device,
) -> Result<Metrics>
where
    B::Device: SeveralDevices,
{
    let start = Instant::now();
    create_dir(&args.out)?;
    B::seed(&device, config.seed);
    let counts = data::load(&args.data, args.labels.as_deref(), args.layer.as_deref())?;
    let split = data::split(&counts, config)?;
    let (train, heldout) = (&split.train, &split.heldout);
    let g = train.n_genes();
    eprintln!(
        "data: {} ({} cells x {} genes); {} training and {} held-out cells, {g} genes \
         ({} cells without counts and {} genes without training counts dropped)",
        args.data.display(),
        counts.n_cells(),
        counts.n_genes(),
        train.n_cells(),
        heldout.n_cells(),
        split.dropped_cells,
        split.dropped_genes
    );
    drop(counts);
    if let Some(path) = &args.export_split {
        data::export_split(path, &args.data, &split)?;
    }
    let baseline_nll = eval::baseline::<B>(
        train,
        heldout,
        config.eval.baseline_steps,
        config.seed,
        &device,
    );

    let mut config = config.clone();
    config.model.n_genes = g;
    let config_path = args.out.join("config.json");
    config
        .save(&config_path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", config_path.display()))?;
    let devices = B::Device::several(args.devices);
    let device = devices[0].clone();
    let train_start = Instant::now();
    let model = training::train::<B>(&config, &split, &args.out, devices, args.resume);
    let train_seconds = train_start.elapsed().as_secs_f64();
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    model.clone().save_file(args.out.join("model"), &recorder)?;

    let (nll, _) = eval::nll_at_mean(&model, heldout, &device);
    let neg_elbo = eval::negative_elbo(&model, heldout, config.eval.elbo_samples, &device);
    let (z_train, z_heldout) = (
        eval::latent_means(&model, train, &device),
        eval::latent_means(&model, heldout, &device),
    );
    let latent = config.model.n_latent;
    eval::write_latent_csv(
        &args.out.join("latent.csv"),
        &[("train", train, &z_train), ("heldout", heldout, &z_heldout)],
        latent,
    )?;

    let mut metrics = Metrics::default();
    metrics.text("dataset", args.data.display());
    metrics.text("cells_train", train.n_cells());
    metrics.text("cells_heldout", heldout.n_cells());
    metrics.text("genes", g);
    metrics.text(
        "likelihood",
        if config.model.zero_inflated {
            "zinb"
        } else {
            "nb"
        },
    );
    metrics.text("epochs", config.epochs);
    metrics.text("devices", args.devices.max(1));
    metrics.float("vae_heldout_nll_per_cell", nll);
    metrics.float("vae_heldout_neg_elbo_per_cell", neg_elbo);
    metrics.float("baseline_heldout_nll_per_cell", baseline_nll);
    metrics.text(
        "vae_beats_baseline",
        if neg_elbo < baseline_nll { "yes" } else { "no" },
    );
    if let (Some(train_labels), Some(heldout_labels)) = (&train.labels, &heldout.labels) {
        let k = config.eval.knn_k;
        let latent_acc = knn_accuracy(
            &z_train,
            train_labels,
            &z_heldout,
            heldout_labels,
            latent,
            k,
        );
        let n_pcs = 10.min(g);
        let (ln_train, ln_heldout) = (eval::log_normalise(train), eval::log_normalise(heldout));
        let pca = Pca::fit(&ln_train, train.n_cells(), g, n_pcs);
        let (pcs_train, pcs_heldout) = (
            pca.transform(&ln_train, train.n_cells()),
            pca.transform(&ln_heldout, heldout.n_cells()),
        );
        metrics.text("knn_k", k);
        metrics.float("knn_accuracy_latent", latent_acc);
        metrics.float(
            "knn_accuracy_pca10",
            knn_accuracy(
                &pcs_train,
                train_labels,
                &pcs_heldout,
                heldout_labels,
                n_pcs,
                k,
            ),
        );
        // 2-D view of the latent means: their first two principal components.
        let z_all: Vec<f32> = z_train.iter().chain(&z_heldout).copied().collect();
        let n_all = train.n_cells() + heldout.n_cells();
        let dims = 2.min(latent);
        let xy = Pca::fit(&z_all, n_all, latent, dims).transform(&z_all, n_all);
        let points: Vec<(f32, f32)> = xy
            .chunks(dims)
            .map(|p| (p[0], *p.get(1).unwrap_or(&0.0)))
            .collect();
        let labels: Vec<String> = train_labels.iter().chain(heldout_labels).cloned().collect();
        let title = "scVI latent means (PCA of the latent space)";
        common::plot::scatter_by_label(
            &args.out.join("latent.png"),
            title,
            ("latent PC1", "latent PC2"),
            &points,
            &labels,
        )?;
    }
    // Posterior predictive check on the held-out cells.
    let replicates = config.eval.ppc_draws;
    let (observed, simulated) =
        eval::posterior_predictive(&model, heldout, replicates, config.seed, &device);
    eval::plot_posterior_predictive(
        &args.out.join("posterior_predictive.png"),
        &observed,
        &simulated,
        replicates,
    )?;
    metrics.text("ppc_draws_per_cell", replicates);
    metrics.float(
        "ppc_log10_mean_correlation",
        eval::log_correlation(&observed.mean, &simulated.mean),
    );
    metrics.float(
        "ppc_log10_variance_correlation",
        eval::log_correlation(&observed.variance, &simulated.variance),
    );
    let zero_gap: f64 = (observed.zero_fraction.iter().zip(&simulated.zero_fraction))
        .map(|(a, b)| (a - b).abs())
        .sum::<f64>()
        / g as f64;
    metrics.float("ppc_zero_fraction_mean_abs_diff", zero_gap);
    let total = |v: &[f64]| v.iter().sum::<f64>();
    metrics.float(
        "ppc_total_mean_ratio",
        total(&simulated.mean) / total(&observed.mean),
    );
    metrics.float(
        "ppc_total_variance_ratio",
        total(&simulated.variance) / total(&observed.variance),
    );
    let baseline_curve = vec![(1.0, baseline_nll), (config.epochs as f64, baseline_nll)];
    common::plot::line_plot(
        &args.out.join("loss.png"),
        "scVI training",
        ("epoch", "loss per cell (nats)"),
        &[
            (
                "train loss (NLL + warm-up β·KL)",
                logged_curve(&args.out, "train", "Loss"),
            ),
            (
                "held-out negative ELBO (1 sample)",
                logged_curve(&args.out, "valid", "Neg ELBO"),
            ),
            ("baseline held-out NLL (per-gene NB)", baseline_curve),
        ],
    )?;
    metrics.float("train_seconds", train_seconds);
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

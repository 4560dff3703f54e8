//! Gene finding on the *Arabidopsis thaliana* chloroplast genome with a structured HMM
//! trained, unsupervised, by gradient descent on `diffbio_burn::hmm`'s forward-algorithm
//! loss with burn-train, and decoded with Viterbi.
//!
//! ```sh
//! cargo run --release --example hmm
//! cargo run --release --example hmm -- --design codon     # the simple 7-state design
//! cargo run --release --example hmm -- --epochs 40 --resume 30
//! cargo run --release --features wgpu --example hmm -- --device wgpu
//! cargo run --release --example hmm -- --help             # every flag, with its default
//! ```
//!
//! * **Data** (`data`): a FASTA genome (the first record; A/C/G/T only, case-insensitive)
//!   and a BED CDS annotation, read with `diffbio-burn-data`'s `sequences` module (errors
//!   name the file, record or line), by default the bundled RefSeq NC_000932.1 (154,478 bp,
//!   104 CDS rows covering 51.3 %). A base is *coding* when a CDS of either strand covers
//!   it. The genome is cut into `--chunk` 2,000 bp windows (the last one shorter, padded by
//!   `SequenceBatcher` and passed with its length); every `--heldout-every` 10th window is
//!   held out of training as burn-train's validation set. The windows carry no labels.
//! * **Model** (`model`, `--design orf`, 35 states): one non-coding state `N` and, per
//!   strand, 17 gene states: a start codon `(A|G) T G`, a codon cycle `1 → 2 → 3 → 1` whose
//!   states remember just enough of the codon read so far (a `T` at position 1, then `TA` or
//!   `TG`) to make the stop codons `TAA`, `TAG`, `TGA` impossible in frame, and a stop codon,
//!   after which the path returns to `N`. Reverse-strand genes are the same graph read
//!   backwards, edges reversed and bases complemented. A gene is therefore an open reading
//!   frame, which is what sets coding DNA apart in an AT-rich genome (random sequence here
//!   meets an in-frame stop about every 15 codons), and the strand comes out of the path.
//!   The free parameters are the emission distributions of the 8 states per strand that may
//!   emit more than one base, the choices inside the graph (e.g. which base starts a codon,
//!   gene end vs. next codon) and the gene-entry rates; everything the graph forbids is a
//!   structural zero. `--design codon` (7 states: `N` plus a plain three-state codon cycle
//!   per strand) is kept for comparison: without the stop-codon structure its strand calls
//!   are wrong more often than right and its coding calls are far worse (see the README).
//! * **Parameterisation**: the design is a table of probabilities with zeros, turned into
//!   the library's `Hmm` module by `Hmm::from_probs` (zeros become `-inf` raw logits). The
//!   library attaches an exactly zero gradient to structural zeros, so Adam leaves them at
//!   `-inf` (no mask to re-apply; the smoke test checks the trained, saved model). Initial
//!   values use no annotation: emissions follow the genome's base composition restricted
//!   to what each state may emit, a gene ends after `--gene-codons` 300 codons on average
//!   and a non-coding stretch lasts `--noncoding-bp` 500 bp (textbook sizes, not fitted).
//! * **Training** (`training`): burn-train's `SupervisedTraining` + `Learner` with the
//!   model's `TrainStep` (loss = summed NLL of a minibatch of 8 windows, `Hmm::forward`,
//!   `Reduction::Sum`), Adam with burn's `CosineAnnealingLrScheduler` from `--lr` 0.05 to
//!   `--min-lr` 0 over all the steps of the run, 30 epochs (the NLL moves by less than 0.001
//!   nats per base after epoch 10). Its metric is the NLL per base of the training windows
//!   (during the epoch) and of the held-out windows (after it); checkpoints every 10 epochs
//!   (`--resume EPOCH` continues); the terminal UI when stdout is a terminal, plain lines
//!   otherwise. Flags derive from `HmmTrainingConfig`, saved as `config.json` with the model.
//!   On `ndarray` the library's host kernel; on other devices the parallel scan (see
//!   `--algorithm`).
//! * **Decoding and metrics** (`eval`): Viterbi over the whole genome as one sequence (host
//!   kernel, on every device); coding = any gene state. Per-base accuracy and F1 of "coding"
//!   against the annotation, for the whole genome and each half, next to the GC baseline (a
//!   base is coding when the GC fraction of the centred `--window` 120 bp exceeds the
//!   genome's) and to calling everything coding; the fraction of bases called and annotated
//!   coding whose strands agree; NLL per base of the whole genome before and after training
//!   and of the best i.i.d. model; `hmm_beats_gc_baseline: yes` when the HMM's accuracy and
//!   F1 both exceed the baseline's on the whole genome and on each half.
//!   The annotation is used for nothing but these scores. While choosing the design and the
//!   defaults we looked at the scores of the first half only; the second half was scored
//!   once, after they were fixed. The held-out windows are a different thing: bases the
//!   HMM was not fitted to, so that burn-train's validation NLL measures generalisation;
//!   they are decoded and scored with the rest of the genome.
//! * **Outputs** in `--out`: `loss.png` (NLL per base by epoch, training and held-out
//!   windows), `tracks.png` (annotation, Viterbi call and GC call over the first 30 kb),
//!   `predicted_cds.bed` (the Viterbi gene calls), `model.mpk` + `config.json` (Burn
//!   recorder and the training config), `metrics.txt`, and burn-train's `checkpoint/`,
//!   `train/`, `valid/` logs.
#[path = "../common/mod.rs"]
mod common;
mod data;
mod eval;
mod model;
mod training;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail, ensure};
use burn::module::{AutodiffModule, Module};
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::AutodiffBackend;
use clap::{Args, ValueEnum};
use diffbio_burn::hmm::{BaumWelchConfig, Hmm, HmmAlgorithm};

use common::config_cli::{exit_on_usage_error, parse_run};
use common::train::logged_curve;
use common::{DeviceArg, Metrics, bundled_data, create_dir, default_out_dir};
use model::GeneFinder;
use training::{HmmTrainingConfig, NLL_PER_BASE};

/// What to run on, and where; the training settings are flags of `HmmTrainingConfig`.
#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// Genome FASTA (the first record is used).
    #[arg(long, default_value_os_t = bundled_data("arabidopsis_chloroplast/NC_000932.fa"))]
    fasta: PathBuf,
    /// CDS annotation, BED (0-based, half-open; columns chrom, start, end[, name, score,
    /// strand]).
    #[arg(long, default_value_os_t = bundled_data("arabidopsis_chloroplast/NC_000932.cds.bed"))]
    bed: PathBuf,
    /// Forward-backward implementation for training (see `diffbio_burn::hmm::HmmAlgorithm`).
    #[arg(long, value_enum, default_value_t = AlgorithmArg::Auto)]
    algorithm: AlgorithmArg,
    /// How to fit the HMM: Adam on the NLL through burn-train (`adam`), or Baum–Welch
    /// (`em`: `--epochs` EM steps over all training windows at once, no learning rate).
    #[arg(long, value_enum, default_value_t = TrainerArg::Adam)]
    trainer: TrainerArg,
    /// Compute device (wgpu needs `--features wgpu`).
    #[arg(long, value_enum, default_value_t = DeviceArg::Ndarray)]
    device: DeviceArg,
    /// Continue from the checkpoint of this epoch in `--out`.
    #[arg(long)]
    resume: Option<usize>,
    /// Output directory.
    #[arg(long, default_value_os_t = default_out_dir("hmm"))]
    out: PathBuf,
}

/// The `--trainer` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TrainerArg {
    /// Gradient descent (Adam) through burn-train's `Learner`.
    Adam,
    /// Baum–Welch EM (`diffbio_burn::hmm::BaumWelch`).
    Em,
}

/// `epochs` Baum–Welch steps from `model` over all training windows in one batch; the
/// training NLL per base before each step and of the result.
fn train_em<B: AutodiffBackend>(
    epochs: usize,
    model: GeneFinder<B>,
    windows: &data::Windows,
) -> (GeneFinder<B>, Vec<(f64, f64)>) {
    let batch = data::loader::<B>(&windows.train, windows.train.len(), None)
        .iter()
        .next()
        .expect("at least one training window");
    let bases = data::bases(&windows.train) as f64;
    let fit = BaumWelchConfig::new().init().fit(
        model.hmm,
        batch.observations,
        Some(batch.lengths),
        None,
        epochs,
    );
    let mut curve: Vec<(f64, f64)> = (fit.history.iter().enumerate())
        .map(|(i, ll)| (i as f64, -ll / bases))
        .collect();
    curve.push((epochs as f64, -fit.log_likelihood / bases));
    (GeneFinder { hmm: fit.model }, curve)
}

/// The `--algorithm` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AlgorithmArg {
    /// The library's choice (`HmmAlgorithm::Auto`): the host kernel on `ndarray`, the
    /// parallel scan on other devices for these 2 kb windows.
    Auto,
    /// `HmmAlgorithm::Host` (on a GPU: reads the parameters and windows back every step).
    Host,
    /// `HmmAlgorithm::Sequential`: one batched tensor step per base.
    Sequential,
    /// `HmmAlgorithm::ParallelScan`: `O(log T)` batched steps.
    ParallelScan,
}

impl AlgorithmArg {
    fn resolve<B: Backend>(self, hmm: &Hmm<B>, len: usize) -> HmmAlgorithm {
        match self {
            AlgorithmArg::Auto => hmm.resolved_algorithm(len),
            AlgorithmArg::Host => HmmAlgorithm::Host,
            AlgorithmArg::Sequential => HmmAlgorithm::Sequential,
            AlgorithmArg::ParallelScan => HmmAlgorithm::ParallelScan,
        }
    }
}

/// The command line: run arguments plus one flag per training setting.
fn parse(argv: impl IntoIterator<Item = String>) -> Result<(RunArgs, HmmTrainingConfig)> {
    let about =
        "Fit a gene-finding HMM to a genome and score its Viterbi path against a CDS annotation";
    parse_run("hmm", about, &HmmTrainingConfig::defaults(), argv)
}

fn run<B: AutodiffBackend>(
    (args, config): &(RunArgs, HmmTrainingConfig),
    device: B::Device,
) -> Result<Metrics> {
    let start = Instant::now();
    create_dir(&args.out)?;
    ensure!(config.window >= 1, "--window must be at least 1");
    ensure!(
        config.epochs >= 1 && config.batch_size >= 1,
        "--epochs and --batch-size must be at least 1"
    );
    ensure!(
        config.model.gene_codons > 1.0 && config.model.noncoding_bp > 2.0,
        "--gene-codons must exceed 1 and --noncoding-bp 2"
    );
    let genome = data::load(&args.fasta, &args.bed)?;
    let name = genome.sequence.name.clone();
    let n = genome.len();
    let coding = genome.coding();
    let coding_fraction = coding.iter().filter(|&&c| c).count() as f64 / n as f64;
    let composition = genome.composition();
    let gc = composition[1] + composition[2];
    let windows = data::windows(&genome, config.chunk, config.heldout_every)?;
    eprintln!(
        "data: {name} ({n} bp, GC {gc:.4}), {} CDS rows covering {coding_fraction:.4} of the \
         genome; {} training and {} held-out windows of {} bp",
        genome.rows,
        windows.train.len(),
        windows.heldout.len(),
        config.chunk
    );

    // The GC baseline: no labels, like the HMM.
    let track = eval::gc_track(&genome.sequence.symbols, config.window);
    let gc_call: Vec<bool> = track.iter().map(|&f| f > gc).collect();

    // The HMM, trained on the genome's bases only (the annotation is not used).
    let design = config.model.gene_model(composition);
    let s = design.n_states();
    let initial = config
        .model
        .init::<B>(composition, HmmAlgorithm::Auto, &device);
    let algorithm = args.algorithm.resolve(&initial.hmm, config.chunk);
    let initial = initial.with_algorithm(algorithm);
    // Validate the data once (symbols in 0..4, lengths); train unchecked (on a GPU each
    // check is a device read-back).
    let nll_initial = eval::nll_per_base(
        &initial.valid().with_algorithm(algorithm).hmm,
        &windows.all,
        config.batch_size,
    );
    let config_path = args.out.join("config.json");
    config
        .save(&config_path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", config_path.display()))?;
    let train_start = Instant::now();
    let (trained, em_curve) = match args.trainer {
        TrainerArg::Adam => {
            let trained = training::train::<B>(
                config,
                initial.with_validate(false),
                &windows,
                &args.out,
                args.resume,
            )?;
            (trained, None)
        }
        TrainerArg::Em => {
            let (trained, curve) = train_em(config.epochs, initial.with_validate(false), &windows);
            (trained.valid(), Some(curve))
        }
    };
    let train_seconds = train_start.elapsed().as_secs_f64();
    let trained = trained.with_validate(true).with_algorithm(algorithm);
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    trained
        .clone()
        .save_file(args.out.join("model"), &recorder)?;

    let nll_final = eval::nll_per_base(&trained.hmm, &windows.all, config.batch_size);
    if !nll_final.is_finite() {
        bail!("the trained model's NLL is {nll_final} with the {algorithm:?} algorithm");
    }
    let nll_heldout = eval::nll_per_base(&trained.hmm, &windows.heldout, config.batch_size);
    let (calls, viterbi_log_prob) =
        eval::decode(&trained.hmm, &design.regions, &genome.sequence.symbols);

    let hmm_call: Vec<bool> = calls.iter().map(|&c| c != 0).collect();
    let steps = config.epochs * config.steps_per_epoch(windows.train.len());
    let mut metrics = Metrics::default();
    metrics.text("sequence", &name);
    metrics.text("length_bp", n);
    metrics.text("cds_rows", genome.rows);
    metrics.float("coding_fraction", coding_fraction);
    metrics.float("gc_fraction", gc);
    let design_name = format!("{:?}", config.model.design).to_lowercase();
    metrics.text("design", &design_name);
    metrics.text("hmm_states", s);
    metrics.text("algorithm", format!("{algorithm:?}").to_lowercase());
    metrics.text("windows_train", windows.train.len());
    metrics.text("windows_heldout", windows.heldout.len());
    metrics.text("epochs", config.epochs);
    metrics.text("trainer", format!("{:?}", args.trainer).to_lowercase());
    match args.trainer {
        TrainerArg::Adam => metrics.text("adam_steps", steps),
        TrainerArg::Em => metrics.text("em_steps", config.epochs),
    }
    let iid = eval::composition_entropy(&composition);
    metrics.float("iid_nll_per_base", iid);
    metrics.float("initial_nll_per_base", nll_initial);
    metrics.float("trained_nll_per_base", nll_final);
    metrics.float("heldout_windows_nll_per_base", nll_heldout);
    metrics.float("viterbi_log_prob", viterbi_log_prob);
    let beats = eval::score(&mut metrics, &hmm_call, &gc_call, &coding);
    metrics.text("hmm_beats_gc_baseline", if beats { "yes" } else { "no" });
    metrics.float(
        "hmm_strand_agreement_genome",
        eval::strand_agreement(&calls, &genome.strand),
    );

    let train_curve = em_curve.unwrap_or_else(|| {
        let mut curve = vec![(0.0, nll_initial)];
        curve.extend(logged_curve(&args.out, "train", NLL_PER_BASE));
        curve
    });
    common::plot::line_plot(
        &args.out.join("loss.png"),
        &format!("HMM training ({design_name} design) on {name}"),
        ("epoch", "NLL (nats/base)"),
        &[
            (
                "training windows, during the epoch (epoch 0: initial model)",
                train_curve,
            ),
            (
                "held-out windows, after the epoch",
                logged_curve(&args.out, "valid", NLL_PER_BASE),
            ),
            (
                "i.i.d. base composition",
                vec![(0.0, iid), (config.epochs as f64, iid)],
            ),
        ],
    )?;
    eval::write_calls_bed(&args.out.join("predicted_cds.bed"), &name, &calls)?;
    eval::plot_tracks(
        &args.out.join("tracks.png"),
        &name,
        &genome.strand,
        &calls,
        &gc_call,
        0..n.min(30_000),
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

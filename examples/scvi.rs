//! scVI-style variational autoencoder for single-cell RNA-seq counts, trained with
//! diffbio-burn's negative-binomial (or ZINB) likelihood and the VAE ELBO.
//!
//! ```sh
//! cargo run --release --example scvi                          # bundled labelled PBMCs
//! cargo run --release --example scvi -- --data data/pbmc_10x_v3_small --likelihood zinb
//! cargo run --release --example scvi -- --help
//! ```
//!
//! * Data: any 10x count directory (`matrix.mtx[.gz]`, `features.tsv[.gz]`,
//!   `barcodes.tsv[.gz]`, optional `labels.tsv`). Cells with no counts are dropped; cells are
//!   split into training and held-out sets; genes with no counts in the training cells are
//!   dropped.
//! * Model (scVI, Lopez et al. 2018): encoder on `log1p(counts)` → Gaussian latent
//!   (`mean`, `logvar`), reparameterised sample, decoder → softmax gene proportions × the
//!   cell's observed library size = NB mean `mu`; a learnable inverse dispersion `theta` per
//!   gene; for ZINB a dropout-logit head. Loss per cell: NLL summed over genes + β·KL summed
//!   over latents (`VaeLoss::combine`, `Reduction::BatchMean`) with a linear KL warm-up. Adam.
//! * Baseline without latent structure: per-gene NB with `mu = library size × gene
//!   frequency` (training cells) and `theta` fitted by maximum likelihood (Adam on the same
//!   NB loss).
//! * Metrics (held-out cells): NB NLL per cell of the VAE (decoding the posterior mean) and a
//!   Monte Carlo estimate of its negative ELBO (β = 1; an upper bound of the NLL of the
//!   marginal likelihood, so the fair comparison with the baseline's exact NLL), and, with
//!   labels, kNN (k = 15) accuracy of held-out labels from training cells in the latent space
//!   against the first 10 principal components of log-normalised counts.
//! * Outputs in `--out`: `loss.png`, `latent.csv` (posterior means), `latent.png` (with
//!   labels), `model.mpk` + `config.json` (Burn recorder; reloaded to re-evaluate),
//!   `metrics.txt`.
mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use burn::config::Config;
use burn::module::{AutodiffModule, Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, ElementConversion, Int, Tensor, TensorData};
use clap::{Parser, ValueEnum};
use diffbio_burn::Reduction;
use diffbio_burn::losses::kl::{KlWarmupConfig, gaussian_kl};
use diffbio_burn::losses::negative_binomial::{NegativeBinomialLoss, NegativeBinomialLossConfig};
use diffbio_burn::losses::vae::VaeLossConfig;
use diffbio_burn::losses::zinb::{ZinbLoss, ZinbLossConfig};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use common::metrics::{Pca, knn_accuracy};
use common::tenx::{CountMatrix, read_10x};
use common::{DeviceArg, Metrics, bundled_data, create_dir, default_out_dir, epoch_bar};

/// Count likelihood of the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Likelihood {
    /// Negative binomial.
    Nb,
    /// Zero-inflated negative binomial.
    Zinb,
}

/// Train an scVI-style VAE on a 10x count matrix and compare it with a per-gene NB baseline.
#[derive(Parser, Debug, Clone)]
#[command(name = "scvi", version)]
struct Args {
    /// 10x count directory (matrix.mtx[.gz], features.tsv[.gz] or genes.tsv[.gz],
    /// barcodes.tsv[.gz], optional labels.tsv).
    #[arg(long, default_value_os_t = bundled_data("pbmc68k_reduced_labeled"))]
    data: PathBuf,
    /// Cell labels (`barcode<TAB>label` with a header line); default: labels.tsv in --data.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Count likelihood.
    #[arg(long, value_enum, default_value_t = Likelihood::Nb)]
    likelihood: Likelihood,
    /// Training epochs (the held-out ELBO stops improving after about 250 on the default
    /// data).
    #[arg(long, default_value_t = 300)]
    epochs: usize,
    /// Fraction of the epochs over which the KL weight rises linearly from 0 to --beta.
    #[arg(long, default_value_t = 0.25)]
    warmup_fraction: f64,
    /// Final KL weight β.
    #[arg(long, default_value_t = 1.0)]
    beta: f64,
    /// Cells per minibatch.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Width of the hidden layer of encoder and decoder.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Latent dimension.
    #[arg(long, default_value_t = 10)]
    latent: usize,
    /// Dropout rate after the encoder's hidden layer.
    #[arg(long, default_value_t = 0.1)]
    dropout: f64,
    /// Fraction of cells held out for evaluation.
    #[arg(long, default_value_t = 0.2)]
    heldout_fraction: f64,
    /// Use at most this many cells (a seeded random subset), e.g. for a quick look at a big
    /// data set.
    #[arg(long)]
    max_cells: Option<usize>,
    /// Neighbours of the kNN label-transfer metric.
    #[arg(long, default_value_t = 15)]
    knn_k: usize,
    /// Monte Carlo samples of the held-out ELBO estimate.
    #[arg(long, default_value_t = 20)]
    elbo_samples: usize,
    /// Adam steps refining the baseline's per-gene theta (after a method-of-moments start).
    #[arg(long, default_value_t = 50)]
    baseline_steps: usize,
    /// Random seed (cell split, minibatches, weights, latent samples).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Compute device (wgpu needs `--features wgpu`).
    #[arg(long, value_enum, default_value_t = DeviceArg::Ndarray)]
    device: DeviceArg,
    /// Output directory.
    #[arg(long, default_value_os_t = default_out_dir("scvi"))]
    out: PathBuf,
}

/// Architecture of [`Scvi`] (saved next to the weights as `config.json`).
#[derive(Config, Debug)]
struct ScviConfig {
    /// Number of genes (input and output width).
    n_genes: usize,
    /// Hidden layer width.
    #[config(default = 128)]
    n_hidden: usize,
    /// Latent dimension.
    #[config(default = 10)]
    n_latent: usize,
    /// Encoder dropout rate.
    #[config(default = 0.1)]
    dropout: f64,
    /// Adds a dropout-logit head (ZINB).
    #[config(default = false)]
    zero_inflated: bool,
}

impl ScviConfig {
    fn init<B: Backend>(&self, device: &B::Device) -> Scvi<B> {
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
        }
    }
}

/// scVI's VAE: Gaussian encoder on log counts, NB/ZINB decoder with per-gene dispersion.
#[derive(Module, Debug)]
struct Scvi<B: Backend> {
    encoder_hidden: Linear<B>,
    encoder_mean: Linear<B>,
    encoder_logvar: Linear<B>,
    dropout: Dropout,
    decoder_hidden: Linear<B>,
    decoder_scale: Linear<B>,
    decoder_dropout: Option<Linear<B>>,
    /// `log theta`, `[G]`.
    log_theta: Param<Tensor<B, 1>>,
}

/// Decoder outputs for a batch of cells.
struct Decoded<B: Backend> {
    /// NB mean, `[n, G]`.
    mu: Tensor<B, 2>,
    /// ZINB dropout logits, `[n, G]`.
    pi_logits: Option<Tensor<B, 2>>,
}

impl<B: Backend> Scvi<B> {
    /// Posterior `(mean, logvar)`, each `[n, latent]`, from counts `[n, G]`.
    fn encode(&self, counts: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let h = self
            .dropout
            .forward(relu(self.encoder_hidden.forward(counts.log1p())));
        (
            self.encoder_mean.forward(h.clone()),
            self.encoder_logvar.forward(h),
        )
    }

    /// `mu = softmax(decoder(z)) × library` and the dropout logits; `library` is `[n, 1]`.
    fn decode(&self, z: Tensor<B, 2>, library: Tensor<B, 2>) -> Decoded<B> {
        let h = relu(self.decoder_hidden.forward(z));
        let proportions = softmax(self.decoder_scale.forward(h.clone()), 1);
        Decoded {
            mu: proportions * library,
            pi_logits: self.decoder_dropout.as_ref().map(|l| l.forward(h)),
        }
    }

    fn theta(&self) -> Tensor<B, 1> {
        self.log_theta.val().exp()
    }
}

/// The count likelihood with validation off: the data are validated once, up front, and a
/// check per step would read a flag back from the device every step (a GPU sync).
#[derive(Clone)]
struct CountNll {
    nb: NegativeBinomialLoss,
    zinb: ZinbLoss,
}

impl CountNll {
    fn new() -> Self {
        Self {
            nb: NegativeBinomialLossConfig::new()
                .with_validate(false)
                .init(),
            zinb: ZinbLossConfig::new().with_validate(false).init(),
        }
    }

    /// Element-wise NLL `[n, G]` of `counts` under the decoded distribution.
    fn nll<B: Backend>(
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

/// Row-major `[n, g]` host data as a device tensor.
fn to_tensor<B: Backend>(data: &[f32], n: usize, g: usize, device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(data.to_vec(), [n, g]), device)
}

fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32 tensor data")
}

/// Training and held-out cells after quality control.
struct Split {
    train: CountMatrix,
    heldout: CountMatrix,
    dropped_cells: usize,
    dropped_genes: usize,
}

fn prepare(data: &CountMatrix, args: &Args, rng: &mut StdRng) -> Result<Split> {
    let library = data.library_sizes();
    let mut cells: Vec<usize> = (0..data.n_cells).filter(|&c| library[c] > 0.0).collect();
    let dropped_cells = data.n_cells - cells.len();
    cells.shuffle(rng);
    if let Some(max) = args.max_cells {
        cells.truncate(max);
    }
    ensure!(
        (0.0..1.0).contains(&args.heldout_fraction),
        "--heldout-fraction must be in [0, 1)"
    );
    let n_heldout = ((cells.len() as f64 * args.heldout_fraction).round() as usize).max(1);
    ensure!(
        cells.len() >= n_heldout + 2,
        "{}: only {} cells with counts; need at least {}",
        args.data.display(),
        cells.len(),
        n_heldout + 2
    );
    let (heldout_cells, train_cells) = cells.split_at(n_heldout);
    let mut gene_totals = vec![0f32; data.n_genes];
    for &c in train_cells {
        for (t, v) in gene_totals.iter_mut().zip(data.row(c)) {
            *t += v;
        }
    }
    let genes: Vec<usize> = (0..data.n_genes)
        .filter(|&g| gene_totals[g] > 0.0)
        .collect();
    let train = data.subset(train_cells, &genes);
    let heldout = data.subset(heldout_cells, &genes);
    // A held-out cell whose counts were all in dropped genes has library size 0.
    let keep: Vec<usize> = (0..heldout.n_cells)
        .filter(|&c| heldout.row(c).iter().sum::<f32>() > 0.0)
        .collect();
    let all_genes: Vec<usize> = (0..genes.len()).collect();
    Ok(Split {
        dropped_cells: dropped_cells + heldout.n_cells - keep.len(),
        heldout: heldout.subset(&keep, &all_genes),
        train,
        dropped_genes: data.n_genes - genes.len(),
    })
}

/// Held-out evaluation of a VAE: NB NLL per cell decoding the posterior mean, and the KL.
struct VaeEval {
    nll_at_mean: f64,
    kl: f64,
}

fn evaluate<B: Backend>(model: &Scvi<B>, counts: &Tensor<B, 2>, likelihood: &CountNll) -> VaeEval {
    let (mean, logvar) = model.encode(counts.clone());
    let library = counts.clone().sum_dim(1);
    let decoded = model.decode(mean.clone(), library);
    let n = counts.dims()[0] as f64;
    let nll = likelihood.nll(counts.clone(), decoded, model.theta()).sum();
    let kl = gaussian_kl(mean, logvar).sum();
    VaeEval {
        nll_at_mean: nll.into_scalar().elem::<f64>() / n,
        kl: kl.into_scalar().elem::<f64>() / n,
    }
}

/// Monte Carlo estimate of the negative ELBO per cell with β = 1 (`samples` draws of z).
fn negative_elbo<B: Backend>(
    model: &Scvi<B>,
    counts: &Tensor<B, 2>,
    likelihood: &CountNll,
    samples: usize,
) -> f64 {
    let (mean, logvar) = model.encode(counts.clone());
    let library = counts.clone().sum_dim(1);
    let n = counts.dims()[0] as f64;
    let std = (logvar.clone() * 0.5).exp();
    let mut recon = 0.0;
    for _ in 0..samples {
        let z = mean.clone() + std.clone() * mean.random_like(Distribution::Normal(0.0, 1.0));
        let decoded = model.decode(z, library.clone());
        let nll = likelihood.nll(counts.clone(), decoded, model.theta()).sum();
        recon += nll.into_scalar().elem::<f64>() / n;
    }
    let kl: f64 = gaussian_kl(mean, logvar).sum().into_scalar().elem::<f64>();
    recon / samples.max(1) as f64 + kl / n
}

/// Cells per Adam step of the baseline's theta fit (all cells when there are fewer).
const BASELINE_BATCH: usize = 1024;

/// The baseline's learnable per-gene `log theta`.
#[derive(Module, Debug)]
struct BaselineTheta<B: Backend> {
    log_theta: Param<Tensor<B, 1>>,
}

/// Per-gene NB without latent structure: `mu[c, g] = library[c] × freq[g]` (training gene
/// frequencies), `theta[g]` fitted by maximum likelihood on the training cells: a
/// method-of-moments start (`Σ mu² / Σ[(x - mu)² - x]`, the NB variance `mu + mu²/theta`),
/// refined by `steps` Adam steps on the library's NB loss (minibatches of
/// [`BASELINE_BATCH`] cells on large data). Returns the held-out NLL per cell.
fn baseline<B: AutodiffBackend>(
    train: &CountMatrix,
    train_x: &Tensor<B, 2>,
    heldout_x: &Tensor<B::InnerBackend, 2>,
    steps: usize,
    rng: &mut StdRng,
) -> f64 {
    let g = train.n_genes;
    let mut totals = vec![0f64; g];
    for c in 0..train.n_cells {
        for (t, &v) in totals.iter_mut().zip(train.row(c)) {
            *t += v as f64;
        }
    }
    let sum: f64 = totals.iter().sum();
    let freq: Vec<f64> = totals.iter().map(|t| t / sum).collect();
    let (mut mu2, mut excess) = (vec![0f64; g], vec![0f64; g]);
    for (c, library) in train.library_sizes().into_iter().enumerate() {
        for (j, &x) in train.row(c).iter().enumerate() {
            let mu = library as f64 * freq[j];
            mu2[j] += mu * mu;
            excess[j] += (x as f64 - mu).powi(2) - x as f64;
        }
    }
    // No excess variance: the Poisson limit, approximated by a large theta.
    let log_theta: Vec<f32> = (0..g)
        .map(|j| {
            let theta = if excess[j] > 0.0 {
                mu2[j] / excess[j]
            } else {
                1e4
            };
            theta.clamp(1e-3, 1e4).ln() as f32
        })
        .collect();

    let device = train_x.device();
    let freq: Vec<f32> = freq.iter().map(|&f| f as f32).collect();
    let freq = to_tensor::<B>(&freq, 1, g, &device);
    let mu = train_x.clone().sum_dim(1) * freq.clone();
    let nb = NegativeBinomialLossConfig::new()
        .with_validate(false)
        .init();
    let mut theta_model = BaselineTheta {
        log_theta: Param::from_tensor(Tensor::from_data(TensorData::new(log_theta, [g]), &device)),
    };
    let mut optim = AdamConfig::new().init();
    let n = train.n_cells;
    let mut cells: Vec<usize> = (0..n).collect();
    for _ in 0..steps {
        // Full batch up to BASELINE_BATCH cells, random minibatches beyond (large data sets).
        let (x, mu) = if n <= BASELINE_BATCH {
            (train_x.clone(), mu.clone())
        } else {
            cells.shuffle(rng);
            let idx: Vec<i64> = cells[..BASELINE_BATCH].iter().map(|&i| i as i64).collect();
            let idx =
                Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [BASELINE_BATCH]), &device);
            (
                train_x.clone().select(0, idx.clone()),
                mu.clone().select(0, idx),
            )
        };
        let theta = theta_model.log_theta.val().exp();
        let loss = nb.forward(x, mu, theta, Reduction::BatchMean);
        let grads = GradientsParams::from_grads(loss.backward(), &theta_model);
        theta_model = optim.step(0.02, theta_model, grads);
    }
    let theta = theta_model.valid().log_theta.val().exp();
    let heldout_mu = heldout_x.clone().sum_dim(1) * freq.inner();
    nb.forward(heldout_x.clone(), heldout_mu, theta, Reduction::BatchMean)
        .into_scalar()
        .elem::<f64>()
}

/// `log1p(count / library × 1e4)`, scanpy's `normalize_total` + `log1p`.
fn log_normalise(m: &CountMatrix) -> Vec<f32> {
    let mut out = Vec::with_capacity(m.counts.len());
    for c in 0..m.n_cells {
        let row = m.row(c);
        let library: f32 = row.iter().sum();
        out.extend(row.iter().map(|v| (v / library * 1e4).ln_1p()));
    }
    out
}

fn write_latent_csv(
    path: &Path,
    sets: &[(&str, &CountMatrix, &[f32])],
    latent: usize,
) -> Result<()> {
    let context = || format!("cannot write {}", path.display());
    let mut w = csv::Writer::from_path(path).with_context(context)?;
    let mut header = vec!["barcode".to_string(), "split".into(), "label".into()];
    header.extend((1..=latent).map(|i| format!("z{i}")));
    w.write_record(&header).with_context(context)?;
    for (split, m, z) in sets {
        for (c, zc) in z.chunks(latent).enumerate() {
            let label = m.labels.as_ref().map_or("", |l| l[c].as_str());
            let mut record = vec![m.barcodes[c].clone(), split.to_string(), label.to_string()];
            record.extend(zc.iter().map(|v| v.to_string()));
            w.write_record(&record).with_context(context)?;
        }
    }
    w.flush().with_context(context)
}

fn run<B: AutodiffBackend>(args: &Args, device: B::Device) -> Result<Metrics> {
    let start = Instant::now();
    create_dir(&args.out)?;
    B::seed(&device, args.seed);
    let mut rng = StdRng::seed_from_u64(args.seed);

    let data = read_10x(&args.data, args.labels.as_deref())?;
    let split = prepare(&data, args, &mut rng)?;
    let (train, heldout) = (&split.train, &split.heldout);
    let g = train.n_genes;
    eprintln!(
        "data: {} ({} cells x {} genes); {} training and {} held-out cells, {g} genes \
         ({} cells without counts and {} genes without training counts dropped)",
        args.data.display(),
        data.n_cells,
        data.n_genes,
        train.n_cells,
        heldout.n_cells,
        split.dropped_cells,
        split.dropped_genes
    );

    let train_x = to_tensor::<B>(&train.counts, train.n_cells, g, &device);
    let heldout_x = to_tensor::<B::InnerBackend>(&heldout.counts, heldout.n_cells, g, &device);
    // Validate the data once with the library's checks (the training loop runs unchecked).
    let checked_nb = NegativeBinomialLossConfig::new().init();
    let ones = |n| Tensor::<B::InnerBackend, 2>::ones([n, g], &device);
    let theta_one = Tensor::<B::InnerBackend, 1>::ones([g], &device);
    checked_nb.forward(
        train_x.clone().inner(),
        ones(train.n_cells),
        theta_one.clone(),
        Reduction::Sum,
    );
    checked_nb.forward(
        heldout_x.clone(),
        ones(heldout.n_cells),
        theta_one,
        Reduction::Sum,
    );

    let baseline_nll = baseline(train, &train_x, &heldout_x, args.baseline_steps, &mut rng);

    let config = ScviConfig::new(g)
        .with_n_hidden(args.hidden)
        .with_n_latent(args.latent)
        .with_dropout(args.dropout)
        .with_zero_inflated(args.likelihood == Likelihood::Zinb);
    let mut model = config.init::<B>(&device);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let likelihood = CountNll::new();
    let warmup_epochs = (args.epochs as f64 * args.warmup_fraction).round() as usize;
    let warmup = KlWarmupConfig::new(warmup_epochs)
        .with_max_weight(args.beta)
        .init();

    let mut curves: [Vec<(f64, f64)>; 3] = Default::default();
    let bar = epoch_bar(args.epochs);
    let mut order: Vec<usize> = (0..train.n_cells).collect();
    let batches = train.n_cells.div_ceil(args.batch_size);
    let train_start = Instant::now();
    for epoch in 0..args.epochs {
        order.shuffle(&mut rng);
        let mut epoch_loss = 0.0;
        for (b, chunk) in order.chunks(args.batch_size).enumerate() {
            let idx: Vec<i64> = chunk.iter().map(|&i| i as i64).collect();
            let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [chunk.len()]), &device);
            let x = train_x.clone().select(0, idx);
            let (mean, logvar) = model.encode(x.clone());
            let noise = mean.random_like(Distribution::Normal(0.0, 1.0));
            let z = mean.clone() + (logvar.clone() * 0.5).exp() * noise;
            let decoded = model.decode(z, x.clone().sum_dim(1));
            let recon = likelihood.nll(x, decoded, model.theta());
            let kl_weight = warmup.weight_at(epoch as f64 + b as f64 / batches as f64);
            let vae = VaeLossConfig::new()
                .with_kl_weight(kl_weight)
                .with_validate(false)
                .init();
            let elbo = vae.combine(recon, mean, logvar, Reduction::BatchMean);
            let loss_value: f64 = elbo.loss.clone().into_scalar().elem::<f64>();
            epoch_loss += loss_value * chunk.len() as f64;
            let grads = GradientsParams::from_grads(elbo.loss.backward(), &model);
            model = optim.step(args.lr, model, grads);
        }
        let train_loss = epoch_loss / train.n_cells as f64;
        let eval = evaluate(&model.valid(), &heldout_x, &likelihood);
        curves[0].push((epoch as f64 + 1.0, train_loss));
        curves[1].push((epoch as f64 + 1.0, eval.nll_at_mean));
        curves[2].push((epoch as f64 + 1.0, eval.nll_at_mean + eval.kl));
        bar.set_message(format!(
            "train loss {train_loss:.2}, held-out NLL {:.2} (baseline {baseline_nll:.2})",
            eval.nll_at_mean
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let train_seconds = train_start.elapsed().as_secs_f64();

    let trained = model.valid();
    let eval = evaluate(&trained, &heldout_x, &likelihood);
    let neg_elbo = negative_elbo(&trained, &heldout_x, &likelihood, args.elbo_samples);

    // Save with Burn's recorder, load into a fresh model and evaluate again.
    let (_, loaded) = common::save_and_reload(&trained, &config, &args.out, &device, |c| {
        c.init::<B::InnerBackend>(&device)
    })?;
    let reloaded = evaluate(&loaded, &heldout_x, &likelihood);
    if reloaded.nll_at_mean != eval.nll_at_mean {
        bail!(
            "the reloaded model evaluates to {} but the trained one to {}",
            reloaded.nll_at_mean,
            eval.nll_at_mean
        );
    }

    // Latent means of every cell, from the reloaded model.
    let latent_of = |m: &CountMatrix| -> Vec<f32> {
        let x = to_tensor::<B::InnerBackend>(&m.counts, m.n_cells, g, &device);
        to_vec(loaded.encode(x).0)
    };
    let (z_train, z_heldout) = (latent_of(train), latent_of(heldout));
    write_latent_csv(
        &args.out.join("latent.csv"),
        &[("train", train, &z_train), ("heldout", heldout, &z_heldout)],
        args.latent,
    )?;

    let mut metrics = Metrics::default();
    metrics.text("dataset", args.data.display());
    metrics.text("cells_train", train.n_cells);
    metrics.text("cells_heldout", heldout.n_cells);
    metrics.text("genes", g);
    metrics.text(
        "likelihood",
        format!("{:?}", args.likelihood).to_lowercase(),
    );
    metrics.text("epochs", args.epochs);
    metrics.float("vae_heldout_nll_per_cell", eval.nll_at_mean);
    metrics.float("vae_heldout_neg_elbo_per_cell", neg_elbo);
    metrics.float("baseline_heldout_nll_per_cell", baseline_nll);
    metrics.text(
        "vae_beats_baseline",
        if neg_elbo < baseline_nll { "yes" } else { "no" },
    );
    metrics.float("loaded_model_heldout_nll_per_cell", reloaded.nll_at_mean);

    if let (Some(train_labels), Some(heldout_labels)) = (&train.labels, &heldout.labels) {
        let k = args.knn_k;
        let latent_acc = knn_accuracy(
            &z_train,
            train_labels,
            &z_heldout,
            heldout_labels,
            args.latent,
            k,
        );
        let n_pcs = 10.min(g);
        let (ln_train, ln_heldout) = (log_normalise(train), log_normalise(heldout));
        let pca = Pca::fit(&ln_train, train.n_cells, g, n_pcs);
        let pcs_train = pca.transform(&ln_train, train.n_cells);
        let pcs_heldout = pca.transform(&ln_heldout, heldout.n_cells);
        let pca_acc = knn_accuracy(
            &pcs_train,
            train_labels,
            &pcs_heldout,
            heldout_labels,
            n_pcs,
            k,
        );
        metrics.text("knn_k", k);
        metrics.float("knn_accuracy_latent", latent_acc);
        metrics.float("knn_accuracy_pca10", pca_acc);

        // 2-D view of the latent means: their first two principal components.
        let z_all: Vec<f32> = z_train.iter().chain(&z_heldout).copied().collect();
        let n_all = train.n_cells + heldout.n_cells;
        let view = Pca::fit(&z_all, n_all, args.latent, 2.min(args.latent));
        let xy = view.transform(&z_all, n_all);
        let points: Vec<(f32, f32)> = xy
            .chunks(2.min(args.latent))
            .map(|p| (p[0], *p.get(1).unwrap_or(&0.0)))
            .collect();
        let labels: Vec<String> = train_labels.iter().chain(heldout_labels).cloned().collect();
        common::plot::scatter_by_label(
            &args.out.join("latent.png"),
            "scVI latent means (PCA of the latent space)",
            ("latent PC1", "latent PC2"),
            &points,
            &labels,
        )?;
    }

    let baseline_curve: Vec<(f64, f64)> = [1.0, args.epochs as f64]
        .iter()
        .map(|&e| (e, baseline_nll))
        .collect();
    common::plot::line_plot(
        &args.out.join("loss.png"),
        "scVI training",
        ("epoch", "loss per cell (nats)"),
        &[
            ("train loss (NLL + warm-up β·KL)", curves[0].clone()),
            ("held-out NLL (posterior mean)", curves[1].clone()),
            ("held-out NLL + KL", curves[2].clone()),
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
    let args = Args::parse();
    dispatch_backend!(args.device, run, &args).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(extra: &[&str], out: &Path) -> Args {
        let mut argv = vec!["scvi", "--epochs", "2", "--max-cells", "150"];
        argv.extend_from_slice(&["--baseline-steps", "20", "--elbo-samples", "2"]);
        argv.extend_from_slice(extra);
        let mut args = Args::parse_from(argv);
        args.out = out.to_path_buf();
        args
    }

    fn check(metrics: &Metrics, out: &Path, labelled: bool) {
        for name in [
            "vae_heldout_nll_per_cell",
            "vae_heldout_neg_elbo_per_cell",
            "baseline_heldout_nll_per_cell",
        ] {
            let v = metrics.get(name).unwrap();
            assert!(v.is_finite() && v > 0.0, "{name} = {v}");
        }
        assert_eq!(
            metrics.get("loaded_model_heldout_nll_per_cell"),
            metrics.get("vae_heldout_nll_per_cell")
        );
        for file in [
            "loss.png",
            "latent.csv",
            "model.mpk",
            "config.json",
            "metrics.txt",
        ] {
            assert!(out.join(file).is_file(), "missing {file}");
        }
        assert_eq!(out.join("latent.png").is_file(), labelled);
        let acc = metrics.get("knn_accuracy_latent");
        assert_eq!(acc.is_some(), labelled);
        if let Some(acc) = acc {
            assert!((0.0..=1.0).contains(&acc));
        }
    }

    #[test]
    fn smoke_labelled_pbmc() {
        let out = tempfile::tempdir().unwrap();
        let metrics = run::<burn::backend::Autodiff<burn::backend::NdArray>>(
            &tiny(&[], out.path()),
            Default::default(),
        )
        .unwrap();
        check(&metrics, out.path(), true);
    }

    #[test]
    fn smoke_chr21_pbmc_zinb() {
        let out = tempfile::tempdir().unwrap();
        let data = bundled_data("pbmc_10x_v3_small");
        let args = tiny(
            &["--data", data.to_str().unwrap(), "--likelihood", "zinb"],
            out.path(),
        );
        let metrics =
            run::<burn::backend::Autodiff<burn::backend::NdArray>>(&args, Default::default())
                .unwrap();
        check(&metrics, out.path(), false);
    }

    #[test]
    fn bad_data_path_is_named() {
        let out = tempfile::tempdir().unwrap();
        let args = tiny(&["--data", "/no/such/dir"], out.path());
        let err = run::<burn::backend::Autodiff<burn::backend::NdArray>>(&args, Default::default())
            .unwrap_err();
        assert!(format!("{err:#}").contains("/no/such/dir"), "{err:#}");
    }
}

//! Held-out evaluation: the VAE's NLL and Monte Carlo negative ELBO, a per-gene NB baseline,
//! kNN label transfer in the latent space against PCA, the latent means and the plots.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use burn::data::dataloader::batcher::Batcher;
use burn::module::{AutodiffModule, Param};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::ElementConversion;
use burn::tensor::backend::AutodiffBackend;
use diffbio_burn::Reduction;
use diffbio_burn::distributions::{NegativeBinomial, ZeroInflatedNegativeBinomial};
use diffbio_burn::losses::kl::gaussian_kl;
use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
use diffbio_burn_data::counts::{CellItem, CountMatrix, CountsBatch, CountsBatcher};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::index::sample;

use crate::model::{CountNll, Scvi, sample_latent};

/// Cells per evaluation batch.
const EVAL_BATCH: usize = 1024;

/// The cells of `matrix` as dense batches of at most [`EVAL_BATCH`].
fn batches<B: Backend>(
    matrix: &Arc<CountMatrix>,
    device: &B::Device,
) -> impl Iterator<Item = CountsBatch<B>> {
    let batcher = CountsBatcher::new(matrix.clone());
    let cells: Vec<usize> = (0..matrix.n_cells()).collect();
    let device = device.clone();
    cells
        .chunks(EVAL_BATCH)
        .map(|chunk| {
            chunk
                .iter()
                .map(|&cell| CellItem { cell })
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(move |items| batcher.batch(items, &device))
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_scalar().elem::<f64>()
}

/// Held-out NLL per cell decoding the posterior mean, and the KL per cell.
pub fn nll_at_mean<B: Backend>(
    model: &Scvi<B>,
    cells: &Arc<CountMatrix>,
    device: &B::Device,
) -> (f64, f64) {
    let (mut nll, mut kl) = (0.0, 0.0);
    for batch in batches::<B>(cells, device) {
        let (mean, logvar) = model.encode(batch.counts.clone());
        let decoded = model.decode(mean.clone(), batch.library);
        nll += scalar(
            CountNll::new()
                .nll(batch.counts, decoded, model.theta())
                .sum(),
        );
        kl += scalar(gaussian_kl(mean, logvar).sum());
    }
    let n = cells.n_cells() as f64;
    (nll / n, kl / n)
}

/// Monte Carlo estimate of the negative ELBO per cell with β = 1 (`samples` draws of z): an
/// upper bound of the NLL of the marginal likelihood, comparable with the baseline's NLL.
pub fn negative_elbo<B: Backend>(
    model: &Scvi<B>,
    cells: &Arc<CountMatrix>,
    samples: usize,
    device: &B::Device,
) -> f64 {
    let mut total = 0.0;
    for batch in batches::<B>(cells, device) {
        let (mean, logvar) = model.encode(batch.counts.clone());
        let mut recon = 0.0;
        for _ in 0..samples {
            let decoded = model.decode(sample_latent(&mean, &logvar), batch.library.clone());
            recon += scalar(
                CountNll::new()
                    .nll(batch.counts.clone(), decoded, model.theta())
                    .sum(),
            );
        }
        total += recon / samples.max(1) as f64 + scalar(gaussian_kl(mean, logvar).sum());
    }
    total / cells.n_cells() as f64
}

/// Posterior means `[cells × latent]`, row-major.
pub fn latent_means<B: Backend>(
    model: &Scvi<B>,
    cells: &Arc<CountMatrix>,
    device: &B::Device,
) -> Vec<f32> {
    batches::<B>(cells, device)
        .flat_map(|batch| {
            model
                .encode(batch.counts)
                .0
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .expect("f32")
        })
        .collect()
}

/// Cells per Adam step of the baseline's theta fit.
const BASELINE_BATCH: usize = 1024;

/// The baseline's learnable per-gene `log theta`.
#[derive(Module, Debug)]
struct BaselineTheta<B: Backend> {
    log_theta: Param<Tensor<B, 1>>,
}

/// Per-gene NB without latent structure: `mu[c, g] = library[c] × freq[g]` (training gene
/// frequencies), `theta[g]` by maximum likelihood on the training cells: a method-of-moments
/// start (`Σ mu² / Σ[(x − mu)² − x]`, from the NB variance `mu + mu²/theta`), refined by
/// `steps` Adam steps on minibatches of the NB loss. Returns the held-out NLL per cell.
pub fn baseline<B: AutodiffBackend>(
    train: &Arc<CountMatrix>,
    heldout: &Arc<CountMatrix>,
    steps: usize,
    seed: u64,
    device: &B::Device,
) -> f64 {
    let g = train.n_genes();
    let totals = train.gene_totals();
    let sum: f64 = totals.iter().sum();
    let freq: Vec<f64> = totals.iter().map(|t| t / sum).collect();
    // Σ_c mu² = f² Σ L²; Σ_c [(x − mu)² − x] = Σ x² − 2 f Σ L x + f² Σ L² − Σ x.
    let library = train.library_sizes();
    let sum_l2: f64 = library.iter().map(|&l| f64::from(l).powi(2)).sum();
    let (mut x2, mut lx) = (vec![0f64; g], vec![0f64; g]);
    for (c, row) in train.x.outer_iterator().enumerate() {
        for (j, &x) in row.iter() {
            let x = f64::from(x);
            x2[j] += x * x;
            lx[j] += f64::from(library[c]) * x;
        }
    }
    let log_theta: Vec<f32> = (0..g)
        .map(|j| {
            let mu2 = freq[j] * freq[j] * sum_l2;
            let excess = x2[j] - 2.0 * freq[j] * lx[j] + mu2 - totals[j];
            // No excess variance: the Poisson limit, approximated by a large theta.
            let theta = if excess > 0.0 { mu2 / excess } else { 1e4 };
            theta.clamp(1e-3, 1e4).ln() as f32
        })
        .collect();
    let freq: Vec<f32> = freq.iter().map(|&f| f as f32).collect();
    let freq = Tensor::<B, 2>::from_data(TensorData::new(freq, [1, g]), device);
    let nb = NegativeBinomialLossConfig::new()
        .with_validate(false)
        .init();
    let mut model = BaselineTheta {
        log_theta: Param::from_tensor(Tensor::from_data(TensorData::new(log_theta, [g]), device)),
    };
    let mut optim = AdamConfig::new().init();
    let batcher = CountsBatcher::new(train.clone());
    let mut rng = StdRng::seed_from_u64(seed);
    let n = train.n_cells();
    for _ in 0..steps {
        let items = sample(&mut rng, n, n.min(BASELINE_BATCH))
            .into_iter()
            .map(|cell| CellItem { cell })
            .collect();
        let batch: CountsBatch<B> = batcher.batch(items, device);
        let mu = batch.library * freq.clone();
        let loss = nb.forward(
            batch.counts,
            mu,
            model.log_theta.val().exp(),
            Reduction::BatchMean,
        );
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.02, model, grads);
    }
    let theta = model.valid().log_theta.val().exp();
    let freq = freq.inner();
    let mut nll = 0.0;
    for batch in batches::<B::InnerBackend>(heldout, device) {
        let mu = batch.library * freq.clone();
        nll += scalar(nb.forward(batch.counts, mu, theta.clone(), Reduction::Sum));
    }
    nll / heldout.n_cells() as f64
}

/// `log1p(count / library × 1e4)` of every cell, dense row-major (scanpy's `normalize_total`
/// + `log1p`).
pub fn log_normalise(m: &CountMatrix) -> Vec<f32> {
    let mut out = vec![0f32; m.n_cells() * m.n_genes()];
    for (c, row) in out.chunks_exact_mut(m.n_genes()).enumerate() {
        m.dense_row_into(c, row);
        let library: f32 = row.iter().sum();
        row.iter_mut()
            .for_each(|v| *v = (*v / library * 1e4).ln_1p());
    }
    out
}

/// Writes `barcode,split,label,z1..zL` for each set of cells.
pub fn write_latent_csv(
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
            let mut record = vec![
                m.cell_names[c].clone(),
                split.to_string(),
                label.to_string(),
            ];
            record.extend(zc.iter().map(|v| v.to_string()));
            w.write_record(&record).with_context(context)?;
        }
    }
    w.flush().with_context(context)
}

/// Per-gene summaries of a set of cells: mean, variance (`n - 1` normaliser) and fraction
/// of zeros.
#[derive(Debug, Clone)]
pub struct GeneStats {
    pub mean: Vec<f64>,
    pub variance: Vec<f64>,
    pub zero_fraction: Vec<f64>,
}

/// Running per-gene sums of `x`, `x²` and `[x = 0]`.
struct GeneSums {
    n: f64,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    zeros: Vec<f64>,
}

impl GeneSums {
    fn new(genes: usize) -> Self {
        Self {
            n: 0.0,
            sum: vec![0.0; genes],
            sum_sq: vec![0.0; genes],
            zeros: vec![0.0; genes],
        }
    }

    /// Adds the rows of a `[n, G]` batch.
    fn add<B: Backend>(&mut self, counts: Tensor<B, 2>) {
        let g = self.sum.len();
        let values: Vec<f64> = counts.into_data().iter::<f64>().collect();
        for row in values.chunks(g) {
            self.n += 1.0;
            for (j, &x) in row.iter().enumerate() {
                self.sum[j] += x;
                self.sum_sq[j] += x * x;
                self.zeros[j] += f64::from(u8::from(x == 0.0));
            }
        }
    }

    fn stats(&self) -> GeneStats {
        let n = self.n;
        let mean: Vec<f64> = self.sum.iter().map(|s| s / n).collect();
        let variance = (self.sum_sq.iter().zip(&mean))
            .map(|(sq, m)| ((sq - n * m * m) / (n - 1.0).max(1.0)).max(0.0))
            .collect();
        let zero_fraction = self.zeros.iter().map(|z| z / n).collect();
        GeneStats {
            mean,
            variance,
            zero_fraction,
        }
    }
}

/// Posterior predictive check on `cells`: for each cell, `replicates` times, a latent `z`
/// from its posterior, decoded with the cell's library size, then counts drawn from the
/// decoded NB or ZINB (`diffbio_burn::distributions`, seeded). Returns the per-gene
/// summaries of the data and of all simulated cells.
pub fn posterior_predictive<B: Backend>(
    model: &Scvi<B>,
    cells: &Arc<CountMatrix>,
    replicates: usize,
    seed: u64,
    device: &B::Device,
) -> (GeneStats, GeneStats) {
    let g = cells.n_genes();
    let (mut observed, mut simulated) = (GeneSums::new(g), GeneSums::new(g));
    let theta = model.theta();
    let mut draw = seed;
    for batch in batches::<B>(cells, device) {
        let n = batch.counts.dims()[0];
        // The posterior once per cell, `replicates` draws from it.
        let (mean, logvar) = model.encode(batch.counts.clone());
        observed.add(batch.counts);
        let theta = theta.clone().unsqueeze_dim::<2>(0).expand([n, g]);
        for _ in 0..replicates.max(1) {
            let decoded = model.decode(sample_latent(&mean, &logvar), batch.library.clone());
            draw += 1;
            let counts = match decoded.pi_logits {
                Some(pi_logits) => {
                    ZeroInflatedNegativeBinomial::new(decoded.mu, theta.clone(), pi_logits)
                        .sample(draw)
                }
                None => NegativeBinomial::new(decoded.mu, theta.clone()).sample(draw),
            };
            simulated.add(counts);
        }
    }
    (observed.stats(), simulated.stats())
}

/// Pearson correlation of `log10` of the positive pairs.
pub fn log_correlation(a: &[f64], b: &[f64]) -> f64 {
    let pairs: Vec<(f64, f64)> = (a.iter().zip(b))
        .filter(|(x, y)| **x > 0.0 && **y > 0.0)
        .map(|(x, y)| (x.log10(), y.log10()))
        .collect();
    let n = pairs.len() as f64;
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in &pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    sxy / (sxx * syy).sqrt()
}

/// The posterior predictive figure: simulated against observed per-gene mean, variance
/// (log10, genes with both positive) and zero fraction, with the identity line.
pub fn plot_posterior_predictive(
    path: &Path,
    observed: &GeneStats,
    simulated: &GeneStats,
    replicates: usize,
) -> Result<()> {
    let log_pairs = |a: &[f64], b: &[f64]| -> Vec<(f64, f64)> {
        (a.iter().zip(b))
            .filter(|(x, y)| **x > 0.0 && **y > 0.0)
            .map(|(x, y)| (x.log10(), y.log10()))
            .collect()
    };
    let zero_pairs: Vec<(f64, f64)> = (observed.zero_fraction.iter())
        .zip(&simulated.zero_fraction)
        .map(|(x, y)| (*x, *y))
        .collect();
    crate::common::plot::identity_panels(
        path,
        &format!(
            "scVI posterior predictive check, held-out cells ({replicates} draws per cell), one point per gene"
        ),
        &[
            (
                "log10 mean: data (x) vs simulated (y)",
                log_pairs(&observed.mean, &simulated.mean),
            ),
            (
                "log10 variance: data (x) vs simulated (y)",
                log_pairs(&observed.variance, &simulated.variance),
            ),
            ("zero fraction: data (x) vs simulated (y)", zero_pairs),
        ],
    )
    .context("posterior predictive plot")
}

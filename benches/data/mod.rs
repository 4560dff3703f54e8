//! Seeded benchmark inputs shared by the benches (the same recipes as `benches/peers/`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Gamma, LogNormal, Normal, Poisson};

/// scRNA-like NB data: per-gene log-means `N(-1, 1.5²)`, per-cell library factors
/// `LogNormal(0, 0.3²)`, per-gene `theta` log-uniform on `[0.5, 50]`, counts drawn from
/// `NB(mu, theta)` as a Gamma-Poisson mixture (about 75 % zeros), dropout logits `N(-2, 1)`.
pub struct ScRna {
    pub counts: Vec<f32>,
    pub mu: Vec<f32>,
    pub theta: Vec<f32>,
    pub pi_logits: Vec<f32>,
}

impl ScRna {
    pub fn new(cells: usize, genes: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let gene_log_mean = Normal::new(-1.0f64, 1.5).unwrap();
        let gene_mu: Vec<f64> = (0..genes)
            .map(|_| gene_log_mean.sample(&mut rng).exp())
            .collect();
        let theta: Vec<f64> = (0..genes)
            .map(|_| rng.random_range(0.5f64.ln()..50f64.ln()).exp())
            .collect();
        let library = LogNormal::new(0.0, 0.3).unwrap();
        let mut mu = Vec::with_capacity(cells * genes);
        let mut counts = Vec::with_capacity(cells * genes);
        for _ in 0..cells {
            let factor = library.sample(&mut rng);
            for g in 0..genes {
                let m = gene_mu[g] * factor;
                let rate = Gamma::new(theta[g], m / theta[g]).unwrap().sample(&mut rng);
                let x = if rate > 0.0 {
                    Poisson::new(rate).unwrap().sample(&mut rng)
                } else {
                    0.0
                };
                mu.push(m as f32);
                counts.push(x as f32);
            }
        }
        let logits = Normal::new(-2.0f32, 1.0).unwrap();
        let pi_logits = (0..cells * genes)
            .map(|_| logits.sample(&mut rng))
            .collect();
        Self {
            counts,
            mu,
            theta: theta.into_iter().map(|t| t as f32).collect(),
            pi_logits,
        }
    }
}

/// BPNet-like profiles: per-region totals `LogNormal(5, 1²)` spread multinomially over a
/// random profile, half the regions labelled as peaks, logits `N(0, 1)`.
pub struct Profiles {
    pub y: Vec<f32>,
    pub logits: Vec<f32>,
    pub log_counts: Vec<f32>,
    pub labels: Vec<i64>,
    pub count_loss_weight: f64,
}

impl Profiles {
    pub fn new(n: usize, strands: usize, length: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let width = strands * length;
        let totals = LogNormal::new(5.0, 1.0).unwrap();
        let mut y = vec![0f32; n * width];
        for row in y.chunks_mut(width) {
            let total: f64 = totals.sample(&mut rng);
            let total = total.round() as usize;
            let weights: Vec<f64> = (0..width).map(|_| rng.random::<f64>().powi(4)).collect();
            let sum: f64 = weights.iter().sum();
            for _ in 0..total {
                let mut u = rng.random::<f64>() * sum;
                let mut k = 0;
                while k + 1 < width && u >= weights[k] {
                    u -= weights[k];
                    k += 1;
                }
                row[k] += 1.0;
            }
        }
        let count_loss_weight = y.iter().map(|&v| f64::from(v)).sum::<f64>() / (n * strands) as f64;
        let log_counts = y
            .chunks(width)
            .map(|r| (r.iter().sum::<f32>() + 1.0).ln() + rng.random_range(-0.5..0.5))
            .collect();
        Self {
            logits: normal(n * width, seed + 1),
            y,
            log_counts,
            labels: (0..n).map(|i| (i % 2) as i64).collect(),
            count_loss_weight,
        }
    }
}

/// `n` standard normal samples.
pub fn normal(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let d = Normal::new(0.0f32, 1.0).unwrap();
    (0..n).map(|_| d.sample(&mut rng)).collect()
}

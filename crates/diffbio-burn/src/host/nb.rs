//! Fused NB / ZINB negative log-likelihood with closed-form gradients (see
//! [`negative_binomial`](crate::losses::negative_binomial) for the formulas).
//!
//! In `f64` the textbook form is accurate (its cancelling `lgamma` terms lose at most ~1e-9
//! relative up to `theta`, counts = 1e6), so the kernel uses it directly:
//!
//! ```text
//! log NB(x) = lgamma(x + θ) - lgamma(θ) - ln x! - θ·log1p(μ/θ) + x·ln(μ / (θ + μ))
//! d/dμ      = θ(x - μ) / (μ(θ + μ))
//! d/dθ      = ψ(x + θ) - ψ(θ) - log1p(μ/θ) + (μ - x) / (θ + μ)
//! ```
//!
//! `lgamma(θ)` and `ψ(θ)` are computed once per `theta` entry (once per gene for per-gene
//! `theta`), `ln x!` comes from a table for integer counts, and zero counts (most of a
//! single-cell matrix) need a single `log1p`.

use burn::tensor::{DType, Tensor, backend::Backend};
use rayon::prelude::*;

use super::autodiff::attach;
use super::special::{digamma, lgamma, ln_factorial, sigmoid, softplus};
use super::{HostData, HostFloat, tensor_from};

/// How `mu` and `theta` are floored, as the two references do.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Floor {
    /// DiffBio's NB: `mu`, `theta` clamped at `eps` (no gradient below it), `mu + eps` in the
    /// logarithms.
    Clamp,
    /// scVI's ZINB: `mu + eps` in the logarithms, no clamping.
    Shift,
}

/// Per-`theta`-entry constants.
struct ThetaTerms {
    theta: f64,
    inv_theta: f64,
    lgamma: f64,
    digamma: f64,
    live: f64,
}

/// Element-wise NB (or, with `pi_logits`, ZINB) negative log-likelihood of `counts` `[B, G]`
/// with gradients attached to `mu`, `theta` (`[1, G]` or `[B, G]`) and `pi_logits`.
pub(crate) fn nll<B: Backend>(
    counts: &Tensor<B, 2>,
    mu: Tensor<B, 2>,
    theta: Tensor<B, 2>,
    pi_logits: Option<Tensor<B, 2>>,
    eps: f64,
    floor: Floor,
) -> Tensor<B, 2> {
    let [rows, genes] = counts.dims();
    let x = HostData::of(counts);
    let m = HostData::of(&mu);
    let t = HostData::of(&theta);
    let logits = pi_logits.as_ref().map(HostData::of);
    let theta_terms: Vec<ThetaTerms> = (0..t.len())
        .into_par_iter()
        .map(|k| {
            let raw = t.get(k);
            let theta = match floor {
                Floor::Clamp => raw.max(eps),
                Floor::Shift => raw,
            };
            ThetaTerms {
                theta,
                inv_theta: theta.recip(),
                lgamma: lgamma(theta),
                digamma: digamma(theta),
                live: live(floor, raw, eps),
            }
        })
        .collect();
    let per_gene = t.len() == genes;

    let inputs = KernelInputs {
        x: &x,
        mu: &m,
        logits: logits.as_ref(),
        theta_terms: &theta_terms,
        per_gene,
        genes,
        eps,
        floor,
    };
    let shape = [rows, genes];
    let device = mu.device();
    let dtype = mu.dtype();
    let out = match dtype {
        DType::F64 => kernel::<f64>(&inputs, rows).into_tensors::<B>(shape, &device),
        _ => kernel::<f32>(&inputs, rows).into_tensors::<B>(shape, &device),
    };
    match (pi_logits, out.d_logits) {
        (Some(pi_logits), Some(d_logits)) => attach(
            out.nll,
            [mu, theta, pi_logits],
            [out.d_mu, out.d_theta, d_logits],
        ),
        _ => attach(out.nll, [mu, theta], [out.d_mu, out.d_theta]),
    }
}

/// The host copies and per-`theta` constants the element loop reads.
struct KernelInputs<'a> {
    x: &'a HostData,
    mu: &'a HostData,
    logits: Option<&'a HostData>,
    theta_terms: &'a [ThetaTerms],
    per_gene: bool,
    genes: usize,
    eps: f64,
    floor: Floor,
}

/// The NLL and its derivatives (of the NLL) per element, in the output precision `O`.
struct Columns<T> {
    nll: T,
    d_mu: T,
    d_theta: T,
    d_logits: Option<T>,
}

impl<O: HostFloat> Columns<Vec<O>> {
    fn into_tensors<B: Backend>(
        self,
        shape: [usize; 2],
        device: &B::Device,
    ) -> Columns<Tensor<B, 2>> {
        Columns {
            nll: tensor_from(self.nll, shape, device),
            d_mu: tensor_from(self.d_mu, shape, device),
            d_theta: tensor_from(self.d_theta, shape, device),
            d_logits: self.d_logits.map(|v| tensor_from(v, shape, device)),
        }
    }
}

/// One multi-threaded pass over all elements (rows in parallel).
fn kernel<O: HostFloat>(inp: &KernelInputs, rows: usize) -> Columns<Vec<O>> {
    let (genes, n) = (inp.genes, rows * inp.genes);
    let zero = O::from_f64(0.0);
    let mut nll = vec![zero; n];
    let mut d_mu = vec![zero; n];
    let mut d_theta = vec![zero; n];
    // Without `pi_logits` this stays zero-initialised and untouched: its pages are never mapped.
    let mut d_logits = vec![zero; n];
    let chunk = genes.max(1);
    nll.par_chunks_mut(chunk)
        .zip(d_mu.par_chunks_mut(chunk))
        .zip(d_theta.par_chunks_mut(chunk))
        .zip(d_logits.par_chunks_mut(chunk))
        .enumerate()
        .for_each(|(row, (((nll, dm), dt), dl))| {
            let start = row * genes;
            let theta_row = if inp.per_gene {
                inp.theta_terms
            } else {
                &inp.theta_terms[start..start + genes]
            };
            for (j, tt) in theta_row.iter().enumerate() {
                let i = start + j;
                let (x, raw_mu) = (inp.x.get(i), inp.mu.get(i));
                let mu = match inp.floor {
                    Floor::Clamp => raw_mu.max(inp.eps),
                    Floor::Shift => raw_mu,
                } + inp.eps;
                let (lp, g_mu, g_theta) = log_prob(x, mu, tt);
                let g_mu = g_mu * live(inp.floor, raw_mu, inp.eps);
                let g_theta = g_theta * tt.live;
                let (value, weight) = match inp.logits {
                    Some(l) => {
                        let z = zero_inflated(x <= 0.0, lp, l.get(i));
                        dl[j] = O::from_f64(-z.d_logit);
                        (z.log_prob, z.weight)
                    }
                    None => (lp, 1.0),
                };
                nll[j] = O::from_f64(-value);
                dm[j] = O::from_f64(-g_mu * weight);
                dt[j] = O::from_f64(-g_theta * weight);
            }
        });
    Columns {
        nll,
        d_mu,
        d_theta,
        d_logits: inp.logits.map(|_| d_logits),
    }
}

/// 1 where a floored input still carries a gradient, 0 where the clamp holds it at `eps`.
#[inline]
fn live(floor: Floor, raw: f64, eps: f64) -> f64 {
    match floor {
        Floor::Clamp if raw <= eps => 0.0,
        _ => 1.0,
    }
}

/// `(log NB(x; mu, theta), d/dmu, d/dtheta)` for `mu > 0` (already shifted by `eps`).
#[inline]
fn log_prob(x: f64, mu: f64, tt: &ThetaTerms) -> (f64, f64, f64) {
    let theta = tt.theta;
    let inv_theta_plus_mu = (theta + mu).recip();
    let log1p_ratio = (mu * tt.inv_theta).ln_1p();
    let d_mu = theta * (x - mu) * inv_theta_plus_mu / mu;
    if x <= 0.0 {
        return (
            -theta * log1p_ratio,
            d_mu,
            mu * inv_theta_plus_mu - log1p_ratio,
        );
    }
    let (lgamma_ratio, digamma_diff) = rising(x, tt);
    let lp =
        lgamma_ratio - ln_factorial(x) - theta * log1p_ratio + x * (mu * inv_theta_plus_mu).ln();
    let d_theta = digamma_diff - log1p_ratio + (mu - x) * inv_theta_plus_mu;
    (lp, d_mu, d_theta)
}

/// Counts up to this are handled by [`rising`]'s finite products.
const SMALL_COUNT: f64 = 16.0;

/// `(lgamma(x + θ) - lgamma(θ), ψ(x + θ) - ψ(θ))`. For small integer `x` (the bulk of
/// single-cell counts) these are the finite sums `ln Π (θ + k)` and `Σ 1/(θ + k)` over
/// `k < x`: one logarithm instead of two `lgamma` and two `digamma` evaluations, accurate to
/// a few ulps (at most 16 factors `<= 1e8`, so the product cannot overflow).
#[inline]
fn rising(x: f64, tt: &ThetaTerms) -> (f64, f64) {
    let theta = tt.theta;
    if x <= SMALL_COUNT && x.fract() == 0.0 && theta <= 1e8 {
        let (mut product, mut reciprocals, mut k) = (1.0, 0.0, 0.0);
        while k < x {
            product *= theta + k;
            reciprocals += (theta + k).recip();
            k += 1.0;
        }
        (product.ln(), reciprocals)
    } else {
        (
            lgamma(x + theta) - tt.lgamma,
            digamma(x + theta) - tt.digamma,
        )
    }
}

/// The ZINB log-probability from the NB one and its derivatives' weights.
struct ZeroInflated {
    log_prob: f64,
    /// `d log p / d log NB`.
    weight: f64,
    /// `d log p / d pi_logit`.
    d_logit: f64,
}

/// scVI's hard zero/non-zero split with softplus identities.
#[inline]
fn zero_inflated(is_zero: bool, log_nb: f64, logit: f64) -> ZeroInflated {
    if is_zero {
        let a = log_nb - logit;
        let weight = sigmoid(a);
        ZeroInflated {
            log_prob: softplus(a) - softplus(-logit),
            weight,
            d_logit: sigmoid(-logit) - weight,
        }
    } else {
        ZeroInflated {
            log_prob: log_nb - softplus(logit),
            weight: 1.0,
            d_logit: -sigmoid(logit),
        }
    }
}

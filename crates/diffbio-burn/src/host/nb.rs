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
use super::{HostFloat, HostTensor};

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

/// The NB (or, with `pi_logits`, ZINB) inputs of one loss call.
pub(crate) struct NbInputs<B: Backend> {
    /// `[B, G]` counts (data, no gradient).
    pub counts: Tensor<B, 2>,
    /// `[B, G]` means.
    pub mu: Tensor<B, 2>,
    /// `[1, G]` (per gene) or `[B, G]` inverse dispersions.
    pub theta: Tensor<B, 2>,
    /// `[B, G]` dropout logits (ZINB) or `None` (NB).
    pub pi_logits: Option<Tensor<B, 2>>,
    /// See the losses' `eps`.
    pub eps: f64,
    /// How `mu`, `theta` are floored.
    pub floor: Floor,
}

/// The element-wise negative log-likelihood `[B, G]`, gradients attached.
pub(crate) fn nll<B: Backend>(inputs: NbInputs<B>) -> Tensor<B, 2> {
    let shape = inputs.counts.dims();
    run(inputs, None, |values, device| {
        tensor_from(values, shape, device)
    })
}

/// The negative log-likelihood summed and multiplied by `scale` (`1/(B·G)` for a mean), as a
/// `[1]` tensor with gradients attached; the element-wise values are never materialised.
pub(crate) fn nll_reduced<B: Backend>(inputs: NbInputs<B>, scale: f64) -> Tensor<B, 1> {
    run(inputs, Some(scale), |total, device| {
        tensor_from(total, [1], device)
    })
}

/// Reads the inputs, runs the kernel in the tensors' precision and attaches the derivatives.
/// `scale`: `None` for element-wise values, `Some(s)` for `s · Σ nll` (and derivatives × s).
fn run<B: Backend, const DV: usize>(
    inputs: NbInputs<B>,
    scale: Option<f64>,
    value: impl FnOnce(ValuesOf, &B::Device) -> Tensor<B, DV>,
) -> Tensor<B, DV> {
    let [rows, genes] = inputs.counts.dims();
    let host = [&inputs.counts, &inputs.mu, &inputs.theta].map(HostTensor::of);
    let logits = inputs.pi_logits.as_ref().map(HostTensor::of);
    let device = inputs.mu.device();
    let shape = [rows, genes];
    let out = match host[1].dtype() {
        DType::F64 => kernel::<f64>(&host, logits.as_ref(), &inputs, scale).tensors(shape, &device),
        _ => kernel::<f32>(&host, logits.as_ref(), &inputs, scale).tensors(shape, &device),
    };
    let value = value(out.values, &device);
    match (inputs.pi_logits, out.d_logits) {
        (Some(pi_logits), Some(d_logits)) => attach(
            value,
            [inputs.mu, inputs.theta, pi_logits],
            [out.d_mu, out.d_theta, d_logits],
        ),
        _ => attach(value, [inputs.mu, inputs.theta], [out.d_mu, out.d_theta]),
    }
}

/// The kernel's values: element-wise or one reduced total, in either precision.
pub(crate) enum ValuesOf {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

fn tensor_from<B: Backend, const D: usize>(
    values: ValuesOf,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    match values {
        ValuesOf::F32(v) => super::tensor_from(v, shape, device),
        ValuesOf::F64(v) => super::tensor_from(v, shape, device),
    }
}

/// Kernel output: values and the derivatives of the (scaled) NLL.
struct Columns<E> {
    values: Vec<E>,
    d_mu: Vec<E>,
    d_theta: Vec<E>,
    d_logits: Option<Vec<E>>,
}

/// The same, as tensors (values left as data for the caller to shape).
struct ColumnTensors<B: Backend> {
    values: ValuesOf,
    d_mu: Tensor<B, 2>,
    d_theta: Tensor<B, 2>,
    d_logits: Option<Tensor<B, 2>>,
}

impl<E: HostFloat> Columns<E> {
    fn tensors<B: Backend>(self, shape: [usize; 2], device: &B::Device) -> ColumnTensors<B> {
        // `E` is f32 or f64: hand the vector over without copying.
        let values = match E::dtype() {
            DType::F64 => ValuesOf::F64(super::downcast(self.values).expect("E = f64")),
            _ => ValuesOf::F32(super::downcast(self.values).expect("E = f32")),
        };
        ColumnTensors {
            values,
            d_mu: super::tensor_from(self.d_mu, shape, device),
            d_theta: super::tensor_from(self.d_theta, shape, device),
            d_logits: self.d_logits.map(|v| super::tensor_from(v, shape, device)),
        }
    }
}

/// One multi-threaded pass over all elements, rows in parallel.
fn kernel<E: HostFloat>(
    host: &[HostTensor; 3],
    logits: Option<&HostTensor>,
    inputs: &NbInputs<impl Backend>,
    scale: Option<f64>,
) -> Columns<E> {
    let [rows, genes] = inputs.counts.dims();
    let (x, mu, theta) = (
        host[0].slice::<E>(),
        host[1].slice::<E>(),
        host[2].slice::<E>(),
    );
    let logits = logits.map(|l| l.slice::<E>());
    let (eps, floor) = (inputs.eps, inputs.floor);
    let theta_terms: Vec<ThetaTerms> = theta
        .par_iter()
        .map(|&raw| ThetaTerms::new(raw.to_f64(), eps, floor))
        .collect();
    let per_gene = theta_terms.len() == genes;
    let (n, factor) = (rows * genes, scale.unwrap_or(1.0));
    let zero = E::from_f64(0.0);
    // Element-wise values; untouched (never mapped) when the caller wants the reduced total.
    let mut values = vec![zero; n];
    let mut row_sums = vec![0.0f64; rows];
    let mut d_mu = vec![zero; n];
    let mut d_theta = vec![zero; n];
    // Without `pi_logits` this stays zero-initialised and untouched: its pages are never mapped.
    let mut d_logits = vec![zero; n];
    let chunk = genes.max(1);
    values
        .par_chunks_mut(chunk)
        .zip(row_sums.par_iter_mut())
        .zip(d_mu.par_chunks_mut(chunk))
        .zip(d_theta.par_chunks_mut(chunk))
        .zip(d_logits.par_chunks_mut(chunk))
        .enumerate()
        .for_each(|(row, ((((values, row_sum), dm), dt), dl))| {
            let start = row * genes;
            let theta_row = if per_gene {
                &theta_terms[..]
            } else {
                &theta_terms[start..start + genes]
            };
            for (j, tt) in theta_row.iter().enumerate() {
                let i = start + j;
                let (count, raw_mu) = (x[i].to_f64(), mu[i].to_f64());
                let m = match floor {
                    Floor::Clamp => raw_mu.max(eps),
                    Floor::Shift => raw_mu,
                } + eps;
                let (lp, g_mu, g_theta) = log_prob(count, m, tt);
                let g_mu = g_mu * live(floor, raw_mu, eps);
                let (log_p, weight) = match logits {
                    Some(l) => {
                        let z = zero_inflated(count <= 0.0, lp, l[i].to_f64());
                        dl[j] = E::from_f64(-z.d_logit * factor);
                        (z.log_prob, z.weight)
                    }
                    None => (lp, 1.0),
                };
                if scale.is_some() {
                    *row_sum -= log_p;
                } else {
                    values[j] = E::from_f64(-log_p);
                }
                dm[j] = E::from_f64(-g_mu * weight * factor);
                dt[j] = E::from_f64(-g_theta * tt.live * weight * factor);
            }
        });
    if let Some(scale) = scale {
        values = vec![E::from_f64(row_sums.iter().sum::<f64>() * scale)];
    }
    Columns {
        values,
        d_mu,
        d_theta,
        d_logits: logits.map(|_| d_logits),
    }
}

impl ThetaTerms {
    fn new(raw: f64, eps: f64, floor: Floor) -> Self {
        let theta = match floor {
            Floor::Clamp => raw.max(eps),
            Floor::Shift => raw,
        };
        Self {
            theta,
            inv_theta: theta.recip(),
            lgamma: lgamma(theta),
            digamma: digamma(theta),
            live: live(floor, raw, eps),
        }
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

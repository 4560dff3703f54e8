//! Fused NB / ZINB negative log-likelihood with closed-form gradients (see
//! [`negative_binomial`](crate::losses::negative_binomial) for the formulas).
//!
//! The maths is the losses' own, shared with the generic path ([`crate::real`]): the floors
//! ([`Floor`]), `d/dμ` ([`nb::d_mu`]), and for every element that is not "easy" the value
//! ([`nb::log_prob`]) and `d/dθ` ([`nb::d_theta`]), evaluated in `f64`. An element is easy
//! when its count is a small integer (`<= 16`, most of a single-cell matrix); there the
//! kernel evaluates the same quantities by exact finite identities, faster:
//!
//! ```text
//! log NB(x) = ln Π_{k<x} (θ + k)·μ/(θ + μ) - ln x! - θ·ln_1p(μ/θ)
//! d/dθ      = Σ_{k<x} 1/(θ + k) - ln_1p(μ/θ) + (μ - x) / (θ + μ)     (ψ(x+θ) - ψ(θ) as a sum)
//! ```
//!
//! in a branch-free, vectorised pass over the row, except that for `θ >= 8`, where the sum
//! cancels against `ln_1p(x/θ)`, `d/dθ` takes the shared [`nb::digamma_gap`]. Every other
//! element (large or non-integer counts) takes the shared formulas, so the two paths agree
//! to rounding over the whole domain. NaN in any input
//! gives NaN out, as on the generic path.

use burn::tensor::{DType, Tensor, backend::Backend};
use rayon::prelude::*;

use super::autodiff::attach;
use super::special::{ln_1p_nonnegative, ln_factorial};
use super::{HostFloat, HostTensor, simd};
use crate::losses::negative_binomial::{self as nb, Floor};
use crate::losses::zinb;
use crate::real::{SERIES_FROM, ln_1p_minus_with};

/// The NB (or, with `pi_logits`, ZINB) inputs of one loss call.
struct NbInputs<B: Backend> {
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

impl<B: Backend> NbInputs<B> {
    fn new(
        counts: Tensor<B, 2>,
        mu: Tensor<B, 2>,
        theta: Tensor<B, 2>,
        pi_logits: Option<Tensor<B, 2>>,
        eps: f64,
        floor: Floor,
    ) -> Self {
        Self {
            counts,
            mu,
            theta,
            pi_logits,
            eps,
            floor,
        }
    }
}

/// The element-wise negative log-likelihood `[B, G]` of checked inputs (`theta` `[1|B, G]`,
/// `pi_logits` for ZINB), gradients attached.
pub(crate) fn nll<B: Backend>(
    counts: Tensor<B, 2>,
    mu: Tensor<B, 2>,
    theta: Tensor<B, 2>,
    pi_logits: Option<Tensor<B, 2>>,
    eps: f64,
    floor: Floor,
) -> Tensor<B, 2> {
    let shape = counts.dims();
    let inputs = NbInputs::new(counts, mu, theta, pi_logits, eps, floor);
    run(inputs, None, |values, device| {
        tensor_from(values, shape, device)
    })
}

/// The negative log-likelihood summed and multiplied by `scale` (`1/(B·G)` for a mean), as a
/// `[1]` tensor with gradients attached; the element-wise values are never materialised.
pub(crate) fn nll_reduced<B: Backend>(
    counts: Tensor<B, 2>,
    mu: Tensor<B, 2>,
    theta: Tensor<B, 2>,
    pi_logits: Option<Tensor<B, 2>>,
    eps: f64,
    floor: Floor,
    scale: f64,
) -> Tensor<B, 1> {
    let inputs = NbInputs::new(counts, mu, theta, pi_logits, eps, floor);
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

/// Per-`theta`-entry constants, one column each (so the element loop vectorises).
struct ThetaColumns {
    theta: Vec<f64>,
    inv_theta: Vec<f64>,
    /// 1 where `theta` carries a gradient, 0 where the clamp holds it at `eps`.
    live: Vec<f64>,
}

impl ThetaColumns {
    fn new<E: HostFloat>(raw: &[E], eps: f64, floor: Floor) -> Self {
        let theta: Vec<f64> = raw.iter().map(|t| floor.theta(t.to_f64(), eps)).collect();
        Self {
            inv_theta: theta.iter().map(|t| t.recip()).collect(),
            live: raw.iter().map(|t| floor.live(&t.to_f64(), eps)).collect(),
            theta,
        }
    }

    /// The columns for the `len` entries from `start`.
    fn window(&self, start: usize, len: usize) -> ThetaRow<'_> {
        ThetaRow {
            theta: &self.theta[start..start + len],
            inv_theta: &self.inv_theta[start..start + len],
            live: &self.live[start..start + len],
        }
    }
}

/// One row's view of [`ThetaColumns`].
struct ThetaRow<'a> {
    theta: &'a [f64],
    inv_theta: &'a [f64],
    live: &'a [f64],
}

/// Per-thread scratch rows in `f64`: log NB, its derivatives, `mu` after flooring and
/// `1/(theta + mu)`.
#[derive(Default)]
struct Scratch {
    log_nb: Vec<f64>,
    d_mu: Vec<f64>,
    d_theta: Vec<f64>,
    mu: Vec<f64>,
    inv_theta_plus_mu: Vec<f64>,
}

/// One multi-threaded pass over all elements, rows in parallel. Per row: a branch-free
/// (vectorised) pass computes everything a zero count needs; a second pass adds the terms of
/// the non-zero counts; a third applies the zero inflation (ZINB) and writes the outputs.
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
    let columns = ThetaColumns::new(theta, eps, floor);
    let per_gene = theta.len() == genes;
    let (n, factor) = (rows * genes, scale.unwrap_or(1.0));
    let zero = E::from_f64(0.0);
    // Element-wise values and `pi_logits` derivatives only where wanted; otherwise one
    // unused slot per row keeps the parallel zip aligned.
    let keep_values = scale.is_none();
    let (mut values, values_chunk) = if keep_values {
        (vec![zero; n], genes)
    } else {
        (vec![zero; rows], 1)
    };
    let (mut d_logits, logits_chunk) = if logits.is_some() {
        (vec![zero; n], genes)
    } else {
        (vec![zero; rows], 1)
    };
    let mut row_sums = vec![0.0f64; rows];
    let mut d_mu = vec![zero; n];
    let mut d_theta = vec![zero; n];
    let chunk = genes.max(1);
    values
        .par_chunks_mut(values_chunk.max(1))
        .zip(row_sums.par_iter_mut())
        .zip(d_mu.par_chunks_mut(chunk))
        .zip(d_theta.par_chunks_mut(chunk))
        .zip(d_logits.par_chunks_mut(logits_chunk.max(1)))
        .enumerate()
        .for_each_init(
            Scratch::default,
            |scratch, (row, ((((values, row_sum), dm), dt), dl))| {
                let start = row * genes;
                let span = start..start + genes;
                let rows = RowInputs {
                    x: &x[span.clone()],
                    mu: &mu[span.clone()],
                    logits: logits.map(|l| &l[span]),
                    theta: columns.window(if per_gene { 0 } else { start }, genes),
                    eps,
                    floor,
                    factor,
                };
                let outputs = RowOutputs {
                    values: keep_values.then_some(values),
                    d_mu: dm,
                    d_theta: dt,
                    d_logits: dl,
                };
                *row_sum =
                    simd::dispatch!(process_row, process_row_wide, (scratch, &rows, outputs));
            },
        );
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

/// One row's inputs.
struct RowInputs<'a, E> {
    x: &'a [E],
    mu: &'a [E],
    logits: Option<&'a [E]>,
    theta: ThetaRow<'a>,
    eps: f64,
    floor: Floor,
    factor: f64,
}

/// One row's outputs (`values: None` when only the row sum is wanted).
struct RowOutputs<'a, E> {
    values: Option<&'a mut [E]>,
    d_mu: &'a mut [E],
    d_theta: &'a mut [E],
    d_logits: &'a mut [E],
}

/// [`process_row`] compiled for AVX2+FMA (see [`simd`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn process_row_wide<E: HostFloat>(s: &mut Scratch, r: &RowInputs<E>, out: RowOutputs<E>) -> f64 {
    process_row(s, r, out)
}

/// Computes one row and returns its NLL sum.
#[inline(always)]
fn process_row<E: HostFloat>(s: &mut Scratch, r: &RowInputs<E>, out: RowOutputs<E>) -> f64 {
    zero_count_terms(s, r.x, r.mu, &r.theta, r.eps, r.floor);
    add_count_terms(s, r.x, &r.theta);
    if let Some(l) = r.logits {
        zero_inflate(s, r.x, l, r.factor, out.d_logits);
    }
    let mut lanes = [0.0f64; 4];
    for j in 0..r.x.len() {
        lanes[j % 4] -= s.log_nb[j];
        out.d_mu[j] = E::from_f64(-s.d_mu[j] * r.factor);
        out.d_theta[j] = E::from_f64(-s.d_theta[j] * r.theta.live[j] * r.factor);
    }
    if let Some(values) = out.values {
        for (v, lp) in values.iter_mut().zip(&s.log_nb) {
            *v = E::from_f64(-lp);
        }
    }
    lanes.iter().sum()
}

/// The terms every element has, as if its count were 0 (branch-free, vectorised):
/// `log NB = -θ·log1p(μ/θ)`, `d/dμ = θ(x - μ)/(μ(θ + μ))` (exact for any `x`),
/// `d/dθ = ln_1p_minus(-μ/(θ + μ))`.
#[inline(always)]
fn zero_count_terms<E: HostFloat>(
    s: &mut Scratch,
    x: &[E],
    mu: &[E],
    tt: &ThetaRow,
    eps: f64,
    floor: Floor,
) {
    let n = x.len();
    for v in [
        &mut s.log_nb,
        &mut s.d_mu,
        &mut s.d_theta,
        &mut s.mu,
        &mut s.inv_theta_plus_mu,
    ] {
        v.resize(n, 0.0);
    }
    for j in 0..n {
        let raw = mu[j].to_f64();
        let m = floor.mu(raw, eps);
        let theta = tt.theta[j];
        let inv = (theta + m).recip();
        let log1p_ratio = ln_1p_nonnegative(m * tt.inv_theta[j]);
        s.mu[j] = m;
        s.inv_theta_plus_mu[j] = inv;
        s.log_nb[j] = -theta * log1p_ratio;
        s.d_mu[j] = nb::d_mu(x[j].to_f64(), m, theta) * floor.live(&raw, eps);
        // d/dθ at x = 0 is `ln_1p_minus(r)` with r = -μ/(θ + μ), where ln(1 + r) is
        // -ln_1p(μ/θ); `add_count_terms` replaces it for positive counts.
        s.d_theta[j] = ln_1p_minus_with(-m * inv, || -log1p_ratio);
    }
}

/// Completes every element with a positive count: an easy one (see the module docs) gets what
/// its count adds, `ln Π (θ + k)·μ/(θ + μ) - ln x!` to log NB and the digamma gap to `d/dθ`;
/// every other element gets the shared formulas [`nb::log_prob`] and [`nb::d_theta`].
#[inline(always)]
fn add_count_terms<E: HostFloat>(s: &mut Scratch, x: &[E], tt: &ThetaRow) {
    for (j, count) in x.iter().enumerate() {
        let (count, theta, m) = (count.to_f64(), tt.theta[j], s.mu[j]);
        if count == 0.0 {
            continue; // complete from `zero_count_terms`
        }
        // NaN fails every comparison, so NaN inputs take the shared formulas (NaN out).
        let easy = count <= SMALL_COUNT && count.fract() == 0.0;
        if !easy {
            s.log_nb[j] = nb::log_prob(count, m, theta);
            s.d_theta[j] = nb::d_theta(count, m, theta);
        } else {
            // d/dθ = [ψ(x+θ) - ψ(θ) - ln_1p(x/θ)] + ln_1p_minus(r), as `nb::d_theta`; below
            // θ = 8 with the digamma difference as its finite sum, above by the shared series
            // (where the sum would cancel against `ln_1p(x/θ)`).
            let inv = s.inv_theta_plus_mu[j];
            let (log_ratio, digamma_diff) = rising(count, theta, m * inv);
            s.log_nb[j] += log_ratio - ln_factorial(count);
            let gap = if theta < SERIES_FROM {
                digamma_diff - (count * tt.inv_theta[j]).ln_1p()
            } else {
                nb::digamma_gap(count, theta)
            };
            s.d_theta[j] = gap + nb::ln_1p_minus_ratio(count, m, theta);
        }
    }
}

/// The zero inflation ([`zinb::inflate`], the loss's own definition) in place on the scratch
/// row: log NB becomes log p, the NB derivatives are multiplied by `d log p/d log NB`, and
/// `d_logits` receives `-d log p/d l · factor` (the derivative of the NLL).
#[inline(always)]
fn zero_inflate<E: HostFloat>(
    s: &mut Scratch,
    x: &[E],
    logits: &[E],
    factor: f64,
    d_logits: &mut [E],
) {
    for j in 0..x.len() {
        let inflated = zinb::inflate(x[j].to_f64() <= 0.0, s.log_nb[j], logits[j].to_f64());
        s.log_nb[j] = inflated.log_p;
        s.d_mu[j] *= inflated.weight;
        s.d_theta[j] *= inflated.weight;
        d_logits[j] = E::from_f64(-inflated.d_logit * factor);
    }
}

/// Counts up to this are handled by [`rising`]'s finite products.
const SMALL_COUNT: f64 = 16.0;

/// `(ln Π (θ + k)·q, Σ 1/(θ + k))` over `k < x` for a small positive integer `x` and
/// `θ < 8`, `q = μ/(θ + μ)`: `lgamma(x + θ) - lgamma(θ) + x·ln q` and `ψ(x + θ) - ψ(θ)`
/// by their finite identities, accurate to a few ulps (at most 16 factors, each between
/// ~1e-16 and ~24, so the product neither overflows nor underflows).
#[inline(always)]
fn rising(x: f64, theta: f64, q: f64) -> (f64, f64) {
    let (mut product, mut reciprocals, mut k) = (1.0, 0.0, 0.0);
    while k < x {
        product *= (theta + k) * q;
        reciprocals += (theta + k).recip();
        k += 1.0;
    }
    (product.ln(), reciprocals)
}

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
//! except that for `θ >= 8`, where the sum cancels against `ln_1p(x/θ)`, `d/dθ` takes the
//! shared [`nb::digamma_gap_series`]. Every other element (large or non-integer counts)
//! takes the shared formulas, so the two paths agree to rounding over the whole domain. NaN
//! in any input gives NaN out, as on the generic path.
//!
//! Speed: each pass over a row is a loop over slices (so the compiler knows they do not
//! alias) without branches (both forms of a two-form formula are evaluated and one is
//! selected), which the compiler vectorises: the zero-count terms of every element, then
//! the easy elements, gathered branch-free into columns ([`EasyCounts`]), then the output.

use burn::tensor::{DType, Tensor, backend::Backend};
use rayon::prelude::*;

use super::autodiff::attach;
use super::lane::Lane;
use super::special::{ln, ln_1p_nonnegative, ln_corrected, ln_factorial};
use super::{HostFloat, HostTensor, simd};
use crate::losses::negative_binomial::{self as nb, Floor};
use crate::losses::zinb;
use crate::real::{SERIES_FROM, ln_1p_minus_series};

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
/// `1/(theta + mu)`; the row's easy positive counts.
#[derive(Default)]
struct Scratch {
    log_nb: Vec<f64>,
    d_mu: Vec<f64>,
    d_theta: Vec<f64>,
    mu: Vec<f64>,
    inv_theta_plus_mu: Vec<f64>,
    easy: EasyCounts,
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
                *row_sum = simd::dispatch!(
                    process_row::<_, { simd::BASELINE_FMA }>,
                    process_row_wide,
                    (scratch, &rows, outputs)
                );
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
    process_row::<E, true>(s, r, out)
}

/// Computes one row and returns its NLL sum (`FMA`: see [`crate::real::mul_add`]).
#[inline(always)]
fn process_row<E: HostFloat, const FMA: bool>(
    s: &mut Scratch,
    r: &RowInputs<E>,
    out: RowOutputs<E>,
) -> f64 {
    zero_count_terms::<E, FMA>(s, r.x, r.mu, &r.theta, r.eps, r.floor);
    add_count_terms::<E, FMA>(s, r.x, &r.theta);
    if let Some(l) = r.logits {
        zero_inflate::<E, FMA>(s, r.x, l, r.factor, out.d_logits);
    }
    write_derivatives(
        &s.d_mu,
        &s.d_theta,
        r.theta.live,
        r.factor,
        out.d_mu,
        out.d_theta,
    );
    if let Some(values) = out.values {
        for (v, lp) in values.iter_mut().zip(&s.log_nb) {
            *v = E::from_f64(-lp);
        }
    }
    -simd::lanes_fold(&s.log_nb, 0.0, |a, v| a + v)
}

/// The NLL's derivatives (`-` those of log NB, times `factor`; `d/dθ` zero where the floor
/// holds `θ`) in the output precision, over slices so that the loop vectorises.
#[inline(always)]
fn write_derivatives<E: HostFloat>(
    d_mu: &[f64],
    d_theta: &[f64],
    live: &[f64],
    factor: f64,
    out_mu: &mut [E],
    out_theta: &mut [E],
) {
    for j in 0..out_mu.len() {
        out_mu[j] = E::from_f64(-d_mu[j] * factor);
        out_theta[j] = E::from_f64(-d_theta[j] * live[j] * factor);
    }
}

/// The terms every element has, as if its count were 0 (branch-free, vectorised):
/// `log NB = -θ·log1p(μ/θ)`, `d/dμ = θ(x - μ)/(μ(θ + μ))` (exact for any `x`),
/// `d/dθ = ln_1p_minus(-μ/(θ + μ))`.
#[inline(always)]
fn zero_count_terms<E: HostFloat, const FMA: bool>(
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
    let out = [
        &mut s.log_nb,
        &mut s.d_mu,
        &mut s.d_theta,
        &mut s.mu,
        &mut s.inv_theta_plus_mu,
    ]
    .map(|v| v.as_mut_slice());
    zero_count_pass::<E, FMA>(x, mu, [tt.theta, tt.inv_theta], eps, floor, out);
}

/// [`zero_count_terms`]' loop, over slices (so that the compiler knows they do not alias) and
/// branch-free: `d/dθ` evaluates the series and the difference of `ln_1p_minus` and selects
/// one, so that the loop vectorises.
#[inline(always)]
fn zero_count_pass<E: HostFloat, const FMA: bool>(
    x: &[E],
    mu: &[E],
    [theta, inv_theta]: [&[f64]; 2],
    eps: f64,
    floor: Floor,
    [log_nb, d_mu, d_theta, mu_out, inv_out]: [&mut [f64]; 5],
) {
    for j in 0..x.len() {
        let raw = mu[j].to_f64();
        let m = floor.mu(raw, eps);
        let theta = theta[j];
        let inv = (theta + m).recip();
        let log1p_ratio = ln_1p_nonnegative::<FMA>(m * inv_theta[j]);
        mu_out[j] = m;
        inv_out[j] = inv;
        log_nb[j] = -theta * log1p_ratio;
        d_mu[j] = nb::d_mu(x[j].to_f64(), m, theta) * floor.live(&raw, eps);
        // d/dθ at x = 0 is `ln_1p_minus(r)` with r = -μ/(θ + μ), where ln(1 + r) is
        // -ln_1p(μ/θ) (as `ln_1p_minus_with`); `add_count_terms` replaces it for positive
        // counts.
        let r = -m * inv;
        let series = ln_1p_minus_series(r);
        d_theta[j] = if r.abs() < 0.1 {
            series
        } else {
            -log1p_ratio - r
        };
    }
}

/// Completes every element with a positive count: an easy one (see the module docs) gets what
/// its count adds, `ln Π (θ + k)·μ/(θ + μ) - ln x!` to log NB and the digamma gap to `d/dθ`
/// ([`EasyCounts`], gathered into contiguous columns and finished in vectorised passes);
/// every other element gets the shared formulas [`nb::log_prob`] and [`nb::d_theta`].
#[inline(always)]
fn add_count_terms<E: HostFloat, const FMA: bool>(s: &mut Scratch, x: &[E], tt: &ThetaRow) {
    let easy = &mut s.easy;
    let (n_easy, n_hard) = positions(x, &mut easy.kinds, &mut easy.at, &mut easy.hard);
    for &j in &easy.hard[..n_hard] {
        let (count, theta, m) = (x[j].to_f64(), tt.theta[j], s.mu[j]);
        s.log_nb[j] = nb::log_prob(count, m, theta);
        s.d_theta[j] = nb::d_theta(count, m, theta);
    }
    easy.gather(n_easy, x, &s.mu, tt, &s.inv_theta_plus_mu);
    easy.finish::<FMA>();
    for (i, &j) in easy.at[..n_easy].iter().enumerate() {
        s.log_nb[j] += easy.log_ratio[i];
        s.d_theta[j] = easy.d_theta[i];
    }
}

/// The positions of the row's easy counts (positive integers up to [`SMALL_COUNT`]) into
/// `easy` and of its other non-zero counts (NaN included) into `hard`, returning how many of
/// each. Branch-free: every position is written to both lists and the lists' ends advance by
/// 0 or 1, so sparse counts cost no branch mispredictions.
#[inline(always)]
fn positions<E: HostFloat>(
    x: &[E],
    kinds: &mut Vec<u8>,
    easy: &mut Vec<usize>,
    hard: &mut Vec<usize>,
) -> (usize, usize) {
    // First each count's kind, bit 0 easy and bit 1 hard (a pass that vectorises), then the
    // two lists from the kinds.
    kinds.clear();
    kinds.extend(x.iter().map(|count| {
        let count = count.to_f64();
        // NaN fails every comparison, so it is neither zero nor easy: hard (NaN out).
        let is_easy = (count > 0.0) & (count <= SMALL_COUNT) & (count.fract() == 0.0);
        let is_hard = !(count == 0.0) & !is_easy;
        u8::from(is_easy) | (u8::from(is_hard) << 1)
    }));
    easy.resize(x.len() + 1, 0);
    hard.resize(x.len() + 1, 0);
    // Slices, so that the lists' addresses stay in registers.
    let (easy, hard) = (&mut easy[..], &mut hard[..]);
    let (mut n_easy, mut n_hard) = (0, 0);
    for (j, &kind) in kinds.iter().enumerate() {
        easy[n_easy] = j;
        hard[n_hard] = j;
        n_easy += usize::from(kind & 1);
        n_hard += usize::from(kind >> 1);
    }
    (n_easy, n_hard)
}

/// A row's easy elements (small positive integer counts) as columns, ordered by count, and
/// what they add: `log_ratio = ln Π_{k<x} (θ + k)·q - ln x!` (`q = μ/(θ + μ)`) and the complete
///
/// ```text
/// d/dθ = [ψ(x+θ) - ψ(θ) - ln_1p(x/θ)] + ln_1p_minus(r),   r = (x - μ)/(θ + μ)
/// ```
///
/// (as [`nb::d_theta`]). The products run one factor `k` at a time over the columns whose
/// counts exceed `k`, a prefix in count order ([`easy_products`]; at most 16 factors, each
/// between ~1e-16 and ~24 below `θ = 8`, so nothing overflows), with the digamma difference below
/// `θ = 8` as the finite sum `Σ 1/(θ + k) = P'/P` (`P = Π (θ + k)`, one division). Everything
/// else is a branch-free pass over the columns, which the compiler vectorises: the logs are
/// [`ln_corrected`]'s, and each pass evaluates both forms where the shared formula branches
/// and selects one (above `θ = 8` the shared series [`nb::digamma_gap_series`], where the sum
/// would cancel against `ln_1p(x/θ)`).
#[derive(Default)]
struct EasyCounts {
    /// Each count's kind ([`positions`]).
    kinds: Vec<u8>,
    at: Vec<usize>,
    hard: Vec<usize>,
    count: Vec<f64>,
    mu: Vec<f64>,
    theta: Vec<f64>,
    inv_theta: Vec<f64>,
    inv_theta_plus_mu: Vec<f64>,
    log_ratio: Vec<f64>,
    digamma_sum: Vec<f64>,
    d_theta: Vec<f64>,
    /// Products' scratch column.
    scratch: Vec<f64>,
    /// `at` ordered by count ([`EasyCounts::sort_by_count`]).
    sorted: Vec<usize>,
    /// `above[k]`: how many easy counts exceed `k`.
    above: [usize; SMALL],
}

impl EasyCounts {
    /// The columns of the first `n` positions in `at`.
    #[inline(always)]
    fn gather<E: HostFloat>(
        &mut self,
        n: usize,
        x: &[E],
        mu: &[f64],
        tt: &ThetaRow,
        inv_theta_plus_mu: &[f64],
    ) {
        self.sort_by_count(n, x);
        let at = &self.at[..n];
        let column = |v: &mut Vec<f64>, f: &dyn Fn(usize) -> f64| {
            v.clear();
            v.extend(at.iter().map(|&j| f(j)));
        };
        column(&mut self.count, &|j| x[j].to_f64());
        column(&mut self.mu, &|j| mu[j]);
        column(&mut self.theta, &|j| tt.theta[j]);
        column(&mut self.inv_theta, &|j| tt.inv_theta[j]);
        column(&mut self.inv_theta_plus_mu, &|j| inv_theta_plus_mu[j]);
    }

    /// Orders the first `n` positions in `at` by their count, largest first (a counting sort,
    /// stable), and counts into `above` how many exceed each `k`.
    #[inline(always)]
    fn sort_by_count<E: HostFloat>(&mut self, n: usize, x: &[E]) {
        // Easy counts are integers in 1..=SMALL: bin c - 1.
        let bin = |j: usize| x[j].to_f64() as usize - 1;
        let mut histogram = [0usize; SMALL];
        for &j in &self.at[..n] {
            histogram[bin(j)] += 1;
        }
        let (mut next, mut total) = ([0usize; SMALL], 0);
        for c in (0..SMALL).rev() {
            next[c] = total;
            total += histogram[c];
            self.above[c] = total;
        }
        self.sorted.resize(n, 0);
        for &j in &self.at[..n] {
            let c = bin(j);
            self.sorted[next[c]] = j;
            next[c] += 1;
        }
        self.at[..n].copy_from_slice(&self.sorted);
    }

    /// Fills `log_ratio` and `d_theta` (`digamma_sum` in between holds `Σ 1/(θ + k)`);
    /// after [`EasyCounts::sort_by_count`].
    #[inline(always)]
    fn finish<const FMA: bool>(&mut self) {
        let n = self.count.len();
        for v in [
            &mut self.log_ratio,
            &mut self.digamma_sum,
            &mut self.d_theta,
            &mut self.scratch,
        ] {
            v.resize(n, 0.0);
        }
        // Each pass is a function of slices, so that the compiler knows they do not alias.
        easy_products(
            [&self.mu, &self.theta, &self.inv_theta_plus_mu],
            &self.above,
            [
                &mut self.log_ratio,
                &mut self.scratch,
                &mut self.digamma_sum,
            ],
        );
        easy_logs::<FMA>(&mut self.log_ratio);
        // `- ln x!`, one constant for each count's run of the sorted columns.
        let mut end = 0;
        for c in (0..SMALL).rev() {
            let start = end;
            end = self.above[c];
            let ln_x_factorial = ln_factorial((c + 1) as f64);
            for v in &mut self.log_ratio[start..end] {
                *v -= ln_x_factorial;
            }
        }
        easy_d_theta::<FMA>(
            [
                &self.count,
                &self.mu,
                &self.theta,
                &self.inv_theta,
                &self.inv_theta_plus_mu,
                &self.digamma_sum,
            ],
            &mut self.d_theta,
        );
    }
}

/// Per element: `Π_{k<x} (θ + k)·q` into `product` and, below θ = 8, `Σ 1/(θ + k)` into
/// `digamma_sum` (see [`EasyCounts`]), for elements ordered by count, largest first, of which
/// `above[k]` have a count above `k`. Step `k` multiplies the factor `k` into those elements,
/// a prefix of the columns: a plain loop over slices that vectorises, which a loop over each
/// element's own count (a different length every time) did not. Per element the operations
/// and their order are those of that loop.
#[inline(always)]
fn easy_products(
    [mu, theta, inv_theta_plus_mu]: [&[f64]; 3],
    above: &[usize; SMALL],
    [product, p, dp]: [&mut [f64]; 3],
) {
    product.fill(1.0);
    p.fill(1.0);
    dp.fill(0.0);
    for (k, &n) in above.iter().enumerate() {
        let k = k as f64;
        let (product, p, dp) = (&mut product[..n], &mut p[..n], &mut dp[..n]);
        for i in 0..n {
            let t = theta[i].min(SERIES_FROM) + k;
            product[i] *= (theta[i] + k) * (mu[i] * inv_theta_plus_mu[i]);
            dp[i] = dp[i] * t + p[i];
            p[i] *= t;
        }
    }
    for i in 0..dp.len() {
        dp[i] /= p[i];
    }
}

/// `v ← ln v` for the products (vectorised; `-∞` for a product that underflowed to 0, NaN
/// for NaN, as `f64::ln`).
#[inline(always)]
fn easy_logs<const FMA: bool>(v: &mut [f64]) {
    for x in v.iter_mut() {
        *x = ln::<FMA>(*x);
    }
}

/// `d/dθ` of the easy elements (see [`EasyCounts`]), branch-free (vectorised).
#[inline(always)]
fn easy_d_theta<const FMA: bool>(
    [count, mu, theta, inv_theta, inv_theta_plus_mu, digamma_sum]: [&[f64]; 6],
    d_theta: &mut [f64],
) {
    for i in 0..d_theta.len() {
        let (x, mu, theta, inv) = (count[i], mu[i], theta[i], inv_theta_plus_mu[i]);
        let below = digamma_sum[i] - ln_1p_nonnegative::<FMA>(x * inv_theta[i]);
        let above = nb::digamma_gap_series(x, theta.max(SERIES_FROM));
        let gap = if theta < SERIES_FROM { below } else { above };
        // ln_1p_minus(r): the series for |r| < 0.1; else ln(1 + r) - r with ln(1 + r) of
        // 1 + r and its rounding error for |r| < 0.5, of (θ + x)/(θ + μ) beyond (no
        // cancellation in 1 + r where θ ≪ μ).
        let r = (x - mu) * inv;
        let near = r.abs() < 0.5;
        let u = if near { 1.0 + r } else { (theta + x) * inv };
        let correction = if near { (r - (u - 1.0)) / u } else { 0.0 };
        let log = ln_corrected::<FMA>(u, correction) - r;
        let series = ln_1p_minus_series(r);
        d_theta[i] = gap + if r.abs() < 0.1 { series } else { log };
    }
}

/// The zero inflation ([`zinb::inflate`], the loss's own definition) in place on the scratch
/// row: log NB becomes log p, the NB derivatives are multiplied by `d log p/d log NB`, and
/// `d_logits` receives `-d log p/d l · factor` (the derivative of the NLL). Evaluated on
/// [`Lane`]s, both cases for every element, so that the loop vectorises instead of branching
/// on each count of a sparse row.
#[inline(always)]
fn zero_inflate<E: HostFloat, const FMA: bool>(
    s: &mut Scratch,
    x: &[E],
    logits: &[E],
    factor: f64,
    d_logits: &mut [E],
) {
    let (log_nb, d_mu, d_theta) = (&mut s.log_nb[..], &mut s.d_mu[..], &mut s.d_theta[..]);
    for j in 0..x.len() {
        let (count, l) = (x[j].to_f64(), Lane::<FMA>(logits[j].to_f64()));
        let inflated = zinb::inflate(count <= 0.0, Lane(log_nb[j]), l);
        log_nb[j] = inflated.log_p.0;
        d_mu[j] *= inflated.weight.0;
        d_theta[j] *= inflated.weight.0;
        d_logits[j] = E::from_f64(-inflated.d_logit.0 * factor);
    }
}

/// Counts up to this are handled by [`EasyCounts`]' finite products.
const SMALL: usize = 16;
const SMALL_COUNT: f64 = SMALL as f64;

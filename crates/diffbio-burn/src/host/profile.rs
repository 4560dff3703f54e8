//! BPNet's profile losses as fused host kernels: the multinomial NLL of given
//! log-probabilities, and the whole mixture loss from raw logits (log-softmax, profile NLL,
//! count log1p-MSE and all derivatives in one pass per region). See
//! [`multinomial`](crate::losses::multinomial) and [`bpnet`](crate::losses::bpnet).

use std::mem::MaybeUninit;

use burn::tensor::{DType, Int, Tensor, backend::Backend};
use rayon::prelude::*;

use super::autodiff::attach;
use super::special::{exp_nonpositive, sum_ln_factorial};
use super::{HostFloat, HostTensor, simd, tensor_from};
use crate::losses::log1p_mse::residual;
use crate::losses::multinomial::row_nll;

/// Per-row multinomial NLL of `counts` under `log_probs` (`[..., L]`, rows the leading
/// dimensions flattened), with `∂/∂log_probs = -counts`: a `[rows]` tensor (`scale: None`) or
/// `[1]` holding `scale · Σ rows` (`Some(scale)`), gradient attached to `log_probs`. The
/// inputs are read in place, never reshaped (burn-ndarray's `reshape` copies).
pub(crate) fn multinomial_nll<B: Backend, const D: usize>(
    log_probs: Tensor<B, D>,
    counts: &Tensor<B, D>,
    scale: Option<f64>,
) -> Tensor<B, 1> {
    let (rows, width, shape) = rows_of(counts);
    let host = [&log_probs, counts].map(HostTensor::of);
    let device = log_probs.device();
    macro_rules! run {
        ($e:ty) => {{
            let (lp, c) = (host[0].slice::<$e>(), host[1].slice::<$e>());
            let factor = -scale.unwrap_or(1.0);
            let (d, per_row) = par_rows::<$e, _>(rows, width, |r, _, d| {
                let span = r * width..(r + 1) * width;
                nll_row(&lp[span.clone()], &c[span], factor, d)
            });
            let d = tensor_from(d, shape, &device);
            attach_rows::<B, $e, D>(per_row, scale, log_probs, d)
        }};
    }
    match host[1].dtype() {
        DType::F64 => run!(f64),
        _ => run!(f32),
    }
}

/// One row of the multinomial NLL of counts `c` under log-probabilities `lp`:
/// `-Σ c·lp + Σ ln c! - ln N!`; writes the derivative `factor · c` into `d`.
fn nll_row<E: HostFloat>(lp: &[E], c: &[E], factor: f64, d: &mut [MaybeUninit<E>]) -> f64 {
    simd::dispatch!(nll_row_body, nll_row_wide, (lp, c, factor, d))
}

/// [`nll_row_body`] compiled for AVX2+FMA (see [`simd`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn nll_row_wide<E: HostFloat>(lp: &[E], c: &[E], factor: f64, d: &mut [MaybeUninit<E>]) -> f64 {
    nll_row_body(lp, c, factor, d)
}

#[inline(always)]
fn nll_row_body<E: HostFloat>(lp: &[E], c: &[E], factor: f64, d: &mut [MaybeUninit<E>]) -> f64 {
    let (total, dot) = count_sums(c, lp);
    for (dk, ck) in d.iter_mut().zip(c) {
        dk.write(E::from_f64(ck.to_f64() * factor));
    }
    row_nll(total, dot, sum_ln_factorial(c))
}

/// `(Σ y, Σ y·l)`, each in its own lane loop ([`simd::lanes_dot`]), without branches on the
/// (mostly zero) counts.
#[inline(always)]
fn count_sums<E: HostFloat, F: HostFloat>(y: &[E], l: &[F]) -> (f64, f64) {
    (
        simd::lanes_dot(y, y, |a, _| a),
        simd::lanes_dot(y, l, |a, b| a * b),
    )
}

/// `x ← exp(x - max)` for `x <= max` (results to be rounded to `E`), returning
/// `Σ exp(x - max)`: a plain loop (the loop vectoriser takes it; `exp` inside fixed lanes was
/// unrolled to scalar code instead), then the sum in lanes.
#[inline(always)]
fn exp_shifted_sum<E: HostFloat, const FMA: bool>(x: &mut [f64], max: f64) -> f64 {
    for v in x.iter_mut() {
        *v = exp_nonpositive::<E, FMA>(*v - max);
    }
    simd::lanes_fold(x, 0.0, |a, v| a + v)
}

/// One row of the multinomial NLL of counts `y` under `softmax(l)`:
/// `N·lse(l) - Σ y·l + Σ ln y! - ln N!`, returned with `N = Σ y`; writes the derivative
/// `w · (N·softmax(l) - y)` into `d`. `exp` is evaluated once per element, into `scratch`
/// (a per-thread buffer, so rows allocate nothing).
fn softmax_nll_row<E: HostFloat>(
    l: &[E],
    y: &[E],
    w: f64,
    d: &mut [MaybeUninit<E>],
    scratch: &mut Vec<f64>,
) -> (f64, f64) {
    simd::dispatch!(
        softmax_nll_row_body::<_, { simd::BASELINE_FMA }>,
        softmax_nll_row_wide,
        (l, y, w, d, scratch)
    )
}

/// [`softmax_nll_row_body`] compiled for AVX2+FMA (see [`simd`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_nll_row_wide<E: HostFloat>(
    l: &[E],
    y: &[E],
    w: f64,
    d: &mut [MaybeUninit<E>],
    scratch: &mut Vec<f64>,
) -> (f64, f64) {
    softmax_nll_row_body::<E, true>(l, y, w, d, scratch)
}

/// Passes over the row: widen, maximum, count sums, `exp` with its sum, the derivative. Plain
/// loops and lane-wise reductions only, so that they are inlined into the AVX2 copy and
/// vectorise (`map(..).collect()` was outlined without the target features).
#[inline(always)]
fn softmax_nll_row_body<E: HostFloat, const FMA: bool>(
    l: &[E],
    y: &[E],
    w: f64,
    d: &mut [MaybeUninit<E>],
    scratch: &mut Vec<f64>,
) -> (f64, f64) {
    scratch.resize(l.len(), 0.0);
    let shifted = &mut scratch[..];
    for (s, v) in shifted.iter_mut().zip(l) {
        *s = v.to_f64();
    }
    let max = simd::lanes_fold(shifted, f64::NEG_INFINITY, |m, v| if v > m { v } else { m });
    let (total, dot) = count_sums(y, shifted);
    let sum_exp = exp_shifted_sum::<E, FMA>(shifted, max);
    let lse = max + sum_exp.ln();
    let softmax_scale = w * total / sum_exp;
    for k in 0..l.len() {
        d[k].write(E::from_f64(softmax_scale * shifted[k] - w * y[k].to_f64()));
    }
    (
        row_nll(total, dot - total * lse, sum_ln_factorial(y)),
        total,
    )
}

/// Per-row multinomial NLL of `counts` under `softmax(logits)` (`[..., L]`, as
/// [`multinomial_nll`]), with `∂/∂logits = N·softmax - counts`: `[rows]` (`scale: None`) or
/// `[1]` holding `scale · Σ rows`, gradient attached to `logits`.
pub(crate) fn multinomial_nll_logits<B: Backend, const D: usize>(
    logits: Tensor<B, D>,
    counts: &Tensor<B, D>,
    scale: Option<f64>,
) -> Tensor<B, 1> {
    let (rows, width, shape) = rows_of(counts);
    let host = [&logits, counts].map(HostTensor::of);
    let device = logits.device();
    macro_rules! run {
        ($e:ty) => {{
            let (l, c) = (host[0].slice::<$e>(), host[1].slice::<$e>());
            let w = scale.unwrap_or(1.0);
            let (d, per_row) = par_rows::<$e, _>(rows, width, |r, scratch, d| {
                let span = r * width..(r + 1) * width;
                softmax_nll_row(&l[span.clone()], &c[span], w, d, scratch).0
            });
            let d = tensor_from(d, shape, &device);
            attach_rows::<B, $e, D>(per_row, scale, logits, d)
        }};
    }
    match host[1].dtype() {
        DType::F64 => run!(f64),
        _ => run!(f32),
    }
}

/// Per-row values of a `[..., L]` input as `[rows]`, or their scaled sum as `[1]`, with the
/// derivative `d` (`[..., L]`) attached to `input`. The per-row values are attached in the
/// input's rank (`[..., 1]`, which broadcasts against `d`) and flattened afterwards.
fn attach_rows<B: Backend, E: HostFloat, const D: usize>(
    per_row: Vec<f64>,
    scale: Option<f64>,
    input: Tensor<B, D>,
    d: Tensor<B, D>,
) -> Tensor<B, 1> {
    let device = input.device();
    match scale {
        None => {
            let rows = per_row.len();
            let mut keep_dim = d.dims();
            keep_dim[D - 1] = 1;
            let value = tensor_from(
                per_row.into_iter().map(E::from_f64).collect(),
                keep_dim,
                &device,
            );
            attach(value, [input], [d]).reshape([rows])
        }
        Some(_) => attach(values::<B, E>(per_row, scale, &device), [input], [d]),
    }
}

/// Per-row values as `[rows]`, or their scaled sum as `[1]`.
fn values<B: Backend, E: HostFloat>(
    per_row: Vec<f64>,
    scale: Option<f64>,
    device: &B::Device,
) -> Tensor<B, 1> {
    match scale {
        None => {
            let n = per_row.len();
            tensor_from(per_row.into_iter().map(E::from_f64).collect(), [n], device)
        }
        Some(s) => tensor_from(
            vec![E::from_f64(per_row.iter().sum::<f64>() * s)],
            [1],
            device,
        ),
    }
}

/// The BPNet mixture loss's inputs; rows are regions, strands × positions read in place as
/// one row of `s·L` (never reshaped: burn-ndarray's `reshape` copies).
pub(crate) struct MixtureInputs<B: Backend> {
    /// `[n, s, L]` read counts.
    pub y: Tensor<B, 3>,
    /// `[n, s, L]` profile logits.
    pub logits: Tensor<B, 3>,
    /// `[n, 1]` predicted log total counts.
    pub log_counts: Tensor<B, 2>,
    /// `[n]` peak labels (0/1), `None`: all peaks.
    pub labels: Option<Tensor<B, 1, Int>>,
}

impl<B: Backend> MixtureInputs<B> {
    /// The mixture loss's checked inputs.
    pub(crate) fn new(
        y: Tensor<B, 3>,
        logits: Tensor<B, 3>,
        log_counts: Tensor<B, 2>,
        labels: Option<Tensor<B, 1, Int>>,
    ) -> Self {
        Self {
            y,
            logits,
            log_counts,
            labels,
        }
    }
}

/// How the per-region losses are combined: `None` keeps them per region (`[n]`), otherwise
/// the profile losses are summed and multiplied by `profile`, the count losses by `count`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scales {
    pub profile: f64,
    pub count: f64,
}

/// `(profile, count)`: per region (`[n]`, profile 0 where the label is 0) or reduced (`[1]`),
/// with gradients attached to `logits` and `log_counts`. `scales` may depend on the number
/// of labelled regions, which this returns as well (read from the host labels).
pub(crate) fn mixture<B: Backend>(
    inputs: MixtureInputs<B>,
    scales: impl FnOnce(usize) -> Option<Scales>,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let [n, strands, length] = inputs.y.dims();
    let width = strands * length;
    let labels: Vec<f64> = match &inputs.labels {
        Some(l) => l
            .to_data()
            .convert::<i64>()
            .iter::<i64>()
            .map(|v| v as f64)
            .collect(),
        None => vec![1.0; n],
    };
    let labelled = labels.iter().filter(|&&w| w == 1.0).count();
    let scales = scales(labelled);
    let host = [
        HostTensor::of(&inputs.y),
        HostTensor::of(&inputs.logits),
        HostTensor::of(&inputs.log_counts),
    ];
    let device = inputs.logits.device();
    macro_rules! run {
        ($e:ty) => {{
            let (y, logits, lc) = (
                host[0].slice::<$e>(),
                host[1].slice::<$e>(),
                host[2].slice::<$e>(),
            );
            let (p_scale, c_scale) = scales.map_or((1.0, 1.0), |s| (s.profile, s.count));
            let (d_logits, per_row) = par_rows::<$e, _>(n, width, |r, scratch, d| {
                let (y, l) = (&y[r * width..][..width], &logits[r * width..][..width]);
                let (nll, total) = softmax_nll_row(l, y, labels[r] * p_scale, d, scratch);
                let profile = labels[r] * nll;
                let res = residual(lc[r].to_f64(), total);
                (profile, res * res, -2.0 * res * c_scale)
            });
            let d_lc = per_row.iter().map(|r| <$e>::from_f64(r.2)).collect();
            let split = |f: fn(&(f64, f64, f64)) -> f64| per_row.iter().map(f).collect::<Vec<_>>();
            let reduce = |v: Vec<f64>, s: f64| values::<B, $e>(v, scales.map(|_| s), &device);
            let profile = reduce(split(|r| r.0), p_scale);
            let count = reduce(split(|r| r.1), c_scale);
            let d_logits = tensor_from(d_logits, [n, strands, length], &device);
            (
                attach(profile, [inputs.logits], [d_logits]),
                attach(
                    count,
                    [inputs.log_counts],
                    [tensor_from(d_lc, [n, 1], &device)],
                ),
            )
        }};
    }
    match host[1].dtype() {
        DType::F64 => run!(f64),
        _ => run!(f32),
    }
}

/// `row(r, scratch, d)` for each of `rows` rows of `width` elements, in parallel (`scratch` a
/// per-thread buffer): each call writes every element of its row `d` of the derivative.
/// Returns the derivative, `[rows · width]`, and the rows' results. The derivative is not
/// zeroed first: without that memset the MNLL-from-logits bench ran about 12 % faster.
fn par_rows<E: HostFloat, T: Send>(
    rows: usize,
    width: usize,
    row: impl Fn(usize, &mut Vec<f64>, &mut [MaybeUninit<E>]) -> T + Sync + Send,
) -> (Vec<E>, Vec<T>) {
    let n = rows * width;
    let mut d = Vec::with_capacity(n);
    let per_row = d.spare_capacity_mut()[..n]
        .par_chunks_mut(width.max(1))
        .enumerate()
        .map_init(Vec::new, |scratch, (r, d)| row(r, scratch, d))
        .collect();
    // SAFETY: the rows cover `0..n` and each call wrote every element of its row.
    unsafe { d.set_len(n) };
    (d, per_row)
}

/// `(rows, L, shape)` of a `[..., L]` tensor: the leading dimensions' product, the last.
fn rows_of<B: Backend, const D: usize>(x: &Tensor<B, D>) -> (usize, usize, [usize; D]) {
    let shape = x.dims();
    let width = shape[D - 1];
    (shape[..D - 1].iter().product(), width, shape)
}

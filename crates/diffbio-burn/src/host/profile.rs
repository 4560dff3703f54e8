//! BPNet's profile losses as fused host kernels: the multinomial NLL of given
//! log-probabilities, and the whole mixture loss from raw logits (log-softmax, profile NLL,
//! count log1p-MSE and all derivatives in one pass per region). See
//! [`multinomial`](crate::losses::multinomial) and [`bpnet`](crate::losses::bpnet).

use burn::tensor::{DType, Int, Tensor, backend::Backend};
use rayon::prelude::*;

use super::autodiff::attach;
use super::special::{exp_nonpositive, ln_factorial};
use super::{HostFloat, HostTensor, simd, tensor_from};
use crate::losses::log1p_mse::residual;
use crate::losses::multinomial::row_nll;

/// Per-row multinomial NLL of `counts` under `log_probs` (`[rows, L]`), with
/// `∂/∂log_probs = -counts`: a `[rows]` tensor (`scale: None`) or `[1]` holding
/// `scale · Σ rows` (`Some(scale)`), gradient attached to `log_probs`.
pub(crate) fn multinomial_nll<B: Backend>(
    log_probs: Tensor<B, 2>,
    counts: &Tensor<B, 2>,
    scale: Option<f64>,
) -> Tensor<B, 1> {
    let [rows, width] = counts.dims();
    let host = [&log_probs, counts].map(HostTensor::of);
    let device = log_probs.device();
    macro_rules! run {
        ($e:ty) => {{
            let (lp, c) = (host[0].slice::<$e>(), host[1].slice::<$e>());
            let factor = -scale.unwrap_or(1.0);
            let mut d = vec![<$e>::from_f64(0.0); rows * width];
            let per_row: Vec<f64> = d
                .par_chunks_mut(width.max(1))
                .enumerate()
                .map(|(r, d)| {
                    let (lp, c) = (&lp[r * width..][..width], &c[r * width..][..width]);
                    let (mut dot, mut log_factorials, mut total) = (0.0, 0.0, 0.0);
                    for k in 0..width {
                        let ck = c[k].to_f64();
                        dot += ck * lp[k].to_f64();
                        log_factorials += ln_factorial(ck);
                        total += ck;
                        d[k] = <$e>::from_f64(ck * factor);
                    }
                    row_nll(total, dot, log_factorials)
                })
                .collect();
            let value = values::<B, $e>(per_row, scale, &device);
            attach(value, [log_probs], [tensor_from(d, [rows, width], &device)])
        }};
    }
    match host[1].dtype() {
        DType::F64 => run!(f64),
        _ => run!(f32),
    }
}

/// One row of the multinomial NLL of counts `y` under `softmax(l)`:
/// `N·lse(l) - Σ y·l + Σ ln y! - ln N!`, returned with `N = Σ y`; writes the derivative
/// `w · (N·softmax(l) - y)` into `d`. `exp` is evaluated once per element.
fn softmax_nll_row<E: HostFloat>(l: &[E], y: &[E], w: f64, d: &mut [E]) -> (f64, f64) {
    simd::dispatch!(softmax_nll_row_body, softmax_nll_row_wide, (l, y, w, d))
}

/// [`softmax_nll_row_body`] compiled for AVX2+FMA (see [`simd`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_nll_row_wide<E: HostFloat>(l: &[E], y: &[E], w: f64, d: &mut [E]) -> (f64, f64) {
    softmax_nll_row_body(l, y, w, d)
}

#[inline(always)]
fn softmax_nll_row_body<E: HostFloat>(l: &[E], y: &[E], w: f64, d: &mut [E]) -> (f64, f64) {
    // Plain loops and lane-wise reductions only: they are inlined into the AVX2 copy and
    // vectorise (`map(..).collect()` was outlined without the target features, and a single
    // running max or sum is a serial dependency chain).
    let mut shifted: Vec<f64> = vec![0.0; l.len()];
    for (s, v) in shifted.iter_mut().zip(l) {
        *s = v.to_f64();
    }
    let max = simd::lanes_fold(
        &shifted,
        f64::NEG_INFINITY,
        |m, v| if v > m { v } else { m },
    );
    for s in shifted.iter_mut() {
        *s = exp_nonpositive(*s - max);
    }
    let sum_exp = simd::lanes_fold(&shifted, 0.0, |a, v| a + v);
    // Σ y, Σ y·l and Σ ln y! in eight lanes each, without branches on the (mostly zero) counts.
    let mut lanes = [[0.0; 8]; 3];
    let (y_chunks, l_chunks) = (y.chunks_exact(8), l.chunks_exact(8));
    let tail = y_chunks.remainder().iter().zip(l_chunks.remainder());
    for (yc, lc) in y_chunks.zip(l_chunks) {
        for j in 0..8 {
            let yk = yc[j].to_f64();
            lanes[0][j] += yk;
            lanes[1][j] += yk * lc[j].to_f64();
            lanes[2][j] += ln_factorial(yk);
        }
    }
    let [mut total, mut dot, mut log_factorials] = lanes.map(|lane| lane.iter().sum::<f64>());
    for (yk, lk) in tail {
        let yk = yk.to_f64();
        total += yk;
        dot += yk * lk.to_f64();
        log_factorials += ln_factorial(yk);
    }
    let lse = max + sum_exp.ln();
    let softmax_scale = w * total / sum_exp;
    for k in 0..l.len() {
        d[k] = E::from_f64(softmax_scale * shifted[k] - w * y[k].to_f64());
    }
    (row_nll(total, dot - total * lse, log_factorials), total)
}

/// Per-row multinomial NLL of `counts` under `softmax(logits)` (`[rows, L]`), with
/// `∂/∂logits = N·softmax - counts`: `[rows]` (`scale: None`) or `[1]` holding
/// `scale · Σ rows`, gradient attached to `logits`.
pub(crate) fn multinomial_nll_logits<B: Backend>(
    logits: Tensor<B, 2>,
    counts: &Tensor<B, 2>,
    scale: Option<f64>,
) -> Tensor<B, 1> {
    let [rows, width] = counts.dims();
    let host = [&logits, counts].map(HostTensor::of);
    let device = logits.device();
    macro_rules! run {
        ($e:ty) => {{
            let (l, c) = (host[0].slice::<$e>(), host[1].slice::<$e>());
            let w = scale.unwrap_or(1.0);
            let mut d = vec![<$e>::from_f64(0.0); rows * width];
            let per_row: Vec<f64> = d
                .par_chunks_mut(width.max(1))
                .enumerate()
                .map(|(r, d)| {
                    let span = r * width..(r + 1) * width;
                    softmax_nll_row(&l[span.clone()], &c[span], w, d).0
                })
                .collect();
            let value = values::<B, $e>(per_row, scale, &device);
            attach(value, [logits], [tensor_from(d, [rows, width], &device)])
        }};
    }
    match host[1].dtype() {
        DType::F64 => run!(f64),
        _ => run!(f32),
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

/// The BPNet mixture loss's inputs, flattened over strands × positions.
pub(crate) struct MixtureInputs<B: Backend> {
    /// `[n, W]` read counts.
    pub y: Tensor<B, 2>,
    /// `[n, W]` profile logits.
    pub logits: Tensor<B, 2>,
    /// `[n, 1]` predicted log total counts.
    pub log_counts: Tensor<B, 2>,
    /// `[n]` peak labels (0/1), `None`: all peaks.
    pub labels: Option<Tensor<B, 1, Int>>,
}

impl<B: Backend> MixtureInputs<B> {
    /// The mixture loss's checked inputs, `y` and `logits` `[n, s, L]` flattened over
    /// strands × positions.
    pub(crate) fn new(
        y: Tensor<B, 3>,
        logits: Tensor<B, 3>,
        log_counts: Tensor<B, 2>,
        labels: Option<Tensor<B, 1, Int>>,
    ) -> Self {
        let [n, s, l] = y.dims();
        Self {
            y: y.reshape([n, s * l]),
            logits: logits.reshape([n, s * l]),
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
    let [n, width] = inputs.y.dims();
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
    let host = [&inputs.y, &inputs.logits, &inputs.log_counts].map(HostTensor::of);
    let device = inputs.logits.device();
    macro_rules! run {
        ($e:ty) => {{
            let (y, logits, lc) = (
                host[0].slice::<$e>(),
                host[1].slice::<$e>(),
                host[2].slice::<$e>(),
            );
            let (p_scale, c_scale) = scales.map_or((1.0, 1.0), |s| (s.profile, s.count));
            let mut d_logits = vec![<$e>::from_f64(0.0); n * width];
            let per_row: Vec<(f64, f64, f64)> = d_logits
                .par_chunks_mut(width.max(1))
                .enumerate()
                .map(|(r, d)| {
                    let (y, l) = (&y[r * width..][..width], &logits[r * width..][..width]);
                    let (nll, total) = softmax_nll_row(l, y, labels[r] * p_scale, d);
                    let profile = labels[r] * nll;
                    let res = residual(lc[r].to_f64(), total);
                    (profile, res * res, -2.0 * res * c_scale)
                })
                .collect();
            let d_lc = per_row.iter().map(|r| <$e>::from_f64(r.2)).collect();
            let split = |f: fn(&(f64, f64, f64)) -> f64| per_row.iter().map(f).collect::<Vec<_>>();
            let reduce = |v: Vec<f64>, s: f64| values::<B, $e>(v, scales.map(|_| s), &device);
            let profile = reduce(split(|r| r.0), p_scale);
            let count = reduce(split(|r| r.1), c_scale);
            let d_logits = tensor_from(d_logits, [n, width], &device);
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

/// A host row kernel: `[rows, L]` inputs and counts, per-row values (`scale: None`) or their
/// scaled sum.
pub(crate) type RowKernel<B> = fn(Tensor<B, 2>, &Tensor<B, 2>, Option<f64>) -> Tensor<B, 1>;

/// `kernel` applied to `[..., L]` inputs, flattened to rows.
pub(crate) fn on_rows<B: Backend, const D: usize>(
    kernel: RowKernel<B>,
    x: Tensor<B, D>,
    counts: Tensor<B, D>,
    scale: Option<f64>,
) -> Tensor<B, 1> {
    kernel(flatten_rows(x), &flatten_rows(counts), scale)
}

/// `[..., L]` as `[rows, L]`.
fn flatten_rows<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, 2> {
    let dims = x.dims();
    x.reshape([dims[..D - 1].iter().product::<usize>(), dims[D - 1]])
}

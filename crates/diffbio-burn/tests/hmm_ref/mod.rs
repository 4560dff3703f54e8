//! Host-side float64 reference for the HMM tests: models as raw logits, brute force over
//! all state paths, tensor builders. Declared by each test binary's `main.rs`.
#![allow(dead_code)]

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use diffbio_burn::hmm::{Hmm, HmmAlgorithm};
use rand::Rng;
use rand::rngs::StdRng;

// ---------------------------------------------------------------------------------------------

/// Raw logits of a model (row-major), as the module stores them.
#[derive(Clone, Debug)]
pub struct Logits {
    pub s: usize,
    pub e: usize,
    pub initial: Vec<f64>,
    pub transitions: Vec<f64>,
    pub emissions: Vec<f64>,
}

pub fn log_softmax_rows(x: &[f64], cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|row| {
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            row.iter().map(move |v| v - lse).collect::<Vec<_>>()
        })
        .collect()
}

impl Logits {
    pub fn random(rng: &mut StdRng, s: usize, e: usize, scale: f64) -> Self {
        let mut draw = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|_| rng.random_range(-scale..scale) as f32 as f64)
                .collect()
        };
        Self {
            s,
            e,
            initial: draw(s),
            transitions: draw(s * s),
            emissions: draw(s * e),
        }
    }

    pub fn log_probs(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        (
            log_softmax_rows(&self.initial, self.s),
            log_softmax_rows(&self.transitions, self.s),
            log_softmax_rows(&self.emissions, self.e),
        )
    }

    /// The module with these raw logits as trainable leaves. Panics unless the test binary
    /// runs in `B`'s own float type (one NdArray precision per test binary, see
    /// `common::assert_native_float_dtype`).
    pub fn module<B: Backend>(&self, device: &B::Device) -> Hmm<B> {
        crate::common::assert_native_float_dtype::<B>(device);
        Hmm::from_logits(
            tensor(&self.initial, [self.s], device).require_grad(),
            tensor(&self.transitions, [self.s, self.s], device).require_grad(),
            tensor(&self.emissions, [self.s, self.e], device).require_grad(),
        )
    }
}

/// Every state path of length `x.len()` with its joint log-probability `log p(x, z)`.
pub fn all_paths(m: &Logits, x: &[i64]) -> Vec<(Vec<usize>, f64)> {
    let (li, lt, le) = m.log_probs();
    let n = x.len();
    let total = m.s.pow(n as u32);
    (0..total)
        .map(|mut code| {
            let z: Vec<usize> = (0..n)
                .map(|_| {
                    let s = code % m.s;
                    code /= m.s;
                    s
                })
                .collect();
            let mut lp = li[z[0]] + le[z[0] * m.e + x[0] as usize];
            for t in 1..n {
                lp += lt[z[t - 1] * m.s + z[t]] + le[z[t] * m.e + x[t] as usize];
            }
            (z, lp)
        })
        .collect()
}

pub fn log_sum_exp(v: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.collect();
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

pub fn brute_log_likelihood(m: &Logits, x: &[i64]) -> f64 {
    log_sum_exp(all_paths(m, x).into_iter().map(|(_, lp)| lp))
}

pub fn random_sequences(rng: &mut StdRng, b: usize, t: usize, e: usize) -> Vec<i64> {
    (0..b * t).map(|_| rng.random_range(0..e as i64)).collect()
}

pub fn obs<B: Backend>(x: &[i64], b: usize, t: usize) -> Tensor<B, 2, Int> {
    int_tensor(x, [b, t], &Default::default())
}

pub fn lens<B: Backend>(l: &[i64]) -> Tensor<B, 1, Int> {
    int_tensor(l, [l.len()], &Default::default())
}

/// Tolerance for comparing a backend's float results with an f64 reference.
pub fn tol<B: Backend>() -> (f64, f64) {
    if core::mem::size_of::<B::FloatElem>() == 8 {
        (1e-10, 1e-10)
    } else {
        (1e-5, 2e-5)
    }
}

/// A float tensor from `f64` data, converted directly to the backend's float type.
pub fn tensor<B: Backend, const D: usize>(
    data: &[f64],
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(data.to_vec(), shape), device)
}

/// An integer tensor.
pub fn int_tensor<B: Backend, const D: usize>(
    data: &[i64],
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D, Int> {
    Tensor::from_data(TensorData::new(data.to_vec(), shape), device)
}

/// The most likely path, its log-probability and the gap to the second best path.
pub fn brute_viterbi(m: &Logits, x: &[i64]) -> (Vec<usize>, f64, f64) {
    let mut paths = all_paths(m, x);
    paths.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
    let gap = if paths.len() > 1 {
        paths[0].1 - paths[1].1
    } else {
        f64::INFINITY
    };
    (paths[0].0.clone(), paths[0].1, gap)
}

/// `p(z_t = i | x)` by normalised path sums, row-major `[T, S]`.
pub fn brute_posteriors(m: &Logits, x: &[i64]) -> Vec<f64> {
    let paths = all_paths(m, x);
    let ll = log_sum_exp(paths.iter().map(|(_, lp)| *lp));
    let mut post = vec![0.0; x.len() * m.s];
    for (z, lp) in &paths {
        let w = (lp - ll).exp();
        for (t, &s) in z.iter().enumerate() {
            post[t * m.s + s] += w;
        }
    }
    post
}

/// The same model under every implementation: `(name, module)`.
pub fn variants<B: Backend>(m: &Logits, device: &B::Device) -> Vec<(&'static str, Hmm<B>)> {
    vec![
        ("host", m.module(device).with_algorithm(HmmAlgorithm::Host)),
        (
            "sequential",
            m.module(device).with_algorithm(HmmAlgorithm::Sequential),
        ),
        (
            "sequential-taped",
            m.module(device)
                .with_algorithm(HmmAlgorithm::Sequential)
                .with_taped_gradient(true),
        ),
        (
            "scan",
            m.module(device).with_algorithm(HmmAlgorithm::ParallelScan),
        ),
        (
            "scan-taped",
            m.module(device)
                .with_algorithm(HmmAlgorithm::ParallelScan)
                .with_taped_gradient(true),
        ),
    ]
}

/// The gradients of `loss` with respect to the three raw parameters, concatenated.
pub fn param_grads<B: burn::tensor::backend::AutodiffBackend>(
    loss: Tensor<B, 1>,
    hmm: &Hmm<B>,
) -> Vec<f64> {
    let g = loss.backward();
    let read = |t: Option<Tensor<B::InnerBackend, 1>>| -> Vec<f64> {
        t.expect("a gradient").into_data().iter::<f64>().collect()
    };
    let mut v = read(hmm.initial.grad(&g));
    v.extend(read(hmm.transitions.grad(&g).map(|t| t.flatten(0, 1))));
    v.extend(read(hmm.emissions.grad(&g).map(|t| t.flatten(0, 1))));
    v
}

/// The mean NLL `-1/B Σ_b log p(x_b)` of a padded batch `[B, T]` (row `b` holds
/// `lengths[b]` symbols, all `T` without lengths) and its gradient with respect to the raw
/// logits `(initial, transitions, emissions)` concatenated row-major, by an exact log-space
/// forward-backward in `f64` (the float64 truth for the float32 accuracy tests).
pub fn reference_mean_nll(
    m: &Logits,
    x: &[i64],
    b: usize,
    t: usize,
    lengths: Option<&[i64]>,
) -> (f64, Vec<f64>) {
    let (s, e) = (m.s, m.e);
    let (li, lt, le) = m.log_probs();
    let lse = |v: &mut dyn Iterator<Item = f64>| -> f64 {
        let v: Vec<f64> = v.collect();
        let mx = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if mx == f64::NEG_INFINITY {
            return mx;
        }
        mx + v.iter().map(|x| (x - mx).exp()).sum::<f64>().ln()
    };
    // Expected counts summed over the batch: ∂ Σ_b log p(x_b) / ∂ (log π, log A, log B).
    let mut gi = vec![0.0; s];
    let mut gt = vec![0.0; s * s];
    let mut ge = vec![0.0; s * e];
    let mut total = 0.0;
    for row in 0..b {
        let n = lengths.map_or(t, |l| l[row] as usize);
        let x = &x[row * t..row * t + n];
        let lb = |i: usize, k: usize| le[i * e + x[k] as usize];
        let mut alpha = vec![0.0; n * s];
        for i in 0..s {
            alpha[i] = li[i] + lb(i, 0);
        }
        for k in 1..n {
            for j in 0..s {
                let v = lse(&mut (0..s).map(|i| alpha[(k - 1) * s + i] + lt[i * s + j]));
                alpha[k * s + j] = v + lb(j, k);
            }
        }
        let ll = lse(&mut alpha[(n - 1) * s..].iter().cloned());
        total += ll;
        let mut beta = vec![0.0; n * s];
        for k in (0..n - 1).rev() {
            for i in 0..s {
                beta[k * s + i] =
                    lse(&mut (0..s).map(|j| lt[i * s + j] + lb(j, k + 1) + beta[(k + 1) * s + j]));
            }
        }
        for k in 0..n {
            for i in 0..s {
                let g = (alpha[k * s + i] + beta[k * s + i] - ll).exp();
                if k == 0 {
                    gi[i] += g;
                }
                ge[i * e + x[k] as usize] += g;
                if k + 1 < n {
                    for j in 0..s {
                        gt[i * s + j] += (alpha[k * s + i]
                            + lt[i * s + j]
                            + lb(j, k + 1)
                            + beta[(k + 1) * s + j]
                            - ll)
                            .exp();
                    }
                }
            }
        }
    }
    // d(-mean)/d log p = -counts / B, then through the row-wise log_softmax:
    // ∂/∂z_k = g_k - softmax_k Σ_j g_j.
    let through_softmax = |g: &[f64], lp: &[f64], cols: usize| -> Vec<f64> {
        g.chunks(cols)
            .zip(lp.chunks(cols))
            .flat_map(|(g, lp)| {
                let sum: f64 = g.iter().sum();
                g.iter()
                    .zip(lp)
                    .map(move |(g, lp)| (-g + lp.exp() * sum) / b as f64)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let mut grads = through_softmax(&gi, &li, s);
    grads.extend(through_softmax(&gt, &lt, s));
    grads.extend(through_softmax(&ge, &le, e));
    (-total / b as f64, grads)
}

/// Draws `b` sequences of `t` symbols from the model (in `f64`, seeded).
pub fn sample_sequences(m: &Logits, rng: &mut StdRng, b: usize, t: usize) -> Vec<i64> {
    let (li, lt, le) = m.log_probs();
    let draw = |rng: &mut StdRng, lp: &[f64]| -> usize {
        let u: f64 = rng.random_range(0.0..1.0);
        let mut acc = 0.0;
        for (k, v) in lp.iter().enumerate() {
            acc += v.exp();
            if u < acc {
                return k;
            }
        }
        lp.len() - 1
    };
    let mut out = Vec::with_capacity(b * t);
    for _ in 0..b {
        let mut z = draw(rng, &li);
        for k in 0..t {
            if k > 0 {
                z = draw(rng, &lt[z * m.s..(z + 1) * m.s]);
            }
            out.push(draw(rng, &le[z * m.e..(z + 1) * m.e]) as i64);
        }
    }
    out
}

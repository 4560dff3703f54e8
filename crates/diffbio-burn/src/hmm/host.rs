//! Host fast path: the forward-backward algorithm in plain Rust (`f64`) over the whole batch
//! in one pass, for backends whose tensors live in host memory.
//!
//! Per-time-step tensor operations cost a few microseconds each in Burn, so `T = 1000`
//! steps of a taped recursion take tens of milliseconds whatever the batch. Here one pass
//! computes, per sequence, the log-likelihood and the expected counts
//! (`γ_0`, `Σ_t ξ_t`, `Σ_t γ_t ⊗ onehot(x_t)`) that make up its gradient.
//!
//! # Algorithm
//! Scaled probabilities (Rabiner): `α̂_t` is renormalised to sum 1 at every step, the scale
//! factors `c_t` give `log p(x) = Σ_t log c_t`, and the backward variables use the same
//! factors, so `γ_t = α̂_t · β̂_t` and `ξ_t[i, j] = α̂_t[i] A[i, j] b_j(x_{t+1}) β̂_{t+1}[j] / c_{t+1}`.
//! Emission columns are divided by their maximum over states (the shift is added back to the
//! log-likelihood), so a symbol improbable in every state does not underflow. A sequence
//! whose scale factor still underflows (below `f64::MIN_POSITIVE`) or whose counts are not
//! finite is recomputed exactly in log space. All accumulation is in `f64`.
//!
//! # When it is used
//! [`HmmAlgorithm::Auto`](super::HmmAlgorithm::Auto) selects it when the backend's device type
//! is `burn::backend::ndarray::NdArrayDevice` (`NdArray` and `Autodiff<NdArray>`), by the loss
//! kernels' own check, `crate::host::on_host` (with the `ndarray` feature; without it, never).
//! `HmmAlgorithm::Host` forces it on any backend, at the price of reading the parameters and
//! observations back to the host.
//!
//! When the batch holds enough work (`B·T·S² >= 100_000`), its sequences are split into about
//! four jobs per thread of rayon's global pool, the pool of the loss kernels (with the
//! `ndarray` feature; without it the calling thread runs them all). The scaled kernel is
//! compiled for `S = 1..=8` with the state count as a constant (unrolled loops) and
//! generically beyond.
// Index loops mirror the formulas of the recursions.
#![allow(clippy::needless_range_loop)]

use burn::tensor::backend::Backend;

/// Whether the backend's device is the NdArray CPU device (see the module docs).
pub(crate) fn is_host_device<B: Backend>() -> bool {
    #[cfg(feature = "ndarray")]
    {
        crate::host::on_host::<B>()
    }
    #[cfg(not(feature = "ndarray"))]
    {
        let _ = core::marker::PhantomData::<B>;
        false
    }
}

/// Below this much work (`B·T·S²`) the batch runs on the calling thread only.
const PARALLEL_FROM: usize = 100_000;

/// Worker threads of the pool the batch is split over: rayon's global pool (shared with the
/// loss kernels of `crate::host`) with the `ndarray` feature, the calling thread without.
fn threads() -> usize {
    #[cfg(feature = "ndarray")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "ndarray"))]
    {
        1
    }
}

/// `log Σ exp(v)`; `-inf` when every entry is `-inf`.
fn log_sum_exp(v: impl Iterator<Item = f64> + Clone) -> f64 {
    let m = v.clone().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// The maximum of `v`, or 0 if it is `-inf` (an all-zero row of probabilities).
fn finite_max(v: &[f64]) -> f64 {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if m.is_finite() { m } else { 0.0 }
}

/// A model's normalised log-probabilities and the probability tables of the scaled algorithm.
pub(crate) struct HostModel {
    pub s: usize,
    pub e: usize,
    log_pi: Vec<f64>,
    log_a: Vec<f64>,
    log_b: Vec<f64>,
    /// `exp(log π - pi_shift)`.
    pi: Vec<f64>,
    pi_shift: f64,
    /// `exp(log A)`, `[S, S]`.
    a: Vec<f64>,
    /// `exp(log B[i, k] - shift[k])`, stored per symbol: `[E, S]`.
    bt: Vec<f64>,
    /// `max_i log B[i, k]`, `[E]`.
    shift: Vec<f64>,
}

impl HostModel {
    /// From row-major `log π [S]`, `log A [S, S]`, `log B [S, E]`.
    pub fn new(log_pi: Vec<f64>, log_a: Vec<f64>, log_b: Vec<f64>) -> Self {
        let s = log_pi.len();
        let e = log_b.len() / s;
        let pi_shift = finite_max(&log_pi);
        let pi = log_pi.iter().map(|v| (v - pi_shift).exp()).collect();
        let a = log_a.iter().map(|v| v.exp()).collect();
        let shift: Vec<f64> = (0..e)
            .map(|k| finite_max(&(0..s).map(|i| log_b[i * e + k]).collect::<Vec<_>>()))
            .collect();
        let bt = (0..e)
            .flat_map(|k| {
                let shift = shift[k];
                let log_b = &log_b;
                (0..s).map(move |i| (log_b[i * e + k] - shift).exp())
            })
            .collect();
        Self {
            s,
            e,
            log_pi,
            log_a,
            log_b,
            pi,
            pi_shift,
            a,
            bt,
            shift,
        }
    }

    /// Number of gradient entries per sequence: `S + S² + S·E` (initial, transitions,
    /// emissions, row-major).
    pub fn n_params(&self) -> usize {
        self.s + self.s * self.s + self.s * self.e
    }

    /// The emission column of symbol `x`, as the tensor paths' `symbol_index` (DiffBio's JAX
    /// indexing): negative symbols count from the end, the rest is clamped into `0..E`.
    fn symbol(&self, x: i64) -> usize {
        let e = self.e as i64;
        let x = if x < 0 { x + e } else { x };
        x.clamp(0, e - 1) as usize
    }
}

/// Observations `[B, T]` (row-major) with optional lengths `[B]`.
pub(crate) struct HostBatch<'a> {
    pub observations: &'a [i64],
    pub lengths: Option<&'a [i64]>,
    pub batch: usize,
    pub len: usize,
}

impl HostBatch<'_> {
    /// The unpadded symbols of sequence `b`.
    fn sequence(&self, b: usize) -> &[i64] {
        let n = self
            .lengths
            .map_or(self.len, |l| (l[b].clamp(1, self.len as i64)) as usize);
        &self.observations[b * self.len..b * self.len + n]
    }
}

/// Per-sequence results of [`forward_backward`].
pub(crate) struct HostResult {
    /// `log p(x_b)`, `[B]`.
    pub log_likelihood: Vec<f64>,
    /// Expected counts, `[B, S + S² + S·E]` (empty unless requested).
    pub counts: Vec<f64>,
    /// Posterior marginals `[B, T, S]`, 0 at padding (empty unless requested).
    pub posteriors: Vec<f64>,
}

/// Scratch buffers of one thread.
struct Scratch {
    alpha: Vec<f64>,
    scale: Vec<f64>,
    beta: Vec<f64>,
    beta_next: Vec<f64>,
    v: Vec<f64>,
    xi: Vec<f64>,
}

impl Scratch {
    fn new(s: usize, len: usize) -> Self {
        Self {
            alpha: vec![0.0; len * s],
            scale: vec![0.0; len],
            beta: vec![0.0; s],
            beta_next: vec![0.0; s],
            v: vec![0.0; s],
            xi: vec![0.0; s * s],
        }
    }
}

/// Log-likelihoods, and on request expected counts and posteriors, of every sequence.
pub(crate) fn forward_backward(
    m: &HostModel,
    batch: &HostBatch,
    want_counts: bool,
    want_posteriors: bool,
) -> HostResult {
    let (n_seq, len, s) = (batch.batch, batch.len, m.s);
    let p = m.n_params();
    let mut log_likelihood = vec![0.0; n_seq];
    let mut counts = vec![0.0; if want_counts { n_seq * p } else { 0 }];
    let mut posteriors = vec![0.0; if want_posteriors { n_seq * len * s } else { 0 }];
    // Split the outputs into disjoint per-job slices of `per` sequences each.
    let work = n_seq * len * s * s;
    let jobs_wanted = if work < PARALLEL_FROM {
        1
    } else {
        (4 * threads()).min(n_seq)
    };
    let per = n_seq.div_ceil(jobs_wanted);
    let mut jobs = Vec::with_capacity(jobs_wanted);
    let (mut ll_rest, mut c_rest, mut p_rest) = (
        log_likelihood.as_mut_slice(),
        counts.as_mut_slice(),
        posteriors.as_mut_slice(),
    );
    let mut start = 0;
    while start < n_seq {
        let n = per.min(n_seq - start);
        let (ll, rest) = std::mem::take(&mut ll_rest).split_at_mut(n);
        ll_rest = rest;
        let (c, rest) =
            std::mem::take(&mut c_rest).split_at_mut(if want_counts { n * p } else { 0 });
        c_rest = rest;
        let (q, rest) =
            std::mem::take(&mut p_rest).split_at_mut(if want_posteriors { n * len * s } else { 0 });
        p_rest = rest;
        jobs.push((start, ll, c, q));
        start += n;
    }
    let run = |(first, ll, c, q): (usize, &mut [f64], &mut [f64], &mut [f64])| {
        run_range(m, batch, first, ll, c, q)
    };
    #[cfg(feature = "ndarray")]
    {
        use rayon::prelude::*;
        if jobs.len() > 1 {
            jobs.into_par_iter().for_each(run);
        } else {
            jobs.into_iter().for_each(run);
        }
    }
    #[cfg(not(feature = "ndarray"))]
    jobs.into_iter().for_each(run);
    HostResult {
        log_likelihood,
        counts,
        posteriors,
    }
}

/// Sequences `first..first + ll.len()`, writing into their slices of the outputs.
fn run_range(
    m: &HostModel,
    batch: &HostBatch,
    first: usize,
    ll: &mut [f64],
    counts: &mut [f64],
    posteriors: &mut [f64],
) {
    let (p, ts) = (m.n_params(), batch.len * m.s);
    let mut scratch = Scratch::new(m.s, batch.len);
    for (k, out) in ll.iter_mut().enumerate() {
        let x = batch.sequence(first + k);
        let mut g = (!counts.is_empty()).then(|| &mut counts[k * p..(k + 1) * p]);
        let mut gamma =
            (!posteriors.is_empty()).then(|| &mut posteriors[k * ts..k * ts + x.len() * m.s]);
        let fast = match m.s {
            1 => scaled::<1>,
            2 => scaled::<2>,
            3 => scaled::<3>,
            4 => scaled::<4>,
            5 => scaled::<5>,
            6 => scaled::<6>,
            7 => scaled::<7>,
            8 => scaled::<8>,
            _ => scaled::<0>,
        };
        *out = match fast(m, x, &mut scratch, g.as_deref_mut(), gamma.as_deref_mut()) {
            Some(v) => v,
            None => log_space(m, x, g, gamma),
        };
    }
}

/// The scaled-probability forward-backward of one sequence; `None` if a scale factor
/// underflows or a count is not finite (the caller then uses [`log_space`]). `S` is the
/// number of states as a compile-time constant, or 0 to read it from `m`.
fn scaled<const S: usize>(
    m: &HostModel,
    x: &[i64],
    sc: &mut Scratch,
    g: Option<&mut [f64]>,
    gamma: Option<&mut [f64]>,
) -> Option<f64> {
    let s = if S == 0 { m.s } else { S };
    let n = x.len();
    let ok = |c: f64| c >= f64::MIN_POSITIVE && c.is_finite();
    let alpha = &mut sc.alpha[..n * s];
    let scale = &mut sc.scale[..n];

    // Forward.
    let x0 = m.symbol(x[0]);
    let b0 = &m.bt[x0 * s..(x0 + 1) * s];
    let mut c = 0.0;
    for i in 0..s {
        alpha[i] = m.pi[i] * b0[i];
        c += alpha[i];
    }
    if !ok(c) {
        return None;
    }
    alpha[..s].iter_mut().for_each(|a| *a /= c);
    scale[0] = c;
    let mut log_ll = m.pi_shift + m.shift[x0];
    let mut product = c;
    for t in 1..n {
        let (done, next) = alpha.split_at_mut(t * s);
        let prev = &done[(t - 1) * s..];
        let cur = &mut next[..s];
        let xt = m.symbol(x[t]);
        cur.fill(0.0);
        for (i, &ai) in prev.iter().enumerate() {
            for (c, &aij) in cur.iter_mut().zip(&m.a[i * s..(i + 1) * s]) {
                *c += ai * aij;
            }
        }
        let mut c = 0.0;
        for (v, &b) in cur.iter_mut().zip(&m.bt[xt * s..(xt + 1) * s]) {
            *v *= b;
            c += *v;
        }
        if !ok(c) {
            return None;
        }
        let inv = 1.0 / c;
        cur.iter_mut().for_each(|v| *v *= inv);
        scale[t] = c;
        log_ll += m.shift[xt];
        product *= c;
        if !(1e-100..=1e100).contains(&product) {
            log_ll += product.ln();
            product = 1.0;
        }
    }
    log_ll += product.ln();
    if g.is_none() && gamma.is_none() {
        return Some(log_ll);
    }

    // Backward, accumulating the expected counts.
    let (e, p) = (m.e, m.n_params());
    let mut local = [0.0; 0];
    let g = g.unwrap_or(&mut local[..]);
    let has_g = !g.is_empty();
    g.fill(0.0);
    let mut gamma = gamma;
    let beta = &mut sc.beta;
    let beta_next = &mut sc.beta_next;
    let v = &mut sc.v;
    let xi = &mut sc.xi;
    beta.fill(1.0);
    xi.fill(0.0);
    let last = m.symbol(x[n - 1]);
    for i in 0..s {
        let gam = alpha[(n - 1) * s + i];
        if has_g {
            g[s + s * s + i * e + last] += gam;
        }
        if let Some(q) = gamma.as_deref_mut() {
            q[(n - 1) * s + i] = gam;
        }
    }
    for t in (0..n - 1).rev() {
        let x1 = m.symbol(x[t + 1]);
        let inv = 1.0 / scale[t + 1];
        for ((vj, &bj), &betaj) in v
            .iter_mut()
            .zip(&m.bt[x1 * s..(x1 + 1) * s])
            .zip(beta.iter())
        {
            *vj = bj * betaj * inv;
        }
        let at = &alpha[t * s..(t + 1) * s];
        for i in 0..s {
            let row = &m.a[i * s..(i + 1) * s];
            let mut acc = 0.0;
            if has_g {
                let ai = at[i];
                for ((xij, &aij), &vj) in xi[i * s..(i + 1) * s].iter_mut().zip(row).zip(v.iter()) {
                    *xij += ai * vj;
                    acc += aij * vj;
                }
            } else {
                acc = row.iter().zip(v.iter()).map(|(a, b)| a * b).sum();
            }
            beta_next[i] = acc;
        }
        std::mem::swap(beta, beta_next);
        let xt = m.symbol(x[t]);
        for i in 0..s {
            let gam = at[i] * beta[i];
            if has_g {
                g[s + s * s + i * e + xt] += gam;
            }
            if let Some(q) = gamma.as_deref_mut() {
                q[t * s + i] = gam;
            }
        }
    }
    if has_g {
        for i in 0..s {
            g[i] = alpha[i] * beta[i];
        }
        for (gij, (&xij, &aij)) in g[s..s + s * s].iter_mut().zip(xi.iter().zip(&m.a)) {
            *gij = xij * aij;
        }
        if !g[..p].iter().all(|v| v.is_finite()) {
            return None;
        }
    }
    if gamma.is_some_and(|q| !q.iter().all(|v| v.is_finite())) {
        return None;
    }
    Some(log_ll)
}

/// The exact log-space forward-backward of one sequence (the fallback of [`scaled`]).
fn log_space(m: &HostModel, x: &[i64], g: Option<&mut [f64]>, gamma: Option<&mut [f64]>) -> f64 {
    let (s, e, n) = (m.s, m.e, x.len());
    let sym: Vec<usize> = x.iter().map(|&v| m.symbol(v)).collect();
    let lb = |i: usize, t: usize| m.log_b[i * e + sym[t]];
    let mut alpha = vec![0.0; n * s];
    for i in 0..s {
        alpha[i] = m.log_pi[i] + lb(i, 0);
    }
    for t in 1..n {
        for j in 0..s {
            let prev = &alpha[(t - 1) * s..t * s];
            let v = log_sum_exp((0..s).map(|i| prev[i] + m.log_a[i * s + j]));
            alpha[t * s + j] = v + lb(j, t);
        }
    }
    let ll = log_sum_exp(alpha[(n - 1) * s..].iter().cloned());
    if g.is_none() && gamma.is_none() {
        return ll;
    }
    let mut beta = vec![0.0; n * s];
    for t in (0..n - 1).rev() {
        for i in 0..s {
            let next = &beta[(t + 1) * s..(t + 2) * s];
            beta[t * s + i] =
                log_sum_exp((0..s).map(|j| m.log_a[i * s + j] + lb(j, t + 1) + next[j]));
        }
    }
    let post = |t: usize, i: usize| (alpha[t * s + i] + beta[t * s + i] - ll).exp();
    if let Some(q) = gamma {
        for t in 0..n {
            for i in 0..s {
                q[t * s + i] = post(t, i);
            }
        }
    }
    if let Some(g) = g {
        g.fill(0.0);
        for i in 0..s {
            g[i] = post(0, i);
        }
        for t in 0..n {
            for i in 0..s {
                g[s + s * s + i * e + sym[t]] += post(t, i);
                if t + 1 < n {
                    for j in 0..s {
                        g[s + i * s + j] += (alpha[t * s + i]
                            + m.log_a[i * s + j]
                            + lb(j, t + 1)
                            + beta[(t + 1) * s + j]
                            - ll)
                            .exp();
                    }
                }
            }
        }
    }
    ll
}

/// Viterbi paths (`[B, T]`, `-1` at padding) and their joint log-probabilities `[B]`, in log
/// space; ties go to the lowest state index.
pub(crate) fn viterbi(m: &HostModel, batch: &HostBatch) -> (Vec<i64>, Vec<f64>) {
    let (s, e, len) = (m.s, m.e, batch.len);
    let mut states = vec![-1_i64; batch.batch * len];
    let mut log_prob = vec![0.0; batch.batch];
    let mut delta = vec![0.0; s];
    let mut next = vec![0.0; s];
    let mut back = vec![0_usize; len * s];
    for b in 0..batch.batch {
        let x = batch.sequence(b);
        let n = x.len();
        for i in 0..s {
            delta[i] = m.log_pi[i] + m.log_b[i * e + m.symbol(x[0])];
        }
        for t in 1..n {
            let xt = m.symbol(x[t]);
            for j in 0..s {
                let (mut best, mut arg) = (f64::NEG_INFINITY, 0);
                for i in 0..s {
                    let v = delta[i] + m.log_a[i * s + j];
                    if v > best {
                        (best, arg) = (v, i);
                    }
                }
                next[j] = best + m.log_b[j * e + xt];
                back[t * s + j] = arg;
            }
            std::mem::swap(&mut delta, &mut next);
        }
        let (mut best, mut z) = (f64::NEG_INFINITY, 0);
        for (i, &d) in delta.iter().enumerate() {
            if d > best {
                (best, z) = (d, i);
            }
        }
        log_prob[b] = best;
        let row = &mut states[b * len..b * len + n];
        row[n - 1] = z as i64;
        for t in (1..n).rev() {
            z = back[t * s + z];
            row[t - 1] = z as i64;
        }
    }
    (states, log_prob)
}

//! bpnet-lite 1.1.0's evaluation measures (`bpnetlite/performance.py`:
//! `calculate_performance_measures`, with `MNLLLoss` from `bpnetlite/losses.py`), ported to
//! plain Rust on `f64`, for scoring predictions the way bpnet-lite reports them.
//!
//! Tensors are flat row-major slices with explicit shapes: profiles `[n, strands, len]`
//! (`n` windows), predicted log counts `[n, n_outputs]`.
//!
//! What bpnet-lite computes, and so what these functions compute (callers take note):
//!
//! * Profile measures are per window **and per strand**: the logits are log-softmaxed over
//!   the positions of each strand separately (not jointly over strands as in the training
//!   loss) — [`calculate_performance_measures`].
//! * `profile_mnll` ([`mnll`]) always uses the raw true counts (bpnet-lite passes
//!   `smooth_true=False` for it). With `smooth_predictions` it scores `ln` of the smoothed
//!   probabilities, which are not renormalised (mass smoothed past the ends is lost).
//! * `profile_jsd` ([`jensen_shannon_distance`]) is, despite its name, the Jensen–Shannon
//!   **divergence** in nats (no square root, in `[0, ln 2]`), unlike
//!   `common::metrics::jensen_shannon_distance` (scipy's distance). It is **NaN** when the true
//!   track sums to 0 (all-zero strand), smoothed or not.
//! * `profile_pearson` / `profile_spearman` compare predicted probabilities with the (optionally
//!   smoothed) true counts; [`pearson`] is **0** (not NaN) when either side is constant, e.g.
//!   for an all-zero strand or a uniform prediction.
//! * [`spearman`] ranks with ties broken by position (a stable sort), which is what
//!   bpnet-lite's docstring promises. bpnet-lite itself calls `torch.argsort()` with the
//!   default `stable=False`, which on CPU (PyTorch 2.x) is **not** stable for rows longer than
//!   16: tied elements come out in an implementation- and CPU-dependent order. Base-resolution
//!   counts are full of ties, so bpnet-lite's own `profile_spearman` is not reproducible: on
//!   the reference case it differs from the stable-rank value by up to 0.17 on sparse tracks
//!   without smoothing, and by up to 0.35 (0.78 with smoothed predictions) on all-zero true
//!   strands; with `smooth_true` the other tracks agree to 2e-4 (smoothing removes the count
//!   ties), except a uniform prediction (all predictions tied: 0.07). On an all-zero true
//!   strand Spearman is not 0 but the correlation of the predicted ranks with position —
//!   meaningless; callers may want to leave such strands out, like the JSD NaNs.
//! * Smoothing can make values equal up to rounding (mirror-symmetric count patterns under
//!   the symmetric kernel; the flat interior of a smoothed uniform prediction), and their
//!   rank order then depends on summation order: Spearman on smoothed tracks can differ from
//!   bpnet-lite's by ~1e-4 per such pair (up to 1.3e-3 on a smoothed uniform prediction, where
//!   it is noise in both).
//! * Count measures (`count_pearson`, `count_spearman`, `count_mse`) are over windows, one per
//!   predicted-count column, against `ln(1 + Σ_strands Σ_positions counts)`.
//!
//! # Precision
//!
//! Everything is computed in `f64` (inputs are `f32`, as a model produces them). bpnet-lite
//! computes in float32 as used in practice: its inputs are float32 tensors, the smoothing
//! kernel is built in float32, `batched_smoothed_function` stores its results in a float32
//! buffer, and `spearman_corr` casts its ranks to float32. On the reference case
//! (`examples/bpnet/testdata/measures_reference.json`: 6 windows × 2 strands × 200 bp, from
//! `benches/peers/bpnet_measures_reference.py`) our values differ from bpnet-lite's float32
//! ones (with stable ranks) by at most 9.1e-7 relative for MNLL (3.1e-4 absolute on values of
//! 100–620), 1.3e-6 relative / 3e-8 absolute for JSD, 1.7e-7 absolute for the profile
//! Pearson correlations and 7e-8 for the count measures; Spearman by at most 3e-8, except
//! where rounding orders values that are equal up to rounding (see above: 1.5e-4 on one
//! smoothed-count track, 0.04 on the smoothed uniform prediction). Against bpnet-lite run on
//! float64 tensors (its float32 casts made float64, stable ranks) they agree to 7.3e-15
//! relative, Spearman on those same rounding ties aside.

use std::cmp::Ordering;

/// `ln |Γ(x)|`: the `libm` crate's port of musl's `lgamma` (the algorithm of glibc's, and so
/// of PyTorch's CPU `torch.lgamma`, which bpnet-lite's `MNLLLoss` calls).
use libm::lgamma;

/// Options of [`calculate_performance_measures`]: bpnet-lite's `smooth_true`,
/// `smooth_predictions`, `kernel_sigma` and `kernel_width`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasureOptions {
    /// Smooth the true counts (for JSD and the profile correlations, never for MNLL).
    pub smooth_true: bool,
    /// Smooth the predicted probabilities (for all four profile measures).
    pub smooth_predictions: bool,
    /// Standard deviation of the Gaussian kernel, in positions (bpnet-lite default 7).
    pub sigma: f64,
    /// Width of the kernel, in positions (bpnet-lite default 81).
    pub width: usize,
}

impl Default for MeasureOptions {
    /// bpnet-lite's defaults: no smoothing, `sigma` 7, `width` 81.
    fn default() -> Self {
        MeasureOptions {
            smooth_true: false,
            smooth_predictions: false,
            sigma: 7.0,
            width: 81,
        }
    }
}

/// The four profile measures of one strand track of one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProfileMeasures {
    /// Multinomial negative log-likelihood of the true counts ([`mnll`]).
    pub mnll: f64,
    /// Jensen–Shannon divergence in nats ([`jensen_shannon_distance`]); NaN for an all-zero
    /// true track.
    pub jsd: f64,
    /// Pearson correlation of predicted probabilities and true counts ([`pearson`]).
    pub pearson: f64,
    /// Spearman correlation (stable ranks) of the same ([`spearman`]).
    pub spearman: f64,
}

/// Output of [`calculate_performance_measures`].
///
/// Profile vectors have `n * strands` entries, window-major (`[window * strands + strand]`),
/// bpnet-lite's `(n, strands)` tensors; count vectors have one entry per predicted-count
/// column, bpnet-lite's `(n_outputs,)` tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Measures {
    /// Number of windows.
    pub n: usize,
    /// Number of strands per window.
    pub strands: usize,
    /// `profile_mnll` per (window, strand).
    pub profile_mnll: Vec<f64>,
    /// `profile_jsd` per (window, strand); NaN where the true track is all zero.
    pub profile_jsd: Vec<f64>,
    /// `profile_pearson` per (window, strand).
    pub profile_pearson: Vec<f64>,
    /// `profile_spearman` per (window, strand).
    pub profile_spearman: Vec<f64>,
    /// `count_pearson` per predicted-count column, over windows.
    pub count_pearson: Vec<f64>,
    /// `count_spearman` per predicted-count column, over windows.
    pub count_spearman: Vec<f64>,
    /// `count_mse` per predicted-count column: mean over windows of
    /// `(pred_log_count - ln(1 + total))²`.
    pub count_mse: Vec<f64>,
    /// Number of predicted-count columns.
    pub n_outputs: usize,
    /// The predicted log counts `[n, n_outputs]` (widened to `f64`), kept for
    /// [`Measures::count_summary`].
    pub pred_log_counts: Vec<f64>,
    /// The true log counts `ln(1 + Σ_strands Σ_positions counts)` per window.
    pub true_log_counts: Vec<f64>,
}

/// NaN-ignoring means of the profile measures over the tracks of some windows
/// ([`Measures::profile_summary`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProfileSummary {
    /// Mean `profile_mnll`.
    pub mnll: f64,
    /// Mean `profile_jsd` (all-zero true strands, NaN, left out).
    pub jsd: f64,
    /// Mean `profile_pearson`.
    pub pearson: f64,
    /// Mean `profile_spearman`.
    pub spearman: f64,
    /// Number of (window, strand) tracks summarised.
    pub tracks: usize,
    /// NaNs left out of each mean, in the order mnll, jsd, pearson, spearman.
    pub nan: [usize; 4],
}

/// The count measures over some windows ([`Measures::count_summary`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CountSummary {
    /// `count_pearson` over the windows.
    pub pearson: f64,
    /// `count_spearman` over the windows.
    pub spearman: f64,
    /// `count_mse` over the windows.
    pub mse: f64,
}

impl Measures {
    /// The four profile measures of one (window, strand).
    #[allow(dead_code)] // API for callers; the bpnet example reads summaries only.
    pub fn profile(&self, window: usize, strand: usize) -> ProfileMeasures {
        assert!(
            window < self.n && strand < self.strands,
            "window or strand out of range"
        );
        let i = window * self.strands + strand;
        ProfileMeasures {
            mnll: self.profile_mnll[i],
            jsd: self.profile_jsd[i],
            pearson: self.profile_pearson[i],
            spearman: self.profile_spearman[i],
        }
    }

    /// Means of the profile measures over both strands of the windows whose `windows` entry
    /// is true (e.g. peaks), NaNs left out and counted ([`nan_mean`]). Per-track values do
    /// not depend on the other windows, so this is the mean of bpnet-lite's output on those
    /// windows. (bpnet-lite's own training log instead averages `nan_to_num(...)`, counting
    /// NaN as 0.)
    ///
    /// # Panics
    /// If `windows.len() != n`.
    pub fn profile_summary(&self, windows: &[bool]) -> ProfileSummary {
        let pick = |values: &[f64]| nan_mean(&select_windows(values, self.n, windows));
        let (mnll, jsd) = (pick(&self.profile_mnll), pick(&self.profile_jsd));
        let (pearson, spearman) = (pick(&self.profile_pearson), pick(&self.profile_spearman));
        ProfileSummary {
            mnll: mnll.mean,
            jsd: jsd.mean,
            pearson: pearson.mean,
            spearman: spearman.mean,
            tracks: mnll.count + mnll.nan,
            nan: [mnll.nan, jsd.nan, pearson.nan, spearman.nan],
        }
    }

    /// The count measures of the first (in bpnet-lite's models the only) predicted-count
    /// column over the windows whose `windows` entry is true, as bpnet-lite computes them
    /// when called on those windows only.
    ///
    /// # Panics
    /// If `windows.len() != n` or there is no predicted-count column.
    pub fn count_summary(&self, windows: &[bool]) -> CountSummary {
        assert!(self.n_outputs > 0, "no predicted-count column");
        let truth = select_windows(&self.true_log_counts, self.n, windows);
        let pred: Vec<f64> = select_windows(&self.pred_log_counts, self.n, windows)
            .into_iter()
            .step_by(self.n_outputs)
            .collect();
        let (pearson, spearman, mse) = count_measures(&pred, &truth);
        CountSummary {
            pearson,
            spearman,
            mse,
        }
    }
}

/// A mean that leaves NaNs out ([`nan_mean`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NanMean {
    /// Mean of the non-NaN values; NaN when there are none.
    pub mean: f64,
    /// Number of values averaged.
    pub count: usize,
    /// Number of NaNs left out.
    pub nan: usize,
}

/// Mean of `values` ignoring NaNs (as `torch.nanmean`; infinities are kept), with how many
/// were averaged and how many NaNs were left out — e.g. for `profile_jsd`, NaN on all-zero
/// strands.
pub fn nan_mean(values: &[f64]) -> NanMean {
    let (mut sum, mut count) = (0.0, 0usize);
    for &v in values.iter().filter(|v| !v.is_nan()) {
        sum += v;
        count += 1;
    }
    NanMean {
        mean: if count == 0 {
            f64::NAN
        } else {
            sum / count as f64
        },
        count,
        nan: values.len() - count,
    }
}

/// The windows of a flat `[n, ...]` array whose `keep` entry is true, in order (e.g. to
/// score peaks only: apply it to logits, counts and predicted log counts alike, or use
/// [`calculate_performance_measures_masked`]).
///
/// # Panics
/// If `keep.len() != n` or `data.len()` is not a multiple of `n`.
pub fn select_windows<T: Copy>(data: &[T], n: usize, keep: &[bool]) -> Vec<T> {
    assert_eq!(keep.len(), n, "keep must have one entry per window");
    if n == 0 {
        return Vec::new();
    }
    assert_eq!(data.len() % n, 0, "data length is not a multiple of n");
    let per = data.len() / n;
    if per == 0 {
        return Vec::new();
    }
    data.chunks_exact(per)
        .zip(keep)
        .filter(|(_, k)| **k)
        .flat_map(|(w, _)| w.iter().copied())
        .collect()
}

/// The normalised Gaussian kernel of bpnet-lite's `smooth_gaussian1d`:
/// `k[j] ∝ exp(-((j - (width - 1) / 2) / sigma)² / 2)`, `j = 0..width`, summing to 1.
///
/// # Panics
/// If `width == 0` or `sigma` is not positive.
pub fn gaussian_kernel(sigma: f64, width: usize) -> Vec<f64> {
    assert!(width > 0, "kernel width must be positive");
    assert!(sigma > 0.0, "kernel sigma must be positive");
    let mean = (width as f64 - 1.0) / 2.0;
    let mut kernel: Vec<f64> = (0..width)
        .map(|j| {
            let z = (j as f64 - mean) / sigma;
            (-0.5 * (z * z)).exp()
        })
        .collect();
    let sum: f64 = kernel.iter().sum();
    for k in &mut kernel {
        *k /= sum;
    }
    kernel
}

/// Gaussian smoothing of one track, exactly bpnet-lite's `smooth_gaussian1d`: correlation
/// with [`gaussian_kernel`] under `conv1d(padding='same')` with zeros outside the track, so
/// `out[i] = Σ_j k[j] · x[i + j - (width - 1) / 2]` (integer division). For an even `width`
/// this is PyTorch's convention of padding one more zero on the right than on the left. Mass
/// within `width / 2` of an end is partly lost; away from the ends the sum is preserved.
///
/// # Panics
/// As [`gaussian_kernel`].
pub fn smooth_gaussian(x: &[f64], sigma: f64, width: usize) -> Vec<f64> {
    let kernel = gaussian_kernel(sigma, width);
    let left = (width - 1) / 2;
    (0..x.len())
        .map(|i| {
            let mut acc = 0.0;
            for (j, &k) in kernel.iter().enumerate() {
                if let Some(&v) = (i + j).checked_sub(left).and_then(|p| x.get(p)) {
                    acc += k * v;
                }
            }
            acc
        })
        .collect()
}

/// `log_softmax` of one track: `x - max(x) - ln Σ exp(x - max(x))` (as PyTorch).
pub fn log_softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &v| {
        if m.is_nan() || v.is_nan() {
            f64::NAN
        } else {
            m.max(v)
        }
    });
    let lse = logits.iter().map(|&v| (v - max).exp()).sum::<f64>().ln();
    logits.iter().map(|&v| (v - max) - lse).collect()
}

/// Multinomial negative log-likelihood of `counts` under log-probabilities `logps`, as
/// bpnet-lite's `MNLLLoss`: `-lgamma(N + 1) + Σ lgamma(c + 1) - Σ c · logp` with
/// `N = Σ c`. `logps` are used as given (not renormalised). 0 for an all-zero track; NaN
/// where a count of 0 meets a log-probability of `-inf` (`0 · -inf`), as in PyTorch.
///
/// # Panics
/// If the lengths differ.
pub fn mnll(logps: &[f64], counts: &[f64]) -> f64 {
    assert_eq!(
        logps.len(),
        counts.len(),
        "logps and counts differ in length"
    );
    let total: f64 = counts.iter().sum();
    let log_prod_fact: f64 = counts.iter().map(|&c| lgamma(c + 1.0)).sum();
    let log_prod_exp: f64 = counts.iter().zip(logps).map(|(&c, &lp)| c * lp).sum();
    -lgamma(total + 1.0) + log_prod_fact - log_prod_exp
}

/// bpnet-lite's `jensen_shannon_distance`, which is the Jensen–Shannon **divergence** in nats
/// (no square root; in `[0, ln 2]`) between `exp(logps)` and `counts`, each renormalised to
/// sum to 1.
///
/// Terms where a probability or the midpoint is exactly 0 contribute 0. **NaN** when either
/// side sums to 0 (an all-zero count track), as bpnet-lite (`0 / 0` renormalisation, and its
/// `!= 0` test lets the NaNs through).
///
/// # Panics
/// If the lengths differ.
pub fn jensen_shannon_distance(logps: &[f64], counts: &[f64]) -> f64 {
    assert_eq!(
        logps.len(),
        counts.len(),
        "logps and counts differ in length"
    );
    let probs: Vec<f64> = logps.iter().map(|&v| v.exp()).collect();
    let probs_sum: f64 = probs.iter().sum();
    let counts_sum: f64 = counts.iter().sum();
    let (mut kl_pred, mut kl_true) = (0.0, 0.0);
    for (&p, &c) in probs.iter().zip(counts) {
        let p = p / probs_sum;
        let q = c / counts_sum;
        let mid = 0.5 * (p + q);
        kl_pred += kl_term(p, mid);
        kl_true += kl_term(q, mid);
    }
    0.5 * (kl_pred + kl_true)
}

/// One term of bpnet-lite's `_kl_divergence`: `p · ln(p / m)`, with the quotient replaced by
/// 1 where `p` or `m` is 0 (NaN compares unequal to 0, so NaN propagates).
fn kl_term(p: f64, m: f64) -> f64 {
    let quot = if p != 0.0 && m != 0.0 { p / m } else { 1.0 };
    p * quot.ln()
}

/// Pearson correlation of `a` and `b`, as bpnet-lite's `pearson_corr`: 0 where the
/// denominator `sqrt(Σ(a - ā)² · Σ(b - b̄)²)` is 0, e.g. when either side is constant. A
/// constant input has its mean taken as its value, so its deviations are exactly 0 (in
/// PyTorch a float mean of a constant that is not exact would leave rounding noise and a
/// meaningless correlation; it is exact for the uniform profiles of the reference case).
/// NaN inputs give NaN.
///
/// # Panics
/// If the lengths differ.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "inputs differ in length");
    let (mean_a, mean_b) = (mean(a), mean(b));
    let (mut cov, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (da, db) = (x - mean_a, y - mean_b);
        cov += da * db;
        var_a += da * da;
        var_b += db * db;
    }
    let denom = (var_a * var_b).sqrt();
    if denom != 0.0 { cov / denom } else { 0.0 }
}

/// Mean (NaN when empty); exactly the common value when all values are equal.
fn mean(x: &[f64]) -> f64 {
    match x.first() {
        Some(&first) if x.iter().all(|&v| v == first) => first,
        _ => x.iter().sum::<f64>() / x.len() as f64,
    }
}

/// Spearman correlation: [`pearson`] of the [`ranks`] of `a` and `b` (ties broken by
/// position, as bpnet-lite's docstring says; see the module docs for what bpnet-lite's
/// unstable `argsort` does instead). An all-tied side (a uniform predicted profile, constant
/// predicted counts, an all-zero true strand) is ranked by position, so the result is the
/// other side's correlation with position, not 0.
///
/// # Panics
/// If the lengths differ.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// Ranks `0..len` of the values, `argsort().argsort()` with a stable sort: equal values are
/// ranked in order of position, NaNs rank above everything (as PyTorch sorts them), `-0.0`
/// equals `0.0`.
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&i, &j| nan_last(x[i], x[j]));
    let mut ranks = vec![0.0; x.len()];
    for (rank, &i) in order.iter().enumerate() {
        ranks[i] = rank as f64;
    }
    ranks
}

/// Ascending order with NaN after everything and NaNs equal to each other.
fn nan_last(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// The profile measures of one strand track: `logps` the log-softmaxed predictions,
/// `counts` the true counts, both of the track's length. Follows bpnet-lite's
/// `batched_smoothed_function`: with `smooth_predictions` the probabilities `exp(logps)` are
/// smoothed (and logged again for MNLL and JSD); with `smooth_true` the counts are smoothed
/// for JSD and the correlations, never for MNLL.
///
/// # Panics
/// If the lengths differ, or as [`gaussian_kernel`] when smoothing.
pub fn profile_measures(
    logps: &[f64],
    counts: &[f64],
    options: &MeasureOptions,
) -> ProfileMeasures {
    assert_eq!(
        logps.len(),
        counts.len(),
        "logps and counts differ in length"
    );
    let probs: Vec<f64> = logps.iter().map(|&v| v.exp()).collect();
    let (pred_logps, pred_probs) = if options.smooth_predictions {
        let smoothed = smooth_gaussian(&probs, options.sigma, options.width);
        (smoothed.iter().map(|&v| v.ln()).collect(), smoothed)
    } else {
        (logps.to_vec(), probs)
    };
    let smoothed_counts;
    let compare_counts = if options.smooth_true {
        smoothed_counts = smooth_gaussian(counts, options.sigma, options.width);
        &smoothed_counts
    } else {
        counts
    };
    ProfileMeasures {
        mnll: mnll(&pred_logps, counts),
        jsd: jensen_shannon_distance(&pred_logps, compare_counts),
        pearson: pearson(&pred_probs, compare_counts),
        spearman: spearman(&pred_probs, compare_counts),
    }
}

/// bpnet-lite's `calculate_performance_measures(logps, true_counts, pred_log_counts,
/// kernel_sigma, kernel_width, smooth_true, smooth_predictions)` with all measures.
///
/// `logits` and `counts` are `[n, strands, len]`, `pred_log_counts` `[n, n_outputs]` (row
/// major; `n_outputs = pred_log_counts.len() / n`, usually 1). Each strand's logits are
/// log-softmaxed over its positions, then scored by [`profile_measures`]; the count measures
/// compare each predicted-count column over the windows with `ln(1 + Σ_strands Σ_positions
/// counts)`. With `n == 0` the count vectors are empty. For means over a subset of windows
/// (peaks) see [`Measures::profile_summary`] and [`Measures::count_summary`].
///
/// # Panics
/// If a slice length does not match the shape, or as [`gaussian_kernel`] when smoothing.
pub fn calculate_performance_measures(
    logits: &[f32],
    counts: &[f32],
    pred_log_counts: &[f32],
    n: usize,
    strands: usize,
    len: usize,
    options: &MeasureOptions,
) -> Measures {
    let track_count = n * strands;
    assert_eq!(
        logits.len(),
        track_count * len,
        "logits is not [n, strands, len]"
    );
    assert_eq!(
        counts.len(),
        track_count * len,
        "counts is not [n, strands, len]"
    );
    let n_outputs = if n == 0 {
        assert!(
            pred_log_counts.is_empty(),
            "pred_log_counts given for no windows"
        );
        0
    } else {
        assert_eq!(
            pred_log_counts.len() % n,
            0,
            "pred_log_counts is not [n, n_outputs]"
        );
        pred_log_counts.len() / n
    };

    let widen = |x: &[f32]| x.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
    let mut out = Measures {
        n,
        strands,
        profile_mnll: Vec::with_capacity(track_count),
        profile_jsd: Vec::with_capacity(track_count),
        profile_pearson: Vec::with_capacity(track_count),
        profile_spearman: Vec::with_capacity(track_count),
        count_pearson: Vec::with_capacity(n_outputs),
        count_spearman: Vec::with_capacity(n_outputs),
        count_mse: Vec::with_capacity(n_outputs),
        n_outputs,
        pred_log_counts: widen(pred_log_counts),
        true_log_counts: Vec::with_capacity(n),
    };
    for t in 0..track_count {
        let range = t * len..(t + 1) * len;
        let logps = log_softmax(&widen(&logits[range.clone()]));
        let m = profile_measures(&logps, &widen(&counts[range]), options);
        out.profile_mnll.push(m.mnll);
        out.profile_jsd.push(m.jsd);
        out.profile_pearson.push(m.pearson);
        out.profile_spearman.push(m.spearman);
    }

    let window_len = strands * len;
    out.true_log_counts = (0..n)
        .map(|w| {
            let total: f64 = widen(&counts[w * window_len..(w + 1) * window_len])
                .iter()
                .sum();
            (total + 1.0).ln()
        })
        .collect();
    for o in 0..n_outputs {
        let pred: Vec<f64> = (0..n)
            .map(|w| out.pred_log_counts[w * n_outputs + o])
            .collect();
        let (pearson, spearman, mse) = count_measures(&pred, &out.true_log_counts);
        out.count_pearson.push(pearson);
        out.count_spearman.push(spearman);
        out.count_mse.push(mse);
    }
    out
}

/// `(count_pearson, count_spearman, count_mse)` of predicted against true log counts over
/// windows; the MSE is NaN for no windows (the correlations are then 0, as in PyTorch).
fn count_measures(pred: &[f64], truth: &[f64]) -> (f64, f64, f64) {
    let squared: f64 = pred.iter().zip(truth).map(|(p, t)| (p - t) * (p - t)).sum();
    (
        pearson(pred, truth),
        spearman(pred, truth),
        squared / pred.len() as f64,
    )
}

/// [`calculate_performance_measures`] on the windows whose `keep` entry is true (e.g. peaks
/// only), as bpnet-lite called on `logits[keep]`, `counts[keep]`, `pred_log_counts[keep]`: the
/// count measures are then over the kept windows only. `Measures::n` is the number kept.
///
/// # Panics
/// If `keep.len() != n`, or as [`calculate_performance_measures`].
#[allow(clippy::too_many_arguments)]
#[allow(dead_code)] // API for callers; the bpnet example uses the summaries' masks instead.
pub fn calculate_performance_measures_masked(
    logits: &[f32],
    counts: &[f32],
    pred_log_counts: &[f32],
    n: usize,
    strands: usize,
    len: usize,
    keep: &[bool],
    options: &MeasureOptions,
) -> Measures {
    assert_eq!(keep.len(), n, "keep must have one entry per window");
    let kept = keep.iter().filter(|&&k| k).count();
    let pred = select_windows(pred_log_counts, n, keep);
    calculate_performance_measures(
        &select_windows(logits, n, keep),
        &select_windows(counts, n, keep),
        &pred,
        kept,
        strands,
        len,
        options,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::Value;

    const REFERENCE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/bpnet/testdata/measures_reference.json"
    );

    fn reference() -> Value {
        let text = std::fs::read_to_string(REFERENCE).unwrap_or_else(|e| {
            panic!("{REFERENCE}: {e} (benches/peers/bpnet_measures_reference.py)")
        });
        serde_json::from_str(&text).expect("reference JSON")
    }

    /// Numbers as the generator writes them: null is NaN, "inf"/"-inf" the infinities.
    fn numbers(v: &Value) -> Vec<f64> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| match x {
                Value::Null => f64::NAN,
                Value::String(s) if s == "inf" => f64::INFINITY,
                Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
                other => other.as_f64().expect("number"),
            })
            .collect()
    }

    fn floats(v: &Value) -> Vec<f32> {
        // f32 values written as f64 round-trip exactly.
        numbers(v).into_iter().map(|x| x as f32).collect()
    }

    fn usize_of(v: &Value) -> usize {
        v.as_u64().expect("integer") as usize
    }

    /// `|ours - theirs| <= rtol * |theirs| + atol`, NaN only against NaN.
    fn close(ours: f64, theirs: f64, rtol: f64, atol: f64) -> bool {
        if ours.is_nan() || theirs.is_nan() {
            return ours.is_nan() && theirs.is_nan();
        }
        ours == theirs || (ours - theirs).abs() <= rtol * theirs.abs() + atol
    }

    fn ours_by_name<'a>(m: &'a Measures, name: &str) -> &'a [f64] {
        match name {
            "profile_mnll" => &m.profile_mnll,
            "profile_jsd" => &m.profile_jsd,
            "profile_pearson" => &m.profile_pearson,
            "profile_spearman" => &m.profile_spearman,
            "count_pearson" => &m.count_pearson,
            "count_spearman" => &m.count_spearman,
            "count_mse" => &m.count_mse,
            _ => unreachable!(),
        }
    }

    /// The two arrays [`spearman`] ranks for profile track `t` of the reference inputs.
    fn spearman_inputs(
        logits: &[f32],
        counts: &[f32],
        t: usize,
        len: usize,
        options: &MeasureOptions,
    ) -> (Vec<f64>, Vec<f64>) {
        let range = t * len..(t + 1) * len;
        let widen = |x: &[f32]| x.iter().map(|&v| f64::from(v)).collect::<Vec<f64>>();
        let probs: Vec<f64> = log_softmax(&widen(&logits[range.clone()]))
            .iter()
            .map(|v| v.exp())
            .collect();
        let truth = widen(&counts[range]);
        let (sigma, width) = (options.sigma, options.width);
        (
            if options.smooth_predictions {
                smooth_gaussian(&probs, sigma, width)
            } else {
                probs
            },
            if options.smooth_true {
                smooth_gaussian(&truth, sigma, width)
            } else {
                truth
            },
        )
    }

    /// `Σ g(g - 1)` over the groups of non-zero values of `x` that are equal up to a relative
    /// `rel` (consecutive gaps in sorted order). Groups of exactly equal values count only
    /// when `exact_ties_fragile`: a smoothed value is a sum whose rounding depends on the
    /// summation order, so mathematically equal smoothed values (mirror-symmetric count
    /// patterns under the symmetric kernel) may come out equal on one side and 1 ulp apart
    /// on the other; exact zeros and equal unsmoothed inputs are equal on both sides.
    fn near_tie_pairs(x: &[f64], rel: f64, exact_ties_fragile: bool) -> f64 {
        let mut v: Vec<f64> = x.iter().copied().filter(|&v| v != 0.0).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let (mut total, mut start) = (0.0, 0);
        for i in 1..=v.len() {
            if i < v.len() && v[i] - v[i - 1] <= rel * v[i].abs() {
                continue;
            }
            let group = &v[start..i];
            if group.len() > 1 && (exact_ties_fragile || group[0] != group[group.len() - 1]) {
                let g = group.len() as f64;
                total += g * (g - 1.0);
            }
            start = i;
        }
        total
    }

    /// How far [`spearman`] of `pred` and `truth` (length L) can move when values equal up to
    /// rounding are ranked in another order. Ranks are a permutation of `0..L`; reordering a
    /// group of `g` near-equal values moves each of their ranks by at most `g - 1` and
    /// changes `Σ r·s` by at most `g(g - 1)(L - 1)/2`, and Spearman is `(Σ r·s - L·m²) /
    /// (L(L² - 1)/12)`, so the bound is `6 Σ_groups g(g - 1) / (L(L + 1))` (0.0003 for one
    /// swapped pair at L = 200; vacuous, ≥ 2, for a flat smoothed uniform prediction).
    fn spearman_slack(
        pred: &[f64],
        truth: &[f64],
        options: &MeasureOptions,
        rel: f64,
        pred_rounded: bool,
    ) -> f64 {
        let l = pred.len() as f64;
        let mut pairs = 0.0;
        if options.smooth_predictions || pred_rounded {
            pairs += near_tie_pairs(pred, rel, options.smooth_predictions);
        }
        if options.smooth_true {
            pairs += near_tie_pairs(truth, rel, true);
        }
        6.0 * pairs / (l * (l + 1.0))
    }

    /// Runs every case of `variant` in the reference file through
    /// [`calculate_performance_measures`] and checks each listed measure with
    /// `tolerance(measure) = (rtol, atol)`; Spearman gets [`spearman_slack`] (near-ties at
    /// relative `tie_rel`; `pred_rounded`: the reference's predicted probabilities carry
    /// float32 rounding even unsmoothed) added to `atol`. Returns the number of values compared.
    fn compare_variant(
        variant: &str,
        measures: &[&str],
        tolerance: impl Fn(&str) -> (f64, f64),
        tie_rel: f64,
        pred_rounded: bool,
    ) -> usize {
        let doc = reference();
        let shape = &doc["shape"];
        let (n, strands, len) = (
            usize_of(&shape["n"]),
            usize_of(&shape["strands"]),
            usize_of(&shape["len"]),
        );
        let logits = floats(&doc["inputs"]["logits"]);
        let counts = floats(&doc["inputs"]["counts"]);
        let mut compared = 0;
        let mut failures = Vec::new();
        for case in doc["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["variant"] == variant)
        {
            let pred = floats(&doc["inputs"][case["pred_log_counts"].as_str().unwrap()]);
            let o = &case["options"];
            let options = MeasureOptions {
                smooth_true: o["smooth_true"].as_bool().unwrap(),
                smooth_predictions: o["smooth_predictions"].as_bool().unwrap(),
                sigma: o["sigma"].as_f64().unwrap(),
                width: usize_of(&o["width"]),
            };
            let ours =
                calculate_performance_measures(&logits, &counts, &pred, n, strands, len, &options);
            assert_eq!(ours.count_mse.len(), usize_of(&case["n_outputs"]));
            for &name in measures {
                let theirs = numbers(&case[name]);
                let mine = ours_by_name(&ours, name);
                assert_eq!(mine.len(), theirs.len(), "{name}: length");
                for (i, (&a, &b)) in mine.iter().zip(&theirs).enumerate() {
                    let (rtol, mut atol) = tolerance(name);
                    if name == "profile_spearman" {
                        let (p, t) = spearman_inputs(&logits, &counts, i, len, &options);
                        atol += spearman_slack(&p, &t, &options, tie_rel, pred_rounded);
                    }
                    compared += 1;
                    if !close(a, b, rtol, atol) {
                        failures.push(format!(
                            "{} {variant} {name}[{i}]: ours {a:e}, bpnet-lite {b:e} (diff {:e}, rtol {rtol:e}, atol {atol:e})",
                            case["name"],
                            (a - b).abs()
                        ));
                    }
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} mismatches:\n{}",
            failures.len(),
            failures.join("\n")
        );
        compared
    }

    const ALL: [&str; 7] = [
        "profile_mnll",
        "profile_jsd",
        "profile_pearson",
        "profile_spearman",
        "count_pearson",
        "count_spearman",
        "count_mse",
    ];

    /// Against bpnet-lite run in float64 (float32 casts made float64, stable ranks).
    ///
    /// Tolerance: relative 1e-12 plus absolute 1e-14. The two sides evaluate the same f64
    /// formulas and differ only in summation order (PyTorch's vectorised/pairwise sums and
    /// conv1d vs our sequential loops) and `lgamma`/`exp`/`ln` last bits: a sum of at most
    /// L = 200 terms (81 for smoothing) has a relative error of at most ~L·ε ≈ 4e-14 of the
    /// sum of absolute values. MNLL (values ~1e2 from terms up to ~1e3) and the correlations
    /// (cancelling sums of deviations, values down to ~4e-3) can lose a digit or two to
    /// cancellation, hence 1e-12 relative; 1e-14 absolute covers values that are themselves
    /// at rounding level (a correlation or JSD near 0). Spearman on smoothed tracks also gets
    /// [`spearman_slack`] for values equal up to a relative 1e-12 (rounding of smoothed
    /// values is ≤ ~1e-14 relative).
    #[test]
    fn matches_bpnet_lite_in_float64() {
        let compared = compare_variant("f64_stable", &ALL, |_| (1e-12, 1e-14), 1e-12, false);
        assert_eq!(compared, 6 * (4 * 12 + 3) + 3);
    }

    /// Against bpnet-lite's own float32 arithmetic (unmodified except stable ranks).
    ///
    /// Tolerance: relative 2e-6 plus absolute 3e-7; MNLL absolute 5e-4 (values up to ~600,
    /// differences of float32 lgamma sums of ~1e3; float32 ε ≈ 6e-8). Spearman gets
    /// [`spearman_slack`] for values equal up to a relative 1e-5 (float32 smoothing with a
    /// float32 kernel: ≤ ~81·ε_f32 ≈ 5e-6), predicted probabilities included.
    #[test]
    fn matches_bpnet_lite_in_float32() {
        let tol = |name: &str| {
            if name == "profile_mnll" {
                (2e-6, 5e-4)
            } else {
                (2e-6, 3e-7)
            }
        };
        compare_variant("f32_stable", &ALL, tol, 1e-5, true);
    }

    /// Against the real, unmodified bpnet-lite (float32, `argsort()` unstable): everything
    /// but Spearman, whose tied ranks there come in an unspecified order (module docs).
    #[test]
    fn matches_unmodified_bpnet_lite_except_spearman() {
        let names = [
            "profile_mnll",
            "profile_jsd",
            "profile_pearson",
            "count_pearson",
            "count_mse",
        ];
        let tol = |name: &str| {
            if name == "profile_mnll" {
                (2e-6, 5e-4)
            } else {
                (2e-6, 3e-7)
            }
        };
        compare_variant("f32", &names, tol, 1e-5, true);
    }

    /// `smooth_gaussian1d` (float64 kernel), odd and even widths, width > length, width 1.
    /// Smoothed values are sums of ≤ 81 non-negative terms: relative error ≤ ~81·ε ≈ 1e-14,
    /// checked at relative 1e-12 (exact zeros must be exact).
    #[test]
    fn smoothing_matches_torch_same_padding() {
        let doc = reference();
        for t in doc["smooth"].as_array().unwrap() {
            let x = numbers(&t["x"]);
            let (sigma, width) = (t["sigma"].as_f64().unwrap(), usize_of(&t["width"]));
            let ours = smooth_gaussian(&x, sigma, width);
            let theirs = numbers(&t["out"]);
            assert_eq!(ours.len(), theirs.len());
            for (i, (&a, &b)) in ours.iter().zip(&theirs).enumerate() {
                assert!(
                    close(a, b, 1e-12, 0.0),
                    "sigma {sigma} width {width} [{i}]: {a:e} vs {b:e}"
                );
            }
        }
    }

    #[test]
    fn pearson_of_a_constant_is_zero() {
        assert_eq!(
            pearson(&[0.1; 7], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]),
            0.0
        );
        assert_eq!(pearson(&[1.0, 2.0, 3.0], &[1.0 / 3.0; 3]), 0.0);
        assert_eq!(pearson(&[0.0; 4], &[0.0; 4]), 0.0);
        assert_eq!(spearman(&[2.0; 4], &[1.0, 3.0, 2.0, 4.0]), 0.8); // ranks 0,1,2,3 vs 0,2,1,3
        assert!((pearson(&[1.0, 2.0, 4.0], &[3.0, 5.0, 9.0]) - 1.0).abs() < 1e-15);
        assert!((pearson(&[1.0, 2.0, 4.0], &[-1.0, -2.0, -4.0]) + 1.0).abs() < 1e-15);
        assert!(pearson(&[1.0, f64::NAN], &[1.0, 2.0]).is_nan());
    }

    #[test]
    fn ranks_break_ties_by_position_and_put_nan_last() {
        assert_eq!(ranks(&[1.0, 0.0, 1.0, 0.0]), [2.0, 0.0, 3.0, 1.0]);
        assert_eq!(ranks(&[f64::NAN, 0.0, -0.0, -1.0]), [3.0, 1.0, 2.0, 0.0]);
        // Hand-computed: ranks [0, 1, 2, 3] and [1, 0, 2, 3], Σd² = 2, 1 - 6·2/(4·15) = 0.8.
        assert!((spearman(&[5.0, 5.0, 6.0, 7.0], &[2.0, 1.0, 3.0, 4.0]) - 0.8).abs() < 1e-15);
    }

    #[test]
    fn jsd_of_identical_distributions_is_zero() {
        let counts = [1.0, 3.0, 0.0, 6.0];
        let logps: Vec<f64> = counts.iter().map(|&c: &f64| (c / 10.0).ln()).collect();
        assert!(jensen_shannon_distance(&logps, &counts).abs() < 1e-16);
        // Disjoint supports: ln 2.
        let logps = [0.0, f64::NEG_INFINITY];
        let d = jensen_shannon_distance(&logps, &[0.0, 4.0]);
        assert!((d - std::f64::consts::LN_2).abs() < 1e-15, "{d}");
        // Unnormalised log-probabilities are renormalised.
        assert!(jensen_shannon_distance(&[5.0, 5.0], &[2.0, 2.0]).abs() < 1e-16);
        // All-zero truth: NaN, as bpnet-lite.
        assert!(jensen_shannon_distance(&[0.0, 0.0], &[0.0, 0.0]).is_nan());
    }

    #[test]
    fn mnll_by_hand() {
        // Two reads on two equally likely positions: -ln 2! + 0 + 2 ln 2 = ln 2.
        let half = 0.5f64.ln();
        assert!((mnll(&[half, half], &[1.0, 1.0]) - std::f64::consts::LN_2).abs() < 1e-15);
        // Both reads on one position: -ln 2 + ln 2 - 2 ln 0.5 = 2 ln 2.
        assert!((mnll(&[half, half], &[2.0, 0.0]) - 2.0 * std::f64::consts::LN_2).abs() < 1e-15);
        assert_eq!(mnll(&[half, half], &[0.0, 0.0]), 0.0);
        assert!(mnll(&[0.0, f64::NEG_INFINITY], &[1.0, 0.0]).is_nan()); // 0 · -inf
    }

    #[test]
    fn lgamma_matches_torch() {
        // torch.lgamma on float64 (CPU), what bpnet-lite's MNLLLoss calls; glibc's lgamma
        // gives the same values but for 10 (1 ulp). (Python's math.lgamma is CPython's own
        // Lanczos approximation and is several ulp off near 0.5 and 1.5.)
        let cases = [
            (0.5, 0.5723649429247001),
            (1.5, -0.12078223763524522),
            (4.0, 1.791759469228055),
            (2.5, 0.2846828704729192),
            (7.25, 7.0521854507385395),
            (10.0, 12.801827480081469),
            (100.5, 361.4355404677776),
            (1234.0, 7546.991994272256),
            (1e6 + 0.5, 12815511.476902766),
        ];
        for (x, want) in cases {
            assert!(
                close(lgamma(x), want, 2.3e-16, 0.0),
                "lgamma({x}) = {} vs {want}",
                lgamma(x)
            );
        }
        assert_eq!(lgamma(1.0), 0.0);
        assert_eq!(lgamma(2.0), 0.0);
        assert_eq!(lgamma(0.0), f64::INFINITY);
        assert!((lgamma(-0.5) - (2.0 * std::f64::consts::PI.sqrt()).ln()).abs() < 1e-15);
    }

    #[test]
    fn smoothing_preserves_the_sum_away_from_the_edges() {
        let mut x = vec![0.0; 300];
        x[150] = 5.0;
        x[160] = 2.0;
        for (sigma, width) in [(7.0, 81), (3.0, 20), (1.0, 1)] {
            let s = smooth_gaussian(&x, sigma, width);
            assert!((s.iter().sum::<f64>() - 7.0).abs() < 1e-13);
        }
        assert_eq!(smooth_gaussian(&x, 1.0, 1), x);
        // A lone spike spreads symmetrically for an odd width.
        let mut one = vec![0.0; 300];
        one[150] = 1.0;
        let s = smooth_gaussian(&one, 7.0, 81);
        for d in 1..=40 {
            assert!((s[150 - d] - s[150 + d]).abs() <= 1e-17, "{d}");
        }
        assert_eq!((s[109], s[191]), (0.0, 0.0));
        // Even width 4: one zero of padding on the left, two on the right, so a spike at 10
        // spreads to 8..=11.
        let mut spike = vec![0.0; 20];
        spike[10] = 1.0;
        let s = smooth_gaussian(&spike, 1.5, 4);
        let nonzero: Vec<usize> = (0..20).filter(|&i| s[i] != 0.0).collect();
        assert_eq!(nonzero, [8, 9, 10, 11]);
        // Near an edge mass is lost.
        let mut edge = vec![0.0; 20];
        edge[0] = 1.0;
        assert!(smooth_gaussian(&edge, 2.0, 9).iter().sum::<f64>() < 0.75);
    }

    #[test]
    fn log_softmax_normalises() {
        let lp = log_softmax(&[1.0, 2.0, 3.0, -1e3]);
        let total: f64 = lp.iter().map(|v| v.exp()).sum();
        assert!((total - 1.0).abs() < 1e-15);
        assert!((lp[2] - lp[1] - 1.0).abs() < 1e-15);
    }

    #[test]
    fn nan_mean_counts_what_it_leaves_out() {
        let m = nan_mean(&[1.0, f64::NAN, 3.0, f64::NAN]);
        assert_eq!(
            m,
            NanMean {
                mean: 2.0,
                count: 2,
                nan: 2
            }
        );
        let m = nan_mean(&[f64::NAN]);
        assert!(m.mean.is_nan() && m.count == 0 && m.nan == 1);
        assert!(nan_mean(&[]).mean.is_nan());
    }

    #[test]
    fn masks_and_summaries_equal_scoring_the_selected_windows() {
        let doc = reference();
        let (n, strands, len) = (6, 2, 200);
        let logits = floats(&doc["inputs"]["logits"]);
        let counts = floats(&doc["inputs"]["counts"]);
        let pred = floats(&doc["inputs"]["pred_log_counts_2"]);
        let keep = [true, false, true, true, false, true];
        let options = MeasureOptions {
            smooth_true: true,
            ..MeasureOptions::default()
        };
        let all =
            calculate_performance_measures(&logits, &counts, &pred, n, strands, len, &options);
        let some = calculate_performance_measures_masked(
            &logits, &counts, &pred, n, strands, len, &keep, &options,
        );
        assert_eq!(some.n, 4);
        let kept: Vec<usize> = (0..n).filter(|&w| keep[w]).collect();
        for (k, &w) in kept.iter().enumerate() {
            for s in 0..strands {
                let (a, b) = (some.profile(k, s), all.profile(w, s));
                assert_eq!(a.mnll, b.mnll);
                assert!(a.jsd == b.jsd || (a.jsd.is_nan() && b.jsd.is_nan()));
                assert_eq!((a.pearson, a.spearman), (b.pearson, b.spearman));
            }
        }
        // Count measures are over the kept windows only, by hand ...
        let total = |w: usize| {
            let sum: f64 = counts[w * 400..(w + 1) * 400]
                .iter()
                .map(|&c| f64::from(c))
                .sum();
            (sum + 1.0).ln()
        };
        let truth: Vec<f64> = kept.iter().map(|&w| total(w)).collect();
        let pred0: Vec<f64> = kept.iter().map(|&w| f64::from(pred[w * 2])).collect();
        assert_eq!(some.count_pearson.len(), 2);
        assert_eq!(some.count_pearson[0], pearson(&pred0, &truth));
        // ... and from the full run's summary.
        let c = all.count_summary(&keep);
        assert_eq!(
            (c.pearson, c.spearman, c.mse),
            (
                some.count_pearson[0],
                some.count_spearman[0],
                some.count_mse[0]
            )
        );
        let c = all.count_summary(&[true; 6]);
        assert_eq!(
            (c.pearson, c.spearman, c.mse),
            (
                all.count_pearson[0],
                all.count_spearman[0],
                all.count_mse[0]
            )
        );
        // Profile summary: NaN-ignoring means over both strands of the kept windows. Window 3
        // has two all-zero strands (JSD NaN).
        let p = all.profile_summary(&keep);
        assert_eq!((p.tracks, p.nan), (8, [0, 2, 0, 0]));
        let jsd: Vec<f64> = (0..4)
            .flat_map(|k| (0..2).map(move |s| (k, s)))
            .map(|(k, s)| some.profile(k, s).jsd)
            .filter(|v| !v.is_nan())
            .collect();
        assert!((p.jsd - jsd.iter().sum::<f64>() / 6.0).abs() < 1e-15);
        assert_eq!(p.mnll, nan_mean(&some.profile_mnll).mean);
        assert_eq!(p.spearman, nan_mean(&some.profile_spearman).mean);
        assert_eq!(
            select_windows(&[1, 2, 3, 4, 5, 6], 3, &[false, true, true]),
            [3, 4, 5, 6]
        );
        let none = calculate_performance_measures_masked(
            &logits,
            &counts,
            &pred,
            n,
            strands,
            len,
            &[false; 6],
            &options,
        );
        assert!(none.profile_mnll.is_empty() && none.count_mse.is_empty());
        let c = all.count_summary(&[false; 6]);
        assert!(c.pearson == 0.0 && c.mse.is_nan());
        assert!(all.profile_summary(&[false; 6]).jsd.is_nan());
    }
}

//! Evaluation metrics of the examples: PCA (nalgebra's symmetric eigendecomposition), kNN
//! label accuracy, Pearson correlation, Jensen–Shannon distance, binary classification
//! scores.

use std::collections::HashMap;

use nalgebra::{DMatrix, SymmetricEigen};

/// A PCA fitted on row-major `[n, d]` data: the mean and the leading principal axes.
#[derive(Debug, Clone)]
pub struct Pca {
    mean: Vec<f64>,
    /// `[d, k]`, columns are unit principal axes by decreasing variance.
    axes: DMatrix<f64>,
}

impl Pca {
    /// Fits `k` components to `n` rows of dimension `d` (eigenvectors of the covariance).
    ///
    /// # Panics
    /// If `k > d` or `data.len() != n * d`.
    pub fn fit(data: &[f32], n: usize, d: usize, k: usize) -> Pca {
        assert!(k <= d && data.len() == n * d, "Pca::fit: bad shapes");
        let x = DMatrix::from_row_iterator(n, d, data.iter().map(|&v| v as f64));
        let mean: Vec<f64> = x.row_mean().iter().copied().collect();
        let centred = DMatrix::from_fn(n, d, |i, j| x[(i, j)] - mean[j]);
        let cov = centred.tr_mul(&centred) / (n.max(2) - 1) as f64;
        let eigen = SymmetricEigen::new(cov);
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
        let axes = DMatrix::from_fn(d, k, |i, j| eigen.eigenvectors[(i, order[j])]);
        Pca { mean, axes }
    }

    /// Projects `n` rows onto the axes: row-major `[n, k]`.
    pub fn transform(&self, data: &[f32], n: usize) -> Vec<f32> {
        let d = self.mean.len();
        let x = DMatrix::from_fn(n, d, |i, j| data[i * d + j] as f64 - self.mean[j]);
        let projected = x * &self.axes;
        let k = self.axes.ncols();
        (0..n)
            .flat_map(|i| (0..k).map(move |j| (i, j)))
            .map(|(i, j)| projected[(i, j)] as f32)
            .collect()
    }
}

/// Fraction of `query` points whose label is the majority label of their `k` nearest
/// (Euclidean) `reference` points. Ties go to the label whose tied neighbours are closer in
/// total.
pub fn knn_accuracy(
    reference: &[f32],
    reference_labels: &[String],
    query: &[f32],
    query_labels: &[String],
    dim: usize,
    k: usize,
) -> f64 {
    let n_ref = reference_labels.len();
    assert_eq!(
        reference.len(),
        n_ref * dim,
        "knn_accuracy: reference shape"
    );
    assert_eq!(
        query.len(),
        query_labels.len() * dim,
        "knn_accuracy: query shape"
    );
    let k = k.min(n_ref);
    let mut correct = 0usize;
    for (q, truth) in query.chunks(dim).zip(query_labels) {
        let mut dists: Vec<(f32, usize)> = reference
            .chunks(dim)
            .enumerate()
            .map(|(i, r)| (r.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum(), i))
            .collect();
        dists.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
        let mut votes: HashMap<&str, (usize, f32)> = HashMap::new();
        for &(d2, i) in &dists[..k] {
            let entry = votes.entry(reference_labels[i].as_str()).or_default();
            entry.0 += 1;
            entry.1 += d2.sqrt();
        }
        let (predicted, _) = votes
            .into_iter()
            .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.1.1.total_cmp(&a.1.1)))
            .expect("k >= 1");
        correct += usize::from(predicted == truth);
    }
    correct as f64 / query_labels.len().max(1) as f64
}

/// Pearson correlation of two equally long samples (NaN if either is constant).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "pearson: lengths differ");
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    sxy / (sxx * syy).sqrt()
}

/// Jensen–Shannon distance (square root of the divergence, natural log, in `[0, √ln 2]`)
/// of two probability vectors; as scipy's `jensenshannon`.
pub fn jensen_shannon_distance(p: &[f64], q: &[f64]) -> f64 {
    assert_eq!(p.len(), q.len(), "jensen_shannon_distance: lengths differ");
    let kl_to_mid = |a: &[f64], b: &[f64]| -> f64 {
        a.iter()
            .zip(b)
            .filter(|(ai, _)| **ai > 0.0)
            .map(|(ai, bi)| ai * (2.0 * ai / (ai + bi)).ln())
            .sum()
    };
    let divergence = 0.5 * (kl_to_mid(p, q) + kl_to_mid(q, p));
    divergence.max(0.0).sqrt()
}

/// Median of a sample (mean of the middle two for even lengths; NaN when empty).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

/// Accuracy and F1 of the positive class for boolean predictions against the truth.
pub fn accuracy_f1(predicted: &[bool], truth: &[bool]) -> (f64, f64) {
    assert_eq!(predicted.len(), truth.len(), "accuracy_f1: lengths differ");
    let (mut tp, mut fp, mut fn_, mut tn) = (0usize, 0usize, 0usize, 0usize);
    for (&p, &t) in predicted.iter().zip(truth) {
        match (p, t) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => tn += 1,
        }
    }
    let accuracy = (tp + tn) as f64 / truth.len().max(1) as f64;
    let f1 = 2.0 * tp as f64 / (2 * tp + fp + fn_).max(1) as f64;
    (accuracy, f1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_dominant_axis() {
        // Points along (1, 1), each at both ±0.1 along (1, -1) (uncorrelated noise).
        let data: Vec<f32> = (0..20)
            .flat_map(|i| {
                let t = (i / 2) as f32 - 4.5;
                let e = if i % 2 == 0 { 0.1 } else { -0.1 };
                [t + e, t - e]
            })
            .collect();
        let pca = Pca::fit(&data, 20, 2, 1);
        let axis = (pca.axes[(0, 0)], pca.axes[(1, 0)]);
        let s = std::f64::consts::FRAC_1_SQRT_2;
        assert!((axis.0.abs() - s).abs() < 1e-3 && (axis.1.abs() - s).abs() < 1e-3);
        assert!(axis.0 * axis.1 > 0.0);
    }

    #[test]
    fn knn_and_scores_on_hand_checked_cases() {
        let labels = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let reference = [0.0, 0.1, 0.2, 5.0, 5.1];
        let ref_labels = labels(&["a", "a", "a", "b", "b"]);
        let acc = knn_accuracy(
            &reference,
            &ref_labels,
            &[0.05, 5.05],
            &labels(&["a", "a"]),
            1,
            3,
        );
        assert_eq!(acc, 0.5);
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]) - 0.997_948_7).abs() < 1e-6);
        // scipy.spatial.distance.jensenshannon([1, 0], [0.5, 0.5]) = 0.4645014...
        assert!((jensen_shannon_distance(&[1.0, 0.0], &[0.5, 0.5]) - 0.464_501_4).abs() < 1e-6);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
        let (acc, f1) = accuracy_f1(&[true, true, false, false], &[true, false, true, false]);
        assert_eq!((acc, f1), (0.5, 0.5));
    }
}

//! HMM tests: brute-force path enumeration on tiny models, padding, finite-difference
//! gradients on `NdArray<f64>`, and the validation errors.

use crate::common;
use crate::common::{assert_close, to_f64};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use diffbio_burn::Reduction;
use diffbio_burn::hmm::{Hmm, HmmAlgorithm, HmmConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::hmm_ref::*;

// ---------------------------------------------------------------------------------------------
// Likelihood
// ---------------------------------------------------------------------------------------------

/// The forward algorithm equals the sum over all state paths, for S ≤ 3, T ≤ 6.
fn likelihood_equals_path_sum<B: AutodiffBackend>() {
    let mut rng = StdRng::seed_from_u64(11);
    let (atol, rtol) = tol::<B>();
    for s in 1..=3 {
        for t in 1..=6 {
            let m = Logits::random(&mut rng, s, 3, 2.0);
            let b = 4;
            let x = random_sequences(&mut rng, b, t, 3);
            let hmm = m.module::<B>(&Default::default());
            let got = to_f64(hmm.log_likelihood(obs(&x, b, t), None));
            let want: Vec<f64> = x
                .chunks(t)
                .map(|row| brute_log_likelihood(&m, row))
                .collect();
            assert_close(&format!("S={s} T={t}"), &got, &want, atol, rtol);
        }
    }
}

/// The loss is the mean NLL (DiffBio), the sum with `Reduction::Sum`.
fn loss_is_mean_nll<B: AutodiffBackend>() {
    let mut rng = StdRng::seed_from_u64(12);
    let m = Logits::random(&mut rng, 3, 4, 1.0);
    let x = random_sequences(&mut rng, 5, 7, 4);
    let hmm = m.module::<B>(&Default::default());
    let ll = to_f64(hmm.log_likelihood(obs(&x, 5, 7), None));
    let mean = to_f64(hmm.forward(obs(&x, 5, 7), None, Reduction::Mean));
    let sum = to_f64(hmm.forward(obs(&x, 5, 7), None, Reduction::Sum));
    let want_sum = -ll.iter().sum::<f64>();
    assert_close("mean", &mean, &[want_sum / 5.0], 1e-5, 1e-6);
    assert_close("sum", &sum, &[want_sum], 1e-5, 1e-6);
}

/// A padded batch gives the per-sequence values of the unpadded sequences, and the
/// gradient of its summed NLL is the sum of the per-sequence gradients.
fn padding_contributes_nothing<B: AutodiffBackend>() {
    let mut rng = StdRng::seed_from_u64(13);
    let m = Logits::random(&mut rng, 3, 4, 1.5);
    let lengths = [1_i64, 6, 3, 9, 9, 2];
    let t = 9;
    let seqs: Vec<Vec<i64>> = lengths
        .iter()
        .map(|&l| random_sequences(&mut rng, 1, l as usize, 4))
        .collect();
    // Padding with out-of-range junk: it must be ignored, also by the validation.
    let mut padded = Vec::new();
    for s in &seqs {
        padded.extend(s);
        padded.extend(std::iter::repeat_n(-7, t - s.len()));
    }
    let b = lengths.len();
    let device = Default::default();
    for (name, hmm) in variants::<B>(&m, &device) {
        let batched = hmm.log_likelihood(obs(&padded, b, t), Some(lens(&lengths)));
        let got = to_f64(batched.clone());
        let mut want = Vec::new();
        for s in &seqs {
            want.extend(to_f64(hmm.log_likelihood(obs(&s[..], 1, s.len()), None)));
        }
        assert_close(
            &format!("{name}: padded vs unpadded"),
            &got,
            &want,
            0.0,
            4.0 * f32::EPSILON as f64,
        );

        // Gradients: Σ_b of the padded batch = Σ_b of separate evaluations.
        let h1 = hmm.clone();
        let g_batched = param_grads(
            h1.forward(obs(&padded, b, t), Some(lens(&lengths)), Reduction::Sum),
            &h1,
        );
        let h2 = hmm.clone();
        let mut total = h2.forward(obs(&seqs[0][..], 1, seqs[0].len()), None, Reduction::Sum);
        for s in &seqs[1..] {
            total = total + h2.forward(obs(&s[..], 1, s.len()), None, Reduction::Sum);
        }
        let g_separate = param_grads(total, &h2);
        assert_close(
            &format!("{name}: padded gradients"),
            &g_batched,
            &g_separate,
            1e-5,
            1e-4,
        );
    }
}

/// `T = 1`, a batch of one, and lengths equal to `T` work.
fn edge_shapes<B: AutodiffBackend>() {
    let mut rng = StdRng::seed_from_u64(14);
    let m = Logits::random(&mut rng, 2, 3, 1.0);
    let hmm = m.module::<B>(&Default::default());
    let (atol, rtol) = tol::<B>();
    let one = to_f64(hmm.log_likelihood(obs(&[2], 1, 1), None));
    assert_close("T = 1", &one, &[brute_log_likelihood(&m, &[2])], atol, rtol);
    let x = [0, 1, 2, 1];
    let full = to_f64(hmm.log_likelihood(obs(&x, 1, 4), Some(lens(&[4]))));
    assert_close("B = 1", &full, &[brute_log_likelihood(&m, &x)], atol, rtol);
}

/// With validation off, out-of-range symbols are read as DiffBio's `log_emit[:, obs]` reads
/// them in JAX: negative symbols count from the end (`-1` is the last symbol), and what is
/// still out of range is clamped. Every algorithm, values and gradients.
fn unvalidated_symbols_index_as_diffbio<B: AutodiffBackend>() {
    let mut rng = StdRng::seed_from_u64(15);
    let m = Logits::random(&mut rng, 2, 3, 1.0);
    let raw = [5, -1, 1, -3, -4, 7, -2];
    let read = [2, 2, 1, 0, 0, 2, 1];
    let (atol, rtol) = tol::<B>();
    for (name, hmm) in variants::<B>(&m, &Default::default()) {
        let hmm = hmm.with_validate(false);
        let ll = hmm.log_likelihood(obs(&raw, 1, raw.len()), None);
        let want = brute_log_likelihood(&m, &read);
        assert_close(name, &to_f64(ll.clone()), &[want], atol, rtol);
        let got = param_grads(ll.sum(), &hmm);
        let in_range = hmm.log_likelihood(obs(&read, 1, read.len()), None);
        let want = param_grads(in_range.sum(), &hmm);
        assert_close(&format!("{name}: gradients"), &got, &want, 1e-6, 1e-6);
        let paths = hmm.viterbi(obs(&raw, 1, raw.len()), None);
        let (_, lp, _) = brute_viterbi(&m, &read);
        assert_close(
            &format!("{name}: viterbi"),
            &to_f64(paths.log_prob),
            &[lp],
            atol,
            rtol,
        );
    }
}

backend_tests!(
    likelihood_equals_path_sum,
    loss_is_mean_nll,
    padding_contributes_nothing,
    edge_shapes,
    unvalidated_symbols_index_as_diffbio,
);

// ---------------------------------------------------------------------------------------------
// Implementations
// ---------------------------------------------------------------------------------------------

/// Host kernel, sequential tensor recursion with expected-count gradients and the taped
/// recursion give the same values and per-sequence gradients on random padded batches.
fn implementations_agree<B: AutodiffBackend>() {
    let mut rng = StdRng::seed_from_u64(51);
    let device = Default::default();
    for (s, e, b, t) in [
        (1, 3, 3, 7),
        (2, 2, 5, 30),
        (3, 4, 8, 50),
        (4, 4, 6, 41),
        (6, 5, 4, 25),
    ] {
        let m = Logits::random(&mut rng, s, e, 3.0);
        let x = random_sequences(&mut rng, b, t, e);
        let lengths: Vec<i64> = (0..b).map(|_| rng.random_range(1..=t as i64)).collect();
        let weights: Vec<f64> = (0..b).map(|_| rng.random_range(-1.0..2.0)).collect();
        let mut reference: Option<(Vec<f64>, Vec<f64>)> = None;
        for (name, hmm) in variants::<B>(&m, &device) {
            let ll = hmm.log_likelihood(obs(&x, b, t), Some(lens(&lengths)));
            let values = to_f64(ll.clone());
            let w = tensor::<B, 1>(&weights, [b], &device);
            let grads = param_grads((ll * w).sum(), &hmm);
            assert!(grads.iter().all(|g| g.is_finite()), "{name}: {grads:?}");
            match &reference {
                None => reference = Some((values, grads)),
                Some((v0, g0)) => {
                    let what = format!("{name} vs host, S={s} E={e} B={b} T={t}");
                    assert_close(&format!("{what}: values"), &values, v0, 1e-4, 1e-5);
                    assert_close(&format!("{what}: gradients"), &grads, g0, 1e-4, 1e-4);
                }
            }
        }
    }
}

/// Structural zeros over long sequences: state 1 is absorbing and never emits symbol 0, so
/// on `0 1 0 1 ...` every path through state 1 is impossible. Flooring those `-inf` entries
/// in the scan's log-semiring products once gave a NaN loss from T = 129 on. Every algorithm
/// must give the sequential value and finite gradients.
fn structural_zeros_stay_impossible<B: AutodiffBackend>() {
    let device = Default::default();
    for t in [5usize, 128, 129, 300] {
        let x: Vec<i64> = (0..t).map(|i| (i % 2) as i64).collect();
        let mut reference: Option<Vec<f64>> = None;
        for algorithm in [
            HmmAlgorithm::Sequential,
            HmmAlgorithm::Host,
            HmmAlgorithm::ParallelScan,
        ] {
            if algorithm == HmmAlgorithm::Host && !diffbio_burn::host::on_host::<B>() {
                continue;
            }
            let hmm = Hmm::<B>::from_probs(
                tensor::<B, 1>(&[0.5, 0.5], [2], &device),
                tensor::<B, 2>(&[0.5, 0.5, 0.0, 1.0], [2, 2], &device),
                tensor::<B, 2>(&[0.5, 0.5, 0.0, 1.0], [2, 2], &device),
            )
            .with_algorithm(algorithm);
            let ll = hmm.log_likelihood(obs(&x, 1, t), None);
            let values = to_f64(ll.clone());
            let grads = param_grads(ll.sum(), &hmm);
            assert!(values[0].is_finite(), "{algorithm:?} T={t}: {values:?}");
            assert!(
                grads.iter().all(|g| g.is_finite()),
                "{algorithm:?} T={t}: {grads:?}"
            );
            let posteriors = to_f64(hmm.posteriors(obs(&x, 1, t), None));
            // Per-step softmaxes of normalised variables: a few f32 ulps, whatever T.
            let slack = 8.0 * f64::from(f32::EPSILON);
            let worst = posteriors
                .iter()
                .fold(0f64, |w, p| w.max(*p - 1.0).max(-*p));
            assert!(
                worst <= slack,
                "{algorithm:?} T={t}: posteriors outside [0, 1] by {worst:e} (slack {slack:e})"
            );
            match &reference {
                None => reference = Some(values),
                Some(v0) => assert_close(&format!("{algorithm:?} T={t}"), &values, v0, 1e-4, 1e-5),
            }
        }
    }
}

backend_tests!(implementations_agree, structural_zeros_stay_impossible);

#[test]
fn auto_uses_the_host_kernel_on_ndarray() {
    let hmm = HmmConfig::new(2, 3).init::<common::TestNdArray>(&Default::default());
    assert_eq!(hmm.resolved_algorithm(1000), HmmAlgorithm::Host);
    let inner = HmmConfig::new(2, 3).init::<common::F32>(&Default::default());
    assert_eq!(inner.resolved_algorithm(5), HmmAlgorithm::Host);
    let taped = hmm.with_taped_gradient(true);
    assert_eq!(taped.resolved_algorithm(63), HmmAlgorithm::Sequential);
    assert_eq!(taped.resolved_algorithm(64), HmmAlgorithm::ParallelScan);
}

#[test]
#[should_panic(expected = "Hmm: the Host algorithm has no tape")]
fn host_cannot_be_taped() {
    HmmConfig::new(2, 3)
        .with_algorithm(HmmAlgorithm::Host)
        .with_taped_gradient(true)
        .init::<common::TestNdArray>(&Default::default())
        .log_likelihood(obs(&[0, 1], 1, 2), None);
}

// ---------------------------------------------------------------------------------------------
// Decoding and sampling
// ---------------------------------------------------------------------------------------------

fn ints<B: Backend, const D: usize>(t: Tensor<B, D, burn::tensor::Int>) -> Vec<i64> {
    t.into_data().iter::<i64>().collect()
}

/// Viterbi equals the argmax over all paths (paths and log-probabilities), also with padding.
fn viterbi_equals_argmax_path<B: AutodiffBackend>() {
    let mut rng = StdRng::seed_from_u64(41);
    let (atol, rtol) = tol::<B>();
    let mut checked = 0;
    for s in 1..=3 {
        for t in 1..=6 {
            let m = Logits::random(&mut rng, s, 3, 2.0);
            let b = 4;
            let x = random_sequences(&mut rng, b, t, 3);
            let lengths: Vec<i64> = (0..b).map(|i| (t - i % t) as i64).collect();
            for (name, hmm) in variants::<B>(&m, &Default::default()) {
                let out = hmm.viterbi(obs(&x, b, t), Some(lens(&lengths)));
                let states = ints(out.states);
                let log_prob = to_f64(out.log_prob);
                for row in 0..b {
                    let n = lengths[row] as usize;
                    let (path, lp, gap) = brute_viterbi(&m, &x[row * t..row * t + n]);
                    assert_close("viterbi log-prob", &log_prob[row..=row], &[lp], atol, rtol);
                    if gap < 1e-4 {
                        continue; // a near-tie: float32 may legitimately pick the other path
                    }
                    checked += 1;
                    let mut want: Vec<i64> = path.iter().map(|&z| z as i64).collect();
                    want.resize(t, -1);
                    assert_eq!(
                        &states[row * t..(row + 1) * t],
                        &want[..],
                        "{name} S={s} T={t} row {row}"
                    );
                }
            }
        }
    }
    assert!(checked > 180, "only {checked} paths compared");
}

/// Posteriors equal the normalised path sums, sum to 1, and are 0 at padding.
fn posteriors_equal_path_sums<B: AutodiffBackend>() {
    let mut rng = StdRng::seed_from_u64(42);
    for s in 1..=3 {
        for t in 1..=6 {
            let m = Logits::random(&mut rng, s, 4, 2.0);
            let b = 3;
            let x = random_sequences(&mut rng, b, t, 4);
            let lengths: Vec<i64> = (0..b).map(|i| (t - i % t) as i64).collect();
            for (name, hmm) in variants::<B>(&m, &Default::default()) {
                let post = to_f64(hmm.posteriors(obs(&x, b, t), Some(lens(&lengths))));
                for row in 0..b {
                    let n = lengths[row] as usize;
                    let mut want = brute_posteriors(&m, &x[row * t..row * t + n]);
                    want.resize(t * s, 0.0);
                    let got = &post[row * t * s..(row + 1) * t * s];
                    assert_close(
                        &format!("{name} posteriors S={s} T={t} row {row}"),
                        got,
                        &want,
                        2e-6,
                        0.0,
                    );
                    for step in 0..n {
                        let total: f64 = got[step * s..(step + 1) * s].iter().sum();
                        assert!(
                            (total - 1.0).abs() < 1e-5,
                            "{name}: posteriors sum to {total}"
                        );
                    }
                }
            }
        }
    }
}

/// Sampling is reproducible per seed, and its frequencies match the model's probabilities.
fn sampling_matches_the_model<B: AutodiffBackend>() {
    let mut rng = StdRng::seed_from_u64(43);
    let m = Logits::random(&mut rng, 3, 4, 1.0);
    let hmm = m.module::<B>(&Default::default());
    let (n, t) = (20_000, 2);
    let a = hmm.sample(n, t, 5);
    let again = hmm.sample(n, t, 5);
    let other = hmm.sample(n, t, 6);
    let (z, x) = (ints(a.states), ints(a.observations));
    assert_eq!(z, ints(again.states));
    assert_eq!(x, ints(again.observations));
    assert_ne!(x, ints(other.observations));
    let (li, lt, le) = m.log_probs();
    // Empirical frequencies within 5 standard errors of the probabilities.
    let check = |what: &str, hits: usize, total: usize, p: f64| {
        let f = hits as f64 / total as f64;
        let se = (p * (1.0 - p) / total as f64).sqrt();
        assert!(
            (f - p).abs() <= 5.0 * se + 1e-9,
            "{what}: frequency {f} vs probability {p}"
        );
    };
    for i in 0..3 {
        let starts = (0..n).filter(|&r| z[r * t] == i as i64).count();
        check("initial", starts, n, li[i].exp());
        for j in 0..3 {
            let moves = (0..n)
                .filter(|&r| z[r * t] == i as i64 && z[r * t + 1] == j as i64)
                .count();
            check("transition", moves, starts, lt[i * 3 + j].exp());
        }
        for k in 0..4 {
            let emits = (0..n)
                .filter(|&r| z[r * t] == i as i64 && x[r * t] == k as i64)
                .count();
            check("emission", emits, starts, le[i * 4 + k].exp());
        }
    }
}

backend_tests!(
    viterbi_equals_argmax_path,
    posteriors_equal_path_sums,
    sampling_matches_the_model,
);

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

fn small<B: Backend>() -> Hmm<B> {
    HmmConfig::new(2, 4).init(&Default::default())
}

fn symbol_too_large<B: AutodiffBackend>() {
    small::<B>().log_likelihood(obs(&[0, 1, 4], 1, 3), None);
}

fn symbol_negative<B: AutodiffBackend>() {
    small::<B>().log_likelihood(obs(&[0, -1, 2, 3], 2, 2), None);
}

fn length_zero<B: AutodiffBackend>() {
    small::<B>().log_likelihood(obs(&[0, 1, 2, 3], 2, 2), Some(lens(&[2, 0])));
}

fn length_too_long<B: AutodiffBackend>() {
    small::<B>().log_likelihood(obs(&[0, 1, 2, 3], 2, 2), Some(lens(&[3, 1])));
}

fn lengths_wrong_shape<B: AutodiffBackend>() {
    small::<B>().log_likelihood(obs(&[0, 1, 2, 3], 2, 2), Some(lens(&[2, 1, 1])));
}

fn empty_sequences<B: AutodiffBackend>() {
    small::<B>().log_likelihood(obs(&[], 2, 0), None);
}

fn symbol_out_of_range_before_padding<B: AutodiffBackend>() {
    // Position 1 of row 0 is inside its length 2.
    small::<B>().log_likelihood(obs(&[0, 9, 0, 1], 2, 2), Some(lens(&[2, 1])));
}

backend_tests!(
    #[should_panic(
        expected = "Hmm: `observations` must be in 0..4 (0..n_emissions); found 4 at [0, 2]"
    )]
    symbol_too_large,
    #[should_panic(
        expected = "Hmm: `observations` must be in 0..4 (0..n_emissions); found -1 at [0, 1]"
    )]
    symbol_negative,
    #[should_panic(expected = "Hmm: `lengths` must be in 1..=2 (1..=T); found 0 at index 1")]
    length_zero,
    #[should_panic(expected = "Hmm: `lengths` must be in 1..=2 (1..=T); found 3 at index 0")]
    length_too_long,
    #[should_panic(expected = "Hmm: `lengths` has shape [3], expected [2]")]
    lengths_wrong_shape,
    #[should_panic(
        expected = "Hmm: `observations` has shape [2, 0], expected [B, T] with B >= 1 and T >= 1"
    )]
    empty_sequences,
    #[should_panic(expected = "found 9 at [0, 1]")]
    symbol_out_of_range_before_padding,
);

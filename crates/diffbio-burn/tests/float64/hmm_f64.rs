//! HMM tests in float64 on `NdArray<f64>`: finite-difference gradients, brute force at
//! 1e-10, constructors. Kept apart from the float32 tests because Burn 0.21 keys the default
//! float dtype by device type, which `NdArray<f32>` and `NdArray<f64>` share: in one test
//! process the first backend used decides the dtype of both.

use crate::common::{AdF64, GradCheck, assert_close, to_f64};
use diffbio_burn::hmm::{Hmm, HmmAlgorithm, HmmConfig};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::hmm_ref::*;

#[test]
fn likelihood_equals_path_sum_f64() {
    let mut rng = StdRng::seed_from_u64(11);
    for s in 1..=3 {
        for t in 1..=6 {
            let m = Logits::random(&mut rng, s, 3, 2.0);
            let x = random_sequences(&mut rng, 4, t, 3);
            let hmm = m.module::<AdF64>(&Default::default());
            let got = to_f64(hmm.log_likelihood(obs(&x, 4, t), None));
            let want: Vec<f64> = x
                .chunks(t)
                .map(|row| brute_log_likelihood(&m, row))
                .collect();
            assert_close(&format!("S={s} T={t}"), &got, &want, 1e-10, 1e-10);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Finite-difference gradients (float64)
// ---------------------------------------------------------------------------------------------

/// `Σ_b w_b log p(x_b)` with distinct weights, so that per-sequence gradients are checked,
/// not only their sum.
fn fd_check(name: &str, m: &Logits, x: &[i64], b: usize, t: usize, lengths: Option<&[i64]>) {
    for (variant, algorithm, taped) in [
        ("host", HmmAlgorithm::Host, false),
        ("sequential", HmmAlgorithm::Sequential, false),
        ("sequential-taped", HmmAlgorithm::Sequential, true),
        ("scan", HmmAlgorithm::ParallelScan, false),
        ("scan-taped", HmmAlgorithm::ParallelScan, true),
    ] {
        fd_check_one(
            &format!("{variant} {name}"),
            m,
            x,
            b,
            t,
            lengths,
            algorithm,
            taped,
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn fd_check_one(
    name: &str,
    m: &Logits,
    x: &[i64],
    b: usize,
    t: usize,
    lengths: Option<&[i64]>,
    algorithm: HmmAlgorithm,
    taped: bool,
) {
    let (s, e) = (m.s, m.e);
    let weights: Vec<f64> = (0..b).map(|i| 0.5 + i as f64).collect();
    let x = x.to_vec();
    let lengths = lengths.map(|l| l.to_vec());
    GradCheck::new(name)
        .input("initial", m.initial.clone())
        .input("transitions", m.transitions.clone())
        .input("emissions", m.emissions.clone())
        .tolerance(1e-7, 1e-6)
        .run(|p| {
            let hmm = Hmm::from_logits(
                p[0].clone(),
                p[1].clone().reshape([s, s]),
                p[2].clone().reshape([s, e]),
            )
            .with_algorithm(algorithm)
            .with_taped_gradient(taped);
            let ll = hmm.log_likelihood(obs::<AdF64>(&x, b, t), lengths.as_deref().map(lens));
            ll * tensor::<AdF64, 1>(&weights, [b], &Default::default())
        });
}

#[test]
fn gradients_match_finite_differences() {
    let mut rng = StdRng::seed_from_u64(21);
    for (s, e, b, t) in [(1, 2, 2, 3), (2, 3, 3, 5), (3, 4, 4, 8), (4, 2, 2, 12)] {
        let m = Logits::random(&mut rng, s, e, 2.0);
        let x = random_sequences(&mut rng, b, t, e);
        fd_check(&format!("S={s} E={e} B={b} T={t}"), &m, &x, b, t, None);
    }
}

#[test]
fn padded_gradients_match_finite_differences() {
    let mut rng = StdRng::seed_from_u64(22);
    let m = Logits::random(&mut rng, 3, 3, 2.0);
    let x = random_sequences(&mut rng, 4, 7, 3);
    fd_check("padded", &m, &x, 4, 7, Some(&[7, 1, 4, 2]));
}

// ---------------------------------------------------------------------------------------------
// Constructors
// ---------------------------------------------------------------------------------------------

#[test]
fn constructors_agree() {
    type B = AdF64;
    let device = Default::default();
    let mut rng = StdRng::seed_from_u64(31);
    let m = Logits::random(&mut rng, 3, 2, 1.0);
    let (li, lt, le) = m.log_probs();
    let x = random_sequences(&mut rng, 3, 5, 2);
    let from_logits = to_f64(m.module::<B>(&device).log_likelihood(obs(&x, 3, 5), None));
    let from_log_probs = Hmm::<B>::from_log_probs(
        tensor(&li, [3], &device),
        tensor(&lt, [3, 3], &device),
        tensor(&le, [3, 2], &device),
    );
    let exp = |v: &[f64]| v.iter().map(|x| x.exp()).collect::<Vec<_>>();
    let from_probs = Hmm::<B>::from_probs(
        tensor(&exp(&li), [3], &device),
        tensor(&exp(&lt), [3, 3], &device),
        tensor(&exp(&le), [3, 2], &device),
    );
    for (what, h) in [("log_probs", from_log_probs), ("probs", from_probs)] {
        assert!(
            h.transitions.val().is_require_grad(),
            "{what}: not trainable"
        );
        let got = to_f64(h.log_likelihood(obs(&x, 3, 5), None));
        assert_close(what, &got, &from_logits, 1e-12, 1e-12);
    }
}

#[test]
fn config_init_is_seeded_and_small() {
    type B = AdF64;
    let device = Default::default();
    let a = HmmConfig::new(3, 5).with_seed(9).init::<B>(&device);
    let b = HmmConfig::new(3, 5).with_seed(9).init::<B>(&device);
    let c = HmmConfig::new(3, 5).with_seed(10).init::<B>(&device);
    let va = to_f64(a.emissions.val());
    assert_eq!(va, to_f64(b.emissions.val()));
    assert_ne!(va, to_f64(c.emissions.val()));
    assert_eq!(va.len(), 15);
    let sd = (va.iter().map(|v| v * v).sum::<f64>() / 15.0).sqrt();
    assert!(sd > 0.03 && sd < 0.3, "init scale 0.1 expected, rms {sd}");
    assert_eq!((a.n_states(), a.n_emissions()), (3, 5));
}

#[test]
fn structural_zeros_are_supported() {
    type B = AdF64;
    let device = Default::default();
    // Left-to-right model: no way back from state 1.
    let x = [0, 1, 1];
    // Paths 000, 001, 011 (state 0 first, never 1 -> 0): π·B·A·B·A·B.
    let p000: f64 = 1.0 * 0.9 * 0.7 * 0.1 * 0.7 * 0.1;
    let p001 = 1.0 * 0.9 * 0.7 * 0.1 * 0.3 * 0.8;
    let p011 = 1.0 * 0.9 * 0.3 * 0.8 * 1.0 * 0.8;
    let want: f64 = (p000 + p001 + p011).ln();
    for (algorithm, taped) in [
        (HmmAlgorithm::Host, false),
        (HmmAlgorithm::Sequential, false),
        (HmmAlgorithm::Sequential, true),
        (HmmAlgorithm::ParallelScan, false),
        (HmmAlgorithm::ParallelScan, true),
    ] {
        let hmm = Hmm::<B>::from_probs(
            tensor(&[1.0, 0.0], [2], &device),
            tensor(&[0.7, 0.3, 0.0, 1.0], [2, 2], &device),
            tensor(&[0.9, 0.1, 0.2, 0.8], [2, 2], &device),
        )
        .with_algorithm(algorithm)
        .with_taped_gradient(taped);
        let what = format!("{algorithm:?} taped={taped}");
        let ll = hmm.log_likelihood(obs(&x, 1, 3), None);
        assert_close(&what, &to_f64(ll.clone()), &[want], 1e-12, 1e-12);
        let grads = ll.sum().backward();
        for g in [
            to_f64(hmm.initial.grad(&grads).unwrap()),
            to_f64(hmm.transitions.grad(&grads).unwrap()),
            to_f64(hmm.emissions.grad(&grads).unwrap()),
        ] {
            assert!(g.iter().all(|v| v.is_finite()), "{what}: gradient {g:?}");
        }
    }
}

#[test]
#[should_panic(expected = "Hmm: `emissions` has shape [3, 4], expected [2, E] with E >= 1")]
fn parameter_shapes_must_agree() {
    let device = Default::default();
    Hmm::<AdF64>::from_logits(
        tensor(&[0.0, 0.0], [2], &device),
        tensor(&[0.0; 4], [2, 2], &device),
        tensor(&[0.0; 12], [3, 4], &device),
    );
}

#[test]
#[should_panic(
    expected = "Hmm: `transitions` must be finite and non-negative; found -0.5 at flat index 1"
)]
fn negative_probabilities_are_rejected() {
    let device = Default::default();
    Hmm::<AdF64>::from_probs(
        tensor(&[0.5, 0.5], [2], &device),
        tensor(&[1.0, -0.5, 0.5, 0.5], [2, 2], &device),
        tensor(&[0.5; 4], [2, 2], &device),
    );
}

#[test]
#[should_panic(
    expected = "Hmm: every row of `log_emissions` needs a positive probability; row 1 has none"
)]
fn all_zero_rows_are_rejected() {
    let device = Default::default();
    Hmm::<AdF64>::from_probs(
        tensor(&[0.5, 0.5], [2], &device),
        tensor(&[0.5; 4], [2, 2], &device),
        tensor(&[0.5, 0.5, 0.0, 0.0], [2, 2], &device),
    );
}

/// A transition of probability e^-800 that the data force: the host kernel's scaled
/// probabilities underflow and it must fall back to log space, still exact. (Beyond the
/// documented dynamic range of the parallel scan, which is not run here.)
#[test]
fn host_kernel_survives_underflow() {
    let m = Logits {
        s: 2,
        e: 2,
        initial: vec![0.0, 0.0],
        transitions: vec![0.0, -800.0, 0.0, 0.0],
        emissions: vec![0.0, -900.0, -900.0, 0.0],
    };
    let x = [0, 0, 1, 1, 0, 1];
    let want = brute_log_likelihood(&m, &x[..]);
    assert!(want < -700.0 && want.is_finite());
    let exact = variants::<AdF64>(&m, &Default::default())
        .into_iter()
        .filter(|(name, _)| !name.starts_with("scan"));
    for (name, hmm) in exact {
        let got = to_f64(hmm.log_likelihood(obs(&x, 1, 6), None));
        assert_close(name, &got, &[want], 1e-9, 1e-12);
    }
    for (variant, algorithm, taped) in [
        ("host", HmmAlgorithm::Host, false),
        ("sequential", HmmAlgorithm::Sequential, false),
        ("sequential-taped", HmmAlgorithm::Sequential, true),
    ] {
        let name = format!("{variant} underflow");
        fd_check_one(&name, &m, &x, 1, 6, None, algorithm, taped);
    }
}

//! Finite-difference gradient checks of every loss on `Autodiff<NdArray<f64>>`: central
//! differences of the float64 loss against the autodiff gradient (hand-written closed forms
//! where the library injects them). Inputs are seeded and cover zero and non-zero counts,
//! small and large `theta`, both reconstruction types and labelled/unlabelled BPNet batches.
//!
//! In the float64-only test binary (see `common::assert_native_float_dtype`).

use std::panic::catch_unwind;

use crate::common::{AdF64, GradCheck, check_gradients, int_tensor, tensor_f64};
use burn::tensor::{Int, Tensor};
use diffbio_burn::Reduction;
use diffbio_burn::losses::bpnet::BpnetMixtureLossConfig;
use diffbio_burn::losses::kl::gaussian_kl;
use diffbio_burn::losses::log1p_mse::Log1pMseLossConfig;
use diffbio_burn::losses::multinomial::MultinomialNllLossConfig;
use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
use diffbio_burn::losses::vae::{Reconstruction, VaeLossConfig};
use diffbio_burn::losses::zinb::ZinbLossConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const B: usize = 3;
const G: usize = 4;

fn uniform(rng: &mut StdRng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

fn log_uniform(rng: &mut StdRng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n)
        .map(|_| rng.random_range(lo.ln()..hi.ln()).exp())
        .collect()
}

/// Counts with zeros, small and large values.
fn counts(rng: &mut StdRng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| match i % 3 {
            0 => 0.0,
            1 => f64::from(rng.random_range(1..6u32)),
            _ => f64::from(rng.random_range(10..400u32)),
        })
        .collect()
}

#[test]
fn gradcheck_accepts_correct_and_rejects_wrong_gradients() {
    let x = vec![0.3, -1.2, 2.5];
    let y = vec![1.5, 0.7, 1e-3];
    let r = GradCheck::new("x^2 log y")
        .input("x", x.clone())
        .positive_input("y", y.clone())
        .run(|t| t[0].clone().powi_scalar(2) * t[1].clone().log());
    assert_eq!(r.entries, 6);
    let r = check_gradients("exp", &[("x", x.clone())], |t| t[0].clone().exp());
    assert!(r.max_abs_err < 1e-6);
    let wrong = catch_unwind(|| {
        check_gradients("detached", &[("x", x.clone())], |t| {
            t[0].clone() * t[0].clone().detach()
        })
    });
    assert!(wrong.is_err());
}

#[test]
fn negative_binomial_per_gene_and_full_theta() {
    for (seed, theta_range) in [(1, (0.05, 5.0)), (2, (5.0, 2e3))] {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = counts(&mut rng, B * G);
        let mu = log_uniform(&mut rng, B * G, 1e-2, 300.0);
        let theta = log_uniform(&mut rng, G, theta_range.0, theta_range.1);
        let loss = NegativeBinomialLossConfig::new().init();
        GradCheck::new("NB, per-gene theta")
            .positive_input("mu", mu.clone())
            .positive_input("theta", theta.clone())
            .run(|t| {
                let mu = t[0].clone().reshape([B, G]);
                let theta = t[1].clone();
                loss.forward(tensor_f64(x.clone(), [B, G]), mu, theta, Reduction::Sum)
            });
        let theta_full = log_uniform(&mut rng, B * G, theta_range.0, theta_range.1);
        GradCheck::new("NB, full theta")
            .positive_input("mu", mu)
            .positive_input("theta", theta_full)
            .run(|t| {
                let mu = t[0].clone().reshape([B, G]);
                let theta = t[1].clone().reshape([B, G]);
                loss.forward(tensor_f64(x.clone(), [B, G]), mu, theta, Reduction::Mean)
            });
    }
}

#[test]
fn zinb_all_inputs() {
    let mut rng = StdRng::seed_from_u64(3);
    let x = counts(&mut rng, B * G);
    let mu = log_uniform(&mut rng, B * G, 1e-2, 300.0);
    let theta = log_uniform(&mut rng, G, 0.05, 500.0);
    let logits = uniform(&mut rng, B * G, -6.0, 6.0);
    let loss = ZinbLossConfig::new().init();
    GradCheck::new("ZINB")
        .positive_input("mu", mu)
        .positive_input("theta", theta)
        .input("pi_logits", logits)
        .run(|t| {
            let mu = t[0].clone().reshape([B, G]);
            let logits = t[2].clone().reshape([B, G]);
            let x = tensor_f64(x.clone(), [B, G]);
            loss.forward(x, mu, t[1].clone(), logits, Reduction::Sum)
        });
}

#[test]
fn vae_elbo_mse_and_bce() {
    let (f, l) = (5, 2);
    let mut rng = StdRng::seed_from_u64(4);
    let x_real = uniform(&mut rng, B * f, -2.0, 2.0);
    let x_binary: Vec<f64> = (0..B * f).map(|i| (i % 2) as f64).collect();
    let x_recon = uniform(&mut rng, B * f, -12.0, 12.0);
    let mean = uniform(&mut rng, B * l, -3.0, 3.0);
    // Include logvar near 0, where the KL switches to its series.
    let mut logvar = uniform(&mut rng, B * l, -6.0, 6.0);
    logvar[0] = 0.03;
    logvar[1] = -0.07;
    for (reconstruction, x) in [
        (Reconstruction::Mse, &x_real),
        (Reconstruction::Bce, &x_binary),
    ] {
        for reduction in [Reduction::Mean, Reduction::BatchMean] {
            let vae = VaeLossConfig::new()
                .with_kl_weight(0.7)
                .with_reconstruction(reconstruction)
                .init();
            GradCheck::new(&format!("VAE {reconstruction:?} {reduction:?}"))
                .input("x_recon", x_recon.clone())
                .input("mean", mean.clone())
                .input("logvar", logvar.clone())
                .run(|t| {
                    vae.forward(
                        tensor_f64(x.clone(), [B, f]),
                        t[0].clone().reshape([B, f]),
                        t[1].clone().reshape([B, l]),
                        t[2].clone().reshape([B, l]),
                        reduction.clone(),
                    )
                    .loss
                });
        }
    }
}

#[test]
fn gaussian_kl_near_and_far_from_the_prior() {
    let mean = vec![0.0, 1e-3, -2.0, 4.0];
    let logvar = vec![1e-4, -0.05, 0.099, -15.0];
    check_gradients("gaussian_kl", &[("mean", mean), ("logvar", logvar)], |t| {
        gaussian_kl(t[0].clone(), t[1].clone())
    });
}

#[test]
fn multinomial_nll() {
    let (n, l) = (3, 6);
    let mut rng = StdRng::seed_from_u64(5);
    let y = counts(&mut rng, n * l);
    let log_probs = uniform(&mut rng, n * l, -6.0, -0.1);
    let loss = MultinomialNllLossConfig::new().init();
    check_gradients("MNLL from logits", &[("logits", log_probs.clone())], |t| {
        loss.forward_logits(
            t[0].clone().reshape([n, l]),
            tensor_f64(y.clone(), [n, l]),
            Reduction::Mean,
        )
    });
    check_gradients("MNLL", &[("log_probs", log_probs)], |t| {
        loss.forward(
            t[0].clone().reshape([n, l]),
            tensor_f64(y.clone(), [n, l]),
            Reduction::Sum,
        )
    });
}

#[test]
fn log1p_mse() {
    let mut rng = StdRng::seed_from_u64(6);
    let y = counts(&mut rng, 5);
    let log_pred = uniform(&mut rng, 5, -1.0, 7.0);
    let loss = Log1pMseLossConfig::new().init();
    check_gradients("log1p-MSE", &[("log_pred", log_pred)], |t| {
        loss.forward(
            t[0].clone().reshape([5, 1]),
            tensor_f64(y.clone(), [5, 1]),
            Reduction::Mean,
        )
    });
}

#[test]
fn bpnet_mixture_with_and_without_peaks() {
    let (n, s, l) = (4, 2, 5);
    let mut rng = StdRng::seed_from_u64(7);
    let y = counts(&mut rng, n * s * l);
    let logits = uniform(&mut rng, n * s * l, -3.0, 3.0);
    let log_counts = uniform(&mut rng, n, 0.0, 6.0);
    let loss = BpnetMixtureLossConfig::new()
        .with_count_loss_weight(2.5)
        .init();
    let device = Default::default();
    for labels in [None, Some([1i64, 0, 1, 1]), Some([0, 0, 0, 0])] {
        let labels: Option<Tensor<AdF64, 1, Int>> =
            labels.map(|v| int_tensor::<AdF64, 1>(&v, [n], &device));
        let report = GradCheck::new(&format!("BPNet mixture, labels {labels:?}"))
            .input("logits", logits.clone())
            .input("log_counts", log_counts.clone())
            .run(|t| {
                loss.forward(
                    tensor_f64(y.clone(), [n, s, l]),
                    t[0].clone().reshape([n, s, l]),
                    t[1].clone().reshape([n, 1]),
                    labels.clone(),
                )
                .total
            });
        assert_eq!(report.entries, n * s * l + n);
    }
}

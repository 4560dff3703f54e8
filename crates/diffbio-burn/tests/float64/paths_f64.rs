//! On float64 backends the host kernels and the generic path agree to float64 accuracy
//! (1e-12 relative), values and gradients, for every element-wise loss, including the
//! large-`theta` regime of the NB/ZINB derivative and the near-prior regime of the KL; and on
//! both paths NaN in gives NaN out. `Autodiff<NdArray<f64>>` only (one float type per test
//! binary: Burn 0.21's first NdArray precision in a process becomes the default for both).

use crate::common::{AdF64 as B, assert_close, assert_native_float_dtype, to_f64};
use burn::tensor::{Tensor, TensorData};
use diffbio_burn::Reduction;
use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
use diffbio_burn::losses::vae::{Reconstruction, VaeLossConfig};
use diffbio_burn::losses::zinb::ZinbLossConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn leaf(v: &[f64], shape: [usize; 2]) -> Tensor<B, 2> {
    Tensor::<B, 2>::from_data(TensorData::new(v.to_vec(), shape), &Default::default())
        .require_grad()
}

/// Values and gradients (of `Σ out · w` with weights of both signs and zeros) of `f` on
/// fresh leaves, for one path.
fn run(
    inputs: &[(Vec<f64>, [usize; 2])],
    f: &dyn Fn(&[Tensor<B, 2>]) -> Tensor<B, 2>,
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let leaves: Vec<Tensor<B, 2>> = inputs.iter().map(|(v, s)| leaf(v, *s)).collect();
    let out = f(&leaves);
    let n = out.shape().num_elements();
    let w: Vec<f64> = (0..n).map(|i| [1.0, -0.5, 0.0, 2.0][i % 4]).collect();
    let w = Tensor::<B, 2>::from_data(TensorData::new(w, out.dims()), &Default::default());
    let grads = (out.clone() * w).sum().backward();
    let gradients = leaves
        .iter()
        .map(|l| l.grad(&grads).map(to_f64).unwrap_or_default())
        .collect();
    (to_f64(out), gradients)
}

fn agree(
    what: &str,
    inputs: &[(Vec<f64>, [usize; 2])],
    f: impl Fn(bool, &[Tensor<B, 2>]) -> Tensor<B, 2>,
) {
    assert_native_float_dtype::<B>(&Default::default());
    let fast = run(inputs, &|l| f(true, l));
    let generic = run(inputs, &|l| f(false, l));
    assert_close(
        &format!("{what}: values"),
        &fast.0,
        &generic.0,
        1e-300,
        1e-12,
    );
    // Gradients: 1e-12 relative, or 1e-15 absolute for derivatives that are small through
    // cancellation of O(1e-2) terms (d/dθ near θ = 8: 1e-6 from terms of 0.02, ~10 ulps).
    for (k, (a, b)) in fast.1.iter().zip(&generic.1).enumerate() {
        assert_close(&format!("{what}: gradient {k}"), a, b, 1e-15, 1e-12);
    }
}

fn nb_inputs(rng: &mut StdRng, n: usize) -> Vec<(Vec<f64>, [usize; 2])> {
    let thetas = [0.3, 2.0, 7.9, 8.0, 30.0, 1e3, 1e5, 1e7, 1e9, 1e10];
    let x: Vec<f64> = (0..n)
        .map(|i| match i % 4 {
            0 => 0.0,
            1 => f64::from(rng.random_range(1..=16)),
            2 => f64::from(rng.random_range(17..5000)),
            _ => f64::from(rng.random_range(0..4)),
        })
        .collect();
    let mu: Vec<f64> = (0..n)
        .map(|_| 10f64.powf(rng.random_range(-5.0..4.0)))
        .collect();
    let theta: Vec<f64> = (0..n).map(|i| thetas[i % thetas.len()]).collect();
    let logits: Vec<f64> = (0..n).map(|_| rng.random_range(-15.0..15.0)).collect();
    [x, mu, theta, logits]
        .into_iter()
        .map(|v| (v, [1, n]))
        .collect()
}

#[test]
fn nb_and_zinb_host_and_generic_agree_to_1e_12() {
    let mut rng = StdRng::seed_from_u64(5);
    let inputs = nb_inputs(&mut rng, 400);
    agree("NB", &inputs[..3], |fast, l| {
        NegativeBinomialLossConfig::new()
            .with_fast_path(fast)
            .init()
            .forward_no_reduction(l[0].clone(), l[1].clone(), l[2].clone())
    });
    agree("ZINB", &inputs, |fast, l| {
        ZinbLossConfig::new()
            .with_fast_path(fast)
            .init()
            .forward_no_reduction(l[0].clone(), l[1].clone(), l[2].clone(), l[3].clone())
    });
}

/// At a zero count where both the dropout probability `σ(l)` and `NB(0)` underflow (`p` below
/// the smallest double), `d/dl = σ(a) - σ(-l)` (`a = log NB(0) - l`) is still an ordinary
/// number: no `0/0`, on both paths.
#[test]
fn zinb_logit_gradient_is_finite_where_p_underflows() {
    // log NB(0) = -θ·ln(1 + μ/θ) = -921.0 at μ = 1e6, θ = 100.
    let (mu, theta) = (1e6f64, 100.0f64);
    let log_nb = -theta * (mu / theta).ln_1p();
    let logits = [-800.0, -921.0, -1000.0, -40.0, 0.0, 30.0];
    let n = logits.len();
    let inputs = [
        (vec![0.0; n], [1, n]),
        (vec![mu; n], [1, n]),
        (vec![theta; n], [1, n]),
        (logits.to_vec(), [1, n]),
    ];
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    for fast in [true, false] {
        let (values, grads) = run(&inputs, &|l| {
            ZinbLossConfig::new()
                .with_fast_path(fast)
                .init()
                .forward_no_reduction(l[0].clone(), l[1].clone(), l[2].clone(), l[3].clone())
        });
        // `run` weighs the outputs by 1, -0.5, 0, 2, 1, -0.5.
        let w = [1.0, -0.5, 0.0, 2.0, 1.0, -0.5];
        for (i, &l) in logits.iter().enumerate() {
            let a = log_nb - l;
            // -log p = -(softplus(a) - softplus(-l)), each softplus as max(.,0) + ln_1p(e^-|.|).
            let softplus = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
            let want_value = -(softplus(a) - softplus(-l));
            let want_d_logit = -(sigmoid(-l) - sigmoid(a)) * w[i];
            assert!(
                (values[i] - want_value).abs() <= 1e-12 * want_value.abs(),
                "fast {fast}, l = {l}: value {} vs {want_value}",
                values[i]
            );
            let got = grads[3][i];
            assert!(
                got.is_finite() && (got - want_d_logit).abs() <= 1e-12 * want_d_logit.abs(),
                "fast {fast}, l = {l}: d/dl {got} vs {want_d_logit}"
            );
        }
    }
}

#[test]
fn vae_host_and_generic_agree_to_1e_12() {
    let mut rng = StdRng::seed_from_u64(6);
    let (b, f, z) = (30, 40, 8);
    let x: Vec<f64> = (0..b * f)
        .map(|_| f64::from(rng.random_range(0..2)))
        .collect();
    let r: Vec<f64> = (0..b * f).map(|_| rng.random_range(-30.0..30.0)).collect();
    // logvar near 0 (the KL's cancelling regime) and far from it.
    let mean: Vec<f64> = (0..b * z).map(|_| rng.random_range(-1e-3..1e-3)).collect();
    let logvar: Vec<f64> = (0..b * z)
        .map(|i| {
            if i % 2 == 0 {
                rng.random_range(-1e-4..1e-4)
            } else {
                rng.random_range(-5.0..5.0)
            }
        })
        .collect();
    for kind in [Reconstruction::Mse, Reconstruction::Bce] {
        let inputs = [(x.clone(), [b, f]), (r.clone(), [b, f])];
        agree(&format!("{kind:?} reconstruction"), &inputs, |fast, l| {
            let loss = VaeLossConfig::new()
                .with_reconstruction(kind)
                .with_fast_path(fast)
                .init();
            let zero = l[0].clone().slice([0..b, 0..1]).zeros_like();
            loss.forward_no_reduction(l[0].clone(), l[1].clone(), zero.clone(), zero)
                .recon
        });
    }
    let inputs = [(mean, [b, z]), (logvar, [b, z])];
    agree("KL", &inputs, |fast, l| {
        let loss = VaeLossConfig::new().with_fast_path(fast).init();
        let x = l[0].clone().zeros_like();
        loss.forward_no_reduction(x.clone(), x, l[0].clone(), l[1].clone())
            .kl
    });
}

/// NaN in any input gives NaN out (value and gradients) on both paths, with validation off,
/// also where a `max`/clamp could swallow it.
#[test]
fn nan_in_gives_nan_out_on_both_paths() {
    let nan = f64::NAN;
    for fast in [true, false] {
        let nb = NegativeBinomialLossConfig::new()
            .with_validate(false)
            .with_fast_path(fast)
            .init();
        let zinb = ZinbLossConfig::new()
            .with_validate(false)
            .with_fast_path(fast)
            .init();
        // Columns: NaN mu at a zero count, NaN mu at a positive count, NaN theta (small and
        // large other columns), NaN logit at a positive and at a zero count.
        let x = leaf(&[0.0, 3.0, 2.0, 0.0, 5.0, 0.0], [1, 6]);
        let mu = leaf(&[nan, nan, 1.0, 1.0, 1.0, 1.0], [1, 6]);
        let theta = leaf(&[2.0, 20.0, nan, nan, 2.0, 2.0], [1, 6]);
        let logits = leaf(&[0.5, 0.5, 0.5, 0.5, nan, nan], [1, 6]);
        let out = to_f64(nb.forward_no_reduction(x.clone(), mu.clone(), theta.clone()));
        assert!(
            out[..4].iter().all(|v| v.is_nan()),
            "NB fast={fast}: {out:?}"
        );
        let total = nb.forward(x.clone(), mu.clone(), theta.clone(), Reduction::Mean);
        assert!(to_f64(total)[0].is_nan(), "NB fast={fast}: reduced value");
        let out = to_f64(zinb.forward_no_reduction(x, mu, theta, logits.clone()));
        assert!(out.iter().all(|v| v.is_nan()), "ZINB fast={fast}: {out:?}");

        let vae = VaeLossConfig::new()
            .with_reconstruction(Reconstruction::Bce)
            .with_validate(false)
            .with_fast_path(fast)
            .init();
        let x = leaf(&[1.0, 0.0], [1, 2]);
        let r = leaf(&[nan, 0.3], [1, 2]);
        let latent = leaf(&[nan, 0.1], [1, 2]);
        let terms = vae.forward_no_reduction(x, r, latent.clone(), latent);
        let (recon, kl) = (to_f64(terms.recon), to_f64(terms.kl));
        assert!(
            recon[0].is_nan() && recon[1].is_finite(),
            "BCE fast={fast}: {recon:?}"
        );
        assert!(
            kl[0].is_nan() && kl[1].is_finite(),
            "KL fast={fast}: {kl:?}"
        );
    }
}

//! The fused host kernels (NdArray, `fast_path = true`) and the generic tensor-op path
//! (`fast_path = false`, what every other backend runs) agree on values and gradients, for
//! every loss and output form: element-wise, per row and each reduction. Seeded random inputs
//! with zero counts, unlabelled regions and a batch without peaks; `Autodiff<NdArray<f32>>`.

use crate::common::{TestNdArray as B, assert_close, to_f64};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use diffbio_burn::Reduction;
use diffbio_burn::losses::bpnet::BpnetMixtureLossConfig;
use diffbio_burn::losses::multinomial::MultinomialNllLossConfig;
use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
use diffbio_burn::losses::vae::{Reconstruction, VaeLossConfig};
use diffbio_burn::losses::zinb::ZinbLossConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const REDUCTIONS: [Reduction; 3] = [Reduction::Mean, Reduction::Sum, Reduction::BatchMean];

fn random(rng: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

fn counts(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            if i % 3 == 0 {
                0.0
            } else {
                rng.random_range(0..40) as f32
            }
        })
        .collect()
}

fn leaf<const D: usize>(v: &[f32], shape: [usize; D]) -> Tensor<B, D> {
    Tensor::<B, D>::from_data(TensorData::new(v.to_vec(), shape), &Default::default())
        .require_grad()
}

/// Runs `f` with the fast path and the generic path on fresh leaves made from `inputs`, and
/// compares the outputs and the gradients of their sum w.r.t. every leaf.
fn agree<const D: usize, const DO: usize>(
    what: &str,
    inputs: &[(Vec<f32>, [usize; D])],
    f: impl Fn(bool, &[Tensor<B, D>]) -> Vec<Tensor<B, DO>>,
) {
    let run = |fast: bool| {
        let leaves: Vec<Tensor<B, D>> = inputs.iter().map(|(v, s)| leaf(v, *s)).collect();
        let outputs = f(fast, &leaves);
        let values: Vec<Vec<f64>> = outputs.iter().map(|o| to_f64(o.clone())).collect();
        let total = outputs
            .into_iter()
            .map(|o| o.sum())
            .reduce(|a, b| a + b)
            .expect("an output");
        let grads = total.backward();
        let gradients: Vec<Vec<f64>> = leaves
            .iter()
            .map(|l| l.grad(&grads).map(to_f64).unwrap_or_default())
            .collect();
        (values, gradients)
    };
    let (fast, generic) = (run(true), run(false));
    for (i, (a, b)) in fast.0.iter().zip(&generic.0).enumerate() {
        assert_close(&format!("{what}: output {i}"), a, b, 1e-5, 1e-4);
    }
    for (i, (a, b)) in fast.1.iter().zip(&generic.1).enumerate() {
        assert_close(&format!("{what}: gradient {i}"), a, b, 1e-5, 1e-4);
    }
}

#[test]
fn negative_binomial_and_zinb() {
    let (b, g) = (6, 7);
    let mut rng = StdRng::seed_from_u64(1);
    let x = counts(&mut rng, b * g);
    let mu = random(&mut rng, b * g, 0.01, 50.0);
    let theta = random(&mut rng, b * g, 0.1, 200.0);
    let logits = random(&mut rng, b * g, -5.0, 5.0);
    let inputs = [(mu, [b, g]), (theta, [b, g]), (logits, [b, g])];
    let xt = || Tensor::<B, 2>::from_data(TensorData::new(x.clone(), [b, g]), &Default::default());
    agree("NB element-wise", &inputs, |fast, t| {
        let nb = NegativeBinomialLossConfig::new()
            .with_fast_path(fast)
            .init();
        vec![nb.forward_no_reduction(xt(), t[0].clone(), t[1].clone())]
    });
    agree("ZINB element-wise", &inputs, |fast, t| {
        let zinb = ZinbLossConfig::new().with_fast_path(fast).init();
        vec![zinb.forward_no_reduction(xt(), t[0].clone(), t[1].clone(), t[2].clone())]
    });
    for reduction in REDUCTIONS {
        agree(
            &format!("NB {reduction:?}, per-gene theta"),
            &inputs,
            |fast, t| {
                let nb = NegativeBinomialLossConfig::new()
                    .with_fast_path(fast)
                    .init();
                let theta = t[1].clone().slice([0..1, 0..g]).reshape([g]);
                vec![
                    nb.forward(xt(), t[0].clone(), theta, reduction.clone())
                        .reshape([1, 1]),
                ]
            },
        );
        agree(&format!("ZINB {reduction:?}"), &inputs, |fast, t| {
            let zinb = ZinbLossConfig::new().with_fast_path(fast).init();
            let l = zinb.forward(
                xt(),
                t[0].clone(),
                t[1].clone(),
                t[2].clone(),
                reduction.clone(),
            );
            vec![l.reshape([1, 1])]
        });
    }
}

#[test]
fn vae_terms() {
    let (b, f, l) = (5, 9, 3);
    let mut rng = StdRng::seed_from_u64(2);
    let x_real = random(&mut rng, b * f, -2.0, 2.0);
    let x_binary: Vec<f32> = (0..b * f).map(|i| (i % 2) as f32).collect();
    let inputs = [
        (random(&mut rng, b * f, -20.0, 20.0), [b, f]),
        (random(&mut rng, b * l, -3.0, 3.0), [b, l]),
        (random(&mut rng, b * l, -8.0, 8.0), [b, l]),
    ];
    for (kind, x) in [
        (Reconstruction::Mse, &x_real),
        (Reconstruction::Bce, &x_binary),
    ] {
        let xt =
            || Tensor::<B, 2>::from_data(TensorData::new(x.clone(), [b, f]), &Default::default());
        agree(&format!("VAE {kind:?} terms"), &inputs, |fast, t| {
            let vae = VaeLossConfig::new()
                .with_reconstruction(kind)
                .with_fast_path(fast)
                .init();
            let terms = vae.forward_no_reduction(xt(), t[0].clone(), t[1].clone(), t[2].clone());
            vec![terms.recon, terms.kl]
        });
        for reduction in REDUCTIONS {
            agree(
                &format!("VAE {kind:?} {reduction:?}"),
                &inputs,
                |fast, t| {
                    let vae = VaeLossConfig::new()
                        .with_reconstruction(kind)
                        .with_kl_weight(0.3)
                        .with_fast_path(fast)
                        .init();
                    let e = vae.forward(
                        xt(),
                        t[0].clone(),
                        t[1].clone(),
                        t[2].clone(),
                        reduction.clone(),
                    );
                    vec![
                        e.loss.reshape([1, 1]),
                        e.recon.reshape([1, 1]),
                        e.kl.reshape([1, 1]),
                    ]
                },
            );
        }
    }
}

#[test]
fn multinomial_and_mixture() {
    let (n, s, l) = (4, 2, 6);
    let mut rng = StdRng::seed_from_u64(3);
    let y = counts(&mut rng, n * s * l);
    let inputs = [
        (random(&mut rng, n * s * l, -4.0, 4.0), [n, s * l]),
        (random(&mut rng, n, 0.0, 6.0), [n, 1]),
    ];
    let yt =
        || Tensor::<B, 3>::from_data(TensorData::new(y.clone(), [n, s, l]), &Default::default());
    agree("MNLL per row", &inputs, |fast, t| {
        let mnll = MultinomialNllLossConfig::new().with_fast_path(fast).init();
        let log_probs = log_softmax(t[0].clone().reshape([n, s, l]), 2);
        let per_row: Tensor<B, 2> = mnll.forward_no_reduction(log_probs, yt());
        vec![per_row]
    });
    agree("MNLL from logits per row", &inputs, |fast, t| {
        let mnll = MultinomialNllLossConfig::new().with_fast_path(fast).init();
        let per_row: Tensor<B, 2> =
            mnll.forward_logits_no_reduction(t[0].clone().reshape([n, s, l]), yt());
        vec![per_row]
    });
    for reduction in REDUCTIONS {
        agree(
            &format!("MNLL from logits {reduction:?}"),
            &inputs,
            |fast, t| {
                let mnll = MultinomialNllLossConfig::new().with_fast_path(fast).init();
                let logits = t[0].clone().reshape([n, s, l]);
                vec![
                    mnll.forward_logits(logits, yt(), reduction.clone())
                        .reshape([1, 1]),
                ]
            },
        );
        agree(&format!("MNLL {reduction:?}"), &inputs, |fast, t| {
            let mnll = MultinomialNllLossConfig::new().with_fast_path(fast).init();
            let log_probs = log_softmax(t[0].clone().reshape([n, s, l]), 2);
            vec![
                mnll.forward(log_probs, yt(), reduction.clone())
                    .reshape([1, 1]),
            ]
        });
    }
    let device = Default::default();
    for labels in [None, Some([1i64, 0, 1, 1]), Some([0, 0, 0, 0])] {
        let labels = labels
            .map(|v| Tensor::<B, 1, Int>::from_data(TensorData::new(v.to_vec(), [n]), &device));
        let mixture = |fast: bool| {
            BpnetMixtureLossConfig::new()
                .with_count_loss_weight(3.0)
                .with_fast_path(fast)
                .init()
        };
        agree(
            &format!("mixture per region, labels {labels:?}"),
            &inputs,
            |fast, t| {
                let logits = t[0].clone().reshape([n, s, l]);
                let parts =
                    mixture(fast).forward_no_reduction(yt(), logits, t[1].clone(), labels.clone());
                vec![
                    parts.profile.reshape([n, 1]),
                    parts.count.reshape([n, 1]),
                    parts.total.reshape([n, 1]),
                ]
            },
        );
        for reduction in REDUCTIONS {
            agree(
                &format!("mixture {reduction:?}, labels {labels:?}"),
                &inputs,
                |fast, t| {
                    let logits = t[0].clone().reshape([n, s, l]);
                    let parts = mixture(fast).forward_reduced(
                        yt(),
                        logits,
                        t[1].clone(),
                        labels.clone(),
                        reduction.clone(),
                    );
                    vec![
                        parts.profile.reshape([1, 1]),
                        parts.count.reshape([1, 1]),
                        parts.total.reshape([1, 1]),
                    ]
                },
            );
        }
    }
}

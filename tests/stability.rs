//! Stability sweep: seeded random inputs over the whole documented domain of each loss give
//! finite losses and finite gradients in float32 (counts 0..1e6, mu 1e-8..1e6,
//! theta 1e-4..1e6, logits ±50, logvar ±20), including the corners of the domain.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Tensor, TensorData, backend::Backend};
use diffbio_burn::Reduction;
use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
use diffbio_burn::losses::zinb::ZinbLossConfig;
use rand::{Rng, SeedableRng, rngs::StdRng};

type A32 = Autodiff<NdArray<f32>>;

const N: usize = 4096;

fn log_uniform(rng: &mut StdRng, lo: f64, hi: f64, corners: bool) -> Vec<f32> {
    let mut v: Vec<f32> = (0..N)
        .map(|_| rng.random_range(lo.ln()..hi.ln()).exp() as f32)
        .collect();
    if corners {
        v[0] = lo as f32;
        v[1] = hi as f32;
    }
    v
}

fn counts(rng: &mut StdRng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..N)
        .map(|_| match rng.random_range(0..4) {
            0 => 0.0,
            1 => rng.random_range(0..10) as f32,
            _ => {
                rng.random_range(0f64..6.0).exp().round() as f32
                    * 10f32.powi(rng.random_range(0..4))
            }
        })
        .map(|c: f32| c.min(1e6))
        .collect();
    v[0] = 0.0;
    v[1] = 1e6;
    v
}

fn uniform(rng: &mut StdRng, lo: f64, hi: f64) -> Vec<f32> {
    let mut v: Vec<f32> = (0..N).map(|_| rng.random_range(lo..hi) as f32).collect();
    v[0] = lo as f32;
    v[1] = hi as f32;
    v
}

fn tensor<B: Backend>(v: Vec<f32>) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(v, [64, N / 64]), &Default::default())
}

fn assert_finite<B: Backend, const D: usize>(what: &str, t: Tensor<B, D>) {
    let v: Vec<f32> = t.into_data().to_vec().unwrap();
    let bad: Vec<_> = v
        .iter()
        .enumerate()
        .filter(|(_, x)| !x.is_finite())
        .take(5)
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: non-finite values at (index, value) {bad:?}"
    );
}

#[test]
fn nb_and_zinb_are_finite_over_the_domain() {
    for seed in 0..4u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = tensor::<A32>(counts(&mut rng));
        // Shuffle the corner positions between inputs so extreme values meet each other.
        let mut mu_v = log_uniform(&mut rng, 1e-8, 1e6, true);
        mu_v.rotate_left(seed as usize);
        let mu = tensor::<A32>(mu_v).require_grad();
        let theta = tensor::<A32>(log_uniform(&mut rng, 1e-4, 1e6, true)).require_grad();
        let logits = tensor::<A32>(uniform(&mut rng, -50.0, 50.0)).require_grad();

        let nb = NegativeBinomialLossConfig::new().init();
        let nll = nb.forward_no_reduction(x.clone(), mu.clone(), theta.clone());
        assert_finite("NB nll", nll.clone());
        let grads = nll.sum().backward();
        assert_finite("NB d/dmu", mu.grad(&grads).unwrap());
        assert_finite("NB d/dtheta", theta.grad(&grads).unwrap());

        let zinb = ZinbLossConfig::new().init();
        let nll = zinb.forward_no_reduction(x, mu.clone(), theta.clone(), logits.clone());
        assert_finite("ZINB nll", nll.clone());
        let grads = nll.sum().backward();
        assert_finite("ZINB d/dmu", mu.grad(&grads).unwrap());
        assert_finite("ZINB d/dtheta", theta.grad(&grads).unwrap());
        assert_finite("ZINB d/dpi_logits", logits.grad(&grads).unwrap());

        let mean = nb.forward(
            tensor::<A32>(counts(&mut rng)),
            tensor::<A32>(log_uniform(&mut rng, 1e-8, 1e6, true)),
            tensor::<A32>(log_uniform(&mut rng, 1e-4, 1e6, true)),
            Reduction::Mean,
        );
        assert_finite("NB mean", mean);
    }
}

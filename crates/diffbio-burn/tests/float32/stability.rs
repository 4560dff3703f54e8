//! Stability sweep: seeded random inputs over the whole documented domain of each loss give
//! finite losses and finite gradients in float32 (counts 0..1e6, mu 1e-8..1e6,
//! theta 1e-4..1e6, logits ±50, logvar ±20), including the corners of the domain, on every
//! backend the suite runs on.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use diffbio_burn::Reduction;
use diffbio_burn::losses::bpnet::BpnetMixtureLossConfig;
use diffbio_burn::losses::log1p_mse::Log1pMseLossConfig;
use diffbio_burn::losses::multinomial::MultinomialNllLossConfig;
use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
use diffbio_burn::losses::vae::{Reconstruction, VaeLossConfig};
use diffbio_burn::losses::zinb::ZinbLossConfig;
use rand::{Rng, SeedableRng, rngs::StdRng};

const N: usize = 4096;
const ROWS: usize = 64;

fn log_uniform(rng: &mut StdRng, lo: f64, hi: f64) -> Vec<f32> {
    let mut v: Vec<f32> = (0..N)
        .map(|_| rng.random_range(lo.ln()..hi.ln()).exp() as f32)
        .collect();
    v[0] = lo as f32;
    v[1] = hi as f32;
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

fn tensor<B: AutodiffBackend, const D: usize>(v: Vec<f32>, shape: [usize; D]) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v, shape), &Default::default())
}

fn matrix<B: AutodiffBackend>(v: Vec<f32>) -> Tensor<B, 2> {
    tensor(v, [ROWS, N / ROWS])
}

fn assert_finite<B: Backend, const D: usize>(what: &str, t: Tensor<B, D>) {
    let v: Vec<f32> = t.into_data().convert::<f32>().to_vec().unwrap();
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

fn grad<B: AutodiffBackend, const D: usize>(
    x: &Tensor<B, D>,
    grads: &B::Gradients,
) -> Tensor<B::InnerBackend, D> {
    x.grad(grads).expect("a gradient")
}

fn nb_and_zinb<B: AutodiffBackend>() {
    for seed in 0..4u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let x = matrix::<B>(counts(&mut rng));
        // Shift the corner positions between inputs so extreme values meet each other.
        let mut mu_v = log_uniform(&mut rng, 1e-8, 1e6);
        mu_v.rotate_left(seed as usize);
        let mu = matrix::<B>(mu_v).require_grad();
        let theta = matrix::<B>(log_uniform(&mut rng, 1e-4, 1e6)).require_grad();
        let logits = matrix::<B>(uniform(&mut rng, -50.0, 50.0)).require_grad();

        let nb = NegativeBinomialLossConfig::new().init();
        let nll = nb.forward_no_reduction(x.clone(), mu.clone(), theta.clone());
        assert_finite("NB nll", nll.clone());
        let grads = nll.sum().backward();
        assert_finite("NB d/dmu", grad(&mu, &grads));
        assert_finite("NB d/dtheta", grad(&theta, &grads));

        let zinb = ZinbLossConfig::new().init();
        let nll = zinb.forward_no_reduction(x, mu.clone(), theta.clone(), logits.clone());
        assert_finite("ZINB nll", nll.clone());
        let grads = nll.sum().backward();
        assert_finite("ZINB d/dmu", grad(&mu, &grads));
        assert_finite("ZINB d/dtheta", grad(&theta, &grads));
        assert_finite("ZINB d/dpi_logits", grad(&logits, &grads));

        let per_gene_theta = tensor::<B, 1>(
            log_uniform(&mut rng, 1e-4, 1e6)[..N / ROWS].to_vec(),
            [N / ROWS],
        );
        let mean = nb.forward(
            matrix::<B>(counts(&mut rng)),
            matrix::<B>(log_uniform(&mut rng, 1e-8, 1e6)),
            per_gene_theta,
            Reduction::Mean,
        );
        assert_finite("NB mean", mean);
    }
}

fn vae<B: AutodiffBackend>() {
    for seed in 0..4u64 {
        let mut rng = StdRng::seed_from_u64(100 + seed);
        let x_recon = matrix::<B>(uniform(&mut rng, -50.0, 50.0)).require_grad();
        let mean = matrix::<B>(uniform(&mut rng, -20.0, 20.0)).require_grad();
        let logvar = matrix::<B>(uniform(&mut rng, -20.0, 20.0)).require_grad();
        let binary: Vec<f32> = (0..N).map(|_| rng.random_range(0..2) as f32).collect();
        let real = uniform(&mut rng, -50.0, 50.0);
        for (reconstruction, x) in [(Reconstruction::Bce, binary), (Reconstruction::Mse, real)] {
            let loss = VaeLossConfig::new()
                .with_reconstruction(reconstruction)
                .init();
            let elbo = loss.forward(
                matrix::<B>(x),
                x_recon.clone(),
                mean.clone(),
                logvar.clone(),
                Reduction::BatchMean,
            );
            assert_finite("ELBO", elbo.loss.clone());
            let grads = elbo.loss.backward();
            assert_finite("ELBO d/dx_recon", grad(&x_recon, &grads));
            assert_finite("ELBO d/dmean", grad(&mean, &grads));
            assert_finite("ELBO d/dlogvar", grad(&logvar, &grads));
        }
    }
}

fn bpnet<B: AutodiffBackend>() {
    let (n, s, l) = (8, 2, N / 16);
    for seed in 0..4u64 {
        let mut rng = StdRng::seed_from_u64(200 + seed);
        let y = tensor::<B, 3>(counts(&mut rng), [n, s, l]);
        let logits = tensor::<B, 3>(uniform(&mut rng, -50.0, 50.0), [n, s, l]).require_grad();
        let log_counts =
            tensor::<B, 2>(uniform(&mut rng, -50.0, 50.0)[..n].to_vec(), [n, 1]).require_grad();
        let labels = (0..n)
            .map(|_| rng.random_range(0..2i64))
            .collect::<Vec<_>>();
        let labels =
            Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [n]), &Default::default());
        let loss = BpnetMixtureLossConfig::new()
            .with_count_loss_weight(100.0)
            .init();
        let parts = loss.forward(y.clone(), logits.clone(), log_counts.clone(), Some(labels));
        assert_finite("BPNet total", parts.total.clone());
        let grads = parts.total.backward();
        assert_finite("BPNet d/dlogits", grad(&logits, &grads));
        assert_finite("BPNet d/dlog_counts", grad(&log_counts, &grads));

        let flat_y = y.reshape([n * s, l]);
        let log_probs =
            burn::tensor::activation::log_softmax(logits.clone().reshape([n * s, l]), 1);
        let mnll = MultinomialNllLossConfig::new().init().forward(
            log_probs,
            flat_y.clone(),
            Reduction::Mean,
        );
        assert_finite("MNLL", mnll.clone());
        assert_finite("MNLL d/dlogits", grad(&logits, &mnll.backward()));

        let mse = Log1pMseLossConfig::new().init().forward(
            log_counts.clone(),
            flat_y.sum_dim(1).reshape([n, s]).sum_dim(1),
            Reduction::Mean,
        );
        assert_finite("log1p-MSE", mse.clone());
        assert_finite("log1p-MSE d/dlog_pred", grad(&log_counts, &mse.backward()));
    }
}

backend_tests!(nb_and_zinb, vae, bpnet);

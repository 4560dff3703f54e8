//! Forward + backward timings of the losses at the shapes of the peer benchmarks
//! (`benches/peers/`): NB and ZINB `[512, 2000]` with per-gene theta, VAE ELBO `[512, 2000]`
//! with latent `[512, 10]`, multinomial NLL (from logits, as BPNet's profile head gives them,
//! and from log-probabilities) and the BPNet mixture loss `[64, 2, 1000]`,
//! log1p-MSE `[64, 1]`.
//!
//! `cargo bench --bench losses` runs them on `Autodiff<NdArray<f32>>`; with
//! `--features wgpu` the same benchmarks also run on `Autodiff<Wgpu>` (groups suffixed
//! `_wgpu`). Inputs are seeded and scRNA-like (NB counts, ~75 % zeros). Validation is off, as
//! in a training loop; each iteration ends with a device sync so lazy backends are timed
//! fully. The allocator is the examples' (mimalloc, keeping freed memory; see
//! `examples/common/alloc.rs`): with glibc's, the `[512, 2000]` losses spent about a fifth
//! of their time faulting their fresh output buffers in from the kernel.
//! The calling thread is one of rayon's workers, as in the examples (see
//! `examples/common/threads.rs`).

use burn::backend::{Autodiff, NdArray};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use criterion::{Criterion, criterion_group, criterion_main};
use diffbio_burn::Reduction;
use diffbio_burn::losses::bpnet::BpnetMixtureLossConfig;
use diffbio_burn::losses::log1p_mse::Log1pMseLossConfig;
use diffbio_burn::losses::multinomial::MultinomialNllLossConfig;
use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
use diffbio_burn::losses::vae::VaeLossConfig;
use diffbio_burn::losses::zinb::ZinbLossConfig;

#[path = "../examples/common/alloc.rs"]
mod alloc;
mod data;
#[path = "../examples/common/threads.rs"]
mod threads;

/// Runs `f` as criterion benchmark `group/id` (reported under `target/criterion/group/id`).
fn bench(c: &mut Criterion, group: &str, id: &str, f: impl FnMut(&mut criterion::Bencher)) {
    c.benchmark_group(group).bench_function(id, f);
}

fn sync<B: AutodiffBackend>(device: &B::Device) {
    B::sync(device).expect("device sync");
}

fn tensor<B: AutodiffBackend, const D: usize>(
    v: Vec<f32>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn count_losses<B: AutodiffBackend>(c: &mut Criterion, suffix: &str, device: &B::Device) {
    let (cells, genes) = (512, 2000);
    let d = data::ScRna::new(cells, genes, 0);
    let counts = tensor::<B, 2>(d.counts, [cells, genes], device);
    let mu = tensor::<B, 2>(d.mu, [cells, genes], device);
    let theta = tensor::<B, 1>(d.theta, [genes], device);
    let pi_logits = tensor::<B, 2>(d.pi_logits, [cells, genes], device);

    let nb = NegativeBinomialLossConfig::new()
        .with_validate(false)
        .init();
    bench(c, &format!("nb{suffix}"), "fwd_bwd_512x2000", |b| {
        b.iter(|| {
            let (mu, theta) = (mu.clone().require_grad(), theta.clone().require_grad());
            let loss = nb.forward(counts.clone(), mu, theta, Reduction::Mean);
            let _grads = loss.backward();
            sync::<B>(device);
        })
    });

    let zinb = ZinbLossConfig::new().with_validate(false).init();
    bench(c, &format!("zinb{suffix}"), "fwd_bwd_512x2000", |b| {
        b.iter(|| {
            let mu = mu.clone().require_grad();
            let theta = theta.clone().require_grad();
            let pi_logits = pi_logits.clone().require_grad();
            let loss = zinb.forward(counts.clone(), mu, theta, pi_logits, Reduction::Mean);
            let _grads = loss.backward();
            sync::<B>(device);
        })
    });
}

fn vae<B: AutodiffBackend>(c: &mut Criterion, suffix: &str, device: &B::Device) {
    let (cells, features, latent) = (512, 2000, 10);
    let x = tensor::<B, 2>(data::normal(cells * features, 1), [cells, features], device);
    let x_recon = tensor::<B, 2>(data::normal(cells * features, 2), [cells, features], device);
    let mean = tensor::<B, 2>(data::normal(cells * latent, 3), [cells, latent], device);
    let logvar = tensor::<B, 2>(data::normal(cells * latent, 4), [cells, latent], device);
    let loss = VaeLossConfig::new().with_validate(false).init();
    bench(c, &format!("vae{suffix}"), "fwd_bwd_512x2000_l10", |b| {
        b.iter(|| {
            let elbo = loss.forward(
                x.clone(),
                x_recon.clone().require_grad(),
                mean.clone().require_grad(),
                logvar.clone().require_grad(),
                Reduction::Mean,
            );
            let _grads = elbo.loss.backward();
            sync::<B>(device);
        })
    });
}

fn bpnet<B: AutodiffBackend>(c: &mut Criterion, suffix: &str, device: &B::Device) {
    let (n, s, l) = (64, 2, 1000);
    let d = data::Profiles::new(n, s, l, 5);
    let y = tensor::<B, 3>(d.y, [n, s, l], device);
    let logits = tensor::<B, 3>(d.logits, [n, s, l], device);
    let log_counts = tensor::<B, 2>(d.log_counts, [n, 1], device);
    let labels = Tensor::<B, 1, Int>::from_data(TensorData::new(d.labels, [n]), device);

    let mnll = MultinomialNllLossConfig::new().with_validate(false).init();
    let flat_y = y.clone().reshape([n, s * l]);
    let log_probs = log_softmax(logits.clone().reshape([n, s * l]), 1);
    bench(c, &format!("mnll{suffix}"), "fwd_bwd_64x2x1000", |b| {
        b.iter(|| {
            let logits = logits.clone().require_grad().reshape([n, s * l]);
            let loss = mnll.forward_logits(logits, flat_y.clone(), Reduction::Mean);
            let _grads = loss.backward();
            sync::<B>(device);
        })
    });

    bench(
        c,
        &format!("mnll{suffix}"),
        "fwd_bwd_64x2000_log_probs",
        |b| {
            b.iter(|| {
                let log_probs = log_probs.clone().require_grad();
                let loss = mnll.forward(log_probs, flat_y.clone(), Reduction::Mean);
                let _grads = loss.backward();
                sync::<B>(device);
            })
        },
    );

    let mixture = BpnetMixtureLossConfig::new()
        .with_count_loss_weight(d.count_loss_weight)
        .with_validate(false)
        .init();
    bench(
        c,
        &format!("bpnet_mixture{suffix}"),
        "fwd_bwd_64x2x1000",
        |b| {
            b.iter(|| {
                let parts = mixture.forward(
                    y.clone(),
                    logits.clone().require_grad(),
                    log_counts.clone().require_grad(),
                    Some(labels.clone()),
                );
                let _grads = parts.total.backward();
                sync::<B>(device);
            })
        },
    );

    let mse = Log1pMseLossConfig::new().with_validate(false).init();
    let totals = y.sum_dim(2).sum_dim(1).reshape([n, 1]);
    bench(c, &format!("log1p_mse{suffix}"), "fwd_bwd_64", |b| {
        b.iter(|| {
            let loss = mse.forward(
                log_counts.clone().require_grad(),
                totals.clone(),
                Reduction::Mean,
            );
            let _grads = loss.backward();
            sync::<B>(device);
        })
    });
}

fn all<B: AutodiffBackend>(c: &mut Criterion, suffix: &str) {
    let device = B::Device::default();
    count_losses::<B>(c, suffix, &device);
    vae::<B>(c, suffix, &device);
    bpnet::<B>(c, suffix, &device);
}

fn benches(c: &mut Criterion) {
    threads::join_rayon_pool();
    alloc::keep_freed_memory();
    all::<Autodiff<NdArray<f32>>>(c, "");
    #[cfg(feature = "wgpu")]
    all::<Autodiff<burn::backend::Wgpu>>(c, "_wgpu");
}

criterion_group! {
    name = losses;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = benches
}
criterion_main!(losses);

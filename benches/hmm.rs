//! Forward + backward of the HMM loss on `Autodiff<NdArray<f32>>`, per algorithm:
//! `cargo bench --bench hmm` (criterion group `hmm`, ids `fwd_bwd_b{B}_t{T}_s{S}_{algorithm}`;
//! the median is the middle of the reported `time: [low median high]`).
//!
//! Cases: `B = 64, T = 1000, S = 4, E = 4` (the reference point; DiffBio JAX takes
//! about 10 ms) and `B = 8, T = 10000, S = 8, E = 4` (long sequences). Validation is switched
//! off, as in a training loop over trusted data. Filter with criterion's own argument, e.g.
//! `cargo bench --bench hmm -- host`.

#[path = "../examples/common/alloc.rs"]
mod alloc;
#[path = "../examples/common/threads.rs"]
mod threads;

use std::hint::black_box;
use std::time::Duration;

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
#[cfg(feature = "wgpu")]
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use diffbio_burn::Reduction;
use diffbio_burn::hmm::{Hmm, HmmAlgorithm, HmmConfig};

type B = Autodiff<NdArray<f32>>;

/// `(label, algorithm, taped_gradient)`.
const VARIANTS: [(&str, HmmAlgorithm, bool); 5] = [
    ("host", HmmAlgorithm::Host, false),
    ("sequential", HmmAlgorithm::Sequential, false),
    ("sequential-taped", HmmAlgorithm::Sequential, true),
    ("scan", HmmAlgorithm::ParallelScan, false),
    ("scan-taped", HmmAlgorithm::ParallelScan, true),
];

fn data<B: AutodiffBackend>(b: usize, t: usize, s: usize, e: usize) -> (Hmm<B>, Tensor<B, 2, Int>) {
    let device = Default::default();
    let truth = HmmConfig::new(s, e)
        .with_seed(1)
        .with_init_scale(1.0)
        .init::<B>(&device);
    let x = truth.sample(b, t, 2).observations;
    let model = HmmConfig::new(s, e)
        .with_seed(3)
        .init::<B>(&device)
        .with_validate(false);
    (model, x)
}

fn forward_backward(c: &mut Criterion) {
    threads::join_rayon_pool();
    alloc::keep_freed_memory();
    let mut group = c.benchmark_group("hmm");
    for (b, t, s, e) in [(64, 1000, 4, 4), (8, 10_000, 8, 4)] {
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(5));
        let (model, x) = data::<B>(b, t, s, e);
        for (label, algorithm, taped) in VARIANTS {
            // The taped tensor-op variants take seconds per step at T = 10,000 on a CPU.
            if taped && t > 1000 {
                continue;
            }
            let hmm = model
                .clone()
                .with_algorithm(algorithm)
                .with_taped_gradient(taped);
            group.bench_function(format!("fwd_bwd_b{b}_t{t}_s{s}_{label}"), |bench| {
                bench.iter(|| {
                    let loss = hmm.forward(x.clone(), None, Reduction::Mean);
                    black_box(loss.backward())
                })
            });
        }
    }
    group.finish();
}

/// The host kernel alone: value only, on the inference backend (no autodiff, no counts).
fn host_value_only(c: &mut Criterion) {
    let mut group = c.benchmark_group("hmm_value_only");
    group.sample_size(20);
    let (model, x) = data::<B>(64, 1000, 4, 4);
    let hmm = model.valid().with_algorithm(HmmAlgorithm::Host);
    let x = x.inner();
    group.bench_function("b64_t1000_s4_host", |bench| {
        bench.iter(|| black_box(hmm.log_likelihood(x.clone(), None)))
    });
    group.finish();
}

/// With the `wgpu` feature: the two tensor algorithms on `Autodiff<Wgpu>` (`T` sequential
/// kernel launches against `O(log T)` scan levels), group `hmm_wgpu`. Each iteration ends with
/// a device sync.
#[cfg(feature = "wgpu")]
fn wgpu_forward_backward(c: &mut Criterion) {
    type W = Autodiff<burn::backend::Wgpu>;
    let mut group = c.benchmark_group("hmm_wgpu");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    let (b, t, s, e) = (64, 1000, 4, 4);
    let (model, x) = data::<W>(b, t, s, e);
    let device = Default::default();
    for (label, algorithm) in [
        ("sequential", HmmAlgorithm::Sequential),
        ("scan", HmmAlgorithm::ParallelScan),
    ] {
        let hmm = model.clone().with_algorithm(algorithm);
        group.bench_function(format!("fwd_bwd_b{b}_t{t}_s{s}_{label}"), |bench| {
            bench.iter(|| {
                let loss = hmm.forward(x.clone(), None, Reduction::Mean);
                let grads = loss.backward();
                W::sync(&device).expect("device sync");
                black_box(grads)
            })
        });
    }
    group.finish();
}

#[cfg(not(feature = "wgpu"))]
criterion_group!(benches, forward_backward, host_value_only);
#[cfg(feature = "wgpu")]
criterion_group!(
    benches,
    forward_backward,
    host_value_only,
    wgpu_forward_backward
);
criterion_main!(benches);

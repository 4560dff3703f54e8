//! What the VAE ELBO's reconstruction pass costs in arithmetic, apart from the crate: the MSE
//! over `[512, 2000]` `f32` inputs with its gradient, summed, on rayon's pool in the crate's
//! pieces of 16,384 elements, three ways:
//!
//! - `scratch_f64`: `f64` arithmetic, each block's values into a scratch array summed
//!   afterwards (the crate's `host::pointwise` until 2026-12-03);
//! - `lanes_f64`: `f64` arithmetic in groups of eight with one accumulator per lane (the
//!   crate's `host::pointwise` now);
//! - `lanes_f32`: the same in `f32` arithmetic (the sum still in `f64`), which rounds the
//!   gradient twice where the `f64` versions round it once: what the crate does not do.
//!
//! `cargo bench --bench vae_kernel`. The inputs and the gradient (12 MB) stay mostly in the
//! L3 cache between iterations, as in the loss bench, so arithmetic shows, not only bytes.
//! README.md's *Limit* paragraph on the VAE ELBO quotes these.

#[path = "../examples/common/alloc.rs"]
mod alloc;
#[path = "../examples/common/threads.rs"]
mod threads;

use std::hint::black_box;
use std::mem::MaybeUninit;

use criterion::{Criterion, criterion_group, criterion_main};
use rayon::prelude::*;

/// The crate's piece of work per rayon task (`host::CHUNK`).
const CHUNK: usize = 1 << 14;
/// Accumulators per group (`host::simd::LANES`).
const LANES: usize = 8;
/// `2 / n` of `Reduction::Mean` over `[512, 2000]`.
const SCALE: f64 = 2.0 / (512.0 * 2000.0);

type Piece = fn(&[f32], &[f32], &mut [MaybeUninit<f32>]) -> f64;

#[target_feature(enable = "avx2,fma")]
fn scratch_f64(x: &[f32], r: &[f32], d: &mut [MaybeUninit<f32>]) -> f64 {
    const BLOCK: usize = 1024;
    let mut scratch = [0.0f64; BLOCK];
    let mut total = 0.0;
    for first in (0..d.len()).step_by(BLOCK) {
        let block = &mut scratch[..BLOCK.min(d.len() - first)];
        for (i, value) in block.iter_mut().enumerate() {
            let j = first + i;
            let diff = f64::from(r[j]) - f64::from(x[j]);
            *value = diff * diff;
            d[j].write((diff * SCALE) as f32);
        }
        let mut acc = [0.0f64; LANES];
        for group in block.chunks_exact(LANES) {
            for (a, v) in acc.iter_mut().zip(group) {
                *a += v;
            }
        }
        total += acc.iter().sum::<f64>();
    }
    total
}

#[target_feature(enable = "avx2,fma")]
fn lanes_f64(x: &[f32], r: &[f32], d: &mut [MaybeUninit<f32>]) -> f64 {
    let mut acc = [0.0f64; LANES];
    let groups = x.chunks_exact(LANES).zip(r.chunks_exact(LANES));
    for ((x, r), d) in groups.zip(d.chunks_exact_mut(LANES)) {
        for lane in 0..LANES {
            let diff = f64::from(r[lane]) - f64::from(x[lane]);
            acc[lane] += diff * diff;
            d[lane].write((diff * SCALE) as f32);
        }
    }
    acc.iter().sum()
}

#[target_feature(enable = "avx2,fma")]
fn lanes_f32(x: &[f32], r: &[f32], d: &mut [MaybeUninit<f32>]) -> f64 {
    let scale = SCALE as f32;
    let mut acc = [0.0f64; LANES];
    let groups = x.chunks_exact(LANES).zip(r.chunks_exact(LANES));
    for ((x, r), d) in groups.zip(d.chunks_exact_mut(LANES)) {
        for lane in 0..LANES {
            let diff = r[lane] - x[lane];
            acc[lane] += f64::from(diff) * f64::from(diff);
            d[lane].write(diff * scale);
        }
    }
    acc.iter().sum()
}

/// One call: a fresh uninitialised gradient, the pieces in parallel, the total.
fn pass(x: &[f32], r: &[f32], piece: Piece) -> (Vec<f32>, f64) {
    let n = x.len();
    let mut d = Vec::with_capacity(n);
    let total = d.spare_capacity_mut()[..n]
        .par_chunks_mut(CHUNK)
        .enumerate()
        .map(|(c, d)| {
            let span = c * CHUNK..c * CHUNK + d.len();
            piece(&x[span.clone()], &r[span], d)
        })
        .sum();
    // SAFETY: the pieces cover `0..n` and each wrote every element of its slice.
    unsafe { d.set_len(n) };
    (d, total)
}

fn benches(c: &mut Criterion) {
    threads::join_rayon_pool();
    alloc::keep_freed_memory();
    assert!(
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
        "this bench needs AVX2 and FMA"
    );
    let n = 512 * 2000;
    let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 100.0).collect();
    let r: Vec<f32> = (0..n)
        .map(|i| ((i * 104_729) % 1000) as f32 / 97.0)
        .collect();
    // SAFETY (each cast): the CPU has AVX2 and FMA (asserted above).
    let variants: [(&str, Piece); 3] = [
        ("scratch_f64", |x, r, d| unsafe { scratch_f64(x, r, d) }),
        ("lanes_f64", |x, r, d| unsafe { lanes_f64(x, r, d) }),
        ("lanes_f32", |x, r, d| unsafe { lanes_f32(x, r, d) }),
    ];
    let mut group = c.benchmark_group("vae_kernel");
    for (name, piece) in variants {
        group.bench_function(name, |b| b.iter(|| black_box(pass(&x, &r, piece))));
    }
}

criterion_group! {
    name = vae_kernel;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(vae_kernel);

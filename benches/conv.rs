//! Forward + backward of BPNet's three kinds of convolution layer on a training batch
//! (`[64, C, L]`, `Autodiff<NdArray<f32>>`): the fused `diffbio_burn::nn::conv1d` against
//! Burn's own `Conv1d::forward`.
//!
//! `cargo bench --bench conv`. The layers are the BPNet example's: the stem (4 → 32
//! channels, width 21, on 846 bp of one-hot DNA), a dilated tower layer (32 → 32, width 3,
//! dilation 8) and the profile head (32 → 2, width 75, on the 574 bp around the output
//! window). Burn's convolution takes about a second per iteration on some of these, so
//! criterion runs its minimum of 10 samples.

use burn::backend::{Autodiff, NdArray};
use burn::nn::PaddingConfig1d;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use diffbio_burn::nn::conv1d;

type B = Autodiff<NdArray<f32>>;

fn layer(c_in: usize, c_out: usize, k: usize, dilation: usize) -> Conv1d<B> {
    let pad = dilation * (k - 1) / 2;
    Conv1dConfig::new(c_in, c_out, k)
        .with_dilation(dilation)
        .with_padding(PaddingConfig1d::Explicit(pad, pad))
        .init(&Default::default())
}

fn benches(c: &mut Criterion) {
    let layers = [
        ("stem_4to32_k21_846", layer(4, 32, 21, 1), 4, 846),
        ("tower_32to32_k3_d8_846", layer(32, 32, 3, 8), 32, 846),
        ("head_32to2_k75_574", layer(32, 2, 75, 1), 32, 574),
    ];
    for (name, conv, c_in, len) in layers {
        let x = Tensor::<B, 3>::random([64, c_in, len], Distribution::Default, &Default::default());
        let mut group = c.benchmark_group(format!("conv1d/{name}"));
        group.sample_size(10);
        group.bench_function("diffbio_burn", |b| {
            b.iter(|| {
                let x = x.clone().require_grad();
                let _grads = conv1d(&conv, x).sum().backward();
            })
        });
        group.bench_function("burn", |b| {
            b.iter(|| {
                let x = x.clone().require_grad();
                let _grads = conv.forward(x).sum().backward();
            })
        });
        group.finish();
    }
}

criterion_group!(conv, benches);
criterion_main!(conv);

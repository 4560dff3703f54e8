//! `nn::conv1d` in float32 against Burn's own `Conv1d::forward` on every backend built (on
//! NdArray the fused host kernel, elsewhere Burn's convolution itself): values and gradients
//! agree to float32 rounding of sums of 4·21 to 32·75 products.

use crate::common::{assert_close, to_f64};
use burn::nn::PaddingConfig1d;
use burn::nn::conv::Conv1dConfig;
use burn::tensor::activation::relu;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor};
use diffbio_burn::nn::{conv1d, conv1d_relu, residual_conv1d_relu};

fn fused_conv1d_matches_burn<B: AutodiffBackend>() {
    let device = Default::default();
    // Seeded: with the ReLU, an output within float32 rounding of 0 could take the other
    // side of the mask on one of the two paths; this draw has none.
    B::seed(&device, 17);
    // BPNet's stem, one dilated tower layer and the profile head: all three strategies.
    for (c_in, c_out, k, dilation) in [(4, 32, 21, 1), (32, 32, 3, 16), (32, 2, 75, 1)] {
        let pad = dilation * (k - 1) / 2;
        let conv = Conv1dConfig::new(c_in, c_out, k)
            .with_dilation(dilation)
            .with_padding(PaddingConfig1d::Explicit(pad, pad))
            .init::<B>(&device);
        let _ = (conv.weight.val(), conv.bias.as_ref().map(|b| b.val()));
        let x = Tensor::<B, 3>::random([3, c_in, 150], Distribution::Normal(0.0, 1.0), &device);
        let u = Tensor::<B, 3>::random([3, c_out, 150], Distribution::Normal(0.0, 1.0), &device);
        // 0: the convolution, 1: with the ReLU, 2: a residual layer `x + relu(conv(x))`.
        let run = |ours: bool, variant: usize| {
            let x = x.clone().require_grad();
            let y = match (ours, variant) {
                (true, 0) => conv1d(&conv, x.clone()),
                (false, 0) => conv.forward(x.clone()),
                (true, 1) => conv1d_relu(&conv, x.clone()),
                (false, 1) => relu(conv.forward(x.clone())),
                (true, _) => residual_conv1d_relu(&conv, x.clone()),
                (false, _) => x.clone() + relu(conv.forward(x.clone())),
            };
            let grads = (y.clone() * u.clone()).sum().backward();
            let bias = conv.bias.as_ref().unwrap().grad(&grads).unwrap();
            [
                to_f64(y),
                to_f64(x.grad(&grads).unwrap()),
                to_f64(conv.weight.grad(&grads).unwrap()),
                to_f64(bias),
            ]
        };
        let variants = if c_in == c_out { 0..3 } else { 0..2 };
        for variant in variants {
            let (ours, burns) = (run(true, variant), run(false, variant));
            for (what, (a, b)) in ["y", "dx", "dw", "db"].iter().zip(ours.iter().zip(&burns)) {
                // Entries are sums of up to 2400 products of O(1) terms (dw: 3·150 per tap).
                let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                assert_close(
                    &format!("{c_in}->{c_out} k{k}, variant {variant}: {what}"),
                    a,
                    b,
                    1e-5 * scale,
                    1e-5,
                );
            }
        }
    }
}

backend_tests!(fused_conv1d_matches_burn);

//! `nn::softmax` in float32 against Burn's own `softmax` on every backend built (on NdArray
//! the fused host kernel, elsewhere Burn's softmax itself): values and input gradients agree
//! to float32 rounding, on scVI's decoder shape.

use crate::common::to_f64;
use burn::tensor::activation;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor};
use diffbio_burn::nn::softmax;

fn fused_softmax_matches_burn<B: AutodiffBackend>() {
    let device = Default::default();
    let x = Tensor::<B, 2>::random([8, 765], Distribution::Normal(0.0, 3.0), &device);
    let w = Tensor::<B, 2>::random([8, 765], Distribution::Normal(0.0, 1.0), &device);
    let run = |ours: bool| {
        let x = x.clone().require_grad();
        let y = if ours {
            softmax(x.clone(), 1)
        } else {
            activation::softmax(x.clone(), 1)
        };
        let grads = (y.clone() * w.clone()).sum().backward();
        (to_f64(y), to_f64(x.grad(&grads).unwrap()))
    };
    let ((y, dx), (y_burn, dx_burn)) = (run(true), run(false));
    for i in 0..y.len() {
        // Values: relative to themselves; gradients y ⊙ (w - Σ w ⊙ y) relative to y (|w| of
        // order 1, so the difference rounds at ~1e-7 of it), with float32's exp and sums.
        let tol = 1e-5 * y_burn[i];
        assert!(
            (y[i] - y_burn[i]).abs() <= tol,
            "y[{i}]: {} vs {}",
            y[i],
            y_burn[i]
        );
        let tol = 1e-5 * y_burn[i] * (1.0 + dx_burn[i].abs() / y_burn[i].max(1e-30));
        assert!(
            (dx[i] - dx_burn[i]).abs() <= tol,
            "dx[{i}]: {} vs {}",
            dx[i],
            dx_burn[i]
        );
    }
}

backend_tests!(fused_softmax_matches_burn);

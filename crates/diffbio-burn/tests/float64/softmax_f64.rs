//! `nn::softmax` (the fused host softmax) against Burn's own `softmax`, values and input
//! gradients, on `Autodiff<NdArray<f64>>` and plain `NdArray<f64>`: scVI's shape, ranks 1–3,
//! rows of one element, wide logit ranges, `-∞` entries, NaN rows, and a non-last `dim`
//! (which takes Burn's path).

use crate::common::{AdF64 as B, F64, assert_close, assert_native_float_dtype, to_f64};
use burn::tensor::activation;
use burn::tensor::{Tensor, TensorData};
use diffbio_burn::nn::softmax;

/// Logits with a spread of ~±60 and some exact ties, deterministic.
fn logits(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let t = (i as f64 * 0.618_033_988_749_895).fract();
            if i % 7 == 3 { 1.5 } else { 120.0 * t - 60.0 }
        })
        .collect()
}

/// Values and the gradient of `Σ y ⊙ w` (weights of both signs) for one softmax.
fn run<const D: usize>(
    x: &[f64],
    shape: [usize; D],
    f: impl Fn(Tensor<B, D>) -> Tensor<B, D>,
) -> (Vec<f64>, Vec<f64>) {
    let x = Tensor::<B, D>::from_data(TensorData::new(x.to_vec(), shape), &Default::default())
        .require_grad();
    let y = f(x.clone());
    let n = y.shape().num_elements();
    let w: Vec<f64> = (0..n).map(|i| [1.0, -0.5, 0.0, 2.0, 0.25][i % 5]).collect();
    let w = Tensor::<B, D>::from_data(TensorData::new(w, shape), &Default::default());
    let grads = (y.clone() * w).sum().backward();
    (
        to_f64(y),
        to_f64(x.grad(&grads).expect("x gets a gradient")),
    )
}

fn agree<const D: usize>(what: &str, x: &[f64], shape: [usize; D], dim: usize) {
    assert_native_float_dtype::<B>(&Default::default());
    let ours = run(x, shape, |x| softmax(x, dim));
    let burn = run(x, shape, |x| activation::softmax(x, dim));
    assert_close(&format!("{what}: values"), &ours.0, &burn.0, 1e-300, 1e-12);
    // dx = y ⊙ (dy - Σ dy ⊙ y) is a difference of O(1) terms times y: both computations
    // round relative to y (with |dy| <= 2 here), not to dx, which cancels to ~0 where dy is
    // close to the weighted mean.
    for (i, ((a, b), y)) in ours.1.iter().zip(&burn.1).zip(&burn.0).enumerate() {
        assert!(
            (a - b).abs() <= 1e-12 * b.abs().max(4.0 * y),
            "{what}: gradient [{i}] {a} vs {b} (y = {y})"
        );
    }
}

#[test]
fn fused_softmax_matches_burn_to_1e_12() {
    agree("scVI decoder [16, 765]", &logits(16 * 765), [16, 765], 1);
    agree("rank 1", &logits(37), [37], 0);
    agree("rank 3, last dim", &logits(2 * 3 * 9), [2, 3, 9], 2);
    agree("rows of one", &logits(5), [5, 1], 1);
    agree(
        "rank 3, middle dim (Burn's path)",
        &logits(2 * 3 * 9),
        [2, 3, 9],
        1,
    );
    let mut with_inf = logits(4 * 6);
    with_inf[2] = f64::NEG_INFINITY;
    with_inf[13] = f64::NEG_INFINITY;
    agree("-inf entries", &with_inf, [4, 6], 1);
}

#[test]
fn nan_in_a_row_gives_a_nan_row_and_leaves_the_others() {
    let mut x = logits(3 * 5);
    x[6] = f64::NAN;
    let (ours, burn) = (
        run(&x, [3, 5], |x| softmax(x, 1)).0,
        run(&x, [3, 5], |x| activation::softmax(x, 1)).0,
    );
    for (i, (a, b)) in ours.iter().zip(&burn).enumerate() {
        if (5..10).contains(&i) {
            assert!(a.is_nan() && b.is_nan(), "element {i}: {a} / {b}");
        } else {
            assert!((a - b).abs() <= 1e-12 * b.abs(), "element {i}: {a} vs {b}");
        }
    }
}

#[test]
fn inference_path_matches_burn() {
    let x = logits(8 * 33);
    let t =
        || Tensor::<F64, 2>::from_data(TensorData::new(x.clone(), [8, 33]), &Default::default());
    let ours = to_f64(softmax(t(), 1));
    let burn = to_f64(activation::softmax(t(), 1));
    assert_close("NdArray<f64> values", &ours, &burn, 1e-300, 1e-12);
}

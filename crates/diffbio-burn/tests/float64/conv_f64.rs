//! `nn::conv1d` (the fused host convolution) against Burn's own `Conv1d::forward`, values and
//! the gradients of input, weight and bias, on `Autodiff<NdArray<f64>>` and on plain
//! `NdArray<f64>`, for the shapes BPNet uses and the edges of the padding arithmetic; and
//! `nn::conv1d_relu` (the ReLU fused in) against `relu(Conv1d::forward)`; and
//! `nn::residual_conv1d_relu` against `x + relu(Conv1d::forward(x))`.

use crate::common::{AdF64 as B, F64, assert_close, assert_native_float_dtype, to_f64};
use burn::module::{AutodiffModule, Param};
use burn::nn::PaddingConfig1d;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Distribution, Tensor, TensorData};
use diffbio_burn::nn::{conv1d, conv1d_relu, residual_conv1d_relu};

/// `(batch, c_in, c_out, kernel, dilation, padding, length, bias)`.
type Case = (
    usize,
    usize,
    usize,
    usize,
    usize,
    PaddingConfig1d,
    usize,
    bool,
);

fn cases() -> Vec<Case> {
    use PaddingConfig1d::{Explicit, Valid};
    vec![
        // BPNet's stem, a dilated tower layer and the profile head.
        (3, 4, 8, 21, 1, Explicit(10, 10), 60, true),
        (2, 8, 8, 3, 8, Explicit(8, 8), 40, true),
        (2, 8, 2, 75, 1, Explicit(37, 37), 90, true),
        // A head wider than its input: most taps read only padding.
        (2, 5, 2, 75, 1, Explicit(37, 37), 12, true),
        // Valid, asymmetric and one-sided padding, no bias, a single sample and channel.
        (2, 3, 4, 5, 2, Valid, 20, true),
        (3, 3, 5, 4, 3, Explicit(4, 1), 17, false),
        (1, 1, 1, 3, 1, Explicit(0, 2), 7, true),
        // Padding wider than the reach.
        (2, 2, 3, 3, 1, Explicit(5, 4), 6, true),
    ]
}

fn layer(case: &Case) -> Conv1d<B> {
    let &(_, c_in, c_out, k, dilation, ref padding, _, bias) = case;
    let conv = Conv1dConfig::new(c_in, c_out, k)
        .with_dilation(dilation)
        .with_padding(padding.clone())
        .with_bias(bias)
        .init::<B>(&Default::default());
    // Parameters initialise lazily, per clone: fix them before the layer is cloned.
    let _ = (conv.weight.val(), conv.bias.as_ref().map(|b| b.val()));
    conv
}

fn input(case: &Case, seed: u64) -> Vec<f64> {
    let &(n, c_in, .., len, _) = case;
    <B as burn::tensor::backend::Backend>::seed(&Default::default(), seed);
    to_f64(Tensor::<B, 3>::random(
        [n, c_in, len],
        Distribution::Normal(0.0, 1.0),
        &Default::default(),
    ))
}

/// Output and gradients of `Σ y · u` (u with both signs and zeros) w.r.t. x, weight, bias.
fn run(
    conv: &Conv1d<B>,
    x: &[f64],
    shape: [usize; 3],
    forward: impl Fn(&Conv1d<B>, Tensor<B, 3>) -> Tensor<B, 3>,
) -> [Vec<f64>; 4] {
    let x = Tensor::<B, 3>::from_data(TensorData::new(x.to_vec(), shape), &Default::default())
        .require_grad();
    let y = forward(conv, x.clone());
    let u: Vec<f64> = (0..y.shape().num_elements())
        .map(|i| [1.0, -0.5, 0.0, 2.0, 0.25][i % 5])
        .collect();
    let u = Tensor::<B, 3>::from_data(TensorData::new(u, y.dims()), &Default::default());
    let grads = (y.clone() * u).sum().backward();
    let bias = conv
        .bias
        .as_ref()
        .map(|b| to_f64(b.grad(&grads).unwrap()))
        .unwrap_or_default();
    [
        to_f64(y),
        to_f64(x.grad(&grads).unwrap()),
        to_f64(conv.weight.grad(&grads).unwrap()),
        bias,
    ]
}

/// The outputs of [`run`] for ours and Burn's layer agree in size and to 1e-13 / 1e-12.
fn assert_runs_agree(label: &str, ours: &[Vec<f64>; 4], burns: &[Vec<f64>; 4]) {
    for (what, (a, b)) in ["output", "d/dx", "d/dweight", "d/dbias"]
        .iter()
        .zip(ours.iter().zip(burns))
    {
        assert_eq!(a.len(), b.len(), "{label}: {what}: sizes");
        assert_close(&format!("{label}: {what}"), a, b, 1e-13, 1e-12);
    }
}

/// `ours` and `burns` agree to 1e-13 / 1e-12 without autodiff (plain `NdArray<f64>`, where
/// the host kernel runs untracked), on a new layer of `case` and the input `x` of its shape.
fn assert_inference_agrees(
    label: &str,
    case: &Case,
    x: Vec<f64>,
    ours: impl Fn(&Conv1d<F64>, Tensor<F64, 3>) -> Tensor<F64, 3>,
    burns: impl Fn(&Conv1d<F64>, Tensor<F64, 3>) -> Tensor<F64, 3>,
) {
    let plain = layer(case).valid();
    let (n, c_in, len) = (case.0, case.1, case.6);
    let x = Tensor::<F64, 3>::from_data(TensorData::new(x, [n, c_in, len]), &Default::default());
    let (ours, burns) = (to_f64(ours(&plain, x.clone())), to_f64(burns(&plain, x)));
    assert_close(&format!("{label}: inference"), &ours, &burns, 1e-13, 1e-12);
}

#[test]
fn fused_conv1d_equals_burns_values_and_gradients() {
    assert_native_float_dtype::<B>(&Default::default());
    for (i, case) in cases().iter().enumerate() {
        let conv = layer(case);
        let (n, c_in, len) = (case.0, case.1, case.6);
        let x = input(case, i as u64);
        let ours = run(&conv, &x, [n, c_in, len], conv1d);
        let burns = run(&conv, &x, [n, c_in, len], |c, x| c.forward(x));
        assert_runs_agree(&format!("case {i} {case:?}"), &ours, &burns);
    }
}

#[test]
fn fused_conv1d_relu_equals_burns_conv_then_relu() {
    for (i, case) in cases().iter().enumerate() {
        let conv = layer(case);
        let (n, c_in, len) = (case.0, case.1, case.6);
        let x = input(case, 100 + i as u64);
        let ours = run(&conv, &x, [n, c_in, len], conv1d_relu);
        let burns = run(&conv, &x, [n, c_in, len], |c, x| relu(c.forward(x)));
        // About half the outputs are clipped: the masks must agree, not just the sums.
        let clipped = burns[0].iter().filter(|&&v| v == 0.0).count();
        assert!(
            clipped > 0 && clipped < burns[0].len(),
            "case {i}: {clipped} clipped"
        );
        let label = format!("case {i} relu");
        assert_runs_agree(&label, &ours, &burns);
        assert_inference_agrees(&label, case, x, conv1d_relu, |c, x| relu(c.forward(x)));
    }
}

/// Layers that keep their input's shape: a dilated tower layer, one channel with one-sided
/// padding, no bias, a 1-wide kernel.
fn residual_cases() -> Vec<Case> {
    use PaddingConfig1d::{Explicit, Valid};
    vec![
        (2, 8, 8, 3, 8, Explicit(8, 8), 40, true),
        (1, 1, 1, 3, 1, Explicit(0, 2), 7, true),
        (3, 4, 4, 5, 2, Explicit(4, 4), 30, false),
        (2, 6, 6, 1, 1, Valid, 9, true),
    ]
}

#[test]
fn fused_residual_conv1d_relu_equals_burns_x_plus_relu_conv() {
    let burns_layer = |c: &Conv1d<B>, x: Tensor<B, 3>| x.clone() + relu(c.forward(x));
    for (i, case) in residual_cases().iter().enumerate() {
        let conv = layer(case);
        let (n, c_in, len) = (case.0, case.1, case.6);
        let x = input(case, 200 + i as u64);
        let ours = run(&conv, &x, [n, c_in, len], residual_conv1d_relu);
        let burns = run(&conv, &x, [n, c_in, len], burns_layer);
        // Both gradient paths of x must be there: the ReLU clips part of the outputs (the
        // convolution's path is masked there, the residual's is not).
        let conv_out = to_f64(relu(conv.forward(Tensor::<B, 3>::from_data(
            TensorData::new(x.clone(), [n, c_in, len]),
            &Default::default(),
        ))));
        let clipped = conv_out.iter().filter(|&&v| v == 0.0).count();
        assert!(
            clipped > 0 && clipped < conv_out.len(),
            "case {i}: {clipped} clipped"
        );
        let label = format!("case {i} residual");
        assert_runs_agree(&label, &ours, &burns);
        assert_inference_agrees(&label, case, x, residual_conv1d_relu, |c, x| {
            x.clone() + relu(c.forward(x))
        });
    }
}

#[test]
#[should_panic(expected = "residual_conv1d_relu: the convolution's output [3, 8, 60]")]
fn residual_conv1d_relu_rejects_a_layer_that_changes_the_shape() {
    // The stem: 4 channels in, 8 out.
    let conv = layer(&cases()[0]);
    let x = Tensor::<B, 3>::zeros([3, 4, 60], &Default::default());
    let _ = residual_conv1d_relu(&conv, x);
}

#[test]
fn fused_conv1d_tracks_only_what_requires_grad() {
    let case = &cases()[1];
    let conv = layer(case);
    let frozen = Conv1d {
        weight: Param::from_tensor(conv.weight.val()).set_require_grad(false),
        ..conv.clone()
    };
    let x = Tensor::<B, 3>::from_data(
        TensorData::new(input(case, 7), [2, 8, 40]),
        &Default::default(),
    );
    let grads = conv1d(&frozen, x.clone()).sum().backward();
    assert!(
        frozen.weight.grad(&grads).is_none(),
        "a frozen weight gets no gradient"
    );
    let bias = frozen
        .bias
        .as_ref()
        .unwrap()
        .grad(&grads)
        .map(to_f64)
        .unwrap();
    let expected = to_f64(
        frozen
            .forward(x)
            .sum_dim(2)
            .sum_dim(0)
            .ones_like()
            .mul_scalar(40.0 * 2.0),
    );
    assert_close("bias gradient of a sum", &bias, &expected, 1e-12, 1e-12);
}

#[test]
fn fused_conv1d_without_autodiff_equals_burns() {
    for (i, case) in cases().iter().enumerate() {
        let x = input(case, i as u64);
        assert_inference_agrees(&format!("case {i}"), case, x, conv1d, |c, x| c.forward(x));
    }
}

#[test]
#[should_panic]
fn fused_conv1d_rejects_wrong_channels_like_burn() {
    let conv = layer(&cases()[0]);
    let x = Tensor::<B, 3>::zeros([2, 3, 40], &Default::default());
    let _ = conv1d(&conv, x);
}

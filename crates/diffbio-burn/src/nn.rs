//! Layers that genomics models train with, where Burn's own kernel is slow on a backend.
//!
//! [`conv1d`] is `burn::nn::conv::Conv1d::forward` with a fused host kernel: profile models
//! such as BPNet stack dilated 1-D convolutions over long sequences with few channels, a shape
//! on which `burn-ndarray` 0.21's convolution is slow: forward + backward of BPNet's layers on
//! a `[64, C, ~850]` batch take 1.9–2.5 s with it and 11–32 ms with this kernel
//! (`benches/conv.rs`). [`conv1d_relu`] fuses the ReLU that follows each of BPNet's stem and
//! tower convolutions into the same kernel, and [`residual_conv1d_relu`] the tower's residual
//! addition as well.
//!
//! [`softmax`] is `burn::tensor::activation::softmax` with a fused host kernel over the last
//! dimension: scVI's decoder turns every cell's gene scores into proportions with it, and
//! Burn's composite (five element-wise passes forward, more backward, each on one thread on
//! `burn-ndarray`) was a visible part of a training step.

use burn::nn::conv::Conv1d;
use burn::tensor::{DType, Tensor, backend::Backend};

use crate::dispatch::host_or;

/// `conv.forward(x)`, computed by a fused host kernel where that applies.
///
/// ```text
/// y[n, o, t] = b[o] + Σ_{c, j} w[o, c, j] · x[n, c, t + j·dilation - padding_left]
/// ```
///
/// with zeros outside the input. For tensors in host memory (`NdArray<f32|f64>` and
/// `Autodiff` of them) and a stride-1, one-group convolution with `Valid` or `Explicit`
/// padding, each tap is one matrix product per sample on strided views of the input, and the
/// backward pass is one custom `burn-autodiff` operation of the same products transposed
/// (no padded, shifted or stacked copies; samples in parallel). Every other case, and every
/// other backend, calls `conv.forward(x)`; both compute the same convolution in the
/// tensors' precision.
///
/// # Shapes
/// - `x`: `[batch, channels_in, length]`
/// - output: `[batch, channels_out, length + padding_left + padding_right - dilation·(kernel - 1)]`
///
/// # Panics
/// As `Conv1d::forward`: if `x`'s channels differ from the layer's input channels or the
/// output would be empty.
pub fn conv1d<B: Backend>(conv: &Conv1d<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let geometry = host_geometry(conv, &x, false, false);
    host_or!(
        B,
        geometry.is_some(),
        host_conv1d(conv, x, geometry.expect("checked")),
        conv.forward(x)
    )
}

/// `relu(conv.forward(x))`: [`conv1d`] with the ReLU fused into the host kernel's output
/// pass and its backward step (the upstream gradient masked by `y > 0` before the transposed
/// products), where the host kernel applies; `relu(conv.forward(x))` elsewhere. Profile
/// models apply a ReLU after every convolution of the stem and the tower, and on
/// `burn-ndarray` the separate ReLU is a pass forward and two backward over the layer's
/// whole output, on one thread.
///
/// # Shapes and panics
/// As [`conv1d`].
pub fn conv1d_relu<B: Backend>(conv: &Conv1d<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let geometry = host_geometry(conv, &x, true, false);
    host_or!(
        B,
        geometry.is_some(),
        host_conv1d(conv, x, geometry.expect("checked")),
        burn::tensor::activation::relu(conv.forward(x))
    )
}

/// `x + relu(conv.forward(x))`, a residual layer (BPNet's dilated tower): [`conv1d_relu`]
/// with the addition of `x` fused into the host kernel's output pass, and in the backward step
/// the input's gradient starting from the upstream gradient (the residual path) before the
/// transposed products add the convolution's. Where the host kernel does not apply,
/// `x.clone() + relu(conv.forward(x))`. On `burn-ndarray` the separate addition is a pass
/// over the layer's output forward and another backward (the two gradients of `x` summed),
/// each on one thread.
///
/// # Shapes
/// - `x`: `[batch, channels, length]`; output: the same. The layer must keep both: as many
///   output channels as input channels, and padding that keeps the length.
///
/// # Panics
/// As [`conv1d`], and if the convolution's output shape differs from `x`'s.
pub fn residual_conv1d_relu<B: Backend>(conv: &Conv1d<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let geometry = host_geometry(conv, &x, true, true);
    host_or!(
        B,
        geometry.is_some(),
        host_conv1d(conv, x, geometry.expect("checked")),
        {
            let y = burn::tensor::activation::relu(conv.forward(x.clone()));
            assert_eq!(
                y.dims(),
                x.dims(),
                "residual_conv1d_relu: the convolution's output {:?} differs from its input \
                 x {:?}",
                y.dims(),
                x.dims()
            );
            x + y
        }
    )
}

#[cfg(feature = "ndarray")]
type Geometry = crate::host::conv::Geometry;
#[cfg(not(feature = "ndarray"))]
type Geometry = ();

/// The sizes for the host kernel, if it applies to this layer and input.
#[cfg(feature = "ndarray")]
fn host_geometry<B: Backend>(
    conv: &Conv1d<B>,
    x: &Tensor<B, 3>,
    relu: bool,
    residual: bool,
) -> Option<Geometry> {
    use burn::nn::PaddingConfig1d;
    use burn::tensor::DType;

    let [n, c_in, len] = x.dims();
    let [c_out, w_in, k] = conv.weight.dims();
    let (pad_left, pad_right) = match conv.padding {
        PaddingConfig1d::Valid => (0, 0),
        PaddingConfig1d::Explicit(left, right) => (left, right),
        PaddingConfig1d::Same => return None,
    };
    let reach = conv.dilation * (k - 1);
    let simple = conv.stride == 1 && conv.groups == 1 && c_in == w_in;
    let float =
        matches!(x.dtype(), DType::F32 | DType::F64) && conv.weight.val().dtype() == x.dtype();
    let padded = len + pad_left + pad_right;
    let sizes = n > 0 && c_in > 0 && c_out > 0 && k > 0 && padded > reach;
    let keeps_shape = c_out == c_in && padded - reach.min(padded) == len;
    (simple && float && sizes && (keeps_shape || !residual)).then_some(Geometry {
        n,
        c_in,
        c_out,
        k,
        len,
        dilation: conv.dilation,
        pad_left,
        out_len: padded - reach,
        relu,
        residual,
    })
}

#[cfg(not(feature = "ndarray"))]
fn host_geometry<B: Backend>(
    _: &Conv1d<B>,
    _: &Tensor<B, 3>,
    _: bool,
    _: bool,
) -> Option<Geometry> {
    None
}

#[cfg(feature = "ndarray")]
fn host_conv1d<B: Backend>(conv: &Conv1d<B>, x: Tensor<B, 3>, geometry: Geometry) -> Tensor<B, 3> {
    let bias = match &conv.bias {
        Some(bias) => bias.val(),
        None => Tensor::zeros([geometry.c_out], (&x.device(), x.dtype())),
    };
    crate::host::conv::conv1d(x, conv.weight.val(), bias, geometry)
}

/// `softmax(x, dim)`, computed by a fused host kernel where that applies.
///
/// ```text
/// y = exp(x - max x) / Σ exp(x - max x)        (along `dim`)
/// ```
///
/// For tensors in host memory (`NdArray<f32|f64>` and `Autodiff` of them) and `dim` the last
/// dimension: one multi-threaded pass over the rows in `f64`, rounded once to the tensor's
/// precision, and one custom `burn-autodiff` operation for the backward pass
/// (`dx = y ⊙ (dy - Σ dy ⊙ y)`). Every other case, and every other backend, calls
/// `burn::tensor::activation::softmax(x, dim)`. NaN in a row gives a NaN row on both.
///
/// # Shapes
/// - `x`: any; output: the same.
///
/// # Panics
/// If `dim >= D`, as Burn's `softmax`.
pub fn softmax<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let host = dim + 1 == D
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && x.shape().num_elements() > 0;
    host_or!(
        B,
        host,
        crate::host::softmax::softmax_last(x),
        burn::tensor::activation::softmax(x, dim)
    )
}

//! A fused softmax over the last dimension for tensors in host memory, with its backward pass.
//!
//! ```text
//! y = exp(x - max x) / Σ exp(x - max x)          (per row)
//! dx = y ⊙ (dy - Σ dy ⊙ y)
//! ```
//!
//! One parallel pass over the rows forward (Burn's composite softmax is five element-wise
//! passes: max, subtract, exp, sum, divide, each on one thread on `burn-ndarray`) and one
//! backward, as a single custom `burn-autodiff` operation that keeps only `y`. Arithmetic is
//! in `f64` ([`super::special::exp`], call-free so that the rows vectorise), rounded once to
//! the tensors' precision. NaN anywhere in a row makes the row NaN, as Burn's does.

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorMetadata, TensorPrimitive};
use rayon::prelude::*;

use super::autodiff::primitive;
use super::special::exp;
use super::{CHUNK, HostFloat, HostTensor, downcast, simd, tensor_from};
use crate::special::is_autodiff;

/// Softmax over the last dimension of `x`, tracked by `burn-autodiff` as one operation where
/// `B` is `Autodiff<NdArray<_>>`. The caller checks that `B` keeps tensors in host memory,
/// that `x` is `F32` or `F64` and not empty.
pub(crate) fn softmax_last<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    match x.dtype() {
        DType::F32 => softmax_in::<B, f32, D>(x),
        DType::F64 => softmax_in::<B, f64, D>(x),
        other => unreachable!("host softmax on {other:?}"),
    }
}

fn softmax_in<B: Backend, E: HostFloat, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let shape = x.dims();
    let y = forward::<E>(HostTensor::of(&x).slice(), shape[D - 1]);
    if is_autodiff(&x) {
        if core::any::TypeId::of::<B>() == core::any::TypeId::of::<Autodiff<NdArray<f32>>>() {
            return tracked::<B, NdArray<f32>, E, D>(x, y);
        }
        if core::any::TypeId::of::<B>() == core::any::TypeId::of::<Autodiff<NdArray<f64>>>() {
            return tracked::<B, NdArray<f64>, E, D>(x, y);
        }
        unreachable!("host softmax on an autodiff backend other than Autodiff<NdArray<_>>");
    }
    tensor_from::<B, E, D>(y, shape, &x.device())
}

/// Rows of `len` elements per rayon task: at least one row, about [`CHUNK`] elements.
fn rows_per_task(len: usize) -> usize {
    (CHUNK / len.max(1)).max(1) * len.max(1)
}

/// The softmax of each row of `x` (rows of `len`).
fn forward<E: HostFloat>(x: &[E], len: usize) -> Vec<E> {
    let mut y = vec![E::from_f64(0.0); x.len()];
    let chunk = rows_per_task(len);
    y.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each_init(Vec::new, |scratch, (y, x)| {
            for (y, x) in y.chunks_mut(len).zip(x.chunks(len)) {
                simd::dispatch!(
                    row_forward::<_, { simd::BASELINE_FMA }>,
                    row_forward_wide,
                    (scratch, x, y)
                );
            }
        });
    y
}

/// [`row_forward`] compiled for AVX2+FMA (see [`simd`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn row_forward_wide<E: HostFloat>(scratch: &mut Vec<f64>, x: &[E], y: &mut [E]) {
    row_forward::<E, true>(scratch, x, y)
}

/// One row: `e = exp(x - max)` in `scratch`, then `y = e / Σ e`. A NaN is not the maximum
/// (comparisons with it are false) but `NaN - max` is NaN, and so is the sum.
#[inline(always)]
fn row_forward<E: HostFloat, const FMA: bool>(scratch: &mut Vec<f64>, x: &[E], y: &mut [E]) {
    scratch.clear();
    scratch.extend(x.iter().map(|v| v.to_f64()));
    let max = simd::lanes_fold(scratch, f64::NEG_INFINITY, |m, v| if v > m { v } else { m });
    for e in scratch.iter_mut() {
        *e = exp::<E, FMA>(*e - max);
    }
    let inv_sum = simd::lanes_fold(scratch, 0.0, |a, v| a + v).recip();
    for (y, e) in y.iter_mut().zip(scratch.iter()) {
        *y = E::from_f64(e * inv_sum);
    }
}

/// `dx = y ⊙ (dy - Σ dy ⊙ y)` per row (rows of `len`).
fn backward<E: HostFloat>(y: &[E], dy: &[E], len: usize) -> Vec<E> {
    let mut dx = vec![E::from_f64(0.0); y.len()];
    let chunk = rows_per_task(len);
    dx.par_chunks_mut(chunk)
        .zip(y.par_chunks(chunk).zip(dy.par_chunks(chunk)))
        .for_each(|(dx, (y, dy))| {
            for ((dx, y), dy) in dx.chunks_mut(len).zip(y.chunks(len)).zip(dy.chunks(len)) {
                simd::dispatch!(row_backward, row_backward_wide, (y, dy, dx));
            }
        });
    dx
}

/// [`row_backward`] compiled for AVX2+FMA (see [`simd`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn row_backward_wide<E: HostFloat>(y: &[E], dy: &[E], dx: &mut [E]) {
    row_backward(y, dy, dx)
}

/// One row of [`backward`]: the dot product in lanes ([`simd::lanes_dot`]), then the update.
#[inline(always)]
fn row_backward<E: HostFloat>(y: &[E], dy: &[E], dx: &mut [E]) {
    let dot = simd::lanes_dot(y, dy, |y, dy| y * dy);
    for ((dx, y), dy) in dx.iter_mut().zip(y).zip(dy) {
        *dx = E::from_f64(y.to_f64() * (dy.to_f64() - dot));
    }
}

/// The output as a `burn-autodiff` node with parent `x`, keeping the output for the backward
/// step.
fn tracked<B: Backend, I: Backend, E: HostFloat, const D: usize>(
    x: Tensor<B, D>,
    y: Vec<E>,
) -> Tensor<B, D> {
    let shape = x.dims();
    let x = primitive::<B, I, D>(x);
    let device = I::float_device(&x.primitive);
    let value = tensor_from::<I, E, D>(y, shape, &device)
        .into_primitive()
        .tensor();
    let prepared = <SoftmaxBackward as Backward<I, 1>>::prepare::<NoCheckpointing>(
        SoftmaxBackward(shape[D - 1]),
        [x.node],
    );
    let output = match prepared.compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(value.clone(), value),
        OpsKind::UnTracked(prep) => prep.finish(value),
    };
    let output: B::FloatTensorPrimitive = downcast(output).expect("B is Autodiff<I>");
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

/// Backward step of [`softmax_last`] over rows of this length; its state is the output `y`.
#[derive(Debug)]
struct SoftmaxBackward(usize);

impl<I: Backend> Backward<I, 1> for SoftmaxBackward {
    type State = FloatTensor<I>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<I>(&ops.node);
        let [Some(node)] = ops.parents else { return };
        let dx = match ops.state.dtype() {
            DType::F32 => gradient::<I, f32>(ops.state, dy, self.0),
            DType::F64 => gradient::<I, f64>(ops.state, dy, self.0),
            other => unreachable!("host softmax gradient of {other:?}"),
        };
        grads.register::<I>(node.id, dx);
    }
}

/// `dx` of [`backward`] from the output `y` and its gradient `dy` (rows of `len`), shaped
/// as `y`.
fn gradient<I: Backend, E: HostFloat>(
    y: FloatTensor<I>,
    dy: FloatTensor<I>,
    len: usize,
) -> FloatTensor<I> {
    let device = I::float_device(&y);
    let shape = y.shape();
    let n = shape.num_elements();
    let flat = |t: FloatTensor<I>| {
        Tensor::<I, 1>::from_primitive(TensorPrimitive::Float(I::float_reshape(t, [n].into())))
    };
    let (y, dy) = (flat(y), flat(dy));
    let dx = backward(
        HostTensor::of(&y).slice::<E>(),
        HostTensor::of(&dy).slice::<E>(),
        len,
    );
    let dx = tensor_from::<I, E, 1>(dx, [n], &device)
        .into_primitive()
        .tensor();
    I::float_reshape(dx, shape)
}

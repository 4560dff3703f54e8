//! Attaching hand-computed derivatives as one custom `burn-autodiff` operation.
//!
//! A host kernel returns a value `y` (element-wise, or reduced over some dimensions) and, for
//! each input `x_k`, the derivative `g_k = ∂y/∂x_k` with the full (unreduced) shape. For
//! `Autodiff<NdArray<f32>>` and `Autodiff<NdArray<f64>>` (checked with `TypeId`) [`attach`]
//! registers a single node whose backward step is
//!
//! ```text
//! grad_x_k = Σ_broadcast (grad_y ⊙ g_k)      (grad_y expanded over the reduced dimensions)
//! ```
//!
//! skipping the multiplication when `grad_y` is the scalar 1 (a loss's own `backward()`).
//! Every other autodiff backend falls back to [`with_grad`](crate::special::with_grad)
//! arithmetic (`y + Σ (x - x̄)·g`); both give the same gradients.

use core::any::TypeId;

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Shape, Tensor, TensorMetadata, TensorPrimitive, read_sync};

use super::downcast;
use crate::special::{constant, is_autodiff};

/// burn-autodiff's tensor primitive (its module is private; the type is reachable this way).
pub(super) type AutodiffTensor<I> = FloatTensor<Autodiff<I>>;

/// `value` with `∂value/∂inputs[k] = derivatives[k]`.
///
/// `value` has rank `DV <= D`; its shape, padded on the right with 1s to rank `D`, must
/// broadcast against the derivatives' shape (a value reduced over trailing dimensions, or
/// over all of them to `[1]`). Each derivative has the full shape; an input may have size 1
/// where the derivative is larger (broadcast) and then gets the summed gradient. `value` must
/// have been computed from untracked data.
pub(crate) fn attach<B: Backend, const DV: usize, const D: usize, const N: usize>(
    value: Tensor<B, DV>,
    inputs: [Tensor<B, D>; N],
    derivatives: [Tensor<B, D>; N],
) -> Tensor<B, DV> {
    if !is_autodiff(&value) {
        return value;
    }
    if TypeId::of::<B>() == TypeId::of::<Autodiff<NdArray<f32>>>() {
        return attach_op::<B, NdArray<f32>, DV, D, N>(value, inputs, derivatives);
    }
    if TypeId::of::<B>() == TypeId::of::<Autodiff<NdArray<f64>>>() {
        return attach_op::<B, NdArray<f64>, DV, D, N>(value, inputs, derivatives);
    }
    let value_shape = value.dims();
    let padded = padded_shape::<D>(&value_shape);
    inputs
        .into_iter()
        .zip(derivatives)
        .fold(value, |out, (input, derivative)| {
            let mut contribution = (input.clone() - constant(&input)) * derivative;
            let dims = contribution.dims();
            for dim in 0..D {
                if padded[dim] == 1 && dims[dim] != 1 {
                    contribution = contribution.sum_dim(dim);
                }
            }
            out + contribution.reshape(value_shape)
        })
}

/// `shape` padded on the right with 1s to rank `D`.
fn padded_shape<const D: usize>(shape: &[usize]) -> [usize; D] {
    let mut padded = [1; D];
    padded[..shape.len()].copy_from_slice(shape);
    padded
}

/// The autodiff primitive of a tensor of `B`, known to be `Autodiff<I>`.
pub(super) fn primitive<B: Backend, I: Backend, const D: usize>(
    t: Tensor<B, D>,
) -> AutodiffTensor<I> {
    downcast(t.into_primitive().tensor()).expect("B is Autodiff<I>")
}

/// The custom operation on `Autodiff<I>`; `B` must be `Autodiff<I>` (checked by the caller).
fn attach_op<B: Backend, I: Backend, const DV: usize, const D: usize, const N: usize>(
    value: Tensor<B, DV>,
    inputs: [Tensor<B, D>; N],
    derivatives: [Tensor<B, D>; N],
) -> Tensor<B, DV> {
    let padded = Shape::from(padded_shape::<D>(&value.dims()).to_vec());
    let value = primitive::<B, I, DV>(value).primitive;
    let inputs = inputs.map(primitive::<B, I, D>);
    let nodes = inputs.each_ref().map(|x| x.node.clone());
    let prepared =
        <AttachedBackward as Backward<I, N>>::prepare::<NoCheckpointing>(AttachedBackward, nodes);
    let output = match prepared.compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let derivatives = derivatives
                .into_iter()
                .zip(&inputs)
                .map(|(g, x)| (primitive::<B, I, D>(g).primitive, x.primitive.shape()))
                .collect();
            prep.finish(
                AttachedState {
                    padded,
                    derivatives,
                },
                value,
            )
        }
        OpsKind::UnTracked(prep) => prep.finish(value),
    };
    let output: B::FloatTensorPrimitive = downcast(output).expect("B is Autodiff<I>");
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

/// What the backward step needs.
#[derive(Debug, Clone)]
struct AttachedState<I: Backend> {
    /// The value's shape padded to the derivatives' rank.
    padded: Shape,
    /// Per input: the derivative and the input's shape.
    derivatives: Vec<(FloatTensor<I>, Shape)>,
}

/// Backward step: `grad_input = Σ_broadcast grad_out · derivative`.
#[derive(Debug)]
struct AttachedBackward;

impl<I: Backend, const N: usize> Backward<I, N> for AttachedBackward {
    type State = AttachedState<I>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<I>(&ops.node);
        let unit = grad.shape().num_elements() == 1 && is_one::<I>(&grad);
        let grad = I::float_reshape(grad, ops.state.padded);
        for (parent, (derivative, in_shape)) in ops.parents.into_iter().zip(ops.state.derivatives) {
            let Some(node) = parent else { continue };
            let mut g = if unit {
                derivative
            } else {
                I::float_mul(grad.clone(), derivative)
            };
            let g_shape = g.shape();
            for (dim, (&n_in, &n_g)) in in_shape.iter().zip(g_shape.iter()).enumerate() {
                if n_in == 1 && n_g != 1 {
                    g = I::float_sum_dim(g, dim);
                }
            }
            grads.register::<I>(node.id, g);
        }
    }
}

/// Whether a one-element tensor holds exactly 1 (read on the host: `I` is NdArray here).
fn is_one<I: Backend>(x: &FloatTensor<I>) -> bool {
    let data = read_sync(I::float_into_data(x.clone())).expect("host read");
    data.iter::<f64>().next() == Some(1.0)
}

//! Attaching hand-computed element-wise derivatives as one custom `burn-autodiff` operation.
//!
//! [`with_grad`](crate::special::with_grad) works on every backend but tapes three tensor
//! operations per input (`value + (x - x̄)·g`), i.e. several extra passes over memory on
//! NdArray. For `Autodiff<NdArray<f32>>` and `Autodiff<NdArray<f64>>` (checked with `TypeId`)
//! [`attach`] instead registers a single node whose backward step is `grad_out · g`, summed
//! over the dimensions an input was broadcast along. Every other backend falls back to
//! `with_grad`; both give the same gradients.

use core::any::{Any, TypeId};

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Shape, Tensor, TensorMetadata, TensorPrimitive};

use crate::special::{is_autodiff, with_grad};

/// burn-autodiff's tensor primitive (its module is private; the type is reachable this way).
type AutodiffTensor<I> = FloatTensor<Autodiff<I>>;

/// `value` (computed from untracked copies of `inputs`) with `d value / d inputs[k] =
/// derivatives[k]` element-wise. `derivatives` have `value`'s shape; an input may have size 1
/// along dimensions where `value` is larger (broadcast), and then gets the summed gradient.
pub(crate) fn attach<B: Backend, const D: usize, const N: usize>(
    value: Tensor<B, D>,
    inputs: [Tensor<B, D>; N],
    derivatives: [Tensor<B, D>; N],
) -> Tensor<B, D> {
    if !is_autodiff(&value) {
        return value;
    }
    if TypeId::of::<B>() == TypeId::of::<Autodiff<NdArray<f32>>>() {
        return attach_op::<B, NdArray<f32>, D, N>(value, inputs, derivatives);
    }
    if TypeId::of::<B>() == TypeId::of::<Autodiff<NdArray<f64>>>() {
        return attach_op::<B, NdArray<f64>, D, N>(value, inputs, derivatives);
    }
    inputs
        .into_iter()
        .zip(derivatives)
        .fold(value, |out, (input, derivative)| {
            with_grad(out, input, derivative)
        })
}

/// Moves `x` into a `U` if it is one.
fn downcast<T: 'static, U: 'static>(x: T) -> Option<U> {
    let mut slot = Some(x);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take)
}

/// The autodiff primitive of a tensor of `B`, known to be `Autodiff<I>`.
fn primitive<B: Backend, I: Backend, const D: usize>(t: Tensor<B, D>) -> AutodiffTensor<I> {
    downcast(t.into_primitive().tensor()).expect("B is Autodiff<I>")
}

/// The custom operation on `Autodiff<I>`; `B` must be `Autodiff<I>` (checked by the caller).
fn attach_op<B: Backend, I: Backend, const D: usize, const N: usize>(
    value: Tensor<B, D>,
    inputs: [Tensor<B, D>; N],
    derivatives: [Tensor<B, D>; N],
) -> Tensor<B, D> {
    let value = primitive::<B, I, D>(value).primitive;
    let inputs = inputs.map(primitive::<B, I, D>);
    let nodes = inputs.each_ref().map(|x| x.node.clone());
    let output = match <ElementwiseBackward as Backward<I, N>>::prepare::<NoCheckpointing>(
        ElementwiseBackward,
        nodes,
    )
    .compute_bound()
    .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state: Vec<(FloatTensor<I>, Shape)> = derivatives
                .into_iter()
                .zip(&inputs)
                .map(|(g, x)| (primitive::<B, I, D>(g).primitive, x.primitive.shape()))
                .collect();
            prep.finish(state, value)
        }
        OpsKind::UnTracked(prep) => prep.finish(value),
    };
    let output: B::FloatTensorPrimitive = downcast(output).expect("B is Autodiff<I>");
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

/// Backward step: `grad_input = Σ_broadcast grad_out · derivative`.
#[derive(Debug)]
struct ElementwiseBackward;

impl<I: Backend, const N: usize> Backward<I, N> for ElementwiseBackward {
    type State = Vec<(FloatTensor<I>, Shape)>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<I>(&ops.node);
        let out_shape = grad.shape();
        for (parent, (derivative, in_shape)) in ops.parents.into_iter().zip(ops.state) {
            let Some(node) = parent else { continue };
            let mut g = I::float_mul(grad.clone(), derivative);
            for (dim, (&n_in, &n_out)) in in_shape.iter().zip(out_shape.iter()).enumerate() {
                if n_in == 1 && n_out != 1 {
                    g = I::float_sum_dim(g, dim);
                }
            }
            grads.register::<I>(node.id, g);
        }
    }
}

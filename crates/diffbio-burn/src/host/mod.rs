//! Fused CPU kernels for backends that keep tensors in host memory.
//!
//! # Why and when
//! The generic losses are compositions of Burn tensor operations. On a GPU each operation is
//! a fused kernel; on `burn-ndarray` each is a separate pass over memory with its own
//! allocation, so a likelihood built from ~100 element-wise operations costs ~100 passes. For
//! backends whose device is `NdArrayDevice` (`NdArray<f32>`, `NdArray<f64>`, and
//! `Autodiff<_>` of them) the hot losses instead read their inputs once, compute the values
//! and the closed-form derivatives in a single multi-threaded (rayon) pass in `f64`, and
//! attach the derivatives with [`with_grad`](crate::special::with_grad).
//!
//! The choice is a safe runtime check, [`on_host`]: the `TypeId` of `B::Device` against
//! `NdArrayDevice`. Every other backend takes the generic path, which stays the reference:
//! the parity suite runs on both paths and they agree to float32 rounding. A loss's config can
//! force the generic path (`fast_path = false`). The check needs the crate feature `ndarray`
//! (on by default); without it this module is absent and every backend takes the generic path.
//!
//! Reading tensors on the host is a copy, never a device synchronisation: the kernels are only
//! used where the data already lives in host memory.

use burn::tensor::{DType, Tensor, TensorData, backend::Backend};

pub(crate) mod autodiff;
pub(crate) mod nb;
pub(crate) mod special;

/// Whether tensors of `B` live in host memory (the device is `NdArrayDevice`), so the fused
/// CPU kernels of this module apply.
pub fn on_host<B: Backend>() -> bool {
    core::any::TypeId::of::<B::Device>()
        == core::any::TypeId::of::<burn::backend::ndarray::NdArrayDevice>()
}

/// Host-side float data of a tensor, in its own precision.
pub(crate) enum HostData {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl HostData {
    /// The values of `x` (a copy; no device synchronisation on host backends).
    ///
    /// `x` is shared (the caller and the autodiff graph hold it), and burn-ndarray 0.21 copies
    /// a shared array into `TensorData` through its dynamic-rank element iterator, ~40 ns per
    /// element. Multiplying by one first gives a fresh contiguous array (one vectorised pass,
    /// exact) that `into_data` hands over without copying: 100× faster at 1M elements.
    pub(crate) fn of<B: Backend, const D: usize>(x: &Tensor<B, D>) -> Self {
        let data = (crate::special::constant(x) * 1.0).into_data();
        match data.dtype {
            DType::F64 => Self::F64(data.into_vec().expect("f64 data")),
            DType::F32 => Self::F32(data.into_vec().expect("f32 data")),
            _ => Self::F64(data.convert::<f64>().into_vec().expect("f64 data")),
        }
    }

    /// The `i`-th value as `f64`.
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> f64 {
        match self {
            Self::F32(v) => f64::from(v[i]),
            Self::F64(v) => v[i],
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::F64(v) => v.len(),
        }
    }
}

/// A float element the host kernels write: `f32` or `f64`, the two NdArray float types.
pub(crate) trait HostFloat: burn::tensor::Element + Copy + Send + Sync {
    /// Rounds an `f64` result to this precision.
    fn from_f64(v: f64) -> Self;
}

impl HostFloat for f32 {
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl HostFloat for f64 {
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// A tensor of shape `shape` on `device` holding `values` in their own precision.
pub(crate) fn tensor_from<B: Backend, O: HostFloat, const D: usize>(
    values: Vec<O>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), (device, O::dtype()))
}

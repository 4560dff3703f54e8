//! Fused CPU kernels for backends that keep tensors in host memory.
//!
//! # Why and when
//! The generic losses are compositions of Burn tensor operations. On a GPU the fusion backend
//! merges them into few kernels; on `burn-ndarray` each is a separate pass over memory with
//! its own allocation, so a likelihood built from ~100 element-wise operations costs ~100
//! passes. For backends whose device is `NdArrayDevice` (`NdArray<f32>`, `NdArray<f64>`, and
//! `Autodiff<_>` of them) the hot losses instead
//!
//! 1. read their inputs in place ([`HostTensor`]: a view of NdArray's buffer, no copy),
//! 2. compute the value and the closed-form derivatives in one multi-threaded (rayon) pass,
//!    in `f64` arithmetic, fusing the reduction where the caller asks for one (the formulas
//!    are the losses' own, shared with the generic path through [`crate::real`]), and
//! 3. attach the derivatives as a single custom `burn-autodiff` node ([`autodiff::attach`]),
//!    whose backward step is one multiplication by the upstream gradient (none when that
//!    gradient is the scalar 1, as for a loss's own `backward()`).
//!
//! The choice is a safe runtime check, [`on_host`]: the `TypeId` of `B::Device` against
//! `NdArrayDevice`, made in one place (`dispatch::host_or!`). Every other backend takes the
//! generic path: the parity suite runs on both paths and they agree to the precision they
//! compute in (float32 rounding; 1e-12 relative on float64 backends). A loss's config can
//! force the generic path (`fast_path = false`). This module needs the crate feature
//! `ndarray` (on by default); without it every backend takes the generic path.
//!
//! Nothing here synchronises a device: the kernels only run where the data already lives in
//! host memory.

use core::any::Any;

use burn::backend::Autodiff;
use burn::backend::ndarray::{NdArray, NdArrayTensor};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorData, backend::Backend};

pub(crate) mod autodiff;
pub(crate) mod conv;
pub(crate) mod lane;
pub(crate) mod nb;
pub(crate) mod pointwise;
pub(crate) mod profile;
pub(crate) mod simd;
pub(crate) mod softmax;
pub(crate) mod special;

/// Elements per rayon task of the element-wise and row-wise kernels (about 64–128 KiB of
/// input): large enough that task overhead is small, small enough to spread over threads.
pub(crate) const CHUNK: usize = 1 << 14;

/// Whether tensors of `B` live in host memory (the device is `NdArrayDevice`), so the fused
/// CPU kernels of this module apply.
pub fn on_host<B: Backend>() -> bool {
    core::any::TypeId::of::<B::Device>()
        == core::any::TypeId::of::<burn::backend::ndarray::NdArrayDevice>()
}

/// Moves `x` into a `U` if it is one.
pub(crate) fn downcast<T: 'static, U: 'static>(x: T) -> Option<U> {
    let mut slot = Some(x);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take)
}

/// NdArray's tensor behind a float primitive of `B` (a cheap clone of its shared buffer), for
/// `NdArray<f32|f64>` and `Autodiff` of them with default generics.
fn ndarray_tensor<B: Backend>(p: &FloatTensor<B>) -> Option<NdArrayTensor> {
    let p = p as &dyn Any;
    p.downcast_ref::<NdArrayTensor>()
        .cloned()
        .or_else(|| {
            p.downcast_ref::<FloatTensor<Autodiff<NdArray<f32>>>>()
                .map(|t| t.primitive.clone())
        })
        .or_else(|| {
            p.downcast_ref::<FloatTensor<Autodiff<NdArray<f64>>>>()
                .map(|t| t.primitive.clone())
        })
}

/// A float tensor's values readable on the host as a contiguous slice: NdArray's own buffer
/// where possible (no copy), otherwise a copy.
pub(crate) struct HostTensor {
    storage: Storage,
    dtype: DType,
}

enum Storage {
    /// NdArray's buffer, contiguous in row-major order.
    Shared(NdArrayTensor),
    /// A copy (other NdArray generics, non-contiguous layouts, other dtypes as f64).
    Copied(TensorData),
}

impl HostTensor {
    /// The values of `x`.
    pub(crate) fn of<B: Backend, const D: usize>(x: &Tensor<B, D>) -> Self {
        let primitive = x.clone().into_primitive().tensor();
        if let Some(t) = ndarray_tensor::<B>(&primitive) {
            let host = Self {
                dtype: x.dtype(),
                storage: Storage::Shared(t),
            };
            let contiguous = match host.dtype {
                DType::F32 => host.try_slice::<f32>().is_some(),
                DType::F64 => host.try_slice::<f64>().is_some(),
                _ => false,
            };
            if contiguous {
                return host;
            }
        }
        // Multiplying by one first gives a fresh contiguous array: burn-ndarray 0.21 copies a
        // shared array into `TensorData` element by element (~40 ns each), a fresh one not at all.
        let data = (crate::special::constant(x) * 1.0).into_data();
        let data = match data.dtype {
            DType::F32 | DType::F64 => data,
            _ => data.convert::<f64>(),
        };
        Self {
            dtype: data.dtype,
            storage: Storage::Copied(data),
        }
    }

    /// The element type of [`slice`](Self::slice): `F32` or `F64`.
    pub(crate) fn dtype(&self) -> DType {
        self.dtype
    }

    fn try_slice<E: HostFloat>(&self) -> Option<&[E]> {
        match &self.storage {
            Storage::Shared(t) => E::ndarray_slice(t),
            Storage::Copied(data) => data.as_slice::<E>().ok(),
        }
    }

    /// The values in row-major order.
    ///
    /// # Panics
    /// If `E` is not the tensor's float type (see [`dtype`](Self::dtype)).
    pub(crate) fn slice<E: HostFloat>(&self) -> &[E] {
        self.try_slice()
            .unwrap_or_else(|| panic!("host tensor of {:?} read as {:?}", self.dtype, E::dtype()))
    }
}

/// A float element the host kernels read and write: `f32` or `f64`, NdArray's float types.
pub(crate) trait HostFloat: burn::tensor::Element + Copy + PartialOrd + Send + Sync {
    /// Terms of `eʳ`'s Taylor series (`|r| <= ln 2 / 2`) that results rounded to this
    /// precision need: 14 for `f64` (truncation < 5e-18 relative), 10 for `f32` (< 1e-11,
    /// under a ten-thousandth of `f32`'s rounding). See [`special::exp_nonpositive`].
    const EXP_TERMS: usize;
    /// Rounds an `f64` result to this precision.
    fn from_f64(v: f64) -> Self;
    /// Widens to `f64`.
    fn to_f64(self) -> f64;
    /// NdArray's buffer as a slice, if it holds this type contiguously.
    fn ndarray_slice(t: &NdArrayTensor) -> Option<&[Self]>;
}

impl HostFloat for f32 {
    const EXP_TERMS: usize = 10;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn ndarray_slice(t: &NdArrayTensor) -> Option<&[Self]> {
        match t {
            NdArrayTensor::F32(s) => s.view().to_slice(),
            _ => None,
        }
    }
}

impl HostFloat for f64 {
    const EXP_TERMS: usize = 14;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    fn ndarray_slice(t: &NdArrayTensor) -> Option<&[Self]> {
        match t {
            NdArrayTensor::F64(s) => s.view().to_slice(),
            _ => None,
        }
    }
}

/// A tensor of shape `shape` on `device` holding `values` in their own precision (NdArray
/// takes the `Vec` over without copying).
pub(crate) fn tensor_from<B: Backend, O: HostFloat, const D: usize>(
    values: Vec<O>,
    shape: [usize; D],
    device: &B::Device,
) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(values, shape), (device, O::dtype()))
}

//! Element-wise losses with closed-form derivatives, optionally reduced in the same pass.

use std::mem::MaybeUninit;

use burn::tensor::{DType, Tensor, backend::Backend};
use rayon::prelude::*;

use super::autodiff::attach;
use super::{CHUNK, HostFloat, HostTensor, simd, tensor_from};

/// `loss[i] = f(inputs[0][i], .., inputs[K-1][i]).0` for same-shaped `inputs`, with
/// `∂loss[i]/∂inputs[wrt[k]][i] = f(..).1[k]`, as a tensor of `inputs`' shape (`scale: None`)
/// or as `[1]` holding `scale · Σ loss` (`Some(scale)`), gradients attached to the inputs
/// listed in `wrt`.
pub(crate) fn map<B, F, const D: usize, const K: usize, const N: usize>(
    inputs: [Tensor<B, D>; K],
    wrt: [usize; N],
    scale: Option<f64>,
    f: F,
) -> Reduced<B, D>
where
    B: Backend,
    F: Fn([f64; K]) -> (f64, [f64; N]) + Sync,
{
    let shape = inputs[0].dims();
    let host = inputs.each_ref().map(HostTensor::of);
    let device = inputs[0].device();
    let (values, derivatives) = match host[0].dtype() {
        DType::F64 => kernel::<f64, F, K, N>(&host, scale, &f).tensors::<B, D>(shape, &device),
        _ => kernel::<f32, F, K, N>(&host, scale, &f).tensors::<B, D>(shape, &device),
    };
    let mut inputs = inputs.map(Some);
    let wrt_inputs = wrt.map(|k| inputs[k].take().expect("distinct `wrt` indices"));
    match values {
        Reduced::Elementwise(v) => Reduced::Elementwise(attach(v, wrt_inputs, derivatives)),
        Reduced::Total(v) => Reduced::Total(attach(v, wrt_inputs, derivatives)),
    }
}

/// The result of [`map`]: element-wise, or reduced to `[1]`.
pub(crate) enum Reduced<B: Backend, const D: usize> {
    Elementwise(Tensor<B, D>),
    Total(Tensor<B, 1>),
}

impl<B: Backend, const D: usize> Reduced<B, D> {
    /// The element-wise tensor (panics if reduced).
    pub(crate) fn elementwise(self) -> Tensor<B, D> {
        match self {
            Self::Elementwise(t) => t,
            Self::Total(_) => unreachable!("asked for a reduced value"),
        }
    }

    /// The reduced `[1]` tensor (panics if element-wise).
    pub(crate) fn total(self) -> Tensor<B, 1> {
        match self {
            Self::Total(t) => t,
            Self::Elementwise(_) => unreachable!("asked for element-wise values"),
        }
    }
}

struct Columns<E, const N: usize> {
    values: Vec<E>,
    total: Option<f64>,
    derivatives: [Vec<E>; N],
}

impl<E: HostFloat, const N: usize> Columns<E, N> {
    fn tensors<B: Backend, const D: usize>(
        self,
        shape: [usize; D],
        device: &B::Device,
    ) -> (Reduced<B, D>, [Tensor<B, D>; N]) {
        let values = match self.total {
            Some(total) => Reduced::Total(tensor_from(vec![E::from_f64(total)], [1], device)),
            None => Reduced::Elementwise(tensor_from(self.values, shape, device)),
        };
        (
            values,
            self.derivatives.map(|d| tensor_from(d, shape, device)),
        )
    }
}

/// One task: first element index, its (not yet initialised) slices of the values and of each
/// derivative, which it writes completely, and its partial sum.
type Piece<'a, E, const N: usize> = (
    usize,
    &'a mut [MaybeUninit<E>],
    [&'a mut [MaybeUninit<E>]; N],
    &'a mut f64,
);

/// [`process_piece`] compiled for AVX2+FMA (see [`simd`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn process_piece_wide<E: HostFloat, F, const K: usize, const N: usize>(
    piece: Piece<E, N>,
    slices: &[&[E]; K],
    scale: Option<f64>,
    f: &F,
) where
    F: Fn([f64; K]) -> (f64, [f64; N]) + Sync,
{
    process_piece(piece, slices, scale, f)
}

/// Evaluates `f` over one piece: its values (or partial sum) and derivatives.
#[inline(always)]
fn process_piece<E: HostFloat, F, const K: usize, const N: usize>(
    (start, v, ds, p): Piece<E, N>,
    slices: &[&[E]; K],
    scale: Option<f64>,
    f: &F,
) where
    F: Fn([f64; K]) -> (f64, [f64; N]) + Sync,
{
    let factor = scale.unwrap_or(1.0);
    let len = ds[0].len();
    let xs = slices.map(|s| &s[start..start + len]);
    let at = |j: usize| f(xs.map(|x| x[j].to_f64()));
    if scale.is_some() {
        // Eight elements at a time, one accumulator per lane: each group's inputs are loaded
        // before its outputs are stored, so that the group vectorises without knowing that
        // the outputs don't alias the inputs (a single running sum would be a serial chain).
        const LANES: usize = simd::LANES;
        let mut acc = [0.0f64; LANES];
        let whole = len - len % LANES;
        let mut first = 0;
        while first < whole {
            let mut group = [[0.0f64; K]; LANES];
            for k in 0..K {
                let x = &xs[k][first..first + LANES];
                for lane in 0..LANES {
                    group[lane][k] = x[lane].to_f64();
                }
            }
            let mut out = [[0.0f64; LANES]; N];
            for lane in 0..LANES {
                let (value, d) = f(group[lane]);
                acc[lane] += value;
                for k in 0..N {
                    out[k][lane] = d[k] * factor;
                }
            }
            for k in 0..N {
                let d = &mut ds[k][first..first + LANES];
                for lane in 0..LANES {
                    d[lane].write(E::from_f64(out[k][lane]));
                }
            }
            first += LANES;
        }
        let tail: f64 = (whole..len)
            .map(|j| {
                let (value, d) = at(j);
                for k in 0..N {
                    ds[k][j].write(E::from_f64(d[k] * factor));
                }
                value
            })
            .sum();
        *p = acc.iter().sum::<f64>() + tail;
    } else {
        for j in 0..len {
            let (value, d) = at(j);
            v[j].write(E::from_f64(value));
            for k in 0..N {
                ds[k][j].write(E::from_f64(d[k]));
            }
        }
    }
}

fn kernel<E: HostFloat, F, const K: usize, const N: usize>(
    host: &[HostTensor; K],
    scale: Option<f64>,
    f: &F,
) -> Columns<E, N>
where
    F: Fn([f64; K]) -> (f64, [f64; N]) + Sync,
{
    let slices = host.each_ref().map(|h| h.slice::<E>());
    let n = slices[0].len();
    // Outputs are written once by the pieces, without zeroing them first (a memset of every
    // buffer cost as much as the arithmetic). Element-wise values only when not reduced (a
    // reduced piece gets an empty slice).
    let value_count = if scale.is_some() { 0 } else { n };
    let mut values: Vec<E> = Vec::with_capacity(value_count);
    let mut derivatives: [Vec<E>; N] = core::array::from_fn(|_| Vec::with_capacity(n));
    let mut partial = vec![0.0f64; n.div_ceil(CHUNK)];
    let mut derivative_chunks = derivatives
        .each_mut()
        .map(|d| d.spare_capacity_mut()[..n].chunks_mut(CHUNK));
    let mut value_chunks = values.spare_capacity_mut()[..value_count].chunks_mut(CHUNK);
    let pieces: Vec<Piece<E, N>> = partial
        .iter_mut()
        .enumerate()
        .map(|(c, p)| {
            let ds = derivative_chunks
                .each_mut()
                .map(|it| it.next().expect("same length"));
            (c * CHUNK, value_chunks.next().unwrap_or_default(), ds, p)
        })
        .collect();
    pieces.into_par_iter().for_each(|piece| {
        simd::dispatch!(
            process_piece,
            process_piece_wide,
            (piece, &slices, scale, f)
        );
    });
    // SAFETY: the pieces cover `0..n` and each wrote every element of its slices.
    unsafe {
        for d in &mut derivatives {
            d.set_len(n);
        }
        values.set_len(value_count);
    }
    Columns {
        total: scale.map(|s| partial.iter().sum::<f64>() * s),
        values,
        derivatives,
    }
}

//! A fused stride-1 1-D convolution for tensors in host memory, with its backward pass.
//!
//! `y[n, o, t] = b[o] + Σ_{c, j} w[o, c, j] · x[n, c, t + j·d - p]` (terms whose input index
//! falls outside `0..len` are the zero padding). With `s_j = j·d - p`, tap `j` contributes
//! `y_n[:, t₀..t₁] += W_j · x_n[:, t₀ + s_j..t₁ + s_j]` to sample `n`, and the backward pass
//! is the same products transposed:
//!
//! ```text
//! dx_n[:, t + s_j] += W_jᵀ · dy_n[:, t]     dW_j += Σ_n dy_n[:, t₀..t₁] · x_n[:, t₀ + s_j..t₁ + s_j]ᵀ
//! db = Σ_{n, t} dy[n, :, t]
//! ```
//!
//! Matrix products (`matrixmultiply`) read and write the tensors in place through strides;
//! no padded copy of the input is made. How the taps become products depends on the channel
//! counts (`Strategy`): one product per tap, or a single product per sample on a per-thread
//! scratch matrix (the stacked shifted input, or all taps' products, then shifted sums).
//! Samples run in parallel (rayon); each thread sums its own `dW` and `db`. Arithmetic is in
//! the tensors' precision, as Burn's and PyTorch's convolutions do.

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Tensor, TensorPrimitive};
use rayon::prelude::*;

use super::autodiff::primitive;
use super::{CHUNK, HostFloat, HostTensor, downcast, tensor_from};
use crate::special::is_autodiff;

/// The sizes of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Batch size.
    pub(crate) n: usize,
    /// Input channels.
    pub(crate) c_in: usize,
    /// Output channels.
    pub(crate) c_out: usize,
    /// Kernel width.
    pub(crate) k: usize,
    /// Input length.
    pub(crate) len: usize,
    /// Dilation.
    pub(crate) dilation: usize,
    /// Zeros padded on the left.
    pub(crate) pad_left: usize,
    /// Output length.
    pub(crate) out_len: usize,
    /// Whether a ReLU follows (`y = max(conv, 0)`, fused into the output pass and the
    /// backward step).
    pub(crate) relu: bool,
    /// Whether the input is added to the result (`y = x + relu(conv)`, a residual layer:
    /// `c_in = c_out`, `out_len = len`), fused into the output pass, and `dy` is the input
    /// gradient's starting value in the backward step.
    pub(crate) residual: bool,
}

/// `C += A·B` for strided row-major matrices (`matrixmultiply`'s `sgemm`/`dgemm`).
trait Gemm: HostFloat {
    /// # Safety
    /// The pointers and strides must address valid `m×k`, `k×n` and `m×n` matrices, the
    /// last one not overlapping the others.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_acc(
        m: usize,
        k: usize,
        n: usize,
        a: (*const Self, isize, isize),
        b: (*const Self, isize, isize),
        c: (*mut Self, isize, isize),
    );
}

/// `impl Gemm for $float` by `matrixmultiply::$gemm`.
macro_rules! impl_gemm {
    ($float:ty, $gemm:ident) => {
        impl Gemm for $float {
            unsafe fn gemm_acc(
                m: usize,
                k: usize,
                n: usize,
                a: (*const $float, isize, isize),
                b: (*const $float, isize, isize),
                c: (*mut $float, isize, isize),
            ) {
                // SAFETY: forwarded from the caller's contract.
                unsafe {
                    matrixmultiply::$gemm(
                        m, k, n, 1.0, a.0, a.1, a.2, b.0, b.1, b.2, 1.0, c.0, c.1, c.2,
                    )
                }
            }
        }
    };
}

impl_gemm!(f32, sgemm);
impl_gemm!(f64, dgemm);

/// How one sample's convolution is cast as matrix products (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// One product per tap on strided views (as many channels in as out).
    Taps,
    /// Stack the `k` shifted copies of the input, `S[(c, j), t] = x[c, t + s_j]`, and
    /// multiply once: `y = W · S` (fewer channels in than out, e.g. a stem on one-hot DNA).
    Stack,
    /// Multiply once by all taps' weights, `P[(o, j), u] = Σ_c w[o, c, j] · x[c, u]`, and add
    /// the shifted rows: `y[o, t] = Σ_j P[(o, j), t + s_j]` (fewer channels out than in,
    /// e.g. a profile head).
    Expand,
}

impl Geometry {
    fn strategy(&self) -> Strategy {
        use core::cmp::Ordering::*;
        match self.c_in.cmp(&self.c_out) {
            Equal => Strategy::Taps,
            Less => Strategy::Stack,
            Greater => Strategy::Expand,
        }
    }

    /// Elements of one sample's scratch matrix (`S`, `P` or `∂P`).
    fn scratch_len(&self) -> usize {
        match self.strategy() {
            Strategy::Taps => 0,
            Strategy::Stack => self.c_in * self.k * self.out_len,
            Strategy::Expand => self.c_out * self.k * self.len,
        }
    }

    /// The weight `[c_out, c_in, k]` as `[(o, j), c]` rows for [`Strategy::Expand`] (empty
    /// otherwise).
    fn expanded<E: Copy>(&self, w: &[E]) -> Vec<E> {
        if self.strategy() != Strategy::Expand {
            return Vec::new();
        }
        let mut wp = Vec::with_capacity(w.len());
        for o in 0..self.c_out {
            for j in 0..self.k {
                wp.extend((0..self.c_in).map(|c| w[(o * self.c_in + c) * self.k + j]));
            }
        }
        wp
    }

    /// `(∂W as [(o, j), c] rows) → [c_out, c_in, k]`, the inverse of [`expanded`](Self::expanded).
    fn unexpanded<E: Copy>(&self, wp: &[E]) -> Vec<E> {
        let mut w = wp.to_vec();
        for o in 0..self.c_out {
            for j in 0..self.k {
                for c in 0..self.c_in {
                    w[(o * self.c_in + c) * self.k + j] = wp[(o * self.k + j) * self.c_in + c];
                }
            }
        }
        w
    }

    /// The taps that read some input: `(j, t₀, t₁, t₀ + s_j)`, where `t₀..t₁` are the
    /// output columns whose input column `t + s_j` lies inside the input.
    fn taps(&self) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
        (0..self.k).filter_map(|j| {
            let shift = (j * self.dilation) as isize - self.pad_left as isize;
            let t0 = (-shift).max(0);
            let t1 = (self.out_len as isize).min(self.len as isize - shift);
            (t0 < t1).then(|| (j, t0 as usize, t1 as usize, (t0 + shift) as usize))
        })
    }

    /// `S[(c, j), t] = x[c, t + s_j]`, zero where that is padding.
    fn stack<E: HostFloat>(&self, x: &[E], s: &mut [E]) {
        s.fill(E::from_f64(0.0));
        for (j, t0, t1, from) in self.taps() {
            for c in 0..self.c_in {
                let row = (c * self.k + j) * self.out_len;
                s[row + t0..row + t1].copy_from_slice(&x[c * self.len + from..][..t1 - t0]);
            }
        }
    }

    /// `dx[c, t + s_j] += ∂S[(c, j), t]`: the adjoint of [`stack`](Self::stack).
    fn unstack_add<E: HostFloat>(&self, ds: &[E], dx: &mut [E]) {
        for (j, t0, t1, from) in self.taps() {
            for c in 0..self.c_in {
                let row = &ds[(c * self.k + j) * self.out_len..][t0..t1];
                for (d, &v) in dx[c * self.len + from..][..t1 - t0].iter_mut().zip(row) {
                    *d = E::from_f64(d.to_f64() + v.to_f64());
                }
            }
        }
    }

    /// `y[o, t] += P[(o, j), t + s_j]`.
    fn add_shifted<E: HostFloat>(&self, p: &[E], y: &mut [E]) {
        for (j, t0, t1, from) in self.taps() {
            for o in 0..self.c_out {
                let row = &p[(o * self.k + j) * self.len + from..][..t1 - t0];
                for (d, &v) in y[o * self.out_len + t0..][..t1 - t0].iter_mut().zip(row) {
                    *d = E::from_f64(d.to_f64() + v.to_f64());
                }
            }
        }
    }

    /// `∂P[(o, j), t + s_j] = ∂y[o, t]`, zero elsewhere: the adjoint of
    /// [`add_shifted`](Self::add_shifted).
    fn shifted<E: HostFloat>(&self, dy: &[E], dp: &mut [E]) {
        dp.fill(E::from_f64(0.0));
        for (j, t0, t1, from) in self.taps() {
            for o in 0..self.c_out {
                let row = (o * self.k + j) * self.len + from;
                dp[row..row + t1 - t0].copy_from_slice(&dy[o * self.out_len + t0..][..t1 - t0]);
            }
        }
    }
}

/// A row-major `rows × cols` matrix at `p` (row stride `cols`).
fn rows<T>(p: T, cols: usize) -> (T, isize, isize) {
    (p, cols as isize, 1)
}

/// The transpose of a row-major matrix with `cols` columns at `p`.
fn transposed<T>(p: T, cols: usize) -> (T, isize, isize) {
    (p, 1, cols as isize)
}

/// `f(scratch, out_i, second_i, in_i)` for each sample `i` of `out`, `second` (a second
/// output of `out`'s size, if any) and `input` (chunks of the given sizes) in parallel, with
/// one scratch matrix per thread.
fn per_sample<E: HostFloat>(
    g: Geometry,
    (out, out_size): (&mut [E], usize),
    second: Option<&mut [E]>,
    (input, in_size): (&[E], usize),
    f: impl Fn(&mut Vec<E>, &mut [E], Option<&mut [E]>, &[E]) + Sync + Send,
) {
    let scratch = || vec![E::from_f64(0.0); g.scratch_len()];
    let (out, input) = (out.par_chunks_mut(out_size), input.par_chunks(in_size));
    match second {
        Some(second) => out
            .zip(second.par_chunks_mut(out_size))
            .zip(input)
            .for_each_init(scratch, |scratch, ((out, second), input)| {
                f(scratch, out, Some(second), input)
            }),
        None => out
            .zip(input)
            .for_each_init(scratch, |scratch, (out, input)| {
                f(scratch, out, None, input)
            }),
    }
}

/// The output `[n, c_out, out_len]` of the convolution of `x` `[n, c_in, len]` with `w`
/// `[c_out, c_in, k]` and bias `b` `[c_out]` (the ReLU and the residual applied where `g` says),
/// and, for a residual layer with a ReLU, the ReLU's output (its backward step's mask).
fn forward<E: Gemm>(g: Geometry, x: &[E], w: &[E], b: &[E]) -> (Vec<E>, Option<Vec<E>>) {
    let zero = E::from_f64(0.0);
    let wp = g.expanded(w);
    let size = g.n * g.c_out * g.out_len;
    let mut y = vec![zero; size];
    let mut relu_out = (g.relu && g.residual).then(|| vec![zero; size]);
    per_sample(
        g,
        (&mut y, g.c_out * g.out_len),
        relu_out.as_deref_mut(),
        (x, g.c_in * g.len),
        |scratch, y, relu_out, x| {
            for (row, &bias) in y.chunks_mut(g.out_len).zip(b) {
                row.fill(bias);
            }
            // SAFETY (all products): each matrix lies inside its sample's slice or the
            // weight, as the shapes in `g` say; the output never overlaps an operand.
            match g.strategy() {
                Strategy::Taps => {
                    for (j, t0, t1, from) in g.taps() {
                        unsafe {
                            E::gemm_acc(
                                g.c_out,
                                g.c_in,
                                t1 - t0,
                                (w[j..].as_ptr(), (g.c_in * g.k) as isize, g.k as isize),
                                rows(x[from..].as_ptr(), g.len),
                                rows(y[t0..].as_mut_ptr(), g.out_len),
                            );
                        }
                    }
                }
                Strategy::Stack => {
                    g.stack(x, scratch);
                    let ck = g.c_in * g.k;
                    unsafe {
                        E::gemm_acc(
                            g.c_out,
                            ck,
                            g.out_len,
                            rows(w.as_ptr(), ck),
                            rows(scratch.as_ptr(), g.out_len),
                            rows(y.as_mut_ptr(), g.out_len),
                        );
                    }
                }
                Strategy::Expand => {
                    scratch.fill(zero);
                    unsafe {
                        E::gemm_acc(
                            g.c_out * g.k,
                            g.c_in,
                            g.len,
                            rows(wp.as_ptr(), g.c_in),
                            rows(x.as_ptr(), g.len),
                            rows(scratch.as_mut_ptr(), g.len),
                        );
                    }
                    g.add_shifted(scratch, y);
                }
            }
            if g.relu {
                relu_in_place(y);
            }
            if let Some(relu_out) = relu_out {
                relu_out.copy_from_slice(y);
            }
            if g.residual {
                // `x + f(x)` in the tensors' precision, as Burn's `add`.
                for (v, &x) in y.iter_mut().zip(x) {
                    *v = E::from_f64(x.to_f64() + v.to_f64());
                }
            }
        },
    );
    (y, relu_out)
}

/// Burn's `relu` in place: `v <= 0` becomes 0, NaN stays NaN. A select, not a branch: about
/// half of a layer's outputs are clipped, in no pattern a branch predictor could learn (the
/// branch was 13 % of the BPNet example's time).
#[inline]
fn relu_in_place<E: HostFloat>(y: &mut [E]) {
    let zero = E::from_f64(0.0);
    for v in y.iter_mut() {
        let value = *v;
        *v = if value <= zero { zero } else { value };
    }
}

/// `∂L/∂x` from `∂L/∂y` (`dy`, past the ReLU's mask) and, for a residual layer, the
/// upstream gradient the input receives directly (`start`).
fn grad_input<E: Gemm>(g: Geometry, w: &[E], dy: &[E], start: Option<&[E]>) -> Vec<E> {
    let zero = E::from_f64(0.0);
    let wp = g.expanded(w);
    let mut dx = vec![zero; g.n * g.c_in * g.len];
    if let Some(start) = start {
        dx.par_chunks_mut(CHUNK)
            .zip(start.par_chunks(CHUNK))
            .for_each(|(dx, start)| dx.copy_from_slice(start));
    }
    per_sample(
        g,
        (&mut dx, g.c_in * g.len),
        None,
        (dy, g.c_out * g.out_len),
        |scratch, dx, _, dy| {
            // SAFETY: as in `forward`.
            match g.strategy() {
                Strategy::Taps => {
                    for (j, t0, t1, from) in g.taps() {
                        unsafe {
                            E::gemm_acc(
                                g.c_in,
                                g.c_out,
                                t1 - t0,
                                (w[j..].as_ptr(), g.k as isize, (g.c_in * g.k) as isize),
                                rows(dy[t0..].as_ptr(), g.out_len),
                                rows(dx[from..].as_mut_ptr(), g.len),
                            );
                        }
                    }
                }
                Strategy::Stack => {
                    scratch.fill(zero);
                    let ck = g.c_in * g.k;
                    unsafe {
                        E::gemm_acc(
                            ck,
                            g.c_out,
                            g.out_len,
                            transposed(w.as_ptr(), ck),
                            rows(dy.as_ptr(), g.out_len),
                            rows(scratch.as_mut_ptr(), g.out_len),
                        );
                    }
                    g.unstack_add(scratch, dx);
                }
                Strategy::Expand => {
                    g.shifted(dy, scratch);
                    unsafe {
                        E::gemm_acc(
                            g.c_in,
                            g.c_out * g.k,
                            g.len,
                            transposed(wp.as_ptr(), g.c_in),
                            rows(scratch.as_ptr(), g.len),
                            rows(dx.as_mut_ptr(), g.len),
                        );
                    }
                }
            }
        },
    );
    dx
}

/// `(∂L/∂w, ∂L/∂b)` from `∂L/∂y`.
fn grad_params<E: Gemm>(g: Geometry, x: &[E], dy: &[E]) -> (Vec<E>, Vec<E>) {
    let zero = E::from_f64(0.0);
    let fresh = || (vec![zero; g.c_out * g.c_in * g.k], vec![0.0f64; g.c_out]);
    let (dw, db) = dy
        .par_chunks(g.c_out * g.out_len)
        .zip(x.par_chunks(g.c_in * g.len))
        .fold(
            || (fresh(), vec![zero; g.scratch_len()]),
            |((mut dw, mut db), mut scratch), (dy, x)| {
                // SAFETY: as in `forward`; `dw` is `[c_out, c_in, k]`, or `[(o, j), c]`
                // rows for `Expand`.
                match g.strategy() {
                    Strategy::Taps => {
                        for (j, t0, t1, from) in g.taps() {
                            unsafe {
                                E::gemm_acc(
                                    g.c_out,
                                    t1 - t0,
                                    g.c_in,
                                    rows(dy[t0..].as_ptr(), g.out_len),
                                    transposed(x[from..].as_ptr(), g.len),
                                    (dw[j..].as_mut_ptr(), (g.c_in * g.k) as isize, g.k as isize),
                                );
                            }
                        }
                    }
                    Strategy::Stack => {
                        g.stack(x, &mut scratch);
                        let ck = g.c_in * g.k;
                        unsafe {
                            E::gemm_acc(
                                g.c_out,
                                g.out_len,
                                ck,
                                rows(dy.as_ptr(), g.out_len),
                                transposed(scratch.as_ptr(), g.out_len),
                                rows(dw.as_mut_ptr(), ck),
                            );
                        }
                    }
                    Strategy::Expand => {
                        g.shifted(dy, &mut scratch);
                        unsafe {
                            E::gemm_acc(
                                g.c_out * g.k,
                                g.len,
                                g.c_in,
                                rows(scratch.as_ptr(), g.len),
                                transposed(x.as_ptr(), g.len),
                                rows(dw.as_mut_ptr(), g.c_in),
                            );
                        }
                    }
                }
                for (acc, row) in db.iter_mut().zip(dy.chunks(g.out_len)) {
                    *acc += row.iter().map(|v| v.to_f64()).sum::<f64>();
                }
                ((dw, db), scratch)
            },
        )
        .map(|(sums, _)| sums)
        .reduce(fresh, |(mut dw, mut db), (dw2, db2)| {
            for (a, b) in dw.iter_mut().zip(dw2) {
                *a = E::from_f64(a.to_f64() + b.to_f64());
            }
            for (a, b) in db.iter_mut().zip(db2) {
                *a += b;
            }
            (dw, db)
        });
    let dw = match g.strategy() {
        Strategy::Expand => g.unexpanded(&dw),
        _ => dw,
    };
    (dw, db.into_iter().map(E::from_f64).collect())
}

/// The convolution of `x` with `weight` and `bias` (module docs), tracked by `burn-autodiff`
/// as one operation where `B` is `Autodiff<NdArray<_>>`.
///
/// The caller checks that `B` keeps tensors in host memory, that `x` is `F32` or `F64`, and
/// that the shapes agree with `g` and are not empty.
pub(crate) fn conv1d<B: Backend>(
    x: Tensor<B, 3>,
    weight: Tensor<B, 3>,
    bias: Tensor<B, 1>,
    g: Geometry,
) -> Tensor<B, 3> {
    match x.dtype() {
        DType::F32 => conv1d_in::<B, f32>(x, weight, bias, g),
        DType::F64 => conv1d_in::<B, f64>(x, weight, bias, g),
        other => unreachable!("host conv1d on {other:?}"),
    }
}

fn conv1d_in<B: Backend, E: Gemm>(
    x: Tensor<B, 3>,
    weight: Tensor<B, 3>,
    bias: Tensor<B, 1>,
    g: Geometry,
) -> Tensor<B, 3> {
    let y = forward::<E>(
        g,
        HostTensor::of(&x).slice(),
        HostTensor::of(&weight).slice(),
        HostTensor::of(&bias).slice(),
    );
    let shape = [g.n, g.c_out, g.out_len];
    if is_autodiff(&x) {
        if core::any::TypeId::of::<B>() == core::any::TypeId::of::<Autodiff<NdArray<f32>>>() {
            return tracked::<B, NdArray<f32>, E>(x, weight, bias, y, g);
        }
        if core::any::TypeId::of::<B>() == core::any::TypeId::of::<Autodiff<NdArray<f64>>>() {
            return tracked::<B, NdArray<f64>, E>(x, weight, bias, y, g);
        }
        unreachable!("host conv1d on an autodiff backend other than Autodiff<NdArray<_>>");
    }
    tensor_from::<B, E, 3>(y.0, shape, &x.device())
}

/// The output (`y.0`) as a `burn-autodiff` node with parents `x`, `weight` and `bias`; `y.1`
/// is a residual layer's ReLU output.
fn tracked<B: Backend, I: Backend, E: Gemm>(
    x: Tensor<B, 3>,
    weight: Tensor<B, 3>,
    bias: Tensor<B, 1>,
    (y, relu_out): (Vec<E>, Option<Vec<E>>),
    g: Geometry,
) -> Tensor<B, 3> {
    let (x, weight, bias) = (
        primitive::<B, I, 3>(x),
        primitive::<B, I, 3>(weight),
        primitive::<B, I, 1>(bias),
    );
    let device = I::float_device(&x.primitive);
    let shape = [g.n, g.c_out, g.out_len];
    let host = |v: Vec<E>| {
        tensor_from::<I, E, 3>(v, shape, &device)
            .into_primitive()
            .tensor()
    };
    let value = host(y);
    let nodes = [x.node.clone(), weight.node.clone(), bias.node.clone()];
    let prepared =
        <ConvBackward as Backward<I, 3>>::prepare::<NoCheckpointing>(ConvBackward(g), nodes);
    let output = match prepared.compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(
            ConvState {
                x: x.primitive,
                weight: weight.primitive,
                relu_out: match relu_out {
                    Some(relu_out) => Some(host(relu_out)),
                    None => g.relu.then(|| value.clone()),
                },
            },
            value,
        ),
        OpsKind::UnTracked(prep) => prep.finish(value),
    };
    let output: B::FloatTensorPrimitive = downcast(output).expect("B is Autodiff<I>");
    Tensor::from_primitive(TensorPrimitive::Float(output))
}

/// What the backward step keeps: the input, the weight and, with a fused ReLU, its output.
#[derive(Debug, Clone)]
struct ConvState<I: Backend> {
    x: FloatTensor<I>,
    weight: FloatTensor<I>,
    relu_out: Option<FloatTensor<I>>,
}

/// Backward step of [`conv1d`].
#[derive(Debug)]
struct ConvBackward(Geometry);

impl<I: Backend> Backward<I, 3> for ConvBackward {
    type State = ConvState<I>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let device = I::float_device(&ops.state.x);
        let dy = grads.consume::<I>(&ops.node);
        let host = |t: FloatTensor<I>| {
            HostTensor::of(&Tensor::<I, 3>::from_primitive(TensorPrimitive::Float(t)))
        };
        let (dy, x, weight) = (host(dy), host(ops.state.x), host(ops.state.weight));
        let y = ops.state.relu_out.map(host);
        let needed = ops.parents.each_ref().map(Option::is_some);
        let inputs = (&x, &weight, &dy, y.as_ref());
        let gradients = match dy.dtype() {
            DType::F32 => gradients::<I, f32>(self.0, needed, inputs, &device),
            DType::F64 => gradients::<I, f64>(self.0, needed, inputs, &device),
            other => unreachable!("host conv1d gradient of {other:?}"),
        };
        for (parent, gradient) in ops.parents.into_iter().zip(gradients) {
            if let (Some(node), Some(gradient)) = (parent, gradient) {
                grads.register::<I>(node.id, gradient);
            }
        }
    }
}

/// The gradients of `x`, the weight and the bias, each where `needed`; with a fused ReLU
/// (its output `y` given) the upstream gradient first passes its mask (`y > 0`, as Burn's
/// `relu` backward); a residual layer's input gradient starts from the upstream gradient.
fn gradients<I: Backend, E: Gemm>(
    g: Geometry,
    needed: [bool; 3],
    (x, weight, dy, y): (&HostTensor, &HostTensor, &HostTensor, Option<&HostTensor>),
    device: &I::Device,
) -> [Option<FloatTensor<I>>; 3] {
    let primitive = |t: Tensor<I, 3>| t.into_primitive().tensor();
    let upstream = dy.slice();
    let masked: Option<Vec<E>> = y.map(|y| relu_mask(y.slice(), upstream));
    let dy = masked.as_deref().unwrap_or(upstream);
    let dx = needed[0].then(|| {
        let dx = grad_input::<E>(g, weight.slice(), dy, g.residual.then_some(upstream));
        primitive(tensor_from::<I, E, 3>(dx, [g.n, g.c_in, g.len], device))
    });
    let (dw, db) = if needed[1] || needed[2] {
        let (dw, db) = grad_params::<E>(g, x.slice(), dy);
        let dw = primitive(tensor_from::<I, E, 3>(dw, [g.c_out, g.c_in, g.k], device));
        let db = tensor_from::<I, E, 1>(db, [g.c_out], device);
        (Some(dw), Some(db.into_primitive().tensor()))
    } else {
        (None, None)
    };
    [dx, dw.filter(|_| needed[1]), db.filter(|_| needed[2])]
}

/// `dy` where `y > 0`, 0 elsewhere (the ReLU's backward step), in parallel.
fn relu_mask<E: HostFloat>(y: &[E], dy: &[E]) -> Vec<E> {
    let mut out = vec![E::from_f64(0.0); dy.len()];
    out.par_chunks_mut(CHUNK)
        .zip(y.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(out, (y, dy))| relu_mask_chunk(out, y, dy));
    out
}

/// [`relu_mask`] of one chunk: a select over equal-length slices, which vectorises (the same
/// loop over a three-way `zip` inside the rayon closure ran one element at a time).
#[inline(never)]
fn relu_mask_chunk<E: HostFloat>(out: &mut [E], y: &[E], dy: &[E]) {
    let zero = E::from_f64(0.0);
    let (y, dy) = (&y[..out.len()], &dy[..out.len()]);
    for i in 0..out.len() {
        // Both loads first: a load inside the branch is a conditional load to LLVM, which
        // then neither vectorises nor uses a select.
        let (y, dy) = (y[i], dy[i]);
        out[i] = if y <= zero { zero } else { dy };
    }
}

#![allow(dead_code)]
//! The fused host kernels (`fast_path = true` on NdArray) against the generic tensor-op path
//! (`fast_path = false`) on inputs a real model produces but a contiguous test tensor does not:
//!
//! * **strided views** fed straight to the loss: transposed (`swap_dims`), sliced (an offset
//!   sub-block, and whole rows only: contiguous with an offset), stepped (`s![..;2]`), flipped
//!   (negative strides), expanded (stride 0: a row or a column broadcast with `expand`), and a
//!   mix of all of these across the inputs of one call;
//! * **non-uniform upstream gradients**: `Σ (out ⊙ W)` with `W` holding negative and zero
//!   weights, through `forward_no_reduction` and through the reduced forms (scalar weights);
//! * **inputs larger than one kernel chunk** (the element-wise kernel works in `1 << 14`-element
//!   chunks; the NB and multinomial kernels split by rows);
//! * **the fallback gradient attachment**: on an autodiff backend that the host module does not
//!   recognise by `TypeId` (e.g. `Autodiff<NdArray<f32, i32>>`), the kernels still run (the
//!   device is `NdArrayDevice`) but their derivatives are attached by `with_grad` arithmetic;
//!   values and gradients must equal those on the recognised backend.
//!
//! Every float input is a leaf created contiguous in its *stored* layout; the view the loss sees
//! is derived from it inside the graph, so gradients come back in the stored layout and both
//! paths are compared there. Padding that a view skips holds a poison value (1234.5), so a
//! kernel reading outside its view changes the result.
//!
//! The suite is generic over the float type: `fast_paths.rs` instantiates it on float32
//! backends, `fast_paths_f64.rs` on float64 ones (one NdArray float type per test binary: Burn
//! 0.21 keys the default float dtype by device type). Each comparison is
//! `|a - e| <= rtol·|e| + atol·max(max|e|, floor)` per output or gradient vector (the second term absorbs
//! entries that are small only through cancellation, e.g. a broadcast theta's summed gradient
//! under signed weights).

use std::fmt::Write as _;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{DType, Int, Slice, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::{assert_native_float_dtype, tensor, to_f64};
use diffbio_burn::Reduction;
use diffbio_burn::losses::bpnet::BpnetMixtureLossConfig;
use diffbio_burn::losses::log1p_mse::Log1pMseLossConfig;
use diffbio_burn::losses::multinomial::MultinomialNllLossConfig;
use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
use diffbio_burn::losses::vae::{Reconstruction, VaeLossConfig};
use diffbio_burn::losses::zinb::ZinbLossConfig;

/// Value in the parts of a stored buffer that a view skips.
pub const POISON: f64 = 1234.5;

/// The element-wise host kernel's chunk (`host/pointwise.rs`): "large" inputs exceed it.
pub const KERNEL_CHUNK: usize = 1 << 14;

// ---------------------------------------------------------------------------------------------
// Layouts
// ---------------------------------------------------------------------------------------------

/// How an input is stored, and the view of it that the loss receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Stored as the loss sees it.
    Contiguous,
    /// Stored with the first and last dimensions swapped; the view swaps them back.
    Transposed,
    /// Stored with one element of padding before and two after in every dimension; the view
    /// slices the interior (non-contiguous, offset).
    Sliced,
    /// Stored with one padding row before and two after; the view slices whole rows
    /// (contiguous, but not at the start of the buffer).
    SlicedRows,
    /// Stored with the last dimension `2n + 1` long; the view takes every second element
    /// starting at 1 (`s![.., 1..;2]`).
    Stepped,
    /// Stored in reverse order; the view flips every dimension (negative strides).
    Flipped,
    /// Stored with size 1 in the first dimension; the view expands it (stride 0).
    ExpandRows,
    /// Stored with size 1 in the last dimension; the view expands it (stride 0).
    ExpandCols,
}

/// Every non-contiguous layout.
pub const STRIDED: [Layout; 7] = [
    Layout::Transposed,
    Layout::Sliced,
    Layout::SlicedRows,
    Layout::Stepped,
    Layout::Flipped,
    Layout::ExpandRows,
    Layout::ExpandCols,
];

/// Which layout each input of a call gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The same layout for every input.
    All(Layout),
    /// Input `k` gets `MIXED[(k + shift) % MIXED.len()]`: one call sees several layouts.
    Mixed(usize),
}

const MIXED: [Layout; 8] = [
    Layout::Transposed,
    Layout::Sliced,
    Layout::Flipped,
    Layout::Stepped,
    Layout::ExpandRows,
    Layout::Contiguous,
    Layout::ExpandCols,
    Layout::SlicedRows,
];

impl Plan {
    fn layout(self, k: usize) -> Layout {
        match self {
            Plan::All(l) => l,
            Plan::Mixed(shift) => MIXED[(k + shift) % MIXED.len()],
        }
    }
}

/// All strided plans: each layout for every input, and three rotations of the mix.
pub fn strided_plans() -> Vec<Plan> {
    let mut plans: Vec<Plan> = STRIDED.iter().map(|&l| Plan::All(l)).collect();
    plans.extend([Plan::Mixed(0), Plan::Mixed(3), Plan::Mixed(5)]);
    plans
}

fn stored_shape(layout: Layout, natural: &[usize]) -> Vec<usize> {
    let d = natural.len();
    let mut s = natural.to_vec();
    match layout {
        Layout::Contiguous | Layout::Flipped => {}
        Layout::Transposed => s.swap(0, d - 1),
        Layout::Sliced => s.iter_mut().for_each(|n| *n += 3),
        Layout::SlicedRows => s[0] += 3,
        Layout::Stepped => s[d - 1] = 2 * s[d - 1] + 1,
        Layout::ExpandRows => s[0] = 1,
        Layout::ExpandCols => s[d - 1] = 1,
    }
    s
}

/// Row-major flat index of `idx` in `shape`.
fn flat_index(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &n)| acc * n + i)
}

/// Multi-index of row-major element `k` of `shape`.
fn multi_index(k: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    let mut rest = k;
    for dim in (0..shape.len()).rev() {
        idx[dim] = rest % shape[dim];
        rest /= shape[dim];
    }
    idx
}

/// The stored position that the view shows at natural multi-index `idx` (for the expanded
/// layouts, many natural positions show the same stored one).
fn stored_index(layout: Layout, natural_shape: &[usize], idx: &[usize]) -> Vec<usize> {
    let d = natural_shape.len();
    let mut s = idx.to_vec();
    match layout {
        Layout::Contiguous => {}
        Layout::Transposed => s.swap(0, d - 1),
        Layout::Sliced => s.iter_mut().for_each(|i| *i += 1),
        Layout::SlicedRows => s[0] += 1,
        Layout::Stepped => s[d - 1] = 2 * s[d - 1] + 1,
        Layout::Flipped => s
            .iter_mut()
            .zip(natural_shape)
            .for_each(|(i, &n)| *i = n - 1 - *i),
        Layout::ExpandRows => s[0] = 0,
        Layout::ExpandCols => s[d - 1] = 0,
    }
    s
}

/// The stored buffer for `natural` data of shape `natural_shape` (poison where the view skips).
/// For the expanded layouts, the view shows the first row/column of `natural` repeated.
fn stored_data(layout: Layout, natural_shape: &[usize], natural: &[f64]) -> Vec<f64> {
    let shape = stored_shape(layout, natural_shape);
    let mut out = vec![POISON; shape.iter().product()];
    // In reverse, so that the first row/column wins where an expanded view repeats one.
    for (k, &v) in natural.iter().enumerate().rev() {
        let idx = multi_index(k, natural_shape);
        out[flat_index(&stored_index(layout, natural_shape, &idx), &shape)] = v;
    }
    out
}

/// The values the view of `stored_data(layout, ..)` shows, in the natural shape.
fn viewed_data(layout: Layout, natural_shape: &[usize], natural: &[f64]) -> Vec<f64> {
    let shape = stored_shape(layout, natural_shape);
    let stored = stored_data(layout, natural_shape, natural);
    (0..natural.len())
        .map(|k| {
            let idx = multi_index(k, natural_shape);
            stored[flat_index(&stored_index(layout, natural_shape, &idx), &shape)]
        })
        .collect()
}

/// The gradient with respect to the stored buffer, given the gradient with respect to the view
/// (the adjoint of the view: scatter, adding where an expanded view repeats an element).
fn to_stored_gradient(layout: Layout, natural_shape: &[usize], grad: &[f64]) -> Vec<f64> {
    let shape = stored_shape(layout, natural_shape);
    let mut out = vec![0.0; shape.iter().product()];
    for (k, &g) in grad.iter().enumerate() {
        let idx = multi_index(k, natural_shape);
        out[flat_index(&stored_index(layout, natural_shape, &idx), &shape)] += g;
    }
    out
}

/// The view of a flat stored leaf that the loss receives.
fn view<B: AutodiffBackend, const D: usize>(
    leaf: Tensor<B, 1>,
    layout: Layout,
    natural: &[usize],
) -> Tensor<B, D> {
    let natural: [usize; D] = natural.try_into().expect("input rank");
    let stored: [usize; D] = stored_shape(layout, &natural)
        .try_into()
        .expect("input rank");
    let t = leaf.reshape(stored);
    let full = |n: usize| Slice::new(0, Some(n as isize), 1);
    let out = match layout {
        Layout::Contiguous => t,
        Layout::Transposed if D > 1 => t.swap_dims(0, D - 1),
        Layout::Transposed => t,
        Layout::Sliced => t.slice(core::array::from_fn::<Slice, D, _>(|d| {
            Slice::new(1, Some(1 + natural[d] as isize), 1)
        })),
        Layout::SlicedRows => t.slice(core::array::from_fn::<Slice, D, _>(|d| {
            if d == 0 {
                Slice::new(1, Some(1 + natural[0] as isize), 1)
            } else {
                full(natural[d])
            }
        })),
        Layout::Stepped => t.slice(core::array::from_fn::<Slice, D, _>(|d| {
            if d == D - 1 {
                Slice::new(1, Some(2 * natural[d] as isize + 1), 2)
            } else {
                full(natural[d])
            }
        })),
        Layout::Flipped => t.flip(core::array::from_fn::<isize, D, _>(|d| d as isize)),
        Layout::ExpandRows | Layout::ExpandCols => t.expand(natural),
    };
    assert_eq!(out.dims(), natural, "{layout:?} view");
    out
}

// ---------------------------------------------------------------------------------------------
// Losses and their inputs
// ---------------------------------------------------------------------------------------------

/// Every loss form with a host kernel (and log1p-MSE, which has none: both settings run the
/// generic code, so it guards against a future kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// NB with per-gene `theta` `[G]`.
    Nb,
    /// NB with full `theta` `[B, G]`.
    NbFullTheta,
    /// ZINB with per-gene `theta` `[G]`.
    Zinb,
    /// ZINB with full `theta` `[B, G]`.
    ZinbFullTheta,
    /// VAE ELBO, MSE reconstruction + Gaussian KL.
    VaeMse,
    /// VAE ELBO, BCE-with-logits reconstruction + Gaussian KL.
    VaeBce,
    /// Multinomial NLL from log-probabilities `[N, S, L]`.
    Mnll,
    /// Multinomial NLL from log-probabilities `[N, L]`.
    Mnll2d,
    /// Multinomial NLL from logits `[N, S, L]`.
    MnllLogits,
    /// BPNet mixture, no labels.
    Mixture,
    /// BPNet mixture, some rows labelled 0.
    MixtureLabels,
    /// BPNet mixture, no row labelled 1 (profile term empty).
    MixtureUnlabelled,
    /// log1p-MSE `[N, K]` (no host kernel).
    Log1pMse,
}

pub const LOSSES: [Loss; 13] = [
    Loss::Nb,
    Loss::NbFullTheta,
    Loss::Zinb,
    Loss::ZinbFullTheta,
    Loss::VaeMse,
    Loss::VaeBce,
    Loss::Mnll,
    Loss::Mnll2d,
    Loss::MnllLogits,
    Loss::Mixture,
    Loss::MixtureLabels,
    Loss::MixtureUnlabelled,
    Loss::Log1pMse,
];

/// Input sizes: small (odd, non-square) or larger than one kernel chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    Small,
    Large,
}

/// Output form: element-wise / per row (`forward_no_reduction`), or reduced.
#[derive(Clone, Debug)]
pub enum Form {
    NoReduction,
    Reduced(Reduction),
}

pub fn forms() -> Vec<Form> {
    vec![
        Form::NoReduction,
        Form::Reduced(Reduction::Mean),
        Form::Reduced(Reduction::Sum),
        Form::Reduced(Reduction::BatchMean),
    ]
}

/// How the outputs are turned into the scalar whose gradient is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// `Σ_k sum(out_k)`: upstream gradient 1 everywhere (for a reduced loss, exactly the
    /// scalar 1, which the custom autodiff node short-cuts).
    Unit,
    /// `Σ_k sum(out_k ⊙ W_k)` with `W_k` cycling through negative, zero and positive weights.
    Weighted,
}

const WEIGHTS: [f64; 8] = [-1.5, 0.0, 2.0, -0.25, 1.0, 0.0, -3.0, 0.5];

/// The upstream weights of output `k` with `n` elements.
pub fn weights(k: usize, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| WEIGHTS[(5 * i + 3 * k + i / 7) % WEIGHTS.len()])
        .collect()
}

/// One float input: its name, the shape the loss sees, its values in that shape, and whether
/// gradients are compared for it.
#[derive(Clone, Debug)]
pub struct Input {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
    pub grad: bool,
}

fn uniform(rng: &mut StdRng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Counts with every third one zero, some large ones.
fn counts(rng: &mut StdRng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| match i % 3 {
            0 => 0.0,
            1 if i % 11 == 1 => rng.random_range(100..2000) as f64,
            _ => rng.random_range(0..40) as f64,
        })
        .collect()
}

/// Row-wise `log_softmax` of random logits over the last `l` values.
fn log_probs(rng: &mut StdRng, rows: usize, l: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows * l);
    for _ in 0..rows {
        let z = uniform(rng, l, -4.0, 4.0);
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        out.extend(z.iter().map(|v| v - lse));
    }
    out
}

fn input(name: &'static str, shape: &[usize], data: Vec<f64>, grad: bool) -> Input {
    assert_eq!(data.len(), shape.iter().product::<usize>(), "{name}");
    Input {
        name,
        shape: shape.to_vec(),
        data,
        grad,
    }
}

/// Labels of the mixture cases (`None` where the loss takes none).
pub fn labels(loss: Loss, n: usize) -> Option<Vec<i64>> {
    match loss {
        Loss::MixtureLabels => Some((0..n).map(|i| i64::from(i % 3 != 1)).collect()),
        Loss::MixtureUnlabelled => Some(vec![0; n]),
        _ => None,
    }
}

/// Deterministic inputs of `loss` at `size`.
pub fn inputs(loss: Loss, size: Size) -> Vec<Input> {
    let mut rng = StdRng::seed_from_u64(0x5eed + loss as u64 * 101 + size as u64);
    let (b, g) = match size {
        Size::Small => (7, 5),
        Size::Large => (300, 200),
    };
    let latent = match size {
        Size::Small => 3,
        Size::Large => 20,
    };
    // [N, S, L] of the profile losses.
    let (n, s, l) = match size {
        Size::Small => (5, 2, 6),
        Size::Large => (150, 2, 200),
    };
    let r = &mut rng;
    match loss {
        Loss::Nb | Loss::NbFullTheta | Loss::Zinb | Loss::ZinbFullTheta => {
            let full = matches!(loss, Loss::NbFullTheta | Loss::ZinbFullTheta);
            let theta_shape: Vec<usize> = if full { vec![b, g] } else { vec![g] };
            let theta_n = theta_shape.iter().product();
            let mut v = vec![
                input("counts", &[b, g], counts(r, b * g), false),
                input("mu", &[b, g], uniform(r, b * g, 0.01, 50.0), true),
                input("theta", &theta_shape, uniform(r, theta_n, 0.1, 200.0), true),
            ];
            if matches!(loss, Loss::Zinb | Loss::ZinbFullTheta) {
                v.push(input(
                    "pi_logits",
                    &[b, g],
                    uniform(r, b * g, -5.0, 5.0),
                    true,
                ));
            }
            v
        }
        Loss::VaeMse | Loss::VaeBce => {
            let x = if loss == Loss::VaeMse {
                uniform(r, b * g, -2.0, 2.0)
            } else {
                (0..b * g).map(|i| ((i * 7 / 3) % 2) as f64).collect()
            };
            vec![
                input("x", &[b, g], x, false),
                input("x_recon", &[b, g], uniform(r, b * g, -20.0, 20.0), true),
                input(
                    "mean",
                    &[b, latent],
                    uniform(r, b * latent, -3.0, 3.0),
                    true,
                ),
                input(
                    "logvar",
                    &[b, latent],
                    uniform(r, b * latent, -8.0, 8.0),
                    true,
                ),
            ]
        }
        Loss::Mnll => vec![
            input("log_probs", &[n, s, l], log_probs(r, n * s, l), true),
            input("counts", &[n, s, l], counts(r, n * s * l), false),
        ],
        Loss::Mnll2d => vec![
            input("log_probs", &[b, g], log_probs(r, b, g), true),
            input("counts", &[b, g], counts(r, b * g), false),
        ],
        Loss::MnllLogits => vec![
            input("logits", &[n, s, l], uniform(r, n * s * l, -6.0, 6.0), true),
            input("counts", &[n, s, l], counts(r, n * s * l), false),
        ],
        Loss::Mixture | Loss::MixtureLabels | Loss::MixtureUnlabelled => vec![
            input("y", &[n, s, l], counts(r, n * s * l), false),
            input("logits", &[n, s, l], uniform(r, n * s * l, -6.0, 6.0), true),
            input("log_counts", &[n, 1], uniform(r, n, 0.0, 8.0), true),
        ],
        Loss::Log1pMse => vec![
            input("log_pred", &[b, g], uniform(r, b * g, -1.0, 8.0), true),
            input("counts", &[b, g], counts(r, b * g), false),
        ],
    }
}

// ---------------------------------------------------------------------------------------------
// Running a loss
// ---------------------------------------------------------------------------------------------

/// The views of one call's inputs.
struct Views<B: AutodiffBackend> {
    leaves: Vec<Tensor<B, 1>>,
    layouts: Vec<Layout>,
    shapes: Vec<Vec<usize>>,
}

impl<B: AutodiffBackend> Views<B> {
    fn get<const D: usize>(&self, k: usize) -> Tensor<B, D> {
        view::<B, D>(self.leaves[k].clone(), self.layouts[k], &self.shapes[k])
    }
}

type Named<B> = Vec<(&'static str, Tensor<B, 1>, Vec<usize>)>;

fn out<B: AutodiffBackend, const D: usize>(name: &'static str, t: Tensor<B, D>) -> Named<B> {
    let dims = t.dims().to_vec();
    let n: usize = dims.iter().product();
    vec![(name, t.reshape([n]), dims)]
}

/// The loss's outputs for `form`, each flattened, with its shape.
fn outputs<B: AutodiffBackend>(loss: Loss, form: &Form, fast: bool, v: &Views<B>) -> Named<B> {
    let device = v.leaves[0].device();
    match loss {
        Loss::Nb | Loss::NbFullTheta => {
            let nb = NegativeBinomialLossConfig::new()
                .with_fast_path(fast)
                .init();
            macro_rules! nb {
                ($t:literal) => {
                    match form {
                        Form::NoReduction => out(
                            "nll",
                            nb.forward_no_reduction(v.get(0), v.get(1), v.get::<$t>(2)),
                        ),
                        Form::Reduced(r) => out(
                            "loss",
                            nb.forward(v.get(0), v.get(1), v.get::<$t>(2), r.clone()),
                        ),
                    }
                };
            }
            if loss == Loss::Nb { nb!(1) } else { nb!(2) }
        }
        Loss::Zinb | Loss::ZinbFullTheta => {
            let zinb = ZinbLossConfig::new().with_fast_path(fast).init();
            macro_rules! zinb {
                ($t:literal) => {
                    match form {
                        Form::NoReduction => out(
                            "nll",
                            zinb.forward_no_reduction(v.get(0), v.get(1), v.get::<$t>(2), v.get(3)),
                        ),
                        Form::Reduced(r) => out(
                            "loss",
                            zinb.forward(v.get(0), v.get(1), v.get::<$t>(2), v.get(3), r.clone()),
                        ),
                    }
                };
            }
            if loss == Loss::Zinb {
                zinb!(1)
            } else {
                zinb!(2)
            }
        }
        Loss::VaeMse | Loss::VaeBce => {
            let kind = if loss == Loss::VaeMse {
                Reconstruction::Mse
            } else {
                Reconstruction::Bce
            };
            let vae = VaeLossConfig::new()
                .with_reconstruction(kind)
                .with_kl_weight(0.3)
                .with_fast_path(fast)
                .init();
            match form {
                Form::NoReduction => {
                    let t = vae.forward_no_reduction(v.get(0), v.get(1), v.get(2), v.get(3));
                    [out("recon", t.recon), out("kl", t.kl)].concat()
                }
                Form::Reduced(r) => {
                    let e = vae.forward(v.get(0), v.get(1), v.get(2), v.get(3), r.clone());
                    [out("loss", e.loss), out("recon", e.recon), out("kl", e.kl)].concat()
                }
            }
        }
        Loss::Mnll | Loss::MnllLogits => {
            let mnll = MultinomialNllLossConfig::new().with_fast_path(fast).init();
            let (p, c) = (v.get::<3>(0), v.get::<3>(1));
            match (loss, form) {
                (Loss::Mnll, Form::NoReduction) => {
                    out("nll", mnll.forward_no_reduction::<B, 3, 2>(p, c))
                }
                (Loss::Mnll, Form::Reduced(r)) => out("loss", mnll.forward(p, c, r.clone())),
                (_, Form::NoReduction) => {
                    out("nll", mnll.forward_logits_no_reduction::<B, 3, 2>(p, c))
                }
                (_, Form::Reduced(r)) => out("loss", mnll.forward_logits(p, c, r.clone())),
            }
        }
        Loss::Mnll2d => {
            let mnll = MultinomialNllLossConfig::new().with_fast_path(fast).init();
            let (p, c) = (v.get::<2>(0), v.get::<2>(1));
            match form {
                Form::NoReduction => out("nll", mnll.forward_no_reduction::<B, 2, 1>(p, c)),
                Form::Reduced(r) => out("loss", mnll.forward(p, c, r.clone())),
            }
        }
        Loss::Mixture | Loss::MixtureLabels | Loss::MixtureUnlabelled => {
            let n = v.shapes[0][0];
            let labels = labels(loss, n)
                .map(|l| Tensor::<B, 1, Int>::from_data(TensorData::new(l, [n]), &device));
            let mixture = BpnetMixtureLossConfig::new()
                .with_count_loss_weight(3.0)
                .with_fast_path(fast)
                .init();
            let parts = match form {
                Form::NoReduction => {
                    mixture.forward_no_reduction(v.get(0), v.get(1), v.get(2), labels)
                }
                Form::Reduced(r) => {
                    mixture.forward_reduced(v.get(0), v.get(1), v.get(2), labels, r.clone())
                }
            };
            [
                out("profile", parts.profile),
                out("count", parts.count),
                out("total", parts.total),
            ]
            .concat()
        }
        Loss::Log1pMse => {
            let loss = Log1pMseLossConfig::new().init();
            let (p, c) = (v.get::<2>(0), v.get::<2>(1));
            match form {
                Form::NoReduction => out("loss", loss.forward_no_reduction::<B, 2, 1>(p, c)),
                Form::Reduced(r) => out("loss", loss.forward(p, c, r.clone())),
            }
        }
    }
}

/// What one call produced: outputs (name, shape, values) and, per input with `grad`, the
/// gradient in the stored layout (`None` where no gradient was recorded).
#[derive(Clone, Debug)]
pub struct Outcome {
    pub outputs: Vec<(&'static str, Vec<usize>, Vec<f64>)>,
    pub grads: Vec<(&'static str, Option<Vec<f64>>)>,
    /// The dtype of the first output.
    pub dtype: DType,
}

/// Runs `loss` on backend `B` with the given path, layouts, form and upstream weighting.
pub fn run<B: AutodiffBackend>(
    loss: Loss,
    size: Size,
    plan: Plan,
    form: &Form,
    fast: bool,
    upstream: Upstream,
) -> Outcome {
    run_inputs::<B>(loss, &inputs(loss, size), plan, form, fast, upstream)
}

/// [`run`] on given inputs.
pub fn run_inputs<B: AutodiffBackend>(
    loss: Loss,
    inputs: &[Input],
    plan: Plan,
    form: &Form,
    fast: bool,
    upstream: Upstream,
) -> Outcome {
    let device = B::Device::default();
    let layouts: Vec<Layout> = (0..inputs.len()).map(|k| plan.layout(k)).collect();
    let leaves: Vec<Tensor<B, 1>> = inputs
        .iter()
        .zip(&layouts)
        .map(|(inp, &layout)| {
            let data = stored_data(layout, &inp.shape, &inp.data);
            let leaf = tensor::<B, 1>(&data, [data.len()], &device);
            if inp.grad { leaf.require_grad() } else { leaf }
        })
        .collect();
    let views = Views {
        leaves: leaves.clone(),
        layouts,
        shapes: inputs.iter().map(|i| i.shape.clone()).collect(),
    };
    let outs = outputs(loss, form, fast, &views);
    let dtype = outs[0].1.dtype();
    let mut total: Option<Tensor<B, 1>> = None;
    let mut recorded = Vec::new();
    for (k, (name, t, shape)) in outs.into_iter().enumerate() {
        recorded.push((name, shape, to_f64(t.clone())));
        let n = t.dims()[0];
        let term = match upstream {
            Upstream::Unit => t.sum(),
            Upstream::Weighted => (t * tensor::<B, 1>(&weights(k, n), [n], &device)).sum(),
        };
        total = Some(match total {
            None => term,
            Some(acc) => acc + term,
        });
    }
    let grads = total.expect("an output").backward();
    let grads = inputs
        .iter()
        .zip(&leaves)
        .filter(|(inp, _)| inp.grad)
        .map(|(inp, leaf)| (inp.name, leaf.grad(&grads).map(to_f64)))
        .collect();
    Outcome {
        outputs: recorded,
        grads,
        dtype,
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing
// ---------------------------------------------------------------------------------------------

/// `|a - e| <= rtol·|e| + atol·max(max|e|, floor)` per vector.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub rtol: f64,
    pub atol: f64,
    /// A lower bound for the scale of the `atol` term: a vector that is (near) zero only
    /// through cancellation of terms of about this size (e.g. a multinomial NLL of uniform
    /// rows, a difference of `lgamma`s of size 1-100) is compared at `atol·floor`.
    pub floor: f64,
}

/// Worst errors seen by a check, over everything it compared.
#[derive(Clone, Copy, Debug, Default)]
pub struct Worst {
    /// `max |a - e| / |e|` over `e != 0`.
    pub rel: f64,
    /// `max |a - e| / max|e|`.
    pub scaled: f64,
    pub compared: usize,
}

fn compare_vec(what: &str, a: &[f64], e: &[f64], tol: Tol, worst: &mut Worst) -> Option<String> {
    if a.len() != e.len() {
        return Some(format!("{what}: {} values vs {}", a.len(), e.len()));
    }
    let scale = e.iter().fold(tol.floor, |m, v| m.max(v.abs()));
    let mut bad = Vec::new();
    for (i, (&x, &y)) in a.iter().zip(e).enumerate() {
        let err = (x - y).abs();
        worst.compared += 1;
        if err.is_finite() {
            if y != 0.0 {
                worst.rel = worst.rel.max(err / y.abs());
            }
            if scale > 0.0 {
                worst.scaled = worst.scaled.max(err / scale);
            }
        }
        let finite_match = x == y || (x.is_nan() && y.is_nan());
        // False for a NaN error: a NaN on one side only fails.
        let within = err <= tol.rtol * y.abs() + tol.atol * scale;
        if !finite_match && !within {
            bad.push(i);
        }
    }
    if bad.is_empty() {
        return None;
    }
    let mut msg = format!(
        "{what}: {}/{} off (rtol {:e}, atol {:e}·max|e| = {:e})",
        bad.len(),
        a.len(),
        tol.rtol,
        tol.atol,
        tol.atol * scale
    );
    for &i in bad.iter().take(5) {
        let _ = write!(
            msg,
            "; [{i}] {:e} vs {:e} (rel {:.2e})",
            a[i],
            e[i],
            (a[i] - e[i]).abs() / e[i].abs()
        );
    }
    Some(msg)
}

/// Compares two outcomes (outputs with shapes, gradients); returns the mismatches.
pub fn compare(label: &str, a: &Outcome, e: &Outcome, tol: Tol, worst: &mut Worst) -> Vec<String> {
    let mut errors = Vec::new();
    if a.dtype != e.dtype {
        errors.push(format!(
            "{label}: output dtype {:?} vs {:?}",
            a.dtype, e.dtype
        ));
    }
    if a.outputs.len() != e.outputs.len() {
        errors.push(format!(
            "{label}: {} outputs vs {}",
            a.outputs.len(),
            e.outputs.len()
        ));
    }
    for ((name, sa, va), (_, se, ve)) in a.outputs.iter().zip(&e.outputs) {
        if sa != se {
            errors.push(format!("{label}: output {name} shape {sa:?} vs {se:?}"));
            continue;
        }
        errors.extend(compare_vec(
            &format!("{label}: output {name}"),
            va,
            ve,
            tol,
            worst,
        ));
    }
    for ((name, ga), (_, ge)) in a.grads.iter().zip(&e.grads) {
        // No recorded gradient is a zero gradient.
        let n = ga.as_ref().or(ge.as_ref()).map_or(0, Vec::len);
        let zeros = vec![0.0; n];
        let ga = ga.as_deref().unwrap_or(&zeros);
        let ge = ge.as_deref().unwrap_or(&zeros);
        errors.extend(compare_vec(
            &format!("{label}: d/d{name}"),
            ga,
            ge,
            tol,
            worst,
        ));
    }
    errors
}

/// Collects failures of a test and reports them all at the end.
pub struct Report {
    name: String,
    errors: Vec<String>,
    worst: Worst,
    runs: usize,
}

impl Report {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            errors: Vec::new(),
            worst: Worst::default(),
            runs: 0,
        }
    }

    /// Compares `actual` with `expected` (both already run).
    pub fn check(&mut self, label: &str, actual: &Outcome, expected: &Outcome, tol: Tol) {
        self.runs += 1;
        let errors = compare(label, actual, expected, tol, &mut self.worst);
        self.errors.extend(errors);
    }

    /// Runs `f`, recording a panic as a failure of `label`.
    pub fn catch<T>(&mut self, label: &str, f: impl FnOnce() -> T) -> Option<T> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(v) => Some(v),
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "non-string panic".into());
                self.errors.push(format!("{label}: panicked: {msg}"));
                None
            }
        }
    }

    /// Prints the worst errors; panics listing every failure.
    #[track_caller]
    pub fn finish(self) {
        println!(
            "{}: {} comparisons, {} values; worst rel {:.3e}, worst |err|/max|e| {:.3e}; {} failures",
            self.name,
            self.runs,
            self.worst.compared,
            self.worst.rel,
            self.worst.scaled,
            self.errors.len()
        );
        if !self.errors.is_empty() {
            let shown: Vec<&String> = self.errors.iter().take(40).collect();
            panic!(
                "{}: {} failures:\n{}{}",
                self.name,
                self.errors.len(),
                shown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
                if self.errors.len() > 40 { "\n..." } else { "" }
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

/// Fast path = generic path on `B` for every strided plan, every form, unit upstream.
pub fn strided_inputs<B: AutodiffBackend>(loss: Loss, tol: Tol) {
    assert_native_float_dtype::<B>(&Default::default());
    let mut report = Report::new(&format!("{loss:?} strided inputs"));
    for plan in strided_plans() {
        for form in forms() {
            let label = format!("{loss:?} {plan:?} {form:?}");
            let pair = report.catch(&label, || {
                (
                    run::<B>(loss, Size::Small, plan, &form, true, Upstream::Unit),
                    run::<B>(loss, Size::Small, plan, &form, false, Upstream::Unit),
                )
            });
            if let Some((fast, generic)) = pair {
                report.check(&label, &fast, &generic, tol);
            }
        }
    }
    report.finish();
}

/// Each path on a strided view = the same path on a contiguous copy of what the view shows
/// (gradients mapped back through the view's adjoint), every strided plan and form, signed
/// upstream weights. Independent of the accuracy of either path: the same code runs on the same
/// numbers, so only the layout handling can differ (`same`: a few roundings, from the order in
/// which sums over rows, or over an expanded dimension, are taken).
pub fn strided_equals_contiguous<B: AutodiffBackend>(loss: Loss, same: Tol) {
    assert_native_float_dtype::<B>(&Default::default());
    let mut report = Report::new(&format!("{loss:?} strided = contiguous"));
    let mut cases: Vec<(Size, Plan, Form)> = Vec::new();
    for plan in strided_plans() {
        for form in forms() {
            cases.push((Size::Small, plan, form));
        }
    }
    cases.push((Size::Large, Plan::Mixed(0), Form::NoReduction));
    cases.push((
        Size::Large,
        Plan::All(Layout::Transposed),
        Form::Reduced(Reduction::Sum),
    ));
    for (size, plan, form) in cases {
        for fast in [true, false] {
            let path = if fast { "fast" } else { "generic" };
            let label = format!("{loss:?} {size:?} {plan:?} {form:?} {path}");
            let ins = inputs(loss, size);
            let seen: Vec<Input> = ins
                .iter()
                .enumerate()
                .map(|(k, inp)| Input {
                    data: viewed_data(plan.layout(k), &inp.shape, &inp.data),
                    ..inp.clone()
                })
                .collect();
            let pair = report.catch(&label, || {
                let strided = run_inputs::<B>(loss, &ins, plan, &form, fast, Upstream::Weighted);
                let contiguous = run_inputs::<B>(
                    loss,
                    &seen,
                    Plan::All(Layout::Contiguous),
                    &form,
                    fast,
                    Upstream::Weighted,
                );
                (strided, contiguous)
            });
            let Some((strided, mut contiguous)) = pair else {
                continue;
            };
            let with_grad = ins.iter().enumerate().filter(|(_, inp)| inp.grad);
            for ((k, inp), (_, g)) in with_grad.zip(contiguous.grads.iter_mut()) {
                *g = g
                    .as_ref()
                    .map(|g| to_stored_gradient(plan.layout(k), &inp.shape, g));
            }
            report.check(&label, &strided, &contiguous, same);
        }
    }
    report.finish();
}

/// Fast path = generic path on `B` with signed and zero upstream weights, on contiguous and
/// mixed-layout inputs, every form.
pub fn weighted_upstream<B: AutodiffBackend>(loss: Loss, tol: Tol) {
    assert_native_float_dtype::<B>(&Default::default());
    let mut report = Report::new(&format!("{loss:?} weighted upstream"));
    for plan in [Plan::All(Layout::Contiguous), Plan::Mixed(1)] {
        for form in forms() {
            let label = format!("{loss:?} {plan:?} {form:?} weighted");
            let pair = report.catch(&label, || {
                (
                    run::<B>(loss, Size::Small, plan, &form, true, Upstream::Weighted),
                    run::<B>(loss, Size::Small, plan, &form, false, Upstream::Weighted),
                )
            });
            if let Some((fast, generic)) = pair {
                report.check(&label, &fast, &generic, tol);
            }
        }
    }
    report.finish();
}

/// Fast path = generic path on `B` on inputs larger than one kernel chunk.
pub fn large_inputs<B: AutodiffBackend>(loss: Loss, tol: Tol) {
    assert_native_float_dtype::<B>(&Default::default());
    let largest = inputs(loss, Size::Large)
        .iter()
        .map(|i| i.data.len())
        .max()
        .unwrap_or(0);
    assert!(
        largest > KERNEL_CHUNK,
        "{loss:?}: large inputs are {largest} elements"
    );
    let mut report = Report::new(&format!("{loss:?} large inputs"));
    let cases = [
        (
            Plan::All(Layout::Contiguous),
            Form::NoReduction,
            Upstream::Weighted,
        ),
        (
            Plan::All(Layout::Contiguous),
            Form::Reduced(Reduction::Mean),
            Upstream::Unit,
        ),
        (
            Plan::All(Layout::Transposed),
            Form::NoReduction,
            Upstream::Unit,
        ),
        (
            Plan::Mixed(2),
            Form::Reduced(Reduction::Sum),
            Upstream::Weighted,
        ),
        (
            Plan::All(Layout::Flipped),
            Form::Reduced(Reduction::BatchMean),
            Upstream::Weighted,
        ),
    ];
    for (plan, form, upstream) in cases {
        let label = format!("{loss:?} large {plan:?} {form:?} {upstream:?}");
        let pair = report.catch(&label, || {
            (
                run::<B>(loss, Size::Large, plan, &form, true, upstream),
                run::<B>(loss, Size::Large, plan, &form, false, upstream),
            )
        });
        if let Some((fast, generic)) = pair {
            report.check(&label, &fast, &generic, tol);
        }
    }
    report.finish();
}

/// On `U`, an autodiff backend the host module does not recognise (its derivatives go through
/// the `with_grad` fallback), the fast path's values and gradients equal those on the
/// recognised `B` (same kernel, so to a few roundings: `same`).
pub fn fallback_attach<B: AutodiffBackend, U: AutodiffBackend>(loss: Loss, same: Tol) {
    assert_native_float_dtype::<B>(&Default::default());
    assert_native_float_dtype::<U>(&Default::default());
    let mut report = Report::new(&format!("{loss:?} fallback attach"));
    let mut cases = Vec::new();
    for form in forms() {
        for upstream in [Upstream::Unit, Upstream::Weighted] {
            cases.push((
                Size::Small,
                Plan::All(Layout::Contiguous),
                form.clone(),
                upstream,
            ));
            cases.push((Size::Small, Plan::Mixed(4), form.clone(), upstream));
        }
    }
    cases.push((
        Size::Large,
        Plan::Mixed(0),
        Form::NoReduction,
        Upstream::Weighted,
    ));
    cases.push((
        Size::Large,
        Plan::All(Layout::Contiguous),
        Form::Reduced(Reduction::Mean),
        Upstream::Weighted,
    ));
    for (size, plan, form, upstream) in cases {
        let label = format!("{loss:?} {size:?} {plan:?} {form:?} {upstream:?}");
        let runs = report.catch(&label, || {
            (
                run::<U>(loss, size, plan, &form, true, upstream),
                run::<B>(loss, size, plan, &form, true, upstream),
            )
        });
        if let Some((unknown, known)) = runs {
            report.check(&label, &unknown, &known, same);
        }
    }
    report.finish();
}

/// Instantiates the checks: one module per loss with the tests `strided_inputs`,
/// `weighted_upstream`, `large_inputs` (fast vs generic: `$tol`; attributes given before the
/// name apply to these three), `strided_equals_contiguous` (the same code on the same numbers,
/// summed in another order: `$layout`) and `fallback_attach` (the same kernel, another
/// gradient attachment: `$same`).
///
/// `$known`: an autodiff NdArray backend the host module recognises; `$unknown`: one it does
/// not (same float type); `$dtype`: the float dtype both must run in.
/// Without a list of losses: every loss with a host kernel.
#[macro_export]
macro_rules! fast_path_tests {
    ($known:ty, $unknown:ty, $dtype:expr, tol: $tol:expr, layout: $layout:expr, same: $same:expr) => {
        $crate::fast_path_tests!($known, $unknown, $dtype, tol: $tol, layout: $layout, same: $same;
            nb => Nb,
            nb_full_theta => NbFullTheta,
            zinb => Zinb,
            zinb_full_theta => ZinbFullTheta,
            vae_mse => VaeMse,
            vae_bce => VaeBce,
            mnll => Mnll,
            mnll_2d => Mnll2d,
            mnll_logits => MnllLogits,
            mixture => Mixture,
            mixture_labels => MixtureLabels,
            mixture_unlabelled => MixtureUnlabelled,
            log1p_mse => Log1pMse,
        );
    };
    ($known:ty, $unknown:ty, $dtype:expr, tol: $tol:expr, layout: $layout:expr, same: $same:expr;
     $($(#[$attr:meta])* $name:ident => $loss:ident),* $(,)?) => {
        #[test]
        fn runs_in_its_float_type() {
            use burn::tensor::Tensor;
            $crate::common::assert_native_float_dtype::<$known>(&Default::default());
            $crate::common::assert_native_float_dtype::<$unknown>(&Default::default());
            let t = Tensor::<$known, 1>::zeros([1], &Default::default());
            assert_eq!(t.dtype(), $dtype);
            let t = Tensor::<$unknown, 1>::zeros([1], &Default::default());
            assert_eq!(t.dtype(), $dtype);
        }
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                use $crate::fast_paths_suite::{self as suite, Loss};
                $(#[$attr])*
                #[test]
                fn strided_inputs() {
                    suite::strided_inputs::<$known>(Loss::$loss, $tol);
                }
                $(#[$attr])*
                #[test]
                fn weighted_upstream() {
                    suite::weighted_upstream::<$known>(Loss::$loss, $tol);
                }
                $(#[$attr])*
                #[test]
                fn large_inputs() {
                    suite::large_inputs::<$known>(Loss::$loss, $tol);
                }
                #[test]
                fn strided_equals_contiguous() {
                    suite::strided_equals_contiguous::<$known>(Loss::$loss, $layout);
                }
                #[test]
                fn fallback_attach() {
                    suite::fallback_attach::<$known, $unknown>(Loss::$loss, $same);
                }
            }
        )*
    };
}

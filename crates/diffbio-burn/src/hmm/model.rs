//! The [`Hmm`] module: learnable raw logits and their normalised log-probabilities.

use burn::module::{Module, Param, ParamId};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Tensor, backend::Backend};

use super::HmmAlgorithm;
use crate::special::constant;
use crate::validate;

pub(crate) const NAME: &str = "Hmm";

/// A discrete hidden Markov model with learnable parameters, DiffBio's `HMMLikelihoodLoss`.
///
/// The three parameters are **raw logits**, normalised with `log_softmax` on every use
/// (transitions and emissions along their last axis; row = from-state), exactly as DiffBio
/// does, so that any raw values are valid and an optimiser needs no constraint:
///
/// ```text
/// log π = log_softmax(initial)          [S]
/// log A = log_softmax(transitions, 1)   [S, S]   A[i, j] = P(z_{t+1} = j | z_t = i)
/// log B = log_softmax(emissions, 1)     [S, E]   B[i, k] = P(x_t = k | z_t = i)
/// ```
///
/// A raw logit may be `-inf` (a structural zero, e.g. a forbidden transition) as long as
/// every row keeps one finite entry; `+inf` and NaN are outside the domain.
///
/// Build one with [`HmmConfig::init`](super::HmmConfig::init) (random, DiffBio's
/// initialisation), [`Hmm::from_probs`], [`Hmm::from_log_probs`] or [`Hmm::from_logits`].
/// See the [module documentation](super) for the likelihood, decoding and sampling methods.
#[derive(Module, Debug)]
pub struct Hmm<B: Backend> {
    /// Raw initial-state logits, `[S]`.
    pub initial: Param<Tensor<B, 1>>,
    /// Raw transition logits, `[S, S]`, row = from-state.
    pub transitions: Param<Tensor<B, 2>>,
    /// Raw emission logits, `[S, E]`, row = state.
    pub emissions: Param<Tensor<B, 2>>,
    /// See [`HmmConfig::validate`](super::HmmConfig::validate).
    pub validate: bool,
    /// See [`HmmConfig::algorithm`](super::HmmConfig::algorithm).
    #[module(skip)]
    pub algorithm: HmmAlgorithm,
    /// See [`HmmConfig::taped_gradient`](super::HmmConfig::taped_gradient).
    pub taped_gradient: bool,
}

/// The normalised log-probabilities of an [`Hmm`] (tracked: gradients flow to the raw
/// parameters).
#[derive(Debug, Clone)]
pub struct HmmLogProbs<B: Backend> {
    /// `log π`, `[S]`.
    pub log_initial: Tensor<B, 1>,
    /// `log A`, `[S, S]`, row = from-state.
    pub log_transitions: Tensor<B, 2>,
    /// `log B`, `[S, E]`, row = state.
    pub log_emissions: Tensor<B, 2>,
}

impl<B: Backend> HmmLogProbs<B> {
    /// Untracked copies (same values, no autodiff history).
    pub fn detach(&self) -> Self {
        Self {
            log_initial: constant(&self.log_initial),
            log_transitions: constant(&self.log_transitions),
            log_emissions: constant(&self.log_emissions),
        }
    }

    /// The probabilities `(π, A, B)` as `f64` row-major vectors (reads the values back).
    pub fn to_probs(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (pi, a, b) = self.to_log_vecs();
        let exp = |v: Vec<f64>| v.into_iter().map(f64::exp).collect();
        (exp(pi), exp(a), exp(b))
    }

    /// The log-probabilities `(log π, log A, log B)` as `f64` row-major vectors (reads the
    /// values back).
    pub fn to_log_vecs(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let read = |t: Tensor<B, 2>| -> Vec<f64> { t.into_data().iter::<f64>().collect() };
        (
            read(self.log_initial.clone().unsqueeze()),
            read(self.log_transitions.clone()),
            read(self.log_emissions.clone()),
        )
    }
}

/// Checks the shapes of `(initial [S], transitions [S, S], emissions [S, E])`; returns `(S, E)`.
fn check_param_shapes(
    initial: &[usize],
    transitions: &[usize],
    emissions: &[usize],
) -> (usize, usize) {
    let s = initial[0];
    if s == 0 {
        validate::shape_error(NAME, "initial", initial, "[S] with S >= 1");
    }
    if transitions != [s, s] {
        validate::shape_error(NAME, "transitions", transitions, &format!("[{s}, {s}]"));
    }
    if emissions[0] != s || emissions[1] == 0 {
        validate::shape_error(
            NAME,
            "emissions",
            emissions,
            &format!("[{s}, E] with E >= 1"),
        );
    }
    (s, emissions[1])
}

/// Panics unless every row (last axis) of the raw logits `x` is free of NaN and `+inf`
/// and has at least one finite entry.
fn check_logit_rows<B: Backend, const D: usize>(arg: &str, x: &Tensor<B, D>) {
    let dims = x.dims();
    let cols = dims[D - 1];
    let data: Vec<f64> = x.to_data().iter::<f64>().collect();
    for (row, values) in data.chunks(cols).enumerate() {
        if let Some(v) = values.iter().find(|v| v.is_nan() || **v == f64::INFINITY) {
            panic!("{NAME}: `{arg}` must not contain NaN or +inf; found {v} in row {row}");
        }
        assert!(
            values.iter().any(|v| v.is_finite()),
            "{NAME}: every row of `{arg}` needs a positive probability; row {row} has none"
        );
    }
}

impl<B: Backend> Hmm<B> {
    /// An HMM whose raw logits are the given tensors, **as they are**: their autodiff
    /// history is kept, so gradients of the HMM's outputs flow back into whatever produced
    /// them (e.g. a network that predicts the parameters, or leaf tensors created with
    /// `.require_grad()`). Plain untracked tensors get no gradient; use
    /// [`from_log_probs`](Self::from_log_probs) or [`from_probs`](Self::from_probs) for a
    /// module whose own parameters are trained.
    ///
    /// # Shapes
    /// `initial [S]`, `transitions [S, S]` (row = from-state), `emissions [S, E]`.
    ///
    /// # Panics
    /// If the shapes disagree or `S` or `E` is 0.
    pub fn from_logits(
        initial: Tensor<B, 1>,
        transitions: Tensor<B, 2>,
        emissions: Tensor<B, 2>,
    ) -> Self {
        check_param_shapes(&initial.dims(), &transitions.dims(), &emissions.dims());
        Self {
            initial: Param::initialized(ParamId::new(), initial),
            transitions: Param::initialized(ParamId::new(), transitions),
            emissions: Param::initialized(ParamId::new(), emissions),
            validate: true,
            algorithm: HmmAlgorithm::Auto,
            taped_gradient: false,
        }
    }

    /// An HMM with the given log-probabilities (rows need not be exactly normalised: they
    /// are normalised on use). The values become new leaf parameters that require grad.
    /// `-inf` entries are structural zeros.
    ///
    /// # Shapes
    /// As [`from_logits`](Self::from_logits).
    ///
    /// # Panics
    /// If the shapes disagree, an entry is NaN or `+inf`, or a row is entirely `-inf`.
    pub fn from_log_probs(
        log_initial: Tensor<B, 1>,
        log_transitions: Tensor<B, 2>,
        log_emissions: Tensor<B, 2>,
    ) -> Self {
        check_param_shapes(
            &log_initial.dims(),
            &log_transitions.dims(),
            &log_emissions.dims(),
        );
        check_logit_rows("log_initial", &log_initial);
        check_logit_rows("log_transitions", &log_transitions);
        check_logit_rows("log_emissions", &log_emissions);
        let leaf = |x: Tensor<B, 1>| Param::from_tensor(constant(&x));
        let leaf2 = |x: Tensor<B, 2>| Param::from_tensor(constant(&x));
        Self {
            initial: leaf(log_initial),
            transitions: leaf2(log_transitions),
            emissions: leaf2(log_emissions),
            validate: true,
            algorithm: HmmAlgorithm::Auto,
            taped_gradient: false,
        }
    }

    /// An HMM with the given probabilities (non-negative; each row is normalised on use, so
    /// it needs only be proportional to the probabilities). Zeros are structural zeros.
    ///
    /// # Shapes
    /// As [`from_logits`](Self::from_logits).
    ///
    /// # Panics
    /// If the shapes disagree, an entry is negative or not finite, or a row is all zero.
    pub fn from_probs(
        initial: Tensor<B, 1>,
        transitions: Tensor<B, 2>,
        emissions: Tensor<B, 2>,
    ) -> Self {
        check_param_shapes(&initial.dims(), &transitions.dims(), &emissions.dims());
        validate::non_negative(NAME, "initial", &initial);
        validate::non_negative(NAME, "transitions", &transitions);
        validate::non_negative(NAME, "emissions", &emissions);
        Self::from_log_probs(
            constant(&initial).log(),
            constant(&transitions).log(),
            constant(&emissions).log(),
        )
    }

    /// Switches the input validation on or off (see
    /// [`HmmConfig::validate`](super::HmmConfig::validate)).
    pub fn with_validate(mut self, validate: bool) -> Self {
        self.validate = validate;
        self
    }

    /// Selects the implementation of the forward algorithm (see [`HmmAlgorithm`]).
    pub fn with_algorithm(mut self, algorithm: HmmAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Differentiates the recursion by autodiff instead of the expected counts (see
    /// [`HmmConfig::taped_gradient`](super::HmmConfig::taped_gradient)).
    pub fn with_taped_gradient(mut self, taped: bool) -> Self {
        self.taped_gradient = taped;
        self
    }

    /// Number of hidden states `S`.
    pub fn n_states(&self) -> usize {
        self.initial.lazy_shape()[0]
    }

    /// Number of observable symbols `E`.
    pub fn n_emissions(&self) -> usize {
        self.emissions.lazy_shape()[1]
    }

    /// The device of the parameters.
    pub fn device(&self) -> B::Device {
        self.initial.lazy_device()
    }

    /// The normalised log-probabilities `log_softmax` of the raw logits (tracked).
    pub fn log_probs(&self) -> HmmLogProbs<B> {
        HmmLogProbs {
            log_initial: log_softmax(self.initial.val(), 0),
            log_transitions: log_softmax(self.transitions.val(), 1),
            log_emissions: log_softmax(self.emissions.val(), 1),
        }
    }
}

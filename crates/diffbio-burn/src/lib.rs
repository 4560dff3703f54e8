//! # diffbio-burn
//!
//! Differentiable statistical losses for genomics, generic over any [Burn](https://burn.dev)
//! backend: negative-binomial and zero-inflated NB likelihoods for count data, the VAE ELBO,
//! a hidden Markov model with a forward-algorithm loss, and BPNet's profile losses.
//!
//! Every loss follows the conventions of `burn::nn::loss`: a `#[derive(Config)]` config with
//! documented defaults, `init()`, `forward(.., Reduction)` and `forward_no_reduction(..)`.
//! Gradients come from `burn-autodiff`; where a hand-written derivative is more accurate
//! or cheaper than differentiating a composite (e.g. `d lgamma / dx = digamma`), it is
//! injected with [`special::with_grad`], which works for every backend.
//!
//! ## Input validation
//! Shape mismatches always panic with a message naming the loss, the argument and the shapes.
//! Value-domain violations (negative counts, `theta <= 0`, labels other than 0/1, ...) are
//! checked by a validation that is **on by default** (`validate` in each config) and panics
//! naming the loss, the input and the first bad value. The check reads one boolean back from
//! the device per input, which forces a synchronisation on GPU backends: switch it off with
//! `.with_validate(false)` in hot training loops once the data pipeline is trusted.
#![warn(missing_docs)]

pub(crate) mod dispatch;
pub mod distributions;
pub mod hmm;
#[cfg(feature = "ndarray")]
pub mod host;
pub mod losses;
pub mod nn;
pub(crate) mod real;
pub mod special;
pub(crate) mod validate;

pub use burn::nn::loss::Reduction;

/// The README's code blocks, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

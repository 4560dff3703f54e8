//! Discrete hidden Markov model with learnable parameters (DiffBio's `HMMLikelihoodLoss`).
//!
//! An [`Hmm`] is a Burn [`Module`](burn::module::Module) holding raw logits for the
//! initial distribution `π [S]`, the transitions `A [S, S]` (row = from-state) and the
//! emissions `B [S, E]`, normalised with `log_softmax` on use. Train it with any Burn
//! optimiser on the loss [`Hmm::forward`], the mean negative log-likelihood of a batch of
//! integer sequences:
//!
//! ```text
//! loss = -1/B Σ_b log p(x_b),   p(x) = Σ_z π[z_0] B[z_0, x_0] Π_t A[z_{t-1}, z_t] B[z_t, x_t]
//! ```
//!
//! Decoding: [`Hmm::viterbi`] (most likely state paths with their joint log-probability) and
//! [`Hmm::posteriors`] (state marginals by forward-backward). [`Hmm::sample`] draws state and
//! symbol sequences with a seeded RNG, to generate data for tests and examples.
//!
//! # Variable-length batches
//! Every method takes optional `lengths [B]`: row `b` holds `lengths[b]` real symbols and
//! then padding, which contributes nothing (DiffBio has no lengths and scores padding as
//! real symbols).
//!
//! # Algorithms and gradients
//! [`HmmAlgorithm`] selects the implementation ([`Hmm::with_algorithm`]); all agree to float
//! rounding (tested on random padded batches):
//!
//! | algorithm | how | `B=64, T=1000, S=4, E=4` | `B=8, T=10000, S=8, E=4` |
//! |---|---|---|---|
//! | `Host` (`Auto` on `NdArray`) | plain Rust, `f64`, whole batch in one pass | 1.4 ms | 3.3 ms |
//! | `Sequential` | one batched tensor step per time step | 220 ms | 1.63 s |
//! | `Sequential` + `taped_gradient` | the same, differentiated by autodiff | 344 ms | (not run) |
//! | `ParallelScan` (`Auto` elsewhere, `T >= 64`) | `O(log T)` levels of tensor ops | 745 ms | 3.79 s |
//! | `ParallelScan` + `taped_gradient` | the same, differentiated by autodiff | 252 ms | (not run) |
//!
//! Forward + backward on `Autodiff<NdArray<f32>>`, criterion estimates of `benches/hmm.rs`
//! on a 2-core machine (one run; the taped variants are skipped at `T = 10,000`). DiffBio's
//! JAX version took 4.9 ms and 17.2 ms in the same run (`benches/peers`). The tensor
//! algorithms exist
//! for GPU backends, where each of `Sequential`'s `T` steps is a kernel launch and
//! `ParallelScan` needs only `O(log T)` of them; on a CPU they do more work than the host
//! kernel by far.
//!
//! The forward recursion is log-space and batched (`[B, S, 1] + [1, S, S]` → log-sum-exp over
//! the from-state). By default its gradient is not taped: the derivative of `log p(x_b)` with
//! respect to each normalised log-probability is its expected count under the posterior
//! (from forward-backward), attached per sequence (see the `counts` module), so any upstream
//! weighting of the `[B]` log-likelihoods is differentiated correctly.
//!
//! The tensor algorithms carry normalised forward and backward variables (shifted to maximum
//! 0 at every step, or every scan product, with the log scales summed apart) and form the
//! posteriors as per-step softmaxes, so float32 loses nothing on long sequences: on
//! near-deterministic chains (`S = 6`, `T = 300`, probabilities within 1e-5 of 0 and 1) every
//! algorithm, taped or not, is within 1e-4 of float64 in the gradient of the mean NLL and
//! 1e-5 relative in its value (`tests/float32/hmm_f32_accuracy.rs`).
//!
//! Memory, in floats:
//!
//! | | autodiff tape | transient |
//! |---|---|---|
//! | expected counts (default) | `O(B·(S² + S·E))` | `O(B·T·S)` (α, β, γ); the `ξ` sums in blocks of `≤ 4M` |
//! | `taped_gradient` | `≈ 2·B·T·S² + 6·B·T·S` (every step's `[B, S, S]` sum and exponential) | — |
//! | `Host` | `O(B·(S² + S·E))` | `O(T·S)` per thread |
//! | `ParallelScan` | as above (taped: `O(B·T·S³)`, the broadcast log-semiring products) | `O(B·T·S²)` for the scan elements; each level's `[.., S, S, S]` log-semiring products in blocks of `≤ 16M` |
//!
//! # Validation
//! With `validate` on (the default) the tensor algorithms read one boolean back from the
//! device per call to check the observations and lengths (the host kernel checks the data it
//! reads anyway, at no extra cost). On GPU backends that read-back is a synchronisation and
//! the only one in the hot path of `Sequential` and `ParallelScan`: switch it off with
//! [`Hmm::with_validate`] in training loops once the data are trusted. With it off,
//! out-of-range symbols are read as DiffBio's `log_emit[:, obs]` reads them in JAX: a negative
//! symbol `k` counts from the end (`k + E`; `-1` is the last symbol), and what is still
//! outside `0..E` is clamped into it (`E + 3` reads `E - 1`, `-E - 1` reads 0).
//!
//! # Example
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use burn::tensor::{Int, Tensor};
//! use diffbio_burn::Reduction;
//! use diffbio_burn::hmm::HmmConfig;
//!
//! type B = Autodiff<NdArray>;
//! let device = Default::default();
//! let hmm = HmmConfig::new(3, 4).with_seed(7).init::<B>(&device);
//! let x = Tensor::<B, 2, Int>::from_ints([[0, 1, 3, 2], [2, 2, 0, 0]], &device);
//! let lengths = Tensor::<B, 1, Int>::from_ints([4, 2], &device); // row 1: two symbols
//! let loss = hmm.forward(x, Some(lengths), Reduction::Mean);
//! let grads = loss.backward();
//! assert!(hmm.transitions.grad(&grads).is_some());
//! ```

mod check;
mod config;
mod counts;
mod decode;
mod em;
mod forward;
mod host;
mod likelihood;
mod model;
mod sample;
mod scan;

pub use config::{HmmAlgorithm, HmmConfig};
pub use decode::ViterbiPaths;
pub use em::{BaumWelch, BaumWelchConfig, EmFit, EmStep};
pub use model::{Hmm, HmmLogProbs};
pub use sample::HmmSample;

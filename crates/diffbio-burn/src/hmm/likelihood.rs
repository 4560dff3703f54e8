//! The likelihood of observed sequences and the NLL loss of an [`Hmm`], and the choice of
//! the implementation that computes them.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::check::{Batch, check_host};
use super::counts::{attach, expected_counts};
use super::forward::{backward_betas, emission_terms, forward_alphas};
use super::host::{self, HostBatch, HostModel};
use super::model::{HmmLogProbs, NAME};
use super::scan;
use super::{Hmm, HmmAlgorithm};
use crate::Reduction;
use crate::special::is_autodiff;

/// The implementation an [`HmmAlgorithm`] resolves to for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    Host,
    Sequential,
    ParallelScan,
}

/// From this many time steps `Auto` prefers `ParallelScan` to `Sequential` off the host.
const SCAN_FROM: usize = 64;

/// The data of a batch and the model, on the host.
pub(crate) struct HostInputs {
    pub model: HostModel,
    pub observations: Vec<i64>,
    pub lengths: Option<Vec<i64>>,
    pub batch: usize,
    pub len: usize,
}

impl HostInputs {
    pub fn batch(&self) -> HostBatch<'_> {
        HostBatch {
            observations: &self.observations,
            lengths: self.lengths.as_deref(),
            batch: self.batch,
            len: self.len,
        }
    }
}

fn read<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Vec<f64> {
    t.to_data().iter::<f64>().collect()
}

impl<B: Backend> Hmm<B> {
    /// Log-likelihood `log p(x_b)` of each sequence by the forward algorithm, `[B]`.
    ///
    /// `lengths[b]` (optional) is the number of real symbols of row `b`; the positions
    /// `t >= lengths[b]` are padding and contribute nothing (any value may be stored there).
    /// Without `lengths` every row has length `T`, and the result is DiffBio's.
    ///
    /// The gradient with respect to the parameters is the expected-count formula (see the
    /// [module docs](super)), or autodiff through the recursion with `taped_gradient`.
    ///
    /// # Shapes
    /// - `observations`: `[B, T]` integer symbols in `0..E`
    /// - `lengths`: `[B]`, each in `1..=T`
    /// - output: `[B]`
    ///
    /// # Panics
    /// - If `B` or `T` is 0 or `lengths` is not `[B]`.
    /// - With `validate` on: if an unpadded symbol is outside `0..E` or a length is outside
    ///   `1..=T`.
    /// - If the algorithm is [`HmmAlgorithm::Host`] and `taped_gradient` is on.
    pub fn log_likelihood(
        &self,
        observations: Tensor<B, 2, Int>,
        lengths: Option<Tensor<B, 1, Int>>,
    ) -> Tensor<B, 1> {
        let batch = Batch::new(observations, lengths);
        let lp = self.log_probs();
        let grad = is_autodiff(&lp.log_initial);
        let path = self.path(batch.len);
        if path != Path::Host && self.validate {
            batch.check_values(self.n_emissions());
        }
        if path != Path::Host && self.taped_gradient {
            return match path {
                Path::ParallelScan => scan::log_likelihood(&lp, &batch),
                _ => sequential_value(&lp, &batch),
            };
        }
        let lpc = lp.detach();
        if !grad {
            return match path {
                Path::Host => self.value_and_counts(&lpc, batch, false).0,
                Path::Sequential => sequential_value(&lpc, &batch),
                Path::ParallelScan => scan::log_likelihood(&lpc, &batch),
            };
        }
        let (value, counts) = self.value_and_counts(&lpc, batch, true);
        attach(value, &lp, counts.expect("counts were asked for"))
    }

    /// The log-likelihoods `[B]` of a batch under the (detached) log-probabilities `lpc`
    /// and, with `want_counts`, each sequence's expected counts `[B, S + S² + S·E]` (the
    /// gradient of its log-likelihood; see the `counts` module), by the algorithm the model
    /// selects, never taped. The tensor paths expect the batch's values checked already.
    pub(crate) fn value_and_counts(
        &self,
        lpc: &HmmLogProbs<B>,
        batch: Batch<B>,
        want_counts: bool,
    ) -> (Tensor<B, 1>, Option<Tensor<B, 2>>) {
        match self.path(batch.len) {
            Path::Host => {
                let inputs = self.host_inputs(lpc, &batch);
                let result =
                    host::forward_backward(&inputs.model, &inputs.batch(), want_counts, false);
                let like = (&self.device(), lpc.log_initial.dtype());
                let value =
                    Tensor::from_data(TensorData::new(result.log_likelihood, [batch.batch]), like);
                let p = inputs.model.n_params();
                let counts = want_counts.then(|| {
                    Tensor::from_data(TensorData::new(result.counts, [batch.batch, p]), like)
                });
                (value, counts)
            }
            Path::Sequential => {
                let valid = batch.valid();
                let em = emission_terms(lpc.log_emissions.clone(), batch.observations.clone());
                let forward = forward_alphas(lpc, em.clone(), valid.clone());
                let value = forward.log_likelihood;
                if !want_counts {
                    return (value, None);
                }
                let betas = backward_betas(lpc, em.clone(), valid.clone());
                let counts = expected_counts(
                    lpc,
                    em,
                    batch.observations,
                    valid,
                    Tensor::stack(forward.alphas, 1),
                    Tensor::stack(betas, 1),
                );
                (value, Some(counts))
            }
            Path::ParallelScan => {
                if !want_counts {
                    return (scan::log_likelihood(lpc, &batch), None);
                }
                let valid = batch.valid();
                let (alpha, beta, value, em) = scan::forward_backward(lpc, &batch, valid.clone());
                let counts = expected_counts(lpc, em, batch.observations, valid, alpha, beta);
                (value, Some(counts))
            }
        }
    }

    /// The reduced negative log-likelihood, the HMM training loss.
    ///
    /// `Reduction::Mean`/`Auto`/`BatchMean`: mean over the `B` sequences (DiffBio's
    /// `HMMLikelihoodLoss`); `Sum`: sum.
    ///
    /// # Shapes
    /// As [`log_likelihood`](Self::log_likelihood); output `[1]`.
    ///
    /// # Panics
    /// As [`log_likelihood`](Self::log_likelihood).
    pub fn forward(
        &self,
        observations: Tensor<B, 2, Int>,
        lengths: Option<Tensor<B, 1, Int>>,
        reduction: Reduction,
    ) -> Tensor<B, 1> {
        let nll = self.forward_no_reduction(observations, lengths);
        match reduction {
            Reduction::Sum => nll.sum(),
            Reduction::Mean | Reduction::Auto | Reduction::BatchMean => nll.mean(),
        }
    }

    /// Negative log-likelihood of each sequence, `-log p(x_b)`, `[B]`.
    ///
    /// # Shapes
    /// As [`log_likelihood`](Self::log_likelihood).
    ///
    /// # Panics
    /// As [`log_likelihood`](Self::log_likelihood).
    pub fn forward_no_reduction(
        &self,
        observations: Tensor<B, 2, Int>,
        lengths: Option<Tensor<B, 1, Int>>,
    ) -> Tensor<B, 1> {
        self.log_likelihood(observations, lengths).neg()
    }

    /// Shape checks, and value checks when `validate` is on (on the device).
    pub(crate) fn checked_batch(
        &self,
        observations: Tensor<B, 2, Int>,
        lengths: Option<Tensor<B, 1, Int>>,
    ) -> Batch<B> {
        let batch = Batch::new(observations, lengths);
        if self.validate {
            batch.check_values(self.n_emissions());
        }
        batch
    }

    /// The algorithm that [`algorithm`](Self::algorithm) resolves to on this backend for
    /// sequences of `len` time steps (never [`HmmAlgorithm::Auto`]).
    ///
    /// # Panics
    /// If the algorithm is [`HmmAlgorithm::Host`] and `taped_gradient` is on.
    pub fn resolved_algorithm(&self, len: usize) -> HmmAlgorithm {
        match self.path(len) {
            Path::Host => HmmAlgorithm::Host,
            Path::Sequential => HmmAlgorithm::Sequential,
            Path::ParallelScan => HmmAlgorithm::ParallelScan,
        }
    }

    /// The implementation that [`algorithm`](Self::algorithm) selects on this backend.
    pub(crate) fn path(&self, len: usize) -> Path {
        match self.algorithm {
            HmmAlgorithm::Host => {
                assert!(
                    !self.taped_gradient,
                    "{NAME}: the Host algorithm has no tape; switch taped_gradient off or \
                     choose HmmAlgorithm::Sequential"
                );
                Path::Host
            }
            HmmAlgorithm::Sequential => Path::Sequential,
            HmmAlgorithm::ParallelScan => Path::ParallelScan,
            HmmAlgorithm::Auto => {
                if !self.taped_gradient && host::is_host_device::<B>() {
                    Path::Host
                } else if len >= SCAN_FROM {
                    Path::ParallelScan
                } else {
                    Path::Sequential
                }
            }
        }
    }

    /// Reads the log-probabilities and the batch back to the host, validating the batch
    /// there when `validate` is on (no extra device read-back).
    pub(crate) fn host_inputs(&self, lp: &HmmLogProbs<B>, batch: &Batch<B>) -> HostInputs {
        let (observations, lengths) = batch.to_host();
        if self.validate {
            check_host(
                &observations,
                lengths.as_deref(),
                batch.batch,
                batch.len,
                self.n_emissions(),
            );
        }
        HostInputs {
            model: HostModel::new(
                read(&lp.log_initial),
                read(&lp.log_transitions),
                read(&lp.log_emissions),
            ),
            observations,
            lengths,
            batch: batch.batch,
            len: batch.len,
        }
    }
}

/// The log-likelihood by the sequential tensor recursion on `lp` (taped if `lp` is tracked).
fn sequential_value<B: Backend>(lp: &HmmLogProbs<B>, batch: &Batch<B>) -> Tensor<B, 1> {
    let em = emission_terms(lp.log_emissions.clone(), batch.observations.clone());
    forward_alphas(lp, em, batch.valid()).log_likelihood
}

//! The likelihood of observed sequences and the NLL loss of an [`Hmm`].

use burn::tensor::{Int, Tensor, backend::Backend};

use super::Hmm;
use super::check::Batch;
use super::forward::{emission_terms, forward_alphas, log_likelihood_from_alpha};
use crate::Reduction;

impl<B: Backend> Hmm<B> {
    /// Log-likelihood `log p(x_b)` of each sequence by the forward algorithm, `[B]`.
    ///
    /// `lengths[b]` (optional) is the number of real symbols of row `b`; the positions
    /// `t >= lengths[b]` are padding and contribute nothing (any value may be stored there).
    /// Without `lengths` every row has length `T`, and the result is DiffBio's.
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
    pub fn log_likelihood(
        &self,
        observations: Tensor<B, 2, Int>,
        lengths: Option<Tensor<B, 1, Int>>,
    ) -> Tensor<B, 1> {
        let batch = self.checked_batch(observations, lengths);
        let lp = self.log_probs();
        let valid = batch.valid();
        let em = emission_terms(lp.log_emissions.clone(), batch.observations);
        let alphas = forward_alphas(&lp, em, valid);
        log_likelihood_from_alpha(alphas.last().expect("T >= 1").clone())
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

    /// Shape checks, and value checks when `validate` is on.
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
}

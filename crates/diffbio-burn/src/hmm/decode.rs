//! Decoding: Viterbi most-likely state paths and posterior state marginals.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::Hmm;
use super::check::Batch;
use super::forward::{
    backward_betas, emission_terms, forward_alphas, mask_steps, posteriors_from, time_steps,
};
use super::host;
use super::likelihood::Path;
use super::scan;

/// The most likely state path of each sequence, from [`Hmm::viterbi`].
#[derive(Debug, Clone)]
pub struct ViterbiPaths<B: Backend> {
    /// `argmax_z p(z | x_b)`, `[B, T]`; `-1` at padded positions.
    pub states: Tensor<B, 2, Int>,
    /// `max_z log p(x_b, z)`, the joint log-probability of that path, `[B]`.
    pub log_prob: Tensor<B, 1>,
}

impl<B: Backend> Hmm<B> {
    /// Viterbi decoding: the most likely state path of each sequence and its joint
    /// log-probability (max-product recursion in log space, batched, one tensor step per
    /// time step, then a batched backtrace). Ties go to the lowest state index. Not
    /// differentiable (the values are computed on detached parameters).
    ///
    /// # Shapes
    /// - `observations`: `[B, T]`; `lengths`: `[B]` (optional)
    /// - output: `states [B, T]` (`-1` at padding), `log_prob [B]`
    ///
    /// # Panics
    /// As [`log_likelihood`](Self::log_likelihood).
    pub fn viterbi(
        &self,
        observations: Tensor<B, 2, Int>,
        lengths: Option<Tensor<B, 1, Int>>,
    ) -> ViterbiPaths<B> {
        if self.path(observations.dims()[1]) == Path::Host {
            let batch = Batch::new(observations, lengths);
            let inputs = self.host_inputs(&self.log_probs().detach(), &batch);
            let (states, log_prob) = host::viterbi(&inputs.model, &inputs.batch());
            let device = self.device();
            let dtype = self.initial.val().dtype();
            return ViterbiPaths {
                states: Tensor::from_data(
                    TensorData::new(states, [batch.batch, batch.len]),
                    &device,
                ),
                log_prob: Tensor::from_data(
                    TensorData::new(log_prob, [batch.batch]),
                    (&device, dtype),
                ),
            };
        }
        let batch = self.checked_batch(observations, lengths);
        let valid = batch.valid();
        let lp = self.log_probs().detach();
        let (b, t_len, s) = (batch.batch, batch.len, self.n_states());
        let device = self.device();
        let em = time_steps(emission_terms(lp.log_emissions.clone(), batch.observations));
        let masks = valid.clone().map(|v| mask_steps(v, s));
        let trans = lp.log_transitions.unsqueeze::<3>();
        let identity = Tensor::<B, 1, Int>::arange(0..s as i64, &device)
            .unsqueeze::<2>()
            .expand([b, s]);

        let mut delta = lp.log_initial.unsqueeze::<2>() + em[0].clone();
        let mut pointers = Vec::with_capacity(t_len);
        for t in 1..t_len {
            let scores = delta.clone().unsqueeze_dim::<3>(2) + trans.clone();
            let (best, arg) = scores.max_dim_with_indices(1);
            let next = best.reshape([b, s]) + em[t].clone();
            let arg = arg.reshape([b, s]);
            match &masks {
                Some(m) => {
                    delta = delta.mask_where(m[t].clone(), next);
                    pointers.push(identity.clone().mask_where(m[t].clone(), arg));
                }
                None => {
                    delta = next;
                    pointers.push(arg);
                }
            }
        }
        let (log_prob, last) = delta.max_dim_with_indices(1);
        let mut path = vec![last];
        for ptr in pointers.iter().rev() {
            let prev = ptr
                .clone()
                .gather(1, path.last().expect("non-empty").clone());
            path.push(prev);
        }
        path.reverse();
        let mut states = Tensor::cat(path, 1);
        if let Some(v) = valid {
            states = states.mask_fill(v.bool_not(), -1);
        }
        ViterbiPaths {
            states,
            log_prob: log_prob.reshape([b]),
        }
    }

    /// Posterior state marginals `p(z_t = i | x_b)` by the forward-backward algorithm,
    /// `[B, T, S]`; each unpadded position sums to 1 over states, padded positions are 0.
    /// Not differentiable.
    ///
    /// # Shapes
    /// - `observations`: `[B, T]`; `lengths`: `[B]` (optional)
    /// - output: `[B, T, S]`
    ///
    /// # Panics
    /// As [`log_likelihood`](Self::log_likelihood).
    pub fn posteriors(
        &self,
        observations: Tensor<B, 2, Int>,
        lengths: Option<Tensor<B, 1, Int>>,
    ) -> Tensor<B, 3> {
        let path = self.path(observations.dims()[1]);
        if path == Path::Host {
            let batch = Batch::new(observations, lengths);
            let inputs = self.host_inputs(&self.log_probs().detach(), &batch);
            let result = host::forward_backward(&inputs.model, &inputs.batch(), false, true);
            let shape = [batch.batch, batch.len, self.n_states()];
            let dtype = self.initial.val().dtype();
            return Tensor::from_data(
                TensorData::new(result.posteriors, shape),
                (&self.device(), dtype),
            );
        }
        let batch = self.checked_batch(observations, lengths);
        let valid = batch.valid();
        let lp = self.log_probs().detach();
        if path == Path::ParallelScan {
            let (alpha, beta, _, _) = scan::forward_backward(&lp, &batch, valid.clone());
            return posteriors_from(alpha, beta, valid);
        }
        let em = emission_terms(lp.log_emissions.clone(), batch.observations);
        let alphas = forward_alphas(&lp, em.clone(), valid.clone()).alphas;
        let betas = backward_betas(&lp, em, valid.clone());
        posteriors_from(Tensor::stack(alphas, 1), Tensor::stack(betas, 1), valid)
    }
}

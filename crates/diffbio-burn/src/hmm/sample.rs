//! Sampling state and symbol sequences from an [`Hmm`] with a seeded RNG.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use rand::SeedableRng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;

use super::Hmm;

/// Sequences drawn from an [`Hmm`] by [`Hmm::sample`].
#[derive(Debug, Clone)]
pub struct HmmSample<B: Backend> {
    /// Hidden states, `[N, T]`.
    pub states: Tensor<B, 2, Int>,
    /// Observed symbols, `[N, T]`.
    pub observations: Tensor<B, 2, Int>,
}

/// One categorical distribution per row of a row-major `[rows, cols]` probability matrix.
fn categoricals(probs: &[f64], cols: usize) -> Vec<WeightedIndex<f64>> {
    probs
        .chunks(cols)
        .map(|row| WeightedIndex::new(row).expect("a row of probabilities with positive sum"))
        .collect()
}

impl<B: Backend> Hmm<B> {
    /// Draws `n_sequences` sequences of `length` steps (states and symbols) from the model,
    /// reproducibly for a given `seed` (the model's probabilities are read back to the host
    /// and sampled there with a seeded `StdRng`, so the result is the same on every backend
    /// up to the float precision of the parameters).
    ///
    /// # Shapes
    /// - output: `states [N, T]`, `observations [N, T]`
    ///
    /// # Panics
    /// If `n_sequences` or `length` is 0.
    pub fn sample(&self, n_sequences: usize, length: usize, seed: u64) -> HmmSample<B> {
        assert!(
            n_sequences >= 1 && length >= 1,
            "Hmm: sample needs n_sequences >= 1 and length >= 1, got {n_sequences} and {length}"
        );
        let (s, e) = (self.n_states(), self.n_emissions());
        let (pi, a, b) = self.log_probs().detach().to_probs();
        let initial = WeightedIndex::new(&pi).expect("initial probabilities with positive sum");
        let transitions = categoricals(&a, s);
        let emissions = categoricals(&b, e);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut states = Vec::with_capacity(n_sequences * length);
        let mut symbols = Vec::with_capacity(n_sequences * length);
        for _ in 0..n_sequences {
            let mut z = initial.sample(&mut rng);
            for t in 0..length {
                if t > 0 {
                    z = transitions[z].sample(&mut rng);
                }
                states.push(z as i64);
                symbols.push(emissions[z].sample(&mut rng) as i64);
            }
        }
        let device = self.device();
        let shape = [n_sequences, length];
        HmmSample {
            states: Tensor::from_data(TensorData::new(states, shape), &device),
            observations: Tensor::from_data(TensorData::new(symbols, shape), &device),
        }
    }
}

//! Baum–Welch (EM) training of an [`Hmm`], with Dirichlet priors, per-sequence weights and
//! variable lengths.
//!
//! One step takes the expected counts the forward–backward pass already computes for the
//! gradient (see the `counts` module: `γ_0`, `Σ_t ξ_t`, `Σ_t γ_t [x_t = k]` per sequence),
//! sums them over the sequences with their weights `w_b`, adds the prior's pseudo-counts and
//! normalises each row:
//!
//! ```text
//! π[i]    ∝ Σ_b w_b γ_0^b[i]                       + (c_π - 1)
//! A[i, j] ∝ Σ_b w_b Σ_t ξ_t^b[i, j]                + (c_A - 1)
//! B[i, k] ∝ Σ_b w_b Σ_t γ_t^b[i] [x_t^b = k]       + (c_B - 1)
//! ```
//!
//! each clipped at 0 (a concentration below 1 can push an entry to 0), as hmmlearn's
//! `_do_mstep` does. With all concentrations 1 (the default) this is maximum likelihood and
//! the weighted log-likelihood never decreases from one step to the next; with a prior it is
//! MAP, and the log-posterior never decreases.
//!
//! Structural zeros stay zero: an entry whose probability is 0 has expected count 0 and
//! receives no pseudo-count. A row without any count (a state the data never visit, with no
//! prior) keeps its previous probabilities instead of becoming 0/0.
//!
//! The M-step runs on the host in `f64` (it touches `S + S² + S·E` numbers; one read-back
//! per step), and the new model's parameters are created in the dtype of the old ones.

use burn::config::Config;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::Hmm;
use super::model::NAME;
use crate::validate;

/// Configuration of [`BaumWelch`]: Dirichlet concentrations of the rows of `π`, `A` and
/// `B` (one scalar each, the same for every entry). `1.0` adds nothing (maximum
/// likelihood); `c > 1` adds `c - 1` pseudo-counts to every entry that is not a structural
/// zero. The same convention as hmmlearn's `startprob_prior`, `transmat_prior` and
/// `emissionprob_prior`.
#[derive(Config, Debug)]
pub struct BaumWelchConfig {
    /// Concentration of the initial distribution's prior. Default `1.0` (none).
    #[config(default = 1.0)]
    pub initial_prior: f64,
    /// Concentration of each transition row's prior. Default `1.0` (none).
    #[config(default = 1.0)]
    pub transitions_prior: f64,
    /// Concentration of each emission row's prior. Default `1.0` (none).
    #[config(default = 1.0)]
    pub emissions_prior: f64,
}

impl BaumWelchConfig {
    /// Initialises a [`BaumWelch`] trainer.
    ///
    /// # Panics
    /// If a concentration is not positive and finite.
    pub fn init(&self) -> BaumWelch {
        for (name, c) in [
            ("initial_prior", self.initial_prior),
            ("transitions_prior", self.transitions_prior),
            ("emissions_prior", self.emissions_prior),
        ] {
            assert!(
                c.is_finite() && c > 0.0,
                "BaumWelch: {name} must be a positive finite Dirichlet concentration, got {c}"
            );
        }
        BaumWelch {
            pseudo_counts: [
                self.initial_prior - 1.0,
                self.transitions_prior - 1.0,
                self.emissions_prior - 1.0,
            ],
        }
    }
}

/// Baum–Welch (EM) for an [`Hmm`]: see the [module documentation](self).
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use diffbio_burn::hmm::{BaumWelchConfig, HmmConfig};
///
/// let device = Default::default();
/// let truth = HmmConfig::new(2, 3).with_seed(1).init::<NdArray<f64>>(&device);
/// let data = truth.sample(20, 50, 7).observations;
/// let start = HmmConfig::new(2, 3).with_seed(2).init::<NdArray<f64>>(&device);
/// let fit = BaumWelchConfig::new().init().fit(start, data, None, None, 10);
/// assert!(fit.history.windows(2).all(|w| w[1] >= w[0] - 1e-9)); // never decreases
/// assert!(fit.log_likelihood >= fit.history[9] - 1e-9);
/// ```
#[derive(Clone, Debug)]
pub struct BaumWelch {
    /// `concentration - 1` for `π`, `A`, `B`.
    pseudo_counts: [f64; 3],
}

/// The result of one [`BaumWelch::step`].
#[derive(Debug)]
pub struct EmStep<B: Backend> {
    /// The re-estimated model (new leaf parameters; flags as the input model's).
    pub model: Hmm<B>,
    /// `Σ_b w_b log p(x_b)` under the model *before* the step (what the step maximised
    /// from).
    pub log_likelihood: f64,
}

/// The result of [`BaumWelch::fit`].
#[derive(Debug)]
pub struct EmFit<B: Backend> {
    /// The model after the last step.
    pub model: Hmm<B>,
    /// `history[i]`: the weighted log-likelihood before step `i` (hmmlearn's
    /// `monitor_.history`).
    pub history: Vec<f64>,
    /// The weighted log-likelihood of the final model.
    pub log_likelihood: f64,
}

impl BaumWelch {
    /// One EM step from `hmm` on a batch of sequences.
    ///
    /// # Shapes
    /// - `observations`: `[N, T]` symbols in `0..E`
    /// - `lengths`: `[N]`, each in `1..=T` (optional; padding contributes nothing)
    /// - `weights`: `[N]`, finite and `>= 0` (optional; default 1 each). An integer weight
    ///   counts a sequence that many times.
    ///
    /// # Panics
    /// As [`Hmm::log_likelihood`]; if `weights` is not `[N]`, or (with the model's
    /// `validate`) has a negative or non-finite entry.
    pub fn step<B: Backend>(
        &self,
        hmm: &Hmm<B>,
        observations: Tensor<B, 2, Int>,
        lengths: Option<Tensor<B, 1, Int>>,
        weights: Option<Tensor<B, 1>>,
    ) -> EmStep<B> {
        let batch = hmm.checked_batch(observations, lengths);
        let n = batch.batch;
        // Never taped: the counts come from forward-backward.
        let model = hmm.clone().with_taped_gradient(false);
        let lpc = model.log_probs().detach();
        let (value, counts) = model.value_and_counts(&lpc, batch, true);
        let counts = counts.expect("counts were asked for");
        let (total, log_likelihood) = match weights {
            None => (counts.sum_dim(0), value.sum()),
            Some(w) => {
                validate::expect_shape(NAME, "weights", &w.dims(), &[n], "one per sequence");
                if hmm.validate {
                    validate::non_negative(NAME, "weights", &w);
                }
                let w = w.reshape([1, n]);
                (w.clone().matmul(counts), (w.reshape([n]) * value).sum())
            }
        };
        let counts: Vec<f64> = total.to_data().iter::<f64>().collect();
        let log_likelihood = log_likelihood
            .into_data()
            .iter::<f64>()
            .next()
            .unwrap_or(0.0);
        let (pi, a, b) = lpc.to_log_vecs();
        let (s, e) = (hmm.n_states(), hmm.n_emissions());
        let [c_pi, c_a, c_b] = self.pseudo_counts;
        let new_pi = m_step(&counts[..s], &pi, s, c_pi);
        let new_a = m_step(&counts[s..s + s * s], &a, s, c_a);
        let new_b = m_step(&counts[s + s * s..], &b, e, c_b);
        let device = hmm.device();
        let like = (&device, lpc.log_initial.dtype());
        let model = Hmm::from_log_probs(
            Tensor::from_data(TensorData::new(new_pi, [s]), like),
            Tensor::from_data(TensorData::new(new_a, [s, s]), like),
            Tensor::from_data(TensorData::new(new_b, [s, e]), like),
        )
        .with_validate(hmm.validate)
        .with_algorithm(hmm.algorithm)
        .with_taped_gradient(hmm.taped_gradient);
        EmStep {
            model,
            log_likelihood,
        }
    }

    /// `iterations` EM steps from `hmm`, and the log-likelihood of the result.
    ///
    /// # Shapes and panics
    /// As [`step`](Self::step).
    pub fn fit<B: Backend>(
        &self,
        hmm: Hmm<B>,
        observations: Tensor<B, 2, Int>,
        lengths: Option<Tensor<B, 1, Int>>,
        weights: Option<Tensor<B, 1>>,
        iterations: usize,
    ) -> EmFit<B> {
        let mut model = hmm;
        let mut history = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let step = self.step(
                &model,
                observations.clone(),
                lengths.clone(),
                weights.clone(),
            );
            history.push(step.log_likelihood);
            model = step.model;
        }
        let ll = model
            .clone()
            .with_taped_gradient(false)
            .log_likelihood(observations, lengths)
            .detach();
        let ll = match weights {
            None => ll.sum(),
            Some(w) => (w * ll).sum(),
        };
        EmFit {
            log_likelihood: ll.into_data().iter::<f64>().next().unwrap_or(0.0),
            model,
            history,
        }
    }
}

/// The M-step of one parameter: rows of `cols` expected counts plus `pseudo` (not where the
/// current `log_probs` entry is `-inf`), clipped at 0 and normalised, as log-probabilities.
/// A row with no mass keeps its current log-probabilities.
fn m_step(counts: &[f64], log_probs: &[f64], cols: usize, pseudo: f64) -> Vec<f64> {
    counts
        .chunks(cols)
        .zip(log_probs.chunks(cols))
        .flat_map(|(row, old)| {
            let mass: Vec<f64> = row
                .iter()
                .zip(old)
                .map(|(&c, &lp)| {
                    if lp == f64::NEG_INFINITY {
                        0.0
                    } else {
                        (c + pseudo).max(0.0)
                    }
                })
                .collect();
            let total: f64 = mass.iter().sum();
            if total > 0.0 && total.is_finite() {
                let log_total = total.ln();
                mass.iter().map(|m| m.ln() - log_total).collect()
            } else {
                old.to_vec()
            }
        })
        .collect()
}

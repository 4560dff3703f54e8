//! Configuration of the [`Hmm`](super::Hmm) module.

use burn::config::Config;
use burn::module::Param;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use super::Hmm;

/// How [`Hmm`] runs the forward(-backward) algorithm. All give the same values and gradients
/// up to float rounding; they differ in speed and in where they run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HmmAlgorithm {
    /// `Host` on `NdArray` (unless `taped_gradient`); elsewhere `ParallelScan` for
    /// sequences of at least 64 steps (`T` dependent kernel launches dominate on a GPU) and
    /// `Sequential` for shorter ones.
    #[default]
    Auto,
    /// Forward-backward in plain Rust on the host, the whole batch in one pass, `f64`
    /// accumulation (see the `host` module docs). The fastest on CPU; on other backends it
    /// reads the parameters and observations back from the device. Gradients are expected
    /// counts; cannot be combined with `taped_gradient`.
    Host,
    /// Tensor ops, one batched log-space step per time step (`T` sequential steps). Runs on
    /// every backend without any device read-back.
    Sequential,
    /// Tensor ops, an associative scan over time of the log-semiring matrix product:
    /// `O(log T)` dependent steps, `O(B·T·S³·log T)` work and `O(B·T·S²)` memory (see the
    /// `scan` module docs). For accelerators and long sequences; no device read-back.
    /// Viterbi decoding with this setting runs the sequential recursion.
    ParallelScan,
}

/// Configuration of a discrete [`Hmm`] with `n_states` hidden states and `n_emissions`
/// observable symbols.
///
/// `init` draws the three raw logit parameters as DiffBio does, `init_scale · N(0, 1)`
/// (near-uniform probabilities), from a seeded RNG, so that the same config gives the same
/// module on every backend.
#[derive(Config, Debug)]
pub struct HmmConfig {
    /// Number of hidden states `S` (at least 1).
    pub n_states: usize,
    /// Number of observable symbols `E` (at least 1); observations are `0..E`.
    pub n_emissions: usize,
    /// Standard deviation of the normal initial raw logits. Default `0.1` (DiffBio).
    #[config(default = 0.1)]
    pub init_scale: f64,
    /// Seed of the initialisation RNG. Default `0`.
    #[config(default = 0)]
    pub seed: u64,
    /// Check observations (in `0..n_emissions` at every unpadded position) and lengths
    /// (in `1..=T`) and panic on the first violation. Costs one device read-back per call;
    /// switch it off in hot loops on GPU backends once the data are trusted. With it off,
    /// out-of-range symbols are read as DiffBio reads them (JAX indexing): a negative symbol
    /// `k` counts from the end (`-1` is the last symbol, `E - 1`), and what is still out of
    /// range is clamped into `0..E`. Default `true`.
    #[config(default = true)]
    pub validate: bool,
    /// Which implementation of the forward algorithm to use. Default
    /// [`HmmAlgorithm::Auto`].
    #[config(default = "HmmAlgorithm::Auto")]
    pub algorithm: HmmAlgorithm,
    /// Differentiate the tensor recursion by autodiff (taping every time step, `O(B·T·S²)`
    /// tape memory) instead of attaching the expected-count gradient (`O(B·(S² + S·E))`
    /// tape). Slower; a cross-check of the expected counts. Default `false`.
    #[config(default = false)]
    pub taped_gradient: bool,
}

impl HmmConfig {
    /// Initialises an [`Hmm`] on `device` with raw logits `init_scale · N(0, 1)`.
    ///
    /// # Panics
    /// If `n_states` or `n_emissions` is 0, or `init_scale` is negative or not finite.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Hmm<B> {
        let (s, e) = (self.n_states, self.n_emissions);
        assert!(
            s >= 1 && e >= 1,
            "Hmm: n_states ({s}) and n_emissions ({e}) must be at least 1"
        );
        assert!(
            self.init_scale.is_finite() && self.init_scale >= 0.0,
            "Hmm: init_scale must be finite and non-negative, got {}",
            self.init_scale
        );
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut normal = |n: usize| -> Vec<f64> {
            (0..n)
                .map(|_| {
                    let z: f64 = StandardNormal.sample(&mut rng);
                    z * self.init_scale
                })
                .collect()
        };
        let initial = normal(s);
        let transitions = normal(s * s);
        let emissions = normal(s * e);
        let param = |data: Vec<f64>, shape: Vec<usize>| TensorData::new(data, shape);
        Hmm {
            initial: Param::from_tensor(Tensor::from_data(param(initial, vec![s]), device)),
            transitions: Param::from_tensor(Tensor::from_data(
                param(transitions, vec![s, s]),
                device,
            )),
            emissions: Param::from_tensor(Tensor::from_data(param(emissions, vec![s, e]), device)),
            validate: self.validate,
            algorithm: self.algorithm,
            taped_gradient: self.taped_gradient,
        }
    }
}

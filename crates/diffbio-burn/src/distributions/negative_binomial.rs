//! The negative-binomial distribution in scVI's `(mu, theta)` parameterisation.

use burn::tensor::{Tensor, backend::Backend};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Gamma, Poisson};

use super::{host_values, tensor_like};
use crate::losses::negative_binomial::{d_mu, d_theta, log_prob};
use crate::special::{constant, is_autodiff, with_grad};
use crate::validate;

const NAME: &str = "NegativeBinomial";

/// Negative binomial with mean `mu` and inverse dispersion `theta` (scVI's `theta`, the NB
/// "size"), element-wise over tensors of one shape:
///
/// ```text
/// mean = mu,   variance = mu + mu²/theta
/// ```
///
/// PyTorch's `NegativeBinomial(total_count, logits)` is the same distribution with
/// `total_count = theta` and `logits = ln(mu/theta)` (its `probs = mu/(mu + theta)`); see
/// [`from_total_count_logits`](Self::from_total_count_logits) and
/// [`logits`](Self::logits).
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use diffbio_burn::distributions::NegativeBinomial;
///
/// let device = Default::default();
/// let mu = Tensor::<NdArray, 2>::from_floats([[2.0, 30.0]], &device);
/// let theta = Tensor::<NdArray, 2>::from_floats([[5.0, 0.5]], &device);
/// let nb = NegativeBinomial::new(mu, theta);
/// let var: Vec<f32> = nb.variance().into_data().to_vec().unwrap();
/// assert_eq!(var, vec![2.8, 1830.0]);
/// let counts = nb.sample(7); // a [1, 2] tensor of counts, the same for every run
/// assert_eq!(counts.dims(), [1, 2]);
/// ```
#[derive(Clone, Debug)]
pub struct NegativeBinomial<B: Backend, const D: usize> {
    /// The mean, `>= 0`.
    pub mu: Tensor<B, D>,
    /// The inverse dispersion, `> 0`.
    pub theta: Tensor<B, D>,
}

impl<B: Backend, const D: usize> NegativeBinomial<B, D> {
    /// The distribution with mean `mu` and inverse dispersion `theta`.
    ///
    /// # Panics
    /// If the shapes or dtypes differ. (Values are checked where they are used: by
    /// [`sample`](Self::sample); `log_prob` assumes `mu > 0`, `theta > 0`.)
    pub fn new(mu: Tensor<B, D>, theta: Tensor<B, D>) -> Self {
        validate::same_shape(NAME, ("mu", &mu.dims()), ("theta", &theta.dims()));
        validate::same_dtype(NAME, ("mu", &mu), ("theta", &theta));
        Self { mu, theta }
    }

    /// From PyTorch's parameterisation: `theta = total_count`, `mu = total_count·exp(logits)`.
    ///
    /// # Panics
    /// If the shapes or dtypes differ.
    pub fn from_total_count_logits(total_count: Tensor<B, D>, logits: Tensor<B, D>) -> Self {
        validate::same_shape(
            NAME,
            ("total_count", &total_count.dims()),
            ("logits", &logits.dims()),
        );
        let mu = total_count.clone() * logits.exp();
        Self::new(mu, total_count)
    }

    /// PyTorch's `total_count`: `theta`.
    pub fn total_count(&self) -> Tensor<B, D> {
        self.theta.clone()
    }

    /// PyTorch's `logits`: `ln mu - ln theta` (the log-odds of its success probability
    /// `mu/(mu + theta)`).
    pub fn logits(&self) -> Tensor<B, D> {
        self.mu.clone().log() - self.theta.clone().log()
    }

    /// The mean, `mu`.
    pub fn mean(&self) -> Tensor<B, D> {
        self.mu.clone()
    }

    /// The variance, `mu + mu²/theta`.
    pub fn variance(&self) -> Tensor<B, D> {
        self.mu.clone() + self.mu.clone().square() / self.theta.clone()
    }

    /// `log p(counts)`, element-wise, in the cancellation-free form of
    /// [`negative_binomial`](crate::losses::negative_binomial) (no `eps`: `mu` must be
    /// positive). Gradients flow to `mu` and `theta` (closed forms).
    ///
    /// # Panics
    /// If `counts` has another shape or dtype.
    pub fn log_prob(&self, counts: Tensor<B, D>) -> Tensor<B, D> {
        validate::same_shape(NAME, ("counts", &counts.dims()), ("mu", &self.mu.dims()));
        validate::same_dtype(NAME, ("counts", &counts), ("mu", &self.mu));
        let x = constant(&counts);
        let (mu, theta) = (constant(&self.mu), constant(&self.theta));
        let value = log_prob(x.clone(), mu.clone(), theta.clone());
        if !is_autodiff(&self.mu) {
            return value;
        }
        let value = with_grad(
            value,
            self.mu.clone(),
            d_mu(x.clone(), mu.clone(), theta.clone()),
        );
        with_grad(value, self.theta.clone(), d_theta(x, mu, theta))
    }

    /// Draws one count per element, reproducibly for a given `seed`, as the Gamma–Poisson
    /// mixture: `λ ~ Gamma(shape = theta, scale = mu/theta)`, `x ~ Poisson(λ)`. The result
    /// has the shape, dtype and device of `mu` and no gradient.
    ///
    /// # Panics
    /// If a `mu` is negative or not finite, or a `theta` is not positive and finite.
    pub fn sample(&self, seed: u64) -> Tensor<B, D> {
        let mu = host_values(&self.mu);
        let theta = host_values(&self.theta);
        let mut rng = StdRng::seed_from_u64(seed);
        let counts = mu
            .iter()
            .zip(&theta)
            .map(|(&m, &t)| sample_one(m, t, &mut rng))
            .collect();
        tensor_like(counts, &self.mu)
    }
}

/// One Gamma–Poisson draw (see [`NegativeBinomial::sample`]).
pub(crate) fn sample_one(mu: f64, theta: f64, rng: &mut StdRng) -> f64 {
    assert!(
        mu.is_finite() && mu >= 0.0,
        "{NAME}: `mu` must be finite and non-negative to sample; found {mu}"
    );
    assert!(
        theta.is_finite() && theta > 0.0,
        "{NAME}: `theta` must be finite and positive to sample; found {theta}"
    );
    if mu == 0.0 {
        return 0.0;
    }
    let rate = Gamma::new(theta, mu / theta)
        .expect("a valid Gamma (checked above)")
        .sample(rng);
    poisson(rate, rng)
}

/// A Poisson draw with mean `rate >= 0` (0 for a rate that underflowed to 0).
pub(crate) fn poisson(rate: f64, rng: &mut StdRng) -> f64 {
    if rate > 0.0 {
        Poisson::new(rate)
            .unwrap_or_else(|e| panic!("{NAME}: cannot sample a Poisson of mean {rate}: {e}"))
            .sample(rng)
    } else {
        0.0
    }
}

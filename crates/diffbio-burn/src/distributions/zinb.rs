//! The zero-inflated negative-binomial distribution (scVI's ZINB).

use burn::tensor::activation::sigmoid;
use burn::tensor::{Tensor, backend::Backend};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::negative_binomial::{NegativeBinomial, sample_one};
use super::{host_values, tensor_like};
use crate::losses::negative_binomial::{d_mu, d_theta, log_prob};
use crate::losses::zinb::inflate;
use crate::special::{constant, is_autodiff, with_grad};
use crate::validate;

const NAME: &str = "ZeroInflatedNegativeBinomial";

/// A negative binomial whose counts are replaced by 0 with probability
/// `pi = sigmoid(pi_logits)` (scVI's dropout), element-wise over tensors of one shape:
///
/// ```text
/// mean = (1 - pi)·mu,   variance = (1 - pi)·mu·(1 + mu/theta + pi·mu)
/// ```
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use diffbio_burn::distributions::ZeroInflatedNegativeBinomial;
///
/// let device = Default::default();
/// let mu = Tensor::<NdArray, 1>::from_floats([4.0], &device);
/// let theta = Tensor::<NdArray, 1>::from_floats([2.0], &device);
/// let pi_logits = Tensor::<NdArray, 1>::from_floats([0.0], &device); // pi = 1/2
/// let zinb = ZeroInflatedNegativeBinomial::new(mu, theta, pi_logits);
/// assert_eq!(zinb.mean().into_scalar(), 2.0);
/// assert_eq!(zinb.variance().into_scalar(), 10.0); // ½·4·(1 + 2 + 2)
/// ```
#[derive(Clone, Debug)]
pub struct ZeroInflatedNegativeBinomial<B: Backend, const D: usize> {
    /// The mean of the negative-binomial component, `>= 0`.
    pub mu: Tensor<B, D>,
    /// Its inverse dispersion, `> 0`.
    pub theta: Tensor<B, D>,
    /// The logit of the zero-inflation probability `pi`.
    pub pi_logits: Tensor<B, D>,
}

impl<B: Backend, const D: usize> ZeroInflatedNegativeBinomial<B, D> {
    /// The distribution with NB component `(mu, theta)` and zero-inflation logits.
    ///
    /// # Panics
    /// If the shapes or dtypes differ.
    pub fn new(mu: Tensor<B, D>, theta: Tensor<B, D>, pi_logits: Tensor<B, D>) -> Self {
        validate::same_shape(NAME, ("mu", &mu.dims()), ("theta", &theta.dims()));
        validate::same_shape(NAME, ("mu", &mu.dims()), ("pi_logits", &pi_logits.dims()));
        validate::same_dtype(NAME, ("mu", &mu), ("theta", &theta));
        validate::same_dtype(NAME, ("mu", &mu), ("pi_logits", &pi_logits));
        Self {
            mu,
            theta,
            pi_logits,
        }
    }

    /// From PyTorch's NB parameterisation (`theta = total_count`,
    /// `mu = total_count·exp(logits)`) and the zero-inflation logits.
    ///
    /// # Panics
    /// If the shapes or dtypes differ.
    pub fn from_total_count_logits(
        total_count: Tensor<B, D>,
        logits: Tensor<B, D>,
        pi_logits: Tensor<B, D>,
    ) -> Self {
        let nb = NegativeBinomial::from_total_count_logits(total_count, logits);
        Self::new(nb.mu, nb.theta, pi_logits)
    }

    /// The negative-binomial component.
    pub fn negative_binomial(&self) -> NegativeBinomial<B, D> {
        NegativeBinomial::new(self.mu.clone(), self.theta.clone())
    }

    /// The zero-inflation probability `pi = sigmoid(pi_logits)`.
    pub fn pi(&self) -> Tensor<B, D> {
        sigmoid(self.pi_logits.clone())
    }

    /// `1 - pi = sigmoid(-pi_logits)` (not `1 - sigmoid(pi_logits)`, which cancels for large
    /// logits).
    fn keep(&self) -> Tensor<B, D> {
        sigmoid(self.pi_logits.clone().neg())
    }

    /// The mean, `(1 - pi)·mu`.
    pub fn mean(&self) -> Tensor<B, D> {
        self.keep() * self.mu.clone()
    }

    /// The variance, `(1 - pi)·mu·(1 + mu/theta + pi·mu)`.
    pub fn variance(&self) -> Tensor<B, D> {
        let mu = self.mu.clone();
        self.keep() * mu.clone() * (mu.clone() / self.theta.clone() + self.pi() * mu + 1.0)
    }

    /// `log p(counts)`, element-wise, as the [`ZinbLoss`](crate::losses::zinb::ZinbLoss)
    /// evaluates it (without its `eps`: `mu` must be positive). Gradients flow to `mu`,
    /// `theta` and `pi_logits`.
    ///
    /// # Panics
    /// If `counts` has another shape or dtype.
    pub fn log_prob(&self, counts: Tensor<B, D>) -> Tensor<B, D> {
        validate::same_shape(NAME, ("counts", &counts.dims()), ("mu", &self.mu.dims()));
        validate::same_dtype(NAME, ("counts", &counts), ("mu", &self.mu));
        let x = constant(&counts);
        let (mu, theta) = (constant(&self.mu), constant(&self.theta));
        let log_nb = log_prob(x.clone(), mu.clone(), theta.clone());
        let inflated = inflate(
            x.clone().lower_equal_elem(0.0),
            log_nb,
            constant(&self.pi_logits),
        );
        if !is_autodiff(&self.mu) {
            return inflated.log_p;
        }
        let weight = inflated.weight;
        let d_mu = d_mu(x.clone(), mu.clone(), theta.clone()) * weight.clone();
        let d_theta = d_theta(x, mu, theta) * weight;
        let value = with_grad(inflated.log_p, self.mu.clone(), d_mu);
        let value = with_grad(value, self.theta.clone(), d_theta);
        with_grad(value, self.pi_logits.clone(), inflated.d_logit)
    }

    /// Draws one count per element, reproducibly for a given `seed`: 0 with probability `pi`
    /// (a Bernoulli mask), otherwise a draw of the negative-binomial component (see
    /// [`NegativeBinomial::sample`]). The result has the shape, dtype and device of `mu`.
    ///
    /// # Panics
    /// If a `mu` is negative or not finite, a `theta` is not positive and finite, or a
    /// `pi_logits` entry is NaN.
    pub fn sample(&self, seed: u64) -> Tensor<B, D> {
        let mu = host_values(&self.mu);
        let theta = host_values(&self.theta);
        let logits = host_values(&self.pi_logits);
        let mut rng = StdRng::seed_from_u64(seed);
        let counts = mu
            .iter()
            .zip(&theta)
            .zip(&logits)
            .map(|((&m, &t), &l)| {
                assert!(!l.is_nan(), "{NAME}: `pi_logits` must not be NaN to sample");
                let pi = crate::real::sigmoid(l);
                // Draw both, always, so the NB stream does not depend on the mask.
                let dropout = rng.random::<f64>() < pi;
                let count = sample_one(m, t, &mut rng);
                if dropout { 0.0 } else { count }
            })
            .collect();
        tensor_like(counts, &self.mu)
    }
}

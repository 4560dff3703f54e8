//! Count distributions of scVI-family models: negative binomial and zero-inflated negative
//! binomial, with moments, conversions between parameterisations, differentiable
//! log-probabilities and seeded sampling (for posterior predictive checks).
//!
//! The losses in [`crate::losses`] are the training objectives; these are the models'
//! output distributions. Their `log_prob` is the same cancellation-free evaluation as the
//! losses' (without the losses' `eps` floor), with the same closed-form gradients.
//!
//! Sampling reads the parameters back to the host and draws there with a seeded `StdRng`
//! (`rand_distr`'s Gamma and Poisson samplers), so a seed gives the same counts on every
//! backend up to the precision of the parameters.

pub mod negative_binomial;
pub mod zinb;

pub use negative_binomial::NegativeBinomial;
pub use zinb::ZeroInflatedNegativeBinomial;

use burn::tensor::{Tensor, TensorData, backend::Backend};

/// The values of `x` as `f64`, row-major (one device read-back).
fn host_values<B: Backend, const D: usize>(x: &Tensor<B, D>) -> Vec<f64> {
    x.to_data()
        .convert::<f64>()
        .to_vec()
        .expect("float tensor data")
}

/// A tensor shaped and typed like `like`, on its device, holding `values`.
fn tensor_like<B: Backend, const D: usize>(values: Vec<f64>, like: &Tensor<B, D>) -> Tensor<B, D> {
    let dtype = like.dtype();
    let data = TensorData::new(values, like.dims()).convert_dtype(dtype);
    Tensor::from_data(data, (&like.device(), dtype))
}

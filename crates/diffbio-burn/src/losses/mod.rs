//! The losses, one family per file, each following `burn::nn::loss` conventions.

pub mod bpnet;
pub mod log1p_mse;
pub mod multinomial;
pub mod negative_binomial;
pub mod vae;
pub mod zinb;

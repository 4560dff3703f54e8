//! dtype discipline: a process whose NdArray default float type has become float64 (Burn
//! 0.21: the first NdArray precision a process uses becomes the default of both) and
//! explicitly float32 inputs. Every loss and the HMM compute in the dtype of their inputs.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod hmm_dtype;
mod mixed_precision;

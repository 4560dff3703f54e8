//! Genomics files as [Burn](https://burn.dev) datasets: count matrices for scVI-style models,
//! padded sequence batches for HMMs, and one-hot windows with per-strand count profiles for
//! BPNet.
//!
//! Each reader turns bad input into a [`DataError`] naming the file, the line or record and the
//! problem; none panics on bad input or drops records silently. Parsing is done by well-kept
//! crates: `nalgebra-sparse` (MatrixMarket), `csv` (TSV), `noodles` (FASTA, BED), `bigtools`
//! (bigWig) and, with the `hdf5` feature, `hdf5-metno` (10x `.h5`, AnnData `.h5ad`).
#![warn(missing_docs)]

pub mod background;
pub mod counts;
mod error;
pub mod intervals;
pub mod sequences;
pub mod windows;

pub use error::{DataError, Result};

//! Code shared by the example programs (`mod common;` in each): the backend choice, burn-train
//! metrics and renderer, flags derived from a config, plots and evaluation metrics.
//!
//! Each example uses a subset of these items, hence the module-wide `dead_code` allowance.
#![allow(dead_code)]

pub mod alloc;
pub mod config_cli;
pub mod metrics;
pub mod plot;
pub mod threads;
pub mod train;

use std::fmt::Display;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::ValueEnum;

pub use alloc::keep_freed_memory;
pub use threads::join_rayon_pool;

/// The compute device an example trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// CPU, `burn-ndarray` (always available).
    Ndarray,
    /// GPU, `burn-wgpu` (build with `--features wgpu`).
    Wgpu,
}

/// The devices of a data-parallel run on `n` devices of one kind.
pub trait SeveralDevices: Sized {
    /// `n` devices: CPU devices are one device used `n` times (NdArray); GPUs are the first `n`
    /// discrete GPUs (wgpu).
    fn several(n: usize) -> Vec<Self>;
}

impl SeveralDevices for burn::backend::ndarray::NdArrayDevice {
    fn several(n: usize) -> Vec<Self> {
        vec![Self::default(); n.max(1)]
    }
}

#[cfg(feature = "wgpu")]
impl SeveralDevices for burn::backend::wgpu::WgpuDevice {
    fn several(n: usize) -> Vec<Self> {
        match n {
            0 | 1 => vec![Self::default()],
            n => (0..n).map(Self::DiscreteGpu).collect(),
        }
    }
}

/// Runs `$run::<B>(&$args, device)` on the backend `$device` names: `Autodiff<NdArray>` or,
/// with the root package's `wgpu` feature, `Autodiff<Wgpu>`; without that feature asking for
/// wgpu is an error that says how to enable it.
#[macro_export]
macro_rules! dispatch_backend {
    ($device:expr, $run:ident, $args:expr) => {{
        match $device {
            $crate::common::DeviceArg::Ndarray => {
                $run::<burn::backend::Autodiff<burn::backend::NdArray>>($args, Default::default())
            }
            $crate::common::DeviceArg::Wgpu => {
                #[cfg(feature = "wgpu")]
                {
                    $run::<burn::backend::Autodiff<burn::backend::Wgpu>>($args, Default::default())
                }
                #[cfg(not(feature = "wgpu"))]
                {
                    Err(anyhow::anyhow!(
                        "--device wgpu needs the `wgpu` cargo feature: \
                         cargo run --release --features wgpu --example <name> -- --device wgpu"
                    ))
                }
            }
        }
    }};
}

/// The default output directory of an example: `target/examples-out/<name>` in the
/// repository, whatever the working directory.
pub fn default_out_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join("examples-out")
        .join(name)
}

/// A path under the repository's `data/` directory.
pub fn bundled_data(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(relative)
}

/// Creates `dir` (and its parents).
pub fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))
}

/// Final metrics, printed as `name: value` lines and written to `metrics.txt`.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    entries: Vec<(String, String)>,
}

impl Metrics {
    /// Records a float metric (printed with 6 significant decimals).
    pub fn float(&mut self, name: &str, value: f64) {
        self.entries.push((name.to_string(), format!("{value:.6}")));
    }

    /// Records any other value (counts, names, yes/no).
    pub fn text(&mut self, name: &str, value: impl Display) {
        self.entries.push((name.to_string(), value.to_string()));
    }

    /// The value recorded under `name`, parsed as a float.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.parse().ok())
    }

    /// Prints the metrics to stdout and writes them to `dir/metrics.txt`.
    pub fn report(&self, dir: &Path) -> Result<()> {
        let text: String = self
            .entries
            .iter()
            .map(|(n, v)| format!("{n}: {v}\n"))
            .collect();
        print!("{text}");
        let path = dir.join("metrics.txt");
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

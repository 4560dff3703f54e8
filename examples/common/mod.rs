//! Code shared by the example programs (`mod common;` in each): the backend choice, burn-train
//! metrics and renderer, flags derived from a config, progress bars, plots and evaluation
//! metrics.
//!
//! Each example uses a subset of these items, hence the module-wide `dead_code` allowance.
#![allow(dead_code)]

pub mod config_cli;
pub mod metrics;
pub mod plot;
pub mod train;

use std::fmt::Display;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::config::Config;
use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::Backend;
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};

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

/// A progress bar over training epochs (hidden when stderr is not a terminal).
pub fn epoch_bar(epochs: usize) -> ProgressBar {
    let bar = ProgressBar::new(epochs as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} epochs ({eta}) {msg}",
        )
        .expect("valid progress template")
        .progress_chars("=> "),
    );
    bar.set_prefix("training");
    bar
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

/// Saves `model` as `<out>/model.mpk` (Burn's full-precision named MessagePack recorder) and
/// `config` as `<out>/config.json`, then reads the config back, builds a fresh module from it
/// with `init` and loads the saved weights into it: the round trip a user of the saved files
/// makes. Returns the reloaded config and module; errors name the file.
pub fn save_and_reload<B, M, C>(
    model: &M,
    config: &C,
    out: &Path,
    device: &B::Device,
    init: impl FnOnce(&C) -> M,
) -> Result<(C, M)>
where
    B: Backend,
    M: Module<B>,
    C: Config,
{
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let model_path = out.join("model");
    model
        .clone()
        .save_file(&model_path, &recorder)
        .with_context(|| format!("cannot save {}.mpk", model_path.display()))?;
    let config_path = out.join("config.json");
    config
        .save(&config_path)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let loaded_config =
        C::load(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
    let loaded = init(&loaded_config)
        .load_file(&model_path, &recorder, device)
        .with_context(|| format!("cannot load {}.mpk", model_path.display()))?;
    Ok((loaded_config, loaded))
}

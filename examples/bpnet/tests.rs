//! Smoke tests at tiny settings (synthetic windows: outputs, the saved model's round trip,
//! resume, the derived flags), the yeast data preparation on the bundled files, and the
//! model's pieces.

use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use burn::config::Config;
use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};

use super::*;
use crate::data::{DataConfig, Source, YeastFiles};
use crate::model::{Bpnet, BpnetConfig};

type Ad = Autodiff<NdArray>;

/// The bundled yeast files (see `data/README.md`).
fn bundled() -> YeastFiles {
    let root = bundled_data("yeast_atac");
    YeastFiles {
        fragments: root.join("yeast_500k_SRR1822137.bedpe.gz"),
        peaks: root.join("hmmratac_yeast500k_bedpe_accessible_regions.narrowPeak"),
        genome: root.join("sacCer_R64.fa.gz"),
    }
}

fn args(argv: &[&str], out: &Path) -> (RunArgs, BpnetTrainingConfig) {
    let mut argv: Vec<String> = std::iter::once("bpnet")
        .chain(argv.iter().copied())
        .map(String::from)
        .collect();
    argv.extend(["--out".to_string(), out.display().to_string()]);
    parse(argv).unwrap()
}

/// Loads `config.json` + `model.mpk` from `out` onto NdArray as a user of the saved files
/// would, rebuilds the run's windows and scores the test set.
fn reload_and_score(out: &Path) -> Metrics {
    let config = BpnetTrainingConfig::load(out.join("config.json")).unwrap();
    let net: Bpnet<NdArray> = config
        .model
        .init(&Default::default())
        .load_file(
            out.join("model"),
            &NamedMpkFileRecorder::<FullPrecisionSettings>::new(),
            &Default::default(),
        )
        .unwrap();
    let splits = data::load(&bundled(), &config.data, config.input_len(), config.seed).unwrap();
    let mut metrics = Metrics::default();
    let predictions = eval::predict(&net, &splits.test, config.batch_size);
    eval::score(&mut metrics, &splits, &predictions).unwrap();
    metrics
}

const TINY: [&str; 14] = [
    "--data",
    "synthetic",
    "--synthetic-regions",
    "160",
    "--output-len",
    "48",
    "--n-filters",
    "8",
    "--n-layers",
    "2",
    "--epochs",
    "2",
    "--batch-size",
    "32",
];

#[test]
fn smoke_synthetic_bpnet_and_saved_model_round_trip() {
    let out = tempfile::tempdir().unwrap();
    let exported = out.path().join("windows");
    let mut argv = TINY.to_vec();
    let exported_arg = exported.display().to_string();
    argv.extend(["--export-windows", &exported_arg]);
    let parsed = args(&argv, out.path());
    let metrics = run::<Ad>(&parsed, Default::default()).unwrap();
    for prefix in ["model", "uniform", "average"] {
        for name in [
            "profile_mnll",
            "profile_jsd",
            "profile_pearson_smoothed",
            "count_mse_all",
        ] {
            let v = metrics.get(&format!("{prefix}_{name}")).unwrap();
            assert!(v.is_finite(), "{prefix}_{name} = {v}");
        }
    }
    for file in [
        "loss.png",
        "profile_example.png",
        "model.mpk",
        "config.json",
        "metrics.txt",
        "checkpoint/model-2.mpk",
        "train/epoch-2",
        "valid/epoch-2",
        "windows/manifest.json",
        "windows/train.sequence.f32",
        "windows/ours.test.logits.f32",
    ] {
        assert!(out.path().join(file).exists(), "missing {file}");
    }
    // The exported arrays have the manifest's shapes.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exported.join("manifest.json")).unwrap())
            .unwrap();
    let n = manifest["splits"]["train"]["n"].as_u64().unwrap();
    let input_len = manifest["input_len"].as_u64().unwrap();
    let bytes = std::fs::metadata(exported.join("train.sequence.f32"))
        .unwrap()
        .len();
    assert_eq!(bytes, n * 4 * input_len * 4);
    assert_eq!(
        input_len - 2 * manifest["trimming"].as_u64().unwrap(),
        manifest["output_len"].as_u64().unwrap()
    );

    // The saved config and weights give the same test predictions.
    let again = reload_and_score(out.path());
    for name in ["model_profile_mnll", "model_count_pearson_all"] {
        assert_eq!(again.get(name), metrics.get(name), "{name}");
    }
}

#[test]
fn resume_continues_from_a_checkpoint() {
    let out = tempfile::tempdir().unwrap();
    let mut argv = TINY.to_vec();
    argv.extend(["--checkpoint-every", "1"]);
    run::<Ad>(&args(&argv, out.path()), Default::default()).unwrap();
    let mut resumed = TINY.to_vec();
    resumed.extend(["--checkpoint-every", "1", "--epochs", "3", "--resume", "2"]);
    let metrics = run::<Ad>(&args(&resumed, out.path()), Default::default()).unwrap();
    assert!(metrics.get("model_profile_mnll").unwrap().is_finite());
    assert!(out.path().join("train/epoch-3").exists());
}

#[test]
fn flags_derive_from_the_training_config() {
    let out = tempfile::tempdir().unwrap();
    let (_, config) = args(&[], out.path());
    let defaults = BpnetTrainingConfig::defaults();
    assert_eq!(config.data.data, Source::Yeast);
    assert_eq!(config.epochs, defaults.epochs);
    assert_eq!(config.count_loss_weight, None);
    let (_, config) = args(
        &[
            "--data",
            "synthetic",
            "--count-loss-weight",
            "2.5",
            "--n-layers",
            "3",
        ],
        out.path(),
    );
    assert_eq!(config.data.data, Source::Synthetic);
    assert_eq!(config.count_loss_weight, Some(2.5));
    assert_eq!(config.model.n_layers, 3);
    assert!(parse(["bpnet", "--epochs", "many"].map(String::from)).is_err());
}

#[test]
fn trimming_is_bpnet_lites() {
    // bpnet-lite: trimming = 47 + sum(2**i for i in range(1, n_layers + 1)).
    for (layers, trimming) in [(2, 53), (6, 173), (8, 557)] {
        let config = BpnetConfig::new().with_n_layers(layers);
        assert_eq!(config.trimming(), trimming);
    }
    // bpnet-lite's defaults: 2114 bp in, 1000 bp out.
    assert_eq!(BpnetConfig::new().with_n_layers(8).input_len(1000), 2114);
    let net = BpnetConfig::new()
        .with_n_filters(4)
        .with_n_layers(2)
        .init::<NdArray>(&Default::default());
    let x = Tensor::<NdArray, 3>::zeros([3, 4, 48 + 2 * 53], &Default::default());
    let (logits, log_counts) = net.forward(x);
    assert_eq!(logits.dims(), [3, 2, 48]);
    assert_eq!(log_counts.dims(), [3, 1]);
}

#[test]
fn profile_head_on_the_trimmed_window_equals_bpnet_lites_full_convolution() {
    // bpnet-lite convolves the whole window and crops; we convolve the output window plus
    // the head's reach. Same logits.
    type B = NdArray;
    let device = Default::default();
    let net = BpnetConfig::new()
        .with_n_filters(6)
        .with_n_layers(2)
        .init::<B>(&device);
    let x = Tensor::<B, 3>::random(
        [2, 4, 40 + 2 * 53],
        burn::tensor::Distribution::Default,
        &device,
    );
    let (logits, _) = net.forward(x.clone());
    let mut h = burn::tensor::activation::relu(net.stem.forward(x));
    for layer in &net.tower {
        h = h.clone() + burn::tensor::activation::relu(layer.forward(h));
    }
    let full = net.profile_head.forward(h).slice([0..2, 0..2, 53..53 + 40]);
    let (a, b) = (
        full.into_data().to_vec::<f32>().unwrap(),
        logits.into_data().to_vec::<f32>().unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-4 * (1.0 + x.abs()), "{x} vs {y}");
    }
}

#[test]
fn yeast_windows_follow_the_chromosome_split_and_exclusions() {
    let config = DataConfig::new();
    let model = BpnetConfig::new();
    let input_len = model.input_len(config.output_len);
    let splits = data::yeast(&bundled(), &config, input_len, 0).unwrap();
    let chroms = |set: &[data::LabelledWindow]| {
        set.iter()
            .map(|w| w.window.chrom.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        chroms(&splits.valid),
        ["chrII", "chrIII"].map(String::from).into()
    );
    assert_eq!(
        chroms(&splits.test),
        ["chrIV", "chrV"].map(String::from).into()
    );
    let train = chroms(&splits.train);
    for held in ["chrII", "chrIII", "chrIV", "chrV"] {
        assert!(!train.contains(held), "{held} in training");
    }
    for set in [&splits.train, &splits.valid, &splits.test] {
        let peaks = data::peaks(set).count();
        let background = set.len() - peaks;
        // Half as many background windows as peaks (rounded), when candidates suffice.
        assert_eq!(background, (peaks as f64 * 0.5).round() as usize);
        for w in set {
            assert_eq!(w.window.input_len(), input_len);
            assert_eq!(w.window.output_len(), config.output_len);
            // Nothing touches the rDNA.
            if w.window.chrom == "chrXII" {
                let (s, e) = (w.window.start, w.window.start + input_len);
                assert!(e <= 440_000 || s >= 500_000, "{s}-{e} overlaps the rDNA");
            }
        }
    }
    // Peaks hold far more cuts than their GC-matched background.
    let mean = |set: &[data::LabelledWindow], label: i64| {
        let v: Vec<f64> = set
            .iter()
            .filter(|w| w.label == label)
            .map(|w| w.total())
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(mean(&splits.train, 1) > 3.0 * mean(&splits.train, 0));
    let weight = splits.chrombpnet_count_loss_weight();
    assert!(weight > 1.0 && weight.is_finite(), "{weight}");
}

#[test]
fn global_norm_clipping_scales_all_gradients_together() {
    use crate::common::train::clip_global_norm;
    use burn::optim::GradientsParams;

    let device = Default::default();
    let net = BpnetConfig::new()
        .with_n_filters(4)
        .with_n_layers(2)
        .init::<Ad>(&device);
    let x = Tensor::<Ad, 3>::random(
        [2, 4, 48 + 2 * 53],
        burn::tensor::Distribution::Default,
        &device,
    );
    let (logits, log_counts) = net.forward(x);
    let loss = logits.sum() * 3.0 + log_counts.sum() * 100.0;
    let grads = GradientsParams::from_grads(loss.backward(), &net);

    // The joint L2 norm over every parameter's gradient, read back per tensor.
    fn norm(net: &Bpnet<Ad>, grads: &GradientsParams) -> f64 {
        struct Sum<'a>(&'a GradientsParams, f64);
        impl burn::module::ModuleVisitor<Ad> for Sum<'_> {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<Ad, D>>) {
                if let Some(g) = self.0.get::<NdArray, D>(p.id) {
                    self.1 += g
                        .into_data()
                        .to_vec::<f32>()
                        .unwrap()
                        .iter()
                        .map(|&v| f64::from(v) * f64::from(v))
                        .sum::<f64>();
                }
            }
        }
        let mut sum = Sum(grads, 0.0);
        net.visit(&mut sum);
        sum.1.sqrt()
    }
    let before = norm(&net, &grads);
    assert!(
        before > 1.0,
        "the test needs a norm above the threshold: {before}"
    );
    // Above the threshold: scaled to it (PyTorch's max_norm / (norm + 1e-6)).
    let clipped = clip_global_norm(&net, grads, 1.0);
    let after = norm(&net, &clipped);
    assert!((after - before / (before + 1e-6)).abs() < 1e-5, "{after}");
    // Below the threshold: unchanged, parameter by parameter.
    let again = clip_global_norm(&net, clipped, 10.0);
    assert!((norm(&net, &again) - after).abs() < 1e-6);
}

#[cfg(feature = "wgpu")]
#[test]
fn smoke_wgpu_trains_and_its_saved_model_scores_the_same_on_ndarray() {
    // Train on Autodiff<Wgpu>, then score its saved weights on NdArray: the same test
    // measures (the two forward passes agree to float32 rounding).
    let out = tempfile::tempdir().unwrap();
    let mut argv = TINY.to_vec();
    argv.extend(["--device", "wgpu"]);
    let parsed = args(&argv, out.path());
    let gpu = run::<Autodiff<burn::backend::Wgpu>>(&parsed, Default::default()).unwrap();
    let cpu = reload_and_score(out.path());
    for name in [
        "model_profile_mnll",
        "model_profile_jsd",
        "model_count_mse_all",
    ] {
        let (g, c) = (gpu.get(name).unwrap(), cpu.get(name).unwrap());
        assert!(
            g.is_finite() && (g - c).abs() < 1e-4 * c.abs(),
            "{name}: wgpu {g}, ndarray {c}"
        );
    }
}

/// `common::keep_freed_memory` finds mimalloc's purge delay at its documented default (1000 ms)
/// under option 15 and sets it: a mimalloc update that moves the option fails here instead of
/// silently leaving the training's page faults in (19,197 vs 451 in one epoch, `perf stat`).
#[test]
fn mimalloc_keeps_freed_memory() {
    assert!(
        common::keep_freed_memory(),
        "mimalloc's option 15 is not purge_delay at 1000 ms (or MIMALLOC_PURGE_DELAY is set)"
    );
    assert!(!common::keep_freed_memory(), "the first call set it to -1");
}

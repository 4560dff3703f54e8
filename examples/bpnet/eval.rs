//! Held-out evaluation: predictions on the test chromosomes, bpnet-lite's performance
//! measures for the model and two baselines, the windows exported for the bpnet-lite peer
//! script, and the example plot.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use burn::prelude::*;

use crate::common::Metrics;
use crate::data::{LabelledWindow, Splits, loader, window_gc};
use crate::measures::{self, MeasureOptions};
use crate::model::Bpnet;
use crate::training::BpnetTrainingConfig;

/// A model's (or a baseline's) predictions on a set of windows.
#[derive(Debug, Clone)]
pub struct Predictions {
    /// Profile logits `[n, 2, L]`, row-major.
    pub logits: Vec<f32>,
    /// Predicted `log(1 + total count)`, `[n]`.
    pub log_counts: Vec<f32>,
}

/// The model's predictions on `windows`, in order.
pub fn predict<B: Backend>(
    net: &Bpnet<B>,
    windows: &[LabelledWindow],
    batch_size: usize,
) -> Predictions {
    let (mut logits, mut log_counts) = (Vec::new(), Vec::new());
    for batch in loader::<B>(windows, batch_size, None).iter() {
        let (l, c) = net.forward(batch.sequence);
        logits.extend(to_vec(l));
        log_counts.extend(to_vec(c));
    }
    Predictions { logits, log_counts }
}

fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec()
        .expect("f32 tensor data")
}

/// The mean `log(1 + total)` of `windows`.
pub fn mean_log_count(windows: &[LabelledWindow]) -> f64 {
    windows.iter().map(|w| w.total().ln_1p()).sum::<f64>() / windows.len().max(1) as f64
}

/// A uniform profile: every logit 0.
fn uniform(test: &[LabelledWindow], log_count: f64) -> Predictions {
    let len = test.first().map_or(0, |w| w.window.output_len());
    Predictions {
        logits: vec![0.0; test.len() * 2 * len],
        log_counts: vec![log_count as f32; test.len()],
    }
}

/// The average profile of the training peaks (each normalised to sum 1 over both
/// channels, then averaged), for every test window; counts from a least-squares line of
/// `log(1 + total)` on the window's GC fraction, fitted on all training windows.
fn average_profile(train: &[LabelledWindow], test: &[LabelledWindow]) -> Predictions {
    let len = train[0].window.output_len();
    let mut mean = vec![0.0f64; 2 * len];
    let mut peaks = 0usize;
    for w in train.iter().filter(|w| w.label == 1) {
        let total = w.total();
        if total > 0.0 {
            peaks += 1;
            for (m, &c) in mean.iter_mut().zip(&w.window.profiles) {
                *m += f64::from(c) / total;
            }
        }
    }
    let profile: Vec<f32> = mean
        .iter()
        .map(|&m| (m / peaks.max(1) as f64).ln() as f32)
        .collect();
    let (x, y): (Vec<f64>, Vec<f64>) = train
        .iter()
        .map(|w| (window_gc(&w.window), w.total().ln_1p()))
        .unzip();
    let (slope, intercept) = least_squares(&x, &y);
    Predictions {
        logits: test.iter().flat_map(|_| profile.iter().copied()).collect(),
        log_counts: test
            .iter()
            .map(|w| (intercept + slope * window_gc(&w.window)) as f32)
            .collect(),
    }
}

/// Slope and intercept of the least-squares line through `(x, y)`.
fn least_squares(x: &[f64], y: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (slope, my - slope * mx)
}

/// The measures of one set of predictions on the test windows, into `metrics` as
/// `{name}_{measure}`: profile measures as means over peak windows × channels (NaN, e.g. the
/// JSD of a channel without cuts, left out and counted), count measures over the peak
/// windows and over all windows. Returns (JSD on peaks, count Pearson on peaks, count
/// Pearson on all).
fn score_one(
    metrics: &mut Metrics,
    name: &str,
    test: &[LabelledWindow],
    predictions: &Predictions,
) -> (f64, f64, f64) {
    let (n, len) = (test.len(), test[0].window.output_len());
    let counts: Vec<f32> = test
        .iter()
        .flat_map(|w| w.window.profiles.iter().copied())
        .collect();
    let peaks: Vec<bool> = test.iter().map(|w| w.label == 1).collect();
    let all = vec![true; n];
    let measure = |smooth_true: bool| {
        let options = MeasureOptions {
            smooth_true,
            ..MeasureOptions::default()
        };
        measures::calculate_performance_measures(
            &predictions.logits,
            &counts,
            &predictions.log_counts,
            n,
            2,
            len,
            &options,
        )
    };
    let raw = measure(false);
    let profile = raw.profile_summary(&peaks);
    metrics.float(&format!("{name}_profile_mnll"), profile.mnll);
    metrics.text(
        &format!("{name}_profile_jsd_channels_without_cuts"),
        profile.nan[1],
    );
    let smoothed = measure(true).profile_summary(&peaks);
    for (suffix, p) in [("", profile), ("_smoothed", smoothed)] {
        metrics.float(&format!("{name}_profile_jsd{suffix}"), p.jsd);
        metrics.float(&format!("{name}_profile_pearson{suffix}"), p.pearson);
        metrics.float(&format!("{name}_profile_spearman{suffix}"), p.spearman);
    }
    let mut pearsons = [0.0; 2];
    for (k, (set, keep)) in [("peaks", &peaks), ("all", &all)].into_iter().enumerate() {
        let c = raw.count_summary(keep);
        metrics.float(&format!("{name}_count_pearson_{set}"), c.pearson);
        metrics.float(&format!("{name}_count_spearman_{set}"), c.spearman);
        metrics.float(&format!("{name}_count_mse_{set}"), c.mse);
        pearsons[k] = c.pearson;
    }
    let jsd = profile.jsd;
    (jsd, pearsons[0], pearsons[1])
}

/// bpnet-lite's measures of the model and both baselines on the test windows, and whether
/// the model beats the average-profile baseline on JSD (peaks) and on count Pearson
/// (peaks, and peaks + background).
pub fn score(metrics: &mut Metrics, splits: &Splits, model: &Predictions) -> Result<()> {
    let test = &splits.test;
    metrics.text("test_windows", test.len());
    metrics.text("test_peak_windows", crate::data::peaks(test).count());
    let (jsd, r_peaks, r_all) = score_one(metrics, "model", test, model);
    score_one(
        metrics,
        "uniform",
        test,
        &uniform(test, mean_log_count(&splits.train)),
    );
    let (base_jsd, base_r_peaks, base_r_all) = score_one(
        metrics,
        "average",
        test,
        &average_profile(&splits.train, test),
    );
    let beats = jsd < base_jsd && r_peaks > base_r_peaks && r_all > base_r_all;
    metrics.text(
        "model_beats_average_profile_baseline",
        if beats { "yes" } else { "no" },
    );
    Ok(())
}

fn write_f32(path: &Path, values: impl IntoIterator<Item = f32>) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for v in values {
        out.write_all(&v.to_le_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// Writes each split as raw little-endian float32 (`S.sequence.f32` `[n, 4, L_in]`,
/// `S.profiles.f32` `[n, 2, L]`, `S.labels.f32` `[n]`) and `manifest.json` with the
/// architecture and training settings: the input of `benches/peers/bpnet_yeast.py`.
pub fn export_windows(
    dir: &Path,
    config: &BpnetTrainingConfig,
    splits: &Splits,
    count_loss_weight: f64,
) -> Result<()> {
    crate::common::create_dir(dir)?;
    let mut sizes = serde_json::Map::new();
    for (name, set) in [
        ("train", &splits.train),
        ("valid", &splits.valid),
        ("test", &splits.test),
    ] {
        write_f32(
            &dir.join(format!("{name}.sequence.f32")),
            set.iter().flat_map(|w| w.window.sequence.iter().copied()),
        )?;
        write_f32(
            &dir.join(format!("{name}.profiles.f32")),
            set.iter().flat_map(|w| w.window.profiles.iter().copied()),
        )?;
        write_f32(
            &dir.join(format!("{name}.labels.f32")),
            set.iter().map(|w| w.label as f32),
        )?;
        sizes.insert(name.into(), serde_json::json!({ "n": set.len() }));
    }
    let manifest = serde_json::json!({
        "input_len": config.input_len(),
        "output_len": config.data.output_len,
        "n_filters": config.model.n_filters,
        "n_layers": config.model.n_layers,
        "trimming": config.model.trimming(),
        "count_loss_weight": count_loss_weight,
        "count_bias_init": mean_log_count(&splits.train),
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "seed": config.seed,
        "grad_clip_norm": config.grad_clip_norm,
        "reverse_complement": config.reverse_complement,
        "splits": sizes,
    });
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    Ok(())
}

/// Writes the model's test predictions next to the exported windows.
pub fn export_predictions(dir: &Path, predictions: &Predictions) -> Result<()> {
    write_f32(
        &dir.join("ours.test.logits.f32"),
        predictions.logits.iter().copied(),
    )?;
    write_f32(
        &dir.join("ours.test.logcounts.f32"),
        predictions.log_counts.iter().copied(),
    )
}

/// Observed cuts and the predicted profile (probabilities over both channels × the observed
/// total) of the test peak with the most cuts; `+` (left cuts) up, `-` (right cuts) down.
pub fn plot_example(path: &Path, test: &[LabelledWindow], predictions: &Predictions) -> Result<()> {
    let Some((i, w)) = test
        .iter()
        .enumerate()
        .filter(|(_, w)| w.label == 1)
        .max_by(|a, b| a.1.total().total_cmp(&b.1.total()))
    else {
        return Ok(());
    };
    let l = w.window.output_len();
    let logits = &predictions.logits[i * 2 * l..(i + 1) * 2 * l];
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let z: f64 = logits.iter().map(|&v| f64::from(v - max).exp()).sum();
    let total = w.total();
    let series = |v: &mut dyn Iterator<Item = f64>, sign: f64| -> Vec<(f64, f64)> {
        v.enumerate().map(|(j, c)| (j as f64, sign * c)).collect()
    };
    let predicted = |range: std::ops::Range<usize>| {
        logits[range]
            .iter()
            .map(|&v| total * f64::from(v - max).exp() / z)
            .collect::<Vec<f64>>()
    };
    let observed = |range: std::ops::Range<usize>| {
        w.window.profiles[range]
            .iter()
            .map(|&c| f64::from(c))
            .collect::<Vec<f64>>()
    };
    crate::common::plot::line_plot(
        path,
        &format!(
            "test peak {}:{} ({} cuts): observed vs predicted",
            w.window.chrom,
            w.window.start + (w.window.input_len() - l) / 2,
            total
        ),
        ("position in the output window (bp)", "cuts (+ up, - down)"),
        &[
            (
                "observed left cuts",
                series(&mut observed(0..l).into_iter(), 1.0),
            ),
            (
                "observed right cuts",
                series(&mut observed(l..2 * l).into_iter(), -1.0),
            ),
            (
                "predicted left",
                series(&mut predicted(0..l).into_iter(), 1.0),
            ),
            (
                "predicted right",
                series(&mut predicted(l..2 * l).into_iter(), -1.0),
            ),
        ],
    )
}

//! Evaluation: the NLL per base of the windows, Viterbi decoding of the whole genome, the
//! domain metrics against the annotation, the GC-window baseline, the predicted-CDS BED and
//! the plots.

use std::path::Path;

use anyhow::{Context, Result};
use burn::prelude::*;
use diffbio_burn::Reduction;
use diffbio_burn::hmm::{Hmm, HmmAlgorithm};
use diffbio_burn_data::sequences::SequenceItem;

use crate::common::Metrics;
use crate::common::metrics::accuracy_f1;
use crate::data::{bases, loader};
use crate::model::Region;

/// Mean negative log-likelihood per base of `windows` (no gradient; minibatches of
/// `batch_size` windows from burn's data loader).
pub fn nll_per_base<B: Backend>(hmm: &Hmm<B>, windows: &[SequenceItem], batch_size: usize) -> f64 {
    let total: f64 = loader::<B>(windows, batch_size, None)
        .iter()
        .map(|batch| {
            hmm.forward(batch.observations, Some(batch.lengths), Reduction::Sum)
                .into_scalar()
                .elem::<f64>()
        })
        .sum();
    total / bases(windows) as f64
}

/// Viterbi path of the whole genome as one sequence, mapped to `0`/`1`/`-1` (non-coding,
/// forward-, reverse-strand CDS), and its joint log-probability. Runs the library's host
/// kernel on every backend (on a GPU the tensor recursion would be 154 k dependent steps).
pub fn decode<B: Backend>(hmm: &Hmm<B>, regions: &[Region], symbols: &[u32]) -> (Vec<i8>, f64) {
    let device = hmm.device();
    let obs: Vec<i64> = symbols.iter().map(|&s| i64::from(s)).collect();
    let obs = Tensor::<B, 2, Int>::from_data(TensorData::new(obs, [1, symbols.len()]), &device);
    let paths = hmm
        .clone()
        .with_algorithm(HmmAlgorithm::Host)
        .viterbi(obs, None);
    let states: Vec<i64> = paths
        .states
        .into_data()
        .convert::<i64>()
        .to_vec()
        .expect("i64 states");
    let calls = states.iter().map(|&z| regions[z as usize].sign()).collect();
    (calls, paths.log_prob.into_scalar().elem())
}

/// GC fraction of the centred window of `width` bp around each base (clipped at the ends;
/// the genome is circular but the annotation is linear, so no wrap-around).
pub fn gc_track(symbols: &[u32], width: usize) -> Vec<f64> {
    let is_gc = |s: u32| u32::from(s == 1 || s == 2);
    let mut prefix = vec![0u32; symbols.len() + 1];
    for (i, &s) in symbols.iter().enumerate() {
        prefix[i + 1] = prefix[i] + is_gc(s);
    }
    let half = width / 2;
    (0..symbols.len())
        .map(|i| {
            let (a, b) = (i.saturating_sub(half), (i + half + 1).min(symbols.len()));
            f64::from(prefix[b] - prefix[a]) / (b - a) as f64
        })
        .collect()
}

/// Fraction of the bases that are annotated and called coding whose strands agree.
pub fn strand_agreement(calls: &[i8], truth: &[i8]) -> f64 {
    let (mut both, mut same) = (0usize, 0usize);
    for (&c, &t) in calls.iter().zip(truth) {
        if c != 0 && t != 0 {
            both += 1;
            same += usize::from(c == t);
        }
    }
    same as f64 / both.max(1) as f64
}

/// Entropy (nats) of the base composition: the NLL per base of the best i.i.d. model.
pub fn composition_entropy(composition: &[f64; 4]) -> f64 {
    -composition
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|p| p * p.ln())
        .sum::<f64>()
}

/// Per-base accuracy and coding F1 of the HMM's calls, of the GC baseline and of calling
/// everything coding, on the whole genome and each half (the first half looked at while
/// choosing the design, the second held out); returns whether the HMM beats the baseline
/// in accuracy and F1 on all three.
pub fn score(metrics: &mut Metrics, hmm_call: &[bool], gc_call: &[bool], coding: &[bool]) -> bool {
    let n = coding.len();
    let half = n / 2;
    let all = vec![true; n];
    let mut beats = true;
    for (tag, range) in [
        ("genome", 0..n),
        ("first_half", 0..half),
        ("second_half", half..n),
    ] {
        let score = |call: &[bool]| accuracy_f1(&call[range.clone()], &coding[range.clone()]);
        let ((ha, hf), (ga, gf), (aa, af)) = (score(hmm_call), score(gc_call), score(&all));
        metrics.float(&format!("hmm_accuracy_{tag}"), ha);
        metrics.float(&format!("hmm_coding_f1_{tag}"), hf);
        metrics.float(&format!("gc_baseline_accuracy_{tag}"), ga);
        metrics.float(&format!("gc_baseline_coding_f1_{tag}"), gf);
        metrics.float(&format!("all_coding_accuracy_{tag}"), aa);
        metrics.float(&format!("all_coding_f1_{tag}"), af);
        beats &= ha > ga && hf > gf;
    }
    beats
}

/// Writes the runs of coding calls as BED6 rows (`hmm_<n>`, strand `+`/`-`).
pub fn write_calls_bed(path: &Path, chrom: &str, calls: &[i8]) -> Result<()> {
    let mut text = String::new();
    let (mut start, mut rows) = (0, 0);
    for i in 1..=calls.len() {
        if i == calls.len() || calls[i] != calls[start] {
            if calls[start] != 0 {
                rows += 1;
                let strand = if calls[start] > 0 { '+' } else { '-' };
                text += &format!("{chrom}\t{start}\t{i}\thmm_{rows}\t0\t{strand}\n");
            }
            start = i;
        }
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The annotation (`+1`/`-1` by strand), the HMM's Viterbi call (`±0.8`) and the GC
/// baseline's call (`0.4`, strandless) along `range`.
pub fn plot_tracks(
    path: &Path,
    name: &str,
    truth: &[i8],
    calls: &[i8],
    gc_call: &[bool],
    range: std::ops::Range<usize>,
) -> Result<()> {
    let step = (range.len() / 3000).max(1);
    let series = |f: &dyn Fn(usize) -> f64| -> Vec<(f64, f64)> {
        range
            .clone()
            .step_by(step)
            .map(|i| (i as f64, f(i)))
            .collect()
    };
    crate::common::plot::line_plot(
        path,
        &format!("{name}: CDS by strand (+1 / -1) vs calls"),
        ("position (bp)", "strand"),
        &[
            ("CDS annotation", series(&|i| f64::from(truth[i]))),
            (
                "HMM Viterbi call (x0.8)",
                series(&|i| 0.8 * f64::from(calls[i])),
            ),
            (
                "GC-window baseline (coding = 0.4)",
                series(&|i| 0.4 * f64::from(u8::from(gc_call[i]))),
            ),
        ],
    )
}

//! Did the model learn a transcription factor's footprint? tangermeme / bpnet-lite's
//! marginalisation: insert a motif into shuffled background sequences, predict, and
//! subtract the prediction without it; next to the footprint in the raw cuts around the
//! motif's genomic sites in accessible regions.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use burn::prelude::*;
use diffbio_burn_data::intervals::Intervals;
use diffbio_burn_data::windows::{CutSites, Genome, WindowItem, base_code};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::common::Metrics;
use crate::data::LabelledWindow;
use crate::eval::predict;
use crate::model::Bpnet;

/// Bases each side of the motif centre shown and scored.
pub const HALF: usize = 100;
/// The footprint's centre: bases each side of the motif centre.
const CORE: usize = 5;
/// The flanks: this far from the motif centre, up to [`FLANK_TO`].
const FLANK_FROM: usize = 15;
const FLANK_TO: usize = 60;

/// A motif to marginalise: its name and sequence (A, C, G, T).
pub struct Probe {
    /// Name in the metrics and plot.
    pub name: &'static str,
    /// Sequence inserted, and searched on both strands in the genome.
    pub sequence: &'static str,
}

/// Reb1's core motif (`TTACCCG`, the data README's `TTACCC[GT]`) and a control of the same
/// bases. The control was chosen from the raw cuts alone, before any model saw it: among
/// eight shuffles of Reb1's bases, the one with at least 30 genomic sites in peaks whose
/// observed depth is nearest 1 (`CATCGTC`: 49 sites, 1.02). A first pick, `CTCTAGC`, has
/// 1.44 times its flanks' cuts at its 33 sites: not a neutral control.
pub const PROBES: [Probe; 2] = [
    Probe {
        name: "reb1",
        sequence: "TTACCCG",
    },
    Probe {
        name: "control",
        sequence: "CATCGTC",
    },
];

fn codes(sequence: &str) -> Vec<u8> {
    sequence
        .bytes()
        .map(|b| base_code(b).expect("ACGT"))
        .collect()
}

fn reverse_complement(codes: &[u8]) -> Vec<u8> {
    codes.iter().rev().map(|&c| 3 - c).collect()
}

/// `profile` divided by the mean of its flanks (see [`depth`]).
fn relative(profile: &[f64]) -> Vec<f64> {
    let flank: f64 = profile[HALF - FLANK_TO..=HALF - FLANK_FROM]
        .iter()
        .chain(&profile[HALF + FLANK_FROM..=HALF + FLANK_TO])
        .sum::<f64>()
        / (2 * (FLANK_TO - FLANK_FROM + 1)) as f64;
    profile.iter().map(|v| v / flank).collect()
}

/// Mean over [`CORE`] bases each side of the centre of a `2 × HALF + 1` profile, divided by
/// the mean over the flanks ([`FLANK_FROM`]..=[`FLANK_TO`] bases each side): below 1 is a
/// footprint (a dip between accessible flanks).
pub fn depth(profile: &[f64]) -> f64 {
    let core: f64 = profile[HALF - CORE..=HALF + CORE].iter().sum::<f64>() / (2 * CORE + 1) as f64;
    let flank: f64 = profile[HALF - FLANK_TO..=HALF - FLANK_FROM]
        .iter()
        .chain(&profile[HALF + FLANK_FROM..=HALF + FLANK_TO])
        .sum::<f64>()
        / (2 * (FLANK_TO - FLANK_FROM + 1)) as f64;
    core / flank
}

/// The genome, its cut sites and accessible regions, for the observed footprints: what
/// [`crate::data::yeast`] read and counted for the training windows, kept.
pub struct Genomic {
    /// The genome.
    pub genome: Arc<Genome>,
    /// Tn5 cut sites, shifted as the training data.
    pub cuts: Arc<CutSites>,
    /// Every accessible region of the file.
    pub regions: Intervals,
    /// The `--exclude` regions.
    pub exclude: Intervals,
}

impl Genomic {
    /// The mean cuts (both ends) per site around the motif's sites (either strand, oriented
    /// to the motif) inside accessible regions, away from the excluded regions; and the
    /// number of sites.
    pub fn observed(&self, probe: &Probe) -> (Vec<f64>, usize) {
        let Genomic {
            genome,
            cuts,
            regions,
            exclude,
        } = self;
        let forward = codes(probe.sequence);
        let reverse = reverse_complement(&forward);
        let k = forward.len();
        let mut sum = vec![0.0f64; 2 * HALF + 1];
        let mut sites = std::collections::BTreeSet::new();
        for region in &regions.intervals {
            let Some(chrom) = genome.chrom_index(&region.chrom) else {
                continue;
            };
            let bases = genome.bases(chrom);
            let len = bases.len();
            for start in region.start..region.end.min(len).saturating_sub(k - 1) {
                let site = &bases[start..start + k];
                let strand = if site == forward.as_slice() {
                    1
                } else if site == reverse.as_slice() {
                    -1
                } else {
                    continue;
                };
                let centre = start + k / 2;
                let (from, to) = (centre.saturating_sub(HALF), centre + HALF + 1);
                let excluded = exclude
                    .intervals
                    .iter()
                    .any(|e| e.chrom == region.chrom && e.start < to && from < e.end);
                if centre < HALF || to > len || excluded || !sites.insert((chrom, start)) {
                    continue;
                }
                let profile = cuts
                    .profile(&region.chrom, from, 2 * HALF + 1)
                    .expect("a genome chromosome");
                let (plus, minus) = profile.split_at(2 * HALF + 1);
                for i in 0..=2 * HALF {
                    let j = if strand == 1 { i } else { 2 * HALF - i };
                    sum[j] += f64::from(plus[i] + minus[i]);
                }
            }
        }
        let n = sites.len();
        (sum.into_iter().map(|s| s / n.max(1) as f64).collect(), n)
    }
}

/// Predicted cuts (both channels; softmax over both × `exp(log count)`) around the centre
/// of each window, averaged: `[2 × HALF + 1]`.
fn predicted_profile<B: Backend>(net: &Bpnet<B>, windows: &[LabelledWindow]) -> Vec<f64> {
    let predictions = predict(net, windows, 64);
    let l = windows[0].window.output_len();
    let mut sum = vec![0.0f64; 2 * HALF + 1];
    for (i, logits) in predictions.logits.chunks(2 * l).enumerate() {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let z: f64 = logits.iter().map(|&v| f64::from(v - max).exp()).sum();
        let total = f64::from(predictions.log_counts[i]).exp();
        for (j, s) in sum.iter_mut().enumerate() {
            let p = l / 2 - HALF + j;
            let both = f64::from(logits[p] - max).exp() + f64::from(logits[l + p] - max).exp();
            *s += total * both / z;
        }
    }
    sum.into_iter().map(|s| s / windows.len() as f64).collect()
}

/// `windows` with each sequence's bases shuffled (seeded; composition kept).
pub fn shuffled(windows: &[LabelledWindow], seed: u64) -> Vec<LabelledWindow> {
    let mut rng = StdRng::seed_from_u64(seed);
    windows
        .iter()
        .map(|w| {
            let n = w.window.input_len();
            let mut columns: Vec<usize> = (0..n).collect();
            columns.shuffle(&mut rng);
            let mut sequence = vec![0.0; 4 * n];
            for (to, &from) in columns.iter().enumerate() {
                for k in 0..4 {
                    sequence[k * n + to] = w.window.sequence[k * n + from];
                }
            }
            LabelledWindow {
                window: WindowItem {
                    sequence,
                    ..w.window.clone()
                },
                label: 0,
            }
        })
        .collect()
}

/// `windows` with `motif` written at the centre of each input sequence.
fn with_motif(windows: &[LabelledWindow], motif: &[u8]) -> Vec<LabelledWindow> {
    windows
        .iter()
        .map(|w| {
            let n = w.window.input_len();
            let mut w = w.clone();
            let start = n / 2 - motif.len() / 2;
            for (i, &c) in motif.iter().enumerate() {
                for k in 0..4 {
                    w.window.sequence[k * n + start + i] = f32::from(u8::from(k == usize::from(c)));
                }
            }
            w
        })
        .collect()
}

/// Marginalises each probe over `background` (shuffled sequences) and compares with the raw
/// cuts; writes `footprint.png` and the depths into `metrics`.
pub fn marginalise<B: Backend>(
    metrics: &mut Metrics,
    out: &Path,
    net: &Bpnet<B>,
    background: &[LabelledWindow],
    genomic: Option<&Genomic>,
) -> Result<()> {
    if background.is_empty() || background[0].window.output_len() < 2 * HALF + 1 {
        return Ok(());
    }
    let without = predicted_profile(net, background);
    let x = |j: usize| j as f64 - HALF as f64;
    let line = |profile: &[f64]| -> Vec<(f64, f64)> {
        relative(profile)
            .iter()
            .enumerate()
            .map(|(j, &v)| (x(j), v))
            .collect()
    };
    let mut series = vec![("predicted, no motif".to_string(), line(&without))];
    metrics.text("marginalised_sequences", background.len());
    metrics.float("predicted_depth_without_motif", depth(&without));
    for probe in &PROBES {
        let with = predicted_profile(net, &with_motif(background, &codes(probe.sequence)));
        let effect: Vec<f64> = with.iter().zip(&without).map(|(a, b)| a - b).collect();
        metrics.float(&format!("{}_predicted_depth", probe.name), depth(&with));
        metrics.float(
            &format!("{}_predicted_cuts_gained_per_window", probe.name),
            effect.iter().sum(),
        );
        let core: f64 =
            effect[HALF - CORE..=HALF + CORE].iter().sum::<f64>() / (2 * CORE + 1) as f64;
        metrics.float(
            &format!("{}_predicted_core_change_per_base", probe.name),
            core,
        );
        series.push((
            format!("{}: predicted, motif inserted", probe.name),
            line(&with),
        ));
        if let Some((profile, sites)) = genomic.map(|g| g.observed(probe)) {
            metrics.text(&format!("{}_genomic_sites_in_peaks", probe.name), sites);
            metrics.float(&format!("{}_observed_depth", probe.name), depth(&profile));
            series.push((
                format!("{}: observed, {sites} genomic sites in peaks", probe.name),
                line(&profile),
            ));
        }
    }
    let refs: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(n, s)| (n.as_str(), s.clone()))
        .collect();
    crate::common::plot::line_plot(
        &out.join("footprint.png"),
        "Cuts around a motif (both ends), relative to 15-60 bp flanks",
        ("position from the motif centre (bp)", "cuts / flank mean"),
        &refs,
    )
}

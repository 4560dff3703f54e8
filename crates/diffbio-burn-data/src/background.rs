//! GC-matched background (non-peak) regions, the negatives of ChromBPNet and BPNet's count
//! head.
//!
//! A model that sees only peaks learns that every window is open. ChromBPNet therefore adds
//! windows away from the peaks whose GC content matches the peaks', so that the count head
//! must use more than GC to tell them apart. [`gc_matched_background`] does the same:
//!
//! 1. Candidate windows of [`BackgroundConfig::window_len`] tile the chromosomes that hold
//!    peaks, every [`BackgroundConfig::stride`] bases. A candidate is dropped when it
//!    overlaps a peak's window (the same length, centred like [`Centre`] says), an
//!    excluded region (e.g. a repeat such as the rDNA), or holds an unknown base (`N`).
//! 2. Candidates and peak windows are binned by GC fraction ([`BackgroundConfig::bins`]
//!    equal bins on `[0, 1]`).
//! 3. For each of `round(ratio × peaks)` peaks (all peaks in a shuffled order, repeated
//!    when `ratio > 1`), a random unused candidate of the peak's bin is taken, or of the
//!    nearest bin that has one left.
//!
//! The result is an [`Intervals`] of windows (each `window_len` long, no summit, so that a
//! [`WindowConfig`](crate::windows::WindowConfig) of the same input length centres on the
//! candidate itself), restricted to the chromosomes of `peaks`: filter the peaks by
//! chromosome first to keep a chromosome split.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::config::Config;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::intervals::{Interval, Intervals};
use crate::windows::{BASE_UNKNOWN, Centre, Genome};
use crate::{DataError, Result};

/// How [`gc_matched_background`] draws its windows.
#[derive(Config, Debug)]
pub struct BackgroundConfig {
    /// Length of the windows whose GC content is matched (the model's input length).
    pub window_len: usize,
    /// Background windows per peak. Default `1.0`.
    #[config(default = 1.0)]
    pub ratio: f64,
    /// Number of equal GC-fraction bins on `[0, 1]`. Default `50` (bins of 0.02).
    #[config(default = 50)]
    pub bins: usize,
    /// Distance between the starts of neighbouring candidate windows. Default `100`.
    #[config(default = 100)]
    pub stride: usize,
    /// Where the peak windows are centred. Default [`Centre::Summit`].
    #[config(default = "Centre::Summit")]
    pub centre: Centre,
    /// Seed of the peak order and the candidate draws. Default `0`.
    #[config(default = 0)]
    pub seed: u64,
}

/// What [`gc_matched_background`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackgroundSummary {
    /// Candidate windows left after the exclusions.
    pub candidates: usize,
    /// Background windows drawn.
    pub windows: usize,
    /// Draws that found no candidate in the peak's own bin and took a neighbouring one.
    pub from_neighbouring_bin: usize,
    /// Draws asked for but not made because the candidates ran out.
    pub shortfall: usize,
    /// Mean GC fraction of the peak windows.
    pub peak_gc: f64,
    /// Mean GC fraction of the background windows.
    pub background_gc: f64,
}

/// The GC fraction of `codes` (A, C, G, T as 0..4), unknown bases not counted; `None` when
/// no base is known.
pub fn gc_fraction(codes: &[u8]) -> Option<f64> {
    let (mut gc, mut known) = (0usize, 0usize);
    for &c in codes {
        if c < BASE_UNKNOWN {
            known += 1;
            gc += usize::from(c == 1 || c == 2);
        }
    }
    (known > 0).then(|| gc as f64 / known as f64)
}

/// Background windows on the chromosomes of `peaks`, GC-matched to the peaks' windows, away
/// from the peaks and from `exclude` (see the module docs).
///
/// # Errors
/// A `window_len`, `stride` or `bins` of 0, a negative or non-finite `ratio`, a peak or
/// excluded region on a chromosome the genome lacks (naming its file and line), or a peak
/// whose window runs off its chromosome.
pub fn gc_matched_background(
    genome: &Genome,
    peaks: &Intervals,
    exclude: &Intervals,
    config: &BackgroundConfig,
) -> Result<(Intervals, BackgroundSummary)> {
    let (len, bins) = (config.window_len, config.bins);
    if len == 0
        || config.stride == 0
        || bins == 0
        || !config.ratio.is_finite()
        || config.ratio < 0.0
    {
        return Err(DataError::new(
            &peaks.path,
            format!(
                "window_len {len}, stride {}, bins {bins} and ratio {}: the first three must \
                 be at least 1, the ratio finite and at least 0",
                config.stride, config.ratio
            ),
        )
        .at("background configuration"));
    }
    let bin = |gc: f64| ((gc * bins as f64) as usize).min(bins - 1);

    // Peak windows, and every blocked stretch per chromosome.
    let mut blocked: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
    let mut peak_bins = Vec::with_capacity(peaks.intervals.len());
    let mut peak_gc = 0.0;
    for interval in &peaks.intervals {
        let chrom = chrom_of(genome, peaks, interval)?;
        let midpoint = interval.start + (interval.end - interval.start) / 2;
        let c = match config.centre {
            Centre::Summit => interval.summit.unwrap_or(midpoint),
            Centre::Midpoint => midpoint,
        };
        let bases = genome.bases(chrom);
        let start = c
            .checked_sub(len / 2)
            .filter(|s| s + len <= bases.len())
            .ok_or_else(|| {
                peaks.error(
                    interval,
                    format!("the {len} bp window centred at {c} runs off the chromosome"),
                )
            })?;
        let gc = gc_fraction(&bases[start..start + len]).unwrap_or(0.0);
        peak_gc += gc;
        peak_bins.push(bin(gc));
        blocked.entry(chrom).or_default().push((start, start + len));
    }
    let peak_chroms: Vec<usize> = blocked.keys().copied().collect();
    for interval in &exclude.intervals {
        let chrom = chrom_of(genome, exclude, interval)?;
        if let Some(list) = blocked.get_mut(&chrom) {
            list.push((interval.start, interval.end));
        }
    }

    // Candidates by GC bin.
    let mut by_bin: Vec<Vec<(usize, usize)>> = vec![Vec::new(); bins];
    let mut candidates = 0;
    for &chrom in &peak_chroms {
        let bases = genome.bases(chrom);
        let list = blocked.get_mut(&chrom).expect("a peak chromosome");
        list.sort_unstable();
        let mut next_block = 0;
        let mut start = 0;
        while start + len <= bases.len() {
            let end = start + len;
            // Blocks ending at or before `start` can no longer overlap.
            while next_block < list.len() && list[next_block].1 <= start {
                next_block += 1;
            }
            let overlaps = list[next_block..]
                .iter()
                .take_while(|b| b.0 < end)
                .any(|b| b.1 > start);
            let window = &bases[start..end];
            if !overlaps && window.iter().all(|&b| b < BASE_UNKNOWN) {
                let gc = gc_fraction(window).expect("known bases");
                by_bin[bin(gc)].push((chrom, start));
                candidates += 1;
            }
            start += config.stride;
        }
    }

    let mut rng = StdRng::seed_from_u64(config.seed);
    let wanted = (config.ratio * peak_bins.len() as f64).round() as usize;
    let mut summary = BackgroundSummary {
        candidates,
        peak_gc: peak_gc / peak_bins.len().max(1) as f64,
        ..Default::default()
    };
    let mut order: Vec<usize> = Vec::with_capacity(wanted);
    while order.len() < wanted && !peak_bins.is_empty() {
        let mut round: Vec<usize> = (0..peak_bins.len()).collect();
        round.shuffle(&mut rng);
        order.extend(round.into_iter().take(wanted - order.len()));
    }
    let mut drawn = Vec::with_capacity(wanted);
    let mut background_gc = 0.0;
    for &p in &order {
        let Some(b) = nearest_nonempty(&by_bin, peak_bins[p]) else {
            summary.shortfall += 1;
            continue;
        };
        if b != peak_bins[p] {
            summary.from_neighbouring_bin += 1;
        }
        let pool = &mut by_bin[b];
        let (chrom, start) = pool.swap_remove(rng.random_range(0..pool.len()));
        background_gc += gc_fraction(&genome.bases(chrom)[start..start + len]).expect("known");
        drawn.push((chrom, start));
    }
    summary.windows = drawn.len();
    summary.background_gc = background_gc / drawn.len().max(1) as f64;
    drawn.sort_unstable();
    let intervals = drawn
        .into_iter()
        .enumerate()
        .map(|(i, (chrom, start))| Interval {
            chrom: genome.names()[chrom].clone(),
            start,
            end: start + len,
            name: Some(format!("background_{}", i + 1)),
            strand: None,
            summit: None,
            line: i + 1,
        })
        .collect();
    let path = PathBuf::from(format!("GC-matched background of {}", peaks.path.display()));
    Ok((Intervals { path, intervals }, summary))
}

fn chrom_of(genome: &Genome, file: &Intervals, interval: &Interval) -> Result<usize> {
    genome.chrom_index(&interval.chrom).ok_or_else(|| {
        file.error(
            interval,
            format!(
                "unknown chromosome {:?} (not in {})",
                interval.chrom,
                genome.path().display()
            ),
        )
    })
}

/// The bin nearest to `b` that still has candidates (ties: the lower bin).
fn nearest_nonempty<T>(by_bin: &[Vec<T>], b: usize) -> Option<usize> {
    (0..by_bin.len()).find_map(|d| {
        [b.checked_sub(d), Some(b + d)]
            .into_iter()
            .flatten()
            .find(|&i| i < by_bin.len() && !by_bin[i].is_empty())
    })
}

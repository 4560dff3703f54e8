//! `diffbio_burn_data::background` on the bundled yeast genome and regions: GC-matched
//! windows away from peaks and excluded regions, checked by direct computation on the
//! genome; and bad input.

mod common;

use common::bundled;

use std::path::PathBuf;

use diffbio_burn_data::background::{BackgroundConfig, gc_fraction, gc_matched_background};
use diffbio_burn_data::intervals::{Interval, Intervals};
use diffbio_burn_data::windows::Genome;

const LEN: usize = 846;

fn yeast() -> (Genome, Intervals) {
    let genome = Genome::read_fasta(bundled("yeast_atac/sacCer_R64.fa.gz")).unwrap();
    let peaks = Intervals::read_narrow_peak(bundled(
        "yeast_atac/hmmratac_yeast500k_bedpe_accessible_regions.narrowPeak",
    ))
    .unwrap();
    (genome, peaks)
}

fn region(chrom: &str, start: usize, end: usize) -> Intervals {
    Intervals {
        path: PathBuf::from("exclude"),
        intervals: vec![Interval {
            chrom: chrom.into(),
            start,
            end,
            name: None,
            strand: None,
            summit: None,
            line: 1,
        }],
    }
}

/// The input window `[start, end)` of a peak, centred on its summit.
fn peak_window(p: &Interval) -> (usize, usize) {
    let c = p.summit.unwrap_or(p.start + (p.end - p.start) / 2);
    (c - LEN / 2, c - LEN / 2 + LEN)
}

fn gc_of(genome: &Genome, chrom: &str, start: usize, end: usize) -> f64 {
    let i = genome.chrom_index(chrom).unwrap();
    gc_fraction(&genome.bases(i)[start..end]).unwrap()
}

#[test]
fn gc_matched_windows_avoid_peaks_and_exclusions_and_match_gc() {
    let (genome, mut peaks) = yeast();
    // Peaks of chrXII whose window fits the chromosome.
    peaks.intervals.retain(|p| {
        let c = p.summit.unwrap();
        p.chrom == "chrXII" && c >= LEN / 2
    });
    let rdna = region("chrXII", 440_000, 500_000);
    let config = BackgroundConfig::new(LEN).with_ratio(2.0).with_seed(3);
    let (background, summary) = gc_matched_background(&genome, &peaks, &rdna, &config).unwrap();
    assert_eq!(background.intervals.len(), 2 * peaks.intervals.len());
    assert_eq!(summary.windows, background.intervals.len());
    assert_eq!(summary.shortfall, 0);
    let mut seen = std::collections::HashSet::new();
    for w in &background.intervals {
        assert_eq!(w.chrom, "chrXII");
        assert_eq!(w.end - w.start, LEN);
        assert!(seen.insert(w.start), "window {} drawn twice", w.start);
        assert!(w.end <= 440_000 || w.start >= 500_000, "{w:?} in the rDNA");
        for p in &peaks.intervals {
            let (s, e) = peak_window(p);
            assert!(
                w.end <= s || w.start >= e,
                "{w:?} overlaps the peak window {s}-{e}"
            );
        }
    }
    // GC matched: the mean GC fractions agree within 0.01, while the chromosome's 846 bp
    // tiles differ from the peaks by much more.
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let peak_gc: Vec<f64> = peaks
        .intervals
        .iter()
        .map(|p| {
            let (s, e) = peak_window(p);
            gc_of(&genome, "chrXII", s, e)
        })
        .collect();
    let background_gc: Vec<f64> = background
        .intervals
        .iter()
        .map(|w| gc_of(&genome, "chrXII", w.start, w.end))
        .collect();
    assert!((mean(&peak_gc) - summary.peak_gc).abs() < 1e-12);
    assert!((mean(&background_gc) - summary.background_gc).abs() < 1e-12);
    assert!(
        (mean(&peak_gc) - mean(&background_gc)).abs() < 0.01,
        "{} vs {}",
        mean(&peak_gc),
        mean(&background_gc)
    );
    let chrom = genome.chrom_index("chrXII").unwrap();
    let tiles: Vec<f64> = genome
        .bases(chrom)
        .chunks_exact(LEN)
        .filter_map(gc_fraction)
        .collect();
    assert!(
        (mean(&tiles) - mean(&peak_gc)).abs() > 0.02,
        "the test needs peaks whose GC differs from the chromosome's"
    );
    // Seeded: the same draws again, others with another seed.
    let (again, _) = gc_matched_background(&genome, &peaks, &rdna, &config).unwrap();
    assert_eq!(again.intervals, background.intervals);
    let (other, _) =
        gc_matched_background(&genome, &peaks, &rdna, &config.clone().with_seed(4)).unwrap();
    assert_ne!(other.intervals, background.intervals);
}

#[test]
fn running_out_of_candidates_is_reported() {
    let (genome, mut peaks) = yeast();
    peaks
        .intervals
        .retain(|p| p.chrom == "chrI" && p.summit.unwrap() >= LEN / 2);
    let none = Intervals {
        path: PathBuf::from("none"),
        intervals: vec![],
    };
    // chrI (230 kb) has at most 230218 / 100 candidates; ask for far more.
    let config = BackgroundConfig::new(LEN).with_ratio(1000.0);
    let (background, summary) = gc_matched_background(&genome, &peaks, &none, &config).unwrap();
    assert!(summary.shortfall > 0);
    assert_eq!(summary.windows, summary.candidates);
    assert_eq!(
        background.intervals.len() + summary.shortfall,
        1000 * peaks.intervals.len()
    );
}

#[test]
fn bad_input_is_an_error_naming_the_problem() {
    let (genome, peaks) = yeast();
    let none = region("chrI", 0, 1);
    let bad = BackgroundConfig::new(0);
    let e = gc_matched_background(&genome, &peaks, &none, &bad).unwrap_err();
    assert!(e.to_string().contains("window_len 0"), "{e}");
    let e = gc_matched_background(
        &genome,
        &peaks,
        &none,
        &BackgroundConfig::new(LEN).with_ratio(f64::NAN),
    )
    .unwrap_err();
    assert!(e.to_string().contains("ratio"), "{e}");
    let unknown = region("chrM", 0, 10);
    let e = gc_matched_background(
        &genome,
        &region("chrI", 100_000, 100_100),
        &unknown,
        &BackgroundConfig::new(LEN),
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown chromosome \"chrM\""), "{e}");
    // A peak whose window runs off its chromosome.
    let mut edge = region("chrI", 10, 20);
    edge.path = PathBuf::from("edge.narrowPeak");
    let e = gc_matched_background(&genome, &edge, &none, &BackgroundConfig::new(LEN)).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("edge.narrowPeak") && text.contains("line 1") && text.contains("runs off"),
        "{text}"
    );
}

//! Gene finding on the *Arabidopsis thaliana* chloroplast genome: data loading, per-base
//! CDS annotation and the GC-content baseline that the HMM of issue 5 is to be compared with.
//!
//! ```sh
//! cargo run --release --example hmm
//! cargo run --release --example hmm -- --fasta genome.fa --bed cds.bed --window 240
//! ```
//!
//! **Status.** The HMM part (fitting a gene-finding HMM by gradient descent on
//! `diffbio_burn::hmm`'s forward-algorithm loss and decoding it with Viterbi) waits for the
//! library's HMM module (issue 3), which has not landed on `main` yet. This program already
//! does everything around it, on the real data:
//!
//! * reads a FASTA genome (`noodles-fasta`; A/C/G/T/N, case-insensitive) and a BED CDS
//!   annotation (`csv`, tab-separated; errors name the file and line);
//! * marks each base as coding (inside any CDS, either strand) or not;
//! * the baseline: a base is called coding when the GC fraction of the centred `--window`
//!   around it exceeds the genome's GC fraction (no labels used, like the unsupervised
//!   HMM); plus the trivial "everything is coding" call for scale;
//! * prints accuracy and F1 of "coding" for each, writes `metrics.txt` and `gc_track.png`.
//!
//! Planned HMM (7 states): non-coding, three codon positions on the forward strand and three
//! on the reverse strand, with a codon-position cycle `1 → 2 → 3 → 1` inside genes and
//! entries/exits only at codon boundaries; emissions per state over A/C/G/T. Trained
//! unsupervised on the genome's symbols (chunked into windows with `lengths`), decoded with
//! Viterbi; "coding" = any codon-position state.
mod common;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;

use common::metrics::accuracy_f1;
use common::{Metrics, bundled_data, create_dir, default_out_dir};

/// Per-base CDS annotation of a genome and a GC-content gene-finding baseline.
#[derive(Parser, Debug, Clone)]
#[command(name = "hmm", version)]
struct Args {
    /// Genome FASTA (the first record is used).
    #[arg(long, default_value_os_t = bundled_data("arabidopsis_chloroplast/NC_000932.fa"))]
    fasta: PathBuf,
    /// CDS annotation, BED (0-based, half-open; columns chrom, start, end[, name, score,
    /// strand]).
    #[arg(long, default_value_os_t = bundled_data("arabidopsis_chloroplast/NC_000932.cds.bed"))]
    bed: PathBuf,
    /// Width (bp) of the GC-content window of the baseline.
    #[arg(long, default_value_t = 120)]
    window: usize,
    /// Output directory.
    #[arg(long, default_value_os_t = default_out_dir("hmm"))]
    out: PathBuf,
}

/// A genome sequence as symbols `0..4` = A, C, G, T (`N` and other IUPAC codes are not
/// accepted: the HMM's alphabet is the four bases).
struct Genome {
    name: String,
    symbols: Vec<u8>,
}

fn read_fasta(path: &Path) -> Result<Genome> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = noodles_fasta::io::Reader::new(BufReader::new(file));
    let record = reader
        .records()
        .next()
        .with_context(|| format!("{}: no FASTA record", path.display()))?
        .with_context(|| format!("{}: malformed FASTA", path.display()))?;
    let name = String::from_utf8_lossy(record.name()).into_owned();
    let sequence: &[u8] = record.sequence().as_ref();
    let symbols = sequence
        .iter()
        .enumerate()
        .map(|(i, &b)| match b.to_ascii_uppercase() {
            b'A' => Ok(0),
            b'C' => Ok(1),
            b'G' => Ok(2),
            b'T' => Ok(3),
            other => bail!(
                "{}: record {name}: base {} is {:?}, expected A, C, G or T",
                path.display(),
                i + 1,
                other as char
            ),
        })
        .collect::<Result<Vec<u8>>>()?;
    ensure!(!symbols.is_empty(), "{}: empty sequence", path.display());
    Ok(Genome { name, symbols })
}

/// `coding[i]`: base `i` lies in a CDS of `chrom` (rows of other sequences are skipped).
fn read_cds_mask(path: &Path, chrom: &str, len: usize) -> Result<(Vec<bool>, usize)> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(file);
    let mut coding = vec![false; len];
    let mut rows = 0;
    for record in reader.records() {
        let record = record.with_context(|| format!("{}: malformed BED", path.display()))?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or("");
        if field(0).starts_with("track") || field(0).starts_with("browser") {
            continue;
        }
        let coordinate = |i: usize| -> Result<usize> {
            field(i).parse().with_context(|| {
                format!(
                    "{}: line {line}: column {} is {:?}, not a coordinate",
                    path.display(),
                    i + 1,
                    field(i)
                )
            })
        };
        let (start, end) = (coordinate(1)?, coordinate(2)?);
        if field(0) != chrom {
            continue;
        }
        ensure!(
            start < end && end <= len,
            "{}: line {line}: interval {start}-{end} is empty or beyond the {len} bp of {chrom}",
            path.display()
        );
        coding[start..end].iter_mut().for_each(|c| *c = true);
        rows += 1;
    }
    ensure!(rows > 0, "{}: no rows for sequence {chrom}", path.display());
    Ok((coding, rows))
}

/// GC fraction of the centred window of `width` bp around each base (clipped at the ends;
/// the genome is circular but the annotation is linear, so no wrap-around).
fn gc_track(symbols: &[u8], width: usize) -> Vec<f64> {
    let is_gc = |s: u8| u32::from(s == 1 || s == 2);
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

fn run(args: &Args) -> Result<Metrics> {
    let start = Instant::now();
    create_dir(&args.out)?;
    ensure!(args.window >= 1, "--window must be at least 1");
    let genome = read_fasta(&args.fasta)?;
    let n = genome.symbols.len();
    let (coding, rows) = read_cds_mask(&args.bed, &genome.name, n)?;
    let coding_fraction = coding.iter().filter(|&&c| c).count() as f64 / n as f64;
    let gc = genome.symbols.iter().filter(|&&s| s == 1 || s == 2).count() as f64 / n as f64;
    eprintln!(
        "data: {} ({n} bp, GC {gc:.4}), {rows} CDS rows covering {:.4} of the genome",
        genome.name, coding_fraction
    );

    let track = gc_track(&genome.symbols, args.window);
    let gc_call: Vec<bool> = track.iter().map(|&f| f > gc).collect();
    let (gc_accuracy, gc_f1) = accuracy_f1(&gc_call, &coding);
    let (all_accuracy, all_f1) = accuracy_f1(&vec![true; n], &coding);

    let mut metrics = Metrics::default();
    metrics.text("sequence", &genome.name);
    metrics.text("length_bp", n);
    metrics.text("cds_rows", rows);
    metrics.float("coding_fraction", coding_fraction);
    metrics.float("gc_fraction", gc);
    metrics.text("gc_window_bp", args.window);
    metrics.float("gc_baseline_accuracy", gc_accuracy);
    metrics.float("gc_baseline_coding_f1", gc_f1);
    metrics.float("all_coding_accuracy", all_accuracy);
    metrics.float("all_coding_f1", all_f1);

    // The first 20 kb: GC track against the annotation.
    let shown = n.min(20_000);
    let step = (shown / 2000).max(1);
    let series = |f: &dyn Fn(usize) -> f64| -> Vec<(f64, f64)> {
        (0..shown).step_by(step).map(|i| (i as f64, f(i))).collect()
    };
    common::plot::line_plot(
        &args.out.join("gc_track.png"),
        &format!("{}: GC in {} bp windows vs CDS", genome.name, args.window),
        ("position (bp)", "fraction"),
        &[
            ("GC fraction of window", series(&|i| track[i])),
            ("genome GC (threshold)", series(&|_| gc)),
            (
                "CDS (annotation, 0/0.5)",
                series(&|i| 0.5 * f64::from(u8::from(coding[i]))),
            ),
        ],
    )?;
    metrics.float("wall_seconds", start.elapsed().as_secs_f64());
    metrics.report(&args.out)?;
    eprintln!(
        "the HMM fit awaits diffbio_burn::hmm (issue 3); outputs in {}",
        args.out.display()
    );
    Ok(metrics)
}

fn main() -> Result<()> {
    run(&Args::parse()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoke_chloroplast_baseline() {
        let out = tempfile::tempdir().unwrap();
        let mut args = Args::parse_from(["hmm"]);
        args.out = out.path().to_path_buf();
        let metrics = run(&args).unwrap();
        // The shared data README: 154,478 bp, CDS union 79,256 bp.
        assert_eq!(metrics.get("length_bp"), Some(154_478.0));
        assert!((metrics.get("coding_fraction").unwrap() - 79_256.0 / 154_478.0).abs() < 1e-6);
        for name in ["gc_baseline_accuracy", "gc_baseline_coding_f1"] {
            let v = metrics.get(name).unwrap();
            assert!((0.0..=1.0).contains(&v), "{name} = {v}");
        }
        assert!(out.path().join("gc_track.png").is_file());
    }

    #[test]
    fn bad_bed_and_fasta_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let bed = dir.path().join("cds.bed");
        std::fs::write(&bed, "chr\t0\t10\tg\t0\t+\nchr\tx\t20\tg\t0\t+\n").unwrap();
        let err = format!("{:#}", read_cds_mask(&bed, "chr", 100).unwrap_err());
        assert!(err.contains("cds.bed: line 2: column 2"), "{err}");
        std::fs::write(&bed, "chr\t5\t200\n").unwrap();
        let err = format!("{:#}", read_cds_mask(&bed, "chr", 100).unwrap_err());
        assert!(err.contains("line 1: interval 5-200"), "{err}");
        let fasta = dir.path().join("g.fa");
        std::fs::write(&fasta, ">chr\nACGT\nACRT\n").unwrap();
        let err = format!("{:#}", read_fasta(&fasta).err().unwrap());
        assert!(err.contains("g.fa: record chr: base 7 is 'R'"), "{err}");
    }

    #[test]
    fn gc_track_is_a_centred_mean() {
        // A C G T G C -> GC flags 0 1 1 0 1 1; width 3.
        let t = gc_track(&[0, 1, 2, 3, 2, 1], 3);
        let expected = [0.5, 2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 1.0];
        for (a, e) in t.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12);
        }
    }
}

//! Genomic windows for BPNet-style models: one-hot DNA around each region and the per-base
//! count profiles of two strands (ChIP strands, or the left and right Tn5 cut ends of ATAC
//! fragments) over the centre of it.
//!
//! * [`Genome`]: a FASTA (plain, gzip or BGZF) in memory, one byte a base.
//! * Regions: [`Intervals::read_bed`] or [`Intervals::read_narrow_peak`] (whose summits
//!   centre the windows, see [`Centre`]).
//! * Profiles: [`CutSites::from_fragments`] counts Tn5 cut sites of an ATAC fragment file
//!   once, genome-wide, into sorted per-chromosome position/count arrays (memory grows with
//!   the number of distinct cut positions, not with the genome); or two bigWig files, one per
//!   strand ([`WindowDataset::from_bigwigs`], read with `bigtools`).
//! * [`WindowDataset`] (a Burn [`Dataset`] of [`WindowItem`]s, built lazily from the genome
//!   and the cut sites) and [`WindowBatcher`] (tensors `[batch, 4, input_len]`,
//!   `[batch, 2, output_len]`, `[batch, 2]`, with optional random reverse-complement
//!   augmentation).
//!
//! Policies, never silent: a region whose window runs off its chromosome, or that lies on a
//! chromosome the genome lacks, is an error naming the region file and line, unless
//! [`WindowConfig`] says [`Policy::Skip`], in which case the skipped lines are returned in
//! the [`WindowSummary`]. Fragments on chromosomes the genome lacks follow
//! [`FragmentConfig::unknown_chromosome`] and are counted in the [`FragmentSummary`].
//!
//! # Example
//! ```no_run
//! use std::sync::Arc;
//! use burn::backend::NdArray;
//! use burn::data::dataloader::DataLoaderBuilder;
//! use diffbio_burn_data::sequences::Intervals;
//! use diffbio_burn_data::windows::{
//!     CutSites, FragmentConfig, Genome, Policy, WindowBatcher, WindowConfig, WindowDataset,
//! };
//!
//! let genome = Arc::new(Genome::read_fasta("sacCer_R64.fa.gz")?);
//! let fragments = FragmentConfig::new()
//!     .with_plus_shift(4)
//!     .with_minus_shift(-5)
//!     .with_unknown_chromosome(Policy::Skip); // chrM is not in this genome
//! let (cuts, _summary) = CutSites::from_fragments("fragments.bedpe.gz", &genome, &fragments)?;
//! let peaks = Intervals::read_narrow_peak("peaks.narrowPeak")?;
//! let config = WindowConfig::new(1000, 500).with_off_chromosome(Policy::Skip);
//! let (dataset, summary) =
//!     WindowDataset::from_cut_sites(genome, &peaks, Arc::new(cuts), &config)?;
//! println!("{} windows, {} skipped", summary.windows, summary.skipped_off_chromosome.len());
//! let loader = DataLoaderBuilder::<NdArray, _, _>::new(
//!     WindowBatcher::new().with_random_reverse_complement(7),
//! )
//! .batch_size(64)
//! .shuffle(0)
//! .build(dataset);
//! for batch in loader.iter() {
//!     let [_n, _four, _input_len] = batch.sequence.dims();
//! }
//! # Ok::<(), diffbio_burn_data::DataError>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bigtools::BigWigRead;
use burn::config::Config;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::intervals::{Interval, Intervals, bed_chrom, bed_coordinates, for_each_bed_line};
use crate::sequences::{describe_byte, read_raw_fasta};
use crate::{DataError, Result};

// ---------------------------------------------------------------------------------------
// Genome
// ---------------------------------------------------------------------------------------

/// The code of a base that is `N` or another IUPAC ambiguity code (`R Y S W K M B D H V`):
/// an all-zero one-hot column.
pub const BASE_UNKNOWN: u8 = 4;

/// The code of a FASTA letter: `A C G T` (any case) → `0 1 2 3`, `N` and the IUPAC
/// ambiguity codes (any case) → [`BASE_UNKNOWN`], anything else `None`.
pub fn base_code(letter: u8) -> Option<u8> {
    match letter.to_ascii_uppercase() {
        b'A' => Some(0),
        b'C' => Some(1),
        b'G' => Some(2),
        b'T' => Some(3),
        b'N' | b'R' | b'Y' | b'S' | b'W' | b'K' | b'M' | b'B' | b'D' | b'H' | b'V' => {
            Some(BASE_UNKNOWN)
        }
        _ => None,
    }
}

/// A genome in memory: per chromosome, one [`base_code`] byte per base.
#[derive(Debug, Clone)]
pub struct Genome {
    path: PathBuf,
    names: Vec<String>,
    index: HashMap<String, usize>,
    bases: Vec<Vec<u8>>,
}

impl Genome {
    /// Reads every record of a FASTA file (plain, gzip or BGZF) as a chromosome.
    ///
    /// # Errors
    /// As [`read_fasta`](crate::sequences::read_fasta), and a letter that is not a base or an
    /// IUPAC code (naming the record and the 1-based base), two records with the same name,
    /// or a chromosome longer than `u32::MAX` bases.
    pub fn read_fasta(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let (mut names, mut index, mut bases) = (Vec::new(), HashMap::new(), Vec::new());
        read_raw_fasta(path, |mut record| {
            if let Some(i) = record.sequence.iter().position(|&b| base_code(b).is_none()) {
                let problem = format!(
                    "{} is not a base (A, C, G, T, N or an IUPAC code)",
                    describe_byte(record.sequence[i])
                );
                return Err(record.error(path, problem, Some(i)));
            }
            if u32::try_from(record.sequence.len()).is_err() {
                return Err(record.error(path, "longer than u32::MAX bases", None));
            }
            if index.insert(record.name.clone(), names.len()).is_some() {
                return Err(record.error(path, "a second record with this name", None));
            }
            record
                .sequence
                .iter_mut()
                .for_each(|b| *b = base_code(*b).unwrap_or(BASE_UNKNOWN));
            names.push(std::mem::take(&mut record.name));
            bases.push(std::mem::take(&mut record.sequence));
            Ok(())
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            names,
            index,
            bases,
        })
    }

    /// The FASTA file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Chromosome names, in file order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The index of a chromosome.
    pub fn chrom_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The length of a chromosome.
    pub fn chrom_len(&self, name: &str) -> Option<usize> {
        self.chrom_index(name).map(|i| self.bases[i].len())
    }

    /// The [`base_code`]s of chromosome `chrom` (an index into [`Genome::names`]).
    ///
    /// # Panics
    /// If `chrom` is not below the number of chromosomes.
    pub fn bases(&self, chrom: usize) -> &[u8] {
        &self.bases[chrom]
    }

    /// The number of bases of all chromosomes together.
    pub fn total_len(&self) -> usize {
        self.bases.iter().map(Vec::len).sum()
    }
}

/// One-hot encodes [`base_code`]s into `out`, channel-major: `out[k * n + i]` is 1 when base
/// `i` has code `k` (channels A, C, G, T); unknown bases leave their column 0.
///
/// # Shapes
/// `codes`: `[n]`; `out`: `[4, n]`, zero on entry.
fn one_hot_into(codes: &[u8], out: &mut [f32]) {
    let n = codes.len();
    for (i, &code) in codes.iter().enumerate() {
        if code < BASE_UNKNOWN {
            out[usize::from(code) * n + i] = 1.0;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// What to do with a record that cannot be used as asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Policy {
    /// Fail with a [`DataError`] naming the file, line and problem.
    #[default]
    Error,
    /// Leave the record out and report it (line numbers or counts) in the returned summary.
    Skip,
}

/// Where a region's window is centred.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Centre {
    /// On the narrowPeak summit when the row has one, otherwise on the midpoint.
    #[default]
    Summit,
    /// On the midpoint `(start + end) / 2` (rounded down).
    Midpoint,
}

/// The windows cut around each region.
///
/// With centre `c` (see [`Centre`]), the input window is `[c - input_len / 2, c - input_len /
/// 2 + input_len)` and the output (profile) window is its centre `output_len` bases,
/// starting `(input_len - output_len) / 2` into it.
#[derive(Config, Debug)]
pub struct WindowConfig {
    /// Length of the one-hot input sequence (bp), at least 1.
    pub input_len: usize,
    /// Length of the count profiles (bp), at least 1, at most `input_len`, and
    /// `input_len - output_len` even (so the output window is exactly centred, also after
    /// reverse-complementing).
    pub output_len: usize,
    /// Where windows are centred. Default [`Centre::Summit`].
    #[config(default = "Centre::Summit")]
    pub centre: Centre,
    /// A window that runs off its chromosome. Default [`Policy::Error`].
    #[config(default = "Policy::Error")]
    pub off_chromosome: Policy,
    /// A region on a chromosome the genome lacks. Default [`Policy::Error`].
    #[config(default = "Policy::Error")]
    pub unknown_chromosome: Policy,
}

/// How ATAC fragments become cut sites.
///
/// A fragment `chrom start end` (0-based, half-open) gives two Tn5 cuts: the `+` (left) cut
/// at base `start + plus_shift` and the `-` (right) cut at base `end - 1 + minus_shift`. With
/// both shifts 0 (the default) the cuts are the fragment's first and last bases, as in
/// fragment files that are already shifted (e.g. 10x `fragments.tsv.gz`). For fragments built
/// from unshifted read alignments, the usual Tn5 correction of +4 on `+` strand read starts
/// and −5 on `-` strand read ends is `plus_shift = 4`, `minus_shift = -5`. A shifted cut that
/// falls off its chromosome is not counted, and is reported in
/// [`FragmentSummary::cuts_off_chromosome`].
#[derive(Config, Debug)]
pub struct FragmentConfig {
    /// Added to the fragment start to give the `+` cut. Default 0.
    #[config(default = 0)]
    pub plus_shift: i64,
    /// Added to `end - 1` to give the `-` cut. Default 0.
    #[config(default = 0)]
    pub minus_shift: i64,
    /// A fragment on a chromosome the genome lacks (e.g. `chrM`). Default [`Policy::Error`].
    #[config(default = "Policy::Error")]
    pub unknown_chromosome: Policy,
}

// ---------------------------------------------------------------------------------------
// Cut sites
// ---------------------------------------------------------------------------------------

/// Sorted distinct positions on one chromosome and strand, with their counts.
#[derive(Debug, Clone, Default)]
struct Track {
    positions: Vec<u32>,
    counts: Vec<u32>,
}

impl Track {
    /// Sorts and run-length counts raw positions.
    fn from_positions(mut raw: Vec<u32>) -> Self {
        raw.sort_unstable();
        let mut track = Track::default();
        for run in raw.chunk_by(|a, b| a == b) {
            track.positions.push(run[0]);
            track
                .counts
                .push(u32::try_from(run.len()).unwrap_or(u32::MAX));
        }
        track
    }

    /// Adds the counts at positions `start..start + out.len()` to `out`.
    fn add_to(&self, start: usize, out: &mut [f32]) {
        let end = start.saturating_add(out.len());
        let lo = self.positions.partition_point(|&p| (p as usize) < start);
        let hi = self.positions.partition_point(|&p| (p as usize) < end);
        for (&p, &c) in self.positions[lo..hi].iter().zip(&self.counts[lo..hi]) {
            out[p as usize - start] += c as f32;
        }
    }

    fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }
}

/// Per-base Tn5 cut counts of two strands over a genome, kept as sorted distinct positions
/// with counts (8 bytes per distinct cut position and strand).
#[derive(Debug, Clone)]
pub struct CutSites {
    names: Vec<String>,
    plus: Vec<Track>,
    minus: Vec<Track>,
}

/// What [`CutSites::from_fragments`] counted and what it left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FragmentSummary {
    /// Fragments counted (each gives up to two cuts).
    pub fragments: u64,
    /// Fragments left out because the genome lacks their chromosome (with
    /// [`Policy::Skip`]), by chromosome.
    pub skipped_unknown_chromosome: BTreeMap<String, u64>,
    /// Cuts not counted because the shift moved them off the chromosome.
    pub cuts_off_chromosome: u64,
}

impl CutSites {
    /// Counts the cut sites of an ATAC fragment file against `genome`.
    ///
    /// The file is BED-like, plain or gzip: one fragment a line, `chrom start end` in the
    /// first three columns (MACS's `BEDPE`, 10x `fragments.tsv.gz`); further columns are
    /// ignored (a 10x duplicate count is not a weight); `#`, `track` and `browser` lines are
    /// skipped. See [`FragmentConfig`] for the cut positions.
    ///
    /// # Errors
    /// An unreadable or truncated file; a line (named) with fewer than three columns, bad
    /// coordinates, `start >= end`, an end beyond its chromosome, or (with
    /// [`Policy::Error`]) a chromosome the genome lacks.
    pub fn from_fragments(
        path: impl AsRef<Path>,
        genome: &Genome,
        config: &FragmentConfig,
    ) -> Result<(Self, FragmentSummary)> {
        let path = path.as_ref();
        let n = genome.names.len();
        let (mut plus, mut minus) = (vec![Vec::new(); n], vec![Vec::new(); n]);
        let mut summary = FragmentSummary::default();
        let mut last: Option<(Vec<u8>, usize)> = None;
        for_each_bed_line(path, |line, record| {
            let (start, end) = bed_coordinates(path, line, record)?;
            let name: &[u8] = record.reference_sequence_name();
            let chrom = match &last {
                Some((cached, chrom)) if cached.as_slice() == name => Some(*chrom),
                _ => {
                    let text = bed_chrom(path, line, record)?;
                    let chrom = genome.chrom_index(&text);
                    match (chrom, config.unknown_chromosome) {
                        (Some(chrom), _) => last = Some((name.to_vec(), chrom)),
                        (None, Policy::Skip) => {
                            *summary.skipped_unknown_chromosome.entry(text).or_default() += 1;
                        }
                        (None, Policy::Error) => {
                            return Err(DataError::new(
                                path,
                                format!(
                                    "unknown chromosome {text:?} (not in {})",
                                    genome.path.display()
                                ),
                            )
                            .at(format!("line {line}")));
                        }
                    }
                    chrom
                }
            };
            let Some(chrom) = chrom else {
                return Ok(());
            };
            let len = genome.bases[chrom].len();
            let at = || format!("line {line} ({}:{start}-{end})", genome.names[chrom]);
            if start == end {
                return Err(DataError::new(path, "empty fragment").at(at()));
            }
            if end > len {
                return Err(DataError::new(
                    path,
                    format!(
                        "the fragment runs off {}, which is {len} bp long",
                        genome.names[chrom]
                    ),
                )
                .at(at()));
            }
            summary.fragments += 1;
            for (cut, track) in [
                (start as i64 + config.plus_shift, &mut plus[chrom]),
                (end as i64 - 1 + config.minus_shift, &mut minus[chrom]),
            ] {
                if (0..len as i64).contains(&cut) {
                    track.push(cut as u32);
                } else {
                    summary.cuts_off_chromosome += 1;
                }
            }
            Ok(())
        })?;
        let tracks = |raw: Vec<Vec<u32>>| raw.into_iter().map(Track::from_positions).collect();
        let cuts = CutSites {
            names: genome.names.clone(),
            plus: tracks(plus),
            minus: tracks(minus),
        };
        Ok((cuts, summary))
    }

    /// Total cuts on a chromosome, `[plus, minus]`.
    pub fn totals(&self, chrom: &str) -> Option<[u64; 2]> {
        let i = self.names.iter().position(|n| n == chrom)?;
        Some([self.plus[i].total(), self.minus[i].total()])
    }

    /// The cut counts of `len` bases from `start` on `chrom` (bases off the chromosome count
    /// 0), or `None` for an unknown chromosome.
    ///
    /// # Shapes
    /// `[2, len]` row-major: the `+` counts, then the `-` counts.
    pub fn profile(&self, chrom: &str, start: usize, len: usize) -> Option<Vec<f32>> {
        let i = self.names.iter().position(|n| n == chrom)?;
        let mut out = vec![0.0; 2 * len];
        self.profile_into(i, start, &mut out);
        Some(out)
    }

    /// Adds the `[2, out.len() / 2]` profile at `start` of chromosome `chrom` to `out`.
    fn profile_into(&self, chrom: usize, start: usize, out: &mut [f32]) {
        let (plus, minus) = out.split_at_mut(out.len() / 2);
        self.plus[chrom].add_to(start, plus);
        self.minus[chrom].add_to(start, minus);
    }
}

// ---------------------------------------------------------------------------------------
// Dataset
// ---------------------------------------------------------------------------------------

/// One region's window.
#[derive(Debug, Clone, Copy)]
struct Window {
    chrom: usize,
    /// Input window start, 0-based.
    start: usize,
    /// Line of the region in its file.
    line: usize,
}

/// Where the count profiles come from.
#[derive(Debug, Clone)]
enum Profiles {
    /// Computed per item from cut sites.
    Cuts(Arc<CutSites>),
    /// Read once from bigWigs: `[windows, 2, output_len]`.
    Dense(Arc<Vec<f32>>),
}

/// What [`WindowDataset`] made of the regions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowSummary {
    /// Windows in the dataset (one per region kept, in file order).
    pub windows: usize,
    /// Lines of regions left out because their window runs off the chromosome
    /// ([`WindowConfig::off_chromosome`] = [`Policy::Skip`]).
    pub skipped_off_chromosome: Vec<usize>,
    /// Lines of regions left out because the genome lacks their chromosome
    /// ([`WindowConfig::unknown_chromosome`] = [`Policy::Skip`]).
    pub skipped_unknown_chromosome: Vec<usize>,
}

/// One window: one-hot sequence and count profiles.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowItem {
    /// One-hot DNA, channels A, C, G, T; `N` and other ambiguity codes are all-zero columns.
    ///
    /// # Shapes
    /// `[4, input_len]` row-major: `sequence[k * input_len + i]`.
    pub sequence: Vec<f32>,
    /// Per-base counts over the centre `output_len` bases: row 0 the `+` strand (ATAC: left
    /// cuts), row 1 the `-` strand (right cuts).
    ///
    /// # Shapes
    /// `[2, output_len]` row-major.
    pub profiles: Vec<f32>,
    /// Chromosome.
    pub chrom: String,
    /// Start of the input window, 0-based.
    pub start: usize,
    /// Whether the window is read on the reverse strand (see
    /// [`WindowItem::reverse_complement`]).
    pub reverse: bool,
}

impl WindowItem {
    /// The input length (bp).
    pub fn input_len(&self) -> usize {
        self.sequence.len() / 4
    }

    /// The profile length (bp).
    pub fn output_len(&self) -> usize {
        self.profiles.len() / 2
    }

    /// Total counts per strand, `[plus, minus]`.
    pub fn counts(&self) -> [f32; 2] {
        let (plus, minus) = self.profiles.split_at(self.output_len());
        [plus.iter().sum(), minus.iter().sum()]
    }

    /// The same window read on the other strand: the sequence reversed and complemented
    /// (channel `k` becomes `3 - k`), the profiles reversed and their strands swapped. Its
    /// output window is still the centre of its input window.
    pub fn reverse_complement(&self) -> WindowItem {
        let (n, m) = (self.input_len(), self.output_len());
        let mut sequence = vec![0.0; self.sequence.len()];
        for k in 0..4 {
            let from = &self.sequence[(3 - k) * n..(4 - k) * n];
            sequence[k * n..(k + 1) * n]
                .iter_mut()
                .zip(from.iter().rev())
                .for_each(|(o, &v)| *o = v);
        }
        let mut profiles = vec![0.0; self.profiles.len()];
        for s in 0..2 {
            let from = &self.profiles[(1 - s) * m..(2 - s) * m];
            profiles[s * m..(s + 1) * m]
                .iter_mut()
                .zip(from.iter().rev())
                .for_each(|(o, &v)| *o = v);
        }
        WindowItem {
            sequence,
            profiles,
            chrom: self.chrom.clone(),
            start: self.start,
            reverse: !self.reverse,
        }
    }
}

/// Windows around regions: a Burn [`Dataset`] of [`WindowItem`]s. Sequences (and cut-site
/// profiles) are built when an item is read, from the shared genome and cut sites, so memory
/// does not grow with the number of windows (bigWig profiles are read once, `2 × output_len`
/// floats a window).
#[derive(Debug, Clone)]
pub struct WindowDataset {
    genome: Arc<Genome>,
    windows: Vec<Window>,
    profiles: Profiles,
    input_len: usize,
    output_len: usize,
}

impl WindowDataset {
    /// Windows around `regions` with profiles from cut sites counted on the same genome.
    ///
    /// # Errors
    /// An invalid [`WindowConfig`]; `cuts` counted on another genome; with [`Policy::Error`],
    /// a region (named by file and line) on a chromosome the genome lacks or whose window runs
    /// off its chromosome.
    pub fn from_cut_sites(
        genome: Arc<Genome>,
        regions: &Intervals,
        cuts: Arc<CutSites>,
        config: &WindowConfig,
    ) -> Result<(Self, WindowSummary)> {
        if cuts.names != genome.names {
            return Err(DataError::new(
                &genome.path,
                "the cut sites were counted on a genome with other chromosomes",
            ));
        }
        let (windows, summary) = place_windows(&genome, regions, config)?;
        Ok((
            Self {
                genome,
                windows,
                profiles: Profiles::Cuts(cuts),
                input_len: config.input_len,
                output_len: config.output_len,
            },
            summary,
        ))
    }

    /// Windows around `regions` with profiles read from two bigWig files, `plus` and
    /// `minus` (read with `bigtools`). Bases without data count 0; values are taken as their
    /// absolute value, so a `-` strand bigWig stored with negative values, as some pipelines
    /// write it, reads as counts.
    ///
    /// # Errors
    /// As [`WindowDataset::from_cut_sites`], and a bigWig that cannot be read (a corrupt file
    /// included), lacks a window's chromosome, is shorter than the window, or holds an
    /// infinite value (naming the bigWig and the region's line).
    pub fn from_bigwigs(
        genome: Arc<Genome>,
        regions: &Intervals,
        plus: impl AsRef<Path>,
        minus: impl AsRef<Path>,
        config: &WindowConfig,
    ) -> Result<(Self, WindowSummary)> {
        let (windows, summary) = place_windows(&genome, regions, config)?;
        let (m, offset) = (
            config.output_len,
            (config.input_len - config.output_len) / 2,
        );
        let mut dense = vec![0.0f32; windows.len() * 2 * m];
        for (strand, path) in [plus.as_ref(), minus.as_ref()].into_iter().enumerate() {
            let mut reader = open_bigwig(path)?;
            let lengths: HashMap<String, u32> = reader
                .chroms()
                .iter()
                .map(|c| (c.name.clone(), c.length))
                .collect();
            for (w, window) in windows.iter().enumerate() {
                let name = genome.names[window.chrom].as_str();
                let (start, end) = (window.start + offset, window.start + offset + m);
                let at = || {
                    format!(
                        "region at line {} of {}",
                        window.line,
                        regions.path.display()
                    )
                };
                let len = *lengths.get(name).ok_or_else(|| {
                    DataError::new(path, format!("no chromosome {name:?} in the bigWig")).at(at())
                })?;
                if end > len as usize {
                    return Err(DataError::new(
                        path,
                        format!("{name} is {len} bp in the bigWig; the window needs {start}-{end}"),
                    )
                    .at(at()));
                }
                let values = guard(path, || reader.values(name, start as u32, end as u32))?
                    .map_err(|e| {
                        DataError::new(path, format!("cannot read {name}:{start}-{end}"))
                            .at(at())
                            .caused_by(e)
                    })?;
                let out = &mut dense[(w * 2 + strand) * m..(w * 2 + strand + 1) * m];
                for (i, (o, v)) in out.iter_mut().zip(values).enumerate() {
                    if v.is_infinite() {
                        return Err(DataError::new(
                            path,
                            format!("infinite value at {name}:{}", start + i),
                        )
                        .at(at()));
                    }
                    *o = if v.is_nan() { 0.0 } else { v.abs() };
                }
            }
        }
        Ok((
            Self {
                genome,
                windows,
                profiles: Profiles::Dense(Arc::new(dense)),
                input_len: config.input_len,
                output_len: config.output_len,
            },
            summary,
        ))
    }

    /// The input (sequence) length.
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    /// The output (profile) length.
    pub fn output_len(&self) -> usize {
        self.output_len
    }

    /// The line of the region window `index` was cut around, in the region file.
    pub fn region_line(&self, index: usize) -> Option<usize> {
        self.windows.get(index).map(|w| w.line)
    }
}

impl Dataset<WindowItem> for WindowDataset {
    fn get(&self, index: usize) -> Option<WindowItem> {
        let window = *self.windows.get(index)?;
        let (n, m) = (self.input_len, self.output_len);
        let codes = &self.genome.bases[window.chrom][window.start..window.start + n];
        let mut sequence = vec![0.0; 4 * n];
        one_hot_into(codes, &mut sequence);
        let mut profiles = vec![0.0; 2 * m];
        match &self.profiles {
            Profiles::Cuts(cuts) => {
                cuts.profile_into(window.chrom, window.start + (n - m) / 2, &mut profiles);
            }
            Profiles::Dense(dense) => {
                profiles.copy_from_slice(&dense[index * 2 * m..(index + 1) * 2 * m]);
            }
        }
        Some(WindowItem {
            sequence,
            profiles,
            chrom: self.genome.names[window.chrom].clone(),
            start: window.start,
            reverse: false,
        })
    }

    fn len(&self) -> usize {
        self.windows.len()
    }
}

/// Checks a window configuration.
fn check_config(regions: &Intervals, config: &WindowConfig) -> Result<()> {
    let (n, m) = (config.input_len, config.output_len);
    if n == 0 || m == 0 || m > n || (n - m) % 2 != 0 {
        return Err(DataError::new(
            &regions.path,
            format!(
                "input_len {n} and output_len {m}: both must be at least 1, output_len at most \
                 input_len, and their difference even"
            ),
        )
        .at("window configuration"));
    }
    Ok(())
}

/// The centre of a region's window.
fn centre(interval: &Interval, centre: Centre) -> usize {
    let midpoint = interval.start + (interval.end - interval.start) / 2;
    match centre {
        Centre::Summit => interval.summit.unwrap_or(midpoint),
        Centre::Midpoint => midpoint,
    }
}

/// One window per region, in file order, with the configuration's policies applied.
fn place_windows(
    genome: &Genome,
    regions: &Intervals,
    config: &WindowConfig,
) -> Result<(Vec<Window>, WindowSummary)> {
    check_config(regions, config)?;
    let n = config.input_len;
    let mut summary = WindowSummary::default();
    let mut windows = Vec::with_capacity(regions.intervals.len());
    for interval in &regions.intervals {
        let Some(chrom) = genome.chrom_index(&interval.chrom) else {
            match config.unknown_chromosome {
                Policy::Skip => summary.skipped_unknown_chromosome.push(interval.line),
                Policy::Error => {
                    return Err(regions.error(
                        interval,
                        format!(
                            "unknown chromosome {:?} (not in {})",
                            interval.chrom,
                            genome.path.display()
                        ),
                    ));
                }
            }
            continue;
        };
        let len = genome.bases[chrom].len();
        let c = centre(interval, config.centre);
        let start = c.checked_sub(n / 2).filter(|s| s + n <= len);
        let Some(start) = start else {
            match config.off_chromosome {
                Policy::Skip => summary.skipped_off_chromosome.push(interval.line),
                Policy::Error => {
                    let from = c as i64 - (n / 2) as i64;
                    return Err(regions.error(
                        interval,
                        format!(
                            "the {n} bp window {from}..{} centred at {c} runs off {}, which is \
                             {len} bp long",
                            from + n as i64,
                            interval.chrom
                        ),
                    ));
                }
            }
            continue;
        };
        windows.push(Window {
            chrom,
            start,
            line: interval.line,
        });
    }
    summary.windows = windows.len();
    Ok((windows, summary))
}

/// Runs a `bigtools` call, turning a panic on a corrupt file into an error.
fn guard<T>(path: &Path, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .map_err(|_| DataError::new(path, "corrupt bigWig (the bigtools reader failed)"))
}

fn open_bigwig(path: &Path) -> Result<BigWigRead<File>> {
    let file = File::open(path).map_err(|e| DataError::new(path, "cannot open").caused_by(e))?;
    guard(path, || BigWigRead::open(file))?
        .map_err(|e| DataError::new(path, "not a readable bigWig").caused_by(e))
}

// ---------------------------------------------------------------------------------------
// Batching
// ---------------------------------------------------------------------------------------

/// A batch of windows.
#[derive(Debug, Clone)]
pub struct WindowBatch<B: Backend> {
    /// One-hot DNA.
    ///
    /// # Shapes
    /// `[batch, 4, input_len]`
    pub sequence: Tensor<B, 3>,
    /// Per-base counts, `+` then `-` strand.
    ///
    /// # Shapes
    /// `[batch, 2, output_len]`
    pub profiles: Tensor<B, 3>,
    /// Total counts per strand over the profile window (`profiles` summed over positions),
    /// or `log(1 + total)` with [`WindowBatcher::with_log1p_counts`]. BPNet's single count
    /// target is `log(1 + plus + minus)`, from the raw totals.
    ///
    /// # Shapes
    /// `[batch, 2]`
    pub counts: Tensor<B, 2>,
}

/// Stacks [`WindowItem`]s into a [`WindowBatch`], optionally reverse-complementing each
/// item with probability 1/2 (augmentation; seeded, so a single-threaded loader is
/// reproducible).
#[derive(Debug, Default)]
pub struct WindowBatcher {
    reverse_complement: Option<Mutex<StdRng>>,
    log1p_counts: bool,
}

impl WindowBatcher {
    /// Stacks items as they are, with raw counts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reverse-complements each item with probability 1/2 (see
    /// [`WindowItem::reverse_complement`]), drawing from an RNG seeded with `seed`.
    pub fn with_random_reverse_complement(mut self, seed: u64) -> Self {
        self.reverse_complement = Some(Mutex::new(StdRng::seed_from_u64(seed)));
        self
    }

    /// Gives `log(1 + total)` per strand as [`WindowBatch::counts`] instead of the totals.
    pub fn with_log1p_counts(mut self, log1p: bool) -> Self {
        self.log1p_counts = log1p;
        self
    }

    /// Stacks `items` (no augmentation) on `device`.
    ///
    /// # Panics
    /// If the items differ in input or output length.
    pub fn stack<B: Backend>(&self, items: &[WindowItem], device: &B::Device) -> WindowBatch<B> {
        let b = items.len();
        let (n, m) = items
            .first()
            .map_or((0, 0), |i| (i.input_len(), i.output_len()));
        assert!(
            items
                .iter()
                .all(|i| i.input_len() == n && i.output_len() == m),
            "WindowBatcher: items of different lengths"
        );
        let mut sequence = Vec::with_capacity(b * 4 * n);
        let mut profiles = Vec::with_capacity(b * 2 * m);
        let mut counts = Vec::with_capacity(b * 2);
        for item in items {
            sequence.extend_from_slice(&item.sequence);
            profiles.extend_from_slice(&item.profiles);
            counts.extend(
                item.counts()
                    .map(|c| if self.log1p_counts { c.ln_1p() } else { c }),
            );
        }
        WindowBatch {
            sequence: Tensor::from_data(TensorData::new(sequence, [b, 4, n]), device),
            profiles: Tensor::from_data(TensorData::new(profiles, [b, 2, m]), device),
            counts: Tensor::from_data(TensorData::new(counts, [b, 2]), device),
        }
    }
}

impl<B: Backend> Batcher<B, WindowItem, WindowBatch<B>> for WindowBatcher {
    fn batch(&self, mut items: Vec<WindowItem>, device: &B::Device) -> WindowBatch<B> {
        if let Some(rng) = &self.reverse_complement {
            let mut rng = rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for item in &mut items {
                if rng.random_bool(0.5) {
                    *item = item.reverse_complement();
                }
            }
        }
        self.stack(&items, device)
    }
}

//! Variable-length symbol sequences for hidden Markov models such as `diffbio_burn::hmm::Hmm`,
//! whose likelihood takes padded observations `[batch, max_len]` plus the true `lengths
//! [batch]`.
//!
//! * Reading: [`read_fasta`] turns a FASTA file (plain, gzip or BGZF) into [`SequenceItem`]s
//!   through an [`Alphabet`] (DNA: `A C G T` → `0 1 2 3`, case-insensitive; what happens to
//!   other letters is the alphabet's [`Unknown`] policy: an error naming the record and base
//!   by default). [`chunk_sequences`] cuts long sequences (a genome) into training windows.
//! * Intervals: [`Intervals::read_bed`] and [`Intervals::read_narrow_peak`] read BED-like
//!   files with `noodles-bed`, keeping each row's line number for errors. [`label_sequences`]
//!   turns intervals (e.g. CDS) into per-base labels, as a gene-finding HMM is scored;
//!   [`interval_sequences`] cuts out the intervals themselves (reverse-complemented on the
//!   `-` strand).
//! * Batching: [`SequenceBatcher`] pads with [`PAD_SYMBOL`] into a [`SequenceBatch`];
//!   [`LengthBuckets`] groups sequences of similar length so that little of each batch is
//!   padding, and lets Burn's data loader shuffle whole groups.
//!
//! Every reader returns a [`DataError`] naming the file, the record or line, and the problem;
//! none panics on bad input or drops a record.
//!
//! # Example
//! ```no_run
//! use burn::backend::NdArray;
//! use burn::data::dataloader::DataLoaderBuilder;
//! use burn::data::dataset::InMemDataset;
//! use diffbio_burn_data::sequences::{
//!     Alphabet, LengthBuckets, SequenceBatcher, chunk_sequences, read_fasta,
//! };
//!
//! let genome = read_fasta("genome.fa.gz", &Alphabet::dna())?;
//! let windows = chunk_sequences(&genome, 2000);
//! let buckets = LengthBuckets::new(InMemDataset::new(windows), 8);
//! let loader = DataLoaderBuilder::<NdArray, _, _>::new(SequenceBatcher)
//!     .batch_size(1) // one bucket of 8 sequences per batch
//!     .shuffle(0)
//!     .build(buckets);
//! for batch in loader.iter() {
//!     // hmm.forward(batch.observations, Some(batch.lengths), Reduction::Sum)
//!     # let _ = batch;
//! }
//! # Ok::<(), diffbio_burn_data::DataError>(())
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use flate2::read::MultiGzDecoder;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

pub use crate::intervals::{Interval, Intervals, Strand};
use crate::{DataError, Result};

// ---------------------------------------------------------------------------------------
// Alphabets
// ---------------------------------------------------------------------------------------

/// What an [`Alphabet`] does with a sequence letter it does not contain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unknown {
    /// Reading fails with a [`DataError`] naming the record, the base position and the
    /// letter.
    #[default]
    Error,
    /// Every other printable ASCII letter (`N`, IUPAC ambiguity codes, `-`, `*`, ...)
    /// becomes one extra symbol, numbered after the alphabet's letters (DNA: `4`), so an HMM
    /// reading it needs [`Alphabet::n_symbols`] emissions. Non-printable bytes (spaces,
    /// control characters, non-ASCII) are still an error.
    Symbol,
}

/// A mapping from sequence letters to symbols `0..n`: letter `k` of the alphabet is symbol
/// `k`, in either case (soft-masked lowercase bases read as the bases they are).
#[derive(Debug, Clone)]
pub struct Alphabet {
    letters: Vec<u8>,
    table: [Option<u32>; 256],
    complement: Option<Vec<u32>>,
    unknown: Unknown,
}

impl Alphabet {
    /// An alphabet of `letters` (symbol `k` is `letters[k]`), read case-insensitively, with
    /// [`Unknown::Error`] and no complement.
    ///
    /// # Panics
    /// If `letters` is empty, holds a byte that is not a printable ASCII character, or holds
    /// a letter twice (ignoring case).
    pub fn new(letters: &[u8]) -> Self {
        assert!(!letters.is_empty(), "Alphabet: no letters");
        let mut table = [None; 256];
        let mut canonical = Vec::with_capacity(letters.len());
        for (k, &letter) in letters.iter().enumerate() {
            assert!(
                letter.is_ascii_graphic(),
                "Alphabet: letter {k} ({letter:#04x}) is not a printable ASCII character"
            );
            for byte in [letter.to_ascii_uppercase(), letter.to_ascii_lowercase()] {
                assert!(
                    table[usize::from(byte)].is_none(),
                    "Alphabet: letter {:?} appears twice",
                    letter as char
                );
                table[usize::from(byte)] = Some(k as u32);
                if letter.to_ascii_uppercase() == letter.to_ascii_lowercase() {
                    break;
                }
            }
            canonical.push(letter.to_ascii_uppercase());
        }
        Self {
            letters: canonical,
            table,
            complement: None,
            unknown: Unknown::Error,
        }
    }

    /// DNA: `A C G T` → `0 1 2 3` (any case), with the complement `A ↔ T`, `C ↔ G` (used to
    /// read `-` strand intervals) and [`Unknown::Error`].
    pub fn dna() -> Self {
        Self::new(b"ACGT").with_complement(vec![3, 2, 1, 0])
    }

    /// Sets the policy for letters outside the alphabet.
    pub fn with_unknown(mut self, unknown: Unknown) -> Self {
        self.unknown = unknown;
        self
    }

    /// Sets the complement: symbol `k` pairs with `complement[k]`. The extra symbol of
    /// [`Unknown::Symbol`] is its own complement.
    ///
    /// # Panics
    /// If `complement` is not a permutation of `0..letters` that is its own inverse.
    pub fn with_complement(mut self, complement: Vec<u32>) -> Self {
        let n = self.letters.len();
        assert!(
            complement.len() == n
                && complement
                    .iter()
                    .enumerate()
                    .all(|(k, &c)| (c as usize) < n && complement[c as usize] as usize == k),
            "Alphabet: the complement {complement:?} is not an involution of 0..{n}"
        );
        self.complement = Some(complement);
        self
    }

    /// The alphabet's letters, upper case, in symbol order.
    pub fn letters(&self) -> &[u8] {
        &self.letters
    }

    /// The number of symbols a sequence read with this alphabet may hold: the letters, plus
    /// one with [`Unknown::Symbol`]. The `n_emissions` of an HMM over them.
    pub fn n_symbols(&self) -> usize {
        self.letters.len() + usize::from(self.unknown == Unknown::Symbol)
    }

    /// The symbol of a byte, or `None` when the byte is not accepted (see [`Unknown`]).
    pub fn symbol(&self, byte: u8) -> Option<u32> {
        match (self.table[usize::from(byte)], self.unknown) {
            (Some(k), _) => Some(k),
            (None, Unknown::Symbol) if byte.is_ascii_graphic() => Some(self.letters.len() as u32),
            (None, _) => None,
        }
    }

    /// The complementary symbol, when the alphabet has a complement.
    pub fn complement(&self, symbol: u32) -> Option<u32> {
        let complement = self.complement.as_ref()?;
        complement
            .get(symbol as usize)
            .copied()
            .or((symbol as usize == self.letters.len()).then_some(symbol))
    }

    /// Encodes `sequence`, or returns the 0-based position and byte of the first letter that
    /// is not accepted.
    fn encode(&self, sequence: &[u8]) -> std::result::Result<Vec<u32>, (usize, u8)> {
        sequence
            .iter()
            .enumerate()
            .map(|(i, &b)| self.symbol(b).ok_or((i, b)))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Items and FASTA
// ---------------------------------------------------------------------------------------

/// Per-base label: no interval covers the base.
pub const LABEL_NONE: u8 = 0;
/// Per-base label: a `+` strand (or unstranded) interval covers the base.
pub const LABEL_FORWARD: u8 = 1;
/// Per-base label: a `-` strand interval covers the base.
pub const LABEL_REVERSE: u8 = 2;

/// One sequence of symbols, with optional per-base labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceItem {
    /// The FASTA record name, or `name:start-end` for a chunk or an interval (0-based,
    /// half-open).
    pub name: String,
    /// The symbols, each below the reading [`Alphabet`]'s [`Alphabet::n_symbols`].
    pub symbols: Vec<u32>,
    /// One label per symbol ([`LABEL_NONE`], [`LABEL_FORWARD`], [`LABEL_REVERSE`] when set
    /// by [`label_sequences`]), or `None`.
    pub labels: Option<Vec<u8>>,
}

impl SequenceItem {
    /// An unlabelled sequence.
    pub fn new(name: impl Into<String>, symbols: Vec<u32>) -> Self {
        Self {
            name: name.into(),
            symbols,
            labels: None,
        }
    }

    /// Attaches one label per symbol.
    ///
    /// # Panics
    /// If `labels` and the symbols differ in length.
    pub fn with_labels(mut self, labels: Vec<u8>) -> Self {
        assert_eq!(
            labels.len(),
            self.symbols.len(),
            "SequenceItem {}: {} labels for {} symbols",
            self.name,
            labels.len(),
            self.symbols.len()
        );
        self.labels = Some(labels);
        self
    }

    /// The number of symbols.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Whether there are no symbols.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// The sequence cut into consecutive pieces of `len` symbols (the last one shorter),
    /// named `name:start-end` (0-based, half-open), labels cut alike.
    ///
    /// # Panics
    /// If `len` is 0.
    pub fn chunks(&self, len: usize) -> impl Iterator<Item = SequenceItem> + '_ {
        assert!(len > 0, "SequenceItem::chunks: len must be at least 1");
        (0..self.len())
            .step_by(len)
            .map(move |start| self.slice(start, (start + len).min(self.len())))
    }

    /// Symbols (and labels) `start..end`, named `name:start-end`.
    fn slice(&self, start: usize, end: usize) -> SequenceItem {
        SequenceItem {
            name: format!("{}:{start}-{end}", self.name),
            symbols: self.symbols[start..end].to_vec(),
            labels: self.labels.as_ref().map(|l| l[start..end].to_vec()),
        }
    }
}

/// Every sequence cut into pieces of `len` symbols (see [`SequenceItem::chunks`]), in order.
///
/// # Panics
/// If `len` is 0.
pub fn chunk_sequences(sequences: &[SequenceItem], len: usize) -> Vec<SequenceItem> {
    sequences.iter().flat_map(|s| s.chunks(len)).collect()
}

/// Reads every record of a FASTA file (plain, gzip or BGZF, recognised by its first bytes)
/// into symbols.
///
/// # Errors
/// The file cannot be opened or decompressed (a truncated `.gz` included), is not FASTA, has
/// no record, a record with no bases or a name that is not UTF-8, or a letter the alphabet
/// does not accept (naming the record and the 1-based base).
pub fn read_fasta(path: impl AsRef<Path>, alphabet: &Alphabet) -> Result<Vec<SequenceItem>> {
    let path = path.as_ref();
    let mut items = Vec::new();
    read_raw_fasta(path, |record| {
        let symbols = alphabet
            .encode(&record.sequence)
            .map_err(|(i, b)| record.error(path, not_in_alphabet(b, alphabet), Some(i)))?;
        items.push(SequenceItem::new(record.name, symbols));
        Ok(())
    })?;
    Ok(items)
}

fn not_in_alphabet(byte: u8, alphabet: &Alphabet) -> String {
    format!(
        "{} is not in the alphabet {}",
        describe_byte(byte),
        String::from_utf8_lossy(alphabet.letters())
    )
}

/// `'N'` for printable ASCII, `byte 0x09` otherwise.
pub(crate) fn describe_byte(byte: u8) -> String {
    if byte.is_ascii_graphic() {
        format!("{:?}", byte as char)
    } else {
        format!("byte {byte:#04x}")
    }
}

/// A FASTA record as read: 1-based record number, name, raw letters.
pub(crate) struct RawRecord {
    pub index: usize,
    pub name: String,
    pub sequence: Vec<u8>,
}

impl RawRecord {
    /// An error about this record (and a 0-based base, reported 1-based).
    pub fn error(&self, path: &Path, problem: impl Into<String>, base: Option<usize>) -> DataError {
        let mut at = format!("record {} ({})", self.index, self.name);
        if let Some(i) = base {
            at += &format!(", base {}", i + 1);
        }
        DataError::new(path, problem).at(at)
    }
}

/// Opens a file for buffered reading, decompressing it when it starts with the gzip magic
/// bytes (BGZF is gzip too).
pub(crate) fn open(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let file = File::open(path).map_err(|e| DataError::new(path, "cannot open").caused_by(e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let head = reader
        .fill_buf()
        .map_err(|e| DataError::new(path, "cannot read").caused_by(e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(reader),
        )))
    } else {
        Ok(Box::new(reader))
    }
}

/// Calls `each` on every record of a FASTA file, in order.
///
/// # Errors
/// As [`read_fasta`], and whatever `each` returns.
pub(crate) fn read_raw_fasta(
    path: &Path,
    mut each: impl FnMut(RawRecord) -> Result<()>,
) -> Result<()> {
    let mut reader = noodles_fasta::io::Reader::new(open(path)?);
    let mut definition = noodles_fasta::record::Definition::default();
    let mut index = 0;
    loop {
        index += 1;
        let read = reader.read_definition(&mut definition).map_err(|e| {
            DataError::new(path, "cannot read a FASTA header")
                .at(format!("record {index}"))
                .caused_by(e)
        })?;
        if read == 0 {
            break;
        }
        let name = std::str::from_utf8(definition.name())
            .map_err(|e| {
                DataError::new(path, "the record name is not UTF-8")
                    .at(format!("record {index}"))
                    .caused_by(e)
            })?
            .to_owned();
        let mut record = RawRecord {
            index,
            name,
            sequence: Vec::new(),
        };
        reader.read_sequence(&mut record.sequence).map_err(|e| {
            record
                .error(path, "cannot read the sequence", None)
                .caused_by(e)
        })?;
        if record.sequence.is_empty() {
            return Err(record.error(path, "the record has no bases", None));
        }
        each(record)?;
    }
    if index == 1 {
        return Err(DataError::new(path, "no FASTA record"));
    }
    Ok(())
}

/// Maps sequence names to indices.
///
/// # Errors
/// A name shared by several sequences (reported against `intervals`' file, whose rows would
/// be ambiguous).
fn index_by_name<'a>(
    names: impl Iterator<Item = &'a str>,
    intervals: &Intervals,
) -> Result<HashMap<&'a str, usize>> {
    let mut index = HashMap::new();
    for (i, name) in names.enumerate() {
        if index.insert(name, i).is_some() {
            return Err(DataError::new(
                &intervals.path,
                format!("several sequences are named {name:?}, so its rows are ambiguous"),
            ));
        }
    }
    Ok(index)
}

/// The index of the sequence an interval lies on, checking that it lies inside it.
fn locate(
    index: &HashMap<&str, usize>,
    lengths: &[usize],
    intervals: &Intervals,
    interval: &Interval,
) -> Result<usize> {
    let &i = index.get(interval.chrom.as_str()).ok_or_else(|| {
        intervals.error(
            interval,
            format!("unknown sequence {:?} (not in the FASTA)", interval.chrom),
        )
    })?;
    if interval.end > lengths[i] {
        return Err(intervals.error(
            interval,
            format!(
                "the interval runs off {}, which is {} bp long",
                interval.chrom, lengths[i]
            ),
        ));
    }
    Ok(i)
}

/// Sets per-base labels on `sequences` from intervals (e.g. a CDS annotation): every base is
/// [`LABEL_NONE`], then each row in file order sets its bases to [`LABEL_REVERSE`] on the `-`
/// strand and [`LABEL_FORWARD`] otherwise (so where rows overlap the later one wins). Labels
/// the sequences already had are replaced. Sequences without rows keep all-`LABEL_NONE`
/// labels.
///
/// # Errors
/// A row on a sequence that is not in `sequences`, or that runs off its end (naming the
/// interval file and line); several sequences with the same name.
pub fn label_sequences(sequences: &mut [SequenceItem], intervals: &Intervals) -> Result<()> {
    let lengths: Vec<usize> = sequences.iter().map(SequenceItem::len).collect();
    let index = index_by_name(sequences.iter().map(|s| s.name.as_str()), intervals)?;
    let mut labels: Vec<Vec<u8>> = lengths.iter().map(|&n| vec![LABEL_NONE; n]).collect();
    for interval in &intervals.intervals {
        let i = locate(&index, &lengths, intervals, interval)?;
        let label = match interval.strand {
            Some(Strand::Reverse) => LABEL_REVERSE,
            _ => LABEL_FORWARD,
        };
        labels[i][interval.start..interval.end].fill(label);
    }
    for (sequence, labels) in sequences.iter_mut().zip(labels) {
        sequence.labels = Some(labels);
    }
    Ok(())
}

/// The sequence of every interval, in file order, read 5' to 3' on its strand: rows on the
/// `-` strand are reverse-complemented (so a CDS starts with its start codon). Each is named
/// `[name ]chrom:start-end(strand)`. Labels, when the source has them, are cut alike; on the
/// `-` strand they are reversed and [`LABEL_FORWARD`] and [`LABEL_REVERSE`] swap, so that
/// they describe the sequence in its own orientation.
///
/// # Errors
/// A row on an unknown sequence, running off its end, or empty; a `-` strand row when the
/// alphabet has no complement; several sequences with the same name.
pub fn interval_sequences(
    sequences: &[SequenceItem],
    intervals: &Intervals,
    alphabet: &Alphabet,
) -> Result<Vec<SequenceItem>> {
    let lengths: Vec<usize> = sequences.iter().map(SequenceItem::len).collect();
    let index = index_by_name(sequences.iter().map(|s| s.name.as_str()), intervals)?;
    intervals
        .intervals
        .iter()
        .map(|interval| {
            let source = &sequences[locate(&index, &lengths, intervals, interval)?];
            if interval.start == interval.end {
                return Err(intervals.error(interval, "the interval is empty"));
            }
            let range = interval.start..interval.end;
            let mut symbols = source.symbols[range.clone()].to_vec();
            let mut labels = source.labels.as_ref().map(|l| l[range].to_vec());
            let strand = match interval.strand {
                Some(Strand::Reverse) => {
                    symbols = reverse_complement(&symbols, alphabet).ok_or_else(|| {
                        intervals.error(
                            interval,
                            "a - strand interval, but the alphabet has no complement",
                        )
                    })?;
                    if let Some(l) = labels.as_mut() {
                        l.reverse();
                        l.iter_mut().for_each(|x| *x = reverse_label(*x));
                    }
                    "-"
                }
                Some(Strand::Forward) => "+",
                None => ".",
            };
            let prefix = interval
                .name
                .as_ref()
                .map_or(String::new(), |n| format!("{n} "));
            Ok(SequenceItem {
                name: format!(
                    "{prefix}{}:{}-{}({strand})",
                    interval.chrom, interval.start, interval.end
                ),
                symbols,
                labels,
            })
        })
        .collect()
}

/// A label as seen from the other strand: [`LABEL_FORWARD`] ↔ [`LABEL_REVERSE`].
fn reverse_label(label: u8) -> u8 {
    match label {
        LABEL_FORWARD => LABEL_REVERSE,
        LABEL_REVERSE => LABEL_FORWARD,
        other => other,
    }
}

/// The reverse complement of `symbols`, or `None` without a complement in the alphabet.
fn reverse_complement(symbols: &[u32], alphabet: &Alphabet) -> Option<Vec<u32>> {
    symbols
        .iter()
        .rev()
        .map(|&s| alphabet.complement(s))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Batching
// ---------------------------------------------------------------------------------------

/// The symbol stored at padded positions (`t >= lengths[b]`). It is a valid symbol, so even a
/// model that does not mask by `lengths` reads nothing out of range; `diffbio_burn::hmm::Hmm`
/// ignores padded positions entirely.
pub const PAD_SYMBOL: u32 = 0;

/// A padded batch of sequences.
#[derive(Debug, Clone)]
pub struct SequenceBatch<B: Backend> {
    /// Symbols, padded with [`PAD_SYMBOL`] after each sequence's end.
    ///
    /// # Shapes
    /// `[batch, max_len]`, `max_len` the longest sequence of the batch.
    pub observations: Tensor<B, 2, Int>,
    /// The number of real symbols of each row.
    ///
    /// # Shapes
    /// `[batch]`
    pub lengths: Tensor<B, 1, Int>,
    /// Per-base labels padded with [`LABEL_NONE`], when every item of the batch has labels.
    ///
    /// # Shapes
    /// `[batch, max_len]`
    pub labels: Option<Tensor<B, 2, Int>>,
    /// The items' names, in row order.
    pub names: Vec<String>,
}

/// Pads [`SequenceItem`]s into a [`SequenceBatch`]. As a
/// `Batcher<B, SequenceItem, SequenceBatch<B>>` it batches single items; as a
/// `Batcher<B, Vec<SequenceItem>, SequenceBatch<B>>` it concatenates groups (the items of
/// [`LengthBuckets`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SequenceBatcher;

impl SequenceBatcher {
    /// Pads `items` into a batch on `device`.
    ///
    /// # Panics
    /// If some items have labels and others do not.
    pub fn pad<B: Backend>(items: &[SequenceItem], device: &B::Device) -> SequenceBatch<B> {
        let batch = items.len();
        let max_len = items.iter().map(SequenceItem::len).max().unwrap_or(0);
        let labelled = items.iter().filter(|s| s.labels.is_some()).count();
        assert!(
            labelled == 0 || labelled == batch,
            "SequenceBatcher: {labelled} of {batch} items have labels; all or none must"
        );
        let symbols = items.iter().map(|s| s.symbols.as_slice());
        let observations = pad_rows(symbols, max_len, i64::from(PAD_SYMBOL));
        let labels = (labelled > 0).then(|| {
            let labels = items
                .iter()
                .map(|s| s.labels.as_deref().unwrap_or_default());
            let data = pad_rows(labels, max_len, i64::from(LABEL_NONE));
            Tensor::from_data(TensorData::new(data, [batch, max_len]), device)
        });
        let lengths: Vec<i64> = items.iter().map(|s| s.len() as i64).collect();
        SequenceBatch {
            observations: Tensor::from_data(
                TensorData::new(observations, [batch, max_len]),
                device,
            ),
            lengths: Tensor::from_data(TensorData::new(lengths, [batch]), device),
            labels,
            names: items.iter().map(|s| s.name.clone()).collect(),
        }
    }
}

/// Rows of different lengths as one row-major `[rows, max_len]` block, each row filled up
/// with `pad`.
fn pad_rows<'a, T: Copy + Into<i64> + 'a>(
    rows: impl ExactSizeIterator<Item = &'a [T]>,
    max_len: usize,
    pad: i64,
) -> Vec<i64> {
    let mut out = Vec::with_capacity(rows.len() * max_len);
    for row in rows {
        out.extend(row.iter().map(|&x| x.into()));
        out.resize(out.len() + max_len - row.len(), pad);
    }
    out
}

impl<B: Backend> Batcher<B, SequenceItem, SequenceBatch<B>> for SequenceBatcher {
    fn batch(&self, items: Vec<SequenceItem>, device: &B::Device) -> SequenceBatch<B> {
        Self::pad(&items, device)
    }
}

impl<B: Backend> Batcher<B, Vec<SequenceItem>, SequenceBatch<B>> for SequenceBatcher {
    fn batch(&self, groups: Vec<Vec<SequenceItem>>, device: &B::Device) -> SequenceBatch<B> {
        let items: Vec<SequenceItem> = groups.into_iter().flatten().collect();
        Self::pad(&items, device)
    }
}

/// A dataset of groups of sequences of similar length, to keep padding small.
///
/// The sequences are sorted by length (ties in dataset order, or in a seeded random order
/// with [`LengthBuckets::with_seed`]) and cut into consecutive groups of `batch_size`; item
/// `i` of this dataset is group `i` (the last group may be smaller). Give it to Burn's data
/// loader with `batch_size(1)` and a [`SequenceBatcher`]: `shuffle(seed)` then shuffles whole
/// groups each epoch while every batch stays one group. The groups themselves are fixed;
/// rebuild them with another seed (cheap: lengths are kept) for new groups of equal-length
/// sequences, e.g. each epoch.
#[derive(Debug, Clone)]
pub struct LengthBuckets<D> {
    dataset: D,
    lengths: Vec<usize>,
    batch_size: usize,
    groups: Vec<Vec<usize>>,
}

impl<D: Dataset<SequenceItem>> LengthBuckets<D> {
    /// Groups the items of `dataset` (each read once, for its length) into groups of
    /// `batch_size`.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    pub fn new(dataset: D, batch_size: usize) -> Self {
        assert!(
            batch_size > 0,
            "LengthBuckets: batch_size must be at least 1"
        );
        let lengths: Vec<usize> = (0..dataset.len())
            .map(|i| dataset.get(i).map_or(0, |s| s.len()))
            .collect();
        let groups = length_groups(&lengths, batch_size, None);
        Self {
            dataset,
            lengths,
            batch_size,
            groups,
        }
    }

    /// Regroups with ties in length broken by a random order drawn from `seed`.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.groups = length_groups(&self.lengths, self.batch_size, Some(seed));
        self
    }

    /// The groups, as indices into the wrapped dataset.
    pub fn groups(&self) -> &[Vec<usize>] {
        &self.groups
    }

    /// The fraction of the padded `[group, max_len]` cells that are padding, over all groups.
    pub fn padding_fraction(&self) -> f64 {
        padding_of(
            self.groups
                .iter()
                .map(|g| g.iter().map(|&i| self.lengths[i]).collect::<Vec<_>>()),
        )
    }

    /// The wrapped dataset.
    pub fn inner(&self) -> &D {
        &self.dataset
    }
}

impl<D: Dataset<SequenceItem>> Dataset<Vec<SequenceItem>> for LengthBuckets<D> {
    fn get(&self, index: usize) -> Option<Vec<SequenceItem>> {
        self.groups
            .get(index)?
            .iter()
            .map(|&i| self.dataset.get(i))
            .collect()
    }

    fn len(&self) -> usize {
        self.groups.len()
    }
}

/// Indices `0..lengths.len()` sorted by length (ties: index order, or a random order drawn
/// from `seed`), cut into groups of `batch_size`.
fn length_groups(lengths: &[usize], batch_size: usize, seed: Option<u64>) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    if let Some(seed) = seed {
        order.shuffle(&mut StdRng::seed_from_u64(seed));
    }
    order.sort_by_key(|&i| lengths[i]);
    order.chunks(batch_size).map(<[usize]>::to_vec).collect()
}

/// The fraction of padding when `lengths`, in this order, are cut into consecutive batches of
/// `batch_size` and each batch is padded to its longest sequence: the baseline for
/// [`LengthBuckets::padding_fraction`].
///
/// # Panics
/// If `batch_size` is 0.
pub fn padding_fraction(lengths: &[usize], batch_size: usize) -> f64 {
    assert!(
        batch_size > 0,
        "padding_fraction: batch_size must be at least 1"
    );
    padding_of(lengths.chunks(batch_size).map(<[usize]>::to_vec))
}

fn padding_of(batches: impl Iterator<Item = Vec<usize>>) -> f64 {
    let (mut padding, mut cells) = (0usize, 0usize);
    for batch in batches {
        let max = batch.iter().copied().max().unwrap_or(0);
        cells += max * batch.len();
        padding += max * batch.len() - batch.iter().sum::<usize>();
    }
    if cells == 0 {
        0.0
    } else {
        padding as f64 / cells as f64
    }
}

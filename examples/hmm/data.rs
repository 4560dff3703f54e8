//! Genome in: the first record of a FASTA file and a CDS BED annotation, read with
//! `diffbio-burn-data`'s `sequences` module; the genome cut into training and held-out
//! windows; burn's data loaders over them.
//!
//! The windows carry no labels: the annotation is kept apart ([`Genome::strand`]) and is
//! used for nothing but scoring.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, ensure};
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::InMemDataset;
use burn::prelude::*;
use diffbio_burn_data::sequences::{
    Alphabet, Intervals, LABEL_FORWARD, LABEL_NONE, SequenceBatch, SequenceBatcher, SequenceItem,
    label_sequences, read_fasta,
};

/// A genome (symbols `0..4` = A, C, G, T; other letters are an error naming the record and
/// base) and its per-base CDS annotation.
pub struct Genome {
    /// The genome sequence, unlabelled.
    pub sequence: SequenceItem,
    /// Per base: `1` a `+` CDS covers it (a row without a strand counts as `+`), `-1` a `-`
    /// CDS, `0` none; where CDS of both strands overlap the later row wins.
    pub strand: Vec<i8>,
    /// BED rows on this sequence.
    pub rows: usize,
}

impl Genome {
    /// Length in bases.
    pub fn len(&self) -> usize {
        self.sequence.len()
    }

    /// Whether each base is coding (a CDS of either strand covers it).
    pub fn coding(&self) -> Vec<bool> {
        self.strand.iter().map(|&s| s != 0).collect()
    }

    /// The fraction of A, C, G and T.
    pub fn composition(&self) -> [f64; 4] {
        let mut counts = [0usize; 4];
        self.sequence
            .symbols
            .iter()
            .for_each(|&s| counts[s as usize] += 1);
        counts.map(|c| c as f64 / self.len() as f64)
    }
}

/// Reads the first record of `fasta` and the rows of `bed` on it (rows on other sequences of
/// the FASTA are skipped; a row on a sequence the FASTA lacks, or running off its end, is an
/// error naming the BED file and line).
pub fn load(fasta: &Path, bed: &Path) -> Result<Genome> {
    let mut records = read_fasta(fasta, &Alphabet::dna())?;
    let intervals = Intervals::read_bed(bed)?;
    let name = records[0].name.clone();
    let rows = intervals
        .intervals
        .iter()
        .filter(|i| i.chrom == name)
        .count();
    ensure!(rows > 0, "{}: no rows for sequence {name}", bed.display());
    label_sequences(&mut records, &intervals)?;
    let mut sequence = records.swap_remove(0);
    let labels = sequence.labels.take().expect("labelled");
    let strand = labels
        .iter()
        .map(|&l| match l {
            LABEL_NONE => 0,
            LABEL_FORWARD => 1,
            _ => -1,
        })
        .collect();
    Ok(Genome {
        sequence,
        strand,
        rows,
    })
}

/// The genome's windows: all of them (to score the NLL of the whole genome), and the
/// training and held-out ones.
pub struct Windows {
    /// Every window, in genome order.
    pub all: Vec<SequenceItem>,
    /// The windows trained on.
    pub train: Vec<SequenceItem>,
    /// The held-out windows: every `heldout_every`-th window of the genome (burn-train's
    /// validation split).
    pub heldout: Vec<SequenceItem>,
}

/// The genome cut into consecutive windows of `chunk` bases (the last one shorter), every
/// `heldout_every`-th one (windows `heldout_every - 1`, `2 heldout_every - 1`, ...) held out
/// from training.
pub fn windows(genome: &Genome, chunk: usize, heldout_every: usize) -> Result<Windows> {
    ensure!(chunk >= 1, "--chunk must be at least 1");
    ensure!(heldout_every >= 2, "--heldout-every must be at least 2");
    let all: Vec<SequenceItem> = genome.sequence.chunks(chunk).collect();
    ensure!(
        all.len() >= heldout_every,
        "{} bp make {} windows of {chunk} bp; holding out every {heldout_every}-th needs at \
         least {heldout_every}",
        genome.len(),
        all.len()
    );
    let (mut train, mut heldout) = (Vec::new(), Vec::new());
    for (i, window) in all.iter().enumerate() {
        if (i + 1) % heldout_every == 0 {
            heldout.push(window.clone());
        } else {
            train.push(window.clone());
        }
    }
    Ok(Windows {
        all,
        train,
        heldout,
    })
}

/// Bases in `windows`.
pub fn bases(windows: &[SequenceItem]) -> usize {
    windows.iter().map(SequenceItem::len).sum()
}

/// A loader of minibatches of `batch_size` windows on backend `B` (padded by
/// `SequenceBatcher`, the true lengths passed along), reshuffled each epoch from `seed`
/// when given, in order otherwise.
pub fn loader<B: Backend>(
    windows: &[SequenceItem],
    batch_size: usize,
    seed: Option<u64>,
) -> Arc<dyn DataLoader<B, SequenceBatch<B>>> {
    let builder = DataLoaderBuilder::new(SequenceBatcher).batch_size(batch_size);
    let builder = match seed {
        Some(seed) => builder.shuffle(seed),
        None => builder,
    };
    builder.build(InMemDataset::new(windows.to_vec()))
}

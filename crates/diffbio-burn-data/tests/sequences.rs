//! `diffbio_burn_data::sequences` on NdArray<f32>: the shared chloroplast genome and CDS
//! annotation (`data/arabidopsis_chloroplast`, checked against the facts of
//! its README), padding and length buckets through Burn's data loader and the library's HMM,
//! and bad input written to temporary directories.

mod common;

use common::bundled;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, InMemDataset};
use burn::tensor::{ElementConversion, Int, Tensor};
use diffbio_burn::Reduction;
use diffbio_burn::hmm::HmmConfig;
use diffbio_burn_data::sequences::{
    Alphabet, Intervals, LABEL_FORWARD, LABEL_NONE, LABEL_REVERSE, LengthBuckets, PAD_SYMBOL,
    SequenceBatch, SequenceBatcher, SequenceItem, Strand, Unknown, chunk_sequences,
    interval_sequences, label_sequences, padding_fraction, read_fasta,
};

type B = NdArray<f32>;

fn chloroplast_fasta() -> PathBuf {
    bundled("arabidopsis_chloroplast/NC_000932.fa")
}

fn chloroplast_cds() -> PathBuf {
    bundled("arabidopsis_chloroplast/NC_000932.cds.bed")
}

fn ints<const D: usize>(t: Tensor<B, D, Int>) -> Vec<i64> {
    t.into_data().convert::<i64>().to_vec().unwrap()
}

/// The error message of a failed read.
fn message<T: std::fmt::Debug>(result: diffbio_burn_data::Result<T>) -> String {
    result.expect_err("expected an error").to_string()
}

/// The FASTA's sequence lines, upper-cased, read without the library.
fn raw_genome(path: &Path) -> Vec<u8> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('>'))
        .flat_map(|l| l.trim().bytes())
        .map(|b| b.to_ascii_uppercase())
        .collect()
}

#[test]
fn chloroplast_genome_and_cds_labels_match_the_data_readme() {
    let mut genome = read_fasta(chloroplast_fasta(), &Alphabet::dna()).unwrap();
    assert_eq!(genome.len(), 1);
    assert_eq!(genome[0].name, "NC_000932.1");
    assert_eq!(genome[0].len(), 154_478);
    let raw = raw_genome(&chloroplast_fasta());
    let expected: Vec<u32> = raw
        .iter()
        .map(|b| b"ACGT".iter().position(|x| x == b).unwrap() as u32)
        .collect();
    assert_eq!(genome[0].symbols, expected);
    let gc = genome[0]
        .symbols
        .iter()
        .filter(|&&s| s == 1 || s == 2)
        .count();
    assert!((gc as f64 / 154_478.0 - 0.3629).abs() < 5e-5, "GC {gc}");

    let cds = Intervals::read_bed(chloroplast_cds()).unwrap();
    assert_eq!(cds.intervals.len(), 104);
    let forward = cds
        .intervals
        .iter()
        .filter(|i| i.strand == Some(Strand::Forward))
        .count();
    assert_eq!((forward, cds.intervals.len() - forward), (36, 68));
    assert_eq!(cds.intervals[0].name.as_deref(), Some("psbA"));
    assert_eq!(cds.intervals[0].line, 1);

    label_sequences(&mut genome, &cds).unwrap();
    let labels = genome[0].labels.as_ref().unwrap();
    let coding = labels.iter().filter(|&&l| l != LABEL_NONE).count();
    assert_eq!(coding, 79_256, "CDS union of the README");
    // psbA (382-1444, -) is labelled reverse, the base before it non-coding.
    assert_eq!(labels[381], LABEL_NONE);
    assert!(labels[382..1444].iter().all(|&l| l == LABEL_REVERSE));
    // The later row wins where rows overlap: recompute the example's rule independently.
    let mut strand = vec![0u8; 154_478];
    for line in std::fs::read_to_string(chloroplast_cds()).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (a, b): (usize, usize) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        let label = if f[5] == "-" {
            LABEL_REVERSE
        } else {
            LABEL_FORWARD
        };
        strand[a..b].fill(label);
    }
    assert_eq!(labels, &strand);
}

#[test]
fn chunks_cut_the_genome_as_the_hmm_example_does() {
    let mut genome = read_fasta(chloroplast_fasta(), &Alphabet::dna()).unwrap();
    label_sequences(
        &mut genome,
        &Intervals::read_bed(chloroplast_cds()).unwrap(),
    )
    .unwrap();
    let chunks = chunk_sequences(&genome, 2000);
    assert_eq!(chunks.len(), 78);
    assert!(chunks[..77].iter().all(|c| c.len() == 2000));
    assert_eq!(chunks[77].len(), 478);
    assert_eq!(chunks[0].name, "NC_000932.1:0-2000");
    assert_eq!(chunks[77].name, "NC_000932.1:154000-154478");
    let joined: Vec<u32> = chunks.iter().flat_map(|c| c.symbols.clone()).collect();
    assert_eq!(joined, genome[0].symbols);
    let joined: Vec<u8> = chunks
        .iter()
        .flat_map(|c| c.labels.clone().unwrap())
        .collect();
    assert_eq!(&joined, genome[0].labels.as_ref().unwrap());

    // Batched as the example does: the last window padded with zeros, its length 478.
    let batch: SequenceBatch<B> = SequenceBatcher.batch(chunks[76..].to_vec(), &Default::default());
    assert_eq!(batch.observations.dims(), [2, 2000]);
    assert_eq!(ints(batch.lengths), vec![2000, 478]);
    let obs = ints(batch.observations);
    assert!(
        obs[2000 + 478..]
            .iter()
            .all(|&s| s == i64::from(PAD_SYMBOL))
    );
    assert_eq!(batch.labels.unwrap().dims(), [2, 2000]);
}

#[test]
fn cds_sequences_are_read_on_their_strand() {
    let alphabet = Alphabet::dna();
    let mut genome = read_fasta(chloroplast_fasta(), &alphabet).unwrap();
    let cds = Intervals::read_bed(chloroplast_cds()).unwrap();
    label_sequences(&mut genome, &cds).unwrap();
    let sequences = interval_sequences(&genome, &cds, &alphabet).unwrap();
    assert_eq!(sequences.len(), 104);
    // Labels describe each sequence in its own orientation: a CDS reads forward.
    let psba_labels = sequences[0].labels.as_ref().unwrap();
    assert!(psba_labels.iter().all(|&l| l == LABEL_FORWARD));
    // Independent: reverse-complement the raw letters of psbA (382-1444, -).
    let raw = raw_genome(&chloroplast_fasta());
    let complement = |b: &u8| match b {
        b'A' => b'T',
        b'C' => b'G',
        b'G' => b'C',
        _ => b'A',
    };
    let psba: Vec<u8> = raw[382..1444].iter().rev().map(complement).collect();
    let letters: Vec<u8> = sequences[0]
        .symbols
        .iter()
        .map(|&s| b"ACGT"[s as usize])
        .collect();
    assert_eq!(letters, psba);
    assert_eq!(sequences[0].name, "psbA NC_000932.1:382-1444(-)");
    assert_eq!(&letters[..3], b"ATG", "psbA starts with its start codon");
    assert!(
        [&b"TAA"[..], b"TAG", b"TGA"].contains(&&letters[letters.len() - 3..]),
        "psbA ends with a stop codon"
    );
    // A + strand CDS reads as the genome does (psbK, 7016-7202).
    let psbk = sequences
        .iter()
        .position(|s| s.name.starts_with("psbK"))
        .unwrap();
    assert_eq!(sequences[psbk].symbols, genome[0].symbols[7016..7202]);
}

#[test]
fn length_buckets_keep_padding_small_through_the_data_loader_and_hmm() {
    let alphabet = Alphabet::dna();
    let genome = read_fasta(chloroplast_fasta(), &alphabet).unwrap();
    let cds = Intervals::read_bed(chloroplast_cds()).unwrap();
    let sequences = interval_sequences(&genome, &cds, &alphabet).unwrap();
    let lengths: Vec<usize> = sequences.iter().map(SequenceItem::len).collect();
    let batch_size = 8;

    let unsorted = padding_fraction(&lengths, batch_size);
    let buckets = LengthBuckets::new(InMemDataset::new(sequences.clone()), batch_size);
    let bucketed = buckets.padding_fraction();
    println!(
        "padding of the 104 chloroplast CDS in batches of {batch_size}: file order {:.1} %, \
         length buckets {:.1} %",
        100.0 * unsorted,
        100.0 * bucketed
    );
    assert!(unsorted > 0.5, "file order pads {unsorted}");
    // 40 bp to 6.9 kb: the longest bucket's spread dominates what padding is left.
    assert!(
        bucketed < 0.3 && bucketed < unsorted / 2.5,
        "buckets pad {bucketed}"
    );
    assert_eq!(buckets.len(), 13);
    let unshuffled: Vec<String> = buckets
        .groups()
        .iter()
        .map(|g| sequences[g[0]].name.clone())
        .collect();

    // Burn's loader, one bucket per batch, shuffled: every sequence exactly once, and each
    // batch as padded as its bucket.
    let loader = DataLoaderBuilder::new(SequenceBatcher)
        .batch_size(1)
        .shuffle(3)
        .build(buckets);
    let hmm = HmmConfig::new(3, 4)
        .with_seed(5)
        .init::<B>(&Default::default());
    let mut seen = BTreeMap::new();
    let (mut cells, mut real, mut batched_nll) = (0usize, 0usize, 0.0f64);
    let mut first_names = Vec::new();
    for batch in loader.iter() {
        let [b, t] = batch.observations.dims();
        assert!(b <= batch_size);
        cells += b * t;
        real += ints(batch.lengths.clone()).iter().sum::<i64>() as usize;
        first_names.push(batch.names[0].clone());
        for name in &batch.names {
            *seen.entry(name.clone()).or_insert(0) += 1;
        }
        batched_nll += hmm
            .forward(batch.observations, Some(batch.lengths), Reduction::Sum)
            .into_scalar()
            .elem::<f64>();
    }
    let expected: BTreeMap<String, i32> = sequences.iter().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(s.name.clone()).or_insert(0) += 1;
        m
    });
    assert_eq!(seen, expected);
    assert_eq!(real, lengths.iter().sum::<usize>());
    assert!((1.0 - real as f64 / cells as f64 - bucketed).abs() < 1e-12);
    // The shuffle reorders whole buckets.
    assert_ne!(first_names, unshuffled);
    let (mut a, mut b) = (first_names.clone(), unshuffled);
    a.sort();
    b.sort();
    assert_eq!(a, b);

    // Padding contributes nothing to the HMM's likelihood: the batched NLL is the sum of
    // the NLLs of the sequences one by one.
    let single_nll: f64 = sequences
        .iter()
        .map(|s| {
            let batch: SequenceBatch<B> =
                SequenceBatcher.batch(vec![s.clone()], &Default::default());
            hmm.forward(batch.observations, None, Reduction::Sum)
                .into_scalar()
                .elem::<f64>()
        })
        .sum();
    assert!(
        (batched_nll - single_nll).abs() < 1e-4 * single_nll,
        "{batched_nll} vs {single_nll}"
    );
}

#[test]
fn batcher_pads_symbols_and_labels() {
    let items = vec![
        SequenceItem::new("a", vec![0, 1, 2]).with_labels(vec![1, 1, 2]),
        SequenceItem::new("b", vec![3]).with_labels(vec![2]),
    ];
    let batch: SequenceBatch<B> = SequenceBatcher.batch(items.clone(), &Default::default());
    assert_eq!(ints(batch.observations), vec![0, 1, 2, 3, 0, 0]);
    assert_eq!(ints(batch.lengths), vec![3, 1]);
    assert_eq!(ints(batch.labels.unwrap()), vec![1, 1, 2, 2, 0, 0]);
    assert_eq!(batch.names, ["a", "b"]);
    // Groups are concatenated.
    let batch: SequenceBatch<B> = SequenceBatcher.batch(
        vec![items.clone(), items[..1].to_vec()],
        &Default::default(),
    );
    assert_eq!(batch.observations.dims(), [3, 3]);
    // Unlabelled items give no labels.
    let plain = vec![SequenceItem::new("c", vec![1, 2])];
    let batch: SequenceBatch<B> = SequenceBatcher.batch(plain, &Default::default());
    assert!(batch.labels.is_none());
}

#[test]
fn seeded_buckets_regroup_equal_lengths() {
    let items: Vec<SequenceItem> = (0..40)
        .map(|i| SequenceItem::new(format!("s{i}"), vec![0; 10 + (i % 2)]))
        .collect();
    let a = LengthBuckets::new(InMemDataset::new(items.clone()), 4);
    let b = LengthBuckets::new(InMemDataset::new(items.clone()), 4).with_seed(1);
    let c = LengthBuckets::new(InMemDataset::new(items), 4).with_seed(2);
    for buckets in [&a, &b, &c] {
        assert_eq!(buckets.padding_fraction(), 0.0);
        let mut all: Vec<usize> = buckets.groups().iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..40).collect::<Vec<_>>());
    }
    assert_eq!(a.groups()[0], [0, 2, 4, 6]);
    assert_ne!(b.groups(), c.groups());
    assert_eq!(a.get(0).unwrap()[1].name, "s2");
}

#[test]
fn alphabets_case_unknown_letters_and_complement() {
    let dna = Alphabet::dna();
    assert_eq!(dna.symbol(b'g'), Some(2));
    assert_eq!(dna.symbol(b'N'), None);
    assert_eq!(dna.n_symbols(), 4);
    let with_n = Alphabet::dna().with_unknown(Unknown::Symbol);
    assert_eq!(with_n.symbol(b'N'), Some(4));
    assert_eq!(with_n.symbol(b'r'), Some(4));
    assert_eq!(with_n.symbol(b' '), None);
    assert_eq!(with_n.n_symbols(), 5);
    assert_eq!(with_n.complement(0), Some(3));
    assert_eq!(with_n.complement(4), Some(4));
    assert_eq!(Alphabet::new(b"ACDEFGHIKLMNPQRSTVWY").complement(0), None);

    let dir = tempfile::tempdir().unwrap();
    let fasta = dir.path().join("soft.fa");
    std::fs::write(&fasta, ">x desc\nacgtN\r\nAC\n\n>y\nR\n").unwrap();
    let items = read_fasta(&fasta, &with_n).unwrap();
    assert_eq!(items[0].name, "x");
    assert_eq!(items[0].symbols, [0, 1, 2, 3, 4, 0, 1]);
    assert_eq!(items[1].symbols, [4]);
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn gzip_fasta_reads_and_truncated_gzip_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..50)
        .map(|i| format!(">r{i}\n{}\n", "ACGTTGCA".repeat(40)))
        .collect();
    let compressed = gzip(text.as_bytes());
    let whole = dir.path().join("whole.fa.gz");
    std::fs::write(&whole, &compressed).unwrap();
    let items = read_fasta(&whole, &Alphabet::dna()).unwrap();
    assert_eq!(items.len(), 50);
    assert!(items.iter().all(|i| i.len() == 320));

    let cut = dir.path().join("cut.fa.gz");
    std::fs::write(&cut, &compressed[..compressed.len() / 2]).unwrap();
    let err = message(read_fasta(&cut, &Alphabet::dna()));
    assert!(err.contains("cut.fa.gz, record "), "{err}");
}

#[test]
fn fasta_errors_name_file_record_and_base() {
    let dir = tempfile::tempdir().unwrap();
    let fasta = dir.path().join("g.fa");
    std::fs::write(&fasta, ">chr\nACGT\n>two\nACGT\nACRT\n").unwrap();
    let err = message(read_fasta(&fasta, &Alphabet::dna()));
    assert!(
        err.contains("g.fa, record 2 (two), base 7: 'R' is not in the alphabet ACGT"),
        "{err}"
    );
    std::fs::write(&fasta, ">chr\nAC GT\n").unwrap();
    let err = message(read_fasta(&fasta, &Alphabet::dna()));
    assert!(err.contains("record 1 (chr), base 3: byte 0x20"), "{err}");
    std::fs::write(&fasta, "").unwrap();
    assert!(message(read_fasta(&fasta, &Alphabet::dna())).contains("g.fa: no FASTA record"));
    std::fs::write(&fasta, "ACGT\n").unwrap();
    let err = message(read_fasta(&fasta, &Alphabet::dna()));
    assert!(
        err.contains("g.fa, record 1: cannot read a FASTA header"),
        "{err}"
    );
    std::fs::write(&fasta, ">a\nACGT\n>empty\n>c\nA\n").unwrap();
    let err = message(read_fasta(&fasta, &Alphabet::dna()));
    assert!(
        err.contains("record 2 (empty): the record has no bases"),
        "{err}"
    );
    let missing = dir.path().join("missing.fa");
    assert!(message(read_fasta(&missing, &Alphabet::dna())).contains("missing.fa: cannot open"));
}

#[test]
fn bed_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let fasta = dir.path().join("g.fa");
    std::fs::write(&fasta, ">chr\n".to_string() + &"ACGT".repeat(25) + "\n").unwrap();
    let mut genome = read_fasta(&fasta, &Alphabet::dna()).unwrap();
    let bed = dir.path().join("cds.bed");
    let check = |text: &str, expected: &str, genome: &mut Vec<SequenceItem>| {
        std::fs::write(&bed, text).unwrap();
        let err = match Intervals::read_bed(&bed) {
            Err(e) => e.to_string(),
            Ok(intervals) => message(label_sequences(genome, &intervals)),
        };
        assert!(err.contains(expected), "{err:?} lacks {expected:?}");
    };
    let header = "track name=cds\n# comment\n";
    check(
        &format!("{header}chr\t0\t10\tg\t0\t+\nchr\t5\t200\tg\t0\t-\n"),
        "cds.bed, line 4 (chr:5-200): the interval runs off chr, which is 100 bp long",
        &mut genome,
    );
    check(
        &format!("{header}chrX\t0\t10\n"),
        "cds.bed, line 3 (chrX:0-10): unknown sequence \"chrX\"",
        &mut genome,
    );
    check(
        "chr\t0\t10\nchr\t30\t20\n",
        "cds.bed, line 2: start 30 is after end 20",
        &mut genome,
    );
    check(
        "chr\tx\t20\n",
        "cds.bed, line 1: column 2 (start) is not a non-negative integer",
        &mut genome,
    );
    check(
        "chr\t-5\t20\n",
        "cds.bed, line 1: column 2 (start)",
        &mut genome,
    );
    check(
        "chr\t0\n",
        "cds.bed, line 1: expected at least 3 tab-separated columns",
        &mut genome,
    );
    check(
        "chr\t0\t10\tg\t0\t*\n",
        "cds.bed, line 1: column 6 (strand) is \"*\"",
        &mut genome,
    );
    // Empty intervals label nothing but have no sequence.
    std::fs::write(&bed, "chr\t4\t4\n").unwrap();
    let intervals = Intervals::read_bed(&bed).unwrap();
    label_sequences(&mut genome, &intervals).unwrap();
    let err = message(interval_sequences(&genome, &intervals, &Alphabet::dna()));
    assert!(
        err.contains("line 1 (chr:4-4): the interval is empty"),
        "{err}"
    );
    // Truncated gzip BED.
    let gz = dir.path().join("cds.bed.gz");
    let text: String = (0..2000)
        .map(|i| format!("chr\t{}\t{}\n", i % 50, 50 + i % 50))
        .collect();
    let compressed = gzip(text.as_bytes());
    std::fs::write(&gz, &compressed[..compressed.len() - 20]).unwrap();
    let err = message(Intervals::read_bed(&gz));
    assert!(err.contains("cds.bed.gz, line "), "{err}");
}

#[test]
fn narrow_peak_summits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.narrowPeak");
    std::fs::write(
        &path,
        "track type=narrowPeak\nchrI\t20\t560\tpeak_1\t268\t.\t0\t0\t0\t218\n\
         chrI\t600\t700\tpeak_2\t1\t.\t0\t0\t0\t-1\n",
    )
    .unwrap();
    let peaks = Intervals::read_narrow_peak(&path).unwrap();
    assert_eq!(peaks.intervals[0].summit, Some(238));
    assert_eq!(peaks.intervals[0].line, 2);
    assert_eq!(peaks.intervals[1].summit, None);
    std::fs::write(&path, "chrI\t20\t560\tp\t1\t.\t0\t0\t0\t540\n").unwrap();
    let err = message(Intervals::read_narrow_peak(&path));
    assert!(
        err.contains("p.narrowPeak, line 1: column 10 (summit offset 540)"),
        "{err}"
    );
    std::fs::write(&path, "chrI\t20\t560\n").unwrap();
    let err = message(Intervals::read_narrow_peak(&path));
    assert!(
        err.contains("line 1: a narrowPeak row needs 10 columns"),
        "{err}"
    );
    // The real file reads whole.
    let real = Intervals::read_narrow_peak(bundled(
        "yeast_atac/hmmratac_yeast500k_bedpe_accessible_regions.narrowPeak",
    ))
    .unwrap();
    assert_eq!(real.intervals.len(), 1605);
    assert!(real.intervals.iter().all(|i| i.summit.is_some()));
}

//! `diffbio_burn_data::windows` on NdArray<f32>: one-hot windows and cut-site profiles checked
//! against an independent count on hand-made files, bigWig profiles from files written with
//! bigtools' writer, the shared yeast ATAC data (`data/yeast_atac`, checked
//! against the facts of its README and a direct scan of the fragment file), and bad input.

mod common;

use common::bundled;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bigtools::beddata::BedParserStreamingIterator;
use bigtools::{BigWigWrite, Value};
use burn::backend::NdArray;
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::Tensor;
use diffbio_burn_data::sequences::Intervals;
use diffbio_burn_data::windows::{
    Centre, CutSites, FragmentConfig, Genome, Policy, WindowBatch, WindowBatcher, WindowConfig,
    WindowDataset, WindowItem,
};

type B = NdArray<f32>;

fn floats<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

fn message<T: std::fmt::Debug>(result: diffbio_burn_data::Result<T>) -> String {
    result.expect_err("expected an error").to_string()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

// ---------------------------------------------------------------------------------------
// A hand-made genome and fragments, and the independent computations
// ---------------------------------------------------------------------------------------

/// Two chromosomes with lower case, `N` and an IUPAC code (`R`).
fn toy_chromosomes() -> Vec<(&'static str, String)> {
    let letters = b"ACGTacgtNRACGGTCAT";
    let make = |n: usize, step: usize| -> String {
        (0..n)
            .map(|i| letters[(i * step + 3) % letters.len()] as char)
            .collect()
    };
    vec![("chr1", make(64, 7)), ("chr2", make(40, 5))]
}

/// Deterministic fragments inside the toy chromosomes, plus one on `chrM`.
fn toy_fragments() -> Vec<(&'static str, usize, usize)> {
    let mut state = 12345u64;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % n
    };
    let mut fragments = Vec::new();
    for _ in 0..300 {
        let (chrom, len) = if next(3) == 0 {
            ("chr2", 40)
        } else {
            ("chr1", 64)
        };
        let start = next(len);
        let end = (start + 1 + next(20)).min(len);
        fragments.push((chrom, start, end));
    }
    fragments.insert(17, ("chrM", 0, 10));
    fragments
}

struct Toy {
    dir: tempfile::TempDir,
    genome: Arc<Genome>,
    fragments: PathBuf,
}

fn toy() -> Toy {
    let dir = tempfile::tempdir().unwrap();
    let fasta: String = toy_chromosomes()
        .iter()
        .map(|(name, seq)| format!(">{name} test\n{}\n{}\n", &seq[..30], &seq[30..]))
        .collect();
    let fasta_path = dir.path().join("toy.fa.gz");
    std::fs::write(&fasta_path, gzip(fasta.as_bytes())).unwrap();
    let text: String = toy_fragments()
        .iter()
        .map(|(c, a, b)| format!("{c}\t{a}\t{b}\tbarcode\t1\n"))
        .collect();
    let fragments = dir.path().join("fragments.tsv.gz");
    std::fs::write(&fragments, gzip(format!("# comment\n{text}").as_bytes())).unwrap();
    let genome = Arc::new(Genome::read_fasta(&fasta_path).unwrap());
    Toy {
        dir,
        genome,
        fragments,
    }
}

/// One-hot `[4, len]` of the letters `start..start + len`, computed from the letters.
fn expected_one_hot(letters: &str, start: usize, len: usize) -> Vec<f32> {
    let mut out = vec![0.0; 4 * len];
    for (i, letter) in letters[start..start + len].bytes().enumerate() {
        if let Some(k) = b"ACGT"
            .iter()
            .position(|&b| b == letter.to_ascii_uppercase())
        {
            out[k * len + i] = 1.0;
        }
    }
    out
}

/// Cut counts `[2, len]` at `start..start + len` of `chrom`, counted from the fragment list.
fn expected_profile(
    fragments: &[(&str, usize, usize)],
    chrom: &str,
    start: usize,
    len: usize,
    shifts: (i64, i64),
) -> Vec<f32> {
    let mut out = vec![0.0; 2 * len];
    for &(c, a, b) in fragments {
        if c != chrom {
            continue;
        }
        for (strand, cut) in [(0, a as i64 + shifts.0), (1, b as i64 - 1 + shifts.1)] {
            if cut >= start as i64 && cut < (start + len) as i64 {
                out[strand * len + (cut as usize - start)] += 1.0;
            }
        }
    }
    out
}

fn write_regions(dir: &Path, name: &str, text: &str) -> Intervals {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    if name.ends_with(".narrowPeak") {
        Intervals::read_narrow_peak(&path).unwrap()
    } else {
        Intervals::read_bed(&path).unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// Hand-made data
// ---------------------------------------------------------------------------------------

#[test]
fn one_hot_and_cut_profiles_match_an_independent_count() {
    let toy = toy();
    let chromosomes = toy_chromosomes();
    let fragments = toy_fragments();
    assert_eq!(toy.genome.names(), ["chr1", "chr2"]);
    assert_eq!(toy.genome.chrom_len("chr2"), Some(40));

    // Midpoints (BED) and summits (narrowPeak).
    let bed = write_regions(
        toy.dir.path(),
        "regions.bed",
        "chr1\t20\t40\nchr2\t10\t21\nchr1\t8\t20\n",
    );
    let peaks = write_regions(
        toy.dir.path(),
        "regions.narrowPeak",
        "chr1\t20\t40\tp\t0\t.\t0\t0\t0\t15\nchr2\t10\t21\tq\t0\t.\t0\t0\t0\t-1\n",
    );
    let (n, m) = (16, 8);
    for shifts in [(0, 0), (4, -5)] {
        let config = FragmentConfig::new()
            .with_plus_shift(shifts.0)
            .with_minus_shift(shifts.1)
            .with_unknown_chromosome(Policy::Skip);
        let (cuts, summary) =
            CutSites::from_fragments(&toy.fragments, &toy.genome, &config).unwrap();
        assert_eq!(summary.fragments, 300);
        assert_eq!(summary.skipped_unknown_chromosome.get("chrM"), Some(&1));
        let off = fragments
            .iter()
            .filter(|&&(c, _, _)| c != "chrM")
            .flat_map(|&(c, a, b)| {
                let len = if c == "chr1" { 64 } else { 40 };
                [a as i64 + shifts.0, b as i64 - 1 + shifts.1].map(|x| x < 0 || x >= len)
            })
            .filter(|&off| off)
            .count() as u64;
        assert_eq!(summary.cuts_off_chromosome, off);
        assert!(shifts == (0, 0) && off == 0 || shifts != (0, 0) && off > 0);
        let cuts = Arc::new(cuts);
        // Whole-chromosome profiles; past the end, zeros.
        for (name, seq) in &chromosomes {
            let len = seq.len();
            let all = cuts.profile(name, 0, len + 5).unwrap();
            let expected = expected_profile(&fragments, name, 0, len, shifts);
            assert_eq!(all[..len], expected[..len]);
            assert_eq!(all[len + 5..2 * len + 5], expected[len..]);
            assert!(
                all[len..len + 5]
                    .iter()
                    .chain(&all[2 * len + 5..])
                    .all(|&c| c == 0.0)
            );
        }

        for (regions, centres) in [(&bed, [30, 15]), (&peaks, [35, 15])] {
            let config = WindowConfig::new(n, m);
            let (dataset, summary) =
                WindowDataset::from_cut_sites(toy.genome.clone(), regions, cuts.clone(), &config)
                    .unwrap();
            assert_eq!(dataset.len(), regions.intervals.len());
            assert_eq!(summary.windows, dataset.len());
            for (i, &c) in centres.iter().enumerate() {
                let item = dataset.get(i).unwrap();
                let (chrom, letters) = &chromosomes[i];
                assert_eq!((item.chrom.as_str(), item.start), (*chrom, c - n / 2));
                assert_eq!(item.sequence, expected_one_hot(letters, c - n / 2, n));
                assert_eq!(
                    item.profiles,
                    expected_profile(&fragments, chrom, c - m / 2, m, shifts),
                    "{chrom} centred at {c}, shifts {shifts:?}"
                );
                assert!(!item.reverse);
            }
        }
    }
    // Unknown bases (N, R) are all-zero columns; lower case reads as upper case.
    let letters = &chromosomes[0].1;
    assert!(letters.contains('N') && letters.contains('R') && letters.contains('a'));
}

#[test]
fn midpoint_centre_ignores_summits() {
    let toy = toy();
    let (cuts, _) = CutSites::from_fragments(
        &toy.fragments,
        &toy.genome,
        &FragmentConfig::new().with_unknown_chromosome(Policy::Skip),
    )
    .unwrap();
    let peaks = write_regions(
        toy.dir.path(),
        "p.narrowPeak",
        "chr1\t20\t40\tp\t0\t.\t0\t0\t0\t15\n",
    );
    let config = WindowConfig::new(10, 4).with_centre(Centre::Midpoint);
    let (dataset, _) =
        WindowDataset::from_cut_sites(toy.genome.clone(), &peaks, Arc::new(cuts), &config).unwrap();
    assert_eq!(dataset.get(0).unwrap().start, 25);
    assert_eq!(dataset.region_line(0), Some(1));
}

#[test]
fn reverse_complement_and_batcher() {
    let toy = toy();
    let fragments = toy_fragments();
    let (cuts, _) = CutSites::from_fragments(
        &toy.fragments,
        &toy.genome,
        &FragmentConfig::new().with_unknown_chromosome(Policy::Skip),
    )
    .unwrap();
    let text: String = (0..32)
        .map(|i| format!("chr1\t{}\t{}\n", 10 + i, 20 + i))
        .collect();
    let regions = write_regions(toy.dir.path(), "many.bed", &text);
    let (n, m) = (16, 6);
    let (dataset, _) = WindowDataset::from_cut_sites(
        toy.genome.clone(),
        &regions,
        Arc::new(cuts),
        &WindowConfig::new(n, m),
    )
    .unwrap();

    // The reverse complement of a window is the one-hot of the reverse-complemented letters,
    // with the profiles reversed and strands swapped.
    let item = dataset.get(3).unwrap();
    let rc = item.reverse_complement();
    let letters = &toy_chromosomes()[0].1[item.start..item.start + n];
    let complemented: String = letters
        .chars()
        .rev()
        .map(|c| match c.to_ascii_uppercase() {
            'A' => 'T',
            'C' => 'G',
            'G' => 'C',
            'T' => 'A',
            _ => 'N',
        })
        .collect();
    assert_eq!(rc.sequence, expected_one_hot(&complemented, 0, n));
    let forward = expected_profile(&fragments, "chr1", item.start + (n - m) / 2, m, (0, 0));
    let swapped: Vec<f32> = forward[m..]
        .iter()
        .rev()
        .chain(forward[..m].iter().rev())
        .copied()
        .collect();
    assert_eq!(rc.profiles, swapped);
    assert!(rc.reverse);
    assert_eq!(rc.counts(), [item.counts()[1], item.counts()[0]]);
    assert_eq!(rc.reverse_complement(), item);

    // The batcher stacks items; counts are per-strand totals (or their log1p).
    let items: Vec<WindowItem> = (0..dataset.len())
        .map(|i| dataset.get(i).unwrap())
        .collect();
    let device = Default::default();
    let batch: WindowBatch<B> = WindowBatcher::new().batch(items.clone(), &device);
    assert_eq!(batch.sequence.dims(), [32, 4, n]);
    assert_eq!(batch.profiles.dims(), [32, 2, m]);
    assert_eq!(batch.counts.dims(), [32, 2]);
    let sequence = floats(batch.sequence);
    let profiles = floats(batch.profiles);
    let counts = floats(batch.counts);
    for (i, item) in items.iter().enumerate() {
        assert_eq!(sequence[i * 4 * n..(i + 1) * 4 * n], item.sequence[..]);
        assert_eq!(profiles[i * 2 * m..(i + 1) * 2 * m], item.profiles[..]);
        assert_eq!(counts[2 * i..2 * i + 2], item.counts()[..]);
    }
    let logged: WindowBatch<B> = WindowBatcher::new()
        .with_log1p_counts(true)
        .batch(items.clone(), &device);
    let logged = floats(logged.counts);
    assert!(
        logged
            .iter()
            .zip(&counts)
            .all(|(l, c)| (l - c.ln_1p()).abs() < 1e-6)
    );

    // Random reverse-complementing flips some items, not all, each either way round.
    let batcher = WindowBatcher::new().with_random_reverse_complement(9);
    let batch: WindowBatch<B> = batcher.batch(items.clone(), &device);
    let sequence = floats(batch.sequence);
    let mut flipped = 0;
    for (i, item) in items.iter().enumerate() {
        let got = &sequence[i * 4 * n..(i + 1) * 4 * n];
        if got == item.sequence.as_slice() {
            continue;
        }
        assert_eq!(got, item.reverse_complement().sequence.as_slice());
        flipped += 1;
    }
    assert!((6..=26).contains(&flipped), "{flipped} of 32 flipped");
}

#[test]
fn data_loader_batches_windows() {
    let toy = toy();
    let (cuts, _) = CutSites::from_fragments(
        &toy.fragments,
        &toy.genome,
        &FragmentConfig::new().with_unknown_chromosome(Policy::Skip),
    )
    .unwrap();
    let text: String = (0..10)
        .map(|i| format!("chr1\t{}\t{}\n", 10 + i, 30 + i))
        .collect();
    let regions = write_regions(toy.dir.path(), "ten.bed", &text);
    let (dataset, _) = WindowDataset::from_cut_sites(
        toy.genome.clone(),
        &regions,
        Arc::new(cuts),
        &WindowConfig::new(20, 10),
    )
    .unwrap();
    let loader = DataLoaderBuilder::new(WindowBatcher::new().with_random_reverse_complement(1))
        .batch_size(4)
        .shuffle(2)
        .build(dataset);
    let sizes: Vec<usize> = loader
        .iter()
        .map(|b: WindowBatch<B>| b.sequence.dims()[0])
        .collect();
    assert_eq!(sizes, [4, 4, 2]);
}

// ---------------------------------------------------------------------------------------
// bigWig
// ---------------------------------------------------------------------------------------

/// Writes a bigWig of `values` (`chrom, start, end, value`, sorted) with bigtools' writer.
fn write_bigwig(path: &Path, sizes: &[(&str, u32)], values: &[(&str, u32, u32, f32)]) {
    let sizes: HashMap<String, u32> = sizes.iter().map(|&(c, l)| (c.to_string(), l)).collect();
    let values: Vec<(String, Value)> = values
        .iter()
        .map(|&(c, start, end, value)| (c.to_string(), Value { start, end, value }))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let data = BedParserStreamingIterator::wrap_infallible_iter(values.into_iter(), false);
    BigWigWrite::create_file(path, sizes)
        .unwrap()
        .write(data, runtime)
        .unwrap();
}

#[test]
fn bigwig_profiles_are_read_per_strand() {
    let toy = toy();
    let dir = toy.dir.path();
    let sizes = [("chr1", 64), ("chr2", 40)];
    let plus = dir.join("plus.bw");
    let minus = dir.join("minus.bw");
    // Plus: a value per base on chr1 22..40 (position / 2), a run of 3.0 on chr2 0..40.
    let mut plus_values: Vec<(&str, u32, u32, f32)> = (22..40)
        .map(|p| ("chr1", p, p + 1, p as f32 / 2.0))
        .collect();
    plus_values.push(("chr2", 0, 40, 3.0));
    write_bigwig(&plus, &sizes, &plus_values);
    // Minus: stored negative, as some pipelines do; chr1 28..31 only (no data elsewhere).
    write_bigwig(
        &minus,
        &sizes,
        &[("chr1", 28, 31, -2.5), ("chr2", 12, 14, -1.0)],
    );

    let regions = write_regions(dir, "r.bed", "chr1\t20\t40\nchr2\t10\t20\n");
    let (n, m) = (16, 8);
    let (dataset, summary) = WindowDataset::from_bigwigs(
        toy.genome.clone(),
        &regions,
        &plus,
        &minus,
        &WindowConfig::new(n, m),
    )
    .unwrap();
    assert_eq!(summary.windows, 2);
    // chr1: centre 30, output 26..34.
    let item = dataset.get(0).unwrap();
    let mut expected = vec![0.0; 2 * m];
    for (j, p) in (26..34).enumerate() {
        expected[j] = p as f32 / 2.0;
        if (28..31).contains(&p) {
            expected[m + j] = 2.5;
        }
    }
    assert_eq!(item.profiles, expected);
    assert_eq!(
        item.sequence,
        expected_one_hot(&toy_chromosomes()[0].1, 22, n)
    );
    // chr2: centre 15, output 11..19.
    let item = dataset.get(1).unwrap();
    let mut expected = vec![3.0; m];
    expected.extend((11..19).map(|p| if (12..14).contains(&p) { 1.0 } else { 0.0 }));
    assert_eq!(item.profiles, expected);

    // A bigWig without the region's chromosome, a corrupt one, a missing one.
    let chr1_only = dir.join("chr1_only.bw");
    write_bigwig(&chr1_only, &[("chr1", 64)], &[("chr1", 0, 10, 1.0)]);
    let config = WindowConfig::new(n, m);
    let err = message(WindowDataset::from_bigwigs(
        toy.genome.clone(),
        &regions,
        &plus,
        &chr1_only,
        &config,
    ));
    assert!(
        err.contains("chr1_only.bw, region at line 2 of")
            && err.contains("no chromosome \"chr2\" in the bigWig"),
        "{err}"
    );
    let corrupt = dir.join("corrupt.bw");
    let mut bytes = std::fs::read(&plus).unwrap();
    bytes.truncate(bytes.len() / 3);
    std::fs::write(&corrupt, &bytes).unwrap();
    let err = message(WindowDataset::from_bigwigs(
        toy.genome.clone(),
        &regions,
        &corrupt,
        &minus,
        &config,
    ));
    assert!(err.contains("corrupt.bw"), "{err}");
    std::fs::write(&corrupt, b"not a bigwig at all, just text\n").unwrap();
    let err = message(WindowDataset::from_bigwigs(
        toy.genome.clone(),
        &regions,
        &corrupt,
        &minus,
        &config,
    ));
    assert!(err.contains("corrupt.bw: not a readable bigWig"), "{err}");
    let err = message(WindowDataset::from_bigwigs(
        toy.genome.clone(),
        &regions,
        dir.join("absent.bw"),
        &minus,
        &config,
    ));
    assert!(err.contains("absent.bw: cannot open"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Real data: yeast ATAC
// ---------------------------------------------------------------------------------------

#[test]
fn yeast_atac_windows_match_the_readme_and_a_direct_count() {
    let genome = Arc::new(Genome::read_fasta(bundled("yeast_atac/sacCer_R64.fa.gz")).unwrap());
    assert_eq!(genome.names().len(), 16);
    assert_eq!(genome.names()[0], "chrI");
    assert_eq!(genome.total_len(), 12_071_326);
    let fragments = bundled("yeast_atac/yeast_500k_SRR1822137.bedpe.gz");
    let peaks = Intervals::read_narrow_peak(bundled(
        "yeast_atac/hmmratac_yeast500k_bedpe_accessible_regions.narrowPeak",
    ))
    .unwrap();

    // Unshifted: the README's counts (467,908 fragments, 16,876 on chrM; cuts outside chrXII
    // counted with awk: 545,062).
    let config = FragmentConfig::new().with_unknown_chromosome(Policy::Skip);
    let (cuts, summary) = CutSites::from_fragments(&fragments, &genome, &config).unwrap();
    assert_eq!(summary.fragments, 467_908 - 16_876);
    assert_eq!(
        summary
            .skipped_unknown_chromosome
            .into_iter()
            .collect::<Vec<_>>(),
        [("chrM".to_string(), 16_876)]
    );
    assert_eq!(summary.cuts_off_chromosome, 0);
    let outside_xii: u64 = genome
        .names()
        .iter()
        .filter(|n| *n != "chrXII")
        .map(|n| cuts.totals(n).unwrap().iter().sum::<u64>())
        .sum();
    assert_eq!(outside_xii, 545_062);
    // chrM is an error by default.
    let err = message(CutSites::from_fragments(
        &fragments,
        &genome,
        &FragmentConfig::new(),
    ));
    assert!(
        err.contains("yeast_500k_SRR1822137.bedpe.gz, line ")
            && err.contains("unknown chromosome \"chrM\""),
        "{err}"
    );

    // Tn5-shifted cuts, 1 kb windows on summits, 500 bp profiles.
    let config = FragmentConfig::new()
        .with_plus_shift(4)
        .with_minus_shift(-5)
        .with_unknown_chromosome(Policy::Skip);
    let (cuts, summary) = CutSites::from_fragments(&fragments, &genome, &config).unwrap();
    let counted: u64 = genome
        .names()
        .iter()
        .map(|n| cuts.totals(n).unwrap().iter().sum::<u64>())
        .sum();
    assert_eq!(counted + summary.cuts_off_chromosome, 2 * summary.fragments);
    let (n, m) = (1000, 500);
    let window = WindowConfig::new(n, m);
    // Default policy: the first peak's window (chrI, summit 238) runs off chrI.
    let err = message(WindowDataset::from_cut_sites(
        genome.clone(),
        &peaks,
        Arc::new(cuts.clone()),
        &window,
    ));
    assert!(
        err.contains(
            "hmmratac_yeast500k_bedpe_accessible_regions.narrowPeak, line 2 (chrI:20-560)"
        ) && err.contains("window -262..738 centred at 238 runs off chrI"),
        "{err}"
    );
    let window = window.with_off_chromosome(Policy::Skip);
    // 46 peaks (lines 417-462) are on chrM, which the genome lacks.
    let err = message(WindowDataset::from_cut_sites(
        genome.clone(),
        &peaks,
        Arc::new(cuts.clone()),
        &window,
    ));
    assert!(
        err.contains("narrowPeak, line 417 (chrM:2300-2390): unknown chromosome \"chrM\""),
        "{err}"
    );
    let window = window.with_unknown_chromosome(Policy::Skip);
    let (dataset, summary) =
        WindowDataset::from_cut_sites(genome.clone(), &peaks, Arc::new(cuts), &window).unwrap();
    println!(
        "yeast: {} windows; skipped: {} off a chromosome (lines {:?}), {} on chrM",
        summary.windows,
        summary.skipped_off_chromosome.len(),
        summary.skipped_off_chromosome,
        summary.skipped_unknown_chromosome.len()
    );
    assert_eq!(summary.skipped_unknown_chromosome.len(), 46);
    assert_eq!(summary.skipped_unknown_chromosome[0], 417);
    assert!(summary.skipped_off_chromosome.contains(&2));
    assert_eq!(
        summary.windows
            + summary.skipped_off_chromosome.len()
            + summary.skipped_unknown_chromosome.len(),
        1605
    );

    // A direct count: scan the fragment file for a sample of windows.
    let sample: Vec<usize> = (0..dataset.len()).step_by(97).collect();
    let items: Vec<WindowItem> = sample.iter().map(|&i| dataset.get(i).unwrap()).collect();
    let mut direct: Vec<Vec<f32>> = vec![vec![0.0; 2 * m]; items.len()];
    let reader = BufReader::new(flate2::read::GzDecoder::new(
        std::fs::File::open(&fragments).unwrap(),
    ));
    for line in reader.lines() {
        let line = line.unwrap();
        let f: Vec<&str> = line.split('\t').collect();
        let (a, b): (i64, i64) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        for (item, profile) in items.iter().zip(&mut direct) {
            if item.chrom != f[0] {
                continue;
            }
            let out = (item.start + (n - m) / 2) as i64;
            for (strand, cut) in [(0, a + 4), (1, b - 1 - 5)] {
                if (out..out + m as i64).contains(&cut) {
                    profile[strand * m + (cut - out) as usize] += 1.0;
                }
            }
        }
    }
    let mut total = 0.0;
    for (item, profile) in items.iter().zip(&direct) {
        assert_eq!(&item.profiles, profile, "{}:{}", item.chrom, item.start);
        total += profile.iter().sum::<f32>();
        // One-hot: exactly one channel per base (the yeast genome is all A, C, G, T).
        for i in 0..n {
            let column: f32 = (0..4).map(|k| item.sequence[k * n + i]).sum();
            assert_eq!(column, 1.0);
        }
    }
    assert!(
        total > 100.0 * items.len() as f32,
        "peaks hold cuts: {total}"
    );
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

#[test]
fn bad_fragment_files_name_file_and_line() {
    let toy = toy();
    let dir = toy.dir.path();
    let skip = FragmentConfig::new().with_unknown_chromosome(Policy::Skip);
    let check = |name: &str, text: &str, expected: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let err = message(CutSites::from_fragments(&path, &toy.genome, &skip));
        assert!(err.contains(expected), "{err:?} lacks {expected:?}");
    };
    check(
        "off.bed",
        "chr1\t0\t10\nchr2\t30\t41\n",
        "off.bed, line 2 (chr2:30-41): the fragment runs off chr2, which is 40 bp long",
    );
    check(
        "order.bed",
        "chr1\t0\t10\n\nchr1\t30\t20\n",
        "order.bed, line 3: start 30 is after end 20",
    );
    check(
        "empty.bed",
        "chr1\t5\t5\n",
        "empty.bed, line 1 (chr1:5-5): empty fragment",
    );
    check(
        "columns.bed",
        "chr1 0 10\n",
        "columns.bed, line 1: expected at least 3 tab-separated columns",
    );
    let path = dir.join("unknown.bed");
    std::fs::write(&path, "chr1\t0\t10\nchrUn\t0\t10\n").unwrap();
    let err = message(CutSites::from_fragments(
        &path,
        &toy.genome,
        &FragmentConfig::new(),
    ));
    assert!(
        err.contains("unknown.bed, line 2: unknown chromosome \"chrUn\""),
        "{err}"
    );
    // Truncated gzip.
    let whole = std::fs::read(&toy.fragments).unwrap();
    let cut = dir.join("cut.tsv.gz");
    std::fs::write(&cut, &whole[..whole.len() - 30]).unwrap();
    let err = message(CutSites::from_fragments(&cut, &toy.genome, &skip));
    assert!(err.contains("cut.tsv.gz, line "), "{err}");
}

#[test]
fn region_policies_and_config_errors() {
    let toy = toy();
    let dir = toy.dir.path();
    let (cuts, _) = CutSites::from_fragments(
        &toy.fragments,
        &toy.genome,
        &FragmentConfig::new().with_unknown_chromosome(Policy::Skip),
    )
    .unwrap();
    let cuts = Arc::new(cuts);
    let regions = write_regions(
        dir,
        "regions.bed",
        "track name=x\nchr1\t20\t40\nchr1\t0\t6\nchrX\t0\t10\nchr2\t30\t40\n",
    );
    let build = |config: &WindowConfig| {
        WindowDataset::from_cut_sites(toy.genome.clone(), &regions, cuts.clone(), config)
    };
    let err = message(build(&WindowConfig::new(16, 8)));
    assert!(
        err.contains("regions.bed, line 3 (chr1:0-6): the 16 bp window -5..11 centred at 3 runs off chr1, which is 64 bp long"),
        "{err}"
    );
    let err = message(build(
        &WindowConfig::new(16, 8).with_off_chromosome(Policy::Skip),
    ));
    assert!(
        err.contains("regions.bed, line 4 (chrX:0-10): unknown chromosome \"chrX\""),
        "{err}"
    );
    let (dataset, summary) = build(
        &WindowConfig::new(16, 8)
            .with_off_chromosome(Policy::Skip)
            .with_unknown_chromosome(Policy::Skip),
    )
    .unwrap();
    assert_eq!(dataset.len(), 1);
    assert_eq!(summary.windows, 1);
    assert_eq!(summary.skipped_off_chromosome, [3, 5]);
    assert_eq!(summary.skipped_unknown_chromosome, [4]);
    assert_eq!(dataset.region_line(0), Some(2));
    for (n, m) in [(16, 7), (8, 16), (0, 0)] {
        let err = message(build(&WindowConfig::new(n, m)));
        assert!(
            err.contains(&format!(
                "regions.bed, window configuration: input_len {n} and output_len {m}"
            )),
            "{err}"
        );
    }
    // Cut sites of another genome.
    let other = dir.join("other.fa");
    std::fs::write(&other, ">chr1\nACGT\n").unwrap();
    let other = Arc::new(Genome::read_fasta(&other).unwrap());
    let err = message(WindowDataset::from_cut_sites(
        other,
        &regions,
        cuts.clone(),
        &WindowConfig::new(2, 2),
    ));
    assert!(
        err.contains("other.fa: the cut sites were counted on a genome with other chromosomes"),
        "{err}"
    );
}

#[test]
fn genome_errors_name_file_record_and_base() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.fa");
    std::fs::write(&path, ">a\nACGT\n>b\nACGTNNRY\nAC-T\n").unwrap();
    let err = message(Genome::read_fasta(&path));
    assert!(
        err.contains("g.fa, record 2 (b), base 11: '-' is not a base"),
        "{err}"
    );
    std::fs::write(&path, ">a\nACGT\n>a\nACGT\n").unwrap();
    let err = message(Genome::read_fasta(&path));
    assert!(
        err.contains("record 2 (a): a second record with this name"),
        "{err}"
    );
    let gz = dir.path().join("g.fa.gz");
    let compressed = gzip(
        &b">a\n"
            .iter()
            .chain(&[b'A'; 5000])
            .copied()
            .collect::<Vec<_>>(),
    );
    std::fs::write(&gz, &compressed[..compressed.len() - 10]).unwrap();
    let err = message(Genome::read_fasta(&gz));
    assert!(err.contains("g.fa.gz, record 1"), "{err}");
}

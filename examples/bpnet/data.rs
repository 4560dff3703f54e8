//! Windows in: real yeast ATAC-seq (Tn5 cuts around accessible regions, GC-matched
//! background, a chromosome split) read with `diffbio-burn-data`, or seeded synthetic
//! footprints for the smoke tests; burn's data loaders over them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::{Dataset, InMemDataset};
use burn::prelude::*;
use diffbio_burn_data::background::{BackgroundConfig, gc_fraction, gc_matched_background};
use diffbio_burn_data::intervals::{Interval, Intervals};
use diffbio_burn_data::windows::{
    CutSites, FragmentConfig, Genome, Policy, WindowBatcher, WindowConfig, WindowDataset,
    WindowItem, base_code,
};
use rand::distr::Distribution as _;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::LogNormal;
use serde::{Deserialize, Serialize};

use crate::model::BpnetBatch;

/// Where the windows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Yeast ATAC-seq fragments, accessible regions and genome (bundled by default).
    Yeast,
    /// Seeded synthetic footprints of three planted motifs (the smoke tests).
    Synthetic,
}

/// How the windows are made (saved in `config.json`).
#[derive(Config, Debug)]
pub struct DataConfig {
    /// `yeast` (real ATAC-seq) or `synthetic`.
    #[config(default = "Source::Yeast")]
    pub data: Source,
    /// Length of the predicted profile (bp); the input is `2 × trimming` longer.
    #[config(default = 500)]
    pub output_len: usize,
    /// Chromosomes held out for validation (comma-separated).
    #[config(default = "String::from(\"chrII,chrIII\")")]
    pub valid_chroms: String,
    /// Chromosomes held out for the test metrics (comma-separated).
    #[config(default = "String::from(\"chrIV,chrV\")")]
    pub test_chroms: String,
    /// Regions no window may overlap, `chrom:start-end` (0-based, half-open),
    /// comma-separated: by default the rDNA repeat on chrXII, which piles up reads.
    #[config(default = "String::from(\"chrXII:440000-500000\")")]
    pub exclude: String,
    /// Tn5 shift of the left (`+`) cut: ChromBPNet's `+4`.
    #[config(default = 4)]
    pub plus_shift: i64,
    /// Tn5 shift of the right (`-`) cut, from the fragment's last base: ChromBPNet's `-5`.
    #[config(default = -5)]
    pub minus_shift: i64,
    /// GC-matched background windows (label 0) per peak window, in each split.
    #[config(default = 0.5)]
    pub background_ratio: f64,
    /// Synthetic data only: number of regions.
    #[config(default = 2000)]
    pub synthetic_regions: usize,
    /// Synthetic data only: fraction of regions that are peaks.
    #[config(default = 0.75)]
    pub synthetic_peak_fraction: f64,
}

/// The input files of the yeast data.
#[derive(Debug, Clone)]
pub struct YeastFiles {
    /// Paired-end fragments, `chrom start end` (plain or gzip).
    pub fragments: PathBuf,
    /// Accessible regions (narrowPeak; windows centre on the summits).
    pub peaks: PathBuf,
    /// The genome (FASTA, plain or gzip).
    pub genome: PathBuf,
}

/// One window and whether it is a peak.
#[derive(Debug, Clone)]
pub struct LabelledWindow {
    /// Sequence and profiles.
    pub window: WindowItem,
    /// 1 peak, 0 background.
    pub label: i64,
}

impl LabelledWindow {
    /// The window's total count (both strands).
    pub fn total(&self) -> f64 {
        self.window.profiles.iter().map(|&c| f64::from(c)).sum()
    }
}

/// Training, validation and test windows, and what making them found.
pub struct Splits {
    /// Training windows (peaks and background).
    pub train: Vec<LabelledWindow>,
    /// Validation windows: burn-train's validation set.
    pub valid: Vec<LabelledWindow>,
    /// Test windows: the final metrics.
    pub test: Vec<LabelledWindow>,
    /// Facts about the data, for the metrics file.
    pub facts: Vec<(String, String)>,
    /// The genome, cut sites and regions the yeast windows came from (none for synthetic
    /// data), for the footprint check.
    pub genomic: Option<crate::footprint::Genomic>,
}

impl Splits {
    /// ChromBPNet's count loss weight: the median total count of the training peak windows
    /// divided by 10.
    pub fn chrombpnet_count_loss_weight(&self) -> f64 {
        let totals: Vec<f64> = peaks(&self.train).map(LabelledWindow::total).collect();
        crate::common::metrics::median(&totals) / 10.0
    }
}

/// The peak windows of a set.
pub fn peaks(windows: &[LabelledWindow]) -> impl Iterator<Item = &LabelledWindow> {
    windows.iter().filter(|w| w.label == 1)
}

/// Comma-separated names.
fn names(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Parses `--exclude` (`chrom:start-end`, comma-separated) into intervals.
pub fn parse_regions(list: &str) -> Result<Intervals> {
    let mut intervals = Vec::new();
    for (i, region) in names(list).iter().enumerate() {
        let parsed = region.split_once(':').and_then(|(chrom, range)| {
            let (a, b) = range.split_once('-')?;
            Some((chrom, a.parse::<usize>().ok()?, b.parse::<usize>().ok()?))
        });
        let Some((chrom, start, end)) = parsed.filter(|(_, a, b)| a < b) else {
            bail!("--exclude {region:?}: expected chrom:start-end with start < end");
        };
        intervals.push(Interval {
            chrom: chrom.to_string(),
            start,
            end,
            name: None,
            strand: None,
            summit: None,
            line: i + 1,
        });
    }
    Ok(Intervals {
        path: PathBuf::from("--exclude"),
        intervals,
    })
}

fn overlaps(a: &Interval, start: usize, end: usize, exclude: &Intervals) -> bool {
    exclude
        .intervals
        .iter()
        .any(|e| e.chrom == a.chrom && e.start < end && start < e.end)
}

/// The yeast windows: Tn5 cuts of `files.fragments` (shifted as `config` says; fragments on
/// chromosomes the genome lacks, chrM, are skipped and counted), one window per accessible
/// region centred on its summit (those on chromosomes the genome lacks, running off their
/// chromosome or overlapping `--exclude` are left out and counted), split by chromosome, each split with its own
/// GC-matched background windows.
pub fn yeast(
    files: &YeastFiles,
    config: &DataConfig,
    input_len: usize,
    seed: u64,
) -> Result<Splits> {
    let output_len = config.output_len;
    let genome = Arc::new(Genome::read_fasta(&files.genome)?);
    let fragments = FragmentConfig::new()
        .with_plus_shift(config.plus_shift)
        .with_minus_shift(config.minus_shift)
        .with_unknown_chromosome(Policy::Skip);
    let (cuts, fragment_summary) = CutSites::from_fragments(&files.fragments, &genome, &fragments)?;
    let cuts = Arc::new(cuts);
    let mut regions = Intervals::read_narrow_peak(&files.peaks)?;
    let all_regions_read = regions.clone();
    let exclude = parse_regions(&config.exclude)?;
    for e in &exclude.intervals {
        ensure!(
            genome.chrom_index(&e.chrom).is_some(),
            "--exclude {}: no such chromosome in {}",
            e.chrom,
            files.genome.display()
        );
    }
    let all_regions = regions.intervals.len();
    // Regions on chromosomes the genome lacks (chrM here) have no sequence.
    regions
        .intervals
        .retain(|r| genome.chrom_index(&r.chrom).is_some());
    let unknown = all_regions - regions.intervals.len();
    let half = input_len / 2;
    regions.intervals.retain(|r| {
        let c = r.summit.unwrap_or(r.start + (r.end - r.start) / 2);
        let start = c.saturating_sub(half);
        !overlaps(r, start, start + input_len, &exclude)
    });
    let excluded = all_regions - unknown - regions.intervals.len();

    let (valid_chroms, test_chroms) = (names(&config.valid_chroms), names(&config.test_chroms));
    for chrom in valid_chroms.iter().chain(&test_chroms) {
        ensure!(
            genome.chrom_index(chrom).is_some(),
            "held-out chromosome {chrom} is not in {}",
            files.genome.display()
        );
    }
    let window_config = WindowConfig::new(input_len, output_len).with_off_chromosome(Policy::Skip);
    let mut facts = vec![
        ("fragments".into(), fragment_summary.fragments.to_string()),
        (
            "fragments_skipped_unknown_chromosome".into(),
            fragment_summary
                .skipped_unknown_chromosome
                .values()
                .sum::<u64>()
                .to_string(),
        ),
        ("regions".into(), all_regions.to_string()),
        ("regions_unknown_chromosome".into(), unknown.to_string()),
        ("regions_excluded".into(), excluded.to_string()),
    ];
    let mut split = |name: &str,
                     keep: &dyn Fn(&str) -> bool,
                     salt: u64|
     -> Result<Vec<LabelledWindow>> {
        let chosen = Intervals {
            path: regions.path.clone(),
            intervals: regions
                .intervals
                .iter()
                .filter(|r| keep(&r.chrom))
                .cloned()
                .collect(),
        };
        let (peak_windows, summary) =
            WindowDataset::from_cut_sites(genome.clone(), &chosen, cuts.clone(), &window_config)?;
        // Background windows must keep the full input window on the chromosome, so draw
        // them around the peaks that got a window.
        let placed = Intervals {
            path: chosen.path.clone(),
            intervals: chosen
                .intervals
                .iter()
                .filter(|r| !summary.skipped_off_chromosome.contains(&r.line))
                .cloned()
                .collect(),
        };
        let background_config = BackgroundConfig::new(input_len)
            .with_ratio(config.background_ratio)
            .with_seed(seed ^ salt);
        let (background, drawn) =
            gc_matched_background(&genome, &placed, &exclude, &background_config)?;
        let (background_windows, _) = WindowDataset::from_cut_sites(
            genome.clone(),
            &background,
            cuts.clone(),
            &window_config,
        )?;
        facts.push((
            format!("{name}_peak_windows"),
            peak_windows.len().to_string(),
        ));
        facts.push((
            format!("{name}_peaks_off_chromosome"),
            summary.skipped_off_chromosome.len().to_string(),
        ));
        facts.push((
            format!("{name}_background_windows"),
            drawn.windows.to_string(),
        ));
        facts.push((
            format!("{name}_gc_peaks_vs_background"),
            format!("{:.4} vs {:.4}", drawn.peak_gc, drawn.background_gc),
        ));
        let mut windows = labelled(&peak_windows, 1);
        windows.extend(labelled(&background_windows, 0));
        Ok(windows)
    };
    let train = split(
        "train",
        &|c| !valid_chroms.iter().chain(&test_chroms).any(|h| h == c),
        1,
    )?;
    let valid = split("valid", &|c| valid_chroms.iter().any(|h| h == c), 2)?;
    let test = split("test", &|c| test_chroms.iter().any(|h| h == c), 3)?;
    ensure!(
        peaks(&train).next().is_some()
            && peaks(&valid).next().is_some()
            && peaks(&test).next().is_some(),
        "every split needs peak windows: check --valid-chroms and --test-chroms"
    );
    Ok(Splits {
        train,
        valid,
        test,
        facts,
        genomic: Some(crate::footprint::Genomic {
            genome,
            cuts,
            regions: all_regions_read,
            exclude,
        }),
    })
}

fn labelled(dataset: &WindowDataset, label: i64) -> Vec<LabelledWindow> {
    (0..dataset.len())
        .map(|i| LabelledWindow {
            window: dataset.get(i).expect("index in range"),
            label,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Synthetic footprints
// ---------------------------------------------------------------------------------------

/// A planted motif: consensus (IUPAC `N` = any base), footprint spread (bp), read strength.
pub struct Motif {
    /// The consensus sequence.
    pub consensus: &'static str,
    /// Standard deviation (bp) of the read pile-up beside a site.
    pub spread: f64,
    /// Height of the pile-up, and the boost of the total count.
    pub strength: f64,
}

/// The motifs of the synthetic data.
pub const MOTIFS: [Motif; 3] = [
    Motif {
        consensus: "GATAAG",
        spread: 3.0,
        strength: 1.0,
    },
    Motif {
        consensus: "TGACTCA",
        spread: 6.0,
        strength: 2.0,
    },
    Motif {
        consensus: "CCGCGNGGNGGCAG",
        spread: 10.0,
        strength: 3.0,
    },
];

/// Background base probabilities (A, C, G, T) of the synthetic data, GC 42 %.
pub const BACKGROUND: [f64; 4] = [0.29, 0.21, 0.21, 0.29];

/// The PWM of a consensus: 85 % on the consensus base, the rest spread by background
/// frequency; `N` columns are background.
pub fn pwm(consensus: &str) -> Vec<[f64; 4]> {
    consensus
        .bytes()
        .map(|b| {
            let Some(k) = base_code(b).filter(|&k| k < 4) else {
                return BACKGROUND;
            };
            let k = usize::from(k);
            let mut column = BACKGROUND.map(|p| 0.15 * p / (1.0 - BACKGROUND[k]));
            column[k] = 0.85;
            column
        })
        .collect()
}

/// Seeded synthetic windows: background DNA; peaks get one to three planted motifs near the
/// centre, each leaving a strand-specific footprint (`+` reads pile up just upstream of the
/// site, `-` reads just downstream); totals log-normal, reads drawn multinomially; non-peaks
/// have few reads on a flat profile. Split 70 / 15 / 15 at random.
pub fn synthetic(config: &DataConfig, input_len: usize, seed: u64) -> Result<Splits> {
    let (lin, lout) = (input_len, config.output_len);
    ensure!(
        lout >= 32,
        "--output-len must be at least 32 for synthetic data"
    );
    ensure!(
        config.synthetic_regions >= 10,
        "--synthetic-regions must be at least 10"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let pwms: Vec<Vec<[f64; 4]>> = MOTIFS.iter().map(|m| pwm(m.consensus)).collect();
    let background = WeightedIndex::new(BACKGROUND).expect("valid weights");
    let offset = (lin - lout) / 2;
    let reach = 40.min(lout / 2 - 2);
    let mut all = Vec::with_capacity(config.synthetic_regions);
    for i in 0..config.synthetic_regions {
        let peak = rng.random_bool(config.synthetic_peak_fraction);
        let mut seq: Vec<usize> = (0..lin).map(|_| background.sample(&mut rng)).collect();
        let mut profile = vec![1.0f64; 2 * lout];
        let mut log_mean_total = 2.0; // non-peak: ~7 reads
        if peak {
            log_mean_total = 3.5;
            for _ in 0..rng.random_range(1..=3) {
                let m = rng.random_range(0..MOTIFS.len());
                let motif = &MOTIFS[m];
                let width = pwms[m].len();
                let centre = lin / 2;
                let start = rng.random_range(centre - reach..centre + reach - width.min(reach));
                let reverse = rng.random_bool(0.5);
                for (k, column) in pwms[m].iter().enumerate() {
                    let base = WeightedIndex::new(column)
                        .expect("valid PWM")
                        .sample(&mut rng);
                    let (pos, base) = if reverse {
                        (start + width - 1 - k, 3 - base)
                    } else {
                        (start + k, base)
                    };
                    seq[pos] = base;
                }
                let (plus_at, minus_at) = (
                    start as f64 - offset as f64 - 4.0,
                    (start + width) as f64 - offset as f64 + 4.0,
                );
                for j in 0..lout {
                    let x = j as f64;
                    let bump = |c: f64| {
                        motif.strength * 60.0 / motif.spread
                            * (-0.5 * ((x - c) / motif.spread).powi(2)).exp()
                    };
                    profile[j] += bump(plus_at);
                    profile[lout + j] += bump(minus_at);
                }
                log_mean_total += 0.35 * motif.strength;
            }
        }
        let total = LogNormal::new(log_mean_total, 0.5)
            .expect("valid log-normal")
            .sample(&mut rng)
            .round() as usize;
        let mut profiles = vec![0f32; 2 * lout];
        let draw = WeightedIndex::new(&profile).expect("positive profile");
        for _ in 0..total {
            profiles[draw.sample(&mut rng)] += 1.0;
        }
        let mut sequence = vec![0f32; 4 * lin];
        for (p, &b) in seq.iter().enumerate() {
            sequence[b * lin + p] = 1.0;
        }
        all.push(LabelledWindow {
            window: WindowItem {
                sequence,
                profiles,
                chrom: "synthetic".into(),
                start: i,
                reverse: false,
            },
            label: i64::from(peak),
        });
    }
    all.shuffle(&mut rng);
    let n_valid = (all.len() * 15 / 100).max(1);
    let test = all.split_off(all.len() - n_valid);
    let valid = all.split_off(all.len() - n_valid);
    Ok(Splits {
        facts: vec![("regions".into(), config.synthetic_regions.to_string())],
        train: all,
        valid,
        test,
        genomic: None,
    })
}

/// The windows of `config.data`.
pub fn load(
    files: &YeastFiles,
    config: &DataConfig,
    input_len: usize,
    seed: u64,
) -> Result<Splits> {
    match config.data {
        Source::Yeast => yeast(files, config, input_len, seed).with_context(|| {
            format!(
                "preparing the yeast windows from {}",
                files.fragments.display()
            )
        }),
        Source::Synthetic => synthetic(config, input_len, seed),
    }
}

/// GC fraction of each window's input sequence (from its one-hot columns).
pub fn window_gc(window: &WindowItem) -> f64 {
    let n = window.input_len();
    let codes: Vec<u8> = (0..n)
        .map(|i| {
            (0..4)
                .find(|&k| window.sequence[k * n + i] == 1.0)
                .unwrap_or(4) as u8
        })
        .collect();
    gc_fraction(&codes).unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------
// Loaders
// ---------------------------------------------------------------------------------------

/// Stacks labelled windows, reverse-complementing each with probability 1/2 when asked
/// (`WindowBatcher`: sequence reverse-complemented, the two cut-end channels swapped and
/// reversed).
pub struct BpnetBatcher {
    windows: WindowBatcher,
}

impl BpnetBatcher {
    /// With random reverse complements drawn from `seed`, or none.
    pub fn new(reverse_complement: Option<u64>) -> Self {
        let windows = WindowBatcher::new();
        Self {
            windows: match reverse_complement {
                Some(seed) => windows.with_random_reverse_complement(seed),
                None => windows,
            },
        }
    }
}

impl<B: Backend> Batcher<B, LabelledWindow, BpnetBatch<B>> for BpnetBatcher {
    fn batch(&self, items: Vec<LabelledWindow>, device: &B::Device) -> BpnetBatch<B> {
        let labels: Vec<i64> = items.iter().map(|w| w.label).collect();
        let n = labels.len();
        let windows = self
            .windows
            .batch(items.into_iter().map(|w| w.window).collect(), device);
        BpnetBatch {
            sequence: windows.sequence,
            profiles: windows.profiles,
            labels: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

/// A loader of minibatches of `batch_size` windows on backend `B`: shuffled each epoch and
/// reverse-complemented at random (from `seed`) for training, in order otherwise.
pub fn loader<B: Backend>(
    windows: &[LabelledWindow],
    batch_size: usize,
    train_seed: Option<(u64, bool)>,
) -> Arc<dyn DataLoader<B, BpnetBatch<B>>> {
    match train_seed {
        Some((seed, reverse_complement)) => DataLoaderBuilder::new(BpnetBatcher::new(
            reverse_complement.then_some(seed ^ 0x5eed),
        ))
        .batch_size(batch_size)
        .shuffle(seed)
        .build(InMemDataset::new(windows.to_vec())),
        None => DataLoaderBuilder::new(BpnetBatcher::new(None))
            .batch_size(batch_size)
            .build(InMemDataset::new(windows.to_vec())),
    }
}

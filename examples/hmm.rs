//! Gene finding on the *Arabidopsis thaliana* chloroplast genome with a structured HMM
//! trained, unsupervised, by gradient descent on `diffbio_burn::hmm`'s forward-algorithm
//! loss and decoded with Viterbi.
//!
//! ```sh
//! cargo run --release --example hmm
//! cargo run --release --example hmm -- --design codon     # the simple 7-state design
//! cargo run --release --features wgpu --example hmm -- --device wgpu
//! ```
//!
//! * **Data**: a FASTA genome (`noodles-fasta`; A/C/G/T only, case-insensitive) and a BED
//!   CDS annotation (`csv`; errors name the file and line), by default the bundled RefSeq
//!   NC_000932.1 (154,478 bp, 104 CDS rows covering 51.3 %). A base is *coding* when a CDS
//!   of either strand covers it.
//! * **Model** (`--design orf`, 35 states): one non-coding state `N` and, per strand, 17 gene
//!   states: a start codon `(A|G) T G`, a codon cycle `1 → 2 → 3 → 1` whose states remember
//!   just enough of the codon read so far (a `T` at position 1, then `TA` or `TG`) to make
//!   the stop codons `TAA`, `TAG`, `TGA` impossible in frame, and a stop codon, after which
//!   the path returns to `N`. Reverse-strand genes are the same graph read backwards, edges
//!   reversed and bases complemented. A gene is therefore an open reading frame, which is
//!   what sets coding DNA apart in an AT-rich genome (random sequence here meets an in-frame
//!   stop about every 15 codons), and the strand comes out of the path. The free parameters
//!   are the emission distributions of the 8 states per strand that may emit more than one
//!   base, the choices inside the graph (e.g. which base starts a codon, gene end vs. next
//!   codon) and the gene-entry rates; everything the graph forbids is a structural zero.
//!   `--design codon` (7 states: `N` plus a plain three-state codon cycle per strand) is
//!   kept for comparison: without the stop-codon structure its strand calls are wrong more
//!   often than right and its coding calls are far worse (see the README).
//! * **Parameterisation**: the design is a table of probabilities with zeros, turned into
//!   the library's `Hmm` module by `Hmm::from_probs` (zeros become `-inf` raw logits). The
//!   library attaches an exactly zero gradient to structural zeros, so Adam leaves them at
//!   `-inf` (no mask to re-apply; the smoke test checks the trained, saved model). Initial
//!   values use no annotation: emissions follow the genome's base composition restricted
//!   to what each state may emit, a gene ends after `--gene-codons` 300 codons on average
//!   and a non-coding stretch lasts `--noncoding-bp` 500 bp (textbook sizes, not fitted).
//! * **Training**: the genome cut into `--chunk` 2,000 bp windows (the last one shorter,
//!   passed with `lengths`), minibatches of 8, loss = summed NLL (`Hmm::forward`,
//!   `Reduction::Sum`), Adam with a cosine-annealed learning rate from 0.05 to 0, 30
//!   epochs (the NLL moves by less than 0.001 nats per base after epoch 10). On `ndarray`
//!   the library's host kernel (about 0.2 s an epoch here); on other devices the parallel
//!   scan (see `--algorithm`).
//! * **Decoding and metrics**: Viterbi over the whole genome as one sequence (host kernel,
//!   on every device); coding = any gene state. Per-base accuracy and F1 of "coding" against
//!   the annotation, for the whole genome and each half, next to the GC baseline (a base is
//!   coding when the GC fraction of the centred `--window` 120 bp exceeds the genome's) and
//!   to calling everything coding; the fraction of bases called and annotated coding whose
//!   strands agree; NLL per base before and after training and of the best i.i.d. model;
//!   `hmm_beats_gc_baseline: yes` when the HMM's accuracy and F1 both exceed the baseline's
//!   on the whole genome and on each half.
//!   The annotation is used for nothing but these scores. While choosing the design and the
//!   defaults we looked at the scores of the first half only; the second half was scored
//!   once, after they were fixed.
//! * **Outputs** in `--out`: `loss.png` (NLL per base by epoch), `tracks.png` (annotation,
//!   Viterbi call and GC call over the first 30 kb), `predicted_cds.bed` (the Viterbi gene
//!   calls), `model.mpk` + `config.json` (Burn recorder; reloaded, its NLL and Viterbi path
//!   must equal the trained model's), `metrics.txt`.
mod common;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail, ensure};
use burn::config::Config;
use burn::lr_scheduler::LrScheduler;
use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use clap::{Parser, ValueEnum};
use diffbio_burn::Reduction;
use diffbio_burn::hmm::{Hmm, HmmAlgorithm, HmmConfig};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use common::metrics::accuracy_f1;
use common::{DeviceArg, Metrics, bundled_data, create_dir, default_out_dir, epoch_bar};

/// Fit a gene-finding HMM to a genome and score its Viterbi path against a CDS annotation.
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
    /// State design of the HMM (see the program documentation).
    #[arg(long, value_enum, default_value_t = Design::Orf)]
    design: Design,
    /// Training epochs (passes over the genome's windows).
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Length (bp) of the training windows the genome is cut into.
    #[arg(long, default_value_t = 2000)]
    chunk: usize,
    /// Windows per minibatch.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Adam learning rate (on the raw logits).
    #[arg(long, default_value_t = 0.05)]
    lr: f64,
    /// Prior mean gene length in codons (sets the initial gene-end probability).
    #[arg(long, default_value_t = 300.0)]
    gene_codons: f64,
    /// Prior mean length (bp) of a non-coding stretch (sets the initial gene-start
    /// probability).
    #[arg(long, default_value_t = 500.0)]
    noncoding_bp: f64,
    /// Width (bp) of the GC-content window of the baseline.
    #[arg(long, default_value_t = 120)]
    window: usize,
    /// Random seed (minibatch order).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Forward-backward implementation for training (see `diffbio_burn::hmm::HmmAlgorithm`).
    #[arg(long, value_enum, default_value_t = AlgorithmArg::Auto)]
    algorithm: AlgorithmArg,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceArg::Ndarray)]
    device: DeviceArg,
    /// Output directory.
    #[arg(long, default_value_os_t = default_out_dir("hmm"))]
    out: PathBuf,
}

/// The state designs of the gene model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
enum Design {
    /// 7 states: non-coding plus a three-state codon cycle per strand.
    Codon,
    /// 35 states: non-coding plus, per strand, a start codon, a codon cycle that cannot read
    /// an in-frame stop codon, and a stop codon (genes are open reading frames).
    Orf,
}

/// The `--algorithm` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AlgorithmArg {
    /// The library's choice (`HmmAlgorithm::Auto`): the host kernel on `ndarray`, the
    /// parallel scan on other devices for these 2 kb windows.
    Auto,
    /// `HmmAlgorithm::Host` (on a GPU: reads the parameters and windows back every step).
    Host,
    /// `HmmAlgorithm::Sequential`: one batched tensor step per base.
    Sequential,
    /// `HmmAlgorithm::ParallelScan`: `O(log T)` batched steps.
    ParallelScan,
}

impl AlgorithmArg {
    fn resolve<B: Backend>(self, hmm: &Hmm<B>, len: usize) -> HmmAlgorithm {
        match self {
            AlgorithmArg::Auto => hmm.resolved_algorithm(len),
            AlgorithmArg::Host => HmmAlgorithm::Host,
            AlgorithmArg::Sequential => HmmAlgorithm::Sequential,
            AlgorithmArg::ParallelScan => HmmAlgorithm::ParallelScan,
        }
    }
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

/// Per-base CDS annotation: `strand[i]` is `1` (a `+` CDS covers base `i`), `-1` (`-`) or
/// `0` (no CDS); a row without a strand column counts as `+`, and where CDS of both strands
/// overlap the later row wins. Rows of other sequences than `chrom` are skipped.
struct Annotation {
    strand: Vec<i8>,
    rows: usize,
}

impl Annotation {
    fn coding(&self) -> Vec<bool> {
        self.strand.iter().map(|&s| s != 0).collect()
    }
}

fn read_cds(path: &Path, chrom: &str, len: usize) -> Result<Annotation> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(file);
    let mut strand = vec![0i8; len];
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
        let sign = if field(5) == "-" { -1 } else { 1 };
        strand[start..end].iter_mut().for_each(|s| *s = sign);
        rows += 1;
    }
    ensure!(rows > 0, "{}: no rows for sequence {chrom}", path.display());
    Ok(Annotation { strand, rows })
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

// ---------------------------------------------------------------------------------------
// The gene model: states, allowed transitions and emissions, initial probabilities.
// ---------------------------------------------------------------------------------------

/// Sets of bases as bit masks: bit `k` is symbol `k` (A, C, G, T).
const A: u8 = 1;
const C: u8 = 2;
const G: u8 = 4;
const T: u8 = 8;
const ANY: u8 = A | C | G | T;

/// The complementary set of bases (A ↔ T, C ↔ G).
fn complement(set: u8) -> u8 {
    (0..4)
        .filter(|k| set >> k & 1 == 1)
        .map(|k| 1 << (3 - k))
        .sum()
}

/// The role of an edge of a forward-strand gene graph in the initial probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    /// Shares its row's probability equally with the other ordinary edges.
    Plain,
    /// Leaves the codon cycle at the end of a gene: probability `1 / gene_codons`.
    End,
    /// Enters the codon cycle at the start of a gene. Ordinary on the forward strand; on
    /// the reverse strand (read backwards) it is the gene-end decision.
    Begin,
}

/// A forward-strand gene as a graph: states with the bases they may emit, and edges. `"N"`
/// is the shared non-coding state.
struct GeneGraph {
    states: &'static [(&'static str, u8)],
    edges: &'static [(&'static str, &'static str, Edge)],
}

/// [`Design::Codon`]: a three-periodic codon cycle, entered at codon position 1 and left
/// after position 3.
const CODON: GeneGraph = GeneGraph {
    states: &[("c1", ANY), ("c2", ANY), ("c3", ANY)],
    edges: &[
        ("N", "c1", Edge::Begin),
        ("c1", "c2", Edge::Plain),
        ("c2", "c3", Edge::Plain),
        ("c3", "c1", Edge::Plain),
        ("c3", "N", Edge::End),
    ],
};

/// [`Design::Orf`]: start codon (A|G)TG, a codon cycle whose states remember just enough of
/// the codon read so far to forbid the stop codons TAA, TAG and TGA, and a stop codon.
const ORF: GeneGraph = GeneGraph {
    states: &[
        ("start1", A | G),
        ("start2", T),
        ("start3", G),
        ("c1", A | C | G),
        ("c1T", T),
        ("c2", ANY),
        ("c2TA", A),
        ("c2TG", G),
        ("c2TY", C | T),
        ("c3", ANY),
        ("c3TA", C | T),
        ("c3TG", C | G | T),
        ("stop1", T),
        ("stop2A", A),
        ("stop2G", G),
        ("stop3A", A | G),
        ("stop3G", A),
    ],
    edges: &[
        ("N", "start1", Edge::Plain),
        ("start1", "start2", Edge::Plain),
        ("start2", "start3", Edge::Plain),
        ("start3", "c1", Edge::Begin),
        ("start3", "c1T", Edge::Begin),
        ("c1", "c2", Edge::Plain),
        ("c1T", "c2TA", Edge::Plain),
        ("c1T", "c2TG", Edge::Plain),
        ("c1T", "c2TY", Edge::Plain),
        ("c2", "c3", Edge::Plain),
        ("c2TY", "c3", Edge::Plain),
        ("c2TA", "c3TA", Edge::Plain),
        ("c2TG", "c3TG", Edge::Plain),
        ("c3", "c1", Edge::Plain),
        ("c3", "c1T", Edge::Plain),
        ("c3", "stop1", Edge::End),
        ("c3TA", "c1", Edge::Plain),
        ("c3TA", "c1T", Edge::Plain),
        ("c3TA", "stop1", Edge::End),
        ("c3TG", "c1", Edge::Plain),
        ("c3TG", "c1T", Edge::Plain),
        ("c3TG", "stop1", Edge::End),
        ("stop1", "stop2A", Edge::Plain),
        ("stop1", "stop2G", Edge::Plain),
        ("stop2A", "stop3A", Edge::Plain),
        ("stop2G", "stop3G", Edge::Plain),
        ("stop3A", "N", Edge::Plain),
        ("stop3G", "N", Edge::Plain),
    ],
};

/// What a state of the gene model stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    Noncoding,
    Forward,
    Reverse,
}

impl Region {
    /// `0` non-coding, `1` forward-strand CDS, `-1` reverse-strand CDS.
    fn sign(self) -> i8 {
        match self {
            Region::Noncoding => 0,
            Region::Forward => 1,
            Region::Reverse => -1,
        }
    }
}

/// The full state space: one non-coding state, the forward-strand gene graph and its
/// mirror image for reverse-strand genes, with initial probabilities (zeros are structural).
struct GeneModel {
    names: Vec<String>,
    regions: Vec<Region>,
    /// `[S]`.
    initial: Vec<f64>,
    /// `[S, S]`, row = from-state.
    transitions: Vec<f64>,
    /// `[S, 4]`.
    emissions: Vec<f64>,
}

impl GeneModel {
    /// The model of `graph`: state 0 is non-coding, then the forward-strand states, then the
    /// reverse-strand ones (the forward graph read backwards: edges reversed, bases
    /// complemented). Initial probabilities: the non-coding state stays with probability
    /// `1 - 1/noncoding_bp` and shares the rest equally among its edges into genes (one to
    /// the forward start codon, one to each reverse-strand stop-codon state); `End` edges
    /// (on the reverse strand: reversed `Begin` edges) get `1/gene_codons`, the other edges
    /// of a row share the rest equally; emissions follow the genome's base `composition`
    /// restricted to the bases a state may emit.
    fn new(graph: &GeneGraph, composition: [f64; 4], gene_codons: f64, noncoding_bp: f64) -> Self {
        let g = graph.states.len();
        let s = 1 + 2 * g;
        let index = |name: &str| -> usize {
            if name == "N" {
                return 0;
            }
            1 + graph
                .states
                .iter()
                .position(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("gene graph: unknown state {name}"))
        };
        // Reverse-strand copy of forward state i (i >= 1).
        let mirror = |i: usize| if i == 0 { 0 } else { i + g };
        let mut names = vec!["N".to_string()];
        let mut regions = vec![Region::Noncoding];
        let mut emits = vec![ANY];
        for (region, tag) in [(Region::Forward, "+"), (Region::Reverse, "-")] {
            for &(name, bases) in graph.states {
                names.push(format!("{name}{tag}"));
                regions.push(region);
                emits.push(if region == Region::Reverse {
                    complement(bases)
                } else {
                    bases
                });
            }
        }
        // Edges with their roles: (from, to, rare).
        let mut edges: Vec<(usize, usize, bool)> = Vec::new();
        for &(from, to, role) in graph.edges {
            let (f, t) = (index(from), index(to));
            edges.push((f, t, role == Edge::End));
            edges.push((mirror(t), mirror(f), role == Edge::Begin));
        }
        let mut transitions = vec![0.0; s * s];
        let rare = 1.0 / gene_codons;
        for from in 0..s {
            let out: Vec<&(usize, usize, bool)> =
                edges.iter().filter(|(f, _, _)| *f == from).collect();
            if from == 0 {
                let entries = out.len() as f64;
                transitions[0] = 1.0 - 1.0 / noncoding_bp;
                for &&(_, to, _) in &out {
                    transitions[to] += 1.0 / (noncoding_bp * entries);
                }
                continue;
            }
            let n_rare = out.iter().filter(|e| e.2).count() as f64;
            let n_plain = out.len() as f64 - n_rare;
            for &&(_, to, is_rare) in &out {
                transitions[from * s + to] += if n_plain == 0.0 {
                    1.0 / n_rare
                } else if is_rare {
                    rare
                } else {
                    (1.0 - rare * n_rare) / n_plain
                };
            }
        }
        let emissions = emits
            .iter()
            .flat_map(|&set| {
                (0..4).map(move |k| {
                    if set >> k & 1 == 1 {
                        composition[k]
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        let mut initial = vec![0.1 / (s - 1) as f64; s];
        initial[0] = 0.9;
        GeneModel {
            names,
            regions,
            initial,
            transitions,
            emissions,
        }
    }

    fn n_states(&self) -> usize {
        self.names.len()
    }

    fn graph(design: Design) -> &'static GeneGraph {
        match design {
            Design::Codon => &CODON,
            Design::Orf => &ORF,
        }
    }

    /// The HMM with these initial probabilities (trainable leaves; zeros stay zero).
    fn init<B: Backend>(&self, device: &B::Device) -> Hmm<B> {
        let s = self.n_states();
        let tensor1 =
            |v: &[f64]| Tensor::<B, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), device);
        let tensor2 = |v: &[f64], cols: usize| {
            Tensor::<B, 2>::from_data(TensorData::new(v.to_vec(), [v.len() / cols, cols]), device)
        };
        Hmm::from_probs(
            tensor1(&self.initial),
            tensor2(&self.transitions, s),
            tensor2(&self.emissions, 4),
        )
    }
}

// ---------------------------------------------------------------------------------------
// Training and evaluation.
// ---------------------------------------------------------------------------------------

/// The genome cut into windows of `chunk` bases: `[windows, chunk]` symbols (the last
/// window padded with zeros) and the true length of each window.
struct Windows {
    symbols: Vec<i64>,
    lengths: Vec<i64>,
    chunk: usize,
}

impl Windows {
    fn new(symbols: &[u8], chunk: usize) -> Self {
        let mut padded = Vec::new();
        let mut lengths = Vec::new();
        for w in symbols.chunks(chunk) {
            padded.extend(w.iter().map(|&s| i64::from(s)));
            padded.extend(std::iter::repeat_n(0, chunk - w.len()));
            lengths.push(w.len() as i64);
        }
        Windows {
            symbols: padded,
            lengths,
            chunk,
        }
    }

    fn len(&self) -> usize {
        self.lengths.len()
    }

    /// Number of real (unpadded) bases.
    fn bases(&self) -> usize {
        self.lengths.iter().sum::<i64>() as usize
    }

    /// The windows `idx` as `(observations [b, chunk], lengths [b])`.
    fn batch<B: Backend>(
        &self,
        idx: &[usize],
        device: &B::Device,
    ) -> (Tensor<B, 2, Int>, Tensor<B, 1, Int>) {
        let obs: Vec<i64> = idx
            .iter()
            .flat_map(|&i| {
                self.symbols[i * self.chunk..(i + 1) * self.chunk]
                    .iter()
                    .copied()
            })
            .collect();
        let lengths: Vec<i64> = idx.iter().map(|&i| self.lengths[i]).collect();
        (
            Tensor::from_data(TensorData::new(obs, [idx.len(), self.chunk]), device),
            Tensor::from_data(TensorData::new(lengths, [idx.len()]), device),
        )
    }
}

/// What is saved next to the trained weights (`config.json`): the state design and the
/// HMM's shape, enough to rebuild the module and the meaning of each state.
#[derive(Config, Debug)]
struct GeneFinderConfig {
    /// The state design.
    design: Design,
    /// The HMM's shape (`n_states`, 4 symbols).
    hmm: HmmConfig,
}

/// Mean negative log-likelihood per base of all windows (no gradient; minibatches of
/// `batch_size` windows).
fn nll_per_base<B: Backend>(hmm: &Hmm<B>, windows: &Windows, batch_size: usize) -> f64 {
    let device = hmm.device();
    let all: Vec<usize> = (0..windows.len()).collect();
    let total: f64 = all
        .chunks(batch_size)
        .map(|idx| {
            let (obs, lengths) = windows.batch::<B>(idx, &device);
            hmm.forward(obs, Some(lengths), Reduction::Sum)
                .into_scalar()
                .elem::<f64>()
        })
        .sum();
    total / windows.bases() as f64
}

/// Viterbi path of the whole genome as one sequence, mapped to `0`/`1`/`-1` (non-coding,
/// forward-, reverse-strand CDS), and its joint log-probability. Runs the library's host
/// kernel on every backend (on a GPU the tensor recursion would be 154 k dependent steps).
fn decode<B: Backend>(hmm: &Hmm<B>, regions: &[Region], symbols: &[u8]) -> (Vec<i8>, f64) {
    let device = hmm.device();
    let obs: Vec<i64> = symbols.iter().map(|&s| i64::from(s)).collect();
    let obs = Tensor::<B, 2, Int>::from_data(TensorData::new(obs, [1, symbols.len()]), &device);
    let paths = hmm
        .clone()
        .with_algorithm(HmmAlgorithm::Host)
        .viterbi(obs, None);
    let states: Vec<i64> = paths
        .states
        .into_data()
        .convert::<i64>()
        .to_vec()
        .expect("i64 states");
    let calls = states.iter().map(|&z| regions[z as usize].sign()).collect();
    (calls, paths.log_prob.into_scalar().elem())
}

/// Fraction of the bases that are annotated and called coding whose strands agree.
fn strand_agreement(calls: &[i8], truth: &[i8]) -> f64 {
    let (mut both, mut same) = (0usize, 0usize);
    for (&c, &t) in calls.iter().zip(truth) {
        if c != 0 && t != 0 {
            both += 1;
            same += usize::from(c == t);
        }
    }
    same as f64 / both.max(1) as f64
}

/// Entropy (nats) of the base composition: the NLL per base of the best i.i.d. model.
fn composition_entropy(composition: &[f64; 4]) -> f64 {
    -composition
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|p| p * p.ln())
        .sum::<f64>()
}

fn run<B: AutodiffBackend>(args: &Args, device: B::Device) -> Result<Metrics> {
    let start = Instant::now();
    create_dir(&args.out)?;
    ensure!(args.window >= 1, "--window must be at least 1");
    ensure!(
        args.epochs >= 1 && args.chunk >= 1 && args.batch_size >= 1,
        "--epochs, --chunk and --batch-size must be at least 1"
    );
    ensure!(
        args.gene_codons > 1.0 && args.noncoding_bp > 2.0,
        "--gene-codons must exceed 1 and --noncoding-bp 2"
    );
    let mut rng = StdRng::seed_from_u64(args.seed);

    let genome = read_fasta(&args.fasta)?;
    let n = genome.symbols.len();
    let annotation = read_cds(&args.bed, &genome.name, n)?;
    let coding = annotation.coding();
    let coding_fraction = coding.iter().filter(|&&c| c).count() as f64 / n as f64;
    let mut counts = [0usize; 4];
    genome.symbols.iter().for_each(|&s| counts[s as usize] += 1);
    let composition = counts.map(|c| c as f64 / n as f64);
    let gc = composition[1] + composition[2];
    eprintln!(
        "data: {} ({n} bp, GC {gc:.4}), {} CDS rows covering {:.4} of the genome",
        genome.name, annotation.rows, coding_fraction
    );

    // The GC baseline: no labels, like the HMM.
    let track = gc_track(&genome.symbols, args.window);
    let gc_call: Vec<bool> = track.iter().map(|&f| f > gc).collect();

    // The HMM, trained on the genome's bases only (the annotation is not used).
    let design = GeneModel::new(
        GeneModel::graph(args.design),
        composition,
        args.gene_codons,
        args.noncoding_bp,
    );
    let s = design.n_states();
    let windows = Windows::new(&genome.symbols, args.chunk);
    let mut hmm = design.init::<B>(&device);
    let algorithm = args.algorithm.resolve(&hmm, args.chunk);
    hmm = hmm.with_algorithm(algorithm);
    // Validate the data once (symbols in 0..4, lengths); train unchecked (on a GPU each
    // check is a device read-back).
    let nll_initial = nll_per_base(
        &hmm.valid().with_algorithm(algorithm),
        &windows,
        args.batch_size,
    );
    hmm = hmm.with_validate(false);
    let steps = args.epochs * windows.len().div_ceil(args.batch_size);
    let mut schedule = CosineAnnealingLrSchedulerConfig::new(args.lr, steps)
        .init()
        .map_err(|e| anyhow!("--lr {}: {e}", args.lr))?;
    let mut optim = AdamConfig::new().init();
    let mut curve = vec![(0.0, nll_initial)];
    let mut order: Vec<usize> = (0..windows.len()).collect();
    let bar = epoch_bar(args.epochs);
    let train_start = Instant::now();
    for epoch in 0..args.epochs {
        order.shuffle(&mut rng);
        let mut nll = 0.0;
        for idx in order.chunks(args.batch_size) {
            let (obs, lengths) = windows.batch::<B>(idx, &device);
            let loss = hmm.forward(obs, Some(lengths), Reduction::Sum);
            let value = loss.clone().into_scalar().elem::<f64>();
            if !value.is_finite() {
                bar.abandon();
                bail!(
                    "epoch {}: the loss is {value} with the {algorithm:?} algorithm",
                    epoch + 1
                );
            }
            nll += value;
            let grads = GradientsParams::from_grads(loss.backward(), &hmm);
            hmm = optim.step(schedule.step(), hmm, grads);
        }
        let per_base = nll / n as f64;
        curve.push((epoch as f64 + 1.0, per_base));
        bar.set_message(format!("NLL {per_base:.5} nats/base"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let train_seconds = train_start.elapsed().as_secs_f64();

    let trained = hmm.valid().with_validate(true).with_algorithm(algorithm);
    let nll_final = nll_per_base(&trained, &windows, args.batch_size);
    let (calls, viterbi_log_prob) = decode(&trained, &design.regions, &genome.symbols);

    // Save with Burn's recorder, rebuild from config.json + model.mpk and decode again.
    let config = GeneFinderConfig::new(args.design, HmmConfig::new(s, 4));
    let (loaded_config, loaded) =
        common::save_and_reload(&trained, &config, &args.out, &device, |c| {
            c.hmm.init::<B::InnerBackend>(&device)
        })?;
    let loaded = loaded.with_algorithm(algorithm);
    let loaded_regions = GeneModel::new(
        GeneModel::graph(loaded_config.design),
        composition,
        args.gene_codons,
        args.noncoding_bp,
    )
    .regions;
    let loaded_nll = nll_per_base(&loaded, &windows, args.batch_size);
    let (loaded_calls, loaded_log_prob) = decode(&loaded, &loaded_regions, &genome.symbols);
    if loaded_nll != nll_final || loaded_log_prob != viterbi_log_prob || loaded_calls != calls {
        bail!(
            "the reloaded model gives NLL {loaded_nll} and Viterbi log-probability \
             {loaded_log_prob}, the trained one {nll_final} and {viterbi_log_prob}"
        );
    }

    let hmm_call: Vec<bool> = calls.iter().map(|&c| c != 0).collect();
    let mut metrics = Metrics::default();
    metrics.text("sequence", &genome.name);
    metrics.text("length_bp", n);
    metrics.text("cds_rows", annotation.rows);
    metrics.float("coding_fraction", coding_fraction);
    metrics.float("gc_fraction", gc);
    let design_name = format!("{:?}", args.design).to_lowercase();
    metrics.text("design", &design_name);
    metrics.text("hmm_states", s);
    metrics.text("algorithm", format!("{algorithm:?}").to_lowercase());
    metrics.text("epochs", args.epochs);
    metrics.text("adam_steps", steps);
    metrics.float("iid_nll_per_base", composition_entropy(&composition));
    metrics.float("initial_nll_per_base", nll_initial);
    metrics.float("trained_nll_per_base", nll_final);
    metrics.float("viterbi_log_prob", viterbi_log_prob);
    let half = n / 2;
    let all = vec![true; n];
    let mut beats = true;
    for (tag, range) in [
        ("genome", 0..n),
        ("first_half", 0..half),
        ("second_half", half..n),
    ] {
        let score = |call: &[bool]| accuracy_f1(&call[range.clone()], &coding[range.clone()]);
        let ((ha, hf), (ga, gf), (aa, af)) = (score(&hmm_call), score(&gc_call), score(&all));
        metrics.float(&format!("hmm_accuracy_{tag}"), ha);
        metrics.float(&format!("hmm_coding_f1_{tag}"), hf);
        metrics.float(&format!("gc_baseline_accuracy_{tag}"), ga);
        metrics.float(&format!("gc_baseline_coding_f1_{tag}"), gf);
        metrics.float(&format!("all_coding_accuracy_{tag}"), aa);
        metrics.float(&format!("all_coding_f1_{tag}"), af);
        beats &= ha > ga && hf > gf;
    }
    metrics.text("hmm_beats_gc_baseline", if beats { "yes" } else { "no" });
    metrics.float(
        "hmm_strand_agreement_genome",
        strand_agreement(&calls, &annotation.strand),
    );
    metrics.float("loaded_model_nll_per_base", loaded_nll);
    metrics.float(
        "loaded_model_accuracy_genome",
        accuracy_f1(
            &loaded_calls.iter().map(|&c| c != 0).collect::<Vec<_>>(),
            &coding,
        )
        .0,
    );

    let iid = composition_entropy(&composition);
    common::plot::line_plot(
        &args.out.join("loss.png"),
        &format!("HMM training ({} design) on {}", design_name, genome.name),
        ("epoch", "NLL (nats/base)"),
        &[
            ("training NLL (epoch 0: initial model)", curve),
            (
                "i.i.d. base composition",
                vec![(0.0, iid), (args.epochs as f64, iid)],
            ),
        ],
    )?;
    write_calls_bed(&args.out.join("predicted_cds.bed"), &genome.name, &calls)?;
    plot_tracks(
        &args.out.join("tracks.png"),
        &genome.name,
        &annotation.strand,
        &calls,
        &gc_call,
        0..n.min(30_000),
    )?;
    metrics.float("train_seconds", train_seconds);
    metrics.float("wall_seconds", start.elapsed().as_secs_f64());
    metrics.report(&args.out)?;
    eprintln!("outputs in {}", args.out.display());
    Ok(metrics)
}

/// Writes the runs of coding calls as BED6 rows (`hmm_<n>`, strand `+`/`-`).
fn write_calls_bed(path: &Path, chrom: &str, calls: &[i8]) -> Result<()> {
    let mut text = String::new();
    let (mut start, mut rows) = (0, 0);
    for i in 1..=calls.len() {
        if i == calls.len() || calls[i] != calls[start] {
            if calls[start] != 0 {
                rows += 1;
                let strand = if calls[start] > 0 { '+' } else { '-' };
                text += &format!("{chrom}\t{start}\t{i}\thmm_{rows}\t0\t{strand}\n");
            }
            start = i;
        }
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The annotation (`+1`/`-1` by strand), the HMM's Viterbi call (`±0.8`) and the GC
/// baseline's call (`0.4`, strandless) along `range`.
fn plot_tracks(
    path: &Path,
    name: &str,
    truth: &[i8],
    calls: &[i8],
    gc_call: &[bool],
    range: std::ops::Range<usize>,
) -> Result<()> {
    let step = (range.len() / 3000).max(1);
    let series = |f: &dyn Fn(usize) -> f64| -> Vec<(f64, f64)> {
        range
            .clone()
            .step_by(step)
            .map(|i| (i as f64, f(i)))
            .collect()
    };
    common::plot::line_plot(
        path,
        &format!("{name}: CDS by strand (+1 / -1) vs calls"),
        ("position (bp)", "strand"),
        &[
            ("CDS annotation", series(&|i| f64::from(truth[i]))),
            (
                "HMM Viterbi call (x0.8)",
                series(&|i| 0.8 * f64::from(calls[i])),
            ),
            (
                "GC-window baseline (coding = 0.4)",
                series(&|i| 0.4 * f64::from(u8::from(gc_call[i]))),
            ),
        ],
    )
}

fn main() -> Result<()> {
    let args = Args::parse();
    dispatch_backend!(args.device, run, &args).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};

    type Ad = burn::backend::Autodiff<burn::backend::NdArray>;

    #[test]
    fn smoke_chloroplast_orf_hmm() {
        let out = tempfile::tempdir().unwrap();
        let mut args = Args::parse_from(["hmm", "--epochs", "2"]);
        args.out = out.path().to_path_buf();
        let metrics = run::<Ad>(&args, Default::default()).unwrap();
        // The shared data README: 154,478 bp, CDS union 79,256 bp.
        assert_eq!(metrics.get("length_bp"), Some(154_478.0));
        assert!((metrics.get("coding_fraction").unwrap() - 79_256.0 / 154_478.0).abs() < 1e-6);
        for tag in ["genome", "first_half", "second_half"] {
            for name in ["hmm_accuracy", "hmm_coding_f1", "gc_baseline_accuracy"] {
                let v = metrics.get(&format!("{name}_{tag}")).unwrap();
                assert!((0.0..=1.0).contains(&v), "{name}_{tag} = {v}");
            }
        }
        // Two epochs already fit better than the initial model (all finite).
        let (initial, trained) = (
            metrics.get("initial_nll_per_base").unwrap(),
            metrics.get("trained_nll_per_base").unwrap(),
        );
        assert!(
            trained.is_finite() && trained < initial,
            "{trained} vs {initial}"
        );
        assert_eq!(metrics.get("loaded_model_nll_per_base"), Some(trained));
        for file in [
            "loss.png",
            "tracks.png",
            "model.mpk",
            "config.json",
            "predicted_cds.bed",
            "metrics.txt",
        ] {
            assert!(out.path().join(file).is_file(), "missing {file}");
        }
        // Training kept every structural zero of the design, and only those.
        let design = GeneModel::new(&ORF, [0.25; 4], 300.0, 500.0);
        let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
        let loaded = HmmConfig::new(design.n_states(), 4)
            .init::<burn::backend::NdArray>(&Default::default())
            .load_file(out.path().join("model"), &recorder, &Default::default())
            .unwrap();
        let (pi, a, b) = loaded.log_probs().to_probs();
        for (name, trained, initial) in [
            ("initial", pi, &design.initial),
            ("transitions", a, &design.transitions),
            ("emissions", b, &design.emissions),
        ] {
            for (i, (t, d)) in trained.iter().zip(initial.iter()).enumerate() {
                assert!(t.is_finite(), "{name}[{i}] = {t}");
                assert_eq!(*t == 0.0, *d == 0.0, "{name}[{i}]: {t} (initially {d})");
            }
        }
    }

    #[test]
    fn gpu_algorithm_agrees_with_the_host_kernel_on_the_orf_design() {
        // `--device wgpu` trains with a tensor algorithm (the parallel scan by default, see
        // `AlgorithmArg::Auto`): check both here on the CPU against the host kernel,
        // structural zeros included, loss and gradient.
        let device = Default::default();
        let genome: Vec<u8> = (0..600u32).map(|i| ((i * 7 + i / 5) % 4) as u8).collect();
        let windows = Windows::new(&genome, 250);
        let design = GeneModel::new(&ORF, [0.32, 0.18, 0.18, 0.32], 30.0, 100.0);
        let loss_and_grad = |algorithm: HmmAlgorithm| -> (f64, Vec<f64>) {
            let hmm = design.init::<Ad>(&device).with_algorithm(algorithm);
            let (obs, lengths) = windows.batch::<Ad>(&[0, 1, 2], &device);
            let loss = hmm.forward(obs, Some(lengths), Reduction::Sum);
            let grads = loss.backward();
            let grad = hmm.transitions.grad(&grads).unwrap();
            (
                loss.into_scalar().elem(),
                grad.into_data().convert::<f64>().to_vec().unwrap(),
            )
        };
        let (host_loss, host_grad) = loss_and_grad(HmmAlgorithm::Host);
        for algorithm in [HmmAlgorithm::Sequential, HmmAlgorithm::ParallelScan] {
            let (loss, grad) = loss_and_grad(algorithm);
            assert!(
                (loss - host_loss).abs() < 1e-5 * host_loss.abs(),
                "{algorithm:?}: {loss} vs {host_loss}"
            );
            for (i, (g, h)) in grad.iter().zip(&host_grad).enumerate() {
                assert!(
                    g.is_finite() && (g - h).abs() < 1e-3 * (1.0 + h.abs()),
                    "{algorithm:?} [{i}]: {g} vs {h}"
                );
            }
        }
    }

    /// The first `len` bases of the bundled genome and its CDS rows inside them, written to
    /// `dir`; the `Args` of a tiny run on them.
    fn tiny_genome_args(dir: &Path, len: usize, extra: &[&str]) -> Args {
        let genome = read_fasta(&Args::parse_from(["hmm"]).fasta).unwrap();
        let bases: String = genome.symbols[..len]
            .iter()
            .map(|&s| b"ACGT"[s as usize] as char)
            .collect();
        let fasta = dir.join("tiny.fa");
        std::fs::write(&fasta, format!(">{}\n{bases}\n", genome.name)).unwrap();
        let bed = dir.join("tiny.bed");
        let rows: String = std::fs::read_to_string(Args::parse_from(["hmm"]).bed)
            .unwrap()
            .lines()
            .filter(|l| l.split('\t').nth(2).unwrap().parse::<usize>().unwrap() <= len)
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&bed, rows).unwrap();
        let mut argv = vec![
            "hmm",
            "--fasta",
            fasta.to_str().unwrap(),
            "--bed",
            bed.to_str().unwrap(),
        ];
        argv.extend_from_slice(extra);
        let mut args = Args::parse_from(argv);
        args.out = dir.join("out");
        args
    }

    #[test]
    fn smoke_codon_design_on_a_custom_genome() {
        let dir = tempfile::tempdir().unwrap();
        let args = tiny_genome_args(dir.path(), 3000, &["--design", "codon", "--epochs", "3"]);
        let metrics = run::<Ad>(&args, Default::default()).unwrap();
        assert_eq!(metrics.get("length_bp"), Some(3000.0));
        assert_eq!(metrics.get("cds_rows"), Some(1.0)); // psbA
        assert_eq!(metrics.get("hmm_states"), Some(7.0));
        let trained = metrics.get("trained_nll_per_base").unwrap();
        assert!(trained < metrics.get("initial_nll_per_base").unwrap());
        assert_eq!(metrics.get("loaded_model_nll_per_base"), Some(trained));
        let config = std::fs::read_to_string(args.out.join("config.json")).unwrap();
        assert!(config.contains("\"design\": \"Codon\""), "{config}");
    }

    #[cfg(feature = "wgpu")]
    #[test]
    fn smoke_wgpu_matches_ndarray() {
        // Autodiff<Wgpu> trains with the parallel scan, NdArray with the host kernel: one Adam
        // step on the first 3 kb must give the same likelihoods.
        let dir = tempfile::tempdir().unwrap();
        let extra = ["--epochs", "1", "--chunk", "500", "--device", "wgpu"];
        let args = tiny_genome_args(dir.path(), 3000, &extra);
        let gpu =
            run::<burn::backend::Autodiff<burn::backend::Wgpu>>(&args, Default::default()).unwrap();
        let cpu = run::<Ad>(&args, Default::default()).unwrap();
        assert_eq!(gpu.get("hmm_states"), Some(35.0));
        for name in [
            "initial_nll_per_base",
            "trained_nll_per_base",
            "viterbi_log_prob",
        ] {
            let (g, c) = (gpu.get(name).unwrap(), cpu.get(name).unwrap());
            assert!(
                (g - c).abs() < 1e-4 * c.abs(),
                "{name}: wgpu {g}, ndarray {c}"
            );
        }
    }

    /// The codons of a sequence (a trailing partial codon is dropped).
    fn codons(seq: &[u8]) -> Vec<[u8; 3]> {
        seq.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()
    }

    #[test]
    fn orf_design_emits_only_open_reading_frames() {
        // Sample from the initial ORF model: every complete forward-strand gene reads
        // (A|G)TG, codons without an in-frame stop, a stop; reverse-strand genes read so on
        // the other strand.
        let (a, g, t) = (0u8, 2u8, 3u8);
        let stops = [[t, a, a], [t, a, g], [t, g, a]];
        let design = GeneModel::new(&ORF, [0.32, 0.18, 0.18, 0.32], 30.0, 200.0);
        let hmm = design.init::<burn::backend::NdArray>(&Default::default());
        let sample = hmm.sample(4, 4000, 11);
        let to_vec = |x: Tensor<burn::backend::NdArray, 2, Int>| -> Vec<i64> {
            x.into_data().convert::<i64>().to_vec().unwrap()
        };
        let (states, symbols) = (to_vec(sample.states), to_vec(sample.observations));
        let mut genes = [0, 0];
        for (z, x) in states.chunks(4000).zip(symbols.chunks(4000)) {
            let region = |i: usize| design.regions[z[i] as usize];
            let mut start = 0;
            for i in 1..=z.len() {
                if i < z.len() && region(i) == region(start) {
                    continue;
                }
                let complete = start > 0 && i < z.len();
                if complete && region(start) != Region::Noncoding {
                    let mut seq: Vec<u8> = x[start..i].iter().map(|&s| s as u8).collect();
                    if region(start) == Region::Reverse {
                        seq = seq.iter().rev().map(|&s| 3 - s).collect();
                    }
                    assert_eq!(seq.len() % 3, 0, "gene of {} bp", seq.len());
                    let c = codons(&seq);
                    assert!(c.len() >= 3, "gene of {} codons", c.len());
                    assert!(c[0] == [a, t, g] || c[0] == [g, t, g], "start {:?}", c[0]);
                    assert!(stops.contains(c.last().unwrap()), "end {:?}", c.last());
                    assert!(c[1..c.len() - 1].iter().all(|x| !stops.contains(x)));
                    genes[usize::from(region(start) == Region::Reverse)] += 1;
                }
                start = i;
            }
        }
        assert!(
            genes[0] >= 5 && genes[1] >= 5,
            "complete genes sampled: {genes:?}"
        );
    }

    #[test]
    fn designs_are_stochastic_and_mirrored() {
        assert_eq!(complement(A | C), T | G);
        for graph in [&CODON, &ORF] {
            let m = GeneModel::new(graph, [0.3, 0.2, 0.2, 0.3], 300.0, 500.0);
            let s = m.n_states();
            assert_eq!(s, 1 + 2 * graph.states.len());
            let sum = |v: &[f64]| v.iter().sum::<f64>();
            assert!((sum(&m.initial) - 1.0).abs() < 1e-12);
            for row in m.transitions.chunks(s) {
                assert!((sum(row) - 1.0).abs() < 1e-12);
            }
            // Forward state i+1 and its mirror i+1+g: a forward edge u -> v is the reverse
            // edge v' -> u'.
            let g = graph.states.len();
            let mirror = |i: usize| if i == 0 { 0 } else { i + g };
            for u in 0..=g {
                for v in 0..=g {
                    if u == 0 && v == 0 {
                        continue;
                    }
                    let forward = m.transitions[u * s + v] > 0.0;
                    let reverse = m.transitions[mirror(v) * s + mirror(u)] > 0.0;
                    assert_eq!(forward, reverse, "{} -> {}", m.names[u], m.names[v]);
                }
            }
        }
    }

    #[test]
    fn predicted_cds_bed_lists_runs_by_strand() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.bed");
        write_calls_bed(&path, "c", &[0, 1, 1, 0, -1, -1, -1, 1]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "c\t1\t3\thmm_1\t0\t+\nc\t4\t7\thmm_2\t0\t-\nc\t7\t8\thmm_3\t0\t+\n"
        );
        assert_eq!(strand_agreement(&[1, -1, 1, 0], &[1, 1, 0, 1]), 0.5);
    }

    #[test]
    fn bad_bed_and_fasta_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let bed = dir.path().join("cds.bed");
        std::fs::write(&bed, "chr\t0\t10\tg\t0\t+\nchr\tx\t20\tg\t0\t+\n").unwrap();
        let err = format!("{:#}", read_cds(&bed, "chr", 100).err().unwrap());
        assert!(err.contains("cds.bed: line 2: column 2"), "{err}");
        std::fs::write(&bed, "chr\t5\t200\n").unwrap();
        let err = format!("{:#}", read_cds(&bed, "chr", 100).err().unwrap());
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

//! The gene model (states, allowed transitions and emissions, initial probabilities), its
//! Burn module [`GeneFinder`] around `diffbio_burn::hmm::Hmm`, and the module's burn-train
//! steps: the summed forward-algorithm NLL of a batch of windows and its number of bases.

use burn::prelude::*;
use burn::tensor::Transaction;
use burn::tensor::backend::AutodiffBackend;
use burn::train::metric::{Adaptor, ItemLazy};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use diffbio_burn::Reduction;
use diffbio_burn::hmm::{Hmm, HmmAlgorithm};
use diffbio_burn_data::sequences::SequenceBatch;

use crate::common::train::BatchStats;

/// The state designs of the gene model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Design {
    /// 7 states: non-coding plus a three-state codon cycle per strand.
    Codon,
    /// 35 states: non-coding plus, per strand, a start codon, a codon cycle that cannot read
    /// an in-frame stop codon, and a stop codon (genes are open reading frames).
    Orf,
}

/// The gene model's design and the textbook sizes its initial probabilities come from
/// (saved in `config.json`: enough to rebuild the module and the meaning of each state).
#[derive(Config, Debug)]
pub struct GeneFinderConfig {
    /// State design: `orf` (35 states) or `codon` (7 states).
    #[config(default = "Design::Orf")]
    pub design: Design,
    /// Prior mean gene length in codons (sets the initial gene-end probability).
    #[config(default = 300.0)]
    pub gene_codons: f64,
    /// Prior mean length (bp) of a non-coding stretch (sets the initial gene-start
    /// probability).
    #[config(default = 500.0)]
    pub noncoding_bp: f64,
}

impl GeneFinderConfig {
    /// The state space and initial probabilities for a genome of base `composition`.
    pub fn gene_model(&self, composition: [f64; 4]) -> GeneModel {
        GeneModel::new(
            GeneModel::graph(self.design),
            composition,
            self.gene_codons,
            self.noncoding_bp,
        )
    }

    /// The module with the initial probabilities for a genome of base `composition`
    /// (structural zeros are `-inf` logits); `algorithm` is the forward-backward
    /// implementation of training.
    pub fn init<B: Backend>(
        &self,
        composition: [f64; 4],
        algorithm: HmmAlgorithm,
        device: &B::Device,
    ) -> GeneFinder<B> {
        GeneFinder {
            hmm: self
                .gene_model(composition)
                .init(device)
                .with_algorithm(algorithm),
        }
    }
}

/// The gene-finding HMM as a burn-train model: the library's [`Hmm`] (raw logits; the
/// forbidden transitions and emissions are `-inf` and get an exactly zero gradient).
#[derive(Module, Debug)]
pub struct GeneFinder<B: Backend> {
    /// The HMM over the four bases.
    pub hmm: Hmm<B>,
}

impl<B: Backend> GeneFinder<B> {
    /// The same model with the library's input validation on or off (off in training: on a
    /// GPU each check is a device read-back; the windows are validated once before).
    pub fn with_validate(self, validate: bool) -> Self {
        Self {
            hmm: self.hmm.with_validate(validate),
        }
    }

    /// The same model with another forward-backward implementation.
    pub fn with_algorithm(self, algorithm: HmmAlgorithm) -> Self {
        Self {
            hmm: self.hmm.with_algorithm(algorithm),
        }
    }

    /// The summed NLL of a batch of windows (padding ignored) and its number of bases.
    pub fn forward_nll(&self, batch: SequenceBatch<B>) -> HmmOutput<B> {
        let bases = batch.lengths.clone().sum();
        let nll = self
            .hmm
            .forward(batch.observations, Some(batch.lengths), Reduction::Sum);
        HmmOutput { nll, bases }
    }
}

/// What the train and inference steps return: the summed NLL of a batch and its bases.
pub struct HmmOutput<B: Backend> {
    /// Negative log-likelihood summed over the batch's windows (nats), `[1]`.
    pub nll: Tensor<B, 1>,
    /// Real (unpadded) bases in the batch, `[1]`.
    pub bases: Tensor<B, 1, Int>,
}

/// [`HmmOutput`] read back to the host, for the metrics.
#[derive(Debug, Clone)]
pub struct HmmStats {
    /// Summed NLL (nats).
    pub nll: f64,
    /// Bases: the weight of the batch in the epoch's NLL per base.
    pub bases: usize,
}

impl BatchStats for HmmStats {
    fn batch_size(&self) -> usize {
        self.bases
    }
}

impl<B: Backend> ItemLazy for HmmOutput<B> {
    type ItemSync = HmmStats;

    fn sync(self) -> HmmStats {
        let [nll, bases]: [_; 2] = Transaction::default()
            .register(self.nll)
            .register(self.bases)
            .execute()
            .try_into()
            .expect("two tensors");
        let scalar = |d: TensorData| d.convert::<f64>().to_vec::<f64>().expect("f64")[0];
        HmmStats {
            nll: scalar(nll),
            bases: scalar(bases) as usize,
        }
    }
}

impl Adaptor<HmmStats> for HmmStats {
    fn adapt(&self) -> HmmStats {
        self.clone()
    }
}

impl<B: AutodiffBackend> TrainStep for GeneFinder<B> {
    type Input = SequenceBatch<B>;
    type Output = HmmOutput<B>;

    fn step(&self, batch: SequenceBatch<B>) -> TrainOutput<HmmOutput<B>> {
        let output = self.forward_nll(batch);
        TrainOutput::new(self, output.nll.backward(), output)
    }
}

impl<B: Backend> InferenceStep for GeneFinder<B> {
    type Input = SequenceBatch<B>;
    type Output = HmmOutput<B>;

    fn step(&self, batch: SequenceBatch<B>) -> HmmOutput<B> {
        self.forward_nll(batch)
    }
}

// ---------------------------------------------------------------------------------------
// The gene model: states, allowed transitions and emissions, initial probabilities.
// ---------------------------------------------------------------------------------------

/// Sets of bases as bit masks: bit `k` is symbol `k` (A, C, G, T).
pub const A: u8 = 1;
pub const C: u8 = 2;
pub const G: u8 = 4;
pub const T: u8 = 8;
pub const ANY: u8 = A | C | G | T;

/// The complementary set of bases (A ↔ T, C ↔ G).
pub fn complement(set: u8) -> u8 {
    (0..4)
        .filter(|k| set >> k & 1 == 1)
        .map(|k| 1 << (3 - k))
        .sum()
}

/// The role of an edge of a forward-strand gene graph in the initial probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
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
pub struct GeneGraph {
    pub states: &'static [(&'static str, u8)],
    pub edges: &'static [(&'static str, &'static str, Edge)],
}

/// [`Design::Codon`]: a three-periodic codon cycle, entered at codon position 1 and left
/// after position 3.
pub const CODON: GeneGraph = GeneGraph {
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
pub const ORF: GeneGraph = GeneGraph {
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
pub enum Region {
    Noncoding,
    Forward,
    Reverse,
}

impl Region {
    /// `0` non-coding, `1` forward-strand CDS, `-1` reverse-strand CDS.
    pub fn sign(self) -> i8 {
        match self {
            Region::Noncoding => 0,
            Region::Forward => 1,
            Region::Reverse => -1,
        }
    }
}

/// The full state space: one non-coding state, the forward-strand gene graph and its
/// mirror image for reverse-strand genes, with initial probabilities (zeros are structural).
pub struct GeneModel {
    /// State names (`N`, then e.g. `c1+`, ..., `c1-`, ...).
    pub names: Vec<String>,
    /// What each state stands for.
    pub regions: Vec<Region>,
    /// `[S]`.
    pub initial: Vec<f64>,
    /// `[S, S]`, row = from-state.
    pub transitions: Vec<f64>,
    /// `[S, 4]`.
    pub emissions: Vec<f64>,
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
    pub fn new(
        graph: &GeneGraph,
        composition: [f64; 4],
        gene_codons: f64,
        noncoding_bp: f64,
    ) -> Self {
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

    pub fn n_states(&self) -> usize {
        self.names.len()
    }

    pub fn graph(design: Design) -> &'static GeneGraph {
        match design {
            Design::Codon => &CODON,
            Design::Orf => &ORF,
        }
    }

    /// The HMM with these initial probabilities (trainable leaves; zeros stay zero).
    pub fn init<B: Backend>(&self, device: &B::Device) -> Hmm<B> {
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

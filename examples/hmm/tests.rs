//! Smoke tests of the example at tiny settings (outputs, the saved model's round trip,
//! resume, the flags derived from the config, errors) and tests of the gene model, the
//! algorithms and the evaluation helpers.

use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use burn::config::Config;
use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::{ElementConversion, Int, Tensor};
use diffbio_burn::Reduction;
use diffbio_burn_data::sequences::{SequenceBatcher, SequenceItem};

use super::*;
use crate::model::{A, C, CODON, Design, G, GeneFinder, GeneModel, ORF, Region, T, complement};

type Ad = Autodiff<NdArray>;

fn args(argv: &[&str], out: &Path) -> (RunArgs, HmmTrainingConfig) {
    let mut argv: Vec<String> = std::iter::once("hmm")
        .chain(argv.iter().copied())
        .map(String::from)
        .collect();
    argv.extend(["--out".to_string(), out.display().to_string()]);
    parse(argv).unwrap()
}

/// Loads `config.json` + `model.mpk` from `out` as a user of the saved files would.
fn reload(out: &Path) -> (HmmTrainingConfig, GeneFinder<NdArray>) {
    let config = HmmTrainingConfig::load(out.join("config.json")).unwrap();
    let model = config
        .model
        .init::<NdArray>([0.25; 4], HmmAlgorithm::Host, &Default::default())
        .load_file(
            out.join("model"),
            &NamedMpkFileRecorder::<FullPrecisionSettings>::new(),
            &Default::default(),
        )
        .unwrap();
    (config, model)
}

/// The reloaded model gives the run's NLL per base of the genome, Viterbi log-probability and
/// gene calls (as printed: 6 decimals; the BED byte for byte).
fn check_round_trip((run_args, _): &(RunArgs, HmmTrainingConfig), metrics: &Metrics) {
    let out = &run_args.out;
    let (config, model) = reload(out);
    let genome = data::load(&run_args.fasta, &run_args.bed).unwrap();
    let windows = data::windows(&genome, config.chunk, config.heldout_every).unwrap();
    let nll = eval::nll_per_base(&model.hmm, &windows.all, config.batch_size);
    let printed = |name: &str| format!("{:.6}", metrics.get(name).unwrap());
    assert_eq!(format!("{nll:.6}"), printed("trained_nll_per_base"));
    let regions = config.model.gene_model([0.25; 4]).regions;
    let (calls, log_prob) = eval::decode(&model.hmm, &regions, &genome.sequence.symbols);
    assert_eq!(format!("{log_prob:.6}"), printed("viterbi_log_prob"));
    let bed = out.join("reloaded.bed");
    eval::write_calls_bed(&bed, &genome.sequence.name, &calls).unwrap();
    assert_eq!(
        std::fs::read_to_string(bed).unwrap(),
        std::fs::read_to_string(out.join("predicted_cds.bed")).unwrap()
    );
}

#[test]
fn smoke_chloroplast_orf_hmm_and_saved_model_round_trip() {
    let out = tempfile::tempdir().unwrap();
    let parsed = args(&["--epochs", "2"], out.path());
    let metrics = run::<Ad>(&parsed, Default::default()).unwrap();
    // The shared data README: 154,478 bp, CDS union 79,256 bp.
    assert_eq!(metrics.get("length_bp"), Some(154_478.0));
    assert!((metrics.get("coding_fraction").unwrap() - 79_256.0 / 154_478.0).abs() < 1e-6);
    // 78 windows of 2 kb, every 10th held out.
    assert_eq!(metrics.get("windows_train"), Some(71.0));
    assert_eq!(metrics.get("windows_heldout"), Some(7.0));
    assert_eq!(metrics.get("adam_steps"), Some(18.0));
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
    assert!(
        metrics
            .get("heldout_windows_nll_per_base")
            .unwrap()
            .is_finite()
    );
    for file in [
        "loss.png",
        "tracks.png",
        "model.mpk",
        "config.json",
        "predicted_cds.bed",
        "metrics.txt",
        "checkpoint/model-2.mpk",
        "train/epoch-2",
        "valid/epoch-2",
    ] {
        assert!(out.path().join(file).exists(), "missing {file}");
    }
    check_round_trip(&parsed, &metrics);
    // Training kept every structural zero of the design, and only those.
    assert_zeros_kept(out.path(), true);
}

/// The saved model keeps every structural zero of the ORF design; with `only_those`, no
/// other entry is 0 (for EM, entries of the start distribution may be: its maximum
/// likelihood estimate is 0 for states that begin no training window).
fn assert_zeros_kept(out: &Path, only_those: bool) {
    let design = GeneModel::new(&ORF, [0.25; 4], 300.0, 500.0);
    let (_, loaded) = reload(out);
    let (pi, a, b) = loaded.hmm.log_probs().to_probs();
    for (name, trained, initial) in [
        ("initial", pi, &design.initial),
        ("transitions", a, &design.transitions),
        ("emissions", b, &design.emissions),
    ] {
        for (i, (t, d)) in trained.iter().zip(initial.iter()).enumerate() {
            assert!(t.is_finite(), "{name}[{i}] = {t}");
            if *d == 0.0 {
                assert_eq!(*t, 0.0, "{name}[{i}]: a structural zero became {t}");
            } else if only_those || name != "initial" {
                assert!(*t > 0.0, "{name}[{i}]: {t} (initially {d})");
            }
        }
    }
}

#[test]
fn smoke_em_trainer_keeps_structural_zeros_and_improves_every_step() {
    let out = tempfile::tempdir().unwrap();
    let parsed = args(&["--trainer", "em", "--epochs", "3"], out.path());
    let metrics = run::<Ad>(&parsed, Default::default()).unwrap();
    assert_eq!(metrics.get("em_steps"), Some(3.0));
    assert!(metrics.get("adam_steps").is_none());
    let (initial, trained) = (
        metrics.get("initial_nll_per_base").unwrap(),
        metrics.get("trained_nll_per_base").unwrap(),
    );
    assert!(trained < initial, "{trained} vs {initial}");
    assert!(out.path().join("loss.png").exists());
    check_round_trip(&parsed, &metrics);
    assert_zeros_kept(out.path(), false);
}

#[test]
fn gpu_algorithm_agrees_with_the_host_kernel_on_the_orf_design() {
    // `--device wgpu` trains with a tensor algorithm (the parallel scan by default, see
    // `AlgorithmArg::Auto`): check both here on the CPU against the host kernel,
    // structural zeros included, loss and gradient.
    let device = Default::default();
    let genome: Vec<u32> = (0..600u32).map(|i| (i * 7 + i / 5) % 4).collect();
    let windows: Vec<SequenceItem> = SequenceItem::new("g", genome).chunks(250).collect();
    let design = GeneModel::new(&ORF, [0.32, 0.18, 0.18, 0.32], 30.0, 100.0);
    let loss_and_grad = |algorithm: HmmAlgorithm| -> (f64, Vec<f64>) {
        let hmm = design.init::<Ad>(&device).with_algorithm(algorithm);
        let batch = SequenceBatcher::pad::<Ad>(&windows, &device);
        let loss = hmm.forward(batch.observations, Some(batch.lengths), Reduction::Sum);
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
/// `dir`; the arguments of a tiny run on them (output in `dir/out`).
fn tiny_genome_args(dir: &Path, len: usize, extra: &[&str]) -> (RunArgs, HmmTrainingConfig) {
    let (defaults, _) = args(&[], dir);
    let genome = data::load(&defaults.fasta, &defaults.bed).unwrap();
    let bases: String = genome.sequence.symbols[..len]
        .iter()
        .map(|&s| b"ACGT"[s as usize] as char)
        .collect();
    let fasta = dir.join("tiny.fa");
    std::fs::write(&fasta, format!(">{}\n{bases}\n", genome.sequence.name)).unwrap();
    let bed = dir.join("tiny.bed");
    let rows: String = std::fs::read_to_string(&defaults.bed)
        .unwrap()
        .lines()
        .filter(|l| l.split('\t').nth(2).unwrap().parse::<usize>().unwrap() <= len)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&bed, rows).unwrap();
    let mut argv = vec![
        "--fasta",
        fasta.to_str().unwrap(),
        "--bed",
        bed.to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    args(&argv, &dir.join("out"))
}

#[test]
fn smoke_codon_design_on_a_custom_genome_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = [
        "--design",
        "codon",
        "--chunk",
        "300",
        "--heldout-every",
        "5",
    ];
    let parsed = tiny_genome_args(dir.path(), 3000, &[&tiny[..], &["--epochs", "3"]].concat());
    let metrics = run::<Ad>(&parsed, Default::default()).unwrap();
    assert_eq!(metrics.get("length_bp"), Some(3000.0));
    assert_eq!(metrics.get("cds_rows"), Some(1.0)); // psbA
    assert_eq!(metrics.get("hmm_states"), Some(7.0));
    assert_eq!(metrics.get("windows_heldout"), Some(2.0));
    let trained = metrics.get("trained_nll_per_base").unwrap();
    assert!(trained < metrics.get("initial_nll_per_base").unwrap());
    check_round_trip(&parsed, &metrics);
    let out = &parsed.0.out;
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(config.contains("\"design\": \"codon\""), "{config}");
    // Two more epochs from the epoch-3 checkpoint (saved after the last epoch): logged as
    // epochs 4 and 5, the schedule continued, the saved model the resumed one.
    let resumed = tiny_genome_args(
        dir.path(),
        3000,
        &[&tiny[..], &["--epochs", "5", "--resume", "3"]].concat(),
    );
    let metrics = run::<Ad>(&resumed, Default::default()).unwrap();
    assert!(out.join("valid/epoch-4").exists() && out.join("valid/epoch-5").exists());
    let resumed_nll = metrics.get("trained_nll_per_base").unwrap();
    assert!(resumed_nll.is_finite() && resumed_nll != trained);
    // 8 training windows: one step per epoch.
    assert_eq!(metrics.get("adam_steps"), Some(5.0));
    check_round_trip(&resumed, &metrics);
}

#[test]
fn flags_derive_from_the_training_config() {
    let out = tempfile::tempdir().unwrap();
    let (_, config) = args(
        &["--design", "codon", "--lr", "0.01", "--epsilon", "1e-6"],
        out.path(),
    );
    assert_eq!(config.model.design, Design::Codon);
    assert_eq!((config.lr, config.epochs), (0.01, 30));
    let optimizer = serde_json::to_value(&config.optimizer).unwrap();
    assert_eq!(optimizer["epsilon"].as_f64().unwrap() as f32, 1e-6);
    // The defaults are the config's own.
    let (_, defaults) = args(&[], out.path());
    assert_eq!(defaults.chunk, HmmTrainingConfig::defaults().chunk);
    assert_eq!(defaults.model.design, Design::Orf);
    // A saved config is a starting point; flags still override it.
    config.save(out.path().join("saved.json")).unwrap();
    let saved = out.path().join("saved.json");
    let (_, loaded) = args(
        &["--config", saved.to_str().unwrap(), "--epochs", "7"],
        out.path(),
    );
    assert_eq!(
        (loaded.model.design, loaded.lr, loaded.epochs),
        (Design::Codon, 0.01, 7)
    );
    let err = parse(["hmm", "--epochs", "many"].map(String::from)).unwrap_err();
    assert!(err.to_string().contains("--epochs many"), "{err}");
}

#[cfg(feature = "wgpu")]
#[test]
fn smoke_wgpu_matches_ndarray() {
    // Autodiff<Wgpu> trains with the parallel scan, NdArray with the host kernel: two Adam
    // steps on the first 3 kb must give the same likelihoods.
    let dir = tempfile::tempdir().unwrap();
    let extra = [
        "--epochs",
        "1",
        "--chunk",
        "500",
        "--heldout-every",
        "3",
        "--device",
        "wgpu",
    ];
    let parsed = tiny_genome_args(dir.path(), 3000, &extra);
    let gpu = run::<Autodiff<burn::backend::Wgpu>>(&parsed, Default::default()).unwrap();
    let cpu = run::<Ad>(&parsed, Default::default()).unwrap();
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
    let hmm = design.init::<NdArray>(&Default::default());
    let sample = hmm.sample(4, 4000, 11);
    let to_vec = |x: Tensor<NdArray, 2, Int>| -> Vec<i64> {
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
    eval::write_calls_bed(&path, "c", &[0, 1, 1, 0, -1, -1, -1, 1]).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text,
        "c\t1\t3\thmm_1\t0\t+\nc\t4\t7\thmm_2\t0\t-\nc\t7\t8\thmm_3\t0\t+\n"
    );
    assert_eq!(eval::strand_agreement(&[1, -1, 1, 0], &[1, 1, 0, 1]), 0.5);
}

#[test]
fn bad_bed_and_fasta_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let fasta = dir.path().join("g.fa");
    std::fs::write(&fasta, ">chr\nACGTACGTAC\n").unwrap();
    let bed = dir.path().join("cds.bed");
    std::fs::write(&bed, "chr\t0\t10\tg\t0\t+\nchr\tx\t20\tg\t0\t+\n").unwrap();
    let err = format!("{:#}", data::load(&fasta, &bed).err().unwrap());
    assert!(err.contains("cds.bed, line 2"), "{err}");
    std::fs::write(&bed, "chr\t5\t200\n").unwrap();
    let err = format!("{:#}", data::load(&fasta, &bed).err().unwrap());
    assert!(err.contains("cds.bed, line 1 (chr:5-200)"), "{err}");
    std::fs::write(&bed, "other\t0\t5\n").unwrap();
    let err = format!("{:#}", data::load(&fasta, &bed).err().unwrap());
    assert!(err.contains("cds.bed"), "{err}");
    std::fs::write(&fasta, ">chr\nACGT\nACRT\n").unwrap();
    let err = format!("{:#}", data::load(&fasta, &bed).err().unwrap());
    assert!(err.contains("g.fa, record 1 (chr), base 7: 'R'"), "{err}");
}

#[test]
fn gc_track_is_a_centred_mean() {
    // A C G T G C -> GC flags 0 1 1 0 1 1; width 3.
    let t = eval::gc_track(&[0, 1, 2, 3, 2, 1], 3);
    let expected = [0.5, 2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 1.0];
    for (a, e) in t.iter().zip(expected) {
        assert!((a - e).abs() < 1e-12);
    }
}

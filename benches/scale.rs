//! Scale benchmark: one epoch of the scVI example's model on seeded synthetic atlases of 10^4,
//! 10^5 (and, when asked, 10^6) cells × 2,000 genes, streaming minibatches from the `.h5ad`
//! on disk. Reports cells per second and peak RSS per size; both should grow as the issue
//! asks (time linear in cells, memory flat).
//!
//! ```sh
//! cargo bench --features hdf5 --bench scale                          # 10^4 and 10^5 cells
//! cargo bench --features hdf5 --bench scale -- --cells 10000,100000,1000000
//! cargo bench --features hdf5 --bench scale -- --source memory      # read_h5ad + CountsBatcher
//! cargo bench --features hdf5 --bench scale -- --peer-python /work/pyenvs/torch311/bin/python
//! ```
//!
//! `--peer-python PY` also runs `benches/peers/scvi_scale.py` (scvi-tools' SCVI, same
//! architecture and batch size, 2 torch threads) on each atlas right after ours, in the same
//! run, one process each; it needs scvi-tools in that environment (benches/peers/README.md).
//!
//! * Atlas (`write` mode, cached as `target/scale/atlas_<cells>.h5ad`): 10 cell types drawn
//!   at random per cell (so the file's cell order has no structure); per-gene base
//!   log-expression N(0, 1.5²); each type multiplies 100 genes drawn at random (with replacement, so about 5 %) by 8; per-gene
//!   inverse dispersion θ log-normal around 2; log-normal library sizes (σ 0.5). Counts are
//!   NB(library × proportion, θ), drawn exactly: zero with probability (θ/(θ+μ))^θ, else a
//!   gamma–Poisson draw rejected until positive (a zero-truncated NB). The library-size
//!   median is set so that about 5 % of the entries are non-zero. Written by
//!   `H5adCsrWriter` in chunks of 8,192 cells generated on two threads.
//! * Training (`train` mode): the scVI example's model (`examples/scvi/model.rs`, included
//!   as is: 128 hidden, 10 latent, dropout 0.1, NB), Adam (lr 1e-3), batch 128, KL weight 1,
//!   `Autodiff<NdArray<f32>>`, one epoch over every cell. Minibatches come from burn's data
//!   loader with one worker thread (it reads and densifies the next batches while the main
//!   thread trains), in `CellDataset::block_shuffled` order (contiguous
//!   blocks of 128 cells, blocks shuffled), read by `H5adBatcher` with one hyperslab each;
//!   `--source memory` reads the whole file with `read_h5ad` first and uses `CountsBatcher`.
//! * Each write and each training runs in a fresh process (this binary re-run in that mode),
//!   which reports its peak RSS (`VmHWM` of `/proc/self/status`) and CPU time; the driver
//!   prints one JSON line per run and a table, and appends the lines to
//!   `target/scale/results.jsonl`.
//!
//! Measured (2026-12-02, 2-core VM, 23 GiB RAM, nothing else running; atlases 4.87 %
//! non-zero: 10^6 cells = 97.4 M values, a 799 MiB file written in 71 s with a 42 MiB peak
//! RSS), one process per row, one `--peer-python` run:
//!
//! | impl | cells | train s | cells/s | peak RSS MiB |
//! |---|---:|---:|---:|---:|
//! | diffbio-burn, backed | 10^4 | 1.9 | 5357 | 111 |
//! | scvi-tools 1.4.2 (torch 2.15.0, 2 threads), in memory | 10^4 | 2.2 | 4573 | 1036 |
//! | diffbio-burn, backed | 10^5 | 18.2 | 5491 | 140 |
//! | scvi-tools, in memory | 10^5 | 41.9 | 2384 | 1195 |
//! | diffbio-burn, backed | 10^6 | 236.4 | 4229 | 161 |
//! | scvi-tools, in memory | 10^6 | not finished: still training after 10.5 min (started 17:57:30 UTC), RSS 2.2–2.6 GiB by `ps` | | |
//!
//! Our epoch time is close to linear in cells (cells/s 5357 → 5491 → 4229); peak RSS grows
//! by 50 MiB over 100× the cells: the O(cells) parts (`indptr`, label codes, the cell order,
//! 8 bytes per cell each) and allocator growth, not the counts. Our training uses about one
//! core (CPU s ≈ 1.06–1.12 × wall s: NdArray's kernels ran single-threaded here, and the
//! loader thread's reads are small); scvi-tools used both (CPU s 1.8–5 × wall s).
#![allow(dead_code)]

// `common/metrics.rs` has test-only imports, unused in a bench build (cfg(test)).
#[allow(unused_imports)]
#[path = "../examples/common/mod.rs"]
mod common;
#[path = "../examples/scvi/model.rs"]
mod model;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use burn::backend::{Autodiff, NdArray};
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use diffbio_burn_data::counts::{
    CellDataset, CountsBatch, CountsBatcher, H5adBatcher, H5adCsrWriter, H5adOptions, H5adRows,
    read_h5ad,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Gamma, LogNormal, Normal, Poisson};

use model::{KlSchedule, ScviConfig};

type B = Autodiff<NdArray<f32>>;

const GENES: usize = 2000;
const TYPES: usize = 10;
const SEED: u64 = 42;
const BATCH: usize = 128;
const CHUNK: usize = 8192;
/// Median library size; with the model above it gives about 5 % non-zero entries.
const LIBRARY_MEDIAN: f64 = 125.0;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("write") => write_mode(args[1].parse().expect("cells"), Path::new(&args[2])),
        Some("train") => train_mode(Path::new(&args[1]), &args[2]),
        _ => driver(&args),
    }
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// `target/` of this binary (`target/release/deps/scale-…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

fn driver(args: &[String]) {
    let cells: Vec<usize> = flag(args, "--cells")
        .unwrap_or("10000,100000")
        .split(',')
        .map(|s| s.trim().parse().expect("--cells: integers"))
        .collect();
    let source = flag(args, "--source").unwrap_or("backed").to_string();
    let peer = flag(args, "--peer-python").map(PathBuf::from);
    let dir = target_dir().join("scale");
    std::fs::create_dir_all(&dir).expect("create target/scale");
    let exe = std::env::current_exe().expect("current exe");
    let mut lines = Vec::new();
    let run = |argv: &[&str]| -> String {
        let out = Command::new(&exe).args(argv).output().expect("run self");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() {
            panic!(
                "{argv:?} failed: {}\n{}",
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        stdout.lines().last().unwrap_or_default().to_string()
    };
    for &n in &cells {
        let path = dir.join(format!("atlas_{n}.h5ad"));
        if !path.exists() {
            let tmp = dir.join(format!("atlas_{n}.h5ad.part"));
            let line = run(&["write", &n.to_string(), tmp.to_str().expect("utf-8 path")]);
            std::fs::rename(&tmp, &path).expect("rename atlas");
            println!("{line}");
            lines.push(line);
        }
        let line = run(&["train", path.to_str().expect("utf-8 path"), &source]);
        println!("{line}");
        lines.push(line);
        if let Some(python) = &peer {
            let out = Command::new(python)
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/scvi_scale.py"))
                .arg(&path)
                .args(["--threads", "2", "--batch", &BATCH.to_string()])
                .output()
                .expect("run the scvi-tools peer");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let line = match stdout.lines().rev().find(|l| l.starts_with('{')) {
                Some(l) if out.status.success() => l.to_string(),
                _ => format!(
                    "{{\"mode\":\"train\",\"impl\":\"scvi-tools\",\"cells\":{n},\"failed\":{:?}}}",
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .last()
                        .unwrap_or_default()
                ),
            };
            println!("{line}");
            lines.push(line);
        }
    }
    summary(&lines);
    let log = dir.join("results.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap_or_default();
    for l in &lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&log, text).expect("write results.jsonl");
}

/// A table of the training runs: cells/s and peak RSS, and their ratio to the smallest run of
/// the same implementation (linear time: cells/s ratio ≈ 1; flat memory: RSS ratio ≈ 1).
fn summary(lines: &[String]) {
    let runs: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["mode"] == "train" && v["cells_per_s"].is_number())
        .collect();
    println!("\n| impl | source | cells | train s | cells/s | ×cells/s | peak RSS MiB | ×RSS |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for v in &runs {
        let base = runs
            .iter()
            .find(|b| b["impl"] == v["impl"] && b["source"] == v["source"])
            .unwrap_or(v);
        let f = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {} | {} | {} | {:.1} | {:.0} | {:.2} | {:.0} | {:.2} |",
            v["impl"].as_str().unwrap_or("?"),
            v["source"].as_str().unwrap_or("?"),
            v["cells"],
            f(v, "train_s"),
            f(v, "cells_per_s"),
            f(v, "cells_per_s") / f(base, "cells_per_s"),
            f(v, "peak_rss_mib"),
            f(v, "peak_rss_mib") / f(base, "peak_rss_mib"),
        );
    }
}

/// Peak resident memory (MiB) and CPU seconds (user + system) of this process.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is field 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // `rest` starts at field 3 (state): field k is rest[k - 3].
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => f64::NAN,
    }
}

/// The atlas's fixed parameters: per-type gene proportions and per-gene θ.
struct Atlas {
    proportions: Vec<Vec<f64>>,
    theta: Vec<f64>,
}

impl Atlas {
    fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let base: Vec<f64> = (0..GENES)
            .map(|_| Normal::new(0.0, 1.5).unwrap().sample(&mut rng))
            .collect();
        let proportions = (0..TYPES)
            .map(|_| {
                let mut logp = base.clone();
                for _ in 0..GENES / 20 {
                    logp[rng.random_range(0..GENES)] += 8f64.ln();
                }
                let max = logp.iter().cloned().fold(f64::MIN, f64::max);
                let w: Vec<f64> = logp.iter().map(|l| (l - max).exp()).collect();
                let total: f64 = w.iter().sum();
                w.iter().map(|x| x / total).collect()
            })
            .collect();
        let theta = (0..GENES)
            .map(|_| LogNormal::new(2f64.ln(), 0.5).unwrap().sample(&mut rng))
            .collect();
        Self { proportions, theta }
    }

    /// Cells `first..first + n`: (types, indptr, indices, data), from a seed of their own.
    fn cells(&self, first: usize, n: usize) -> (Vec<usize>, Vec<usize>, Vec<u32>, Vec<f32>) {
        let mut rng = StdRng::seed_from_u64(SEED ^ (first as u64).wrapping_mul(0x9E37_79B9));
        let library = LogNormal::new(LIBRARY_MEDIAN.ln(), 0.5).unwrap();
        let (mut types, mut indptr, mut indices, mut data) =
            (Vec::with_capacity(n), vec![0], Vec::new(), Vec::new());
        for _ in 0..n {
            let t = rng.random_range(0..TYPES);
            let l = library.sample(&mut rng);
            for (g, (&p, &theta)) in self.proportions[t].iter().zip(&self.theta).enumerate() {
                let mu = l * p;
                let p0 = (-theta * (mu / theta).ln_1p()).exp();
                if rng.random::<f64>() < p0 {
                    continue;
                }
                let gamma = Gamma::new(theta, mu / theta).unwrap();
                let x = loop {
                    let rate = gamma.sample(&mut rng);
                    let x = if rate > 0.0 {
                        Poisson::new(rate).unwrap().sample(&mut rng)
                    } else {
                        0.0
                    };
                    if x > 0.0 {
                        break x;
                    }
                };
                indices.push(g as u32);
                data.push(x as f32);
            }
            types.push(t);
            indptr.push(indices.len());
        }
        (types, indptr, indices, data)
    }
}

fn write_mode(n: usize, path: &Path) {
    let start = Instant::now();
    let atlas = Atlas::new(SEED);
    let genes: Vec<String> = (0..GENES).map(|g| format!("gene{g}")).collect();
    let types: Vec<String> = (0..TYPES).map(|t| format!("type{t}")).collect();
    let mut writer =
        H5adCsrWriter::create(path, &genes, Some(("cell_type", &types))).expect("create atlas");
    let mut first = 0;
    while first < n {
        let len = CHUNK.min(n - first);
        let half = len / 2;
        // Two threads, each its own seeded half of the chunk: the file depends only on `n`.
        let (a, b) = std::thread::scope(|s| {
            let h = s.spawn(|| atlas.cells(first, half));
            let b = atlas.cells(first + half, len - half);
            (h.join().expect("generator thread"), b)
        });
        for (offset, (types, indptr, indices, data)) in [(0, a), (half, b)] {
            let names: Vec<String> = (0..indptr.len() - 1)
                .map(|i| format!("cell{}", first + offset + i))
                .collect();
            writer
                .append_rows(&names, &indptr, &indices, &data, Some(&types))
                .expect("append rows");
        }
        first += len;
    }
    let nnz = writer.nnz();
    writer.finish().expect("finish atlas");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"mode\":\"write\",\"cells\":{n},\"genes\":{GENES},\"nnz\":{nnz},\"density\":{:.4},\"file_mib\":{:.1},\"wall_s\":{secs:.2},\"cpu_s\":{:.2},\"peak_rss_mib\":{:.1}}}",
        nnz as f64 / (n * GENES) as f64,
        std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1048576.0),
        cpu_seconds(),
        peak_rss_mib()
    );
}

fn train_mode(path: &Path, source: &str) {
    let start = Instant::now();
    let device = Default::default();
    let (loader, n): (Arc<dyn DataLoader<B, CountsBatch<B>>>, usize) = match source {
        "backed" => {
            let rows = Arc::new(H5adRows::open(path, Some("cell_type")).expect("open atlas"));
            let n = rows.n_cells();
            let loader = DataLoaderBuilder::new(H5adBatcher::new(rows))
                .batch_size(BATCH)
                .num_workers(1)
                .build(CellDataset::block_shuffled(n, BATCH, SEED));
            (loader, n)
        }
        "memory" => {
            let options = H5adOptions {
                labels: Some("cell_type".into()),
                ..Default::default()
            };
            let matrix = Arc::new(read_h5ad(path, &options).expect("read atlas"));
            let n = matrix.n_cells();
            let loader = DataLoaderBuilder::new(CountsBatcher::new(matrix))
                .batch_size(BATCH)
                .num_workers(1)
                .shuffle(SEED)
                .build(CellDataset::all(n));
            (loader, n)
        }
        other => panic!("--source {other}: expected backed or memory"),
    };
    let open_s = start.elapsed().as_secs_f64();
    B::seed(&device, SEED);
    let schedule = KlSchedule {
        warmup_iterations: 0,
        beta: 1.0,
        step: Arc::new(AtomicUsize::new(0)),
    };
    let mut model = ScviConfig::new(GENES).init::<B>(schedule, &device);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let train_start = Instant::now();
    let (mut seen, mut last_loss) = (0, f64::NAN);
    let mut loss_sum = 0.0;
    let mut steps = 0;
    // Seconds in each phase of a step (NdArray runs eagerly, so each phase's clock covers
    // its own work): data (waiting for the loader), forward (encoder, sampling, decoder),
    // loss (NB + ELBO and reading it), backward, optimiser (gradients out, Adam step).
    let mut phases = [0.0f64; 5];
    let mut clock = Instant::now();
    let mut lap = |phase: usize| {
        phases[phase] += clock.elapsed().as_secs_f64();
        clock = Instant::now();
    };
    for batch in loader.iter() {
        lap(0);
        seen += batch.cells.len();
        let (decoded, mean, logvar) = model.forward_sampled(batch.counts.clone(), batch.library);
        lap(1);
        let elbo = model.elbo(batch.counts, decoded, mean, logvar, 1.0);
        let loss = elbo.loss.clone().into_scalar().elem::<f64>();
        lap(2);
        let grads = elbo.loss.backward();
        lap(3);
        let grads = GradientsParams::from_grads(grads, &model);
        model = optim.step(1e-3, model, grads);
        lap(4);
        last_loss = loss;
        loss_sum += loss;
        steps += 1;
    }
    let train_s = train_start.elapsed().as_secs_f64();
    let split: Vec<String> = ["data", "forward", "loss", "backward", "optimizer"]
        .iter()
        .zip(phases)
        .map(|(name, s)| format!("\"{name}\":{s:.2}"))
        .collect();
    assert_eq!(seen, n, "one epoch must see every cell once");
    println!(
        "{{\"mode\":\"train\",\"impl\":\"diffbio-burn\",\"source\":\"{source}\",\"cells\":{n},\"genes\":{GENES},\"batch\":{BATCH},\"steps\":{steps},\"open_s\":{open_s:.2},\"train_s\":{train_s:.2},\"cells_per_s\":{:.0},\"cpu_s\":{:.2},\"peak_rss_mib\":{:.1},\"mean_loss\":{:.2},\"last_loss\":{last_loss:.2},\"phases_s\":{{{}}}}}",
        n as f64 / train_s,
        cpu_seconds(),
        peak_rss_mib(),
        loss_sum / steps.max(1) as f64,
        split.join(","),
    );
}

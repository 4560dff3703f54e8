//! Float32 accuracy of every HMM algorithm on long, near-deterministic chains, against an
//! exact float64 forward-backward (`hmm_ref::reference_mean_nll`).
//!
//! With transition and emission probabilities near 0 and 1 over `T = 300` steps, a log-space
//! recursion that carries unnormalised forward variables (`|α_t| ~ |log p(x_{0..t})|`, growing
//! with `t`) cancels large float32 numbers in `exp(α + β - log p)`: the gradient was off by
//! up to 4e-3. Every path must be within 1e-4 of float64: absolute on the gradient of the
//! mean NLL with respect to the raw logits, relative on the NLL itself.

use crate::common;
use crate::common::to_f64;
use burn::tensor::backend::AutodiffBackend;
use diffbio_burn::Reduction;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::hmm_ref::*;

const S: usize = 6;
const T: usize = 300;
const B: usize = 4;
const TOL: f64 = 1e-4;

/// A near-deterministic model: each state stays with probability ≈ 1 - 1e-4 .. 1 - 1e-5 and
/// emits "its" symbol with about the same probability.
fn sticky_model(rng: &mut StdRng) -> Logits {
    let mut f = |lo: f64, hi: f64| rng.random_range(lo..hi) as f32 as f64;
    let initial = (0..S).map(|_| f(-1.0, 1.0)).collect();
    let mut transitions = Vec::new();
    let mut emissions = Vec::new();
    for i in 0..S {
        for j in 0..S {
            transitions.push(if i == j { f(10.0, 12.0) } else { f(-1.0, 1.0) });
            emissions.push(if i == j { f(10.0, 12.0) } else { f(-1.0, 1.0) });
        }
    }
    Logits {
        s: S,
        e: S,
        initial,
        transitions,
        emissions,
    }
}

/// `(name, observations [B, T], lengths [B])`: sequences sampled from the model; the same
/// with every 10th symbol replaced by a random one (improbable jumps, a few nats each); and
/// uniformly random symbols (`|log p| ≈ 10 T`).
fn data_sets(m: &Logits, rng: &mut StdRng) -> Vec<(&'static str, Vec<i64>, Vec<i64>)> {
    let lengths = vec![T as i64, T as i64, 211, 57];
    let sampled = sample_sequences(m, rng, B, T);
    let mut noisy = sample_sequences(m, rng, B, T);
    for k in (0..B * T).step_by(10) {
        noisy[k] = rng.random_range(0..S as i64);
    }
    let random = random_sequences(rng, B, T, S);
    vec![
        ("sampled", sampled, lengths.clone()),
        ("noisy", noisy, lengths.clone()),
        ("random", random, lengths),
    ]
}

/// Every algorithm (host, sequential and scan, with expected-count and taped gradients) is
/// within 1e-4 of float64 on long near-deterministic chains, padded and unpadded.
fn near_deterministic_chain_matches_f64<B2: AutodiffBackend>() {
    let device = Default::default();
    common::assert_native_float_dtype::<B2>(&device);
    let mut rng = StdRng::seed_from_u64(2024);
    let m = sticky_model(&mut rng);
    let mut failures = Vec::new();
    for (data, x, lengths) in data_sets(&m, &mut rng) {
        for padded in [false, true] {
            let l = padded.then_some(&lengths[..]);
            let (want_nll, want_grads) = reference_mean_nll(&m, &x, B, T, l);
            for (name, hmm) in variants::<B2>(&m, &device) {
                let loss = hmm.forward(obs(&x, B, T), l.map(|l| lens::<B2>(l)), Reduction::Mean);
                let nll = to_f64(loss.clone())[0];
                let grads = param_grads(loss, &hmm);
                let rel = ((nll - want_nll) / want_nll).abs();
                let abs = grads
                    .iter()
                    .zip(&want_grads)
                    .map(|(g, w)| (g - w).abs())
                    .fold(0.0, f64::max);
                let what = format!("{data:>7} padded={padded:<5} {name:<16}");
                eprintln!("{what} nll {want_nll:10.3}  rel err {rel:.1e}  max grad err {abs:.1e}");
                if !(rel <= TOL && abs <= TOL) {
                    failures.push(format!(
                        "{what}: NLL rel err {rel:e}, gradient abs err {abs:e}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "beyond {TOL:e}:\n{}",
        failures.join("\n")
    );
}

backend_tests!(near_deterministic_chain_matches_f64);

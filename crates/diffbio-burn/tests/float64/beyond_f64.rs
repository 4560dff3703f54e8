//! Float64 checks of the likelihoods beyond the references (beta-binomial, NB mixture,
//! Dirichlet-multinomial, the NB/ZINB distributions) and of Baum–Welch: finite-difference
//! gradients of the closed forms on `Autodiff<NdArray<f64>>`, the host kernels against the
//! generic path to 1e-12, and EM against hmmlearn.

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use diffbio_burn::Reduction;
use diffbio_burn::distributions::{NegativeBinomial, ZeroInflatedNegativeBinomial};
use diffbio_burn::hmm::{BaumWelchConfig, Hmm, HmmConfig};
use diffbio_burn::losses::beta_binomial::BetaBinomialLossConfig;
use diffbio_burn::losses::dirichlet_multinomial::DirichletMultinomialLossConfig;
use diffbio_burn::losses::nb_mixture::NegativeBinomialMixtureLossConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use crate::common::{AdF64, GradCheck, tensor_f64, to_f64};

const B: usize = 3;
const G: usize = 4;

fn log_uniform(rng: &mut StdRng, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n)
        .map(|_| rng.random_range(lo.ln()..hi.ln()).exp())
        .collect()
}

/// `(counts, totals)` with zeros, `k = n` and interior counts.
fn binomial_data(rng: &mut StdRng, n: usize, max_total: u32) -> (Vec<f64>, Vec<f64>) {
    (0..n)
        .map(|i| {
            let total = rng.random_range(0..=max_total);
            let k = match i % 4 {
                0 => 0,
                1 => total,
                _ => rng.random_range(0..=total),
            };
            (f64::from(k), f64::from(total))
        })
        .unzip()
}

#[test]
fn beta_binomial_gradients_in_both_parameterisations() {
    for (seed, (lo, hi), max_total) in [
        (1, (0.05, 5.0), 30),
        (2, (5.0, 5e3), 400),
        (3, (1e-3, 0.5), 60),
    ] {
        let mut rng = StdRng::seed_from_u64(seed);
        let (k, n) = binomial_data(&mut rng, B * G, max_total);
        let alpha = log_uniform(&mut rng, B * G, lo, hi);
        let beta = log_uniform(&mut rng, B * G, lo, hi);
        for fast in [true, false] {
            let loss = BetaBinomialLossConfig::new().with_fast_path(fast).init();
            GradCheck::new("BetaBinomial (alpha, beta)")
                .positive_input("alpha", alpha.clone())
                .positive_input("beta", beta.clone())
                .run(|t| {
                    let (kt, nt) = (tensor_f64(k.clone(), [B, G]), tensor_f64(n.clone(), [B, G]));
                    let (a, b) = (t[0].clone().reshape([B, G]), t[1].clone().reshape([B, G]));
                    loss.forward(kt, nt, a, b, Reduction::Sum)
                });
            let mu: Vec<f64> = (0..B * G).map(|_| rng.random_range(0.02..0.98)).collect();
            let conc = log_uniform(&mut rng, B * G, 2.0 * lo, 2.0 * hi);
            GradCheck::new("BetaBinomial (mu, concentration)")
                .positive_input("mu", mu.clone())
                .positive_input("concentration", conc.clone())
                .run(|t| {
                    let (kt, nt) = (tensor_f64(k.clone(), [B, G]), tensor_f64(n.clone(), [B, G]));
                    let (m, c) = (t[0].clone().reshape([B, G]), t[1].clone().reshape([B, G]));
                    loss.forward_mean_no_reduction(kt, nt, m, c).sum()
                });
        }
    }
}

/// Protein-like counts: background around `mu_1`, foreground around `mu_2`.
fn mixture_inputs(seed: u64) -> [Vec<f64>; 6] {
    let mut rng = StdRng::seed_from_u64(seed);
    let mu_1 = log_uniform(&mut rng, B * G, 0.5, 30.0);
    let mu_2: Vec<f64> = mu_1
        .iter()
        .map(|m| m * rng.random_range(1.5..20.0))
        .collect();
    let counts = (0..B * G)
        .map(|i| match i % 3 {
            0 => 0.0,
            1 => mu_1[i].round(),
            _ => mu_2[i].round(),
        })
        .collect();
    let theta_1 = log_uniform(&mut rng, G, 0.1, 500.0);
    let theta_2 = log_uniform(&mut rng, G, 0.1, 500.0);
    let logits = (0..B * G).map(|_| rng.random_range(-4.0..4.0)).collect();
    [counts, mu_1, mu_2, theta_1, theta_2, logits]
}

#[test]
fn nb_mixture_gradients_with_shared_and_separate_theta() {
    for seed in [1, 2] {
        let [x, mu_1, mu_2, theta_1, theta_2, logits] = mixture_inputs(seed);
        for fast in [true, false] {
            let loss = NegativeBinomialMixtureLossConfig::new()
                .with_fast_path(fast)
                .init();
            GradCheck::new("NB mixture, shared theta")
                .positive_input("mu_1", mu_1.clone())
                .positive_input("mu_2", mu_2.clone())
                .positive_input("theta", theta_1.clone())
                .input("pi_logits", logits.clone())
                .run(|t| {
                    let shape = [B, G];
                    loss.forward(
                        tensor_f64(x.clone(), shape),
                        t[0].clone().reshape(shape),
                        t[1].clone().reshape(shape),
                        t[2].clone(),
                        None,
                        t[3].clone().reshape(shape),
                        Reduction::Sum,
                    )
                });
            GradCheck::new("NB mixture, separate theta")
                .positive_input("mu_1", mu_1.clone())
                .positive_input("mu_2", mu_2.clone())
                .positive_input("theta_1", theta_1.clone())
                .positive_input("theta_2", theta_2.clone())
                .input("pi_logits", logits.clone())
                .run(|t| {
                    let shape = [B, G];
                    loss.forward_no_reduction(
                        tensor_f64(x.clone(), shape),
                        t[0].clone().reshape(shape),
                        t[1].clone().reshape(shape),
                        t[2].clone(),
                        Some(t[3].clone()),
                        t[4].clone().reshape(shape),
                    )
                    .sum()
                });
        }
    }
}

#[test]
fn dirichlet_multinomial_gradients_from_log_alpha_and_profiles() {
    let (n, s, l) = (2, 2, 6);
    for (seed, (lo, hi)) in [(1, (-5.0, 1.0)), (2, (0.0, 4.0)), (3, (6.0, 11.0))] {
        let mut rng = StdRng::seed_from_u64(seed);
        let log_alpha: Vec<f64> = (0..n * s * l).map(|_| rng.random_range(lo..hi)).collect();
        let counts: Vec<f64> = (0..n * s * l)
            .map(|i| {
                if i % 5 == 0 {
                    0.0
                } else {
                    f64::from(rng.random_range(0..40u32))
                }
            })
            .collect();
        let loss = DirichletMultinomialLossConfig::new().init();
        GradCheck::new("DirichletMultinomial")
            .input("log_alpha", log_alpha.clone())
            .run(|t| {
                let la = t[0].clone().reshape([n, s, l]);
                let nll: Tensor<AdF64, 2> =
                    loss.forward_no_reduction(la, tensor_f64(counts.clone(), [n, s, l]));
                nll.reshape([n * s])
            });
        let log_precision: Vec<f64> = (0..n * s).map(|_| rng.random_range(lo..hi) + 2.0).collect();
        GradCheck::new("DirichletMultinomial profile")
            .input("logits", log_alpha.clone())
            .input("log_precision", log_precision)
            .run(|t| {
                let logits = t[0].clone().reshape([n, s, l]);
                let lp = t[1].clone().reshape([n, s]);
                loss.forward_profile(
                    logits,
                    lp,
                    tensor_f64(counts.clone(), [n, s, l]),
                    Reduction::Sum,
                )
            });
    }
}

#[test]
fn distribution_log_probs_have_the_closed_form_gradients() {
    let [x, mu, _, theta_g, _, logits] = mixture_inputs(5);
    let theta: Vec<f64> = (0..B * G).map(|i| theta_g[i % G]).collect();
    GradCheck::new("NegativeBinomial::log_prob")
        .positive_input("mu", mu.clone())
        .positive_input("theta", theta.clone())
        .run(|t| {
            NegativeBinomial::new(t[0].clone(), t[1].clone())
                .log_prob(tensor_f64(x.clone(), [B * G]))
        });
    GradCheck::new("ZeroInflatedNegativeBinomial::log_prob")
        .positive_input("mu", mu)
        .positive_input("theta", theta)
        .input("pi_logits", logits)
        .run(|t| {
            ZeroInflatedNegativeBinomial::new(t[0].clone(), t[1].clone(), t[2].clone())
                .log_prob(tensor_f64(x.clone(), [B * G]))
        });
}

// ---------------------------------------------------------------------------------------------
// Baum–Welch
// ---------------------------------------------------------------------------------------------

type F64 = NdArray<f64>;

#[derive(Deserialize)]
struct Reference {
    n_states: usize,
    n_symbols: usize,
    observations: Vec<i64>,
    lengths: Vec<usize>,
    runs: Vec<Run>,
}

#[derive(Deserialize)]
struct Run {
    name: String,
    prior: Prior,
    iterations: usize,
    start: Params,
    log_likelihood_history: Vec<f64>,
    #[serde(rename = "final")]
    fitted: Params,
    final_log_likelihood: f64,
}

#[derive(Deserialize)]
struct Prior {
    initial: f64,
    transitions: f64,
    emissions: f64,
}

#[derive(Deserialize)]
struct Params {
    initial: Vec<f64>,
    transitions: Vec<f64>,
    emissions: Vec<f64>,
}

/// The concatenated reference sequences as a padded `[N, T]` batch with lengths.
fn padded(r: &Reference) -> (Tensor<F64, 2, Int>, Tensor<F64, 1, Int>) {
    let device = Default::default();
    let t = *r.lengths.iter().max().expect("sequences");
    let mut rows = vec![0i64; r.lengths.len() * t];
    let mut at = 0;
    for (b, &len) in r.lengths.iter().enumerate() {
        rows[b * t..b * t + len].copy_from_slice(&r.observations[at..at + len]);
        at += len;
    }
    let n = r.lengths.len();
    let lengths: Vec<i64> = r.lengths.iter().map(|&l| l as i64).collect();
    (
        Tensor::from_data(TensorData::new(rows, [n, t]), &device),
        Tensor::from_data(TensorData::new(lengths, [n]), &device),
    )
}

fn model(p: &Params, s: usize, e: usize) -> Hmm<F64> {
    let device = Default::default();
    let t = |v: &[f64], shape: Vec<usize>| {
        Tensor::<F64, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &device)
            .reshape::<2, _>([shape[0], shape[1]])
    };
    Hmm::from_probs(
        t(&p.initial, vec![1, s]).reshape([s]),
        t(&p.transitions, vec![s, s]),
        t(&p.emissions, vec![s, e]),
    )
}

fn assert_rel(what: &str, got: f64, want: f64, rtol: f64) {
    let err = (got - want).abs() / want.abs();
    assert!(err <= rtol, "{what}: {got} vs {want} (relative {err:e})");
}

/// Same data, same start, same number of iterations as hmmlearn 0.3.3's
/// `CategoricalHMM.fit` (`tests/reference/hmm_em_hmmlearn.py`): every log-likelihood of the
/// history, the final one and the final parameters, with and without Dirichlet priors.
#[test]
fn baum_welch_matches_hmmlearn() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/hmm_em_hmmlearn.json"
    );
    let r: Reference = serde_json::from_str(&std::fs::read_to_string(path).expect("reference"))
        .expect("valid reference");
    let (s, e) = (r.n_states, r.n_symbols);
    let (observations, lengths) = padded(&r);
    for run in &r.runs {
        let em = BaumWelchConfig::new()
            .with_initial_prior(run.prior.initial)
            .with_transitions_prior(run.prior.transitions)
            .with_emissions_prior(run.prior.emissions)
            .init();
        let fit = em.fit(
            model(&run.start, s, e),
            observations.clone(),
            Some(lengths.clone()),
            None,
            run.iterations,
        );
        for (i, (&got, &want)) in fit
            .history
            .iter()
            .zip(&run.log_likelihood_history)
            .enumerate()
        {
            assert_rel(&format!("{}: history[{i}]", run.name), got, want, 1e-9);
        }
        assert_rel(
            &format!("{}: final log-likelihood", run.name),
            fit.log_likelihood,
            run.final_log_likelihood,
            1e-9,
        );
        let (pi, a, b) = fit.model.log_probs().to_probs();
        for (name, got, want) in [
            ("initial", pi, &run.fitted.initial),
            ("transitions", a, &run.fitted.transitions),
            ("emissions", b, &run.fitted.emissions),
        ] {
            for (j, (g, w)) in got.iter().zip(want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-8,
                    "{}: {name}[{j}] = {g}, hmmlearn {w}",
                    run.name
                );
            }
        }
        println!(
            "{}: final log-likelihood {:.10} (hmmlearn {:.10})",
            run.name, fit.log_likelihood, run.final_log_likelihood
        );
    }
}

#[test]
fn baum_welch_is_monotone_keeps_structural_zeros_and_recovers_the_model() {
    let device = Default::default();
    let truth = Hmm::<F64>::from_probs(
        Tensor::from_floats([0.7, 0.3, 0.0], &device),
        Tensor::from_floats(
            [[0.9, 0.1, 0.0], [0.0, 0.8, 0.2], [0.15, 0.0, 0.85]],
            &device,
        ),
        Tensor::from_floats(
            [
                [0.7, 0.1, 0.1, 0.1],
                [0.1, 0.7, 0.1, 0.1],
                [0.05, 0.05, 0.1, 0.8],
            ],
            &device,
        ),
    );
    let data = truth.sample(60, 200, 11).observations;
    let start = Hmm::<F64>::from_probs(
        Tensor::from_floats([0.4, 0.6, 0.0], &device),
        Tensor::from_floats([[0.6, 0.4, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]], &device),
        Tensor::from_floats(
            [
                [0.4, 0.2, 0.2, 0.2],
                [0.2, 0.4, 0.2, 0.2],
                [0.2, 0.2, 0.2, 0.4],
            ],
            &device,
        ),
    );
    let fit = BaumWelchConfig::new()
        .init()
        .fit(start, data.clone(), None, None, 60);
    for w in fit.history.windows(2) {
        assert!(
            w[1] >= w[0] - 1e-8 * w[0].abs(),
            "EM decreased: {} -> {}",
            w[0],
            w[1]
        );
    }
    let (pi, a, b) = fit.model.log_probs().to_probs();
    assert_eq!(
        (pi[2], a[2], a[3], a[7]),
        (0.0, 0.0, 0.0, 0.0),
        "structural zeros"
    );
    let (tpi, ta, tb) = truth.log_probs().to_probs();
    let worst = a
        .iter()
        .zip(&ta)
        .chain(b.iter().zip(&tb))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 0.05,
        "EM parameters within 0.05 of the truth: {worst}"
    );
    assert!((pi[0] - tpi[0]).abs() < 0.15);
    let truth_ll: f64 = to_f64(truth.log_likelihood(data, None)).iter().sum();
    assert!(
        fit.log_likelihood >= truth_ll,
        "{} < {truth_ll}",
        fit.log_likelihood
    );
}

#[test]
fn baum_welch_weights_count_sequences_and_lengths_drop_padding() {
    let device = Default::default();
    let start = HmmConfig::new(3, 4).with_seed(3).init::<F64>(&device);
    let x = HmmConfig::new(3, 4)
        .with_seed(4)
        .init::<F64>(&device)
        .sample(4, 30, 5)
        .observations;
    let em = BaumWelchConfig::new().with_transitions_prior(2.0).init();
    let weights = Tensor::<F64, 1>::from_floats([2.0, 1.0, 0.0, 3.0], &device);
    let weighted = em.step(&start, x.clone(), None, Some(weights));
    // The same as listing sequence 0 twice, 1 once, 3 three times.
    let rows = Tensor::<F64, 1, Int>::from_ints([0, 0, 1, 3, 3, 3], &device);
    let repeated = em.step(&start, x.clone().select(0, rows), None, None);
    assert_rel(
        "weighted log-likelihood",
        weighted.log_likelihood,
        repeated.log_likelihood,
        1e-12,
    );
    let (w, r) = (
        weighted.model.log_probs().to_probs(),
        repeated.model.log_probs().to_probs(),
    );
    for (g, want) in [(w.0, r.0), (w.1, r.1), (w.2, r.2)] {
        for (a, b) in g.iter().zip(&want) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }
    // Padding: a sequence cut at 10 symbols equals the sequence of 10 symbols.
    let cut = em.step(
        &start,
        x.clone(),
        Some(Tensor::from_ints([10, 30, 30, 30], &device)),
        None,
    );
    let short = em.step(
        &start,
        x.clone().narrow(1, 0, 10).narrow(0, 0, 1),
        None,
        None,
    );
    let rest = em.step(&start, x.narrow(0, 1, 3), None, None);
    assert_rel(
        "padded log-likelihood",
        cut.log_likelihood,
        short.log_likelihood + rest.log_likelihood,
        1e-12,
    );
}

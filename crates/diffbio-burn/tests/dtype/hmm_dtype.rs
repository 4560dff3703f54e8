//! dtype discipline of the HMM: every tensor it creates follows the dtype of its inputs and
//! parameters, never the device's default float type.
//!
//! Burn 0.21 keys the default float dtype by device type, which `NdArray<f32>` and
//! `NdArray<f64>` share: once a process has used `NdArray<f64>`, `NdArray<f32>` creates F64
//! tensors by default. Explicitly F32 inputs must still work (as in half-precision training on a
//! GPU, where the parameters are F16 and the device default F32): every entry point, with every
//! algorithm, gives F32 outputs and gradients and never panics with "Data type mismatch".
//! This binary touches `NdArray<f64>` first on purpose (so does `mixed_precision.rs`).

use std::sync::Once;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::cast::ToElement;
use burn::tensor::{DType, Int, Tensor, TensorData};
use diffbio_burn::Reduction;
use diffbio_burn::hmm::{Hmm, HmmAlgorithm, HmmConfig};

type F32 = NdArray<f32>;
type AdF32 = Autodiff<F32>;

/// Uses `NdArray<f64>` before anything else in this process, and checks the premise: the
/// default float dtype of `NdArray<f32>` is now F64.
fn touch_f64_first() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let x = Tensor::<NdArray<f64>, 1>::from_floats([0.5, 1.5], &Default::default());
        assert_eq!(x.exp().sum().dtype(), DType::F64);
    });
    assert_eq!(
        Tensor::<F32, 1>::zeros([1], &Default::default()).dtype(),
        DType::F64,
        "premise: after NdArray<f64>, NdArray<f32> creates F64 tensors by default"
    );
}

/// An explicitly F32 tensor.
fn f32_tensor<B: Backend, const D: usize>(data: &[f64], shape: [usize; D]) -> Tensor<B, D> {
    let data: Vec<f32> = data.iter().map(|&v| v as f32).collect();
    Tensor::from_data(
        TensorData::new(data, shape),
        (&Default::default(), DType::F32),
    )
}

fn ints<B: Backend, const D: usize>(data: &[i64], shape: [usize; D]) -> Tensor<B, D, Int> {
    Tensor::from_data(TensorData::new(data.to_vec(), shape), &Default::default())
}

const S: usize = 3;
const E: usize = 4;
const INITIAL: [f64; S] = [0.2, -0.4, 0.1];
const TRANSITIONS: [f64; S * S] = [1.0, -0.5, 0.3, 0.0, 2.0, -1.0, 0.4, 0.4, -0.2];
const EMISSIONS: [f64; S * E] = [
    0.5, -1.0, 0.0, 0.2, //
    -0.3, 0.8, 1.1, -0.6, //
    0.0, 0.0, -2.0, 1.5,
];

fn logits<B: Backend>() -> (Tensor<B, 1>, Tensor<B, 2>, Tensor<B, 2>) {
    (
        f32_tensor(&INITIAL, [S]),
        f32_tensor(&TRANSITIONS, [S, S]),
        f32_tensor(&EMISSIONS, [S, E]),
    )
}

/// Two sequences, the second padded after 5 symbols (T = 70 >= 64, so `Auto` picks the scan
/// off the host, and the scan's odd-length padding with identities runs).
fn batch<B: Backend>() -> (Tensor<B, 2, Int>, Tensor<B, 1, Int>) {
    let t = 70;
    let x: Vec<i64> = (0..2 * t).map(|k| (k * 7 % 11 % E) as i64).collect();
    (ints(&x, [2, t]), ints(&[t as i64, 5], [2]))
}

const ALGORITHMS: [HmmAlgorithm; 4] = [
    HmmAlgorithm::Auto,
    HmmAlgorithm::Host,
    HmmAlgorithm::Sequential,
    HmmAlgorithm::ParallelScan,
];

/// Values, Viterbi, posteriors and sampling of `hmm` (whose parameters are F32) give F32 (or
/// integer) outputs.
fn check_inference<B: Backend>(what: &str, hmm: &Hmm<B>) {
    let (x, lengths) = batch::<B>();
    for lengths in [None, Some(lengths)] {
        let padded = lengths.is_some();
        let ll = hmm.log_likelihood(x.clone(), lengths.clone());
        assert_eq!(
            ll.dtype(),
            DType::F32,
            "{what} padded={padded}: log_likelihood"
        );
        let loss = hmm.forward(x.clone(), lengths.clone(), Reduction::Mean);
        assert_eq!(loss.dtype(), DType::F32, "{what} padded={padded}: forward");
        assert!(loss.into_scalar().to_f64().is_finite());
        let paths = hmm.viterbi(x.clone(), lengths.clone());
        assert_eq!(
            paths.log_prob.dtype(),
            DType::F32,
            "{what}: viterbi log_prob"
        );
        let post = hmm.posteriors(x.clone(), lengths.clone());
        assert_eq!(post.dtype(), DType::F32, "{what}: posteriors");
    }
    let sample = hmm.sample(3, 5, 1);
    assert_eq!(sample.observations.dims(), [3, 5], "{what}: sample");
}

#[test]
fn inference_follows_the_f32_inputs_on_ndarray() {
    touch_f64_first();
    for algorithm in ALGORITHMS {
        let (i, t, e) = logits::<F32>();
        let from_logits = Hmm::from_logits(i.clone(), t.clone(), e.clone());
        let from_log_probs = Hmm::from_log_probs(i.clone(), t.clone(), e.clone());
        let from_probs = Hmm::from_probs(i.exp(), t.exp(), e.exp());
        for (name, hmm) in [
            ("from_logits", from_logits),
            ("from_log_probs", from_log_probs),
            ("from_probs", from_probs),
        ] {
            assert_eq!(hmm.initial.val().dtype(), DType::F32, "{name}");
            assert_eq!(hmm.transitions.val().dtype(), DType::F32, "{name}");
            assert_eq!(hmm.emissions.val().dtype(), DType::F32, "{name}");
            check_inference(
                &format!("{name} {algorithm:?}"),
                &hmm.with_algorithm(algorithm),
            );
        }
    }
}

/// Forward and backward with every algorithm and both gradients: F32 values and gradients.
fn check_training<B: AutodiffBackend>() {
    for algorithm in ALGORITHMS {
        for taped in [false, true] {
            if taped && algorithm == HmmAlgorithm::Host {
                continue;
            }
            let what = format!("{algorithm:?} taped={taped}");
            let (i, t, e) = logits::<B>();
            let from_log_probs = Hmm::from_log_probs(i.clone(), t.clone(), e.clone());
            let from_probs = Hmm::from_probs(i.clone().exp(), t.clone().exp(), e.clone().exp());
            let from_logits =
                Hmm::from_logits(i.require_grad(), t.require_grad(), e.require_grad());
            for (name, hmm) in [
                ("from_logits", from_logits),
                ("from_log_probs", from_log_probs),
                ("from_probs", from_probs),
            ] {
                let hmm = hmm.with_algorithm(algorithm).with_taped_gradient(taped);
                let (x, lengths) = batch::<B>();
                for lengths in [None, Some(lengths)] {
                    let loss = hmm.forward(x.clone(), lengths, Reduction::Mean);
                    assert_eq!(loss.dtype(), DType::F32, "{name} {what}: loss");
                    let grads = loss.backward();
                    for g in [
                        hmm.initial.grad(&grads).map(|g| g.dtype()),
                        hmm.transitions.grad(&grads).map(|g| g.dtype()),
                        hmm.emissions.grad(&grads).map(|g| g.dtype()),
                    ] {
                        assert_eq!(g, Some(DType::F32), "{name} {what}: gradient");
                    }
                }
                if !taped {
                    check_inference(&format!("{name} {what}"), &hmm);
                }
            }
        }
    }
}

#[test]
fn training_follows_the_f32_parameters_on_autodiff_ndarray() {
    touch_f64_first();
    check_training::<AdF32>();
}

/// `HmmConfig::init` has no input to follow: it creates its parameters in the device's
/// default dtype (here F64), and everything downstream follows them consistently.
#[test]
fn config_init_is_self_consistent() {
    touch_f64_first();
    for algorithm in ALGORITHMS {
        let hmm = HmmConfig::new(S, E)
            .with_algorithm(algorithm)
            .init::<AdF32>(&Default::default());
        let dtype = hmm.initial.val().dtype();
        let (x, lengths) = batch::<AdF32>();
        let loss = hmm.forward(x.clone(), Some(lengths.clone()), Reduction::Mean);
        assert_eq!(loss.dtype(), dtype, "{algorithm:?}");
        let grads = loss.backward();
        assert!(hmm.emissions.grad(&grads).is_some());
        assert_eq!(
            hmm.posteriors(x.clone(), Some(lengths.clone())).dtype(),
            dtype
        );
        assert_eq!(hmm.viterbi(x, Some(lengths)).log_prob.dtype(), dtype);
    }
}

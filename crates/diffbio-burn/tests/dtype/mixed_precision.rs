//! Every loss computes in the dtype of its inputs, never the device default: float32 inputs on
//! `Autodiff<NdArray<f32>>` in a process whose NdArray default has become float64 (Burn 0.21:
//! the first NdArray precision a process uses becomes the default of both) give float32
//! values and gradients on both paths, and agree with each other. Inputs of two dtypes are
//! refused with a message naming the loss and the arguments. (The HMM's are in `hmm_dtype.rs`.)

use crate::common::{AdF32 as B, assert_close, to_f64};
use burn::backend::NdArray;
use burn::tensor::{DType, Int, Tensor, TensorData};
use diffbio_burn::Reduction;
use diffbio_burn::losses::bpnet::BpnetMixtureLossConfig;
use diffbio_burn::losses::log1p_mse::Log1pMseLossConfig;
use diffbio_burn::losses::multinomial::MultinomialNllLossConfig;
use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
use diffbio_burn::losses::vae::{Reconstruction, VaeLossConfig};
use diffbio_burn::losses::zinb::ZinbLossConfig;

/// Makes float64 the NdArray default in this process, and checks that it did.
fn default_to_f64() {
    let device = Default::default();
    let _ = Tensor::<NdArray<f64>, 1>::zeros([1], &device) + 1.0;
    assert_eq!(
        Tensor::<B, 1>::zeros([1], &device).dtype(),
        DType::F64,
        "the test needs a process whose NdArray default is f64"
    );
}

/// An explicitly float32 leaf.
fn f32_leaf<const D: usize>(v: &[f32], shape: [usize; D]) -> Tensor<B, D> {
    let device = Default::default();
    Tensor::<B, D>::from_data(TensorData::new(v.to_vec(), shape), (&device, DType::F32))
        .require_grad()
}

fn values(n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n)
        .map(|i| lo + (hi - lo) * ((i * 7919 % 97) as f32 / 96.0))
        .collect()
}

fn counts(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 31) % 9) as f32).collect()
}

/// Runs `f` on both paths over fresh float32 leaves; every output and gradient must be
/// float32 and finite, and the paths must agree.
fn check<const D: usize>(
    what: &str,
    inputs: &[(Vec<f32>, [usize; D])],
    f: impl Fn(bool, &[Tensor<B, D>]) -> Vec<Tensor<B, 1>>,
) {
    default_to_f64();
    let run = |fast: bool| {
        let leaves: Vec<Tensor<B, D>> = inputs.iter().map(|(v, s)| f32_leaf(v, *s)).collect();
        let outputs = f(fast, &leaves);
        for o in &outputs {
            assert_eq!(o.dtype(), DType::F32, "{what} (fast {fast}): output dtype");
        }
        let total = outputs
            .iter()
            .cloned()
            .reduce(|a, b| a + b)
            .expect("an output");
        let grads = total.backward();
        let mut all = outputs.into_iter().map(to_f64).collect::<Vec<_>>();
        for leaf in &leaves {
            if let Some(g) = leaf.grad(&grads) {
                assert_eq!(
                    g.dtype(),
                    DType::F32,
                    "{what} (fast {fast}): gradient dtype"
                );
                all.push(to_f64(g));
            }
        }
        all
    };
    let (fast, generic) = (run(true), run(false));
    assert_eq!(
        fast.len(),
        generic.len(),
        "{what}: same gradients on both paths"
    );
    for (i, (a, b)) in fast.iter().zip(&generic).enumerate() {
        assert!(
            a.iter().all(|v| v.is_finite()),
            "{what}: non-finite result {i}"
        );
        assert_close(&format!("{what}: result {i}"), a, b, 1e-5, 1e-4);
    }
}

#[test]
fn count_losses_follow_f32_inputs() {
    let (b, g) = (3, 5);
    let inputs = [
        (counts(b * g), [b, g]),
        (values(b * g, 0.1, 20.0), [b, g]),
        (values(b * g, 0.5, 50.0), [b, g]),
        (values(b * g, -3.0, 3.0), [b, g]),
    ];
    check("NB", &inputs[..3], |fast, l| {
        let loss = NegativeBinomialLossConfig::new()
            .with_fast_path(fast)
            .init();
        let x = || l[0].clone();
        vec![
            loss.forward(x(), l[1].clone(), l[2].clone(), Reduction::Mean),
            loss.forward_no_reduction(x(), l[1].clone(), l[2].clone())
                .sum(),
        ]
    });
    check("ZINB", &inputs, |fast, l| {
        let loss = ZinbLossConfig::new().with_fast_path(fast).init();
        let (x, mu, th, pi) = (l[0].clone(), l[1].clone(), l[2].clone(), l[3].clone());
        vec![
            loss.forward(
                x.clone(),
                mu.clone(),
                th.clone(),
                pi.clone(),
                Reduction::Sum,
            ),
            loss.forward_no_reduction(x, mu, th, pi).sum(),
        ]
    });
}

#[test]
fn vae_follows_f32_inputs() {
    let inputs = [
        (
            counts(12).iter().map(|c| (c % 2.0).min(1.0)).collect(),
            [3, 4],
        ),
        (values(12, -4.0, 4.0), [3, 4]),
        (values(6, -1.0, 1.0), [3, 2]),
        (values(6, -2.0, 2.0), [3, 2]),
    ];
    let _ = &inputs;
    for kind in [Reconstruction::Mse, Reconstruction::Bce] {
        let inputs: Vec<(Vec<f32>, [usize; 2])> = inputs.to_vec();
        check(&format!("VAE {kind:?}"), &inputs, |fast, l| {
            let loss = VaeLossConfig::new()
                .with_reconstruction(kind)
                .with_fast_path(fast)
                .init();
            let (x, r, m, v) = (l[0].clone(), l[1].clone(), l[2].clone(), l[3].clone());
            let elbo = loss.forward(x.clone(), r.clone(), m.clone(), v.clone(), Reduction::Mean);
            let terms = loss.forward_no_reduction(x, r, m, v);
            vec![elbo.loss, terms.recon.sum(), terms.kl.sum()]
        });
    }
}

#[test]
fn profile_losses_follow_f32_inputs() {
    let (n, s, l) = (3, 2, 6);
    let inputs3 = [
        (counts(n * s * l), [n, s, l]),
        (values(n * s * l, -2.0, 2.0), [n, s, l]),
    ];
    check("MNLL", &inputs3, |fast, t| {
        let loss = MultinomialNllLossConfig::new().with_fast_path(fast).init();
        let per_row: Tensor<B, 2> = loss.forward_logits_no_reduction(t[1].clone(), t[0].clone());
        vec![
            loss.forward_logits(t[1].clone(), t[0].clone(), Reduction::Mean),
            per_row.sum(),
        ]
    });
    check("BPNet mixture", &inputs3, |fast, t| {
        let loss = BpnetMixtureLossConfig::new()
            .with_count_loss_weight(3.0)
            .with_fast_path(fast)
            .init();
        let device = Default::default();
        let log_counts = t[1].clone().sum_dim(2).slice([0..n, 0..1]).reshape([n, 1]);
        let labels = Tensor::<B, 1, Int>::from_data(TensorData::from([1i64, 0, 1]), &device);
        let reduced = loss.forward(
            t[0].clone(),
            t[1].clone(),
            log_counts.clone(),
            Some(labels.clone()),
        );
        let per_region =
            loss.forward_no_reduction(t[0].clone(), t[1].clone(), log_counts, Some(labels));
        vec![reduced.total, per_region.total.sum()]
    });
    let inputs2 = [(counts(8), [4, 2]), (values(8, -1.0, 3.0), [4, 2])];
    check("log1p-MSE", &inputs2, |_fast, t| {
        let loss = Log1pMseLossConfig::new().init();
        vec![loss.forward(t[1].clone(), t[0].clone(), Reduction::Mean)]
    });
}

#[test]
#[should_panic(expected = "NegativeBinomialLoss: `mu` is F32 but `theta` is F64")]
fn two_dtypes_are_refused_with_a_clear_message() {
    default_to_f64();
    let device = Default::default();
    let x = f32_leaf(&[1.0, 2.0], [1, 2]);
    let mu = f32_leaf(&[1.0, 2.0], [1, 2]);
    let theta = Tensor::<B, 1>::from_data(
        TensorData::new(vec![1.0f64, 2.0], [2]),
        (&device, DType::F64),
    );
    NegativeBinomialLossConfig::new()
        .init()
        .forward(x, mu, theta, Reduction::Mean);
}

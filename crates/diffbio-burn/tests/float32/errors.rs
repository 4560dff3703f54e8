//! Bad input gives a clear panic on every backend: shape mismatches name the loss, the
//! argument and the shapes; value-domain violations (checked by the default-on validation)
//! name the loss, the input and the first bad value. Config errors (`init`) are backend-free
//! and tested next to each config in the library.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor, TensorData};
use diffbio_burn::Reduction;
use diffbio_burn::losses::bpnet::BpnetMixtureLossConfig;
use diffbio_burn::losses::kl::gaussian_kl;
use diffbio_burn::losses::log1p_mse::Log1pMseLossConfig;
use diffbio_burn::losses::multinomial::MultinomialNllLossConfig;
use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
use diffbio_burn::losses::vae::{Reconstruction, VaeLossConfig};
use diffbio_burn::losses::zinb::ZinbLossConfig;

fn t<B: AutodiffBackend, const D: usize>(data: &[f32], shape: [usize; D]) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(data.to_vec(), shape), &Default::default())
}

fn ints<B: AutodiffBackend>(data: &[i64]) -> Tensor<B, 1, Int> {
    Tensor::from_data(
        TensorData::new(data.to_vec(), [data.len()]),
        &Default::default(),
    )
}

const OK: [f32; 4] = [1.0, 2.0, 0.0, 4.0];

fn nb<B: AutodiffBackend>(counts: &[f32], mu: &[f32], theta: Tensor<B, 1>) {
    NegativeBinomialLossConfig::new().init().forward(
        t::<B, 2>(counts, [2, 2]),
        t::<B, 2>(mu, [2, 2]),
        theta,
        Reduction::Sum,
    );
}

fn nb_mu_shape<B: AutodiffBackend>() {
    NegativeBinomialLossConfig::new()
        .init()
        .forward_no_reduction(
            t::<B, 2>(&OK, [2, 2]),
            Tensor::<B, 2>::ones([2, 3], &Default::default()),
            t::<B, 1>(&[1.0, 1.0], [2]),
        );
}

fn nb_theta_shape<B: AutodiffBackend>() {
    nb::<B>(&OK, &OK, t::<B, 1>(&[1.0, 1.0, 1.0], [3]));
}

fn nb_negative_count<B: AutodiffBackend>() {
    nb::<B>(&[1.0, 2.0, 0.0, -1.0], &OK, t::<B, 1>(&[1.0, 1.0], [2]));
}

fn nb_nan_count<B: AutodiffBackend>() {
    nb::<B>(&[1.0, f32::NAN, 0.0, 1.0], &OK, t::<B, 1>(&[1.0, 1.0], [2]));
}

fn nb_negative_mu<B: AutodiffBackend>() {
    nb::<B>(&OK, &[-0.5, 2.0, 1.0, 4.0], t::<B, 1>(&[1.0, 1.0], [2]));
}

fn nb_zero_theta<B: AutodiffBackend>() {
    nb::<B>(&OK, &OK, t::<B, 1>(&[1.0, 0.0], [2]));
}

fn nb_validation_can_be_switched_off<B: AutodiffBackend>() {
    // Out of the domain, but no panic: the caller gets whatever the formula gives.
    NegativeBinomialLossConfig::new()
        .with_validate(false)
        .init()
        .forward(
            t::<B, 2>(&[1.0, 2.0, 0.0, -1.0], [2, 2]),
            t::<B, 2>(&OK, [2, 2]),
            t::<B, 1>(&[1.0, 1.0], [2]),
            Reduction::Sum,
        );
}

fn zinb<B: AutodiffBackend>(theta: &[f32], logits: Tensor<B, 2>) {
    ZinbLossConfig::new().init().forward_no_reduction(
        t::<B, 2>(&[0.0, 1.0], [1, 2]),
        t::<B, 2>(&[1.0, 1.0], [1, 2]),
        t::<B, 1>(theta, [2]),
        logits,
    );
}

fn zinb_pi_logits_shape<B: AutodiffBackend>() {
    zinb::<B>(&[2.0, 0.5], Tensor::zeros([2, 1], &Default::default()));
}

fn zinb_infinite_logit<B: AutodiffBackend>() {
    zinb::<B>(&[2.0, 0.5], t::<B, 2>(&[0.0, f32::INFINITY], [1, 2]));
}

fn zinb_negative_theta<B: AutodiffBackend>() {
    zinb::<B>(&[-2.0, 1.0], t::<B, 2>(&[0.0, 0.0], [1, 2]));
}

fn vae<B: AutodiffBackend>(
    reconstruction: Reconstruction,
    x: Tensor<B, 2>,
    x_recon: Tensor<B, 2>,
    mean: Tensor<B, 2>,
    logvar: Tensor<B, 2>,
) {
    VaeLossConfig::new()
        .with_reconstruction(reconstruction)
        .init()
        .forward(x, x_recon, mean, logvar, Reduction::Mean);
}

fn m<B: AutodiffBackend>() -> Tensor<B, 2> {
    t::<B, 2>(&[0.0, 1.0, 1.0, 0.0], [2, 2])
}

fn vae_recon_shape<B: AutodiffBackend>() {
    let x_recon = Tensor::zeros([2, 1], &Default::default());
    vae::<B>(Reconstruction::Mse, m(), x_recon, m(), m());
}

fn vae_latent_shape<B: AutodiffBackend>() {
    let logvar = Tensor::zeros([2, 3], &Default::default());
    vae::<B>(Reconstruction::Mse, m(), m(), m(), logvar);
}

fn vae_latent_batch<B: AutodiffBackend>() {
    let z = Tensor::<B, 2>::zeros([3, 2], &Default::default());
    vae::<B>(Reconstruction::Mse, m(), m(), z.clone(), z);
}

fn vae_bce_target_outside_unit_interval<B: AutodiffBackend>() {
    let x = t::<B, 2>(&[0.0, 1.0, 1.0, 2.0], [2, 2]);
    vae::<B>(Reconstruction::Bce, x, m(), m(), m());
}

fn vae_nan_logvar<B: AutodiffBackend>() {
    let logvar = t::<B, 2>(&[f32::NAN, 0.0, 0.0, 0.0], [2, 2]);
    vae::<B>(Reconstruction::Mse, m(), m(), m(), logvar);
}

fn kl_shape<B: AutodiffBackend>() {
    let device = Default::default();
    gaussian_kl(
        Tensor::<B, 2>::zeros([1, 2], &device),
        Tensor::<B, 2>::zeros([2, 1], &device),
    );
}

const LOG_P: [f32; 3] = [-1.0, -1.5, -0.9];

fn mnll_shape<B: AutodiffBackend>() {
    MultinomialNllLossConfig::new().init().forward(
        t::<B, 2>(&LOG_P, [1, 3]),
        Tensor::ones([3, 1], &Default::default()),
        Reduction::Mean,
    );
}

fn mnll_negative_count<B: AutodiffBackend>() {
    MultinomialNllLossConfig::new().init().forward(
        t::<B, 2>(&LOG_P, [1, 3]),
        t::<B, 2>(&[1.0, 0.0, -1.0], [1, 3]),
        Reduction::Mean,
    );
}

fn mnll_infinite_log_prob<B: AutodiffBackend>() {
    MultinomialNllLossConfig::new().init().forward(
        t::<B, 2>(&[f32::NEG_INFINITY, 0.0, 0.0], [1, 3]),
        t::<B, 2>(&[0.0, 1.0, 1.0], [1, 3]),
        Reduction::Mean,
    );
}

fn mnll_logits_shape<B: AutodiffBackend>() {
    MultinomialNllLossConfig::new().init().forward_logits(
        t::<B, 2>(&LOG_P, [1, 3]),
        Tensor::ones([3, 1], &Default::default()),
        Reduction::Mean,
    );
}

/// The composite path names the argument too (it once reported the `log_softmax` it
/// builds as `log_probs`), also on NdArray.
fn mnll_logits_shape_composite<B: AutodiffBackend>() {
    MultinomialNllLossConfig::new()
        .with_fast_path(false)
        .init()
        .forward_logits(
            t::<B, 2>(&LOG_P, [1, 3]),
            Tensor::ones([3, 1], &Default::default()),
            Reduction::Mean,
        );
}

fn log1p_mse_shape<B: AutodiffBackend>() {
    Log1pMseLossConfig::new().init().forward(
        t::<B, 2>(&[1.0, 2.0], [1, 2]),
        t::<B, 2>(&[1.0, 2.0], [2, 1]),
        Reduction::Mean,
    );
}

fn log1p_mse_negative_count<B: AutodiffBackend>() {
    Log1pMseLossConfig::new().init().forward(
        t::<B, 2>(&[1.0, 2.0], [2, 1]),
        t::<B, 2>(&[1.0, -3.0], [2, 1]),
        Reduction::Mean,
    );
}

fn log1p_mse_output_rank<B: AutodiffBackend>() {
    let _: Tensor<B, 2> = Log1pMseLossConfig::new().init().forward_no_reduction(
        t::<B, 2>(&[1.0, 2.0], [2, 1]),
        t::<B, 2>(&[1.0, 2.0], [2, 1]),
    );
}

fn bpnet<B: AutodiffBackend>(
    y: &[f32],
    logits: Tensor<B, 3>,
    log_counts: Tensor<B, 2>,
    labels: Option<&[i64]>,
) {
    BpnetMixtureLossConfig::new().init().forward(
        t::<B, 3>(y, [2, 1, 2]),
        logits,
        log_counts,
        labels.map(ints::<B>),
    );
}

const Y: [f32; 4] = [1.0, 2.0, 0.0, 3.0];

fn logits<B: AutodiffBackend>() -> Tensor<B, 3> {
    t::<B, 3>(&[0.1, -0.2, 0.3, 0.0], [2, 1, 2])
}

fn log_counts<B: AutodiffBackend>() -> Tensor<B, 2> {
    t::<B, 2>(&[1.0, 1.5], [2, 1])
}

fn bpnet_transposed_log_counts<B: AutodiffBackend>() {
    let transposed = Tensor::zeros([1, 2], &Default::default());
    bpnet::<B>(&Y, logits(), transposed, None);
}

fn bpnet_logits_shape<B: AutodiffBackend>() {
    bpnet::<B>(
        &Y,
        Tensor::zeros([2, 2, 1], &Default::default()),
        log_counts(),
        None,
    );
}

fn bpnet_labels_shape<B: AutodiffBackend>() {
    bpnet::<B>(&Y, logits(), log_counts(), Some(&[1, 0, 1]));
}

fn bpnet_label_two<B: AutodiffBackend>() {
    bpnet::<B>(&Y, logits(), log_counts(), Some(&[1, 2]));
}

fn bpnet_negative_counts<B: AutodiffBackend>() {
    bpnet::<B>(&[-2.0, 2.0, 0.0, 3.0], logits(), log_counts(), None);
}

backend_tests!(
    #[should_panic(
        expected = "NegativeBinomialLoss: shape of `counts` [2, 2] does not match shape of `mu` [2, 3]"
    )]
    nb_mu_shape,
    #[should_panic(
        expected = "NegativeBinomialLoss: `theta` has shape [3], expected [2] (per gene) or [2, 2] to match `counts`"
    )]
    nb_theta_shape,
    #[should_panic(
        expected = "NegativeBinomialLoss: `counts` must be finite and non-negative; found -1 at flat index 3"
    )]
    nb_negative_count,
    #[should_panic(
        expected = "NegativeBinomialLoss: `counts` must be finite and non-negative; found NaN at flat index 1"
    )]
    nb_nan_count,
    #[should_panic(
        expected = "NegativeBinomialLoss: `mu` must be finite and non-negative; found -0.5 at flat index 0"
    )]
    nb_negative_mu,
    #[should_panic(
        expected = "NegativeBinomialLoss: `theta` must be finite and positive; found 0 at flat index 1"
    )]
    nb_zero_theta,
    nb_validation_can_be_switched_off,
    #[should_panic(
        expected = "ZinbLoss: shape of `counts` [1, 2] does not match shape of `pi_logits` [2, 1]"
    )]
    zinb_pi_logits_shape,
    #[should_panic(expected = "ZinbLoss: `pi_logits` must be finite; found inf at flat index 1")]
    zinb_infinite_logit,
    #[should_panic(
        expected = "ZinbLoss: `theta` must be finite and positive; found -2 at flat index 0"
    )]
    zinb_negative_theta,
    #[should_panic(
        expected = "VaeLoss: shape of `x` [2, 2] does not match shape of `x_recon` [2, 1]"
    )]
    vae_recon_shape,
    #[should_panic(
        expected = "VaeLoss: shape of `mean` [2, 2] does not match shape of `logvar` [2, 3]"
    )]
    vae_latent_shape,
    #[should_panic(
        expected = "VaeLoss: batch size of `mean` [3, 2] (3) does not match the reconstruction's (2)"
    )]
    vae_latent_batch,
    #[should_panic(expected = "VaeLoss: `x` must be in [0, 1]; found 2 at flat index 3")]
    vae_bce_target_outside_unit_interval,
    #[should_panic(expected = "VaeLoss: `logvar` must be finite; found NaN at flat index 0")]
    vae_nan_logvar,
    #[should_panic(
        expected = "gaussian_kl: shape of `mean` [1, 2] does not match shape of `logvar` [2, 1]"
    )]
    kl_shape,
    #[should_panic(
        expected = "MultinomialNllLoss: shape of `log_probs` [1, 3] does not match shape of `counts` [3, 1]"
    )]
    mnll_shape,
    #[should_panic(
        expected = "MultinomialNllLoss: `counts` must be finite and non-negative; found -1 at flat index 2"
    )]
    mnll_negative_count,
    #[should_panic(
        expected = "MultinomialNllLoss: `log_probs` must be finite; found -inf at flat index 0"
    )]
    mnll_infinite_log_prob,
    #[should_panic(
        expected = "MultinomialNllLoss: shape of `logits` [1, 3] does not match shape of `counts` [3, 1]"
    )]
    mnll_logits_shape,
    #[should_panic(
        expected = "MultinomialNllLoss: shape of `logits` [1, 3] does not match shape of `counts` [3, 1]"
    )]
    mnll_logits_shape_composite,
    #[should_panic(
        expected = "Log1pMseLoss: shape of `log_pred` [1, 2] does not match shape of `counts` [2, 1]"
    )]
    log1p_mse_shape,
    #[should_panic(
        expected = "Log1pMseLoss: `counts` must be finite and non-negative; found -3 at flat index 1"
    )]
    log1p_mse_negative_count,
    #[should_panic(
        expected = "Log1pMseLoss: reduces the last dimension, so a rank-2 input needs output rank 1, got 2"
    )]
    log1p_mse_output_rank,
    #[should_panic(
        expected = "BpnetMixtureLoss: `log_counts` has shape [1, 2], expected [2, 1] (`[n, 1]`)"
    )]
    bpnet_transposed_log_counts,
    #[should_panic(
        expected = "BpnetMixtureLoss: shape of `y` [2, 1, 2] does not match shape of `logits` [2, 2, 1]"
    )]
    bpnet_logits_shape,
    #[should_panic(expected = "BpnetMixtureLoss: `labels` has shape [3], expected [2] (`[n]`)")]
    bpnet_labels_shape,
    #[should_panic(expected = "BpnetMixtureLoss: `labels` must be 0 or 1; found 2 at index 1")]
    bpnet_label_two,
    #[should_panic(
        expected = "BpnetMixtureLoss: `y` must be finite and non-negative; found -2 at flat index 0"
    )]
    bpnet_negative_counts,
);

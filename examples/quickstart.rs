//! Quick start: a count autoencoder trained with diffbio-burn's negative-binomial loss, on
//! sparse 10x counts read by diffbio-burn-data, with burn-train. Copy this file to begin.
//!
//! ```sh
//! cargo run --release --example quickstart
//! ```
use std::sync::Arc;

use burn::backend::{Autodiff, NdArray};
use burn::data::dataloader::DataLoaderBuilder;
use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::optim::AdamConfig;
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::backend::AutodiffBackend;
use burn::train::metric::LossMetric;
use burn::train::{
    InferenceStep, Learner, RegressionOutput, SupervisedTraining, TrainOutput, TrainStep,
};
use diffbio_burn::Reduction;
use diffbio_burn::losses::negative_binomial::{NegativeBinomialLoss, NegativeBinomialLossConfig};
use diffbio_burn::nn::softmax;
use diffbio_burn::special::ln_1p;
use diffbio_burn_data::counts::{CellDataset, CountsBatch, CountsBatcher, read_10x_mtx};

/// Counts → 32-d code → gene proportions × library size = NB mean; one `theta` per gene.
#[derive(Module, Debug)]
struct CountAutoencoder<B: Backend> {
    encoder: Linear<B>,
    decoder: Linear<B>,
    log_theta: Param<Tensor<B, 1>>,
    nb: NegativeBinomialLoss,
}

impl<B: Backend> CountAutoencoder<B> {
    fn new(genes: usize, device: &B::Device) -> Self {
        Self {
            encoder: LinearConfig::new(genes, 32).init(device),
            decoder: LinearConfig::new(32, genes).init(device),
            log_theta: Param::from_tensor(Tensor::zeros([genes], device)),
            nb: NegativeBinomialLossConfig::new().init(),
        }
    }

    /// NB negative log-likelihood per cell (`BatchMean`), with the predicted means.
    fn forward(&self, batch: CountsBatch<B>) -> RegressionOutput<B> {
        let code = relu(self.encoder.forward(ln_1p(batch.counts.clone())));
        let mu = softmax(self.decoder.forward(code), 1) * batch.library;
        let theta = self.log_theta.val().exp();
        let loss = self.nb.forward(
            batch.counts.clone(),
            mu.clone(),
            theta,
            Reduction::BatchMean,
        );
        RegressionOutput::new(loss, mu, batch.counts)
    }
}

impl<B: AutodiffBackend> TrainStep for CountAutoencoder<B> {
    type Input = CountsBatch<B>;
    type Output = RegressionOutput<B>;

    fn step(&self, batch: CountsBatch<B>) -> TrainOutput<RegressionOutput<B>> {
        let output = self.forward(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl<B: Backend> InferenceStep for CountAutoencoder<B> {
    type Input = CountsBatch<B>;
    type Output = RegressionOutput<B>;

    fn step(&self, batch: CountsBatch<B>) -> RegressionOutput<B> {
        self.forward(batch)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    type B = Autodiff<NdArray>;
    let device = Default::default();
    B::seed(&device, 42);
    let data =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/pbmc68k_reduced_labeled");
    // Sparse (CSR) counts; the batcher densifies one minibatch at a time.
    let counts = Arc::new(read_10x_mtx(&data, None)?);
    println!(
        "{} cells x {} genes, {} non-zero",
        counts.n_cells(),
        counts.n_genes(),
        counts.nnz()
    );
    let (train, valid) = CellDataset::split(counts.n_cells(), 0.2, 42);
    let batcher = CountsBatcher::new(counts.clone());
    let train = DataLoaderBuilder::new(batcher.clone())
        .batch_size(128)
        .shuffle(42)
        .build(train);
    let valid = DataLoaderBuilder::new(batcher).batch_size(128).build(valid);

    let out =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/examples-out/quickstart");
    let model = CountAutoencoder::<B>::new(counts.n_genes(), &device);
    let learner = Learner::new(model, AdamConfig::new().init(), 1e-3);
    let result = SupervisedTraining::new(&out, train, valid)
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .num_epochs(30)
        .summary()
        .launch(learner);
    drop(result.renderer);
    println!("trained; logs in {}", out.display());
    Ok(())
}

//! Peak heap memory of one forward + backward per benchmark case (the shapes of
//! `benches/losses.rs` and `benches/hmm.rs`), on `Autodiff<NdArray<f32>>`:
//! `cargo bench --bench memory`.
//!
//! A counting global allocator (`peak_alloc`) records the high-water mark of live heap bytes;
//! each case reports the peak during its step minus what was live before it (the inputs),
//! i.e. the working memory of the loss, its autodiff tape and its gradients. Results are
//! printed and written to `target/bench-mem.jsonl` (one `{"id", "peak_mem_mb"}` per line),
//! which `benches/peers/run.py` shows next to the peers' figures.

use std::io::Write;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Int, Tensor, TensorData};
use diffbio_burn::Reduction;
use diffbio_burn::hmm::{HmmAlgorithm, HmmConfig};
use diffbio_burn::losses::bpnet::BpnetMixtureLossConfig;
use diffbio_burn::losses::log1p_mse::Log1pMseLossConfig;
use diffbio_burn::losses::multinomial::MultinomialNllLossConfig;
use diffbio_burn::losses::negative_binomial::NegativeBinomialLossConfig;
use diffbio_burn::losses::vae::VaeLossConfig;
use diffbio_burn::losses::zinb::ZinbLossConfig;
use peak_alloc::PeakAlloc;

mod data;

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

type B = Autodiff<NdArray<f32>>;

fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D]) -> Tensor<B, D> {
    Tensor::from_data(TensorData::new(v, shape), &Default::default())
}

/// Peak working memory (MiB) of `step`, beyond what is live when it starts.
fn peak_mib(step: impl FnOnce()) -> f64 {
    let before = ALLOCATOR.current_usage();
    ALLOCATOR.reset_peak_usage();
    step();
    (ALLOCATOR.peak_usage().saturating_sub(before)) as f64 / (1024.0 * 1024.0)
}

fn main() {
    let mut rows: Vec<(String, f64, String)> = Vec::new();
    let mut record = |id: &str, mib: f64, note: String| rows.push((id.to_string(), mib, note));

    let (cells, genes) = (512, 2000);
    let d = data::ScRna::new(cells, genes, 0);
    let counts = tensor(d.counts, [cells, genes]);
    let mu = tensor(d.mu, [cells, genes]);
    let theta = tensor(d.theta, [genes]);
    let pi_logits = tensor(d.pi_logits, [cells, genes]);
    let input_mib = (cells * genes * 4) as f64 / (1024.0 * 1024.0);
    let nb = NegativeBinomialLossConfig::new()
        .with_validate(false)
        .init();
    let mib = peak_mib(|| {
        let (mu, theta) = (mu.clone().require_grad(), theta.clone().require_grad());
        let _ = nb
            .forward(counts.clone(), mu, theta, Reduction::Mean)
            .backward();
    });
    record(
        "nb/fwd_bwd_512x2000",
        mib,
        format!("one [512, 2000] f32 array = {input_mib:.1} MiB"),
    );
    let zinb = ZinbLossConfig::new().with_validate(false).init();
    let mib = peak_mib(|| {
        let (mu, theta) = (mu.clone().require_grad(), theta.clone().require_grad());
        let logits = pi_logits.clone().require_grad();
        let _ = zinb
            .forward(counts.clone(), mu, theta, logits, Reduction::Mean)
            .backward();
    });
    record("zinb/fwd_bwd_512x2000", mib, String::new());

    let (features, latent) = (2000, 10);
    let x = tensor(data::normal(cells * features, 1), [cells, features]);
    let x_recon = tensor(data::normal(cells * features, 2), [cells, features]);
    let mean = tensor(data::normal(cells * latent, 3), [cells, latent]);
    let logvar = tensor(data::normal(cells * latent, 4), [cells, latent]);
    let vae = VaeLossConfig::new().with_validate(false).init();
    let mib = peak_mib(|| {
        let elbo = vae.forward(
            x.clone(),
            x_recon.clone().require_grad(),
            mean.clone().require_grad(),
            logvar.clone().require_grad(),
            Reduction::Mean,
        );
        let _ = elbo.loss.backward();
    });
    record("vae/fwd_bwd_512x2000_l10", mib, String::new());

    let (n, s, l) = (64, 2, 1000);
    let p = data::Profiles::new(n, s, l, 5);
    let y = tensor(p.y, [n, s, l]);
    let logits = tensor(p.logits, [n, s, l]);
    let log_counts = tensor(p.log_counts, [n, 1]);
    let labels =
        Tensor::<B, 1, Int>::from_data(TensorData::new(p.labels, [n]), &Default::default());
    let mnll = MultinomialNllLossConfig::new().with_validate(false).init();
    let flat_y = y.clone().reshape([n, s * l]);
    let mib = peak_mib(|| {
        let logits = logits.clone().require_grad().reshape([n, s * l]);
        let _ = mnll
            .forward_logits(logits, flat_y.clone(), Reduction::Mean)
            .backward();
    });
    record("mnll/fwd_bwd_64x2x1000", mib, String::new());
    let mixture = BpnetMixtureLossConfig::new()
        .with_count_loss_weight(p.count_loss_weight)
        .with_validate(false)
        .init();
    let mib = peak_mib(|| {
        let parts = mixture.forward(
            y.clone(),
            logits.clone().require_grad(),
            log_counts.clone().require_grad(),
            Some(labels.clone()),
        );
        let _ = parts.total.backward();
    });
    record("bpnet_mixture/fwd_bwd_64x2x1000", mib, String::new());
    let totals = y.clone().sum_dim(2).sum_dim(1).reshape([n, 1]);
    let mse = Log1pMseLossConfig::new().with_validate(false).init();
    let mib = peak_mib(|| {
        let _ = mse
            .forward(
                log_counts.clone().require_grad(),
                totals.clone(),
                Reduction::Mean,
            )
            .backward();
    });
    record("log1p_mse/fwd_bwd_64", mib, String::new());

    let device = Default::default();
    for (b, t, s, e) in [(64usize, 1000usize, 4usize, 4usize), (8, 10_000, 8, 4)] {
        let truth = HmmConfig::new(s, e)
            .with_seed(1)
            .with_init_scale(1.0)
            .init::<B>(&device);
        let obs = truth.sample(b, t, 2).observations;
        let model = HmmConfig::new(s, e)
            .with_seed(3)
            .init::<B>(&device)
            .with_validate(false);
        let bts = (b * t * s * 8) as f64 / (1024.0 * 1024.0);
        for (label, algorithm) in [
            ("host", HmmAlgorithm::Host),
            ("scan", HmmAlgorithm::ParallelScan),
        ] {
            let hmm = model.clone().with_algorithm(algorithm);
            let mib = peak_mib(|| {
                let _ = hmm.forward(obs.clone(), None, Reduction::Mean).backward();
            });
            record(
                &format!("hmm/fwd_bwd_b{b}_t{t}_s{s}_{label}"),
                mib,
                format!("B·T·S·8 bytes = {bts:.2} MiB"),
            );
        }
    }

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-mem.jsonl");
    let mut file = std::fs::File::create(&path).expect("target/bench-mem.jsonl");
    println!("{:<40} {:>12}  note", "benchmark", "peak MiB");
    for (id, mib, note) in &rows {
        println!("{id:<40} {mib:>12.2}  {note}");
        writeln!(
            file,
            "{{\"id\": \"{id}\", \"peak_mem_mb\": {:.3}}}",
            mib * 1.048576
        )
        .expect("write");
    }
    println!("written to {}", path.display());
}

//! Edge shapes get the same answer, or the same clear error, on the host kernels and the
//! generic path: empty category dimensions, empty profiles, rank-1 inputs.

use crate::common::{AdF32 as B, to_f64};
use burn::tensor::{Int, Tensor, TensorData};
use diffbio_burn::Reduction;
use diffbio_burn::losses::bpnet::BpnetMixtureLossConfig;
use diffbio_burn::losses::multinomial::MultinomialNllLossConfig;

fn zeros<const D: usize>(shape: [usize; D]) -> Tensor<B, D> {
    Tensor::<B, D>::zeros(shape, &Default::default()).require_grad()
}

#[test]
fn multinomial_over_an_empty_last_dimension_is_zero_on_both_paths() {
    for fast in [true, false] {
        let loss = MultinomialNllLossConfig::new().with_fast_path(fast).init();
        let per_row: Tensor<B, 1> = loss.forward_no_reduction(zeros([3, 0]), zeros([3, 0]));
        assert_eq!(to_f64(per_row), vec![0.0; 3], "fast {fast}");
        let per_row: Tensor<B, 1> = loss.forward_logits_no_reduction(zeros([3, 0]), zeros([3, 0]));
        assert_eq!(to_f64(per_row), vec![0.0; 3], "fast {fast}");
        let total = loss.forward_logits(zeros([3, 0]), zeros([3, 0]), Reduction::BatchMean);
        assert_eq!(to_f64(total), vec![0.0], "fast {fast}");
    }
}

#[test]
fn mixture_with_empty_profiles_is_the_count_loss_on_both_paths() {
    let mut results = Vec::new();
    for fast in [true, false] {
        let loss = BpnetMixtureLossConfig::new().with_fast_path(fast).init();
        let log_counts = Tensor::<B, 2>::from_data(
            TensorData::new(vec![0.5f32, 1.0], [2, 1]),
            &Default::default(),
        );
        let labels =
            Tensor::<B, 1, Int>::from_data(TensorData::from([1i64, 0]), &Default::default());
        let out =
            loss.forward_no_reduction(zeros([2, 2, 0]), zeros([2, 2, 0]), log_counts, Some(labels));
        let (profile, count) = (to_f64(out.profile), to_f64(out.count));
        assert_eq!(profile, vec![0.0; 2], "fast {fast}");
        // log1p(0) = 0 total counts: the count loss is log_counts².
        assert!(
            (count[0] - 0.25).abs() < 1e-7 && (count[1] - 1.0).abs() < 1e-7,
            "{count:?}"
        );
        results.push(count);
    }
    assert_eq!(results[0], results[1]);
}

fn rank_one(fast: bool) {
    let loss = MultinomialNllLossConfig::new().with_fast_path(fast).init();
    let _ = loss.forward(zeros([4]), zeros([4]), Reduction::BatchMean);
}

#[test]
#[should_panic(expected = "MultinomialNllLoss: `log_probs` and `counts` need rank >= 2")]
fn multinomial_rank_one_is_refused_on_the_host_path() {
    rank_one(true);
}

#[test]
#[should_panic(expected = "MultinomialNllLoss: `log_probs` and `counts` need rank >= 2")]
fn multinomial_rank_one_is_refused_on_the_generic_path() {
    rank_one(false);
}

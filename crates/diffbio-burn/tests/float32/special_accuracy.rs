//! Float32 accuracy of `lgamma` and `digamma` against statrs' float64 implementations on a
//! dense grid over `[1e-6, 1e8]`, densest around the zeros of `lgamma` (x = 1, 2) and of
//! `digamma` (x ≈ 1.4616), and around the switch between reduction and series (x = 8).
//! Requirement: absolute error ≤ 2e-6 · max(1, |f(x)|).

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Tensor, TensorData};
use diffbio_burn::special::{digamma, lgamma};

type A32 = Autodiff<NdArray<f32>>;

fn grid() -> Vec<f32> {
    let mut xs = Vec::new();
    // Log-spaced over the whole domain.
    let n = 20_000;
    for i in 0..=n {
        let t = i as f64 / n as f64;
        xs.push((1e-6f64.ln() + t * (1e8f64.ln() - 1e-6f64.ln())).exp() as f32);
    }
    // Linear, dense near 1, 1.4616, 2 and 8; and every float32 neighbour of those points.
    for centre in [1.0f32, 1.461_632_1, 2.0, 8.0] {
        for i in -2000..=2000 {
            xs.push(centre + i as f32 * 1e-4);
        }
        let mut up = centre;
        let mut down = centre;
        for _ in 0..64 {
            up = f32::from_bits(up.to_bits() + 1);
            down = f32::from_bits(down.to_bits() - 1);
            xs.extend([up, down]);
        }
    }
    xs.retain(|x| *x >= 1e-6 && *x <= 1e8);
    xs
}

fn max_scaled_error(got: &[f32], xs: &[f32], oracle: fn(f64) -> f64) -> (f64, f32) {
    got.iter()
        .zip(xs)
        .map(|(g, x)| {
            let want = oracle(*x as f64);
            ((*g as f64 - want).abs() / want.abs().max(1.0), *x)
        })
        .fold((0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
}

#[test]
fn lgamma_and_digamma_meet_the_f32_accuracy_target() {
    let xs = grid();
    let device = Default::default();
    let x = Tensor::<A32, 1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &device)
        .require_grad();
    let lg = lgamma(x.clone());
    let grads = lg.clone().sum().backward();
    let lg: Vec<f32> = lg.into_data().to_vec().unwrap();
    let dlg: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
    let dg: Vec<f32> = digamma(x.detach()).into_data().to_vec().unwrap();

    let (e_lg, at_lg) = max_scaled_error(&lg, &xs, statrs::function::gamma::ln_gamma);
    let (e_dg, at_dg) = max_scaled_error(&dg, &xs, statrs::function::gamma::digamma);
    let (e_grad, at_grad) = max_scaled_error(&dlg, &xs, statrs::function::gamma::digamma);
    println!(
        "over {} points in [1e-6, 1e8]: lgamma max err/max(1,|f|) = {e_lg:.2e} at x={at_lg}; \
         digamma {e_dg:.2e} at x={at_dg}; d lgamma/dx vs digamma {e_grad:.2e} at x={at_grad}",
        xs.len()
    );
    assert!(e_lg <= 2e-6, "lgamma error {e_lg:e} at x = {at_lg}");
    assert!(e_dg <= 2e-6, "digamma error {e_dg:e} at x = {at_dg}");
    assert!(
        e_grad <= 2e-6,
        "lgamma gradient error {e_grad:e} at x = {at_grad}"
    );
}

#[test]
fn lgamma_is_exact_at_its_zeros_and_finite_at_the_domain_edges() {
    let device = Default::default();
    let x = Tensor::<NdArray<f32>, 1>::from_floats([1.0, 2.0, 1e-6, 1e8], &device);
    let y: Vec<f32> = lgamma(x).into_data().to_vec().unwrap();
    assert_eq!(&y[..2], &[0.0, 0.0]);
    assert!(y.iter().all(|v| v.is_finite()));
}

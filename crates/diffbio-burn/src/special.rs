//! Differentiable special functions that Burn 0.21 lacks, generic over every backend.
//!
//! | function | domain | accuracy in f32 (absolute, vs. a float64 oracle) | gradient |
//! |---|---|---|---|
//! | [`lgamma`] | `x > 0` | ≤ 2e-6 · max(1, \|lgamma(x)\|) on `[1e-6, 1e8]` | [`digamma`] |
//! | [`digamma`] | `x > 0` | ≤ 2e-6 · max(1, \|digamma(x)\|) on `[1e-6, 1e8]` | autodiff of the series |
//! | [`log_sum_exp`] | any, `-inf` allowed | rounding only | softmax; 0 for `-inf` entries |
//! | [`softplus`], [`log_sigmoid`] | any finite | rounding only, no overflow | `sigmoid` |
//!
//! # How the gradients are injected
//! A hand-written derivative `g = f'(x)` is attached to a value `f(x)` computed on an
//! untracked copy of `x` with [`with_grad`]:
//!
//! ```text
//! y = f(x̄) + (x - x̄) · g(x̄),        x̄ = x detached (no tape)
//! ```
//!
//! `x - x̄` is exactly zero, so `y` equals `f(x)` bit for bit, while `burn-autodiff` sees
//! `dy/dx = g`. Only the subtraction and the product are taped, so a 40-operation series
//! costs two tape entries instead of forty, and the gradient is the accurate closed form
//! (`digamma` for `lgamma`) rather than the derivative of an approximation. On backends
//! without autodiff the extra terms are skipped. Second derivatives through such a function
//! are not available (they come out as zero).
//!
//! # The lgamma algorithm
//! For `x >= 8`, Stirling's series to `x^-7` (truncation error < 1e-11). For `x < 8`, the
//! argument is reduced to `z ∈ [1, 2)` by `Γ(x) = Γ(x + 1) / x` (for `x < 1`) and
//! `Γ(x) = (x - 1)(x - 2)···z · Γ(z)`, and `lgamma(z) = (z - 1)(z - 2) · P(z - 1.5)` with a
//! degree-10 polynomial `P` (relative error 7e-10). Writing the two zeros of `lgamma` as
//! explicit factors keeps the absolute error near `x = 1` and `x = 2` at the level of
//! `|lgamma(x)|` itself instead of the rounding error of a large cancelling sum.

use burn::tensor::{Tensor, backend::Backend};

/// `0.5 · ln(2π)`.
pub(crate) const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// Below this argument the series of [`lgamma`] and [`digamma`] are replaced by a reduction.
const ASYMPTOTIC_FROM: f64 = 8.0;

/// `lgamma(z) / ((z - 1)(z - 2))` on `z ∈ [1, 2]` as a polynomial in `t = z - 1.5`
/// (Chebyshev interpolation at 11 nodes in 40-digit arithmetic; max relative error 7e-10).
const LGAMMA_12_POLY: [f64; 11] = [
    0.483_128_950_542_109_6,
    -0.145_959_895_915_016_4,
    0.062_911_400_632_540_91,
    -0.031_308_487_222_846_11,
    0.016_797_126_773_814_22,
    -0.009_425_640_158_010_716,
    0.005_445_789_386_867_963,
    -0.003_211_653_457_970_727,
    0.001_930_417_906_813_013,
    -0.001_169_134_349_202_146,
    0.000_668_933_354_957_945_1,
];

/// An untracked copy of `x`: the same values, no autodiff history, no gradient.
pub fn constant<B: Backend, const D: usize>(x: &Tensor<B, D>) -> Tensor<B, D> {
    x.clone().detach().set_require_grad(false)
}

/// Whether gradients can flow on the backend `x` lives on (`false` on plain inference
/// backends such as `NdArray`, `true` on `Autodiff<_>`).
pub fn is_autodiff<B: Backend, const D: usize>(x: &Tensor<B, D>) -> bool {
    B::ad_enabled(&x.device())
}

/// Attaches the local derivative `grad = d value / d input` to `value`, which must have been
/// computed from an untracked copy of `input` (see the [module docs](self)).
///
/// `input` may have a shape that broadcasts to `value`'s (e.g. `[1, G]` against `[B, G]`);
/// `burn-autodiff` then sums the gradient over the broadcast dimensions. `grad` must be
/// finite wherever it is used, since `0 · ∞` would poison the forward value.
pub fn with_grad<B: Backend, const D: usize>(
    value: Tensor<B, D>,
    input: Tensor<B, D>,
    grad: Tensor<B, D>,
) -> Tensor<B, D> {
    let delta = input.clone() - constant(&input);
    value + delta * grad
}

/// Evaluates `p[0] + p[1] t + ... + p[n] t^n` by Horner's rule.
fn horner<B: Backend, const D: usize>(t: Tensor<B, D>, p: &[f64]) -> Tensor<B, D> {
    let (last, rest) = p.split_last().expect("non-empty polynomial");
    rest.iter()
        .rev()
        .fold(t.zeros_like() + *last, |acc, c| acc * t.clone() + *c)
}

/// Stirling's series for `lgamma(x)`, valid for `x >= 8`.
fn lgamma_stirling<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    (x.clone() - 0.5) * x.clone().log() - x.clone() + HALF_LN_2PI + stirling_correction(x)
}

/// `lgamma(x) - [(x - 1/2) ln x - x + ln(2π)/2]` by its asymptotic series, for `x >= 8`
/// (`1/(12x) - 1/(360x³) + 1/(1260x⁵) - 1/(1680x⁷)`, truncation error < 1e-11).
fn stirling_correction<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let r = x.recip();
    let r2 = r.clone().square();
    r * horner(r2, &[1.0 / 12.0, -1.0 / 360.0, 1.0 / 1260.0, -1.0 / 1680.0])
}

/// `lgamma(x)` for `0 < x <= 8` by reduction to `[1, 2)` (see the module docs).
fn lgamma_reduced<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let below_one = x.clone().lower_elem(1.0).float();
    let z0 = x.clone() + below_one.clone(); // in [1, 8]
    let z = z0.clone() - (z0.clone().floor() - 1.0); // in [1, 2)
    // (z0 - 1)(z0 - 2)···z: every factor >= 1 is kept, the others become 1.
    let product = (1..=6).fold(z0.ones_like(), |acc, k| {
        acc * (z0.clone() - f64::from(k)).clamp_min(1.0)
    });
    let on_unit = (z.clone() - 1.0) * (z.clone() - 2.0) * horner(z - 1.5, &LGAMMA_12_POLY);
    on_unit + product.log() - x.log() * below_one
}

/// Forward value of [`lgamma`], without any gradient bookkeeping.
pub(crate) fn lgamma_value<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let large = x.clone().greater_equal_elem(ASYMPTOTIC_FROM);
    let series = lgamma_stirling(x.clone().clamp_min(ASYMPTOTIC_FROM));
    lgamma_reduced(x.clamp_max(ASYMPTOTIC_FROM)).mask_where(large, series)
}

/// The digamma asymptotic series `ln x - 1/(2x) - Σ B₂ₖ/(2k x²ᵏ)`, for `x >= 8`
/// (truncation error < 1e-11).
fn digamma_asymptotic<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let r = x.clone().recip();
    let r2 = r.clone().square();
    let series = r2.clone()
        * horner(
            r2,
            &[
                1.0 / 12.0,
                -1.0 / 120.0,
                1.0 / 252.0,
                -1.0 / 240.0,
                1.0 / 132.0,
            ],
        );
    x.log() - r * 0.5 - series
}

/// Natural logarithm of the gamma function, `ln Γ(x)`, element-wise, for `x > 0`.
///
/// The gradient is [`digamma`]`(x)`, attached with [`with_grad`]. Returns `+inf` at `x = 0`;
/// negative inputs are outside the domain (the result is unspecified).
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use diffbio_burn::special::lgamma;
///
/// let x = Tensor::<NdArray, 1>::from_floats([0.5, 1.0, 10.0], &Default::default());
/// let y: Vec<f32> = lgamma(x).into_data().to_vec().unwrap();
/// assert!((y[0] - 0.572_364_9).abs() < 1e-6); // ln √π
/// assert_eq!(y[1], 0.0);
/// assert!((y[2] - 12.801_827).abs() < 2e-5); // ln 9!
/// ```
pub fn lgamma<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let xc = constant(&x);
    let value = lgamma_value(xc.clone());
    if !is_autodiff(&x) {
        return value;
    }
    with_grad(value, x, digamma(xc))
}

/// The digamma function `ψ(x) = d ln Γ(x) / dx`, element-wise, for `x > 0`.
///
/// For `x < 8` the recurrence `ψ(x) = ψ(x + 8) - Σₖ₌₀⁷ 1/(x + k)` moves the argument into
/// the range of the asymptotic series. Differentiable by autodiff (the gradient is the
/// trigamma function to series accuracy).
pub fn digamma<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let large = x.clone().greater_equal_elem(ASYMPTOTIC_FROM);
    let series = digamma_asymptotic(x.clone().clamp_min(ASYMPTOTIC_FROM));
    let xs = x.clamp_max(ASYMPTOTIC_FROM);
    let shifted = digamma_asymptotic(xs.clone() + ASYMPTOTIC_FROM);
    let reciprocals = (0..8).fold(xs.zeros_like(), |acc, k| {
        acc + (xs.clone() + f64::from(k)).recip()
    });
    (shifted - reciprocals).mask_where(large, series)
}

/// `log(Σ exp(x))` along `dim`, keeping `dim` with size 1.
///
/// Exact for `-inf` entries: they contribute nothing and get gradient 0, and a slice that is
/// entirely `-inf` gives `-inf` with zero gradient (no NaN). `+inf` and NaN are outside the
/// domain. The gradient is the softmax along `dim`.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use diffbio_burn::special::log_sum_exp;
///
/// let ninf = f32::NEG_INFINITY;
/// let x = Tensor::<NdArray, 2>::from_floats([[0.0, 0.0], [ninf, ninf]], &Default::default());
/// let y: Vec<f32> = log_sum_exp(x, 1).into_data().to_vec().unwrap();
/// assert!((y[0] - std::f32::consts::LN_2).abs() < 1e-7);
/// assert_eq!(y[1], ninf);
/// ```
pub fn log_sum_exp<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let max = constant(&x).max_dim(dim);
    let empty = max.clone().equal_elem(f64::NEG_INFINITY);
    let shift = max.mask_fill(empty.clone(), 0.0);
    let sum = (x - shift.clone()).exp().sum_dim(dim);
    let log_sum = sum.mask_fill(empty.clone(), 1.0).log() + shift;
    log_sum.mask_fill(empty, f64::NEG_INFINITY)
}

/// Forward value of [`softplus`] without gradient bookkeeping.
pub(crate) fn softplus_value<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.clone().clamp_min(0.0) + x.abs().neg().exp().log1p()
}

/// `log(1 + exp(x))`, element-wise, computed as `max(x, 0) + log1p(exp(-|x|))`: no overflow
/// for large `x` (Burn's `softplus` returns `inf` at `x = 100` in f32), full relative accuracy
/// for very negative `x`. The gradient is `sigmoid(x)`.
pub fn softplus<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let xc = constant(&x);
    let value = softplus_value(xc.clone());
    if !is_autodiff(&x) {
        return value;
    }
    let sigmoid = softplus_value(xc.neg()).neg().exp();
    with_grad(value, x, sigmoid)
}

/// `log(sigmoid(x)) = -softplus(-x)`, element-wise, stable for all finite `x`.
pub fn log_sigmoid<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    softplus(x.neg()).neg()
}

/// `log1p(r) - r` for `r > -1`, accurate also for small `|r|` where the two terms cancel
/// (series `-r²/2 + r³/3 - ...` for `|r| < 0.1`, truncation error < 1e-10 relative).
pub(crate) fn log1p_minus<B: Backend, const D: usize>(r: Tensor<B, D>) -> Tensor<B, D> {
    let small = r.clone().abs().lower_elem(0.1);
    let rs = r.clone().clamp(-0.1, 0.1);
    let coefficients: Vec<f64> = (2..=10)
        .map(|k| if k % 2 == 0 { -1.0 } else { 1.0 } / f64::from(k))
        .collect();
    let series = rs.clone().square() * horner(rs, &coefficients);
    let direct = r.clone().log1p() - r;
    direct.mask_where(small, series)
}

/// `exp(x) - 1 - x`, accurate also for small `|x|` where the terms cancel (series
/// `x²/2 + x³/6 + ...` for `|x| < 0.1`, truncation error < 1e-12 relative). Differentiable
/// by autodiff (the derivative of either branch is `exp(x) - 1` to the same accuracy).
pub(crate) fn exp_minus_one_minus<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let small = x.clone().abs().lower_elem(0.1);
    let xs = x.clone().clamp(-0.1, 0.1);
    let mut factorial = 1.0;
    let coefficients: Vec<f64> = (2..=9)
        .map(|k| {
            factorial *= f64::from(k);
            1.0 / factorial
        })
        .collect();
    let series = xs.clone().square() * horner(xs, &coefficients);
    let direct = x.clone().exp() - 1.0 - x;
    direct.mask_where(small, series)
}

/// `ln Γ(z) - [(z - 1/2) ln z - z + ln(2π)/2]`, the remainder of Stirling's formula
/// (Loader's `stirlerr`), for `z > 0`. Small (`≈ 1/(12z)`) for large `z`, which is what lets
/// the NB likelihood cancel its large terms analytically.
pub(crate) fn stirling_remainder<B: Backend, const D: usize>(z: Tensor<B, D>) -> Tensor<B, D> {
    let large = z.clone().greater_equal_elem(ASYMPTOTIC_FROM);
    let series = stirling_correction(z.clone().clamp_min(ASYMPTOTIC_FROM));
    let zs = z.clamp_max(ASYMPTOTIC_FROM);
    let direct =
        lgamma_reduced(zs.clone()) - (zs.clone() - 0.5) * zs.clone().log() + zs - HALF_LN_2PI;
    direct.mask_where(large, series)
}

/// `ψ(z) - ln z + 1/(2z)`, the remainder of the digamma asymptotic expansion, for `z >= 8`.
pub(crate) fn digamma_remainder<B: Backend, const D: usize>(z: Tensor<B, D>) -> Tensor<B, D> {
    let r2 = z.recip().square();
    r2.clone()
        * horner(
            r2,
            &[
                -1.0 / 12.0,
                1.0 / 120.0,
                -1.0 / 252.0,
                1.0 / 240.0,
                -1.0 / 132.0,
            ],
        )
}

/// Threshold above which [`digamma_remainder`] is accurate.
pub(crate) const DIGAMMA_SERIES_FROM: f64 = ASYMPTOTIC_FROM;

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::TensorData;

    type B64 = NdArray<f64>;

    fn eval(f: impl Fn(Tensor<B64, 1>) -> Tensor<B64, 1>, x: &[f64]) -> Vec<f64> {
        let t = Tensor::<B64, 1>::from_data(TensorData::from(x), &Default::default());
        f(t).into_data().to_vec().unwrap()
    }

    #[test]
    fn log1p_minus_matches_on_both_sides_of_the_switch() {
        let xs = [
            -0.5, -0.1000001, -0.0999999, -1e-4, 0.0, 1e-6, 0.05, 0.0999999, 0.1, 3.0,
        ];
        let got = eval(log1p_minus, &xs);
        for (x, g) in xs.iter().zip(got) {
            let want = x.ln_1p() - x;
            assert!(
                (g - want).abs() <= 1e-15 + 1e-9 * want.abs(),
                "{x}: {g} vs {want}"
            );
        }
    }

    #[test]
    fn exp_minus_one_minus_matches_on_both_sides_of_the_switch() {
        let xs = [
            -20.0, -0.1000001, -0.0999999, -1e-4, 0.0, 1e-6, 0.05, 0.0999999, 0.1, 20.0,
        ];
        let got = eval(exp_minus_one_minus, &xs);
        for (x, g) in xs.iter().zip(got) {
            let want = x.exp_m1() - x;
            assert!(
                (g - want).abs() <= 1e-15 + 1e-9 * want.abs(),
                "{x}: {g} vs {want}"
            );
        }
    }

    #[test]
    fn stirling_remainder_is_continuous_and_correct() {
        let xs = [1e-3, 0.5, 1.0, 2.5, 7.999, 8.0, 8.001, 50.0, 1e6];
        let got = eval(stirling_remainder, &xs);
        for (x, g) in xs.iter().zip(got) {
            let want = statrs::function::gamma::ln_gamma(*x) - (x - 0.5) * x.ln() + x - HALF_LN_2PI;
            let tol = if *x > 1e5 {
                1e-9
            } else {
                1e-9 * (1.0 + want.abs())
            };
            assert!((g - want).abs() <= tol, "{x}: {g} vs {want}");
        }
    }

    #[test]
    fn lgamma_gradient_is_digamma() {
        type A = Autodiff<B64>;
        let xs = [0.01, 0.7, 1.0, 1.5, 3.2, 9.0, 123.0];
        let x = Tensor::<A, 1>::from_data(TensorData::from(xs), &Default::default()).require_grad();
        let grads = lgamma(x.clone()).sum().backward();
        let g: Vec<f64> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
        for (x, g) in xs.iter().zip(g) {
            let want = statrs::function::gamma::digamma(*x);
            assert!(
                (g - want).abs() <= 1e-9 * (1.0 + want.abs()),
                "{x}: {g} vs {want}"
            );
        }
    }

    #[test]
    fn log_sum_exp_all_neg_inf_has_zero_gradient() {
        type A = Autodiff<B64>;
        let ninf = f64::NEG_INFINITY;
        let x = Tensor::<A, 2>::from_floats([[ninf, ninf], [ninf, 0.0]], &Default::default())
            .require_grad();
        let y = log_sum_exp(x.clone(), 1);
        let values: Vec<f64> = y.clone().into_data().to_vec().unwrap();
        assert_eq!(values, vec![ninf, 0.0]);
        let finite = y.clone().equal_elem(ninf);
        let grads = y.mask_fill(finite, 0.0).sum().backward();
        let g: Vec<f64> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
        assert_eq!(g, vec![0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn softplus_is_stable_at_extremes() {
        let got = eval(softplus, &[-100.0, -1.0, 0.0, 1.0, 100.0]);
        let want = [
            (-100f64).exp(),
            0.31326168751822286,
            2f64.ln(),
            1.3132616875182228,
            100.0,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-15 * (1.0 + w.abs()), "{g} vs {w}");
        }
    }
}

//! Differentiable special functions that Burn 0.21 lacks, generic over every backend.
//!
//! | function | domain | accuracy in f32 (absolute, vs. a float64 oracle) | gradient |
//! |---|---|---|---|
//! | [`lgamma`] | `x > 0` | ≤ 2e-6 · max(1, \|lgamma(x)\|) on `[1e-6, 1e8]` | [`digamma`] |
//! | [`digamma`] | `x > 0` | ≤ 2e-6 · max(1, \|digamma(x)\|) on `[1e-6, 1e8]` | autodiff of the series |
//! | [`log_sum_exp`] | any, `-inf` allowed | rounding only | softmax; 0 for `-inf` entries |
//! | [`softplus`], [`log_sigmoid`] | any finite | rounding only, no overflow | `sigmoid` |
//! | [`ln_1p`] | `x >= -1` | rounding only, on every backend (not the backend's `log1p`) | `1/(1 + x)` |
//!
//! On double-precision tensors `lgamma` and `digamma` use longer series (and `lgamma` the
//! recurrence `lgamma(x) = lgamma(x + 8) - ln Π (x + k)` below 8) so that they are accurate to
//! double rounding, not to the single-precision bounds above.
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

use burn::tensor::{DType, Tensor, backend::Backend};

use crate::real::polynomial;

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

/// Stirling's series for `lgamma(x)`, valid for `x >= 8`.
fn lgamma_stirling<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    (x.clone() - 0.5) * x.clone().log() - x.clone() + HALF_LN_2PI + stirling_correction(x)
}

/// `lgamma(x) - [(x - 1/2) ln x - x + ln(2π)/2]` by its asymptotic series, for `x >= 8`
/// (to `x⁻⁷` in single precision, truncation < 1e-11; `x⁻¹⁵` in double, < 1e-16).
fn stirling_correction<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    crate::real::stirling_series(x)
}

/// `lgamma(x)` for `0 < x <= 8` by reduction to `[1, 2)` (see the module docs).
fn lgamma_reduced<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let below_one = x.zeros_like().mask_fill(x.clone().lower_elem(1.0), 1.0);
    let z0 = x.clone() + below_one.clone(); // in [1, 8]
    let z = z0.clone() - (z0.clone().floor() - 1.0); // in [1, 2)
    // (z0 - 1)(z0 - 2)···z: every factor >= 1 is kept, the others become 1.
    let product = (1..=6).fold(z0.ones_like(), |acc, k| {
        acc * (z0.clone() - f64::from(k)).clamp_min(1.0)
    });
    let on_unit = (z.clone() - 1.0) * (z.clone() - 2.0) * polynomial(z - 1.5, &LGAMMA_12_POLY);
    on_unit + product.log() - x.log() * below_one
}

/// Forward value of [`lgamma`], without any gradient bookkeeping.
pub(crate) fn lgamma_value<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let large = x.clone().greater_equal_elem(ASYMPTOTIC_FROM);
    let series = lgamma_stirling(x.clone().clamp_min(ASYMPTOTIC_FROM));
    let xs = x.clamp_max(ASYMPTOTIC_FROM);
    let small = if xs.dtype() == DType::F64 {
        // Double precision: the recurrence `lgamma(x) = lgamma(x + 8) - ln Π_{k<8} (x + k)`
        // into the series' range (absolute error ~1e-14; the single-precision polynomial
        // below is accurate to 7e-10 relative only).
        let product = (1..8).fold(xs.clone(), |acc, k| acc * (xs.clone() + f64::from(k)));
        lgamma_stirling(xs + ASYMPTOTIC_FROM) - product.log()
    } else {
        lgamma_reduced(xs)
    };
    small.mask_where(large, series)
}

/// The digamma asymptotic series `ln x - 1/(2x) - Σ B₂ₖ/(2k x²ᵏ)`, for `x >= 8`
/// (truncation error < 1e-11 single, < 1e-15 double).
fn digamma_asymptotic<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let r = x.clone().recip();
    x.clone().log() - r * 0.5 + crate::real::digamma_remainder(x)
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

/// `atanh(s)/s - 1 = Σ s²ʲ/(2j + 1)` divided by `s²`: `1/(2j + 1)` for `j = 1..=17`.
const ATANH_SERIES: [f64; 17] = {
    let mut c = [0.0; 17];
    let mut j = 0;
    while j < 17 {
        c[j] = 1.0 / (2 * j + 3) as f64;
        j += 1;
    }
    c
};

/// Value of [`ln_1p`] without gradient bookkeeping.
pub(crate) fn ln_1p_value<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    // ln(1 + x) = 2·atanh(s), s = x/(2 + x), |s| <= 1/3 on (-1/2, 1): the series to s³⁵
    // (double) or s¹⁷ (single) is below the precision's rounding there. Outside, 1 + x is
    // exact (x <= -1/2) or carries a relative rounding error that `log` does not amplify
    // (x >= 1), and `log` stays out of [1/2, 2], where GPUs' fast `log` is only accurate to
    // an absolute 2⁻²¹.
    let terms = if x.dtype() == DType::F64 { 17 } else { 8 };
    let near = x
        .clone()
        .greater_elem(-0.5)
        .bool_and(x.clone().lower_elem(1.0));
    let xs = x.clone().clamp(-0.5, 1.0);
    let s = xs.clone() / (xs + 2.0);
    let series = s.clone() * 2.0
        + s.clone() * 2.0 * s.clone().square() * polynomial(s.square(), &ATANH_SERIES[..terms]);
    (x + 1.0).log().mask_where(near, series)
}

/// `ln(1 + x)`, element-wise, for `x >= -1`, exact to the tensor's precision on every
/// backend.
///
/// Burn's `log1p` is whatever the backend makes of it, and burn-wgpu compiles it to
/// `log(x + 1)`, which loses every digit of a small `x` (`log1p(1e-8)` is 0 in f32). This
/// one is a series in `s = x/(2 + x)` on `(-1/2, 1)` and `log(1 + x)` elsewhere, built from
/// arithmetic and `log` outside `[1/2, 2]` only. NaN stays NaN. The gradient is `1/(1 + x)`.
///
/// # Example
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use diffbio_burn::special::ln_1p;
///
/// let x = Tensor::<NdArray, 1>::from_floats([1e-8, 0.5, 3.0], &Default::default());
/// let y: Vec<f32> = ln_1p(x).into_data().to_vec().unwrap();
/// assert_eq!(y[0], 1e-8);
/// assert!((y[1] - 1.5f32.ln()).abs() < 1e-7);
/// ```
pub fn ln_1p<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    // Host backends: one multi-threaded, vectorised pass in f64 (the host executor's own
    // `ln_1p`, within 2 ulp of `f64::ln_1p`) with the derivative alongside, where
    // burn-ndarray's `log1p` is one scalar libm call per element on one thread.
    crate::dispatch::host_or!(
        B,
        x.shape().num_elements() > 0,
        crate::host::pointwise::map([x], [0], None, |[x]| {
            (crate::host::special::ln_1p::<false>(x), [(1.0 + x).recip()])
        })
        .elementwise(),
        ln_1p_generic(x)
    )
}

/// [`ln_1p`] on the generic path.
fn ln_1p_generic<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let xc = constant(&x);
    let value = ln_1p_value(xc.clone());
    if !is_autodiff(&x) {
        return value;
    }
    with_grad(value, x, (xc + 1.0).recip())
}

/// Forward value of [`softplus`] without gradient bookkeeping.
pub(crate) fn softplus_value<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    crate::real::softplus(x)
}

/// `log(1 + exp(x))`, element-wise, computed as `max(x, 0) + ln_1p(exp(-|x|))`: no overflow
/// for large `x` (Burn's `softplus` returns `inf` at `x = 100` in f32), full relative accuracy
/// for very negative `x`, on every backend ([`ln_1p`]). The gradient is `sigmoid(x)`.
pub fn softplus<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let xc = constant(&x);
    let value = softplus_value(xc.clone());
    if !is_autodiff(&x) {
        return value;
    }
    with_grad(value, x, crate::real::sigmoid(xc))
}

/// `log(sigmoid(x)) = -softplus(-x)`, element-wise, stable for all finite `x`.
pub fn log_sigmoid<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    softplus(x.neg()).neg()
}

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
        let got = eval(crate::real::ln_1p_minus, &xs);
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
        let got = eval(crate::real::exp_m1_minus, &xs);
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
        let got = eval(crate::real::stirling_remainder, &xs);
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
    fn ln_1p_is_exact_to_double_rounding_on_both_sides_of_the_switch() {
        let xs = [
            -0.999_999,
            -0.5000001,
            -0.5,
            -0.4999999,
            -1e-3,
            -1e-300,
            0.0,
            1e-300,
            1e-12,
            1e-8,
            0.3,
            0.999_999_9,
            1.0,
            1.000_000_1,
            7.0,
            1e30,
        ];
        // The host kernel (`ln_1p` on NdArray) and the generic path alike.
        for (path, f) in [
            ("host", ln_1p::<B64, 1> as fn(_) -> _),
            ("generic", ln_1p_generic),
        ] {
            let got = eval(f, &xs);
            for (x, g) in xs.iter().zip(got) {
                let want = x.ln_1p();
                assert!(
                    (g - want).abs() <= 4.0 * f64::EPSILON * want.abs(),
                    "{path}, {x}: {g} vs {want}"
                );
            }
            assert!(eval(f, &[f64::NAN])[0].is_nan(), "{path}");
            assert!(eval(f, &[-2.0])[0].is_nan(), "{path}");
            assert_eq!(eval(f, &[-1.0])[0], f64::NEG_INFINITY, "{path}");
            assert_eq!(eval(f, &[f64::INFINITY])[0], f64::INFINITY, "{path}");
        }
    }

    #[test]
    fn ln_1p_gradient_is_one_over_one_plus_x_on_both_paths() {
        type A = Autodiff<B64>;
        let xs = [-0.75, -1e-9, 0.0, 0.4, 3.0, 1e6];
        for (path, f) in [
            ("host", ln_1p::<A, 1> as fn(_) -> _),
            ("generic", ln_1p_generic),
        ] {
            let x = Tensor::<A, 1>::from_data(TensorData::from(&xs[..]), &Default::default())
                .require_grad();
            let grads = (f(x.clone()) * 2.0).sum().backward();
            let got: Vec<f64> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
            for (x, g) in xs.iter().zip(got) {
                let want = 2.0 / (1.0 + x);
                assert!(
                    (g - want).abs() <= 4.0 * f64::EPSILON * want,
                    "{path}, {x}: {g}"
                );
            }
        }
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

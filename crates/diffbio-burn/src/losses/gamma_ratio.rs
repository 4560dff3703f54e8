//! Ratios of gamma functions, `Γ(a + m) / Γ(a)`, and their derivatives, without the
//! cancellation of `lgamma(a + m) - lgamma(a)`: the building block of the beta-binomial and
//! Dirichlet-multinomial likelihoods (both are ratios of rising factorials).
//!
//! Written once, generic over [`Real`], for the host kernels and the generic tensor path.

use crate::losses::negative_binomial::{BD0_SERIES, digamma_gap};
use crate::real::{Real, SERIES_FROM, ln_1p_minus, polynomial, stirling_remainder};

/// `T(a, m) = ln Γ(a + m) - ln Γ(a) - m·ln a` for `a > 0`, `m >= 0`: the log rising factorial
/// `ln[a(a+1)···(a+m-1)]` less its leading term `m·ln a`. `T(a, 0) = 0`, and `T → 0` as
/// `a → ∞` (the multinomial limit of the Dirichlet-multinomial).
///
/// For `a >= 8`, Stirling's formula for both gammas leaves
///
/// ```text
/// T(a, m) = a·h(m/a) - ½·ln(1 + m/a) + s(a + m) - s(a),   h(t) = (1 + t)·ln(1 + t) - t
/// ```
///
/// with `s` the [`stirling_remainder`] and `a·h(m/a)` a series for `m/a < 0.1`, so nothing of
/// size `m·ln a` is formed; below, the difference of `lgamma`s.
#[inline(always)]
pub(crate) fn ln_rising_excess<R: Real>(a: R, m: R) -> R {
    R::select(
        a.ge(SERIES_FROM),
        || {
            let a = a.clone().clamp_min(SERIES_FROM);
            let t = m.clone() / a.clone();
            a_h(a.clone(), m.clone(), t.clone()) - t.ln_1p() * 0.5
                + stirling_remainder(a.clone() + m.clone())
                - stirling_remainder(a)
        },
        || {
            let a = a.clone().clamp_max(SERIES_FROM);
            (a.clone() + m.clone()).lgamma() - a.clone().lgamma() - m.clone() * a.ln()
        },
    )
}

/// `a·h(t)` with `t = m/a`, `h(t) = (1 + t)·ln(1 + t) - t` (Loader's `bd0(a + m, a)`): the
/// series `a·t²·Σ (-1)ʲ tʲ/((j+1)(j+2))` for `t < 0.1`, `(a + m)·ln(1 + t) - m` elsewhere.
#[inline(always)]
fn a_h<R: Real>(a: R, m: R, t: R) -> R {
    let terms = if t.is_double() { 16 } else { 8 };
    R::select(
        t.lt(0.1),
        || {
            let ts = t.clone().clamp_max(0.1);
            a.clone() * ts.clone().square() * polynomial(ts, &BD0_SERIES[..terms])
        },
        || (a.clone() + m.clone()) * t.clone().ln_1p() - m.clone(),
    )
}

/// `G(a, m) = ψ(a + m) - ψ(a)` for `a > 0`, `m >= 0`, as `ln(1 + m/a)` plus the non-negative
/// [`digamma_gap`] (never the difference of two digammas of size `ψ(a)`).
#[inline(always)]
pub(crate) fn digamma_rise<R: Real>(a: R, m: R) -> R {
    (m.clone() / a.clone()).ln_1p() + digamma_gap(m, a)
}

/// `a·G(a, m) = a·[ψ(a + m) - ψ(a)]`, `d T(a, m)/d ln a + m`: the derivative of
/// `ln Γ(a + m) - ln Γ(a)` with respect to `ln a`.
///
/// For `a < 1` and `m >= 1` both `ψ(a) ≈ -1/a` and `ψ(a + m)` are far larger than the
/// result (about `1 + a·ψ(m)`), so the recurrence `ψ(a) = ψ(a + 1) - 1/a` is applied first:
/// `a·G(a, m) = 1 + a·G(a + 1, m - 1)`.
#[inline(always)]
pub(crate) fn a_digamma_rise<R: Real>(a: R, m: R) -> R {
    R::select(
        a.lt(1.0).clone(),
        || {
            // m = 0: zero; 0 < m < 1 (a fractional count): the direct form.
            let shifted = {
                let m1 = (m.clone() - 1.0).clamp_min(0.0);
                a.clone() * digamma_rise(a.clone() + 1.0, m1) + 1.0
            };
            let direct = a.clone() * digamma_rise(a.clone(), m.clone());
            R::select(m.ge(1.0), || shifted, || direct)
        },
        || a.clone() * digamma_rise(a.clone(), m.clone()),
    )
}

/// `a·[ψ(a + m) - ψ(a)] - m`: [`a_digamma_rise`] less its leading term `m`, the part of the
/// Dirichlet-multinomial gradient that vanishes in the multinomial limit. For `a >= 1`,
/// `a·[ln(1 + m/a) - m/a + gap]` (about `-m²/(2a)`, formed without subtracting `m`); below,
/// [`a_digamma_rise`]` - m`, where the two are of the same size.
#[inline(always)]
pub(crate) fn a_digamma_excess<R: Real>(a: R, m: R) -> R {
    R::select(
        a.ge(1.0),
        || {
            let a = a.clone().clamp_min(1.0);
            a.clone() * (ln_1p_minus(m.clone() / a.clone()) + digamma_gap(m.clone(), a))
        },
        || a_digamma_rise(a.clone().clamp_max(1.0), m.clone()) - m.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::function::gamma::{digamma, ln_gamma};

    #[test]
    fn excess_matches_lgamma_differences_on_both_sides_of_the_series() {
        for a in [1e-3, 0.3, 1.0, 7.99, 8.0, 30.0, 1e3, 1e6] {
            for m in [0.0, 1.0, 2.5, 17.0, 400.0, 1e4] {
                let got = ln_rising_excess(a, m);
                let big = ln_gamma(a + m).abs() + ln_gamma(a).abs() + (m * a.ln()).abs();
                let want = ln_gamma(a + m) - ln_gamma(a) - m * a.ln();
                assert!(
                    (got - want).abs() <= 1e-12 * big + 1e-14,
                    "T({a}, {m}) = {got}, want {want}"
                );
            }
        }
        assert_eq!(ln_rising_excess(5.0, 0.0), 0.0);
        assert_eq!(ln_rising_excess(50.0, 0.0), 0.0);
    }

    #[test]
    fn rise_derivatives_match_digamma_differences() {
        for a in [1e-4, 0.3, 0.99, 1.0, 7.99, 8.0, 30.0, 1e4] {
            for m in [0.0, 0.5, 1.0, 3.0, 17.0, 1e3] {
                let want = a * (digamma(a + m) - digamma(a));
                let scale = a * (digamma(a + m).abs() + digamma(a).abs());
                let got = a_digamma_rise(a, m);
                assert!(
                    (got - want).abs() <= 1e-12 * scale + 1e-14,
                    "aG({a}, {m}) = {got}, want {want}"
                );
                let excess = a_digamma_excess(a, m);
                assert!(
                    (excess - (want - m)).abs() <= 1e-12 * (scale + m) + 1e-14,
                    "aG({a}, {m}) - m = {excess}, want {}",
                    want - m
                );
            }
        }
    }
}

//! Scalar `f64` special functions for the host kernels.

use std::sync::OnceLock;

/// Counts below this use a table of `ln Γ(k + 1)`.
const TABLE_SIZE: usize = 1 << 12;

/// `ln Γ(x)` for `x > 0` (musl's algorithm via the `libm` crate, error < 1 ulp-ish in f64).
#[inline]
pub(crate) fn lgamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// `ln Γ(x + 1) = ln x!`, from a table for small integers.
#[inline]
pub(crate) fn ln_factorial(x: f64) -> f64 {
    static TABLE: OnceLock<Vec<f64>> = OnceLock::new();
    if x.fract() == 0.0 && x < TABLE_SIZE as f64 {
        let table = TABLE.get_or_init(|| (0..TABLE_SIZE).map(|k| lgamma(k as f64 + 1.0)).collect());
        table[x as usize]
    } else {
        lgamma(x + 1.0)
    }
}

/// The digamma function `ψ(x)` for `x > 0`: the recurrence `ψ(x) = ψ(x + 1) - 1/x` up to
/// `x >= 8`, then the asymptotic series to `x⁻¹⁴` (truncation error < 1e-16).
#[inline]
pub(crate) fn digamma(mut x: f64) -> f64 {
    let mut shift = 0.0;
    while x < 8.0 {
        shift -= x.recip();
        x += 1.0;
    }
    let r2 = (x * x).recip();
    let tail = 1.0 / 132.0 - r2 * (691.0 / 32760.0 - r2 / 12.0);
    let series = r2
        * (1.0 / 12.0 - r2 * (1.0 / 120.0 - r2 * (1.0 / 252.0 - r2 * (1.0 / 240.0 - r2 * tail))));
    shift + x.ln() - 0.5 / x - series
}

/// `ln(1 + eˣ)`, no overflow, full relative accuracy for very negative `x`.
#[inline]
pub(crate) fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `1 / (1 + e⁻ˣ)`, no overflow.
#[inline]
pub(crate) fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        (1.0 + (-x).exp()).recip()
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digamma_and_lgamma_match_statrs() {
        for x in [
            1e-6,
            0.3,
            1.0,
            1.4616321449683623,
            2.0,
            7.9,
            8.0,
            33.3,
            1e3,
            1e6,
            1e8,
        ] {
            let (d, want) = (digamma(x), statrs::function::gamma::digamma(x));
            assert!(
                (d - want).abs() <= 1e-13 * want.abs().max(1.0),
                "digamma({x}): {d} vs {want}"
            );
            let (l, want) = (lgamma(x), statrs::function::gamma::ln_gamma(x));
            assert!(
                (l - want).abs() <= 1e-13 * want.abs().max(1.0),
                "lgamma({x}): {l} vs {want}"
            );
        }
        for k in [0.0, 1.0, 5.0, 4095.0, 4096.0, 2.5] {
            let want = statrs::function::gamma::ln_gamma(k + 1.0);
            assert!((ln_factorial(k) - want).abs() <= 1e-12 * want.abs().max(1.0));
        }
    }

    #[test]
    fn softplus_and_sigmoid_are_stable() {
        assert_eq!(softplus(1000.0), 1000.0);
        assert!((softplus(-800.0)).abs() < 1e-300);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!((sigmoid(0.3) + sigmoid(-0.3) - 1.0).abs() < 1e-16);
    }
}

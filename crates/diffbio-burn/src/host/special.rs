//! Scalar `f64` special functions for the host kernels.

use super::HostFloat;
use crate::real::{estrin_with, max_keep_nan, min_keep_nan};
use std::sync::OnceLock;

/// `ln 2` split as fdlibm does: `LN2_HI` has 32 trailing zero bits, so `k·LN2_HI` is exact
/// for `|k| < 2¹¹`; `LN2_HI + LN2_LO` is `ln 2` to ~1e-26.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);

/// `1/k!` for `k = 0..=13`: the Taylor polynomial of `eʳ`.
const EXP_TAYLOR: [f64; 14] = {
    let mut c = [1.0; 14];
    let mut k = 1;
    while k < 14 {
        c[k] = c[k - 1] / k as f64;
        k += 1;
    }
    c
};

/// `1/(2j + 1)` for `j = 1..=11`: `atanh(s)/s - 1 = Σ s²ʲ/(2j + 1)` divided by `s²`.
const ATANH_SERIES: [f64; 11] = {
    let mut c = [0.0; 11];
    let mut j = 0;
    while j < 11 {
        c[j] = 1.0 / (2 * j + 3) as f64;
        j += 1;
    }
    c
};

/// Counts below this use a table of `ln Γ(k + 1)`.
const TABLE_SIZE: usize = 1 << 12;

/// `ln Γ(x)` for `x > 0` (musl's algorithm via the `libm` crate, error < 1 ulp-ish in f64).
#[inline]
pub(crate) fn lgamma(x: f64) -> f64 {
    libm::lgamma(x)
}

/// `ln Γ(x + 1) = ln x!`, from a table for small integers. Without a branch on the value for
/// those (zero counts included), so that sparse counts do not cost branch mispredictions.
#[inline]
pub(crate) fn ln_factorial(x: f64) -> f64 {
    static TABLE: OnceLock<Vec<f64>> = OnceLock::new();
    let table = TABLE.get_or_init(|| (0..TABLE_SIZE).map(|k| lgamma(k as f64 + 1.0)).collect());
    // `max` maps NaN to 0 and the clamp keeps `k` an in-range index; the comparison sends
    // everything that is not a table entry (non-integers, negatives, NaN, large) to `lgamma`.
    let clamped = x.max(0.0).min((TABLE_SIZE - 1) as f64);
    // SAFETY: `clamped` is finite and in `0..TABLE_SIZE`, so it is representable as `i32`.
    let k = unsafe { clamped.to_int_unchecked::<i32>() };
    if f64::from(k) == x {
        table[k as usize]
    } else {
        lgamma(x + 1.0)
    }
}

/// `Σ ln xᵢ!`, skipping the zeros and ones (whose `ln x!` is 0): eight values are tested at
/// once (branch-free, vectorised), and only a group holding another value is summed through
/// [`ln_factorial`], so sparse counts (most of a profile) cost no table lookups and few
/// branches. NaN counts as "another value" (NaN out).
#[inline(always)]
pub(crate) fn sum_ln_factorial<E: super::HostFloat>(x: &[E]) -> f64 {
    let nonzero = |v: f64| !(v == 0.0 || v == 1.0);
    let group = |g: &[E]| {
        g.iter().fold(0.0, |sum, v| {
            let v = v.to_f64();
            if nonzero(v) {
                sum + ln_factorial(v)
            } else {
                sum
            }
        })
    };
    let chunks = x.chunks_exact(8);
    let tail = group(chunks.remainder());
    chunks.fold(tail, |sum, chunk| {
        let mut any = false;
        for v in chunk {
            any |= nonzero(v.to_f64());
        }
        if any { sum + group(chunk) } else { sum }
    })
}

/// `eˣ` for `x <= 0`, for results that are rounded to `E`, without branches or calls, so that
/// loops over it vectorise: Cody–Waite reduction `x = n·ln 2 + r`, `|r| <= ln 2 / 2`, the
/// Taylor polynomial of `eʳ` to `E::EXP_TERMS` terms (degree 13 for `f64`, 9 for `f32`) and
/// `2ⁿ` from the exponent bits. For `f64` within 2 ulp of `f64::exp`, for `f32` within 2e-11
/// relative (tested, with and without `FMA`: the polynomial's steps rounded once, see
/// [`crate::real::mul_add`]); results below `e⁻⁷⁰⁸` flush to 0 instead of going subnormal.
#[inline(always)]
pub(crate) fn exp_nonpositive<E: HostFloat, const FMA: bool>(x: f64) -> f64 {
    let (e, n_bits) = exp_parts::<FMA>(x.max(-708.0), E::EXP_TERMS);
    let scale = f64::from_bits(n_bits.wrapping_add(1023) << 52);
    if x < -708.0 { 0.0 } else { e * scale }
}

/// `eˣ` for every `f64`, as [`exp_nonpositive`] (the same reduction and polynomial, for
/// results rounded to `E`, steps fused where `FMA`) with the scale split as `2·2ⁿ⁻¹` so that
/// `n = 1024` does not overflow the exponent field: `∞` above `ln(f64::MAX)`, 0 below `-708`
/// (no subnormals), NaN for NaN. For `f64` within 2 ulp of `f64::exp` (tested).
#[inline(always)]
pub(crate) fn exp<E: HostFloat, const FMA: bool>(x: f64) -> f64 {
    let (e, n_bits) = exp_parts::<FMA>(min_keep_nan(max_keep_nan(x, -708.0), 710.0), E::EXP_TERMS);
    let half_scale = f64::from_bits(n_bits.wrapping_add(1022) << 52);
    if x < -708.0 {
        0.0
    } else {
        e * 2.0 * half_scale
    }
}

/// `(eʳ, n)` with `x = n·ln 2 + r`, `|r| <= ln 2 / 2`, `n` as the low bits of an integer
/// (two's complement), for `x` in `[-708, 710]` (or NaN); `eʳ` from the first `terms` terms of
/// its Taylor series.
#[inline(always)]
fn exp_parts<const FMA: bool>(x: f64, terms: usize) -> (f64, u64) {
    // Adding 1.5·2⁵² rounds to the nearest integer `n` (ties to even) in the low mantissa
    // bits, so neither a rounding call nor a float-to-integer conversion is needed (neither
    // vectorises on SSE2; the latter not on AVX2 either).
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    let shifted = x * core::f64::consts::LOG2_E + SHIFTER;
    let n = shifted - SHIFTER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let n_bits = shifted.to_bits().wrapping_sub(SHIFTER.to_bits());
    (estrin_with::<FMA>(&EXP_TAYLOR[..terms], r), n_bits)
}

/// `ln(1 + x)` for `x >= 0` without branches or calls, so that loops over it vectorise.
/// `u = 1 + x = 2ᵏ·m` with `m ∈ [√½, √2)`, `ln m = 2·atanh(s)`, `s = (m - 1)/(m + 1)`
/// (series to `s²³`, truncation < 1e-17 relative), plus the rounding correction
/// `(x - (u - 1)) / u` that keeps full relative accuracy for small `x`. Within 2 ulp of
/// `f64::ln_1p` (tested) for finite `x >= 0`.
#[inline(always)]
pub(crate) fn ln_1p_nonnegative<const FMA: bool>(x: f64) -> f64 {
    let u = 1.0 + x;
    ln_corrected::<FMA>(u, (x - (u - 1.0)) / u)
}

/// `ln(1 + x)` for every `f64`, as [`ln_1p_nonnegative`] (whose formula holds for every
/// finite `x > -1`) with the special values selected: `-∞` at `-1`, `∞` at `∞`, NaN below
/// `-1` and for NaN. Within 2 ulp of `f64::ln_1p` (tested).
#[inline(always)]
pub(crate) fn ln_1p<const FMA: bool>(x: f64) -> f64 {
    let u = 1.0 + x;
    let special = if u == 0.0 {
        f64::NEG_INFINITY
    } else if u == f64::INFINITY {
        u
    } else {
        f64::NAN
    };
    let value = ln_1p_nonnegative::<FMA>(x);
    if (u > 0.0) & (u < f64::INFINITY) {
        value
    } else {
        special
    }
}

/// `ln u + correction` for a positive normal `u`, without branches or calls:
/// `u = 2ᵏ·m` with `m ∈ [√½, √2)`, `ln m = 2·atanh(s)`, `s = (m - 1)/(m + 1)` (series to
/// `s²³`, truncation < 1e-17 relative); the small tail is added last, after the exact
/// `k·ln2_hi` (ln 2 split so that `k·ln2_hi` is exact for `|k| < 2¹¹`). `k` is formed from
/// the exponent bits as an `f64` (AVX2 has no 64-bit integer-to-double conversion).
#[inline(always)]
pub(crate) fn ln_corrected<const FMA: bool>(u: f64, correction: f64) -> f64 {
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    let bits = u.to_bits();
    // The biased exponent of `u·√2`, so that m = u / 2^k lies in [√½, √2).
    let biased = bits.wrapping_add(0x0009_5f61_9980_c433) >> 52;
    let m = f64::from_bits(bits.wrapping_sub(biased.wrapping_sub(1023) << 52));
    let k = f64::from_bits(TWO_52.to_bits() | biased) - (TWO_52 + 1023.0);
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let poly = estrin_with::<FMA>(&ATANH_SERIES, s2);
    let two_s = 2.0 * s;
    k * LN2_HI + (two_s + (two_s * s2 * poly + (k * LN2_LO + correction)))
}

/// `ln x` for every `f64` without calls (only selects, so that loops over it vectorise):
/// [`ln_corrected`], subnormals scaled by `2⁵⁴` first; `ln 0 = -∞`, `ln ∞ = ∞`, NaN for
/// negative or NaN `x`, as `f64::ln`. Within 2 ulp of it (tested).
#[inline(always)]
pub(crate) fn ln<const FMA: bool>(x: f64) -> f64 {
    const TWO_54: f64 = 18_014_398_509_481_984.0;
    let subnormal = x < f64::MIN_POSITIVE;
    let u = if subnormal { x * TWO_54 } else { x };
    let shift = if subnormal { -54.0 } else { 0.0 };
    let value = ln_corrected::<FMA>(u, shift * LN2_HI + shift * LN2_LO);
    let special = if x == 0.0 {
        f64::NEG_INFINITY
    } else if x == f64::INFINITY {
        x
    } else {
        f64::NAN
    };
    if (x > 0.0) & (x < f64::INFINITY) {
        value
    } else {
        special
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lgamma_matches_statrs() {
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

    /// Distance in units in the last place.
    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    #[test]
    fn vectorisable_exp_and_ln_1p_are_within_2_ulp() {
        let mut worst = (0, 0);
        for i in 0..200_000 {
            let t = f64::from(i) / 200_000.0;
            // exp over [-708, 0], densest near 0.
            let x = -708.0 * t.powi(3);
            let want = x.exp();
            worst.0 = worst.0.max(ulps(exp_nonpositive::<f64, false>(x), want));
            worst.0 = worst.0.max(ulps(exp_nonpositive::<f64, true>(x), want));
            // ln_1p over [0, 1e12], log-spaced, plus tiny and exact-power-of-two arguments.
            let y = (1e-300f64.ln() + t * (1e12f64.ln() - 1e-300f64.ln())).exp();
            for got in [ln_1p_nonnegative::<false>(y), ln_1p_nonnegative::<true>(y)] {
                worst.1 = worst.1.max(ulps(got, y.ln_1p()));
            }
        }
        for y in [
            0.0,
            1.0,
            2.0,
            3.0,
            0.5,
            1e-17,
            0.4142135623730951,
            0.41421356237309515,
        ] {
            worst.1 = worst.1.max(ulps(ln_1p_nonnegative::<false>(y), y.ln_1p()));
            worst.1 = worst.1.max(ulps(ln_1p_nonnegative::<true>(y), y.ln_1p()));
        }
        assert_eq!(exp_nonpositive::<f64, false>(-1000.0), 0.0);
        assert_eq!(exp_nonpositive::<f64, false>(0.0), 1.0);
        assert!(
            worst.0 <= 2 && worst.1 <= 2,
            "max ulp error: exp {}, ln_1p {}",
            worst.0,
            worst.1
        );
    }

    /// The `f32`-length polynomial: within 2e-11 relative of `f64::exp`, with and without
    /// FMA, over the whole range (a ten-thousandth of `f32`'s rounding, 6e-8).
    #[test]
    fn exp_for_f32_results_is_within_2e_11() {
        let mut worst: f64 = 0.0;
        for i in 0..=200_000 {
            let t = f64::from(i) / 200_000.0;
            let x = -708.0 + t * (f64::MAX.ln() + 708.0);
            let want = x.exp();
            for got in [exp::<f32, false>(x), exp::<f32, true>(x)] {
                worst = worst.max((got - want).abs() / want);
            }
            if x <= 0.0 {
                for got in [
                    exp_nonpositive::<f32, false>(x),
                    exp_nonpositive::<f32, true>(x),
                ] {
                    worst = worst.max((got - want).abs() / want);
                }
            }
        }
        assert!(worst <= 2e-11, "max relative error {worst:e}");
        assert!(
            worst > 1e-14,
            "the f32 polynomial is the short one ({worst:e})"
        );
        assert_eq!(exp_nonpositive::<f32, true>(0.0), 1.0);
        assert_eq!(exp_nonpositive::<f32, true>(-1000.0), 0.0);
        assert_eq!(exp::<f32, true>(710.0), f64::INFINITY);
        assert!(exp::<f32, true>(f64::NAN).is_nan());
    }

    #[test]
    fn full_range_exp_and_ln_1p_are_within_2_ulp_and_keep_specials() {
        let mut worst = (0, 0);
        for i in 0..=400_000 {
            let t = f64::from(i) / 400_000.0;
            // exp over [-708, ln(f64::MAX)], both ends included.
            let x = -708.0 + t * (f64::MAX.ln() + 708.0);
            worst.0 = worst.0.max(ulps(exp::<f64, false>(x), x.exp()));
            worst.0 = worst.0.max(ulps(exp::<f64, true>(x), x.exp()));
            // ln_1p over (-1, 0): 1 + y from 2⁻⁵³ to 1, log-spaced; and over [0, 1e300].
            let u = (-53.0 * (1.0 - t) * core::f64::consts::LN_2).exp();
            let y = u - 1.0;
            let large = (1e-300f64.ln() + t * (1e300f64.ln() - 1e-300f64.ln())).exp();
            for y in [y, large, -large.min(0.5)] {
                for got in [ln_1p::<false>(y), ln_1p::<true>(y)] {
                    worst.1 = worst.1.max(ulps(got, y.ln_1p()));
                }
            }
        }
        assert!(
            worst.0 <= 2 && worst.1 <= 2,
            "max ulp error: exp {}, ln_1p {}",
            worst.0,
            worst.1
        );
        for exp in [exp::<f64, false>, exp::<f64, true>] {
            assert_eq!(exp(710.0), f64::INFINITY);
            assert_eq!(exp(f64::INFINITY), f64::INFINITY);
            assert_eq!(exp(-709.0), 0.0);
            assert_eq!(exp(f64::NEG_INFINITY), 0.0);
            assert!(exp(f64::NAN).is_nan());
        }
        for ln_1p in [ln_1p::<false>, ln_1p::<true>] {
            assert_eq!(ln_1p(-1.0), f64::NEG_INFINITY);
            assert_eq!(ln_1p(f64::INFINITY), f64::INFINITY);
            assert_eq!(ln_1p(0.0), 0.0);
            assert!(ln_1p(-1.5).is_nan() && ln_1p(f64::NEG_INFINITY).is_nan());
            assert!(ln_1p(f64::NAN).is_nan());
        }
    }

    #[test]
    fn call_free_ln_matches_std_everywhere() {
        let mut worst = (0u64, 0.0f64);
        let magnitudes = (0..400_000).map(|i| (-744.0 + f64::from(i) / 400_000.0 * 1453.7).exp());
        let specials = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            2.0,
            f64::MIN_POSITIVE,
            5e-324,
            1e-310,
            f64::MAX,
        ];
        for x in magnitudes.chain(specials) {
            let want = x.ln();
            for got in [ln::<false>(x), ln::<true>(x)] {
                let err = if want.is_finite() {
                    ulps(got, want)
                } else {
                    u64::from(got != want)
                };
                if err > worst.0 {
                    worst = (err, x);
                }
            }
        }
        for ln in [ln::<false>, ln::<true>] {
            assert!(ln(-1.0).is_nan() && ln(f64::NAN).is_nan() && ln(f64::NEG_INFINITY).is_nan());
            assert_eq!(ln(f64::INFINITY), f64::INFINITY);
        }
        assert!(worst.0 <= 2, "worst ulp (error, argument): {worst:?}");
    }
}

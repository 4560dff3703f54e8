//! [`Lane`]: the shared formulas ([`crate::real`]) as one lane of a vectorised host loop.
//!
//! `f64` evaluates a shared formula one element at a time: `select` is an `if` that runs only
//! the taken branch, and `exp`, `ln`, `ln_1p` are the standard library's calls. A loop over
//! such a formula cannot vectorise. A `Lane` runs the same formula with both branches of every
//! `select` evaluated and the result chosen by a comparison (a blend), and with the call-free
//! functions of [`super::special`], so that a loop over slices whose body is one formula
//! vectorises. Worth it where the branches are cheap against a mispredicted branch or a call
//! per element (the zero inflation's `x = 0` / `x > 0` split over a sparse count row);
//! `lgamma` stays a call (`libm`), as on `f64`.
//!
//! NaN in gives NaN out, as on `f64`: comparisons with NaN are false, the clamps keep NaN,
//! and the special functions return NaN for NaN.

use core::ops::{Add, Div, Mul, Neg, Sub};

use super::special;
use crate::real::{Real, estrin_with, max_keep_nan, min_keep_nan, scalar_lgamma};

/// One `f64` of a vectorised loop (see the module docs); `FMA`: polynomial steps rounded once
/// (see [`crate::real::mul_add`]), as the AVX2+FMA copy of a kernel passes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Lane<const FMA: bool>(pub f64);

macro_rules! binary {
    ($trait:ident, $method:ident, $op:tt) => {
        impl<const FMA: bool> $trait for Lane<FMA> {
            type Output = Self;
            #[inline(always)]
            fn $method(self, rhs: Self) -> Self {
                Lane(self.0 $op rhs.0)
            }
        }
        impl<const FMA: bool> $trait<f64> for Lane<FMA> {
            type Output = Self;
            #[inline(always)]
            fn $method(self, rhs: f64) -> Self {
                Lane(self.0 $op rhs)
            }
        }
    };
}

binary!(Add, add, +);
binary!(Sub, sub, -);
binary!(Mul, mul, *);
binary!(Div, div, /);

impl<const FMA: bool> Neg for Lane<FMA> {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        Lane(-self.0)
    }
}

/// `a` where `mask` holds, `b` elsewhere, both already evaluated.
#[inline(always)]
fn blend<T>(mask: bool, a: T, b: T) -> T {
    if mask { a } else { b }
}

impl<const FMA: bool> Real for Lane<FMA> {
    type Mask = bool;

    #[inline(always)]
    fn is_double(&self) -> bool {
        true
    }
    #[inline(always)]
    fn full_like(&self, v: f64) -> Self {
        Lane(v)
    }
    #[inline(always)]
    fn mask_fill(self, mask: bool, v: f64) -> Self {
        blend(mask, Lane(v), self)
    }
    #[inline(always)]
    fn select(mask: bool, if_true: impl FnOnce() -> Self, if_false: impl FnOnce() -> Self) -> Self {
        let (a, b) = (if_true(), if_false());
        blend(mask, a, b)
    }
    #[inline(always)]
    fn lt(&self, c: f64) -> bool {
        self.0 < c
    }
    #[inline(always)]
    fn gt(&self, c: f64) -> bool {
        self.0 > c
    }
    #[inline(always)]
    fn le(&self, c: f64) -> bool {
        self.0 <= c
    }
    #[inline(always)]
    fn ge(&self, c: f64) -> bool {
        self.0 >= c
    }
    #[inline(always)]
    fn clamp_min(self, lo: f64) -> Self {
        Lane(max_keep_nan(self.0, lo))
    }
    #[inline(always)]
    fn clamp_max(self, hi: f64) -> Self {
        Lane(min_keep_nan(self.0, hi))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Lane(self.0.abs())
    }
    #[inline(always)]
    fn recip(self) -> Self {
        Lane(1.0 / self.0)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        Lane(special::ln::<FMA>(self.0))
    }
    #[inline(always)]
    fn exp(self) -> Self {
        Lane(special::exp::<f64, FMA>(self.0))
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        Lane(special::ln_1p::<FMA>(self.0))
    }
    #[inline(always)]
    fn lgamma(self) -> Self {
        Lane(scalar_lgamma(self.0))
    }
    #[inline(always)]
    fn polynomial(self, c: &[f64]) -> Self {
        Lane(estrin_with::<FMA>(c, self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::{exp_m1_minus, sigmoid_pair, softplus};

    /// The shared formulas agree on both scalar executors to a few ulp, specials included,
    /// with and without fused polynomial steps.
    #[test]
    fn lane_evaluates_the_shared_formulas_as_f64_does() {
        agrees_with_f64::<false>();
        agrees_with_f64::<true>();
    }

    fn agrees_with_f64<const FMA: bool>() {
        let mut xs: Vec<f64> = (-4000..=4000).map(|i| f64::from(i) * 0.01).collect();
        xs.extend([
            -800.0,
            -40.0,
            -1e-12,
            0.0,
            1e-12,
            40.0,
            800.0,
            f64::INFINITY,
        ]);
        xs.extend([f64::NEG_INFINITY, f64::NAN]);
        for x in xs {
            let (s, l) = (sigmoid_pair(x), sigmoid_pair(Lane::<FMA>(x)));
            // (f64, Lane, scale of the rounding): `eˣ - 1 - x` is a difference of terms of
            // size 1 beyond |x| = 0.1, so its rounding is relative to them, not to the result.
            let m = -x.abs();
            let triples = [
                (softplus(x), softplus(Lane::<FMA>(x)).0, softplus(x).abs()),
                (s.0, l.0.0, s.0),
                (s.1, l.1.0, s.1),
                (exp_m1_minus(m), exp_m1_minus(Lane::<FMA>(m)).0, 1.0 - m),
            ];
            for (want, got, scale) in triples {
                let close = (got - want).abs() <= 4.0 * f64::EPSILON * scale
                    || got == want
                    || (got.is_nan() && want.is_nan());
                assert!(close, "x = {x} (FMA {FMA}): {got} vs {want}");
            }
        }
    }
}

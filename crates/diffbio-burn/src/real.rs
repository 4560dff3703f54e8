//! One definition of each loss's maths for every executor.
//!
//! A loss's element formula, its derivatives and its floor rules are written once, generic
//! over [`Real`], "a number": `f64` (the host kernels, one element at a time) and
//! `Tensor<B, D>` (the generic path, every element at once, on any backend). Branches are
//! written with [`Real::select`], an `if` for scalars (only the taken branch is evaluated)
//! and `mask_where` for tensors (both are). So a rule such as "θ ≥ 8 uses the rearranged
//! d/dθ" exists in one place, and the two paths cannot drift apart. A third executor,
//! `host::lane::Lane`, is an `f64` that evaluates both sides of every `select` and has
//! call-free primitives, for host loops that should vectorise (the zero inflation).
//!
//! The primitives are each executor's own, chosen to be accurate in the precision it works
//! in:
//! - `f64`: the standard library (`ln`, `exp`, `ln_1p`) and `libm`'s `lgamma`;
//! - tensors: the backend's `log`, `exp` and arithmetic, but never its `log1p`, which some
//!   backends compute as `log(1 + x)` (burn-wgpu does; it loses every digit of a small `x`):
//!   [`ln_1p`](Real::ln_1p) is a series near zero and a plain `log` elsewhere, exact to the
//!   tensor's own precision ([`crate::special::ln_1p`]).
//!
//! NaN in gives NaN out on both: comparisons with NaN are false, so NaN takes the "else"
//! branch of every `select`, and the `f64` clamps keep NaN (unlike `f64::max`).

use core::ops::{Add, Div, Mul, Neg, Sub};

use burn::tensor::{Bool, DType, Tensor, backend::Backend};

/// A real number or a tensor of them: what a shared loss formula computes with.
pub(crate) trait Real:
    Clone
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + Add<f64, Output = Self>
    + Sub<f64, Output = Self>
    + Mul<f64, Output = Self>
    + Div<f64, Output = Self>
{
    /// The result of a comparison: `bool` or a boolean tensor.
    type Mask: Clone;

    /// Whether values are computed in double precision (series get longer there).
    fn is_double(&self) -> bool;
    /// `v` everywhere, shaped (and typed) like `self`.
    fn full_like(&self, v: f64) -> Self;
    /// `v` where `mask` holds, `self` elsewhere.
    fn mask_fill(self, mask: Self::Mask, v: f64) -> Self;
    /// `if_true()` where `mask` holds, `if_false()` elsewhere.
    fn select(
        mask: Self::Mask,
        if_true: impl FnOnce() -> Self,
        if_false: impl FnOnce() -> Self,
    ) -> Self;
    /// `self < c`.
    fn lt(&self, c: f64) -> Self::Mask;
    /// `self > c`.
    fn gt(&self, c: f64) -> Self::Mask;
    /// `self <= c`.
    fn le(&self, c: f64) -> Self::Mask;
    /// `self >= c`.
    fn ge(&self, c: f64) -> Self::Mask;
    /// `max(self, lo)`, keeping NaN.
    fn clamp_min(self, lo: f64) -> Self;
    /// `min(self, hi)`, keeping NaN.
    fn clamp_max(self, hi: f64) -> Self;
    /// `|self|`.
    fn abs(self) -> Self;
    /// `1 / self`.
    fn recip(self) -> Self;
    /// `ln self`.
    fn ln(self) -> Self;
    /// `eˢᵉˡᶠ`.
    fn exp(self) -> Self;
    /// `ln(1 + self)`, accurate for small `self`. On tensors the value only, like `lgamma`:
    /// no gradient flows through it (the shared formulas run on untracked tensors and their
    /// callers attach the derivatives; [`crate::special::ln_1p`] is the differentiable one).
    fn ln_1p(self) -> Self;
    /// `ln Γ(self)`, `self > 0` (on tensors the value only, as `ln_1p`).
    fn lgamma(self) -> Self;

    /// `self²`.
    fn square(self) -> Self {
        self.clone() * self
    }

    /// `Σ c[k]·selfᵏ`: Horner's rule (tensors: the fewest operations), which `f64`
    /// evaluates by Estrin's scheme instead (see [`estrin`]).
    fn polynomial(self, c: &[f64]) -> Self {
        let (last, rest) = c.split_last().expect("non-empty polynomial");
        rest.iter()
            .rev()
            .fold(self.full_like(*last), |acc, &ck| acc * self.clone() + ck)
    }
}

/// `Σ c[k]·xᵏ` by Estrin's scheme (`c.len() <= 32`): pairs `c[2i] + c[2i+1]·x`, then pairs of
/// those in `x²`, and so on. The dependency chain is `O(log N)` deep instead of Horner's `N`,
/// so the host kernels' vectorised loops over a series are not latency-bound; for the short,
/// fast-decaying series here the rounding is as good as Horner's.
#[inline(always)]
pub(crate) fn estrin(c: &[f64], x: f64) -> f64 {
    estrin_with::<false>(c, x)
}

/// [`estrin`], each pair `c[2i] + c[2i+1]·x` rounded once where `FMA` (see [`mul_add`]).
#[inline(always)]
pub(crate) fn estrin_with<const FMA: bool>(c: &[f64], x: f64) -> f64 {
    let mut buf = [0.0; 32];
    let mut len = c.len();
    buf[..len].copy_from_slice(c);
    let mut x = x;
    while len > 1 {
        let half = len.div_ceil(2);
        for i in 0..half {
            buf[i] = if 2 * i + 1 < len {
                mul_add::<FMA>(buf[2 * i + 1], x, buf[2 * i])
            } else {
                buf[2 * i]
            };
        }
        (len, x) = (half, x * x);
    }
    buf[0]
}

/// `a·b + c`, rounded once where `FMA` ([`f64::mul_add`]: one `vfmadd` inside the host
/// kernels' AVX2+FMA copies, so a polynomial step costs one instruction instead of two),
/// twice otherwise. Host kernels take `const FMA: bool`: `true` in their AVX2+FMA copy,
/// `host::simd::BASELINE_FMA` in the baseline one.
#[inline(always)]
pub(crate) fn mul_add<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `max(x, lo)` that keeps NaN (`f64::max` returns `lo` for a NaN `x`).
#[inline(always)]
pub(crate) fn max_keep_nan(x: f64, lo: f64) -> f64 {
    if x < lo { lo } else { x }
}

/// `min(x, hi)` that keeps NaN.
#[inline(always)]
pub(crate) fn min_keep_nan(x: f64, hi: f64) -> f64 {
    if x > hi { hi } else { x }
}

impl Real for f64 {
    type Mask = bool;

    #[inline(always)]
    fn is_double(&self) -> bool {
        true
    }
    #[inline(always)]
    fn full_like(&self, v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn mask_fill(self, mask: bool, v: f64) -> Self {
        if mask { v } else { self }
    }
    #[inline(always)]
    fn select(mask: bool, if_true: impl FnOnce() -> Self, if_false: impl FnOnce() -> Self) -> Self {
        if mask { if_true() } else { if_false() }
    }
    #[inline(always)]
    fn lt(&self, c: f64) -> bool {
        *self < c
    }
    #[inline(always)]
    fn gt(&self, c: f64) -> bool {
        *self > c
    }
    #[inline(always)]
    fn le(&self, c: f64) -> bool {
        *self <= c
    }
    #[inline(always)]
    fn ge(&self, c: f64) -> bool {
        *self >= c
    }
    #[inline(always)]
    fn clamp_min(self, lo: f64) -> Self {
        max_keep_nan(self, lo)
    }
    #[inline(always)]
    fn clamp_max(self, hi: f64) -> Self {
        min_keep_nan(self, hi)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f64::abs(self)
    }
    #[inline(always)]
    fn recip(self) -> Self {
        f64::recip(self)
    }
    #[inline(always)]
    fn ln(self) -> Self {
        f64::ln(self)
    }
    #[inline(always)]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        f64::ln_1p(self)
    }
    #[inline(always)]
    fn lgamma(self) -> Self {
        scalar_lgamma(self)
    }
    #[inline(always)]
    fn polynomial(self, c: &[f64]) -> Self {
        estrin(c, self)
    }
}

/// `ln Γ(x)` in `f64` (musl's algorithm via the `libm` crate, error about 1 ulp).
#[inline]
pub(crate) fn scalar_lgamma(x: f64) -> f64 {
    libm::lgamma(x)
}

impl<B: Backend, const D: usize> Real for Tensor<B, D> {
    type Mask = Tensor<B, D, Bool>;

    fn is_double(&self) -> bool {
        self.dtype() == DType::F64
    }
    fn full_like(&self, v: f64) -> Self {
        Tensor::full_like(self, v)
    }
    fn mask_fill(self, mask: Self::Mask, v: f64) -> Self {
        Tensor::mask_fill(self, mask, v)
    }
    fn select(
        mask: Self::Mask,
        if_true: impl FnOnce() -> Self,
        if_false: impl FnOnce() -> Self,
    ) -> Self {
        if_false().mask_where(mask, if_true())
    }
    fn lt(&self, c: f64) -> Self::Mask {
        self.clone().lower_elem(c)
    }
    fn gt(&self, c: f64) -> Self::Mask {
        self.clone().greater_elem(c)
    }
    fn le(&self, c: f64) -> Self::Mask {
        self.clone().lower_equal_elem(c)
    }
    fn ge(&self, c: f64) -> Self::Mask {
        self.clone().greater_equal_elem(c)
    }
    fn clamp_min(self, lo: f64) -> Self {
        // `mask_where` rather than `clamp_min`: NaN stays NaN on every backend.
        let below = self.clone().lower_elem(lo);
        Tensor::mask_fill(self, below, lo)
    }
    fn clamp_max(self, hi: f64) -> Self {
        let above = self.clone().greater_elem(hi);
        Tensor::mask_fill(self, above, hi)
    }
    fn abs(self) -> Self {
        Tensor::abs(self)
    }
    fn recip(self) -> Self {
        Tensor::recip(self)
    }
    fn ln(self) -> Self {
        self.log()
    }
    fn exp(self) -> Self {
        Tensor::exp(self)
    }
    fn ln_1p(self) -> Self {
        crate::special::ln_1p_value(self)
    }
    fn lgamma(self) -> Self {
        crate::special::lgamma_value(self)
    }
}

/// `Σ c[k]·xᵏ`, for either executor ([`Real::polynomial`]).
#[inline(always)]
pub(crate) fn polynomial<R: Real>(x: R, c: &[f64]) -> R {
    x.polynomial(c)
}

/// `(-1)^(k+1)/k` for `k = 2..=18`: the series of `ln(1 + r) - r` divided by `r²`.
const LN_1P_MINUS_SERIES: [f64; 17] = {
    let mut c = [0.0; 17];
    let mut i = 0;
    while i < 17 {
        let k = (i + 2) as f64;
        c[i] = if i % 2 == 0 { -1.0 / k } else { 1.0 / k };
        i += 1;
    }
    c
};

/// `1/k!` for `k = 2..=14`: the series of `eˣ - 1 - x` divided by `x²`.
const EXP_M1_MINUS_SERIES: [f64; 13] = {
    let mut c = [0.0; 13];
    let mut factorial = 2.0;
    let mut i = 0;
    while i < 13 {
        c[i] = 1.0 / factorial;
        factorial *= (i + 3) as f64;
        i += 1;
    }
    c
};

/// `ln(1 + r) - r` for `r > -1`, accurate also for small `|r|` where the two terms cancel:
/// the series `-r²/2 + r³/3 - ...` for `|r| < 0.1` (to `r¹⁰` in single precision, `r¹⁸` in
/// double: truncation below the precision's rounding), the difference elsewhere.
pub(crate) fn ln_1p_minus<R: Real>(r: R) -> R {
    ln_1p_minus_with(r.clone(), || r.ln_1p())
}

/// [`ln_1p_minus`] for a caller that has `ln(1 + r)` at hand (`ln_1p_r`, evaluated only
/// where `|r| >= 0.1`).
#[inline(always)]
pub(crate) fn ln_1p_minus_with<R: Real>(r: R, ln_1p_r: impl FnOnce() -> R) -> R {
    R::select(
        r.clone().abs().lt(0.1),
        || ln_1p_minus_series(r.clone()),
        || ln_1p_r() - r.clone(),
    )
}

/// The series branch of [`ln_1p_minus_with`], `|r| < 0.1` (`r` is clamped to that range).
#[inline(always)]
pub(crate) fn ln_1p_minus_series<R: Real>(r: R) -> R {
    let terms = if r.is_double() { 17 } else { 9 };
    let rs = r.clamp_min(-0.1).clamp_max(0.1);
    rs.clone().square() * polynomial(rs, &LN_1P_MINUS_SERIES[..terms])
}

/// `eˣ - 1 - x`, accurate also for small `|x|` where the terms cancel: the series
/// `x²/2! + x³/3! + ...` for `|x| < 0.1` (to `x⁹` single, `x¹⁴` double), the difference
/// elsewhere.
#[inline(always)]
pub(crate) fn exp_m1_minus<R: Real>(x: R) -> R {
    let terms = if x.is_double() { 13 } else { 8 };
    R::select(
        x.clone().abs().lt(0.1),
        || {
            let xs = x.clone().clamp_min(-0.1).clamp_max(0.1);
            xs.clone().square() * polynomial(xs, &EXP_M1_MINUS_SERIES[..terms])
        },
        || x.clone().exp() - 1.0 - x.clone(),
    )
}

/// `ln(1 + eˣ)`: `max(x, 0) + ln_1p(e^-|x|)`, no overflow, full relative accuracy for very
/// negative `x`; NaN stays NaN.
#[inline(always)]
pub(crate) fn softplus<R: Real>(x: R) -> R {
    positive_part(x.clone()) + x.abs().neg().exp().ln_1p()
}

/// `max(x, 0)`, keeping NaN.
#[inline(always)]
pub(crate) fn positive_part<R: Real>(x: R) -> R {
    x.clone().mask_fill(x.lt(0.0), 0.0)
}

/// `1 / (1 + e⁻ˣ)`, no overflow, a few ulps everywhere; NaN stays NaN (see
/// [`sigmoid_pair`]).
#[inline(always)]
pub(crate) fn sigmoid<R: Real>(x: R) -> R {
    sigmoid_pair(x).0
}

/// `(σ(x), σ(-x))` from one `exp` (see [`sigmoid_pair_of`]).
#[inline(always)]
pub(crate) fn sigmoid_pair<R: Real>(x: R) -> (R, R) {
    let e = x.clone().abs().neg().exp();
    sigmoid_pair_of(x.ge(0.0), e)
}

/// `(σ(x), σ(-x))` from `x >= 0` and `e = e^-|x|`: `1/(1 + e)` is σ of the one of `±x` that
/// is non-negative, `e/(1 + e)` σ of the other.
#[inline(always)]
pub(crate) fn sigmoid_pair_of<R: Real>(positive: R::Mask, e: R) -> (R, R) {
    let r = (e.clone() + 1.0).recip();
    let er = e * r.clone();
    (
        R::select(positive.clone(), || r.clone(), || er.clone()),
        R::select(positive, || er, || r),
    )
}

/// `σ(±x)` and `softplus(±x)` of one `x`.
pub(crate) struct Logistic<R> {
    /// `σ(x)`.
    pub sigmoid: R,
    /// `σ(-x) = 1 - σ(x)`.
    pub sigmoid_minus: R,
    /// `softplus(x) = ln(1 + eˣ)`.
    pub softplus: R,
    /// `softplus(-x) = softplus(x) - x`.
    pub softplus_minus: R,
}

/// The four functions of [`Logistic`] from one `exp` and one `ln_1p`: with `e = e^-|x|`,
/// [`sigmoid_pair_of`] and `softplus(±x) = max(±x, 0) + ln_1p(e)` (as [`softplus`]).
#[inline(always)]
pub(crate) fn logistic<R: Real>(x: R) -> Logistic<R> {
    let e = x.clone().abs().neg().exp();
    let ln_1p_e = e.clone().ln_1p();
    let (sigmoid, sigmoid_minus) = sigmoid_pair_of(x.ge(0.0), e);
    Logistic {
        sigmoid,
        sigmoid_minus,
        softplus: positive_part(x.clone()) + ln_1p_e.clone(),
        softplus_minus: positive_part(x.neg()) + ln_1p_e,
    }
}

/// Below this argument [`stirling_remainder`] and [`digamma_remainder`]'s series give way to
/// `lgamma` (resp. are not used).
pub(crate) const SERIES_FROM: f64 = 8.0;

/// `B₂ₖ / (2k(2k - 1))` for `k = 1..=8`: Stirling's series `Σ c_k z^(1-2k)`.
const STIRLING_SERIES: [f64; 8] = [
    1.0 / 12.0,
    -1.0 / 360.0,
    1.0 / 1260.0,
    -1.0 / 1680.0,
    1.0 / 1188.0,
    -691.0 / 360_360.0,
    1.0 / 156.0,
    -3617.0 / 122_400.0,
];

/// `-B₂ₖ / (2k)` for `k = 1..=11`: `ψ(z) - ln z + 1/(2z) = Σ c_k z^(-2k)`.
const DIGAMMA_SERIES: [f64; 11] = [
    -1.0 / 12.0,
    1.0 / 120.0,
    -1.0 / 252.0,
    1.0 / 240.0,
    -1.0 / 132.0,
    691.0 / 32_760.0,
    -1.0 / 12.0,
    3617.0 / 8160.0,
    -43_867.0 / 14_364.0,
    174_611.0 / 6600.0,
    -854_513.0 / 3036.0,
];

/// `ln Γ(z) - [(z - 1/2) ln z - z + ln(2π)/2]`, the remainder of Stirling's formula
/// (Loader's `stirlerr`), for `z > 0`: the asymptotic series for `z >= 8` (to `z⁻⁷` single,
/// `z⁻¹⁵` double: truncation below 1e-11 resp. 1e-16), `lgamma` minus the formula below.
/// Small (`≈ 1/(12z)`) for large `z`, which is what lets the NB likelihood cancel its large
/// terms analytically.
pub(crate) fn stirling_remainder<R: Real>(z: R) -> R {
    R::select(
        z.ge(SERIES_FROM),
        || stirling_series(z.clone().clamp_min(SERIES_FROM)),
        || {
            let zs = z.clone().clamp_max(SERIES_FROM);
            zs.clone().lgamma() - (zs.clone() - 0.5) * zs.clone().ln() + zs
                - crate::special::HALF_LN_2PI
        },
    )
}

/// Stirling's series `Σ B₂ₖ/(2k(2k-1) z^(2k-1))` for `z >= 8` (to `z⁻⁷` single, `z⁻¹⁵`
/// double).
pub(crate) fn stirling_series<R: Real>(z: R) -> R {
    let terms = if z.is_double() { 8 } else { 4 };
    let r = z.recip();
    r.clone() * polynomial(r.square(), &STIRLING_SERIES[..terms])
}

/// `ψ(z) - ln z + 1/(2z)`, the remainder of the digamma asymptotic expansion, for `z >= 8`
/// (to `z⁻¹⁰` single, `z⁻²²` double: truncation below 3e-13 resp. 1e-18 at `z = 8`).
#[inline(always)]
pub(crate) fn digamma_remainder<R: Real>(z: R) -> R {
    let terms = if z.is_double() { 11 } else { 5 };
    let r2 = z.recip().square();
    r2.clone() * polynomial(r2, &DIGAMMA_SERIES[..terms])
}

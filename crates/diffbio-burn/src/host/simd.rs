//! Runtime selection of AVX2+FMA code for the host kernels' hot loops.
//!
//! The crate is compiled for the baseline x86-64 target (SSE2), where LLVM vectorises the
//! branch-free loops two `f64` lanes wide. A kernel's hot `#[inline(always)]` function gets a
//! second copy inside an AVX2+FMA `#[target_feature]` wrapper, and [`dispatch!`] calls that
//! copy when the CPU has both features (checked at run time, cached by `std`); elsewhere it calls
//! the baseline copy. Results may differ in the last bit between the two (FMA rounding).

use super::HostFloat;

/// `dispatch!(name, name_wide, (args..))` calls `name_wide(args..)` (the
/// `#[target_feature(enable = "avx2,fma")]` copy of the `#[inline(always)]` function `name`)
/// when the CPU supports both features, else `name(args..)`. `name` may carry generic
/// arguments (`body::<_, { simd::BASELINE_FMA }>`, see [`BASELINE_FMA`]).
macro_rules! dispatch {
    ($f:expr, $wide:ident, ($($arg:expr),* $(,)?)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports the features `$wide` is compiled for.
                unsafe { $wide($($arg),*) }
            } else {
                $f($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $f($($arg),*)
        }
    }};
}

pub(crate) use dispatch;

/// Whether the baseline copies may use [`f64::mul_add`] (see [`crate::real::mul_add`]): only
/// where every CPU of the target has a fused multiply-add instruction. On baseline x86-64 it
/// is a libm call (a software FMA, tens of cycles), so there the baseline copies multiply and
/// add separately; the `_wide` copies pass `true`.
pub(crate) const BASELINE_FMA: bool = cfg!(any(target_feature = "fma", target_arch = "aarch64"));

/// Independent accumulators of [`lanes_fold`] and [`lanes_dot`]: a single running sum (or
/// maximum) is a serial dependency chain, eight independent ones vectorise.
pub(crate) const LANES: usize = 8;

/// `x` folded with `f` in [`LANES`] independent lanes, then the lanes folded in order: the
/// lanes vectorise (inside a `dispatch!`ed kernel) where one accumulator would be a serial
/// dependency chain. For sums the rounding differs from a sequential sum only in order.
#[inline(always)]
pub(crate) fn lanes_fold(x: &[f64], init: f64, f: impl Fn(f64, f64) -> f64) -> f64 {
    let mut acc = [init; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for j in 0..LANES {
            acc[j] = f(acc[j], chunk[j]);
        }
    }
    let acc = acc.iter().fold(init, |a, &v| f(a, v));
    tail.iter().fold(acc, |a, &v| f(a, v))
}

/// `Σ f(a[k], b[k])` over `a` and `b` zipped (the length of the shorter), widened to `f64`,
/// in [`LANES`] lanes as [`lanes_fold`]. Keep one such sum per loop: with two in one loop,
/// LLVM's SLP vectoriser paired them in two-lane registers and the loop ran at scalar speed.
#[inline(always)]
pub(crate) fn lanes_dot<E: HostFloat, F: HostFloat>(
    a: &[E],
    b: &[F],
    f: impl Fn(f64, f64) -> f64,
) -> f64 {
    let mut acc = [0.0; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail = a_chunks.remainder().iter().zip(b_chunks.remainder());
    for (ac, bc) in a_chunks.zip(b_chunks) {
        for j in 0..LANES {
            acc[j] += f(ac[j].to_f64(), bc[j].to_f64());
        }
    }
    let sum = acc.iter().sum::<f64>();
    tail.fold(sum, |sum, (ak, bk)| sum + f(ak.to_f64(), bk.to_f64()))
}

//! The one place that chooses between a fused host kernel and the generic tensor path.
//!
//! A loss writes `host_or!(B, wanted, host_expression, generic_expression)`: the host
//! expression runs when `wanted` holds (the loss's `fast_path`, and anything that rules the
//! kernel out for this call, such as an empty input) and the backend keeps its tensors in
//! host memory ([`host::on_host`](crate::host::on_host)); the generic expression runs
//! otherwise. Without the crate feature `ndarray` the host expression is not even compiled,
//! so the losses carry no `#[cfg]` of their own. Both expressions evaluate the same
//! definitions ([`crate::real`]); the parity suite runs both.

/// `host_or!(B, wanted, host, generic)`: see the [module docs](self).
#[cfg(feature = "ndarray")]
macro_rules! host_or {
    ($B:ty, $wanted:expr, $host:expr, $generic:expr $(,)?) => {
        if $wanted && $crate::host::on_host::<$B>() {
            $host
        } else {
            $generic
        }
    };
}

/// `host_or!(B, wanted, host, generic)`: see the [module docs](self).
#[cfg(not(feature = "ndarray"))]
macro_rules! host_or {
    ($B:ty, $wanted:expr, $host:expr, $generic:expr $(,)?) => {{
        let _ = $wanted;
        $generic
    }};
}

pub(crate) use host_or;

//! Shape and value-domain checks shared by the losses.
//!
//! Shape checks are free (no device read-back) and always run. Value checks read a single
//! boolean back from the device and, only when it is `false`, the whole tensor to report the
//! first offending value.

use burn::tensor::{Int, Tensor, backend::Backend, cast::ToElement};

/// Panics unless `actual == expected`, naming the loss and both arguments.
pub(crate) fn same_shape(loss: &str, a: (&str, &[usize]), b: (&str, &[usize])) {
    assert!(
        a.1 == b.1,
        "{loss}: shape of `{}` {:?} does not match shape of `{}` {:?}",
        a.0,
        a.1,
        b.0,
        b.1
    );
}

/// Panics unless the two float tensors have the same dtype, naming the loss and both
/// arguments (a loss computes in its inputs' precision, so it must be one precision).
pub(crate) fn same_dtype<B: Backend, const D: usize, const D2: usize>(
    loss: &str,
    a: (&str, &Tensor<B, D>),
    b: (&str, &Tensor<B, D2>),
) {
    let (da, db) = (a.1.dtype(), b.1.dtype());
    assert!(
        da == db,
        "{loss}: `{}` is {da:?} but `{}` is {db:?}; all float inputs of a loss must have one \
         dtype (cast them first)",
        a.0,
        b.0
    );
}

/// Panics unless `actual == expected`, naming the loss, the argument, both shapes and what the
/// expected shape means (e.g. "`[n, 1]`").
pub(crate) fn expect_shape(
    loss: &str,
    arg: &str,
    actual: &[usize],
    expected: &[usize],
    what: &str,
) {
    if actual != expected {
        shape_error(loss, arg, actual, &format!("{expected:?} ({what})"));
    }
}

/// Panics with a message naming the loss, the argument and the offending shape.
pub(crate) fn shape_error(loss: &str, arg: &str, shape: &[usize], expected: &str) -> ! {
    panic!("{loss}: `{arg}` has shape {shape:?}, expected {expected}")
}

/// Panics unless every element of `x` satisfies `ok` (a device-side predicate) and the
/// host-side `ok_host` agrees; the message names the loss, the input, the requirement and
/// the first offending value with its flat index.
pub(crate) fn values<B: Backend, const D: usize>(
    loss: &str,
    arg: &str,
    requirement: &str,
    x: &Tensor<B, D>,
    ok: impl Fn(Tensor<B, D>) -> Tensor<B, D, burn::tensor::Bool>,
    ok_host: impl Fn(f64) -> bool,
) {
    if ok(x.clone()).all().into_scalar().to_bool() {
        return;
    }
    let data = x.to_data().convert::<f64>();
    let values = data.as_slice::<f64>().expect("f64 data");
    let (index, value) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !ok_host(**v))
        .map(|(i, v)| (i, *v))
        .unwrap_or((0, f64::NAN));
    panic!("{loss}: `{arg}` must be {requirement}; found {value} at flat index {index}");
}

/// Panics unless all of `x` is finite and `>= 0`.
pub(crate) fn non_negative<B: Backend, const D: usize>(loss: &str, arg: &str, x: &Tensor<B, D>) {
    values(
        loss,
        arg,
        "finite and non-negative",
        x,
        |t| t.clone().is_finite().bool_and(t.greater_equal_elem(0.0)),
        |v| v.is_finite() && v >= 0.0,
    );
}

/// Panics unless all of `x` is finite and `> 0`.
pub(crate) fn positive<B: Backend, const D: usize>(loss: &str, arg: &str, x: &Tensor<B, D>) {
    values(
        loss,
        arg,
        "finite and positive",
        x,
        |t| t.clone().is_finite().bool_and(t.greater_elem(0.0)),
        |v| v.is_finite() && v > 0.0,
    );
}

/// Panics unless all of `x` is finite (no NaN, no infinity).
pub(crate) fn finite<B: Backend, const D: usize>(loss: &str, arg: &str, x: &Tensor<B, D>) {
    values(loss, arg, "finite", x, |t| t.is_finite(), |v| v.is_finite());
}

/// Panics unless all of `x` lies in `[0, 1]` (NaN fails).
pub(crate) fn unit_interval<B: Backend, const D: usize>(loss: &str, arg: &str, x: &Tensor<B, D>) {
    values(
        loss,
        arg,
        "in [0, 1]",
        x,
        |t| {
            t.clone()
                .greater_equal_elem(0.0)
                .bool_and(t.lower_equal_elem(1.0))
        },
        |v| (0.0..=1.0).contains(&v),
    );
}

/// Panics unless every label is 0 or 1, naming the first other value and its index.
pub(crate) fn binary_labels<B: Backend>(loss: &str, arg: &str, labels: &Tensor<B, 1, Int>) {
    let ok = labels
        .clone()
        .equal_elem(0)
        .bool_or(labels.clone().equal_elem(1));
    if ok.all().into_scalar().to_bool() {
        return;
    }
    let data = labels.to_data().convert::<i64>();
    let values = data.as_slice::<i64>().expect("i64 data");
    let (index, value) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !matches!(**v, 0 | 1))
        .map(|(i, v)| (i, *v))
        .expect("a label other than 0/1");
    panic!("{loss}: `{arg}` must be 0 or 1; found {value} at index {index}");
}

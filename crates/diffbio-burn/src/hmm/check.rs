//! Shape and value checks of the observations and lengths given to an [`Hmm`](super::Hmm).

use burn::tensor::{Bool, Int, Tensor, backend::Backend, cast::ToElement};

use super::model::NAME;
use crate::validate;

/// A checked batch: `[B, T]` observations and optional `[B]` lengths.
#[derive(Debug, Clone)]
pub(crate) struct Batch<B: Backend> {
    pub observations: Tensor<B, 2, Int>,
    pub lengths: Option<Tensor<B, 1, Int>>,
    pub batch: usize,
    pub len: usize,
}

impl<B: Backend> Batch<B> {
    /// Checks the shapes (always, free) and panics with a message naming the argument.
    pub fn new(observations: Tensor<B, 2, Int>, lengths: Option<Tensor<B, 1, Int>>) -> Self {
        let dims = observations.dims();
        let [batch, len] = dims;
        if batch == 0 || len == 0 {
            validate::shape_error(NAME, "observations", &dims, "[B, T] with B >= 1 and T >= 1");
        }
        if let Some(l) = &lengths {
            let ld = l.dims();
            if ld != [batch] {
                validate::shape_error(
                    NAME,
                    "lengths",
                    &ld,
                    &format!("[{batch}] (one length per sequence of `observations` {dims:?})"),
                );
            }
        }
        Self {
            observations,
            lengths,
            batch,
            len,
        }
    }

    /// `[B, T]` mask of the unpadded positions (`t < lengths[b]`), or `None` without lengths.
    pub fn valid(&self) -> Option<Tensor<B, 2, Bool>> {
        let lengths = self.lengths.as_ref()?;
        let device = self.observations.device();
        let steps = Tensor::<B, 1, Int>::arange(0..self.len as i64, &device).unsqueeze::<2>();
        Some(steps.lower(lengths.clone().unsqueeze_dim(1)))
    }

    /// Value checks on the device (one boolean read back): observations in `0..n_emissions`
    /// at unpadded positions, lengths in `1..=T`. On failure, reads the data back to report
    /// the first offending value.
    pub fn check_values(&self, n_emissions: usize) {
        let obs = &self.observations;
        let mut ok = obs
            .clone()
            .greater_equal_elem(0)
            .bool_and(obs.clone().lower_elem(n_emissions as i64));
        if let Some(valid) = self.valid() {
            ok = ok.bool_or(valid.bool_not());
        }
        let mut all = ok.all();
        if let Some(l) = &self.lengths {
            let l_ok = l
                .clone()
                .greater_equal_elem(1)
                .bool_and(l.clone().lower_equal_elem(self.len as i64));
            all = all.bool_and(l_ok.all());
        }
        if all.into_scalar().to_bool() {
            return;
        }
        let obs: Vec<i64> = obs.to_data().iter::<i64>().collect();
        let lengths: Option<Vec<i64>> = self
            .lengths
            .as_ref()
            .map(|l| l.to_data().iter::<i64>().collect());
        check_host(&obs, lengths.as_deref(), self.batch, self.len, n_emissions);
        unreachable!("{NAME}: device and host validation disagree");
    }
}

impl<B: Backend> Batch<B> {
    /// The observations `[B, T]` and lengths `[B]` read back to the host.
    pub fn to_host(&self) -> (Vec<i64>, Option<Vec<i64>>) {
        (
            ints_to_host(&self.observations),
            self.lengths.as_ref().map(ints_to_host),
        )
    }
}

/// Host-side value checks on row-major `[B, T]` observations and `[B]` lengths; panics
/// naming the first offending value.
pub(crate) fn check_host(
    observations: &[i64],
    lengths: Option<&[i64]>,
    batch: usize,
    len: usize,
    n_emissions: usize,
) {
    if let Some((b, l)) = lengths.and_then(|lengths| {
        lengths
            .iter()
            .enumerate()
            .find(|(_, l)| !(1..=len as i64).contains(l))
    }) {
        panic!("{NAME}: `lengths` must be in 1..={len} (1..=T); found {l} at index {b}");
    }
    for b in 0..batch {
        let n = lengths.map_or(len, |l| l[b] as usize);
        let row = &observations[b * len..b * len + n];
        if let Some((t, x)) = row
            .iter()
            .enumerate()
            .find(|(_, x)| !(0..n_emissions as i64).contains(x))
        {
            panic!(
                "{NAME}: `observations` must be in 0..{n_emissions} (0..n_emissions); \
                 found {x} at [{b}, {t}]"
            );
        }
    }
}

/// The elements of an integer tensor as `i64`.
///
/// Reads a fresh copy (`t + 0`): Burn 0.21's NdArray backend converts a tensor whose buffer is
/// shared (as a caller's tensor always is) element by element through a dynamic-rank
/// iterator, ~30 ns per element (2 ms for `64 × 1000`), while an uniquely owned buffer is
/// handed over without copying; the extra vectorised add costs ~30 µs.
pub(crate) fn ints_to_host<B: Backend, const D: usize>(t: &Tensor<B, D, Int>) -> Vec<i64> {
    let data = (t.clone() + 0).into_data().convert::<i64>();
    data.into_vec::<i64>()
        .unwrap_or_else(|_| unreachable!("converted to i64"))
}

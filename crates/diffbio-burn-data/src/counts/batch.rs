//! Cells as a Burn [`Dataset`] and the [`Batcher`] that densifies one minibatch at a time.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::CountMatrix;

/// One cell of a [`CountMatrix`], by row index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellItem {
    /// Row of the cell in the matrix.
    pub cell: usize,
}

/// A set of cells of one matrix (all, or a split), as a Burn dataset of [`CellItem`]s.
///
/// Items are indices only: the counts stay in the shared sparse matrix, which the
/// [`CountsBatcher`] reads.
#[derive(Debug, Clone)]
pub struct CellDataset {
    cells: Vec<usize>,
}

impl CellDataset {
    /// The given cells, in this order.
    pub fn new(cells: Vec<usize>) -> Self {
        Self { cells }
    }

    /// All cells `0..n_cells`.
    pub fn all(n_cells: usize) -> Self {
        Self::new((0..n_cells).collect())
    }

    /// A seeded random split of `0..n_cells` into (train, held-out), with
    /// `round(held_out_fraction × n_cells)` held-out cells.
    ///
    /// # Panics
    /// If `held_out_fraction` is not in `[0, 1]`.
    pub fn split(n_cells: usize, held_out_fraction: f64, seed: u64) -> (Self, Self) {
        assert!(
            (0.0..=1.0).contains(&held_out_fraction),
            "CellDataset::split: held_out_fraction must be in [0, 1], got {held_out_fraction}"
        );
        let mut cells: Vec<usize> = (0..n_cells).collect();
        cells.shuffle(&mut StdRng::seed_from_u64(seed));
        let n_held_out = (held_out_fraction * n_cells as f64).round() as usize;
        let train = cells.split_off(n_held_out);
        (Self::new(train), Self::new(cells))
    }

    /// All cells `0..n_cells` in contiguous blocks of `block` cells, the blocks in a seeded
    /// random order (cells keep their order within a block). With a loader batch size equal
    /// to `block` and no loader shuffle, every minibatch is one contiguous run of cells, which
    /// a disk-backed source (`H5adBatcher`, feature `hdf5`) reads with one hyperslab.
    /// This is a coarser shuffle than [`split`](Self::split)'s: it assumes the file's cell
    /// order carries no structure within a block (true of a synthetic atlas written in random
    /// order; not of a file sorted by cell type or sample).
    ///
    /// # Panics
    /// If `block` is 0.
    pub fn block_shuffled(n_cells: usize, block: usize, seed: u64) -> Self {
        assert!(block > 0, "CellDataset::block_shuffled: block must be > 0");
        let mut starts: Vec<usize> = (0..n_cells).step_by(block).collect();
        starts.shuffle(&mut StdRng::seed_from_u64(seed));
        let cells = starts
            .into_iter()
            .flat_map(|s| s..(s + block).min(n_cells))
            .collect();
        Self::new(cells)
    }

    /// The cells, in order.
    pub fn cells(&self) -> &[usize] {
        &self.cells
    }
}

impl Dataset<CellItem> for CellDataset {
    fn get(&self, index: usize) -> Option<CellItem> {
        self.cells.get(index).map(|&cell| CellItem { cell })
    }

    fn len(&self) -> usize {
        self.cells.len()
    }
}

/// A dense minibatch of cells.
#[derive(Debug, Clone)]
pub struct CountsBatch<B: Backend> {
    /// Counts of the batch's cells.
    ///
    /// # Shapes
    /// `[batch, genes]`
    pub counts: Tensor<B, 2>,
    /// Total counts of each cell (its library size).
    ///
    /// # Shapes
    /// `[batch, 1]`
    pub library: Tensor<B, 2>,
    /// Label codes (see [`CountMatrix::label_codes`]), when the matrix has labels.
    ///
    /// # Shapes
    /// `[batch]`
    pub labels: Option<Tensor<B, 1, Int>>,
    /// Rows of the batch's cells in the matrix.
    pub cells: Vec<usize>,
}

/// Densifies a minibatch of [`CellItem`]s from a shared sparse matrix: memory is the matrix's
/// O(nnz) plus O(batch × genes) per batch in flight.
#[derive(Debug, Clone)]
pub struct CountsBatcher {
    matrix: Arc<CountMatrix>,
    label_codes: Option<Arc<Vec<usize>>>,
}

impl CountsBatcher {
    /// A batcher over `matrix`.
    pub fn new(matrix: Arc<CountMatrix>) -> Self {
        let label_codes = matrix.label_codes().map(|(codes, _)| Arc::new(codes));
        Self {
            matrix,
            label_codes,
        }
    }
}

impl<B: Backend> Batcher<B, CellItem, CountsBatch<B>> for CountsBatcher {
    fn batch(&self, items: Vec<CellItem>, device: &B::Device) -> CountsBatch<B> {
        let genes = self.matrix.n_genes();
        let cells: Vec<usize> = items.iter().map(|item| item.cell).collect();
        let mut counts = vec![0f32; cells.len() * genes];
        for (&cell, row) in cells.iter().zip(counts.chunks_exact_mut(genes.max(1))) {
            self.matrix.dense_row_into(cell, &mut row[..genes]);
        }
        let codes = self.label_codes.as_deref().map(Vec::as_slice);
        assemble_batch(counts, genes, cells, codes, device)
    }
}

/// A [`CountsBatch`] from dense counts (`cells.len() × genes`, row-major), the cells' rows and
/// the label code of every cell of the source (when it has labels): shared by the in-memory
/// and the disk-backed batchers.
pub(crate) fn assemble_batch<B: Backend>(
    counts: Vec<f32>,
    genes: usize,
    cells: Vec<usize>,
    label_codes: Option<&[usize]>,
    device: &B::Device,
) -> CountsBatch<B> {
    let library: Vec<f32> = counts
        .chunks_exact(genes.max(1))
        .map(|row| row.iter().sum())
        .collect();
    let labels = label_codes.map(|codes| {
        let codes: Vec<i64> = cells.iter().map(|&c| codes[c] as i64).collect();
        Tensor::from_data(TensorData::new(codes, [cells.len()]), device)
    });
    let n = cells.len();
    CountsBatch {
        counts: Tensor::from_data(TensorData::new(counts, [n, genes]), device),
        library: Tensor::from_data(TensorData::new(library, [n, 1]), device),
        labels,
        cells,
    }
}

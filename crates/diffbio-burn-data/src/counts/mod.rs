//! Cell × gene count matrices, kept sparse (CSR), and their Burn dataset and batcher.
//!
//! Readers: [`read_10x_mtx`] (a Cell Ranger MatrixMarket directory) and, with the `hdf5`
//! feature, `read_10x_h5` (`filtered_feature_bc_matrix.h5`, Cell Ranger 2 and 3 layouts) and
//! `read_h5ad` (AnnData). All give a [`CountMatrix`]: a CSR matrix of cells × genes with the
//! cell and gene names and optional labels. Memory is O(nnz); only a minibatch is ever dense
//! (see [`CountsBatcher`]).

#[cfg(feature = "hdf5")]
mod backed;
mod batch;
#[cfg(feature = "hdf5")]
mod h5;
mod mtx;

#[cfg(feature = "hdf5")]
pub use backed::{H5adBatcher, H5adCsrWriter, H5adRows};
pub use batch::{CellDataset, CellItem, CountsBatch, CountsBatcher};
#[cfg(feature = "hdf5")]
pub use h5::{H5adOptions, read_10x_h5, read_h5ad};
pub use mtx::read_10x_mtx;

use std::collections::HashMap;
use std::path::Path;

use sprs::{CsMatI, TriMatI};

use crate::{DataError, Result};

/// Sparse counts: rows are cells, columns genes; `u32` column indices, `f32` values.
pub type Csr = CsMatI<f32, u32, usize>;

/// A cells × genes count matrix, sparse (CSR), with names and optional labels.
#[derive(Debug, Clone)]
pub struct CountMatrix {
    /// Counts, cells × genes, CSR.
    pub x: Csr,
    /// One name (barcode) per cell.
    pub cell_names: Vec<String>,
    /// One name (symbol) per gene.
    pub gene_names: Vec<String>,
    /// One label (e.g. cell type) per cell, when the file has them and they were asked for.
    pub labels: Option<Vec<String>>,
}

impl CountMatrix {
    /// Builds a matrix and checks that the names fit its shape and that every stored value is
    /// a count (finite, non-negative, integer); `path` names the source in errors.
    ///
    /// # Errors
    /// Names or labels whose number differs from the matrix's, or a value that is not a
    /// count (naming its cell and gene).
    pub fn new(
        path: &Path,
        x: Csr,
        cell_names: Vec<String>,
        gene_names: Vec<String>,
        labels: Option<Vec<String>>,
    ) -> Result<Self> {
        let (cells, genes) = x.shape();
        let check = |what: &str, n: usize, expected: usize, of: &str| {
            if n == expected {
                Ok(())
            } else {
                Err(DataError::new(
                    path,
                    format!("{n} {what}, but the matrix has {expected} {of}"),
                ))
            }
        };
        check("cell names", cell_names.len(), cells, "cells")?;
        check("gene names", gene_names.len(), genes, "genes")?;
        if let Some(labels) = &labels {
            check("labels", labels.len(), cells, "cells")?;
        }
        let matrix = Self {
            x,
            cell_names,
            gene_names,
            labels,
        };
        matrix.check_counts(path)?;
        Ok(matrix)
    }

    /// Builds the CSR matrix of `cells × genes` from `(cell, gene, count)` triplets, summing
    /// duplicates as MatrixMarket readers do.
    pub fn csr_from_triplets(
        cells: usize,
        genes: usize,
        cell_idx: Vec<u32>,
        gene_idx: Vec<u32>,
        values: Vec<f32>,
    ) -> Csr {
        TriMatI::<f32, u32>::from_triplets((cells, genes), cell_idx, gene_idx, values).to_csr()
    }

    fn check_counts(&self, path: &Path) -> Result<()> {
        for (cell, row) in self.x.outer_iterator().enumerate() {
            for (gene, &v) in row.iter() {
                if !(v >= 0.0 && v.is_finite() && v.fract() == 0.0) {
                    return Err(DataError::new(
                        path,
                        format!("{v} is not a count (a non-negative integer)"),
                    )
                    .at(format!(
                        "cell {} ({}), gene {} ({})",
                        cell + 1,
                        self.cell_names[cell],
                        gene + 1,
                        self.gene_names[gene]
                    )));
                }
            }
        }
        Ok(())
    }

    /// Number of cells (rows).
    pub fn n_cells(&self) -> usize {
        self.x.rows()
    }

    /// Number of genes (columns).
    pub fn n_genes(&self) -> usize {
        self.x.cols()
    }

    /// Number of stored (non-zero) counts.
    pub fn nnz(&self) -> usize {
        self.x.nnz()
    }

    /// Total counts of each cell.
    pub fn library_sizes(&self) -> Vec<f32> {
        self.x
            .outer_iterator()
            .map(|row| row.data().iter().sum())
            .collect()
    }

    /// Total counts of each gene over all cells.
    pub fn gene_totals(&self) -> Vec<f64> {
        let mut totals = vec![0f64; self.n_genes()];
        for (&gene, &v) in self.x.indices().iter().zip(self.x.data()) {
            totals[gene as usize] += f64::from(v);
        }
        totals
    }

    /// Writes the counts of `cell` into `out` (length `n_genes`), zeros included.
    ///
    /// # Panics
    /// If `cell` is out of range or `out` has the wrong length.
    pub fn dense_row_into(&self, cell: usize, out: &mut [f32]) {
        assert_eq!(
            out.len(),
            self.n_genes(),
            "dense_row_into: `out` must hold one value per gene"
        );
        out.fill(0.0);
        let row = self
            .x
            .outer_view(cell)
            .expect("dense_row_into: cell out of range");
        for (gene, &v) in row.iter() {
            out[gene] = v;
        }
    }

    /// The label of each cell as an integer code, with the code → label table (labels in order
    /// of first appearance). `None` without labels.
    pub fn label_codes(&self) -> Option<(Vec<usize>, Vec<String>)> {
        let labels = self.labels.as_ref()?;
        let mut table: Vec<String> = Vec::new();
        let mut index = HashMap::new();
        let codes = labels
            .iter()
            .map(|l| {
                *index.entry(l.as_str()).or_insert_with(|| {
                    table.push(l.clone());
                    table.len() - 1
                })
            })
            .collect();
        Some((codes, table))
    }

    /// The matrix restricted to `cells` (in that order) and `genes` (in that order).
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn subset(&self, cells: &[usize], genes: &[usize]) -> CountMatrix {
        let mut new_col = vec![u32::MAX; self.n_genes()];
        for (j, &g) in genes.iter().enumerate() {
            new_col[g] = j as u32;
        }
        let mut indptr = Vec::with_capacity(cells.len() + 1);
        let (mut indices, mut data) = (Vec::new(), Vec::new());
        indptr.push(0);
        for &c in cells {
            let row = self.x.outer_view(c).expect("subset: cell out of range");
            let mut entries: Vec<(u32, f32)> = row
                .iter()
                .filter(|&(g, _)| new_col[g] != u32::MAX)
                .map(|(g, &v)| (new_col[g], v))
                .collect();
            entries.sort_unstable_by_key(|&(j, _)| j);
            indices.extend(entries.iter().map(|&(j, _)| j));
            data.extend(entries.iter().map(|&(_, v)| v));
            indptr.push(indices.len());
        }
        let pick =
            |names: &[String], idx: &[usize]| idx.iter().map(|&i| names[i].clone()).collect();
        CountMatrix {
            x: Csr::new((cells.len(), genes.len()), indptr, indices, data),
            cell_names: pick(&self.cell_names, cells),
            gene_names: pick(&self.gene_names, genes),
            labels: self.labels.as_ref().map(|l| pick(l, cells)),
        }
    }
}

#[cfg(feature = "hdf5")]
/// Checks a CSR/CSC structure read from a file and builds the cells × genes CSR matrix.
/// `by_cell` says whether the compressed dimension (`indptr`) runs over cells (AnnData CSR;
/// 10x CSC of genes × cells) or over genes (AnnData CSC).
pub(crate) fn csr_from_compressed(
    path: &Path,
    (cells, genes): (usize, usize),
    by_cell: bool,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<f32>,
) -> Result<Csr> {
    let structure = |e: sprs::errors::StructureError| {
        DataError::new(
            path,
            format!("malformed sparse matrix ({cells} cells × {genes} genes): {e}"),
        )
    };
    let (outer, inner) = if by_cell {
        (cells, genes)
    } else {
        (genes, cells)
    };
    if indptr.len() != outer + 1 {
        return Err(DataError::new(
            path,
            format!(
                "indptr has {} entries, expected {} (one per row, plus one)",
                indptr.len(),
                outer + 1
            ),
        ));
    }
    if let Some((k, &i)) = indices
        .iter()
        .enumerate()
        .find(|&(_, &i)| i as usize >= inner)
    {
        return Err(
            DataError::new(path, format!("index {i} out of range (0..{inner})"))
                .at(format!("entry {k} of indices")),
        );
    }
    if by_cell {
        Csr::new_from_unsorted((cells, genes), indptr, indices, data)
            .map_err(|(.., e)| structure(e))
    } else {
        CsMatI::new_from_unsorted_csc((cells, genes), indptr, indices, data)
            .map(|m| m.to_csr())
            .map_err(|(.., e)| structure(e))
    }
}

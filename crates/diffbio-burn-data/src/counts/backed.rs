//! Disk-backed AnnData `.h5ad` counts, for matrices larger than memory: a streaming writer
//! ([`H5adCsrWriter`]) that appends rows in chunks to resizable datasets, and a reader
//! ([`H5adRows`]) that keeps only `X/indptr` (O(cells)) and the label codes in memory and
//! reads a minibatch's rows from `X/indices` and `X/data` by hyperslab.
//!
//! [`H5adBatcher`] turns [`CellItem`]s into the same [`CountsBatch`] as
//! [`CountsBatcher`](super::CountsBatcher) does from an in-memory [`CountMatrix`](super::CountMatrix).
//! Reads are one hyperslab per run of consecutive cells in the batch: a shuffled order of
//! single cells costs one read per cell, while [`CellDataset::block_shuffled`] (contiguous
//! blocks of cells, the blocks in a seeded random order) costs one read per block.
//!
//! [`CellDataset::block_shuffled`]: super::CellDataset::block_shuffled

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::prelude::*;
use hdf5::types::VarLenUnicode;
use hdf5::{Dataset, File, Group, H5Type};

use super::batch::assemble_batch;
use super::{CellItem, CountsBatch};
use crate::{DataError, Result};

fn h5err(path: &Path, what: &str) -> impl Fn(hdf5::Error) -> DataError {
    let path = path.to_path_buf();
    let what = what.to_string();
    move |e| DataError::new(&path, what.clone()).caused_by(e)
}

fn vlu(s: &str) -> VarLenUnicode {
    // Only fails on interior NUL bytes; callers pass names without them.
    VarLenUnicode::from_str(s).unwrap_or_else(|_| VarLenUnicode::from_str("").expect("empty"))
}

fn str_attr(location: &hdf5::Location, name: &str, value: &str) -> hdf5::Result<()> {
    location
        .new_attr::<VarLenUnicode>()
        .create(name)?
        .write_scalar(&vlu(value))
}

fn encoding(location: &hdf5::Location, kind: &str, version: &str) -> hdf5::Result<()> {
    str_attr(location, "encoding-type", kind)?;
    str_attr(location, "encoding-version", version)
}

/// A 1-d dataset of type `T`, empty, resizable, chunked by `chunk` elements.
fn growable<T: H5Type>(group: &Group, name: &str, chunk: usize) -> hdf5::Result<Dataset> {
    group
        .new_dataset::<T>()
        .chunk(chunk)
        .shape(hdf5::SimpleExtents::resizable([0usize]))
        .create(name)
}

/// Appends `values` at the end of a resizable 1-d dataset of current length `len`.
fn append<T: H5Type>(ds: &Dataset, len: usize, values: &[T]) -> hdf5::Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    ds.resize(len + values.len())?;
    ds.write_slice(values, len..len + values.len())
}

fn string_dataset(group: &Group, name: &str, values: &[String]) -> hdf5::Result<Dataset> {
    let values: Vec<VarLenUnicode> = values.iter().map(|s| vlu(s)).collect();
    let ds = group
        .new_dataset_builder()
        .with_data(&values[..])
        .create(name)?;
    encoding(&ds, "string-array", "0.2.0")?;
    Ok(ds)
}

/// Writes an AnnData `.h5ad` (the anndata ≥ 0.8 encoding) whose `X` is a cells × genes CSR
/// matrix, streaming: rows are appended in chunks ([`append_rows`](Self::append_rows)) to
/// chunked, resizable datasets, so memory is one chunk plus O(cells) bytes of label codes.
///
/// Layout: `X` (`encoding-type` `csr_matrix` 0.1.0, `shape` attribute; `data` float32,
/// `indices` int32, `indptr` int64), `obs` and `var` data frames (`dataframe` 0.2.0, `_index`
/// attribute, string indices), an optional categorical `obs` column (int8 codes when there
/// are at most 127 categories, int16 otherwise), and empty `uns`, `obsm`, `varm`, `obsp`,
/// `varp`, `layers`.
pub struct H5adCsrWriter {
    path: PathBuf,
    file: File,
    data: Dataset,
    indices: Dataset,
    indptr: Dataset,
    obs_index: Dataset,
    n_genes: usize,
    n_cells: usize,
    nnz: usize,
    label_column: Option<(String, Vec<String>)>,
    codes: Vec<i16>,
}

impl H5adCsrWriter {
    /// Creates (truncates) `path` for a matrix with these genes; `labels`, when given, is the
    /// name of a categorical `obs` column and its categories (each appended cell then gives a
    /// code into them).
    ///
    /// # Errors
    /// The file cannot be created or written.
    pub fn create(
        path: &Path,
        gene_names: &[String],
        labels: Option<(&str, &[String])>,
    ) -> Result<Self> {
        let err = h5err(path, "cannot write .h5ad");
        let file = File::create(path).map_err(&err)?;
        let build = || -> hdf5::Result<_> {
            encoding(&file, "anndata", "0.1.0")?;
            for name in ["uns", "obsm", "varm", "obsp", "varp", "layers"] {
                let group = file.create_group(name)?;
                encoding(&group, "dict", "0.1.0")?;
            }
            let var = file.create_group("var")?;
            encoding(&var, "dataframe", "0.2.0")?;
            str_attr(&var, "_index", "_index")?;
            var.new_attr::<f64>()
                .shape([0usize])
                .create("column-order")?;
            string_dataset(&var, "_index", gene_names)?;
            let obs = file.create_group("obs")?;
            encoding(&obs, "dataframe", "0.2.0")?;
            str_attr(&obs, "_index", "_index")?;
            let obs_index = growable::<VarLenUnicode>(&obs, "_index", 16_384)?;
            encoding(&obs_index, "string-array", "0.2.0")?;
            let x = file.create_group("X")?;
            encoding(&x, "csr_matrix", "0.1.0")?;
            let chunk = 1 << 18;
            let data = growable::<f32>(&x, "data", chunk)?;
            let indices = growable::<i32>(&x, "indices", chunk)?;
            let indptr = growable::<i64>(&x, "indptr", 16_384)?;
            append(&indptr, 0, &[0i64])?;
            Ok((obs_index, data, indices, indptr))
        };
        let (obs_index, data, indices, indptr) = build().map_err(&err)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            data,
            indices,
            indptr,
            obs_index,
            n_genes: gene_names.len(),
            n_cells: 0,
            nnz: 0,
            label_column: labels.map(|(n, c)| (n.to_string(), c.to_vec())),
            codes: Vec::new(),
        })
    }

    /// Appends cells: `cell_names[i]`'s counts are `indices`/`data` in
    /// `indptr[i]..indptr[i + 1]` (`indptr` local to this chunk, starting at 0, one longer
    /// than `cell_names`); `codes` (category per cell) when the writer has a label column.
    ///
    /// # Errors
    /// Inconsistent lengths, a gene index out of range, a missing or unknown code, or a write
    /// error.
    pub fn append_rows(
        &mut self,
        cell_names: &[String],
        indptr: &[usize],
        indices: &[u32],
        data: &[f32],
        codes: Option<&[usize]>,
    ) -> Result<()> {
        let bad = |m: String| Err(DataError::new(&self.path, m));
        if indptr.len() != cell_names.len() + 1
            || indptr.first() != Some(&0)
            || indptr.last() != Some(&indices.len())
            || indices.len() != data.len()
        {
            return bad("append_rows: inconsistent indptr/indices/data/cell_names".into());
        }
        if let Some(&g) = indices.iter().find(|&&g| g as usize >= self.n_genes) {
            return bad(format!("append_rows: gene index {g} ≥ {}", self.n_genes));
        }
        match (&self.label_column, codes) {
            (Some((_, categories)), Some(codes)) => {
                if codes.len() != cell_names.len() || codes.iter().any(|&c| c >= categories.len()) {
                    return bad("append_rows: a code per cell, below the categories".into());
                }
                self.codes.extend(codes.iter().map(|&c| c as i16));
            }
            (None, None) => {}
            _ => return bad("append_rows: codes must be given iff labels were".into()),
        }
        let err = h5err(&self.path, "cannot append rows to .h5ad");
        let names: Vec<VarLenUnicode> = cell_names.iter().map(|s| vlu(s)).collect();
        append(&self.obs_index, self.n_cells, &names).map_err(&err)?;
        let ptr: Vec<i64> = indptr[1..].iter().map(|&p| (p + self.nnz) as i64).collect();
        append(&self.indptr, self.n_cells + 1, &ptr).map_err(&err)?;
        let idx: Vec<i32> = indices.iter().map(|&g| g as i32).collect();
        append(&self.indices, self.nnz, &idx).map_err(&err)?;
        append(&self.data, self.nnz, data).map_err(&err)?;
        self.n_cells += cell_names.len();
        self.nnz += indices.len();
        Ok(())
    }

    /// Cells written so far.
    pub fn n_cells(&self) -> usize {
        self.n_cells
    }

    /// Stored values written so far.
    pub fn nnz(&self) -> usize {
        self.nnz
    }

    /// Writes the `shape` attribute, the label column and `obs`'s `column-order`, and closes
    /// the file.
    ///
    /// # Errors
    /// A write error.
    pub fn finish(self) -> Result<()> {
        let err = h5err(&self.path, "cannot finish .h5ad");
        let write = || -> hdf5::Result<()> {
            let x = self.file.group("X")?;
            x.new_attr_builder()
                .with_data(&[self.n_cells as i64, self.n_genes as i64])
                .create("shape")?;
            let obs = self.file.group("obs")?;
            match &self.label_column {
                Some((name, categories)) => {
                    let order = [vlu(name)];
                    obs.new_attr_builder()
                        .with_data(&order[..])
                        .create("column-order")?;
                    let column = obs.create_group(name)?;
                    encoding(&column, "categorical", "0.2.0")?;
                    column
                        .new_attr::<bool>()
                        .create("ordered")?
                        .write_scalar(&false)?;
                    string_dataset(&column, "categories", categories)?;
                    if categories.len() <= i8::MAX as usize {
                        let codes: Vec<i8> = self.codes.iter().map(|&c| c as i8).collect();
                        let ds = column
                            .new_dataset_builder()
                            .with_data(&codes[..])
                            .create("codes")?;
                        encoding(&ds, "array", "0.2.0")?;
                    } else {
                        let ds = column
                            .new_dataset_builder()
                            .with_data(&self.codes[..])
                            .create("codes")?;
                        encoding(&ds, "array", "0.2.0")?;
                    }
                }
                None => {
                    obs.new_attr::<f64>()
                        .shape([0usize])
                        .create("column-order")?;
                }
            }
            self.file.flush()
        };
        write().map_err(err)
    }
}

/// The rows of an `.h5ad`'s CSR `X`, read from disk on demand: only `X/indptr` and the label
/// codes are held in memory (O(cells)).
#[derive(Debug)]
pub struct H5adRows {
    path: PathBuf,
    indices: Dataset,
    data: Dataset,
    indptr: Vec<u64>,
    n_genes: usize,
    label_codes: Option<Vec<usize>>,
    categories: Option<Vec<String>>,
}

impl H5adRows {
    /// Opens `path`'s `X` (which must be `csr_matrix`); with `labels`, reads that categorical
    /// `obs` column's codes and categories.
    ///
    /// # Errors
    /// Not an `.h5ad` with a CSR `X`, a malformed `indptr`, or an unreadable label column.
    pub fn open(path: &Path, labels: Option<&str>) -> Result<Self> {
        let err = h5err(path, "cannot read .h5ad");
        let file = File::open(path).map_err(&err)?;
        let x = file.group("X").map_err(&err)?;
        let kind = x
            .attr("encoding-type")
            .and_then(|a| a.read_scalar::<VarLenUnicode>())
            .map(|s| s.to_string())
            .unwrap_or_default();
        if kind != "csr_matrix" {
            return Err(DataError::new(
                path,
                format!("X has encoding-type {kind:?}; H5adRows needs csr_matrix"),
            ));
        }
        let shape: Vec<i64> = x
            .attr("shape")
            .and_then(|a| a.read_raw::<i64>())
            .map_err(&err)?;
        let [cells, genes] = shape[..] else {
            return Err(DataError::new(
                path,
                format!("X shape {shape:?} is not 2-d"),
            ));
        };
        let indptr: Vec<u64> = x
            .dataset("indptr")
            .and_then(|d| d.read_raw::<i64>())
            .map_err(&err)?
            .into_iter()
            .map(|p| p.max(0) as u64)
            .collect();
        let indices = x.dataset("indices").map_err(&err)?;
        let data = x.dataset("data").map_err(&err)?;
        if indptr.len() != cells as usize + 1
            || indptr.windows(2).any(|w| w[0] > w[1])
            || indptr.last().copied() != Some(data.size() as u64)
            || indices.size() != data.size()
        {
            return Err(DataError::new(path, "malformed X/indptr").at("dataset X/indptr"));
        }
        let (label_codes, categories) = match labels {
            Some(column) => {
                let group = file.group(&format!("obs/{column}")).map_err(&err)?;
                let categories: Vec<String> = group
                    .dataset("categories")
                    .and_then(|d| d.read_raw::<VarLenUnicode>())
                    .map_err(&err)?
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let codes: Vec<i64> = group
                    .dataset("codes")
                    .and_then(|d| d.read_raw::<i64>())
                    .map_err(&err)?;
                if codes.len() != cells as usize
                    || codes
                        .iter()
                        .any(|&c| c < 0 || c as usize >= categories.len())
                {
                    return Err(DataError::new(path, "bad label codes").at(column.to_string()));
                }
                (
                    Some(codes.into_iter().map(|c| c as usize).collect()),
                    Some(categories),
                )
            }
            None => (None, None),
        };
        Ok(Self {
            path: path.to_path_buf(),
            indices,
            data,
            indptr,
            n_genes: genes as usize,
            label_codes,
            categories,
        })
    }

    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Number of genes.
    pub fn n_genes(&self) -> usize {
        self.n_genes
    }

    /// Number of stored values.
    pub fn nnz(&self) -> usize {
        *self.indptr.last().unwrap_or(&0) as usize
    }

    /// Label code per cell (codes into [`categories`](Self::categories)), when opened with
    /// labels.
    pub fn label_codes(&self) -> Option<&[usize]> {
        self.label_codes.as_deref()
    }

    /// The label column's categories, when opened with labels.
    pub fn categories(&self) -> Option<&[String]> {
        self.categories.as_deref()
    }

    /// Writes the dense counts of `cells` (in this order) into `out` (`cells.len() × n_genes`,
    /// row-major), reading one hyperslab of `indices` and of `data` per run of consecutive
    /// cells.
    ///
    /// # Errors
    /// A read error, or a gene index out of range.
    ///
    /// # Panics
    /// If a cell is out of range or `out` has the wrong length.
    pub fn dense_rows_into(&self, cells: &[usize], out: &mut [f32]) -> Result<()> {
        let genes = self.n_genes;
        assert_eq!(
            out.len(),
            cells.len() * genes,
            "dense_rows_into: out length"
        );
        out.fill(0.0);
        let err = h5err(&self.path, "cannot read rows of X");
        let mut start = 0;
        while start < cells.len() {
            let mut end = start + 1;
            while end < cells.len() && cells[end] == cells[end - 1] + 1 {
                end += 1;
            }
            let (first, last) = (cells[start], cells[end - 1]);
            let (lo, hi) = (self.indptr[first] as usize, self.indptr[last + 1] as usize);
            if hi > lo {
                let idx = self.indices.read_slice_1d::<i64, _>(lo..hi).map_err(&err)?;
                let val = self.data.read_slice_1d::<f32, _>(lo..hi).map_err(&err)?;
                for (k, cell) in (first..=last).enumerate() {
                    let row = &mut out[(start + k) * genes..(start + k + 1) * genes];
                    let (a, b) = (
                        self.indptr[cell] as usize - lo,
                        self.indptr[cell + 1] as usize - lo,
                    );
                    for j in a..b {
                        let g = idx[j];
                        if g < 0 || g as usize >= genes {
                            return Err(DataError::new(
                                &self.path,
                                format!("gene index {g} out of range"),
                            )
                            .at(format!("cell {cell}")));
                        }
                        row[g as usize] += val[j];
                    }
                }
            }
            start = end;
        }
        Ok(())
    }
}

/// Densifies minibatches of [`CellItem`]s read from an [`H5adRows`]: the same
/// [`CountsBatch`] as [`CountsBatcher`](super::CountsBatcher) gives for the same cells of the
/// same file read into memory. Memory: O(cells) for `indptr` plus O(batch × genes) per batch
/// in flight.
///
/// # Panics
/// `batch` panics on a read error (burn's `Batcher` cannot return one).
#[derive(Debug, Clone)]
pub struct H5adBatcher {
    rows: Arc<H5adRows>,
}

impl H5adBatcher {
    /// A batcher over `rows`.
    pub fn new(rows: Arc<H5adRows>) -> Self {
        Self { rows }
    }
}

impl<B: Backend> Batcher<B, CellItem, CountsBatch<B>> for H5adBatcher {
    fn batch(&self, items: Vec<CellItem>, device: &B::Device) -> CountsBatch<B> {
        let genes = self.rows.n_genes();
        let cells: Vec<usize> = items.iter().map(|item| item.cell).collect();
        let mut counts = vec![0f32; cells.len() * genes];
        if let Err(e) = self.rows.dense_rows_into(&cells, &mut counts) {
            panic!("H5adBatcher: {e}");
        }
        assemble_batch(counts, genes, cells, self.rows.label_codes(), device)
    }
}

//! HDF5 count files, through `hdf5-metno` (the HDF5 C library): Cell Ranger's
//! `filtered_feature_bc_matrix.h5` (v3 `matrix/` layout and v2 one-group-per-genome layout)
//! and AnnData `.h5ad` (the encoding of anndata ≥ 0.7: `X` as CSR, CSC or dense, `obs`/`var`
//! data frames, `layers/`).

use std::path::Path;

use hdf5::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Dataset, File, Group, H5Type};

use super::{CountMatrix, Csr, csr_from_compressed};
use crate::{DataError, Result};

/// What to take from an `.h5ad` file.
#[derive(Debug, Clone, Default)]
pub struct H5adOptions {
    /// Read the counts from `layers/<layer>` instead of `X` (e.g. `"counts"` when `X` holds
    /// normalised values).
    pub layer: Option<String>,
    /// The `obs` column (categorical or string) to use as cell labels.
    pub labels: Option<String>,
}

/// Reads a 10x Genomics `.h5` count file (`filtered_feature_bc_matrix.h5`). Cell Ranger ≥ 3
/// files hold group `matrix/` (CSC of genes × cells, `features/name`, `barcodes`); Cell Ranger
/// 2 files hold one such group per genome, with `gene_names`: a file with one genome is read,
/// one with several is refused with their names.
///
/// # Errors
/// A file that is not HDF5 or lacks the expected datasets, a malformed sparse structure, an
/// index out of range, or a value that is not a count.
pub fn read_10x_h5(path: &Path) -> Result<CountMatrix> {
    let file = open(path)?;
    let (group, gene_names) = if file.link_exists("matrix") {
        let group = group(path, &file, "matrix")?;
        let names = strings(path, &dataset(path, &group, "features/name")?)?;
        (group, names)
    } else {
        let genomes = file
            .member_names()
            .map_err(|e| DataError::new(path, "cannot list groups").caused_by(e))?;
        let [genome] = genomes.as_slice() else {
            return Err(DataError::new(
                path,
                format!(
                    "not a 10x .h5 count file: expected group `matrix` (Cell Ranger ≥ 3) or one \
                     genome group (Cell Ranger 2), found {genomes:?}"
                ),
            ));
        };
        let group = group(path, &file, genome)?;
        let names = strings(path, &dataset(path, &group, "gene_names")?)?;
        (group, names)
    };
    let cell_names = strings(path, &dataset(path, &group, "barcodes")?)?;
    let shape: Vec<i64> = read(path, &dataset(path, &group, "shape")?)?;
    let [genes, cells] = shape.as_slice() else {
        return Err(DataError::new(path, format!("shape {shape:?} is not 2-d"))
            .at(format!("dataset {}/shape", group.name())));
    };
    // Genes × cells CSC: the compressed dimension runs over cells.
    let x = read_compressed(path, &group, (dim(path, *cells)?, dim(path, *genes)?), true)?;
    CountMatrix::new(path, x, cell_names, gene_names, None)
}

/// Reads an AnnData `.h5ad` file: counts from `X` (or `layers/<layer>`), stored as CSR, CSC or
/// dense; cell names from `obs`'s index, gene names from `var`'s; labels from an `obs` column
/// when asked.
///
/// # Errors
/// The legacy (anndata < 0.7) encoding, a missing layer or column, a malformed sparse
/// structure, an index out of range, names that do not fit the matrix, or a value that is not a
/// count (e.g. a normalised `X`: ask for `layer: Some("counts")`).
pub fn read_h5ad(path: &Path, options: &H5adOptions) -> Result<CountMatrix> {
    let file = open(path)?;
    if file.dataset("obs").is_ok() {
        return Err(DataError::new(
            path,
            "legacy AnnData encoding (anndata < 0.7: `obs` is a compound dataset); \
             re-save it with a recent anndata (`anndata.read_h5ad(p).write_h5ad(p)`)",
        ));
    }
    let obs = group(path, &file, "obs")?;
    let var = group(path, &file, "var")?;
    let cell_names = frame_index(path, &obs)?;
    let gene_names = frame_index(path, &var)?;
    let name = match &options.layer {
        Some(layer) => format!("layers/{layer}"),
        None => "X".to_string(),
    };
    let x = read_matrix(path, &file, &name, (cell_names.len(), gene_names.len()))?;
    let labels = options
        .labels
        .as_deref()
        .map(|column| frame_column(path, &obs, column))
        .transpose()?;
    CountMatrix::new(path, x, cell_names, gene_names, labels)
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| DataError::new(path, "cannot open as HDF5").caused_by(e))
}

fn group(path: &Path, parent: &Group, name: &str) -> Result<Group> {
    parent.group(name).map_err(|e| {
        DataError::new(path, format!("no group `{name}` in {}", parent.name())).caused_by(e)
    })
}

fn dataset(path: &Path, parent: &Group, name: &str) -> Result<Dataset> {
    parent.dataset(name).map_err(|e| {
        DataError::new(path, format!("no dataset `{name}` in {}", parent.name())).caused_by(e)
    })
}

fn read<T: H5Type>(path: &Path, ds: &Dataset) -> Result<Vec<T>> {
    ds.read_raw::<T>().map_err(|e| {
        DataError::new(path, "cannot read")
            .at(format!("dataset {}", ds.name()))
            .caused_by(e)
    })
}

fn dim(path: &Path, n: i64) -> Result<usize> {
    usize::try_from(n).map_err(|_| DataError::new(path, format!("negative dimension {n}")))
}

/// A string attribute (`encoding-type`, `_index`), fixed or variable length.
fn string_attr(path: &Path, location: &hdf5::Location, name: &str) -> Result<Option<String>> {
    let Ok(attr) = location.attr(name) else {
        return Ok(None);
    };
    let err = |e| {
        DataError::new(
            path,
            format!("cannot read attribute `{name}` of {}", location.name()),
        )
        .caused_by(e)
    };
    let descriptor = attr.dtype().and_then(|t| t.to_descriptor()).map_err(err)?;
    let value = match descriptor {
        TypeDescriptor::VarLenUnicode => attr.read_scalar::<VarLenUnicode>().map(|s| s.to_string()),
        TypeDescriptor::VarLenAscii => attr.read_scalar::<VarLenAscii>().map(|s| s.to_string()),
        TypeDescriptor::FixedAscii(_) => attr
            .read_scalar::<FixedAscii<1024>>()
            .map(|s| s.to_string()),
        TypeDescriptor::FixedUnicode(_) => attr
            .read_scalar::<FixedUnicode<1024>>()
            .map(|s| s.to_string()),
        other => {
            return Err(DataError::new(
                path,
                format!(
                    "attribute `{name}` of {} is {other:?}, not a string",
                    location.name()
                ),
            ));
        }
    }
    .map_err(err)?;
    Ok(Some(value))
}

/// A 1-d dataset of strings, fixed or variable length, ASCII or UTF-8.
fn strings(path: &Path, ds: &Dataset) -> Result<Vec<String>> {
    let err = |e| {
        DataError::new(path, "cannot read strings")
            .at(format!("dataset {}", ds.name()))
            .caused_by(e)
    };
    let descriptor = ds.dtype().and_then(|t| t.to_descriptor()).map_err(err)?;
    fn owned<T: H5Type + std::fmt::Display>(ds: &Dataset) -> hdf5::Result<Vec<String>> {
        Ok(ds
            .read_raw::<T>()?
            .iter()
            .map(ToString::to_string)
            .collect())
    }
    match descriptor {
        TypeDescriptor::VarLenUnicode => owned::<VarLenUnicode>(ds),
        TypeDescriptor::VarLenAscii => owned::<VarLenAscii>(ds),
        TypeDescriptor::FixedAscii(_) => owned::<FixedAscii<1024>>(ds),
        TypeDescriptor::FixedUnicode(_) => owned::<FixedUnicode<1024>>(ds),
        other => {
            return Err(
                DataError::new(path, format!("holds {other:?}, not strings"))
                    .at(format!("dataset {}", ds.name())),
            );
        }
    }
    .map_err(err)
}

/// `data`, `indices`, `indptr` of a compressed matrix group, checked and turned into cells ×
/// genes CSR.
fn read_compressed(
    path: &Path,
    group: &Group,
    shape: (usize, usize),
    by_cell: bool,
) -> Result<Csr> {
    let at = |name: &str| format!("dataset {}/{name}", group.name());
    let data: Vec<f32> = read(path, &dataset(path, group, "data")?)?;
    let indices: Vec<i64> = read(path, &dataset(path, group, "indices")?)?;
    let indptr: Vec<i64> = read(path, &dataset(path, group, "indptr")?)?;
    if indices.len() != data.len() {
        return Err(DataError::new(
            path,
            format!("{} indices but {} values", indices.len(), data.len()),
        )
        .at(at("indices")));
    }
    let inner = if by_cell { shape.1 } else { shape.0 };
    let indices = indices
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            u32::try_from(i)
                .ok()
                .filter(|&i| (i as usize) < inner)
                .ok_or_else(|| {
                    DataError::new(path, format!("index {i} out of range (0..{inner})"))
                        .at(format!("{}, entry {k}", at("indices")))
                })
        })
        .collect::<Result<Vec<u32>>>()?;
    let indptr = indptr
        .iter()
        .map(|&p| {
            usize::try_from(p)
                .map_err(|_| DataError::new(path, format!("negative offset {p}")).at(at("indptr")))
        })
        .collect::<Result<Vec<usize>>>()?;
    if indptr.last() != Some(&data.len()) || indptr.windows(2).any(|w| w[0] > w[1]) {
        return Err(DataError::new(
            path,
            format!(
                "offsets must rise from 0 to the {} stored values",
                data.len()
            ),
        )
        .at(at("indptr")));
    }
    csr_from_compressed(path, shape, by_cell, indptr, indices, data)
        .map_err(|e| e.at(format!("group {}", group.name())))
}

/// `X` or a layer: a CSR/CSC group or a dense 2-d dataset of `shape` (cells × genes).
fn read_matrix(path: &Path, file: &File, name: &str, shape: (usize, usize)) -> Result<Csr> {
    if let Ok(group) = file.group(name) {
        let encoding = string_attr(path, &group, "encoding-type")?;
        let by_cell = match encoding.as_deref() {
            Some("csr_matrix") => true,
            Some("csc_matrix") => false,
            other => {
                return Err(DataError::new(
                    path,
                    format!(
                        "`{name}` is a group with encoding-type {other:?}, expected csr_matrix or csc_matrix"
                    ),
                ));
            }
        };
        let declared: Vec<i64> = group
            .attr("shape")
            .and_then(|a| a.read_raw::<i64>())
            .map_err(|e| {
                DataError::new(path, format!("`{name}` has no readable `shape` attribute"))
                    .caused_by(e)
            })?;
        if declared != [shape.0 as i64, shape.1 as i64] {
            return Err(DataError::new(
                path,
                format!(
                    "`{name}` has shape {declared:?}, but obs/var have {} cells and {} genes",
                    shape.0, shape.1
                ),
            ));
        }
        return read_compressed(path, &group, shape, by_cell);
    }
    let ds = dataset(path, file, name)?;
    if ds.shape() != [shape.0, shape.1] {
        return Err(DataError::new(
            path,
            format!(
                "dense `{name}` has shape {:?}, but obs/var have {} cells and {} genes",
                ds.shape(),
                shape.0,
                shape.1
            ),
        ));
    }
    let dense: Vec<f32> = read(path, &ds)?;
    let (mut indptr, mut indices, mut data) = (vec![0], Vec::new(), Vec::new());
    for row in dense.chunks_exact(shape.1.max(1)).take(shape.0) {
        for (gene, &v) in row.iter().enumerate() {
            if v != 0.0 {
                indices.push(gene as u32);
                data.push(v);
            }
        }
        indptr.push(indices.len());
    }
    indptr.resize(shape.0 + 1, indices.len());
    Ok(Csr::new(shape, indptr, indices, data))
}

/// The index (row names) of an AnnData data frame group.
fn frame_index(path: &Path, frame: &Group) -> Result<Vec<String>> {
    let column = string_attr(path, frame, "_index")?.unwrap_or_else(|| "_index".to_string());
    strings(path, &dataset(path, frame, &column)?)
}

/// A column of an AnnData data frame: a categorical (`categories` + `codes`) or strings.
fn frame_column(path: &Path, frame: &Group, column: &str) -> Result<Vec<String>> {
    let Ok(group) = frame.group(column) else {
        if !frame.link_exists(column) {
            let columns = frame.member_names().unwrap_or_default();
            return Err(DataError::new(
                path,
                format!(
                    "no column `{column}` in {} (it has {columns:?})",
                    frame.name()
                ),
            ));
        }
        return strings(path, &dataset(path, frame, column)?);
    };
    let categories = strings(path, &dataset(path, &group, "categories")?)?;
    let codes: Vec<i64> = read(path, &dataset(path, &group, "codes")?)?;
    codes
        .iter()
        .enumerate()
        .map(|(cell, &code)| {
            usize::try_from(code)
                .ok()
                .and_then(|c| categories.get(c))
                .cloned()
                .ok_or_else(|| {
                    DataError::new(
                        path,
                        format!(
                            "cell {} has code {code}: a missing or unknown category",
                            cell + 1
                        ),
                    )
                    .at(format!("dataset {}/codes", group.name()))
                })
        })
        .collect()
}

//! 10x Genomics count directories (Cell Ranger's `filtered_feature_bc_matrix/`):
//! `matrix.mtx[.gz]` (MatrixMarket, genes × cells), `features.tsv[.gz]` (or Cell Ranger 2's
//! `genes.tsv[.gz]`) and `barcodes.tsv[.gz]`, plus optional labels (`barcode<TAB>label` with a
//! header line; `labels.tsv` in the directory is used when present).
//!
//! MatrixMarket syntax is parsed by `nalgebra-sparse` (errors come with the line and column),
//! TSV by `csv`. The text of `matrix.mtx` is held while it is parsed; atlases with 10^8
//! non-zeros are better read from `.h5ad` (feature `hdf5`).

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use nalgebra_sparse::io::load_coo_from_matrix_market_str;

use super::CountMatrix;
use crate::{DataError, Result};

/// Reads a 10x count directory into a sparse [`CountMatrix`]. Labels come from `labels` if
/// given, else from `labels.tsv` in the directory if present.
///
/// # Errors
/// A missing file, a truncated or corrupt gzip, a MatrixMarket or TSV syntax error (with the
/// line), a count that is negative or not an integer (with its line), features or barcodes
/// whose number does not match the matrix, or a barcode without a label.
pub fn read_10x_mtx(dir: &Path, labels: Option<&Path>) -> Result<CountMatrix> {
    if !dir.is_dir() {
        return Err(DataError::new(dir, "not a directory"));
    }
    let mtx = find(dir, &["matrix.mtx.gz", "matrix.mtx"])?;
    let features = find(
        dir,
        &[
            "features.tsv.gz",
            "features.tsv",
            "genes.tsv.gz",
            "genes.tsv",
        ],
    )?;
    let barcodes = find(dir, &["barcodes.tsv.gz", "barcodes.tsv"])?;

    let (n_genes, n_cells, gene_idx, cell_idx, values) = read_matrix_market(&mtx)?;
    let gene_names = read_tsv(&features, false)?
        .into_iter()
        // Cell Ranger 3: id, symbol, type; Cell Ranger 2: id, symbol; some tools: one column.
        .map(|mut row| {
            if row.len() >= 2 {
                row.swap_remove(1)
            } else {
                row.swap_remove(0)
            }
        })
        .collect::<Vec<_>>();
    let cell_names = read_tsv(&barcodes, false)?
        .into_iter()
        .map(|mut row| row.swap_remove(0))
        .collect::<Vec<_>>();
    if gene_names.len() != n_genes {
        return Err(DataError::new(
            &features,
            format!(
                "{} rows, but {} declares {n_genes} genes (matrix rows)",
                gene_names.len(),
                mtx.display()
            ),
        ));
    }
    if cell_names.len() != n_cells {
        return Err(DataError::new(
            &barcodes,
            format!(
                "{} rows, but {} declares {n_cells} cells (matrix columns)",
                cell_names.len(),
                mtx.display()
            ),
        ));
    }
    let default_labels = dir.join("labels.tsv");
    let labels = labels
        .map(Path::to_path_buf)
        .or_else(|| default_labels.is_file().then_some(default_labels))
        .map(|path| read_labels(&path, &cell_names))
        .transpose()?;
    let x = CountMatrix::csr_from_triplets(n_cells, n_genes, cell_idx, gene_idx, values);
    CountMatrix::new(&mtx, x, cell_names, gene_names, labels)
}

/// The first of `names` that exists in `dir`.
fn find(dir: &Path, names: &[&str]) -> Result<PathBuf> {
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            DataError::new(
                dir,
                format!("no {} (expected a 10x count directory)", names.join(" or ")),
            )
        })
}

/// The whole text of a file, gunzipped when its name ends in `.gz`.
fn read_text(path: &Path) -> Result<String> {
    let file = File::open(path).map_err(|e| DataError::new(path, "cannot open").caused_by(e))?;
    let mut text = String::new();
    let read = if path.extension().is_some_and(|e| e == "gz") {
        MultiGzDecoder::new(file).read_to_string(&mut text)
    } else {
        let mut file = file;
        file.read_to_string(&mut text)
    };
    read.map_err(|e| {
        DataError::new(
            path,
            "cannot read (truncated or corrupt gzip, or not UTF-8 text)",
        )
        .caused_by(e)
    })?;
    Ok(text)
}

/// Rows of a tab-separated file (ragged rows allowed).
fn read_tsv(path: &Path, has_header: bool) -> Result<Vec<Vec<String>>> {
    let text = read_text(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .has_headers(has_header)
        .flexible(true)
        .quoting(false)
        .from_reader(text.as_bytes());
    reader
        .records()
        .map(|record| {
            let record = record.map_err(|e| {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                DataError::new(path, "malformed TSV")
                    .at(format!("line {line}"))
                    .caused_by(e)
            })?;
            Ok(record.iter().map(str::to_string).collect())
        })
        .collect()
}

type Triplets = (usize, usize, Vec<u32>, Vec<u32>, Vec<f32>);

/// Parses a MatrixMarket file into (rows, cols, row indices, col indices, values); a value that
/// is not a count is reported with its line.
fn read_matrix_market(path: &Path) -> Result<Triplets> {
    let text = read_text(path)?;
    let header = text.lines().next().unwrap_or("").to_ascii_lowercase();
    let syntax = |e: nalgebra_sparse::io::MatrixMarketError| {
        DataError::new(path, "malformed MatrixMarket file").caused_by(e)
    };
    // nalgebra-sparse reads `integer` entries only into integer types and `real` into floats.
    let (nrows, ncols, rows, cols, values): (_, _, Vec<usize>, Vec<usize>, Vec<f64>) =
        if header.contains(" integer ") {
            let coo = load_coo_from_matrix_market_str::<i64>(&text).map_err(syntax)?;
            let values = coo.values().iter().map(|&v| v as f64).collect();
            (
                coo.nrows(),
                coo.ncols(),
                coo.row_indices().to_vec(),
                coo.col_indices().to_vec(),
                values,
            )
        } else {
            let coo = load_coo_from_matrix_market_str::<f64>(&text).map_err(syntax)?;
            let (nrows, ncols) = (coo.nrows(), coo.ncols());
            let (rows, cols, values) = coo.disassemble();
            (nrows, ncols, rows, cols, values)
        };
    if let Some(k) = values.iter().position(|&v| !(v >= 0.0 && v.fract() == 0.0)) {
        // Entries keep the file's order: entry k is the k-th data line after the size line.
        let first_entry_line = text.lines().take_while(|l| l.starts_with('%')).count() + 2;
        return Err(DataError::new(
            path,
            format!("{} is not a count (a non-negative integer)", values[k]),
        )
        .at(format!(
            "line {} (gene {}, cell {})",
            first_entry_line + k,
            rows[k] + 1,
            cols[k] + 1
        )));
    }
    let max = u32::MAX as usize;
    if nrows > max || ncols > max {
        return Err(DataError::new(
            path,
            format!("{nrows} × {ncols} is too large for u32 indices"),
        ));
    }
    let to_u32 = |v: Vec<usize>| v.into_iter().map(|i| i as u32).collect();
    Ok((
        nrows,
        ncols,
        to_u32(rows),
        to_u32(cols),
        values.into_iter().map(|v| v as f32).collect(),
    ))
}

/// Reads `barcode<TAB>label` rows (after a header line) and returns the label of each barcode.
fn read_labels(path: &Path, barcodes: &[String]) -> Result<Vec<String>> {
    let mut by_barcode = HashMap::new();
    for (i, row) in read_tsv(path, true)?.into_iter().enumerate() {
        let [barcode, label, ..] = row.as_slice() else {
            return Err(
                DataError::new(path, format!("expected `barcode<TAB>label`, got {row:?}"))
                    .at(format!("line {}", i + 2)),
            );
        };
        by_barcode.insert(barcode.clone(), label.clone());
    }
    barcodes
        .iter()
        .map(|b| {
            by_barcode
                .get(b)
                .cloned()
                .ok_or_else(|| DataError::new(path, format!("no label for barcode {b}")))
        })
        .collect()
}

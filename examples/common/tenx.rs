//! Reader for 10x Genomics count directories (Cell Ranger's `filtered_feature_bc_matrix/`):
//! `matrix.mtx[.gz]` (MatrixMarket, genes × cells), `features.tsv[.gz]` (or v2's
//! `genes.tsv[.gz]`) and `barcodes.tsv[.gz]`, plus an optional `labels.tsv`
//! (`barcode<TAB>label` with a header line).
//!
//! MatrixMarket parsing is `nalgebra-sparse`'s (a pest grammar: syntax errors come with the
//! line and column); TSV parsing is the `csv` crate's (errors come with the line). Every error
//! names the file.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use flate2::read::GzDecoder;
use nalgebra_sparse::CooMatrix;
use nalgebra_sparse::io::load_coo_from_matrix_market_str;

/// A dense cells × genes count matrix with its gene names, barcodes and optional labels.
#[derive(Debug, Clone)]
pub struct CountMatrix {
    /// Counts, row-major `[cells, genes]`.
    pub counts: Vec<f32>,
    /// Number of cells (rows of `counts`).
    pub n_cells: usize,
    /// Number of genes (columns of `counts`).
    pub n_genes: usize,
    /// Gene symbols (second column of `features.tsv`, or the first if there is only one).
    pub genes: Vec<String>,
    /// Cell barcodes.
    pub barcodes: Vec<String>,
    /// One label per cell, if a labels file was found or given.
    pub labels: Option<Vec<String>>,
}

impl CountMatrix {
    /// The counts of cell `c`.
    pub fn row(&self, c: usize) -> &[f32] {
        &self.counts[c * self.n_genes..(c + 1) * self.n_genes]
    }

    /// Keeps the given cells (in that order) and genes.
    pub fn subset(&self, cells: &[usize], genes: &[usize]) -> CountMatrix {
        let mut counts = Vec::with_capacity(cells.len() * genes.len());
        for &c in cells {
            let row = self.row(c);
            counts.extend(genes.iter().map(|&g| row[g]));
        }
        CountMatrix {
            counts,
            n_cells: cells.len(),
            n_genes: genes.len(),
            genes: genes.iter().map(|&g| self.genes[g].clone()).collect(),
            barcodes: cells.iter().map(|&c| self.barcodes[c].clone()).collect(),
            labels: self
                .labels
                .as_ref()
                .map(|l| cells.iter().map(|&c| l[c].clone()).collect()),
        }
    }

    /// Total counts per cell.
    pub fn library_sizes(&self) -> Vec<f32> {
        (0..self.n_cells)
            .map(|c| self.row(c).iter().sum())
            .collect()
    }
}

/// The first of `names` that exists in `dir`.
fn find(dir: &Path, names: &[&str]) -> Result<PathBuf> {
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{}: no {} in this directory (expected a 10x count directory)",
                dir.display(),
                names.join(" or ")
            )
        })
}

/// The whole text of a file, gunzipped when its name ends in `.gz`.
fn read_text(path: &Path) -> Result<String> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut text = String::new();
    let read = if path.extension().is_some_and(|e| e == "gz") {
        GzDecoder::new(file).read_to_string(&mut text)
    } else {
        let mut file = file;
        file.read_to_string(&mut text)
    };
    read.with_context(|| format!("cannot read {} (not gzip/UTF-8 text?)", path.display()))?;
    Ok(text)
}

/// Rows of a headerless tab-separated file (ragged rows allowed).
fn read_tsv(path: &Path, has_header: bool) -> Result<Vec<Vec<String>>> {
    let text = read_text(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .has_headers(has_header)
        .flexible(true)
        .quoting(false)
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("{}: malformed TSV", path.display()))?;
        rows.push(record.iter().map(str::to_string).collect());
    }
    Ok(rows)
}

/// Parses a MatrixMarket text into a genes × cells COO matrix of counts.
fn parse_matrix_market(path: &Path, text: &str) -> Result<CooMatrix<f64>> {
    let header = text.lines().next().unwrap_or("").to_ascii_lowercase();
    let context = || format!("{}: malformed MatrixMarket file", path.display());
    // nalgebra-sparse reads `integer` entries only into integer types and `real` into floats.
    if header.contains(" integer ") {
        let coo = load_coo_from_matrix_market_str::<i64>(text).with_context(context)?;
        let values = coo.values().iter().map(|&v| v as f64).collect();
        let (rows, cols) = (coo.row_indices().to_vec(), coo.col_indices().to_vec());
        Ok(
            CooMatrix::try_from_triplets(coo.nrows(), coo.ncols(), rows, cols, values)
                .expect("same structure"),
        )
    } else {
        load_coo_from_matrix_market_str::<f64>(text).with_context(context)
    }
}

/// Reads a 10x count directory; labels come from `labels` if given, else from `labels.tsv`
/// in the directory if present.
///
/// # Errors
/// A missing file, a MatrixMarket or TSV syntax error (with the line), a count that is
/// negative or not an integer, features/barcodes whose number does not match the matrix, or a
/// barcode without a label.
pub fn read_10x(dir: &Path, labels: Option<&Path>) -> Result<CountMatrix> {
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    let mtx_path = find(dir, &["matrix.mtx.gz", "matrix.mtx"])?;
    let features_path = find(
        dir,
        &[
            "features.tsv.gz",
            "features.tsv",
            "genes.tsv.gz",
            "genes.tsv",
        ],
    )?;
    let barcodes_path = find(dir, &["barcodes.tsv.gz", "barcodes.tsv"])?;

    let coo = parse_matrix_market(&mtx_path, &read_text(&mtx_path)?)?;
    let (n_genes, n_cells) = (coo.nrows(), coo.ncols());

    let features = read_tsv(&features_path, false)?;
    if features.len() != n_genes {
        bail!(
            "{}: {} rows, but {} declares {n_genes} genes (matrix rows)",
            features_path.display(),
            features.len(),
            mtx_path.display()
        );
    }
    let genes = features
        .into_iter()
        .map(|mut f| {
            if f.len() >= 2 {
                f.swap_remove(1)
            } else {
                f.swap_remove(0)
            }
        })
        .collect();
    let barcodes: Vec<String> = read_tsv(&barcodes_path, false)?
        .into_iter()
        .map(|mut r| r.swap_remove(0))
        .collect();
    if barcodes.len() != n_cells {
        bail!(
            "{}: {} rows, but {} declares {n_cells} cells (matrix columns)",
            barcodes_path.display(),
            barcodes.len(),
            mtx_path.display()
        );
    }

    let mut counts = vec![0f32; n_cells * n_genes];
    for (gene, cell, &value) in coo.triplet_iter() {
        if !(value >= 0.0 && value.fract() == 0.0) {
            bail!(
                "{}: entry (gene {}, cell {}) = {value} is not a non-negative integer count",
                mtx_path.display(),
                gene + 1,
                cell + 1
            );
        }
        // Duplicate entries are summed, as MatrixMarket readers (scipy) do.
        counts[cell * n_genes + gene] += value as f32;
    }

    let default_labels = dir.join("labels.tsv");
    let labels_path = labels
        .map(Path::to_path_buf)
        .or_else(|| default_labels.is_file().then_some(default_labels));
    let labels = labels_path
        .map(|p| read_labels(&p, &barcodes))
        .transpose()?;

    Ok(CountMatrix {
        counts,
        n_cells,
        n_genes,
        genes,
        barcodes,
        labels,
    })
}

/// Reads `barcode<TAB>label` rows (after a header line) and returns the label of each barcode.
fn read_labels(path: &Path, barcodes: &[String]) -> Result<Vec<String>> {
    let mut by_barcode = HashMap::new();
    for (i, row) in read_tsv(path, true)?.into_iter().enumerate() {
        if row.len() < 2 {
            bail!(
                "{}: line {}: expected `barcode<TAB>label`, got {row:?}",
                path.display(),
                i + 2
            );
        }
        by_barcode.insert(row[0].clone(), row[1].clone());
    }
    barcodes
        .iter()
        .map(|b| {
            by_barcode
                .get(b)
                .cloned()
                .with_context(|| format!("{}: no label for barcode {b}", path.display()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_gz(path: &Path, text: &str) {
        let file = File::create(path).unwrap();
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap();
    }

    fn tiny_dir(matrix: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write_gz(&dir.path().join("matrix.mtx.gz"), matrix);
        write_gz(
            &dir.path().join("features.tsv.gz"),
            "ENSG1\tA\tGene Expression\nENSG2\tB\tGene Expression\n",
        );
        std::fs::write(dir.path().join("barcodes.tsv"), "AAA-1\nCCC-1\nGGG-1\n").unwrap();
        dir
    }

    const HEADER: &str = "%%MatrixMarket matrix coordinate integer general\n% comment\n";

    #[test]
    fn reads_a_tiny_directory_densely() {
        let dir = tiny_dir(&format!("{HEADER}2 3 3\n1 1 4\n2 3 7\n1 2 1\n"));
        let m = read_10x(dir.path(), None).unwrap();
        assert_eq!((m.n_cells, m.n_genes), (3, 2));
        assert_eq!(m.counts, vec![4.0, 0.0, 1.0, 0.0, 0.0, 7.0]);
        assert_eq!(m.genes, vec!["A", "B"]);
        assert_eq!(m.barcodes, vec!["AAA-1", "CCC-1", "GGG-1"]);
        assert!(m.labels.is_none());
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let dir = tiny_dir(&format!("{HEADER}2 3 2\n1 1 4\n2 x 7\n"));
        let err = format!("{:#}", read_10x(dir.path(), None).unwrap_err());
        assert!(err.contains("matrix.mtx.gz"), "{err}");
        // pest reports `--> line:column`; the bad entry is on line 5.
        assert!(err.contains("5:"), "{err}");
    }

    #[test]
    fn mismatched_features_and_missing_files_are_named() {
        let dir = tiny_dir(&format!("{HEADER}3 3 1\n1 1 4\n"));
        let err = format!("{:#}", read_10x(dir.path(), None).unwrap_err());
        assert!(
            err.contains("features.tsv.gz: 2 rows") && err.contains("3 genes"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            read_10x(Path::new("/nonexistent/dir"), None).unwrap_err()
        );
        assert!(err.contains("/nonexistent/dir: not a directory"), "{err}");
    }
}

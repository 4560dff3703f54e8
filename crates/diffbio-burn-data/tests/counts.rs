//! Count-matrix readers (10x MatrixMarket) and the minibatch densifier, on the bundled real
//! files and on small broken ones.

mod common;

use common::bundled;

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use burn::backend::NdArray;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use diffbio_burn_data::counts::{
    CellDataset, CellItem, CountMatrix, CountsBatch, CountsBatcher, read_10x_mtx,
};
use flate2::read::GzDecoder;

type B = NdArray<f32>;

/// Triplets `(gene, cell, count)` of a MatrixMarket file, parsed by hand (the oracle).
fn triplets(path: &Path) -> (usize, usize, Vec<(usize, usize, f32)>) {
    let mut text = String::new();
    GzDecoder::new(File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('%'));
    let size: Vec<usize> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let entries = lines
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse::<usize>().unwrap() - 1,
                f[1].parse::<usize>().unwrap() - 1,
                f[2].parse().unwrap(),
            )
        })
        .collect();
    (size[0], size[1], entries)
}

fn dense(m: &CountMatrix) -> Vec<f32> {
    let mut out = vec![0.0; m.n_cells() * m.n_genes()];
    for (c, row) in out.chunks_exact_mut(m.n_genes()).enumerate() {
        m.dense_row_into(c, row);
    }
    out
}

#[test]
fn reads_the_bundled_pbmc_directory_exactly() {
    let dir = bundled("pbmc_10x_v3_small");
    let m = read_10x_mtx(&dir, None).unwrap();
    let (genes, cells, entries) = triplets(&dir.join("matrix.mtx.gz"));
    assert_eq!((m.n_cells(), m.n_genes()), (cells, genes));
    assert_eq!((m.n_cells(), m.n_genes()), (1107, 507));
    assert_eq!(m.nnz(), entries.len());
    let mut expected = vec![0.0; cells * genes];
    for &(g, c, v) in &entries {
        expected[c * genes + g] += v;
    }
    assert_eq!(dense(&m), expected);
    assert_eq!((m.cell_names.len(), m.gene_names.len()), (cells, genes));
    assert!(m.labels.is_none());
}

#[test]
fn labels_come_with_the_labelled_pbmcs() {
    let m = read_10x_mtx(&bundled("pbmc68k_reduced_labeled"), None).unwrap();
    assert_eq!((m.n_cells(), m.n_genes()), (700, 765));
    let (codes, table) = m.label_codes().unwrap();
    assert_eq!(codes.len(), 700);
    assert_eq!(table.len(), 10);
    assert_eq!(table[codes[0]], m.labels.as_ref().unwrap()[0]);
    let library = m.library_sizes();
    assert_eq!(library.iter().copied().fold(f32::INFINITY, f32::min), 342.0);
    assert_eq!(library.iter().copied().fold(0.0, f32::max), 1654.0);
}

#[test]
fn batcher_densifies_only_the_minibatch_with_library_sizes() {
    let m = Arc::new(read_10x_mtx(&bundled("pbmc68k_reduced_labeled"), None).unwrap());
    let all = dense(&m);
    let g = m.n_genes();
    let items: Vec<CellItem> = [5usize, 0, 699]
        .iter()
        .map(|&cell| CellItem { cell })
        .collect();
    let batch: CountsBatch<B> = CountsBatcher::new(m.clone()).batch(items, &Default::default());
    assert_eq!(batch.counts.dims(), [3, g]);
    let counts = batch.counts.into_data().to_vec::<f32>().unwrap();
    for (i, &c) in [5usize, 0, 699].iter().enumerate() {
        assert_eq!(&counts[i * g..(i + 1) * g], &all[c * g..(c + 1) * g]);
    }
    let library = batch.library.into_data().to_vec::<f32>().unwrap();
    assert_eq!(
        library,
        [5usize, 0, 699].map(|c| m.library_sizes()[c]).to_vec()
    );
    let (codes, _) = m.label_codes().unwrap();
    let labels = batch.labels.unwrap().into_data().to_vec::<i64>().unwrap();
    assert_eq!(labels, [5usize, 0, 699].map(|c| codes[c] as i64).to_vec());
}

#[test]
fn split_is_seeded_disjoint_and_complete() {
    let (train, held_out) = CellDataset::split(700, 0.2, 7);
    assert_eq!((train.len(), held_out.len()), (560, 140));
    let mut all: Vec<usize> = train
        .cells()
        .iter()
        .chain(held_out.cells())
        .copied()
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..700).collect::<Vec<_>>());
    assert_eq!(CellDataset::split(700, 0.2, 7).1.cells(), held_out.cells());
    assert_ne!(CellDataset::split(700, 0.2, 8).1.cells(), held_out.cells());
}

#[test]
fn subset_keeps_the_chosen_cells_and_genes() {
    let m = read_10x_mtx(&bundled("pbmc_10x_v3_small"), None).unwrap();
    let (cells, genes) = ([3usize, 1, 1000], [10usize, 2, 500, 7]);
    let s = m.subset(&cells, &genes);
    let (full, sub) = (dense(&m), dense(&s));
    for (i, &c) in cells.iter().enumerate() {
        for (j, &g) in genes.iter().enumerate() {
            assert_eq!(sub[i * genes.len() + j], full[c * m.n_genes() + g]);
        }
    }
    assert_eq!(s.gene_names[1], m.gene_names[2]);
}

// ----- bad input: every error names the file, the place and the problem -----

const HEADER: &str = "%%MatrixMarket matrix coordinate integer general\n% comment\n";

fn write_gz(path: &Path, text: &str) {
    let mut gz =
        flate2::write::GzEncoder::new(File::create(path).unwrap(), flate2::Compression::fast());
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

fn error(dir: &Path) -> String {
    read_10x_mtx(dir, None).unwrap_err().to_string()
}

#[test]
fn reads_a_tiny_directory_and_sums_duplicates() {
    let dir = tiny_dir(&format!("{HEADER}2 3 4\n1 1 4\n2 3 7\n1 2 1\n2 3 1\n"));
    let m = read_10x_mtx(dir.path(), None).unwrap();
    assert_eq!(dense(&m), vec![4.0, 0.0, 1.0, 0.0, 0.0, 8.0]);
    assert_eq!(m.gene_names, vec!["A", "B"]);
    assert_eq!(m.cell_names, vec!["AAA-1", "CCC-1", "GGG-1"]);
}

#[test]
fn syntax_error_names_file_and_line() {
    let dir = tiny_dir(&format!("{HEADER}2 3 2\n1 1 4\n2 x 7\n"));
    let err = error(dir.path());
    // pest reports `--> line:column`; the bad entry is on line 5.
    assert!(err.contains("matrix.mtx.gz") && err.contains("5:"), "{err}");
}

#[test]
fn negative_and_fractional_counts_name_their_line() {
    let dir = tiny_dir(&format!("{HEADER}2 3 2\n1 1 4\n2 3 -7\n"));
    let err = error(dir.path());
    assert!(
        err.contains("matrix.mtx.gz, line 5 (gene 2, cell 3)") && err.contains("-7 is not a count"),
        "{err}"
    );
    let real = "%%MatrixMarket matrix coordinate real general\n2 3 2\n1 1 4\n1 2 0.5\n";
    let err = error(tiny_dir(real).path());
    assert!(
        err.contains("line 4 (gene 1, cell 2)") && err.contains("0.5 is not a count"),
        "{err}"
    );
}

#[test]
fn index_out_of_range_is_an_error() {
    let err = error(tiny_dir(&format!("{HEADER}2 3 1\n3 1 4\n")).path());
    assert!(
        err.contains("matrix.mtx.gz") && err.contains("malformed MatrixMarket"),
        "{err}"
    );
}

#[test]
fn truncated_gzip_is_an_error_naming_the_file() {
    let dir = tiny_dir(&format!("{HEADER}2 3 1\n1 1 4\n"));
    let path = dir.path().join("matrix.mtx.gz");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 12]).unwrap();
    let err = error(dir.path());
    assert!(
        err.contains("matrix.mtx.gz") && err.contains("truncated or corrupt gzip"),
        "{err}"
    );
}

#[test]
fn mismatched_names_and_missing_files_are_named() {
    let dir = tiny_dir(&format!("{HEADER}3 3 1\n1 1 4\n"));
    let err = error(dir.path());
    assert!(
        err.contains("features.tsv.gz: 2 rows") && err.contains("3 genes"),
        "{err}"
    );
    let err = error(Path::new("/nonexistent/dir"));
    assert!(err.contains("/nonexistent/dir: not a directory"), "{err}");
    let dir = tiny_dir(&format!("{HEADER}2 3 1\n1 1 4\n"));
    std::fs::write(
        dir.path().join("labels.tsv"),
        "barcode\tlabel\nAAA-1\tT\nCCC-1\tB\n",
    )
    .unwrap();
    let err = error(dir.path());
    assert!(
        err.contains("labels.tsv: no label for barcode GGG-1"),
        "{err}"
    );
}

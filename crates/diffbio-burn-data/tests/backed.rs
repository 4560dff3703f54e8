//! Disk-backed `.h5ad` rows (feature `hdf5`): `H5adBatcher` gives the same minibatches as
//! `read_h5ad` + `CountsBatcher`, and `H5adCsrWriter`'s files read back with `read_h5ad`.
#![cfg(feature = "hdf5")]

mod common;

use std::sync::Arc;

use burn::backend::NdArray;
use burn::data::dataloader::batcher::Batcher;
use burn::prelude::*;
use common::bundled;
use diffbio_burn_data::counts::{
    CellDataset, CellItem, CountsBatch, CountsBatcher, H5adBatcher, H5adCsrWriter, H5adOptions,
    H5adRows, read_h5ad,
};

type B = NdArray<f32>;

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

fn items(cells: &[usize]) -> Vec<CellItem> {
    cells.iter().map(|&cell| CellItem { cell }).collect()
}

#[test]
fn backed_batches_equal_in_memory_batches() {
    let path = bundled("h5/pbmc68k_reduced_counts.h5ad");
    let options = H5adOptions {
        labels: Some("bulk_label".into()),
        ..Default::default()
    };
    let matrix = Arc::new(read_h5ad(&path, &options).unwrap());
    let rows = Arc::new(H5adRows::open(&path, Some("bulk_label")).unwrap());
    assert_eq!(
        (rows.n_cells(), rows.n_genes(), rows.nnz()),
        (matrix.n_cells(), matrix.n_genes(), matrix.nnz())
    );
    let memory = CountsBatcher::new(matrix.clone());
    let backed = H5adBatcher::new(rows.clone());
    let device = Default::default();
    let n = matrix.n_cells();
    let shuffled = CellDataset::split(n, 0.0, 7).0.cells().to_vec();
    let blocks = CellDataset::block_shuffled(n, 64, 7).cells().to_vec();
    let mut sorted_blocks = blocks.clone();
    sorted_blocks.sort_unstable();
    assert_eq!(sorted_blocks, (0..n).collect::<Vec<_>>());
    let (_, mem_table) = matrix.label_codes().unwrap();
    let categories = rows.categories().unwrap();
    for order in [(0..n).collect::<Vec<_>>(), shuffled, blocks] {
        for chunk in order.chunks(128) {
            let a: CountsBatch<B> = memory.batch(items(chunk), &device);
            let b: CountsBatch<B> = backed.batch(items(chunk), &device);
            assert_eq!(a.cells, b.cells);
            assert_eq!(values(a.counts), values(b.counts));
            assert_eq!(values(a.library), values(b.library));
            // In-memory codes number labels by first appearance, backed ones by category:
            // compare the label names.
            let names = |t: Tensor<B, 1, Int>, table: &[String]| -> Vec<String> {
                t.into_data()
                    .to_vec::<i64>()
                    .unwrap()
                    .iter()
                    .map(|&c| table[c as usize].clone())
                    .collect()
            };
            assert_eq!(
                names(a.labels.unwrap(), &mem_table),
                names(b.labels.unwrap(), categories)
            );
        }
    }
}

#[test]
fn written_h5ad_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.h5ad");
    let genes: Vec<String> = (0..5).map(|g| format!("g{g}")).collect();
    let types = vec!["A".to_string(), "B".to_string()];
    let mut writer = H5adCsrWriter::create(&path, &genes, Some(("cell_type", &types))).unwrap();
    // Two chunks: cells c0..c2, then c3 (empty) and c4.
    writer
        .append_rows(
            &["c0".into(), "c1".into(), "c2".into()],
            &[0, 2, 2, 5],
            &[0, 3, 1, 2, 4],
            &[1.0, 2.0, 3.0, 4.0, 5.0],
            Some(&[0, 1, 0]),
        )
        .unwrap();
    writer
        .append_rows(
            &["c3".into(), "c4".into()],
            &[0, 0, 1],
            &[4],
            &[7.0],
            Some(&[1, 1]),
        )
        .unwrap();
    assert_eq!((writer.n_cells(), writer.nnz()), (5, 6));
    writer.finish().unwrap();
    let options = H5adOptions {
        labels: Some("cell_type".into()),
        ..Default::default()
    };
    let m = read_h5ad(&path, &options).unwrap();
    assert_eq!((m.n_cells(), m.n_genes(), m.nnz()), (5, 5, 6));
    assert_eq!(m.cell_names, ["c0", "c1", "c2", "c3", "c4"]);
    assert_eq!(m.gene_names, genes);
    assert_eq!(m.labels.as_deref().unwrap(), ["A", "B", "A", "B", "B"]);
    let mut row = vec![0.0; 5];
    m.dense_row_into(2, &mut row);
    assert_eq!(row, [0.0, 3.0, 4.0, 0.0, 5.0]);
    let rows = H5adRows::open(&path, Some("cell_type")).unwrap();
    let mut out = vec![0.0; 3 * 5];
    rows.dense_rows_into(&[4, 2, 3], &mut out).unwrap();
    assert_eq!(
        out,
        [
            0.0, 0.0, 0.0, 0.0, 7.0, //
            0.0, 3.0, 4.0, 0.0, 5.0, //
            0.0, 0.0, 0.0, 0.0, 0.0
        ]
    );
    assert_eq!(rows.label_codes().unwrap(), [0, 1, 0, 1, 1]);
}

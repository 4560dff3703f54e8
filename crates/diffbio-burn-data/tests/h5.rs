//! HDF5 readers (feature `hdf5`): real 10x `.h5` and AnnData `.h5ad` files checked against the
//! MatrixMarket directories holding the same counts, and small broken files.
#![cfg(feature = "hdf5")]

mod common;

use common::bundled;

use std::path::Path;

use diffbio_burn_data::counts::{CountMatrix, H5adOptions, read_10x_h5, read_10x_mtx, read_h5ad};
use hdf5::types::VarLenUnicode;

fn dense(m: &CountMatrix) -> Vec<f32> {
    let mut out = vec![0.0; m.n_cells() * m.n_genes()];
    for (c, row) in out.chunks_exact_mut(m.n_genes()).enumerate() {
        m.dense_row_into(c, row);
    }
    out
}

fn assert_same(a: &CountMatrix, b: &CountMatrix) {
    assert_eq!(
        (a.n_cells(), a.n_genes(), a.nnz()),
        (b.n_cells(), b.n_genes(), b.nnz())
    );
    assert_eq!(a.cell_names, b.cell_names);
    assert_eq!(a.gene_names, b.gene_names);
    assert_eq!(dense(a), dense(b));
}

#[test]
fn cell_ranger_3_h5_equals_its_mtx_directory() {
    let h5 = read_10x_h5(&bundled("h5/pbmc_10x_v3_small.h5")).unwrap();
    let mtx = read_10x_mtx(&bundled("pbmc_10x_v3_small"), None).unwrap();
    assert_same(&h5, &mtx);
}

#[test]
fn cell_ranger_2_h5_reads_its_one_genome() {
    let m = read_10x_h5(&bundled("h5/pbmc_10x_v2_small.h5")).unwrap();
    assert_eq!(m.n_genes(), m.gene_names.len());
    assert_eq!(m.n_cells(), m.cell_names.len());
    assert!(
        m.nnz() > 0 && m.cell_names.iter().all(|b| b.ends_with("-1")),
        "{:?}",
        &m.cell_names[..3]
    );
}

#[test]
fn h5ad_counts_and_labels_equal_the_mtx_directory() {
    let options = H5adOptions {
        labels: Some("bulk_label".into()),
        ..Default::default()
    };
    let h5ad = read_h5ad(&bundled("h5/pbmc68k_reduced_counts.h5ad"), &options).unwrap();
    let mtx = read_10x_mtx(&bundled("pbmc68k_reduced_labeled"), None).unwrap();
    assert_same(&h5ad, &mtx);
    assert_eq!(h5ad.labels, mtx.labels);
    let layer = H5adOptions {
        layer: Some("counts".into()),
        ..Default::default()
    };
    assert_same(
        &read_h5ad(&bundled("h5/pbmc68k_reduced_counts.h5ad"), &layer).unwrap(),
        &mtx,
    );
}

#[test]
fn legacy_h5ad_is_refused_with_the_reason() {
    let err = read_h5ad(
        &bundled("h5/pbmc68k_reduced_legacy.h5ad"),
        &H5adOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("pbmc68k_reduced_legacy.h5ad") && err.contains("legacy AnnData encoding"),
        "{err}"
    );
}

#[test]
fn not_hdf5_and_missing_columns_are_named() {
    let err = read_10x_h5(&bundled("pbmc_10x_v3_small/barcodes.tsv.gz"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("barcodes.tsv.gz: cannot open as HDF5"),
        "{err}"
    );
    let options = H5adOptions {
        labels: Some("cell_type".into()),
        ..Default::default()
    };
    let err = read_h5ad(&bundled("h5/pbmc68k_reduced_counts.h5ad"), &options)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no column `cell_type` in /obs") && err.contains("bulk_label"),
        "{err}"
    );
    let options = H5adOptions {
        layer: Some("spliced".into()),
        ..Default::default()
    };
    let err = read_h5ad(&bundled("h5/pbmc68k_reduced_counts.h5ad"), &options)
        .unwrap_err()
        .to_string();
    assert!(err.contains("layers/spliced"), "{err}");
}

// ----- small AnnData files written here, in each encoding, and broken ones -----

/// Cells × genes: 3 × 4.
const DENSE: [[f32; 4]; 3] = [
    [0.0, 2.0, 0.0, 1.0],
    [5.0, 0.0, 0.0, 0.0],
    [0.0, 0.0, 3.0, 4.0],
];

fn names(prefix: &str, n: usize) -> Vec<VarLenUnicode> {
    (0..n)
        .map(|i| format!("{prefix}{i}").parse().unwrap())
        .collect()
}

fn write_frame(file: &hdf5::File, name: &str, index: &[VarLenUnicode]) {
    let g = file.create_group(name).unwrap();
    g.new_attr::<VarLenUnicode>()
        .create("_index")
        .unwrap()
        .write_scalar(&"_index".parse::<VarLenUnicode>().unwrap())
        .unwrap();
    g.new_dataset_builder()
        .with_data(index)
        .create("_index")
        .unwrap();
}

/// Writes X as `encoding` ("csr_matrix", "csc_matrix" or "dense") with optional edits.
fn write_h5ad(
    path: &Path,
    encoding: &str,
    edit: impl Fn(&mut Vec<i64>, &mut Vec<i64>, &mut Vec<f32>),
) {
    let file = hdf5::File::create(path).unwrap();
    write_frame(&file, "obs", &names("cell", 3));
    write_frame(&file, "var", &names("gene", 4));
    if encoding == "dense" {
        let flat: Vec<f32> = DENSE.iter().flatten().copied().collect();
        file.new_dataset::<f32>()
            .shape([3, 4])
            .create("X")
            .unwrap()
            .write_raw(&flat)
            .unwrap();
        return;
    }
    let by_cell = encoding == "csr_matrix";
    let (outer, inner) = if by_cell { (3, 4) } else { (4, 3) };
    let value = |o: usize, i: usize| if by_cell { DENSE[o][i] } else { DENSE[i][o] };
    let (mut indptr, mut indices, mut data) = (vec![0i64], Vec::new(), Vec::new());
    for o in 0..outer {
        for i in 0..inner {
            let v = value(o, i);
            if v != 0.0 {
                indices.push(i as i64);
                data.push(v);
            }
        }
        indptr.push(indices.len() as i64);
    }
    edit(&mut indptr, &mut indices, &mut data);
    let x = file.create_group("X").unwrap();
    x.new_attr::<VarLenUnicode>()
        .create("encoding-type")
        .unwrap()
        .write_scalar(&encoding.parse::<VarLenUnicode>().unwrap())
        .unwrap();
    x.new_attr::<i64>()
        .shape(2)
        .create("shape")
        .unwrap()
        .write(&[3i64, 4])
        .unwrap();
    x.new_dataset_builder()
        .with_data(&data)
        .create("data")
        .unwrap();
    x.new_dataset_builder()
        .with_data(&indices)
        .create("indices")
        .unwrap();
    x.new_dataset_builder()
        .with_data(&indptr)
        .create("indptr")
        .unwrap();
}

fn read_written(
    encoding: &str,
    edit: impl Fn(&mut Vec<i64>, &mut Vec<i64>, &mut Vec<f32>),
) -> Result<CountMatrix, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.h5ad");
    write_h5ad(&path, encoding, edit);
    read_h5ad(&path, &H5adOptions::default()).map_err(|e| e.to_string())
}

#[test]
fn csr_csc_and_dense_x_read_the_same() {
    let expected: Vec<f32> = DENSE.iter().flatten().copied().collect();
    for encoding in ["csr_matrix", "csc_matrix", "dense"] {
        let m = read_written(encoding, |_, _, _| {}).unwrap();
        assert_eq!(dense(&m), expected, "{encoding}");
        assert_eq!(m.cell_names, ["cell0", "cell1", "cell2"]);
        assert_eq!(m.gene_names.len(), 4);
    }
}

#[test]
fn unsorted_indices_within_a_row_are_accepted() {
    let m = read_written("csr_matrix", |_, indices, data| {
        // Row 0 holds genes 1 and 3: store them as 3, 1.
        indices.swap(0, 1);
        data.swap(0, 1);
    })
    .unwrap();
    assert_eq!(
        dense(&m),
        DENSE.iter().flatten().copied().collect::<Vec<_>>()
    );
}

#[test]
fn broken_sparse_structures_are_named() {
    let err = read_written("csr_matrix", |_, indices, _| indices[2] = 4).unwrap_err();
    assert!(
        err.contains("tiny.h5ad")
            && err.contains("index 4 out of range (0..4)")
            && err.contains("X/indices, entry 2"),
        "{err}"
    );
    let err = read_written("csr_matrix", |_, indices, _| indices[2] = -1).unwrap_err();
    assert!(err.contains("index -1 out of range"), "{err}");
    let err = read_written("csr_matrix", |indptr, _, _| indptr[1] = 9).unwrap_err();
    assert!(
        err.contains("X/indptr") && err.contains("offsets must rise"),
        "{err}"
    );
    let err = read_written("csr_matrix", |_, _, data| data[1] = -2.0).unwrap_err();
    assert!(
        err.contains("-2 is not a count") && err.contains("cell 1 (cell0), gene 4 (gene3)"),
        "{err}"
    );
    let err = read_written("csr_matrix", |_, _, data| data[0] = 0.25).unwrap_err();
    assert!(err.contains("0.25 is not a count"), "{err}");
}

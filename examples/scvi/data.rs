//! Counts in: any 10x directory, 10x `.h5` or AnnData `.h5ad` (the last two with the `hdf5`
//! feature), quality control, a seeded train/held-out split and burn's data loaders.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, bail, ensure};
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::prelude::*;
use diffbio_burn_data::counts::{
    CellDataset, CountMatrix, CountsBatch, CountsBatcher, read_10x_mtx,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::training::ScviTrainingConfig;

/// Reads counts: a directory as 10x MatrixMarket, `*.h5` as Cell Ranger HDF5, `*.h5ad` as
/// AnnData (`layer` and `labels`, an `obs` column, apply to AnnData; for a directory `labels`
/// is a `barcode<TAB>label` file).
pub fn load(path: &Path, labels: Option<&str>, layer: Option<&str>) -> Result<CountMatrix> {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if path.is_dir() {
        return Ok(read_10x_mtx(path, labels.map(Path::new))?);
    }
    match extension {
        #[cfg(feature = "hdf5")]
        "h5" => Ok(diffbio_burn_data::counts::read_10x_h5(path)?),
        #[cfg(feature = "hdf5")]
        "h5ad" => {
            let options = diffbio_burn_data::counts::H5adOptions {
                layer: layer.map(str::to_string),
                labels: labels.map(str::to_string),
            };
            Ok(diffbio_burn_data::counts::read_h5ad(path, &options)?)
        }
        #[cfg(not(feature = "hdf5"))]
        "h5" | "h5ad" => {
            let _ = layer;
            bail!(
                "{}: HDF5 files need the `hdf5` cargo feature (and libhdf5-dev)",
                path.display()
            )
        }
        _ => bail!(
            "{}: expected a 10x directory, a .h5 or a .h5ad file",
            path.display()
        ),
    }
}

/// Training and held-out cells after quality control.
pub struct Split {
    /// Training cells.
    pub train: Arc<CountMatrix>,
    /// Held-out cells.
    pub heldout: Arc<CountMatrix>,
    /// Cells dropped: no counts at all, or none in the kept genes.
    pub dropped_cells: usize,
    /// Genes dropped: no counts in the training cells.
    pub dropped_genes: usize,
}

/// Drops cells without counts, takes at most `max_cells` (seeded), holds out a fraction, and
/// keeps the genes with counts in the training cells.
pub fn split(data: &CountMatrix, config: &ScviTrainingConfig) -> Result<Split> {
    let library = data.library_sizes();
    let mut cells: Vec<usize> = (0..data.n_cells()).filter(|&c| library[c] > 0.0).collect();
    let mut dropped_cells = data.n_cells() - cells.len();
    cells.shuffle(&mut StdRng::seed_from_u64(config.seed));
    if let Some(max) = config.max_cells {
        cells.truncate(max);
    }
    ensure!(
        (0.0..1.0).contains(&config.heldout_fraction),
        "--heldout-fraction must be in [0, 1)"
    );
    let n_heldout = ((cells.len() as f64 * config.heldout_fraction).round() as usize).max(1);
    ensure!(
        cells.len() >= n_heldout + 2,
        "only {} cells with counts; need at least {}",
        cells.len(),
        n_heldout + 2
    );
    let (heldout_cells, train_cells) = cells.split_at(n_heldout);
    let all_genes: Vec<usize> = (0..data.n_genes()).collect();
    let train_totals = data.subset(train_cells, &all_genes).gene_totals();
    let genes: Vec<usize> = (0..data.n_genes())
        .filter(|&g| train_totals[g] > 0.0)
        .collect();
    let train = data.subset(train_cells, &genes);
    let heldout = data.subset(heldout_cells, &genes);
    // A held-out cell whose counts were all in dropped genes has library size 0.
    let heldout_library = heldout.library_sizes();
    let keep: Vec<usize> = (0..heldout.n_cells())
        .filter(|&c| heldout_library[c] > 0.0)
        .collect();
    dropped_cells += heldout.n_cells() - keep.len();
    let kept_genes: Vec<usize> = (0..genes.len()).collect();
    if genes.is_empty() {
        bail!("no gene has counts in the training cells");
    }
    Ok(Split {
        heldout: Arc::new(heldout.subset(&keep, &kept_genes)),
        train: Arc::new(train),
        dropped_cells,
        dropped_genes: data.n_genes() - genes.len(),
    })
}

/// A shuffled (seeded) loader of training minibatches of `batch_size` cells on backend `B`.
pub fn train_loader<B: Backend>(
    matrix: &Arc<CountMatrix>,
    batch_size: usize,
    config: &ScviTrainingConfig,
) -> Arc<dyn DataLoader<B, CountsBatch<B>>> {
    DataLoaderBuilder::new(CountsBatcher::new(matrix.clone()))
        .batch_size(batch_size)
        .shuffle(config.seed)
        .num_workers(config.num_workers)
        .build(CellDataset::all(matrix.n_cells()))
}

/// An unshuffled loader of all cells of `matrix`, for evaluation.
pub fn eval_loader<B: Backend>(
    matrix: &Arc<CountMatrix>,
    config: &ScviTrainingConfig,
) -> Arc<dyn DataLoader<B, CountsBatch<B>>> {
    DataLoaderBuilder::new(CountsBatcher::new(matrix.clone()))
        .batch_size(config.batch_size)
        .num_workers(config.num_workers)
        .build(CellDataset::all(matrix.n_cells()))
}

/// Writes `split` as JSON: the data path, the training and held-out cell names (in training
/// order) and the kept gene names.
pub fn export_split(path: &Path, data: &Path, split: &Split) -> Result<()> {
    let json = serde_json::json!({
        "data": data,
        "train_cells": split.train.cell_names,
        "heldout_cells": split.heldout.cell_names,
        "genes": split.train.gene_names,
    });
    std::fs::write(path, serde_json::to_string(&json)?)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

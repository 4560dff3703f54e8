//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// A file or directory of the bundled real data (`data/` at the repository root), which these
/// tests read; a missing one fails the test with its path.
pub fn bundled(relative: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    assert!(
        root.is_dir(),
        "the bundled data folder {} is missing; these tests read real files from it",
        root.display()
    );
    let path = root.join(relative);
    assert!(path.exists(), "missing bundled data {}", path.display());
    path
}

//! The one error type of every reader: which file, where in it, and what is wrong.

use std::fmt;
use std::path::{Path, PathBuf};

/// A reader's error: the file, the place in it (line, record, dataset) when known, and the
/// problem. Readers never panic on bad input and never drop records silently; they return
/// this.
#[derive(Debug)]
pub struct DataError {
    /// The file (or directory) being read.
    pub path: PathBuf,
    /// Where in the file: `line 12`, `record 3 (chrII:100-600)`, `dataset X/indptr`.
    pub location: Option<String>,
    /// What is wrong, in words.
    pub problem: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl DataError {
    /// An error about `path`.
    pub fn new(path: impl AsRef<Path>, problem: impl Into<String>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
            location: None,
            problem: problem.into(),
            source: None,
        }
    }

    /// Says where in the file the problem is.
    pub fn at(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// Keeps the underlying error (I/O, decompression, HDF5) as the source.
    pub fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(location) = &self.location {
            write!(f, ", {location}")?;
        }
        write!(f, ": {}", self.problem)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `Result` with a [`DataError`].
pub type Result<T, E = DataError> = std::result::Result<T, E>;

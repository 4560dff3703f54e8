//! Genomic intervals from BED (3–6+ columns) and narrowPeak files, read with `noodles-bed`,
//! each kept with its line number so that every later error can name it.

use std::path::{Path, PathBuf};

use crate::sequences::open;
use crate::{DataError, Result};

/// The strand column of a BED row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strand {
    /// `+`
    Forward,
    /// `-`
    Reverse,
}

/// One row of a BED-like file: 0-based, half-open coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    /// Sequence (chromosome) name, column 1.
    pub chrom: String,
    /// Start, 0-based, column 2.
    pub start: usize,
    /// End, exclusive, column 3; `start <= end`.
    pub end: usize,
    /// Column 4 unless absent or `.`.
    pub name: Option<String>,
    /// Column 6 unless absent or `.`.
    pub strand: Option<Strand>,
    /// narrowPeak only: the summit, `start +` column 10, unless that is `-1`.
    pub summit: Option<usize>,
    /// 1-based line number in the file.
    pub line: usize,
}

/// The rows of a BED-like file and the file's path (for errors).
#[derive(Debug, Clone)]
pub struct Intervals {
    /// The file the rows come from.
    pub path: PathBuf,
    /// The rows, in file order. Filter them freely (e.g. drop a blacklisted region): each
    /// keeps its line number.
    pub intervals: Vec<Interval>,
}

impl Intervals {
    /// Reads a BED file (BED3 or more columns, tab-separated; plain or gzip). Blank lines and
    /// lines starting with `#`, `track` or `browser` are skipped.
    ///
    /// # Errors
    /// The file cannot be read, or a row (naming its line) has fewer than 3 columns, a
    /// coordinate that is not a non-negative integer, `start > end`, or a strand other than
    /// `+`, `-`, `.`.
    pub fn read_bed(path: impl AsRef<Path>) -> Result<Self> {
        Self::read(path.as_ref(), false)
    }

    /// Reads a narrowPeak file (BED6+4, as MACS writes it): as [`Intervals::read_bed`], and
    /// column 10, the summit offset from the start (`-1`: none), becomes
    /// [`Interval::summit`].
    ///
    /// # Errors
    /// As [`Intervals::read_bed`], and a row with fewer than 10 columns or a summit that is
    /// not `-1` or inside the peak.
    pub fn read_narrow_peak(path: impl AsRef<Path>) -> Result<Self> {
        Self::read(path.as_ref(), true)
    }

    /// An error about `interval`, located at its line.
    pub fn error(&self, interval: &Interval, problem: impl Into<String>) -> DataError {
        DataError::new(&self.path, problem).at(format!(
            "line {} ({}:{}-{})",
            interval.line, interval.chrom, interval.start, interval.end
        ))
    }

    fn read(path: &Path, narrow_peak: bool) -> Result<Self> {
        let mut intervals = Vec::new();
        for_each_bed_line(path, |line, record| {
            intervals.push(parse_interval(path, line, record, narrow_peak)?);
            Ok(())
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            intervals,
        })
    }
}

/// Whether a BED line carries no record: blank, `#` comment, `track` or `browser` header.
fn is_bed_header(line: &[u8]) -> bool {
    let line = line.trim_ascii();
    let keyword =
        |k: &[u8]| line.starts_with(k) && line.get(k.len()).is_none_or(|b| b.is_ascii_whitespace());
    line.is_empty() || line.starts_with(b"#") || keyword(b"track") || keyword(b"browser")
}

/// Calls `each` with the 1-based line number and the parsed `noodles-bed` record of every
/// data line of a BED-like file (plain or gzip).
///
/// # Errors
/// The file cannot be read or decompressed, a line has fewer than three tab-separated
/// columns, and whatever `each` returns.
pub(crate) fn for_each_bed_line(
    path: &Path,
    mut each: impl FnMut(usize, &noodles_bed::Record<3>) -> Result<()>,
) -> Result<()> {
    let mut reader = open(path)?;
    let mut buf = Vec::new();
    let mut record = noodles_bed::Record::<3>::default();
    let mut line = 0;
    loop {
        line += 1;
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(|e| {
            DataError::new(path, "cannot read")
                .at(format!("line {line}"))
                .caused_by(e)
        })?;
        if n == 0 {
            return Ok(());
        }
        if is_bed_header(&buf) {
            continue;
        }
        if !buf.ends_with(b"\n") {
            buf.push(b'\n');
        }
        noodles_bed::io::Reader::<3, _>::new(&buf[..])
            .read_record(&mut record)
            .map_err(|e| {
                DataError::new(path, "expected at least 3 tab-separated columns")
                    .at(format!("line {line}"))
                    .caused_by(e)
            })?;
        each(line, &record)?;
    }
}

/// The start and end of a record (0-based, half-open), checked: `start <= end`.
pub(crate) fn bed_coordinates(
    path: &Path,
    line: usize,
    record: &noodles_bed::Record<3>,
) -> Result<(usize, usize)> {
    let at = || format!("line {line}");
    let start = record
        .feature_start()
        .map_err(|e| {
            DataError::new(path, "column 2 (start) is not a non-negative integer")
                .at(at())
                .caused_by(e)
        })?
        .get()
        - 1;
    let end = match record.feature_end() {
        None => 0,
        Some(end) => end
            .map_err(|e| {
                DataError::new(path, "column 3 (end) is not a non-negative integer")
                    .at(at())
                    .caused_by(e)
            })?
            .get(),
    };
    if start > end {
        return Err(DataError::new(path, format!("start {start} is after end {end}")).at(at()));
    }
    Ok((start, end))
}

/// The chromosome name of a record, as UTF-8.
pub(crate) fn bed_chrom(
    path: &Path,
    line: usize,
    record: &noodles_bed::Record<3>,
) -> Result<String> {
    std::str::from_utf8(record.reference_sequence_name())
        .map(str::to_owned)
        .map_err(|e| {
            DataError::new(path, "column 1 (chromosome) is not UTF-8")
                .at(format!("line {line}"))
                .caused_by(e)
        })
}

fn parse_interval(
    path: &Path,
    line: usize,
    record: &noodles_bed::Record<3>,
    narrow_peak: bool,
) -> Result<Interval> {
    let at = || format!("line {line}");
    let chrom = bed_chrom(path, line, record)?;
    let (start, end) = bed_coordinates(path, line, record)?;
    let other = record.other_fields();
    // Columns 4, 5, ... of the row.
    let columns: Vec<&[u8]> = other.iter().map(|f| f.as_ref()).collect();
    let bed_column = |column: usize| columns.get(column - 4).copied();
    let text = |column| {
        bed_column(column)
            .filter(|f| *f != b".")
            .map(|f| String::from_utf8_lossy(f).into_owned())
    };
    let strand = match bed_column(6) {
        None | Some(b".") => None,
        Some(b"+") => Some(Strand::Forward),
        Some(b"-") => Some(Strand::Reverse),
        Some(other) => {
            return Err(DataError::new(
                path,
                format!(
                    "column 6 (strand) is {:?}, expected +, - or .",
                    String::from_utf8_lossy(other)
                ),
            )
            .at(at()));
        }
    };
    let summit = if narrow_peak {
        let field = bed_column(10)
            .ok_or_else(|| DataError::new(path, "a narrowPeak row needs 10 columns").at(at()))?;
        let offset: i64 = std::str::from_utf8(field)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                DataError::new(
                    path,
                    format!(
                        "column 10 (summit) is {:?}, not an integer",
                        String::from_utf8_lossy(field)
                    ),
                )
                .at(at())
            })?;
        match offset {
            -1 => None,
            o if o >= 0 && (o as usize) < end - start => Some(start + o as usize),
            o => {
                return Err(DataError::new(
                    path,
                    format!(
                        "column 10 (summit offset {o}) is outside the {} bp peak",
                        end - start
                    ),
                )
                .at(at()));
            }
        }
    } else {
        None
    };
    Ok(Interval {
        chrom,
        start,
        end,
        name: text(4),
        strand,
        summit,
        line,
    })
}

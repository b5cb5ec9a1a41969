//! Output files: checked before any work starts, then written atomically.
//!
//! A long simulation that fails at the end because its output folder is missing wastes the run,
//! and a half-written report is worse than none. So every output is checked up front with
//! [`OutputFile::check`] (its folder exists and is writable, and the path is a regular file or
//! absent), and written with [`OutputFile::write`]: a temporary file beside it, then a rename, so
//! a reader sees the old file or the new one, never part of one.
//!
//! Anything at the path that is not a regular file is refused, by design: renaming over a
//! symbolic link would replace the link (not its target), over `/dev/stdout` would replace the
//! device node, and a FIFO would block. Write to a regular file and `cat` it instead.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let out = vortex::output::OutputFile::check("--json", &dir.path().join("report.json")).unwrap();
//! out.write(b"{}\n").unwrap();
//! assert_eq!(std::fs::read(out.path()).unwrap(), b"{}\n");
//! let err = vortex::output::OutputFile::check("--json", dir.path()).unwrap_err().to_string();
//! assert!(err.ends_with("is a directory; give a file path"), "{err}");
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why an output path is refused or could not be written; names the flag and the path.
#[derive(Debug, thiserror::Error)]
#[error("{flag} {path}: {reason}")]
pub struct OutputError {
    flag: String,
    path: String,
    reason: String,
}

/// An output path that passed its checks; [`write`](OutputFile::write) replaces it atomically.
#[derive(Debug, Clone)]
pub struct OutputFile {
    flag: String,
    path: PathBuf,
}

impl OutputFile {
    /// Checks that `path` (given with `flag`, named in errors) can be written: its folder exists
    /// and accepts a new file, and the path is absent or a regular file. Creates nothing.
    pub fn check(flag: &str, path: &Path) -> Result<OutputFile, OutputError> {
        let out = OutputFile { flag: flag.to_string(), path: path.to_path_buf() };
        out.check_kind()?;
        let dir = out.dir();
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(out.error(format!("{} is not a folder", dir.display()))),
            Err(e) => return Err(out.error(format!("cannot use the folder {}: {e}", dir.display()))),
        }
        // The only sure test of writability is to write: create the temporary file and remove it.
        let tmp = out.temp_path()?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| out.error(format!("cannot create a file in {}: {e}", dir.display())))?;
        let _ = std::fs::remove_file(&tmp);
        Ok(out)
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to a temporary file in the same folder, then renames it over the path.
    /// The path is checked again first: it may have changed since [`check`](OutputFile::check).
    pub fn write(&self, contents: &[u8]) -> Result<(), OutputError> {
        self.write_with(|file| file.write_all(contents))
    }

    /// [`write`](OutputFile::write) for contents too large to hold in memory: `fill` streams them
    /// into the temporary file (buffered), which is renamed over the path only if it succeeds.
    pub fn write_with(&self, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<(), OutputError> {
        self.check_kind()?;
        let tmp = self.temp_path()?;
        let written = (|| {
            // create_new: never follow or reuse something planted at the temporary name.
            let file = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            let mut buffered = std::io::BufWriter::new(file);
            fill(&mut buffered)?;
            let file = buffered.into_inner().map_err(std::io::IntoInnerError::into_error)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        written.map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            self.error(format!("cannot write: {e}"))
        })
    }

    fn check_kind(&self) -> Result<(), OutputError> {
        let meta = match std::fs::symlink_metadata(&self.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.error(format!("cannot inspect: {e}"))),
        };
        let kind = meta.file_type();
        if kind.is_file() {
            Ok(())
        } else if kind.is_symlink() {
            Err(self.error(
                "is a symbolic link; outputs are replaced by renaming a new file over them, which \
                 would replace the link itself: give the link's target",
            ))
        } else if kind.is_dir() {
            Err(self.error("is a directory; give a file path"))
        } else {
            Err(self.error(
                "is not a regular file (a device, FIFO or socket); outputs are written to regular \
                 files only: write to a file and read it from there",
            ))
        }
    }

    fn dir(&self) -> &Path {
        self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
    }

    fn temp_path(&self) -> Result<PathBuf, OutputError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = self.path.file_name().ok_or_else(|| self.error("is not a file path"))?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Ok(self.dir().join(format!(".{}.tmp-{}-{n}", name.to_string_lossy(), std::process::id())))
    }

    fn error(&self, reason: impl Into<String>) -> OutputError {
        OutputError { flag: self.flag.clone(), path: self.path.display().to_string(), reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_regular_file_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.json");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = OutputFile::check("--json", &link).unwrap_err().to_string();
        assert!(err.contains("is a symbolic link"), "{err}");
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        let err = OutputFile::check("--plot", Path::new("/dev/null")).unwrap_err().to_string();
        assert_eq!(
            err,
            "--plot /dev/null: is not a regular file (a device, FIFO or socket); outputs are written to \
             regular files only: write to a file and read it from there"
        );
        let err = OutputFile::check("--json", &dir.path().join("missing/out.json")).unwrap_err().to_string();
        assert!(err.contains("cannot use the folder"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "nothing was created");
    }

    #[test]
    fn replaces_a_regular_file_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        std::fs::write(&path, "old").unwrap();
        let out = OutputFile::check("--json", &path).unwrap();
        out.write(b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
    }
}

//! Input files: regular files only, checked before they are opened and again once open.
//!
//! Opening a FIFO blocks until a writer appears and a device such as `/dev/zero` never ends, so
//! the kind is checked first; the open itself is non-blocking and the opened file is checked
//! again, so a path swapped for a FIFO in between cannot hang either. Every reader of the
//! project (YAML configs and scenarios here, weights and JSON files in real mode) goes through
//! [`open_regular`] and words the refusal for its own users.

use std::fs::File;
use std::path::Path;

/// Why a path was not opened.
#[derive(Debug)]
pub enum Refused {
    /// It is a directory.
    Directory,
    /// It is a FIFO, device or socket.
    NotRegular,
    /// It could not be inspected or opened.
    Io(std::io::Error),
}

/// Opens `path` for reading once it is known to be a regular file; returns it with its length.
pub fn open_regular(path: &Path) -> Result<(File, u64), Refused> {
    let kind = |meta: std::fs::Metadata| {
        if meta.is_dir() {
            Err(Refused::Directory)
        } else if !meta.is_file() {
            Err(Refused::NotRegular)
        } else {
            Ok(meta.len())
        }
    };
    kind(std::fs::metadata(path).map_err(Refused::Io)?)?;
    let file = open_nonblocking(path).map_err(Refused::Io)?;
    let len = kind(file.metadata().map_err(Refused::Io)?)?;
    Ok((file, len))
}

fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        /// `O_NONBLOCK` on Linux (x86, ARM): reads of a regular file ignore it; it only keeps the
        /// open of a FIFO from waiting for a writer.
        const O_NONBLOCK: i32 = 0o4000;
        options.custom_flags(O_NONBLOCK);
    }
    options.open(path)
}

//! Files keel writes: replaced whole or not at all, on disk before they replace anything, and
//! scratch files that vanish with the process.

use crate::{Error, Result};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` so that a crash at any moment leaves either the old file or the new
/// one, never a mix, and no temporary file behind.
///
/// The data goes to a file without a name in the same folder (Linux's `O_TMPFILE`), is synced
/// to disk, gets the name `.NAME.tmp` and is renamed over `path`; then the folder is synced. A
/// kill can only leave `.NAME.tmp` behind in the instant between those two renames, and the next
/// write removes it. Where unnamed files are not supported, `.NAME.tmp` is written directly.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let Some(name) = path.file_name() else {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        )));
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    remove_if_present(&tmp).map_err(io)?;
    let written = write_unnamed(&dir, bytes, &tmp);
    if written.is_err() {
        // No unnamed files here (or no /proc to name one through): write the name directly.
        let mut file = File::create(&tmp).map_err(io)?;
        file.write_all(bytes)
            .and_then(|_| file.sync_all())
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                io(e)
            })?;
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })?;
    sync_dir(&dir).map_err(io)
}

/// A read-write scratch file in `dir` that has no name, so that it disappears when it is
/// dropped or the process ends, however it ends (spilled features, for instance).
pub fn scratch_file(dir: impl AsRef<Path>) -> Result<File> {
    let dir = dir.as_ref();
    unnamed_in(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A new read-write file in `dir` without a name: Linux's `O_TMPFILE`, else a file unlinked
/// (Unix) or deleted on close (Windows) as soon as it is open.
fn unnamed_in(dir: &Path) -> std::io::Result<File> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let tmpfile = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o644)
            .custom_flags(libc::O_TMPFILE)
            .open(dir);
        if tmpfile.is_ok() {
            return tmpfile;
        }
    }
    named_then_unlinked(dir)
}

#[cfg(unix)]
fn named_then_unlinked(dir: &Path) -> std::io::Result<File> {
    let path = dir.join(format!(
        ".keel-scratch-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

#[cfg(windows)]
fn named_then_unlinked(dir: &Path) -> std::io::Result<File> {
    use std::os::windows::fs::OpenOptionsExt;
    const FILE_FLAG_DELETE_ON_CLOSE: u32 = 0x0400_0000;
    let path = dir.join(format!(".keel-scratch-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(FILE_FLAG_DELETE_ON_CLOSE)
        .open(path)
}

/// Writes `bytes` to an `O_TMPFILE` file in `dir`, syncs it and names it `name` (through
/// `/proc/self/fd`).
#[cfg(target_os = "linux")]
fn write_unnamed(dir: &Path, bytes: &[u8], name: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .mode(0o644)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    let source = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let target = CString::new(name.as_os_str().as_bytes())?;
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            source.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn write_unnamed(_dir: &Path, _bytes: &[u8], _name: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

//! The agent's state directory (held overlay, settings of the last fetch, the apply journal):
//! a directory of mode 0700 holding files of mode 0600, none of them reached through a
//! symlink.
//!
//! Invariants:
//! - the directory itself is opened with `O_NOFOLLOW` (its parent may be a symlink an admin
//!   chose, the directory may not); a missing one is created 0700, an existing one is made 0700,
//!   and a shared one (sticky or world-writable, like `/tmp`) is refused: the state file needs
//!   its own directory;
//! - every file is written as a new temp file (`O_CREAT | O_EXCL | O_NOFOLLOW`, 0600) in the
//!   directory's handle, fsynced, renamed over its name within the handle, and the directory
//!   fsynced: a crash leaves the old file or the new one, and nobody but root ever reads it.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use crate::apply::sys;

/// Mode of the state directory.
pub const STATE_DIR_MODE: u32 = 0o700;

/// Mode of every file in it.
pub const STATE_FILE_MODE: u32 = 0o600;

/// An open state directory.
pub struct StateDir {
    fd: OwnedFd,
    path: PathBuf,
}

fn invalid(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("state directory {}: {why}", path.display()),
    )
}

/// The parent directory's handle and the last component of `path`.
fn parent_and_name(path: &Path) -> io::Result<(OwnedFd, std::ffi::CString)> {
    let Some(Component::Normal(name)) = path.components().next_back() else {
        return Err(invalid(path, "does not end in a directory name"));
    };
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let parent_fd = sys::open_dir_path(parent)?;
    let name = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(name))
        .map_err(|_| invalid(path, "contains NUL"))?;
    Ok((parent_fd, name))
}

impl StateDir {
    /// Opens `path`, creating it (and its parents) if missing; see the module doc.
    pub fn open(path: &Path) -> io::Result<StateDir> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let (parent_fd, name) = parent_and_name(path)?;
        match sys::mkdirat(parent_fd.as_fd(), &name, STATE_DIR_MODE) {
            Err(error) if error.raw_os_error() != Some(libc::EEXIST) => return Err(error),
            _ => {}
        }
        Self::from_parent(path, parent_fd, &name)
    }

    /// Opens `path` if it exists (`None` otherwise), creating nothing.
    pub fn open_existing(path: &Path) -> io::Result<Option<StateDir>> {
        let (parent_fd, name) = match parent_and_name(path) {
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            other => other?,
        };
        match Self::from_parent(path, parent_fd, &name) {
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            other => other.map(Some),
        }
    }

    fn from_parent(path: &Path, parent: OwnedFd, name: &std::ffi::CStr) -> io::Result<StateDir> {
        let fd = sys::openat(parent.as_fd(), name, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(
            |error| {
                // O_NOFOLLOW | O_DIRECTORY on a symlink: ELOOP or ENOTDIR, by kernel version.
                let is_link = matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR))
                    && sys::lstatat(parent.as_fd(), name)
                        .is_ok_and(|stat| sys::kind(&stat) == libc::S_IFLNK);
                if is_link {
                    invalid(path, "is a symlink; refusing to follow it")
                } else {
                    error
                }
            },
        )?;
        let stat = sys::fstat(fd.as_fd())?;
        if stat.st_mode & (libc::S_ISVTX | 0o002) != 0 {
            return Err(invalid(
                path,
                "is shared (sticky or world-writable); give the state file a directory of its own",
            ));
        }
        if stat.st_mode & 0o7777 != STATE_DIR_MODE {
            sys::fchmod(fd.as_fd(), STATE_DIR_MODE)?;
        }
        Ok(StateDir {
            fd,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces `name` with `bytes` (mode 0600) atomically and durably.
    pub fn write(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let dir = self.fd.as_fd();
        let target = sys::name(name)?;
        let mut attempt = 0u32;
        let (temp, file) = loop {
            let temp = sys::name(&format!(".{name}.{}.{attempt}.tmp", std::process::id()))?;
            let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
            match sys::openat(dir, &temp, flags, STATE_FILE_MODE) {
                Err(error) if error.raw_os_error() == Some(libc::EEXIST) && attempt < 16 => {
                    attempt += 1;
                }
                other => break (temp, other?),
            }
        };
        let written = sys::write_all(file.as_fd(), bytes)
            .and_then(|()| sys::fchmod(file.as_fd(), STATE_FILE_MODE))
            .and_then(|()| sys::fsync(file.as_fd()))
            .and_then(|()| sys::renameat(dir, &temp, &target));
        if let Err(error) = written {
            let _ = sys::unlinkat(dir, &temp, 0);
            return Err(error);
        }
        sys::fsync(dir)
    }

    /// The content of `name`, at most `max_bytes`; `None` if absent. A symlink is refused.
    pub fn read(&self, name: &str, max_bytes: u64) -> io::Result<Option<Vec<u8>>> {
        let file = match sys::openat(self.fd.as_fd(), &sys::name(name)?, libc::O_RDONLY, 0) {
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            other => other?,
        };
        let mut bytes = Vec::new();
        io::Read::read_to_end(
            &mut io::Read::take(std::fs::File::from(file), max_bytes + 1),
            &mut bytes,
        )?;
        if bytes.len() as u64 > max_bytes {
            return Err(invalid(
                &self.path.join(name),
                &format!("is larger than {max_bytes} bytes"),
            ));
        }
        Ok(Some(bytes))
    }

    /// Removes `name` (absent is fine) and makes the removal durable.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        match sys::unlinkat(self.fd.as_fd(), &sys::name(name)?, 0) {
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            other => other,
        }?;
        sys::fsync(self.fd.as_fd())
    }
}

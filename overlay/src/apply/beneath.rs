//! The root as a directory handle: every directory apply touches is reached from it, so no
//! path can lead outside it.
//!
//! Resolution: `openat2(root, "a/b", RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` from the root
//! handle, each time from the root (a relative symlink that stays inside the root, such as
//! merged-/usr's `/bin -> usr/bin`, is followed; an absolute one, one that climbs out with
//! `..`, or a `/proc` magic link fails with `EXDEV`/`ELOOP`). Kernels without openat2 (before
//! 5.6, or a seccomp filter answering `ENOSYS`) get the same semantics from a component-by-
//! component `openat(O_NOFOLLOW)` walk that reads each symlink itself and refuses absolute
//! targets and `..` past the root ([`Root::dir_by_walk`]).
//!
//! Invariant: no function here follows the *last* component of a file path: files and links
//! are created under temporary names in a directory handle and renamed within it.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::apply::sys;

/// Most symlinks one resolution follows (the kernel's own limit, `MAXSYMLINKS`).
const SYMLINKS_FOLLOWED_MAX: usize = 40;

/// The root directory, open.
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
    /// Set once openat2 answered `ENOSYS`: every later resolution walks instead.
    walk_only: AtomicBool,
}

impl Root {
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        Ok(Root {
            fd: sys::open_dir_path(path)?,
            path: path.to_owned(),
            walk_only: AtomicBool::new(false),
        })
    }

    /// Forces the fallback walk (tests of the path older kernels take).
    #[cfg(test)]
    pub(crate) fn force_walk(&self) {
        self.walk_only.store(true, Ordering::Relaxed);
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the directory `rel` (`""` is the root itself; `"etc/ssh"`, no leading `/`)
    /// beneath the root. `EXDEV` or `ELOOP`: a symlink on the way leaves the root.
    pub(crate) fn dir(&self, rel: &str) -> io::Result<OwnedFd> {
        if !self.walk_only.load(Ordering::Relaxed) {
            let path = sys::name(if rel.is_empty() { "." } else { rel })?;
            match sys::openat2_beneath(self.fd(), &path, libc::O_RDONLY | libc::O_DIRECTORY) {
                Err(error) if error.raw_os_error() == Some(libc::ENOSYS) => {
                    self.walk_only.store(true, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        self.dir_by_walk(rel)
    }

    /// The fallback: one `openat(O_NOFOLLOW | O_DIRECTORY)` per component; a symlink is read
    /// and its target spliced into the components still to walk; absolute targets and `..`
    /// above the root fail with `EXDEV`, like openat2 with `RESOLVE_BENEATH`.
    fn dir_by_walk(&self, rel: &str) -> io::Result<OwnedFd> {
        let mut stack: Vec<OwnedFd> = vec![self.fd.try_clone()?];
        let mut pending: VecDeque<Vec<u8>> = rel
            .split('/')
            .filter(|c| !c.is_empty())
            .map(|c| c.as_bytes().to_vec())
            .collect();
        let mut followed = 0;
        while let Some(component) = pending.pop_front() {
            match component.as_slice() {
                b"." => continue,
                b".." => {
                    if stack.len() == 1 {
                        return Err(io::Error::from_raw_os_error(libc::EXDEV));
                    }
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            let name = std::ffi::CString::new(component)
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            let current = stack.last().expect("the root is never popped").as_fd();
            match sys::openat(current, &name, libc::O_RDONLY | libc::O_DIRECTORY, 0) {
                Ok(fd) => stack.push(fd),
                Err(error) if matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                    let stat = sys::lstatat(current, &name)?;
                    if sys::kind(&stat) != libc::S_IFLNK {
                        return Err(error);
                    }
                    followed += 1;
                    if followed > SYMLINKS_FOLLOWED_MAX {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let target = sys::readlinkat(current, &name)?;
                    if target.starts_with(b"/") {
                        return Err(io::Error::from_raw_os_error(libc::EXDEV));
                    }
                    for part in target.split(|b| *b == b'/').rev() {
                        if !part.is_empty() {
                            pending.push_front(part.to_vec());
                        }
                    }
                }
                Err(error) => return Err(error),
            }
        }
        Ok(stack.pop().expect("at least the root"))
    }

    /// Opens `rel`, creating each missing directory (mode 0755 before umask) with `mkdirat` in
    /// its parent's handle; each created one is pushed on `created` (outermost first) so a
    /// failed apply can remove them again.
    pub(crate) fn dir_create(&self, rel: &str, created: &mut Vec<String>) -> io::Result<OwnedFd> {
        match self.dir(rel) {
            Err(error) if error.raw_os_error() == Some(libc::ENOENT) && !rel.is_empty() => {}
            other => return other,
        }
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let parent_fd = self.dir_create(parent, created)?;
        match sys::mkdirat(parent_fd.as_fd(), &sys::name(name)?, 0o755) {
            Ok(()) => created.push(rel.to_owned()),
            // Created meanwhile by someone else (or a dangling symlink, refused just below).
            Err(error) if error.raw_os_error() == Some(libc::EEXIST) => {}
            Err(error) => return Err(error),
        }
        self.dir(rel)
    }
}

/// `(st_dev, st_ino)` of an open directory: what apply compares to notice a directory swapped
/// between staging and commit.
pub(crate) fn identity(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let stat = sys::fstat(fd)?;
    Ok((stat.st_dev, stat.st_ino))
}

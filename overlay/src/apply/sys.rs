//! Thin, safe wrappers over the `*at` system calls apply is made of (libc, no other crate):
//! each takes a directory handle and one name, returns `io::Result`, and retries `EINTR`.
//!
//! Invariant: every file descriptor opened here is `O_CLOEXEC` and owned (`OwnedFd`), so none
//! leaks into a child or outlives its use; no call here follows a symlink unless its name says
//! so (`openat2_beneath` follows those that stay beneath its directory).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub(crate) fn name(name: &str) -> io::Result<CString> {
    cstring(name.as_bytes())
}

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

fn retry<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(error) if error.raw_os_error() == Some(libc::EINTR) => continue,
            other => return other,
        }
    }
}

fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open call and is owned by no one else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `open(path)` of a directory, following symlinks (the root an admin named).
pub(crate) fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    let path = cstring(path.as_os_str().as_bytes())?;
    retry(|| {
        // SAFETY: a valid C string; the result is checked.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        check(fd).map(owned)
    })
}

/// `openat2(dir, path, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: symlinks are followed
/// while they stay beneath `dir`; one that leaves it (absolute, or `..` past `dir`) fails with
/// `EXDEV`. `ENOSYS` (kernel before 5.6, or a seccomp filter) tells the caller to fall back.
pub(crate) fn openat2_beneath(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: libc::c_int,
) -> io::Result<OwnedFd> {
    // `struct open_how` of the kernel ABI (libc's is non-exhaustive, so not constructible).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    let mut attempts = 0;
    retry(|| {
        // SAFETY: valid fd, C string and `open_how` of the size passed; the result is checked.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match check(fd as libc::c_int) {
            // EAGAIN: a concurrent rename somewhere on the system made the kernel unsure the
            // walk stayed beneath; a few retries, then it is an error like any other.
            Err(error) if error.raw_os_error() == Some(libc::EAGAIN) && attempts < 8 => {
                attempts += 1;
                Err(io::Error::from_raw_os_error(libc::EINTR))
            }
            other => other.map(owned),
        }
    })
}

/// `openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC, mode)`.
pub(crate) fn openat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    retry(|| {
        // SAFETY: valid fd and C string; the result is checked.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode as libc::c_uint,
            )
        };
        check(fd).map(owned)
    })
}

pub(crate) fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: valid fd and C string; the result is checked.
    retry(|| check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop))
}

/// `renameat` within one directory: atomic replacement of `to` (a file or a symlink, never
/// followed) by `from`.
pub(crate) fn renameat(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    retry(|| {
        // SAFETY: valid fd and C strings; the result is checked.
        let result =
            unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) };
        check(result).map(drop)
    })
}

/// `unlinkat(dir, name, flags)`; `AT_REMOVEDIR` removes an empty directory.
pub(crate) fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: valid fd and C string; the result is checked.
    retry(|| check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop))
}

pub(crate) fn symlinkat(target: &[u8], dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let target = cstring(target)?;
    retry(|| {
        // SAFETY: valid fd and C strings; the result is checked.
        check(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
    })
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: what is at `name` itself.
pub(crate) fn lstatat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: zeroed `stat` is a valid value to be overwritten; fd and string are valid.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    retry(|| {
        check(unsafe {
            libc::fstatat(
                dir.as_raw_fd(),
                name.as_ptr(),
                &mut stat,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
        .map(drop)
    })?;
    Ok(stat)
}

pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: as in `lstatat`.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    retry(|| check(unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) }).map(drop))?;
    Ok(stat)
}

/// Free bytes for an unprivileged writer (`f_bavail × f_frsize`) and the fragment size.
pub(crate) fn free_bytes(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    // SAFETY: as in `lstatat`.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    retry(|| check(unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut stat) }).map(drop))?;
    let fragment = (stat.f_frsize as u64).max(1);
    Ok((stat.f_bavail as u64 * fragment, fragment))
}

pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: valid fd; the result is checked.
    retry(|| check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }).map(drop))
}

pub(crate) fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid fd; the result is checked.
    retry(|| check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) }).map(drop))
}

pub(crate) fn fsync(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid fd; the result is checked.
    retry(|| check(unsafe { libc::fsync(fd.as_raw_fd()) }).map(drop))
}

/// The target of the symlink `name` in `dir`.
pub(crate) fn readlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    let len = retry(|| {
        // SAFETY: the buffer is valid for its length; the result is checked.
        let len = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if len < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(len as usize)
        }
    })?;
    if len >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(len);
    Ok(buf)
}

/// The file type bits of a `stat`.
pub(crate) fn kind(stat: &libc::stat) -> libc::mode_t {
    stat.st_mode & libc::S_IFMT
}

/// Writes all of `bytes` to `fd`.
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let written = retry(|| {
            // SAFETY: the slice is valid for its length; the result is checked.
            let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        })?;
        if written == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        bytes = &bytes[written..];
    }
    Ok(())
}

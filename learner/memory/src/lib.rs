//! bootstorm-memory: the memory setup of the long-running bootstorm binaries (`bootstorm` and
//! `bootstorm-loadtest`): their global allocator ([`Allocator`], mimalloc) and transparent huge
//! pages off. The node agent does not use it (it runs once per boot and stays small).
//!
//! Why mimalloc: QUIC serving allocates per packet and per frame (quinn, rustls); with glibc
//! malloc ~8 % of a cold boot's server CPU was malloc/free (docs/perf.md has the measurement).
//!
//! Why transparent huge pages are off: mimalloc (the global allocator of both binaries)
//! advises its arenas `MADV_HUGEPAGE`, and after it returns idle memory to the kernel the next
//! touch of that 2 MiB range faults in a fresh huge page, which the kernel zeroes whole. A
//! scheduler trace of a 1-client commit run (3 voters on this 2-core VM) showed those faults on
//! the core threads as 2.5-4 ms of `clear_page_erms` at a time, inside the slowest commits;
//! replicas also held twice the resident memory (70 vs 35 MB). With them off a fault zeroes
//! 4 KiB. Measured in the same session (`MIMALLOC_ALLOW_THP=0`, 5 interleaved pairs): commit
//! p99.9 lower in 5 of 5 pairs (4.8-7.1 vs 6.5-7.6 ms), p99 unchanged within noise.
//!
//! The load tester starts peer baselines (etcd, nginx) with the kernel default restored, so a
//! same-run comparison changes only our side.
//!
//! Must never: fail the process — on a kernel without the knob the binaries run as before.

/// The global allocator of the long-running binaries; each declares
/// `#[global_allocator] static ALLOCATOR: memory::Allocator = memory::Allocator;` in its
/// `main.rs` (a library must not pick the allocator for every binary that links it).
pub use mimalloc::MiMalloc as Allocator;

/// Turns transparent huge pages off for this process and the processes it starts
/// (`PR_SET_THP_DISABLE` is inherited across fork and exec). Call first thing in `main`.
/// Returns whether the kernel accepted it.
pub fn disable_transparent_huge_pages() -> bool {
    // SAFETY: prctl with PR_SET_THP_DISABLE reads only its integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    rc == 0
}

/// Gives huge pages back their kernel default in this process (inherited by what it starts).
/// For peer baselines started from the load tester, which turned them off for itself: a
/// same-run comparison must change only our side. Async-signal-safe (one syscall), so it may
/// run between fork and exec.
pub fn restore_transparent_huge_pages() -> bool {
    // SAFETY: prctl with PR_SET_THP_DISABLE reads only its integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0) };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_pages_go_off_and_back_to_the_kernel_default() {
        assert!(
            disable_transparent_huge_pages(),
            "prctl(PR_SET_THP_DISABLE) refused"
        );
        // SAFETY: PR_GET_THP_DISABLE takes no pointer arguments.
        let state = || unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(state(), 1);
        assert!(restore_transparent_huge_pages());
        assert_eq!(state(), 0);
    }
}

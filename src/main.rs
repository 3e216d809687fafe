//! The `cxrelay` command: parses the command line and hands each command to
//! its module in `cli/`.

mod cli;

/// mimalloc: events are allocated on one thread and freed on another (the
/// HTTP worker's or a socket's, then a sink's); glibc's allocator takes the
/// allocating thread's arena lock for each such free (21k contended `futex`
/// calls per 100k webhook requests, 139 with mimalloc, which hands them back
/// without a lock; CPU figures in `benches/HISTORY.md`). Built without
/// transparent huge pages (`no_thp`): with them its regions were backed by
/// 2 MiB pages and the notification run's memory doubled.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its number in `mimalloc.h`, kept
/// stable across versions).
const PURGE_DELAY_OPTION: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory is kept for reuse before it goes back to the
/// system, in ms: mimalloc's default (1 s) let the notification run's peak
/// memory reach 50-63 MB, 100 ms 50-52 MB, for the same CPU.
const PURGE_DELAY_MS: std::ffi::c_long = 100;

fn main() -> std::process::ExitCode {
    tune_allocator();
    cli::main()
}

/// Sets mimalloc's purge delay, before any thread starts (option setters
/// are not thread-safe); the variable mimalloc reads still wins, for a
/// user who tunes it.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's documented options by its number,
        // with no other thread running yet.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY_OPTION, PURGE_DELAY_MS) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_set_is_mimallocs_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads an option; no other test touches mimalloc's options.
        let before = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY_OPTION) };
        // 1 s is the purge delay's default (and no other option's): a
        // version that numbered its options otherwise would fail here.
        assert_eq!(before, 1000, "option {PURGE_DELAY_OPTION} is not the purge delay");
        tune_allocator();
        // SAFETY: as above.
        let after = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY_OPTION) };
        assert_eq!(after, PURGE_DELAY_MS);
    }
}

//! The syscall allowlist: which calls foreign code may make, and what the
//! SIGSYS handler does with the ones it must look at.
//!
//! The filter is process-wide and cannot see PKRU, so it treats trusted and
//! foreign code alike; the difference is made in the handler:
//!
//! * [`Rule::Allow`]: the filter lets the call through for everyone, without
//!   loading an argument (the kernel then caches the verdict per syscall
//!   number and the call costs next to nothing). These are calls whose only
//!   effect on memory is a copy the kernel makes with the caller's PKRU
//!   (`read` into the Rust heap from foreign code fails with `EFAULT`), on
//!   descriptors, time, futexes, signals masks and the process's own ids.
//! * [`Rule::Args`]: the filter looks at register arguments (no memory) and
//!   either allows or traps: `mmap` without `MAP_FIXED` and without
//!   `PROT_EXEC`, `clone` of a process or of a thread with its own TLS,
//!   `rt_sigaction` of a signal other than the fault signals and SIGSYS,
//!   `ioctl` with a few terminal/descriptor requests, `prlimit64` that only
//!   reads.
//! * [`Rule::Check`]: always trapped; the handler decides with trusted state
//!   (the protected ranges, what a path opened), copying what the kernel will
//!   read into protected memory first, and re-issues the call itself.
//! * [`Rule::Enosys`]: fails with `ENOSYS` for everyone (`clone3`, whose
//!   flags BPF cannot read: glibc falls back to `clone`; `io_uring_setup`,
//!   whose requests would bypass the filter).
//! * Anything else traps: from trusted code the handler re-issues it (slow,
//!   correct); from foreign code it is refused (`Err(Fault)` of kind
//!   `syscall` inside a gate, `EPERM` on a thread foreign code started).

use libc as c;

/// What the filter does with one syscall number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rule {
    Allow,
    Args,
    Check,
    Enosys,
}

/// One entry of the list.
pub(crate) struct Entry {
    pub nr: u32,
    /// `SYS_read`, …
    pub sys_name: &'static str,
    pub rule: Rule,
}

impl Entry {
    /// `read`, …
    pub fn name(&self) -> &'static str {
        &self.sys_name[4..]
    }
}

macro_rules! entries {
    ($($rule:ident: $($name:ident)*;)*) => {
        &[$($(Entry { nr: c::$name as u32, sys_name: stringify!($name), rule: Rule::$rule },)*)*]
    };
}

/// The default list (x86_64 numbers). docs/guard.md says why each is here.
pub(crate) static DEFAULT: &[Entry] = entries! {
    // The most frequent first: the filter compares in this order.
    Allow: SYS_read SYS_write SYS_futex SYS_close SYS_pread64 SYS_pwrite64
        SYS_lseek SYS_fstat SYS_newfstatat SYS_statx SYS_readv SYS_writev
        SYS_clock_gettime SYS_clock_nanosleep SYS_nanosleep SYS_gettimeofday
        SYS_time SYS_clock_getres SYS_sched_yield SYS_getpid SYS_gettid
        SYS_getppid SYS_getuid SYS_geteuid SYS_getgid SYS_getegid
        SYS_getresuid SYS_getresgid SYS_getgroups SYS_getpgrp SYS_getsid
        SYS_getrlimit SYS_getrusage SYS_uname SYS_sysinfo SYS_times
        SYS_getrandom SYS_getcpu SYS_sched_getaffinity
        SYS_preadv SYS_pwritev SYS_preadv2 SYS_pwritev2
        SYS_dup SYS_dup2 SYS_dup3 SYS_fcntl SYS_flock SYS_fsync SYS_fdatasync
        SYS_ftruncate SYS_truncate SYS_getdents64 SYS_fallocate SYS_fadvise64
        SYS_sendfile SYS_copy_file_range SYS_splice SYS_tee SYS_sync_file_range
        SYS_stat SYS_lstat SYS_access SYS_faccessat SYS_faccessat2
        SYS_readlink SYS_readlinkat SYS_getcwd SYS_chdir SYS_fchdir SYS_mkdir
        SYS_mkdirat SYS_rmdir SYS_unlink SYS_unlinkat SYS_rename SYS_renameat
        SYS_renameat2 SYS_link SYS_linkat SYS_symlink SYS_symlinkat SYS_chmod
        SYS_fchmod SYS_fchmodat SYS_fchown SYS_fchownat SYS_utimensat
        SYS_statfs SYS_fstatfs SYS_umask
        SYS_poll SYS_ppoll SYS_select SYS_pselect6 SYS_epoll_create
        SYS_epoll_create1 SYS_epoll_ctl SYS_epoll_wait SYS_epoll_pwait
        SYS_epoll_pwait2 SYS_eventfd SYS_eventfd2 SYS_pipe SYS_pipe2
        SYS_timerfd_create SYS_timerfd_settime SYS_timerfd_gettime
        SYS_socket SYS_socketpair SYS_connect SYS_accept SYS_accept4 SYS_bind
        SYS_listen SYS_shutdown SYS_sendto SYS_recvfrom SYS_sendmsg
        SYS_recvmsg SYS_sendmmsg SYS_recvmmsg SYS_getsockname SYS_getpeername
        SYS_setsockopt SYS_getsockopt
        SYS_futex_waitv SYS_set_robust_list SYS_set_tid_address
        SYS_rt_sigpending
        SYS_rt_sigtimedwait SYS_rt_sigsuspend SYS_pause SYS_restart_syscall
        SYS_exit SYS_brk SYS_fork SYS_vfork SYS_execve SYS_execveat
        SYS_wait4 SYS_waitid;
    Args: SYS_mmap SYS_clone SYS_rt_sigaction SYS_ioctl SYS_prlimit64
        SYS_rt_sigprocmask SYS_madvise SYS_munmap SYS_rseq SYS_tgkill
        SYS_sigaltstack;
    // rt_sigreturn restores PKRU from the frame it is given: only the
    // signal entry returns, with the token (docs/signals.md). exit_group
    // from foreign code ends its gate call, not the program.
    Check: SYS_mprotect SYS_mremap SYS_open SYS_openat
        SYS_openat2 SYS_prctl SYS_rt_sigreturn SYS_exit_group
        SYS_tkill;
    Enosys: SYS_clone3 SYS_io_uring_setup;
};

/// Calls that a [`crate::SyscallPolicy`] can never add: the kernel copies
/// memory for the caller without PKRU, changes protection keys, or its
/// requests escape the filter; and the calls the handler checks (their
/// checks are the point).
pub(crate) fn never_allowable(nr: u32) -> bool {
    const NEVER: &[i64] = &[
        c::SYS_process_vm_readv,
        c::SYS_process_vm_writev,
        c::SYS_ptrace,
        c::SYS_pkey_mprotect,
        c::SYS_pkey_alloc,
        c::SYS_pkey_free,
        c::SYS_io_uring_setup,
        c::SYS_io_uring_enter,
        c::SYS_io_uring_register,
        c::SYS_userfaultfd,
        c::SYS_perf_event_open,
        c::SYS_bpf,
        c::SYS_kcmp,
        c::SYS_process_madvise,
        c::SYS_pidfd_getfd,
        c::SYS_vmsplice,
        c::SYS_seccomp,
        c::SYS_arch_prctl,
        c::SYS_shmat,
        c::SYS_remap_file_pages,
        c::SYS_mseal,
        c::SYS_modify_ldt,
        c::SYS_set_thread_area,
    ];
    NEVER.iter().any(|&n| n as u32 == nr)
        || DEFAULT
            .iter()
            .any(|e| e.nr == nr && matches!(e.rule, Rule::Args | Rule::Check | Rule::Enosys))
}

/// The rule for `nr` under the default list widened by `allow` and narrowed
/// by `deny` (a denied call traps: trusted code's calls still run).
pub(crate) fn rule(nr: u32, allow: &[u32], deny: &[u32]) -> Option<Rule> {
    if deny.contains(&nr) {
        return None;
    }
    if let Some(e) = DEFAULT.iter().find(|e| e.nr == nr) {
        return Some(e.rule);
    }
    allow.contains(&nr).then_some(Rule::Allow)
}

/// A name for x86_64 syscall `nr`: the list's names, and those of the calls
/// the guard refuses on purpose.
pub(crate) fn name(nr: u32) -> &'static str {
    if let Some(e) = DEFAULT.iter().find(|e| e.nr == nr) {
        return e.name();
    }
    macro_rules! names {
        ($($name:ident)*) => {
            $(if nr == c::$name as u32 { return &stringify!($name)[4..]; })*
        };
    }
    names!(SYS_process_vm_readv SYS_process_vm_writev SYS_ptrace
        SYS_pkey_mprotect SYS_pkey_alloc SYS_pkey_free SYS_io_uring_enter
        SYS_io_uring_register SYS_userfaultfd SYS_perf_event_open SYS_bpf
        SYS_kcmp SYS_process_madvise SYS_pidfd_getfd SYS_pidfd_open
        SYS_vmsplice SYS_seccomp SYS_arch_prctl SYS_execve SYS_execveat
        SYS_vfork SYS_shmat SYS_shmget SYS_shmctl SYS_shmdt
        SYS_remap_file_pages SYS_mseal SYS_modify_ldt SYS_set_thread_area
        SYS_kill SYS_mlock SYS_munlock SYS_mlockall SYS_msync SYS_mincore
        SYS_memfd_create SYS_membarrier SYS_creat SYS_mount SYS_umount2
        SYS_chroot SYS_setuid SYS_setgid SYS_setns SYS_unshare
        SYS_name_to_handle_at SYS_open_by_handle_at SYS_sched_setaffinity
        SYS_setitimer SYS_alarm SYS_timer_create SYS_rt_sigqueueinfo
        SYS_rt_tgsigqueueinfo SYS_pidfd_send_signal SYS_get_robust_list
        SYS_move_pages SYS_migrate_pages SYS_mbind SYS_set_mempolicy
        SYS_memfd_secret SYS_personality SYS_reboot SYS_init_module
        SYS_finit_module SYS_keyctl SYS_add_key SYS_fanotify_init
        SYS_inotify_init1 SYS_signalfd4 SYS_syslog);
    "unknown"
}

//! Linux, for the process backend: memfd, seals, shared mappings at a fixed
//! address, futexes between processes, resource limits.

use core::ffi::{c_int, c_void, CStr};
use core::sync::atomic::AtomicU32;
use std::io;

fn check(r: c_int) -> io::Result<c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`, sized to `len`
/// and sealed against shrinking and growing, so that the other process
/// cannot truncate it under a mapping (which would make our accesses
/// SIGBUS).
pub(crate) fn memfd_sealed(name: &CStr, len: usize) -> io::Result<c_int> {
    // SAFETY: `name` is a valid C string; flags are constants.
    let fd = check(unsafe {
        libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    let fail = |fd: c_int| {
        let e = io::Error::last_os_error();
        // SAFETY: closing the descriptor just created.
        unsafe { libc::close(fd) };
        Err(e)
    };
    // SAFETY: fd is the memfd just created.
    if unsafe { libc::ftruncate(fd, len as libc::off_t) } != 0 {
        return fail(fd);
    }
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on our memfd with integer arguments.
    if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) } != 0 {
        return fail(fd);
    }
    Ok(fd)
}

/// Whether `fd` is a memfd sealed against shrinking, and its size.
pub(crate) fn sealed_size(fd: c_int) -> Option<usize> {
    // SAFETY: fcntl with integer arguments; a bad fd is an error return.
    let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    if seals < 0 || seals & libc::F_SEAL_SHRINK == 0 {
        return None;
    }
    // SAFETY: a zeroed stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: as above.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st.st_size as usize)
}

/// `mmap(addr, len, RW, MAP_SHARED [| MAP_FIXED_NOREPLACE], fd, 0)`. With
/// `fixed`, the mapping is at `addr` or the call fails (never over an
/// existing mapping).
pub(crate) fn map_shared(addr: usize, len: usize, fd: c_int, fixed: bool) -> io::Result<*mut u8> {
    let mut flags = libc::MAP_SHARED | libc::MAP_NORESERVE;
    if fixed {
        flags |= libc::MAP_FIXED_NOREPLACE;
    }
    // SAFETY: a new shared mapping of our own descriptor; with
    // MAP_FIXED_NOREPLACE the kernel refuses to replace anything.
    let p = unsafe {
        libc::mmap(
            addr as *mut c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    if fixed && p as usize != addr {
        // An old kernel that ignores MAP_FIXED_NOREPLACE treats it as a hint.
        // SAFETY: unmapping the mapping just made.
        unsafe { libc::munmap(p, len) };
        return Err(io::Error::from_raw_os_error(libc::EEXIST));
    }
    Ok(p.cast())
}

/// `madvise(MADV_REMOVE)`: frees the shared pages behind the range (they
/// read back as zeros).
///
/// # Safety
/// The range lies in a shared mapping of ours and holds nothing anyone needs.
pub(crate) unsafe fn discard_shared(addr: usize, len: usize) {
    // SAFETY: forwarded contract; failure leaves the pages as they are.
    unsafe { libc::madvise(addr as *mut c_void, len, libc::MADV_REMOVE) };
}

/// This thread's `errno`.
pub(crate) fn errno() -> i32 {
    // SAFETY: glibc's errno location is this thread's, valid for its life.
    unsafe { *libc::__errno_location() }
}

/// Sets this thread's `errno`.
pub(crate) fn set_errno(e: i32) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = e };
}

/// `FUTEX_WAIT` (shared between processes) on `word` while it holds
/// `expected`, for at most `timeout_ns` (none: forever). Returns on a wake,
/// a changed value, a signal or the timeout.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout_ns: Option<u64>) {
    let ts = timeout_ns.map(|ns| libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    });
    let tp = ts
        .as_ref()
        .map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // Cofferdam's own wait leaves errno as it found it: on a helper thread
    // it is the library's (EAGAIN from a changed word would show through).
    let e = errno();
    // SAFETY: `word` is a live, aligned u32; the kernel only reads it and
    // the timespec, which outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            tp,
            0usize,
            0usize,
        )
    };
    set_errno(e);
}

/// `FUTEX_WAKE` (shared between processes): wakes up to `n` waiters.
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) {
    let e = errno();
    // SAFETY: `word` is a live, aligned u32; the kernel does not write it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            0usize,
            0usize,
            0usize,
        )
    };
    set_errno(e);
}

/// `capset` to nothing: empty effective, permitted and inheritable sets.
/// A process started by root keeps uid 0 but loses what makes root strong:
/// `CAP_SYS_PTRACE` above all, which would let it open another process's
/// `/proc/<pid>/mem` even when that process is not dumpable. With
/// `no_new_privs` (set with the seccomp filter) nothing gives them back.
pub(crate) fn drop_capabilities() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set.
    let mut h = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let d = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset reads a valid header and two data words, both live
    // for the call; pid 0 is this thread (the helper's only one yet).
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `setrlimit(resource, value, value)`.
pub(crate) fn set_rlimit(resource: c_int, value: u64) -> io::Result<()> {
    let r = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: a valid rlimit value; `resource` is a constant.
    check(unsafe { libc::setrlimit(resource as _, &r) }).map(|_| ())
}

/// `prctl(option, arg)` with integer arguments.
pub(crate) fn prctl(option: c_int, arg: usize) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    check(unsafe { libc::prctl(option, arg, 0usize, 0usize, 0usize) }).map(|_| ())
}

/// `kill(pid, SIGKILL)`.
pub(crate) fn kill_hard(pid: i32) {
    // SAFETY: signals one process we started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// `exit(code)`.
    Exited(i32),
    /// Killed by a signal.
    Signaled(i32),
}

/// `waitpid(pid, ..)`: `Some` once the child has ended (and is reaped),
/// `None` while it runs (only without `block`).
pub(crate) fn wait_child(pid: i32, block: bool) -> Option<Ended> {
    let mut status: c_int = 0;
    loop {
        let flags = if block { 0 } else { libc::WNOHANG };
        // SAFETY: waits for our own child; `status` is a valid out-parameter.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == pid {
            break;
        }
        if r == 0 {
            return None;
        }
        if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        // ECHILD: someone else reaped it; it is gone all the same.
        return Some(Ended::Signaled(0));
    }
    if libc::WIFEXITED(status) {
        Some(Ended::Exited(libc::WEXITSTATUS(status)))
    } else {
        Some(Ended::Signaled(libc::WTERMSIG(status)))
    }
}

/// The load bias of the object that `link_map` entry describes (`l_addr`),
/// and whether it is the main program (empty `l_name`), for the object
/// containing `addr`.
pub(crate) fn object_bias(addr: usize) -> Option<(usize, Option<std::path::PathBuf>)> {
    #[repr(C)]
    struct LinkMap {
        l_addr: usize,
        l_name: *const libc::c_char,
    }
    // SAFETY: zeroed Dl_info is a valid out-parameter; dladdr1 with
    // RTLD_DL_LINKMAP stores a `struct link_map *` in `extra`.
    unsafe {
        let mut info: libc::Dl_info = core::mem::zeroed();
        let mut extra: *mut c_void = core::ptr::null_mut();
        if libc::dladdr1(
            addr as *const c_void,
            &mut info,
            &mut extra,
            2, /* RTLD_DL_LINKMAP */
        ) == 0
            || extra.is_null()
        {
            return None;
        }
        let lm = extra as *const LinkMap;
        let name = (*lm).l_name;
        let path = if name.is_null() || *name == 0 {
            None
        } else {
            Some(std::path::PathBuf::from(
                CStr::from_ptr(name).to_string_lossy().into_owned(),
            ))
        };
        Some(((*lm).l_addr, path))
    }
}

/// The load bias of the main program (`l_addr` of `dlopen(NULL)`'s map).
pub(crate) fn main_bias() -> usize {
    object_bias(main_bias as *const () as usize).map_or(0, |(b, _)| b)
}

/// The load bias of a shared object opened with `dlopen` (`RTLD_DI_LINKMAP`).
pub(crate) fn handle_bias(handle: *mut c_void) -> Option<usize> {
    let mut lm: *const usize = core::ptr::null();
    // SAFETY: `handle` is a live dlopen handle; RTLD_DI_LINKMAP writes a
    // `struct link_map *` whose first field is l_addr.
    unsafe {
        if libc::dlinfo(
            handle,
            libc::RTLD_DI_LINKMAP,
            (&mut lm as *mut *const usize).cast(),
        ) != 0
            || lm.is_null()
        {
            return None;
        }
        Some(*lm)
    }
}

//! Linux x86_64, for the syscall guard and load-time inspection: seccomp,
//! `prctl`, random bytes, fixed mappings inside the reservation, `dlopen`.
//!
//! Nothing here allocates except [`dlopen`] and [`dlerror`] (not used in
//! signal handlers).

use core::ffi::{c_int, c_void, CStr};
use std::io;

/// One classic BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

const SECCOMP_SET_MODE_FILTER: usize = 1;
const SECCOMP_FILTER_FLAG_TSYNC: usize = 1;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: usize = 1 << 3;
const SECCOMP_FILTER_FLAG_TSYNC_ESRCH: usize = 1 << 4;

/// Adds one more filter layer to every thread of the process (TSYNC), from
/// the syscall guard's trap handler: the call carries the guard's token (in
/// the sixth argument register, which `seccomp` ignores) so that the filter
/// already installed lets it through. Returns the kernel's result.
///
/// # Safety
/// `token` points to the guard's token (readable: the caller holds P's
/// rights).
pub(crate) unsafe fn add_seccomp_layer(prog: &[SockFilter], token: *const u64) -> i64 {
    let Ok(len) = u16::try_from(prog.len()) else {
        return -(libc::EINVAL as i64);
    };
    let fprog = SockFprog {
        len,
        filter: prog.as_ptr(),
    };
    // SAFETY: `fprog` points at `len` valid instructions for the duration of
    // the call (the kernel copies them); the token pointer is the caller's.
    unsafe {
        crate::gate::syscall::syscall_with_token(
            libc::SYS_seccomp,
            [
                SECCOMP_SET_MODE_FILTER as u64,
                SECCOMP_FILTER_FLAG_TSYNC as u64,
                &fprog as *const SockFprog as u64,
                0,
                0,
            ],
            token,
        )
    }
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)` then `seccomp(SECCOMP_SET_MODE_FILTER,
/// SECCOMP_FILTER_FLAG_TSYNC, prog)`: the filter applies to every thread of
/// the process from now on, and to every child. With `listener`, the kernel
/// also hands back the filter's user-notification descriptor
/// (`SECCOMP_FILTER_FLAG_NEW_LISTENER`): `Ok(Some(fd))`. A filter above this
/// process that already has a listener makes that fail with `EBUSY`.
pub(crate) fn install_seccomp_filter(
    prog: &[SockFilter],
    listener: bool,
) -> io::Result<Option<c_int>> {
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1usize, 0usize, 0usize, 0usize) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let fprog = SockFprog {
        len,
        filter: prog.as_ptr(),
    };
    // TSYNC and NEW_LISTENER both return a positive number on success:
    // TSYNC_ESRCH makes a failed synchronisation an ESRCH error instead.
    let flags = if listener {
        SECCOMP_FILTER_FLAG_TSYNC
            | SECCOMP_FILTER_FLAG_NEW_LISTENER
            | SECCOMP_FILTER_FLAG_TSYNC_ESRCH
    } else {
        SECCOMP_FILTER_FLAG_TSYNC
    };
    // SAFETY: `fprog` points at `len` valid instructions for the duration of
    // the call; the kernel copies the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const SockFprog,
        )
    };
    match r {
        0 if !listener => Ok(None),
        r if r >= 0 && listener => Ok(Some(r as c_int)),
        r if r > 0 => Err(io::Error::other(format!(
            "thread {r} could not be synchronised to the filter"
        ))),
        _ => Err(io::Error::last_os_error()),
    }
}

/// `struct seccomp_notif`: one call held for the supervisor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SeccompNotif {
    pub id: u64,
    pub pid: u32,
    pub flags: u32,
    pub nr: i32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SeccompNotifResp {
    pub id: u64,
    pub val: i64,
    pub error: i32,
    pub flags: u32,
}

/// `SECCOMP_IOCTL_NOTIF_RECV`, `SECCOMP_IOCTL_NOTIF_SEND`: `_IOWR('!', n,
/// size)`.
pub(crate) const SECCOMP_IOCTL_NOTIF_RECV: u64 =
    0xc000_0000 | (core::mem::size_of::<SeccompNotif>() as u64) << 16 | 0x21 << 8;
pub(crate) const SECCOMP_IOCTL_NOTIF_SEND: u64 =
    0xc000_0000 | (core::mem::size_of::<SeccompNotifResp>() as u64) << 16 | 0x21 << 8 | 1;
/// Run the held call as made.
pub(crate) const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;

/// 8 random bytes from `getrandom(2)`.
pub(crate) fn random_u64() -> io::Result<u64> {
    let mut v = 0u64;
    // SAFETY: writes at most 8 bytes into `v`.
    let r = unsafe { libc::getrandom((&mut v as *mut u64).cast(), 8, 0) };
    if r == 8 {
        Ok(v)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `mmap(hint, len, prot, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0)`
/// without `MAP_FIXED`: the kernel uses `hint` if it is free.
pub(crate) fn map_anon_hint(hint: usize, len: usize, prot: c_int) -> io::Result<*mut u8> {
    // SAFETY: a hint never replaces an existing mapping.
    let p = unsafe {
        libc::mmap(
            hint as *mut c_void,
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(p.cast())
    }
}

/// `madvise(addr, len, advice)`.
///
/// # Safety
/// The caller owns the pages; for `MADV_DONTNEED` their contents are lost.
pub(crate) unsafe fn madvise(addr: *mut u8, len: usize, advice: c_int) -> io::Result<()> {
    // SAFETY: forwarded contract.
    if unsafe { libc::madvise(addr.cast(), len, advice) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `dlopen(path, RTLD_NOW | RTLD_LOCAL)`.
pub(crate) fn dlopen(path: &CStr) -> Result<*mut c_void, String> {
    // SAFETY: `path` is a valid C string. Loading runs the library's
    // constructors: the caller has inspected the file first.
    let h = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if h.is_null() {
        Err(dlerror())
    } else {
        Ok(h)
    }
}

/// `dlsym(handle, name)`.
pub(crate) fn dlsym(handle: *mut c_void, name: &CStr) -> Option<*mut c_void> {
    // SAFETY: `handle` is a live dlopen handle (or RTLD_DEFAULT) and `name`
    // a valid C string; dlsym only looks the name up.
    let p = unsafe { libc::dlsym(handle, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// The last `dlerror()` message.
pub(crate) fn dlerror() -> String {
    // SAFETY: dlerror returns null or a valid C string owned by libdl.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown dlopen error".into()
    } else {
        // SAFETY: non-null C string, copied at once.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

/// The object (executable or shared library) that contains `addr`:
/// `(path, load base)` from `dladdr`. The main executable's path is read from
/// `/proc/self/exe` (dladdr names it by `argv[0]`).
pub(crate) fn object_of(addr: usize) -> Option<(std::path::PathBuf, usize)> {
    // SAFETY: a zeroed Dl_info is a valid out-parameter.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: dladdr only reads the loader's tables.
    if unsafe { libc::dladdr(addr as *const c_void, &mut info) } == 0 || info.dli_fbase.is_null() {
        return None;
    }
    let base = info.dli_fbase as usize;
    let exe_base = main_base();
    if Some(base) == exe_base || info.dli_fname.is_null() {
        return std::fs::read_link("/proc/self/exe").ok().map(|p| (p, base));
    }
    // SAFETY: dli_fname is a valid C string owned by the loader.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    let s = name.to_string_lossy().into_owned();
    if s.is_empty() {
        return std::fs::read_link("/proc/self/exe").ok().map(|p| (p, base));
    }
    Some((std::path::PathBuf::from(s), base))
}

/// The main executable's load base (`dladdr` of one of its own functions).
fn main_base() -> Option<usize> {
    // SAFETY: a zeroed Dl_info is a valid out-parameter.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    let here = main_base as *const () as *const c_void;
    // SAFETY: dladdr only reads the loader's tables.
    (unsafe { libc::dladdr(here, &mut info) } != 0).then_some(info.dli_fbase as usize)
}

static PROBE_TRAPPED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

extern "C" fn probe_handler(_: c_int, _: *mut libc::siginfo_t, ctx: *mut c_void) {
    PROBE_TRAPPED.store(true, core::sync::atomic::Ordering::SeqCst);
    let uc = ctx as *mut libc::ucontext_t;
    // SAFETY: the kernel passes a valid ucontext to an SA_SIGINFO handler;
    // the trapped syscall returns -ENOSYS.
    unsafe { (*uc).uc_mcontext.gregs[libc::REG_RAX as usize] = -(libc::ENOSYS as i64) };
    // Resume without rt_sigreturn: an inherited filter refuses it without
    // the parent's token (and would trap this handler's return forever).
    // SAFETY: `uc` is the kernel's frame for this very signal.
    unsafe { crate::gate::user_sigreturn(uc.cast()) }
}

/// Whether this process runs under a seccomp filter that traps `pkey_alloc`
/// (a parent Cofferdam process's syscall guard, inherited through
/// fork/exec). Probed once, with a temporary SIGSYS handler, only when some
/// filter is present.
pub(crate) fn inherited_guard() -> bool {
    use core::sync::atomic::{AtomicU8, Ordering};
    static ANSWER: AtomicU8 = AtomicU8::new(0);
    match ANSWER.load(Ordering::Acquire) {
        1 => return false,
        2 => return true,
        _ => {}
    }
    // SAFETY: prctl with integer arguments only.
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0usize, 0usize, 0usize, 0usize) };
    let trapped = mode == 2 && {
        // SAFETY: zeroed sigactions are valid; the handler is a valid
        // SA_SIGINFO function; the old action is restored right after.
        unsafe {
            let mut act: libc::sigaction = core::mem::zeroed();
            let mut old: libc::sigaction = core::mem::zeroed();
            act.sa_sigaction = probe_handler as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
            super::real_sigaction(libc::SIGSYS, &act, &mut old);
            PROBE_TRAPPED.store(false, Ordering::SeqCst);
            let r = libc::syscall(libc::SYS_pkey_alloc, 0usize, 0usize);
            if r >= 0 {
                libc::syscall(libc::SYS_pkey_free, r as usize);
            }
            super::real_sigaction(libc::SIGSYS, &old, core::ptr::null_mut());
            PROBE_TRAPPED.load(Ordering::SeqCst)
        }
    };
    ANSWER.store(if trapped { 2 } else { 1 }, Ordering::Release);
    trapped
}

//! Linux x86_64: thin wrappers over the syscalls and CPU queries Cofferdam
//! needs. Each wrapper states the call it makes; errors are `io::Error`.
//!
//! Nothing here allocates: these functions run inside the global allocator's
//! initialisation and inside signal handlers.

use core::ffi::{c_int, c_void};
use std::io;

/// What the CPU and kernel say about protection keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PkeySupport {
    /// CPUID.7.0:ECX.PKU is set, CR4.PKE is on (OSPKE) and `pkey_alloc` works.
    Available,
    /// The CPU has no PKU feature.
    NoCpu,
    /// The CPU has PKU but the OS did not enable it (OSPKE clear).
    NoOs,
    /// The kernel refused `pkey_alloc` (errno given).
    KernelRefused(i32),
    /// This process inherited a parent Cofferdam process's syscall guard,
    /// which traps `pkey_alloc`/`pkey_mprotect`: keys cannot be used here.
    Guarded,
}

/// `cpuid` leaf 7, sub-leaf 0, ECX: bit 3 PKU, bit 4 OSPKE.
pub(crate) fn cpu_pkeys() -> (bool, bool) {
    // `cpuid` exists on every x86_64 CPU; leaf 7 only where max leaf >= 7.
    let max = core::arch::x86_64::__cpuid(0).eax;
    if max < 7 {
        return (false, false);
    }
    let ecx = core::arch::x86_64::__cpuid_count(7, 0).ecx;
    (ecx & (1 << 3) != 0, ecx & (1 << 4) != 0)
}

/// Whether CPUID leaf 0 names an AMD CPU ("AuthenticAMD"; Hygon's
/// "HygonGenuine" is a Zen derivative and counts too).
pub(crate) fn cpu_vendor_amd() -> bool {
    let r = core::arch::x86_64::__cpuid(0);
    let mut v = [0u8; 12];
    v[..4].copy_from_slice(&r.ebx.to_le_bytes());
    v[4..8].copy_from_slice(&r.edx.to_le_bytes());
    v[8..].copy_from_slice(&r.ecx.to_le_bytes());
    &v == b"AuthenticAMD" || &v == b"HygonGenuine"
}

/// Offset of the PKRU component (XSAVE feature 9) in the standard-format XSAVE
/// area, as the signal frame stores it: CPUID leaf 0xD, sub-leaf 9, EBX.
pub(crate) fn pkru_xsave_offset() -> Option<u32> {
    let max = core::arch::x86_64::__cpuid(0).eax;
    if max < 0xd {
        return None;
    }
    let r = core::arch::x86_64::__cpuid_count(0xd, 9);
    // EAX is the component's size (4 bytes for PKRU) and EBX its offset.
    (r.eax >= 4 && r.ebx != 0).then_some(r.ebx)
}

/// `pkey_alloc(0, 0)`: a new key, with access and write allowed for the
/// calling thread.
pub(crate) fn pkey_alloc() -> Result<u32, i32> {
    // SAFETY: pkey_alloc takes two integers and touches no memory of ours.
    let r = unsafe { libc::syscall(libc::SYS_pkey_alloc, 0usize, 0usize) };
    if r < 0 {
        Err(io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r as u32)
    }
}

/// Probes whether protection keys can be used, without keeping a key.
pub(crate) fn probe_pkeys() -> PkeySupport {
    let (pku, ospke) = cpu_pkeys();
    if !pku {
        return PkeySupport::NoCpu;
    }
    if !ospke {
        return PkeySupport::NoOs;
    }
    if super::inherited_guard() {
        return PkeySupport::Guarded;
    }
    match pkey_alloc() {
        Ok(k) => {
            // SAFETY: frees the key just allocated; no memory carries it.
            unsafe { libc::syscall(libc::SYS_pkey_free, k as usize) };
            PkeySupport::Available
        }
        Err(e) => PkeySupport::KernelRefused(e),
    }
}

/// `pkey_mprotect(addr, len, prot, key)`: sets protection and tags the pages.
///
/// # Safety
/// `addr..addr+len` must be whole pages that the caller owns; changing their
/// protection must not break any other user of them.
pub(crate) unsafe fn pkey_mprotect(
    addr: *mut c_void,
    len: usize,
    prot: c_int,
    key: u32,
) -> io::Result<()> {
    // SAFETY: the caller owns the pages (contract above).
    let r = unsafe { libc::syscall(libc::SYS_pkey_mprotect, addr, len, prot, key as usize) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `mprotect(addr, len, prot)`.
///
/// # Safety
/// As for [`pkey_mprotect`].
pub(crate) unsafe fn mprotect(addr: *mut c_void, len: usize, prot: c_int) -> io::Result<()> {
    // SAFETY: the caller owns the pages (contract above).
    let r = unsafe { libc::mprotect(addr, len, prot) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `mmap(NULL, len, prot, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0)`.
pub(crate) fn map_anon(len: usize, prot: c_int) -> io::Result<*mut u8> {
    crate::sys::map_anon_hint(0, len, prot)
}

/// `munmap(addr, len)`.
///
/// # Safety
/// The range must be a mapping (or part of one) that nothing uses any more.
pub(crate) unsafe fn unmap(addr: *mut u8, len: usize) {
    // SAFETY: contract above. A failure (EINVAL) would mean a bug in the
    // caller's bookkeeping; there is nothing better to do than leak.
    unsafe { libc::munmap(addr.cast(), len) };
}

/// Maps `len` bytes aligned to `align` (a power of two, at least a page) by
/// over-reserving and trimming. Returns the aligned start.
pub(crate) fn map_aligned(len: usize, align: usize, prot: c_int) -> io::Result<*mut u8> {
    let total = len
        .checked_add(align)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
    let raw = map_anon(total, prot)?;
    let start = (raw as usize + align - 1) & !(align - 1);
    let head = start - raw as usize;
    let tail = total - head - len;
    // SAFETY: both trimmed pieces are parts of the mapping just made and
    // nothing refers to them.
    unsafe {
        if head > 0 {
            unmap(raw, head);
        }
        if tail > 0 {
            unmap((start + len) as *mut u8, tail);
        }
    }
    Ok(start as *mut u8)
}

/// The system page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

extern "C" {
    /// glibc's own `sigaction`, under the public alias that Cofferdam's
    /// interposed `sigaction` does not shadow.
    fn __sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int;
}

/// The kernel's `sigaction`, bypassing Cofferdam's interposition.
///
/// # Safety
/// As for `sigaction(2)`: `act`, if not null, must describe a valid handler.
pub(crate) unsafe fn real_sigaction(
    sig: c_int,
    act: *const libc::sigaction,
    old: *mut libc::sigaction,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { __sigaction(sig, act, old) }
}

/// Writes `msg` to standard error with `write(2)`: usable in a signal handler.
pub(crate) fn write_stderr(msg: &[u8]) {
    // SAFETY: writes from a valid slice; a short or failed write is ignored.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

/// Reads an environment variable without allocating (`getenv`).
pub(crate) fn getenv_bytes(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    // SAFETY: getenv returns null or a NUL-terminated string owned by the
    // environment, which Cofferdam never modifies.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        None
    } else {
        // SAFETY: p is a valid C string (above).
        Some(unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes())
    }
}

/// The calling thread's id.
pub(crate) fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Registers `[lo, lo + size)` as this thread's alternate signal stack,
/// auto-disarming (see `gate/thread.rs`). Used by a handler running on the
/// stack's upper part to let nested frames land below its own.
pub(crate) fn set_alt_stack(lo: usize, size: usize) {
    let ss = libc::stack_t {
        ss_sp: lo as *mut c_void,
        ss_flags: 1 << 31, // SS_AUTODISARM
        ss_size: size,
    };
    // SAFETY: the caller owns the range as this thread's alternate stack;
    // with SS_AUTODISARM the kernel disarmed it when the running handler
    // was entered, so the call is allowed while running on it.
    unsafe { real_sigaltstack(&ss, core::ptr::null_mut()) };
}

/// The `sigaltstack` system call itself: the executable's `sigaltstack`
/// symbol is Cofferdam's (`gate/thread.rs`).
///
/// # Safety
/// As for `sigaltstack(2)`.
pub(crate) unsafe fn real_sigaltstack(ss: *const libc::stack_t, old: *mut libc::stack_t) -> i32 {
    // With the syscall guard's token where the guard is on (it traps a
    // sigaltstack that sets a stack, and a re-issue from its trap handler
    // would be undone by that handler's own rt_sigreturn). Trusted code
    // only: the token lives in P-tagged memory.
    let tok = if ss.is_null() {
        core::ptr::null()
    } else {
        crate::guard::sigreturn_token()
    };
    // SAFETY: forwarded contract; `tok` is null or the token.
    let r =
        unsafe { trusted_syscall(libc::SYS_sigaltstack, [ss as u64, old as u64, 0, 0, 0], tok) };
    if r < 0 {
        -1
    } else {
        0
    }
}

/// System call `nr` made by trusted code with the syscall guard's token in
/// the sixth argument register when `token` is not null (so the guard's
/// filter lets it through without a trap), plainly otherwise. Returns the
/// kernel's result (negative errno on error).
///
/// # Safety
/// As for the system call; `token` is null or points to the guard's token
/// (readable: the caller holds P's rights).
pub(crate) unsafe fn trusted_syscall(nr: i64, a: [u64; 5], token: *const u64) -> i64 {
    if token.is_null() {
        // SAFETY: forwarded contract.
        let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4]) };
        return if r == -1 {
            -(io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL) as i64)
        } else {
            r
        };
    }
    // SAFETY: forwarded contract.
    unsafe { crate::gate::syscall::syscall_with_token(nr, a, token) }
}

/// Disables this thread's alternate signal stack (as `SS_AUTODISARM` does
/// while a handler runs).
pub(crate) fn disable_alt_stack() {
    let ss = libc::stack_t {
        ss_sp: core::ptr::null_mut(),
        ss_flags: libc::SS_DISABLE,
        ss_size: 0,
    };
    // SAFETY: no memory is handed over; the caller is not running on the
    // stack being disabled (it runs above the part it re-armed).
    unsafe { real_sigaltstack(&ss, core::ptr::null_mut()) };
}

/// Ends the calling thread (`exit`, not `exit_group`): no destructors, no
/// unwinding.
pub(crate) fn exit_thread() -> ! {
    loop {
        // SAFETY: SYS_exit ends only this thread and does not return.
        unsafe { libc::syscall(libc::SYS_exit, 0) };
    }
}

/// `tgkill(pid, tid, sig)`.
pub(crate) fn tgkill(pid: i32, tid: i32, sig: i32) {
    // SAFETY: no memory arguments.
    unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, sig) };
}

/// The process id.
pub(crate) fn getpid() -> i32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

/// Whether the running kernel is at least `major.minor` (from `uname`).
pub(crate) fn kernel_at_least(major: u32, minor: u32) -> bool {
    // SAFETY: a zeroed utsname is a valid out-parameter for uname.
    let mut u: libc::utsname = unsafe { core::mem::zeroed() };
    // SAFETY: u is writable.
    if unsafe { libc::uname(&mut u) } != 0 {
        return false;
    }
    // "6.18.44-…": the first two numbers. No allocation: this runs inside
    // the allocator's first call.
    let mut nums = [0u32; 2];
    let mut i = 0;
    let mut seen = false;
    for &c in u.release.iter() {
        let c = c as u8;
        if c.is_ascii_digit() {
            nums[i] = nums[i]
                .saturating_mul(10)
                .saturating_add(u32::from(c - b'0'));
            seen = true;
        } else if c == b'.' && seen && i == 0 {
            i = 1;
            seen = false;
        } else {
            break;
        }
    }
    seen && i == 1 && (nums[0], nums[1]) >= (major, minor)
}

/// Whether user space may run RDFSBASE/WRFSBASE (`HWCAP2_FSGSBASE`).
pub(crate) fn has_fsgsbase() -> bool {
    // SAFETY: getauxval has no preconditions.
    unsafe { libc::getauxval(libc::AT_HWCAP2) & 2 != 0 }
}

/// Reads a small /proc file into a fixed buffer, without allocating.
fn read_proc(path: &core::ffi::CStr, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: path is NUL-terminated; the fd is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut n = 0;
    while n < buf.len() {
        // SAFETY: reads into the unfilled part of buf.
        let r = unsafe { libc::read(fd, buf[n..].as_mut_ptr().cast(), buf.len() - n) };
        if r <= 0 {
            break;
        }
        n += r as usize;
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    Some(n)
}

fn parse_hex(s: &[u8]) -> Option<usize> {
    let mut v: usize = 0;
    if s.is_empty() {
        return None;
    }
    for &c in s {
        let d = (c as char).to_digit(16)? as usize;
        v = v.checked_mul(16)?.checked_add(d)?;
    }
    Some(v)
}

/// The mapping (from /proc/self/maps) that contains `addr`: `(start, end)`.
pub(crate) fn mapping_containing(addr: usize) -> Option<(usize, usize)> {
    // The stack is the last mappings but one or two; /proc/self/maps of a
    // large process can be long, so read it in chunks and parse line by line.
    // SAFETY: path is NUL-terminated; the fd is closed below.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 8192];
    let mut have = 0usize;
    let mut found = None;
    loop {
        // SAFETY: reads into the unfilled part of buf.
        let r = unsafe { libc::read(fd, buf[have..].as_mut_ptr().cast(), buf.len() - have) };
        if r <= 0 {
            break;
        }
        have += r as usize;
        let mut start = 0;
        while let Some(nl) = buf[start..have].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + nl];
            start += nl + 1;
            let range = line.split(|&b| b == b' ').next().unwrap_or(&[]);
            let mut it = range.split(|&b| b == b'-');
            if let (Some(a), Some(b)) = (it.next(), it.next()) {
                if let (Some(a), Some(b)) = (parse_hex(a), parse_hex(b)) {
                    if a <= addr && addr < b {
                        found = Some((a, b));
                    }
                }
            }
        }
        buf.copy_within(start..have, 0);
        have -= start;
        if found.is_some() || have == buf.len() {
            break;
        }
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    found
}

/// Where the kernel put the initial stack pointer (argc): field 28 of
/// /proc/self/stat.
pub(crate) fn start_stack() -> Option<usize> {
    let mut buf = [0u8; 2048];
    let n = read_proc(c"/proc/self/stat", &mut buf)?;
    let s = &buf[..n];
    // Fields after the command name, which is in parentheses and may hold
    // spaces: the remainder starts with field 3.
    let close = s.iter().rposition(|&b| b == b')')?;
    let rest = &s[close + 1..];
    let field = rest
        .split(|&b| b == b' ')
        .filter(|f| !f.is_empty())
        .nth(28 - 3)?;
    core::str::from_utf8(field).ok()?.parse().ok()
}

/// The calling (non-main) thread's stack as glibc records it: `(lo, hi)`,
/// guard page excluded, TLS and thread control block included at the top.
pub(crate) fn pthread_stack() -> Option<(usize, usize)> {
    // SAFETY: attr is initialised by pthread_getattr_np and destroyed below;
    // the out-parameters are valid.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut c_void = core::ptr::null_mut();
        let mut size: usize = 0;
        let r = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        (r == 0 && !addr.is_null()).then(|| (addr as usize, addr as usize + size))
    }
}

/// How far below a thread's FS base its stack may reach up to: glibc puts
/// the thread control block (`struct pthread`) at the FS base and the static
/// TLS block below it, and starts the stack below both, at
/// `fs + sizeof(struct pthread) - roundup(static TLS size, its alignment)`.
/// The sizes come from `_dl_get_tls_static_info` (exported by ld.so for
/// sanitizers) and `_thread_db_sizeof_pthread` (exported by libc for
/// libthread_db); without the latter the TCB is assumed to be 0 bytes, which
/// errs low.
pub(crate) fn stack_top_below_tls(fs: usize) -> Option<usize> {
    type Info = unsafe extern "C" fn(*mut usize, *mut usize);
    // SAFETY: dlsym with NUL-terminated names; the symbols, if found, have
    // these types in every glibc that exports them.
    unsafe {
        let f = libc::dlsym(libc::RTLD_DEFAULT, c"_dl_get_tls_static_info".as_ptr());
        if f.is_null() {
            return None;
        }
        let f: Info = core::mem::transmute(f);
        let (mut size, mut align) = (0usize, 0usize);
        f(&mut size, &mut align);
        if size == 0 {
            return None;
        }
        let align = align.max(1);
        let rounded = size.div_ceil(align) * align;
        let tcb = libc::dlsym(libc::RTLD_DEFAULT, c"_thread_db_sizeof_pthread".as_ptr());
        let tcb = if tcb.is_null() {
            0
        } else {
            (tcb as *const u32).read() as usize
        };
        (fs + tcb).checked_sub(rounded)
    }
}

/// `sigaction` as the kernel's `rt_sigaction` sees it.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Adds `SA_ONSTACK` to the handler of `sig` if it has one, with raw
/// `rt_sigaction` (for glibc's internal signals, whose handlers glibc
/// installs without going through `sigaction`).
pub(crate) fn add_onstack(sig: c_int) {
    let mut k = KernelSigaction {
        handler: 0,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: query into a correctly sized kernel struct.
    let r = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            core::ptr::null::<KernelSigaction>(),
            &mut k,
            8usize,
        )
    };
    if r != 0 || k.handler == libc::SIG_DFL || k.handler == libc::SIG_IGN {
        return;
    }
    k.flags |= libc::SA_ONSTACK as u64;
    // SAFETY: re-installs the very handler the kernel reported, one flag
    // added.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            &k,
            core::ptr::null_mut::<KernelSigaction>(),
            8usize,
        )
    };
}

/// The executable's `PT_TLS` program header: `(p_vaddr, p_memsz, p_align)`
/// at link time, from the program headers the kernel reported (`AT_PHDR`).
pub(crate) fn exe_tls_segment() -> Option<(usize, usize, usize)> {
    // SAFETY: getauxval has no preconditions.
    let (phdr, phnum) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR) as usize,
            libc::getauxval(libc::AT_PHNUM) as usize,
        )
    };
    if phdr == 0 {
        return None;
    }
    (0..phnum).find_map(|i| {
        // SAFETY: the kernel mapped `phnum` program headers of the
        // executable at `phdr` (AT_PHDR); they stay mapped read-only.
        let ph = unsafe { &*(phdr as *const libc::Elf64_Phdr).add(i) };
        (ph.p_type == libc::PT_TLS).then_some((
            ph.p_vaddr as usize,
            ph.p_memsz as usize,
            ph.p_align as usize,
        ))
    })
}

/// Replaces `[addr, addr + len)` with a fresh, unbacked anonymous mapping
/// of zero pages (`mmap` with `MAP_FIXED`, read-write, `MAP_NORESERVE`):
/// the pages' memory goes back to the OS, and the range stays reserved, so
/// nothing else is mapped where stale pointers may still point; what they
/// read is zeros, what they write lands in fresh pages nobody else uses.
///
/// # Safety
/// The range is page-aligned, belongs to the caller, and nothing uses its
/// contents any more. Trusted code only (it reads the guard's token).
pub(crate) unsafe fn release_keep_reserved(addr: usize, len: usize) -> io::Result<()> {
    let prot = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    let flags =
        (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED) as u64;
    let a = [addr as u64, len as u64, prot, flags, -1i64 as u64, 0];
    // With the syscall guard's token where the guard is on: the filter
    // traps a MAP_FIXED mapping, and the trap is answered with rights only
    // on a thread whose alternate stack is armed; the caller may be any
    // thread that drops the last reference to a heap.
    let tok = crate::guard::sigreturn_token();
    let r = if tok.is_null() {
        // SAFETY: contract above; MAP_FIXED replaces only the caller's range.
        let p = unsafe {
            libc::mmap(
                addr as *mut c_void,
                len,
                prot as c_int,
                flags as c_int,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        0
    } else {
        // SAFETY: as above; prot and flags fit in 32 bits; `tok` is the
        // token (trusted caller: rights held).
        unsafe { crate::gate::syscall::mmap_with_token(a, tok) }
    };
    if r < 0 && r > -4096 {
        Err(io::Error::from_raw_os_error(-r as i32))
    } else {
        Ok(())
    }
}

/// `mprotect(addr, len, prot)` by trusted code, with the syscall guard's
/// token where the guard is on (see [`release_keep_reserved`]).
///
/// # Safety
/// As for [`mprotect`]; trusted code only.
pub(crate) unsafe fn trusted_mprotect(addr: usize, len: usize, prot: c_int) -> io::Result<()> {
    let tok = crate::guard::sigreturn_token();
    // SAFETY: forwarded contract; `tok` is null or the token.
    let r = unsafe {
        trusted_syscall(
            libc::SYS_mprotect,
            [addr as u64, len as u64, prot as u64, 0, 0],
            tok,
        )
    };
    if r < 0 {
        Err(io::Error::from_raw_os_error(-r as i32))
    } else {
        Ok(())
    }
}

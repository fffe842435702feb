//! The helper process's side: recognised before `main` by a constructor in
//! `.init_array`, it maps the control page and the foreign arena, confines
//! itself, and serves calls until its parent goes away. It never returns to
//! the program's `main`.

use core::ffi::{c_char, c_int, c_void, CStr};
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Mutex;

use super::chan::{self, Slot, CONTROL_LEN, MAGIC, NSLOTS};
use crate::gate::GateFrame;
use crate::sys::{self, SockFilter};

/// The environment variable that makes this executable a helper.
pub(crate) const ENV: &str = "COFFERDAM_PROCESS_HELPER";
const ENV_EQ: &[u8] = b"COFFERDAM_PROCESS_HELPER=1";
/// Descriptors the parent hands over.
const FD_CONTROL: c_int = 3;
const FD_LIFELINE: c_int = 4;
const FD_ARENA: c_int = 5;

type InitFn = extern "C" fn(c_int, *const *const c_char, *const *const c_char);

/// Runs before `main` in every program linked with Cofferdam; does nothing
/// unless the environment marks this process as a helper.
#[used]
#[link_section = ".init_array"]
static HELPER_HOOK: InitFn = helper_hook;

extern "C" fn helper_hook(_argc: c_int, _argv: *const *const c_char, envp: *const *const c_char) {
    if envp.is_null() {
        return;
    }
    let mut i = 0;
    let mut found = false;
    loop {
        // SAFETY: envp is the NULL-terminated environment the loader passes
        // to initialisers; each entry is a C string.
        let e = unsafe { *envp.add(i) };
        if e.is_null() {
            break;
        }
        // SAFETY: as above.
        if unsafe { CStr::from_ptr(e) }.to_bytes() == ENV_EQ {
            found = true;
            break;
        }
        i += 1;
    }
    if !found {
        return;
    }
    let code = serve();
    // SAFETY: ends this process; nothing of the program's main runs.
    unsafe { libc::_exit(code) }
}

/// Writes a start-up failure into the header (when mapped) and stderr.
fn fail(control: usize, msg: &str) -> c_int {
    sys::write_stderr(b"cofferdam helper: ");
    sys::write_stderr(msg.as_bytes());
    sys::write_stderr(b"\n");
    if control != 0 {
        // SAFETY: `control` is the live control mapping.
        let h = unsafe { &mut *(control as *mut chan::Header) };
        let n = msg.len().min(h.message.len() - 1);
        h.message[..n].copy_from_slice(&msg.as_bytes()[..n]);
        h.ready.store(2, Ordering::Release);
        sys::futex_wake(&h.ready, 1);
    }
    1
}

fn serve() -> c_int {
    if sys::sealed_size(FD_CONTROL) != Some(CONTROL_LEN) {
        return fail(0, "fd 3 is not a control memfd from a Cofferdam parent");
    }
    let control = match sys::map_shared(0, CONTROL_LEN, FD_CONTROL, false) {
        Ok(p) => p as usize,
        Err(e) => return fail(0, &format!("mapping the control page: {e}")),
    };
    // SAFETY: the mapping is live for the rest of this process.
    let hd = unsafe { chan::header(control) };
    if hd.magic != MAGIC {
        return fail(control, "bad control page");
    }
    let (addr, len) = (hd.arena_addr as usize, hd.arena_len as usize);
    if sys::sealed_size(FD_ARENA) != Some(len) {
        return fail(control, "fd 5 is not the foreign arena");
    }
    if let Err(e) = sys::map_shared(addr, len, FD_ARENA, true) {
        return fail(
            control,
            &format!("mapping the foreign arena at {addr:#x}: {e}"),
        );
    }
    // SAFETY: closing descriptors this process no longer needs (the
    // mappings stay).
    unsafe {
        libc::close(FD_CONTROL);
        libc::close(FD_ARENA);
    }
    let _ = sys::set_rlimit(libc::RLIMIT_CORE as c_int, 0);
    if hd.memory_limit != 0 {
        if let Err(e) = sys::set_rlimit(libc::RLIMIT_DATA as c_int, hd.memory_limit) {
            return fail(control, &format!("setting the memory limit: {e}"));
        }
    }
    // Nothing may ptrace or read this process either (and no core dumps).
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0);
    // No capabilities: a helper of a program run as root would otherwise
    // keep CAP_SYS_PTRACE and could open the parent's /proc/<pid>/mem,
    // non-dumpable or not. Before any thread starts (capset acts on the
    // calling thread; threads inherit its sets).
    if let Err(e) = sys::drop_capabilities() {
        return fail(control, &format!("dropping capabilities: {e}"));
    }
    install_handlers();
    // The lifeline: when the parent dies, the pipe's write end closes.
    let watch = std::thread::Builder::new()
        .name("cofferdam-lifeline".into())
        .stack_size(64 << 10)
        .spawn(|| loop {
            let mut b = [0u8; 1];
            // SAFETY: reads into a valid one-byte buffer.
            let r = unsafe { libc::read(FD_LIFELINE, b.as_mut_ptr().cast(), 1) };
            if r == 0
                || (r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
            {
                // SAFETY: ends the helper; the parent is gone.
                unsafe { libc::_exit(0) };
            }
        });
    if let Err(e) = watch {
        return fail(control, &format!("starting the lifeline thread: {e}"));
    }
    if let Err(e) = sys::install_seccomp_filter(&filter(sys::getpid() as u32), false) {
        return fail(control, &format!("installing the seccomp filter: {e}"));
    }
    let stack = hd.thread_stack as usize;
    let spin = hd.spin;
    CONTROL.store(control, Ordering::Release);
    SPIN.store(spin, Ordering::Relaxed);
    hd.ready.store(1, Ordering::Release);
    sys::futex_wake(&hd.ready, 1);
    let mut started = 0usize;
    loop {
        let wanted = hd.threads_wanted.load(Ordering::Acquire);
        while started < (wanted as usize).min(NSLOTS) {
            let i = started;
            let r = std::thread::Builder::new()
                .stack_size(stack)
                .spawn(move || slot_loop(control, i, spin));
            if r.is_err() {
                // No thread for this slot: the parent's call times out or
                // waits; without memory there is nothing better to do.
                sys::write_stderr(b"cofferdam helper: cannot start a thread\n");
            }
            started += 1;
        }
        sys::futex_wait(&hd.threads_wanted, wanted, None);
    }
}

thread_local! {
    /// The slot this helper thread serves (for the fault handler and the
    /// callback stubs); 0 on threads of the library's own.
    static CURRENT: Cell<usize> = const { Cell::new(0) };
    /// The number of the parent's latest message on this thread's slot:
    /// every answer carries it (the conversation alternates, `chan.rs`).
    static SEEN: Cell<u32> = const { Cell::new(0) };
}

/// The control mapping and the spin count, for the callback stubs.
static CONTROL: AtomicUsize = AtomicUsize::new(0);
static SPIN: AtomicU32 = AtomicU32::new(0);

/// Object index -> load bias, in this helper.
static OBJECTS: Mutex<Option<HashMap<u32, usize>>> = Mutex::new(None);

fn bias_of(s: &Slot) -> Result<usize, String> {
    let mut g = OBJECTS.lock().unwrap_or_else(|e| e.into_inner());
    let m = g.get_or_insert_with(HashMap::new);
    if let Some(&b) = m.get(&s.obj) {
        return Ok(b);
    }
    let b = if s.obj == 0 {
        sys::main_bias()
    } else {
        let n = (s.path_len as usize).min(chan::PATH_MAX);
        if n == 0 {
            return Err(format!("object {} was never named", s.obj));
        }
        let path = std::ffi::CString::new(&s.path[..n]).map_err(|_| "NUL in path".to_string())?;
        let h = sys::dlopen(&path)?;
        sys::handle_bias(h).ok_or("no link map")?
    };
    m.insert(s.obj, b);
    Ok(b)
}

fn slot_loop(control: usize, i: usize, spin: u32) {
    let sp = chan::slot(control, i);
    CURRENT.with(|c| c.set(sp as usize));
    alt_stack();
    // A fresh control page starts at message 0; the parent may have posted
    // message 1 before this thread started. A reused slot starts where its
    // last thread in the parent left it, and so does this thread's count
    // (this helper thread outlives the parent thread that used it).
    loop {
        // A callback's answer out of turn would be a parent bug: dropped.
        let _ = serve_slot(sp, spin);
    }
}

/// Serves the parent's messages on slot `sp`: runs each call (which may
/// call callback stubs, and so come back here nested) and answers it, until
/// the parent answers a callback (`MSG_CB_RET`): returns that answer (rax,
/// xmm0).
fn serve_slot(sp: *mut Slot, spin: u32) -> [u64; 2] {
    // errno is the library's, as on mpk: what its last call (or the code a
    // callback interrupted) left, whatever the helper's own waiting and
    // answering did to it in between.
    let mut lib_errno = sys::errno();
    loop {
        wait_request(sp, spin);
        // SAFETY: `sp` is this thread's slot in the live control mapping;
        // the parent wrote the message before publishing it on `req`.
        let kind = unsafe { core::ptr::read_volatile(&raw const (*sp).req_kind) };
        if kind == chan::MSG_CB_RET {
            sys::set_errno(lib_errno);
            // SAFETY: as above.
            return unsafe { core::ptr::read_volatile(&raw const (*sp).cb_ret) };
        }
        sys::set_errno(lib_errno);
        run_call(sp);
        lib_errno = sys::errno();
        answer(sp, chan::MSG_RET);
    }
}

/// Waits for a new message from the parent on slot `sp`: a short spin,
/// then a futex.
fn wait_request(sp: *mut Slot, spin: u32) {
    // SAFETY: `sp` is this thread's slot in the live control mapping; only
    // its atomics are touched through this reference.
    let s = unsafe { &*sp };
    let seen = SEEN.with(|c| c.get());
    let mut spins = 0;
    while s.req.load(Ordering::Acquire) == seen {
        if spins < spin {
            spins += 1;
            core::hint::spin_loop();
            continue;
        }
        s.child_sleeping.store(1, Ordering::SeqCst);
        if s.req.load(Ordering::SeqCst) == seen {
            sys::futex_wait(&s.req, seen, None);
        }
        s.child_sleeping.store(0, Ordering::Relaxed);
    }
    SEEN.with(|c| c.set(s.req.load(Ordering::Acquire)));
}

/// Answers the parent's latest message with a message of `kind`.
fn answer(sp: *mut Slot, kind: u32) {
    // SAFETY: `sp` is this thread's slot in the live control mapping.
    unsafe { core::ptr::write_volatile(&raw mut (*sp).resp_kind, kind) };
    // SAFETY: as above; atomics only from here.
    let s = unsafe { &*sp };
    s.resp.store(SEEN.with(|c| c.get()), Ordering::SeqCst);
    if s.parent_sleeping.load(Ordering::SeqCst) != 0 {
        sys::futex_wake(&s.resp, 1);
    }
}

/// Runs the call the parent posted on slot `sp` and writes its result.
fn run_call(sp: *mut Slot) {
    let call = {
        // SAFETY: `sp` is this thread's slot; the parent filled it before
        // posting and does not write it until the answer. The reference
        // ends before foreign code runs (a callback from it reuses the slot).
        let s = unsafe { &*sp };
        bias_of(s).map(|bias| {
            let nstack = (s.nstack as usize).min(crate::gate::MAX_STACK_ARGS);
            let mut ints = s.ints;
            let mut stack = [0u64; crate::gate::MAX_STACK_ARGS];
            stack[..nstack].copy_from_slice(&s.stack[..nstack]);
            // The callbacks: this helper's stub in place of the parent's.
            for k in 0..(s.ncb as usize).min(chan::MAX_CALLBACKS) {
                let i = s.cb_slots[k] as usize;
                if i >= crate::callback::NSLOTS {
                    continue;
                }
                CB_ERROR[i][0].store(s.cb_error[k][0], Ordering::Relaxed);
                CB_ERROR[i][1].store(s.cb_error[k][1], Ordering::Relaxed);
                let mine = stub_address(i) as u64;
                for w in ints.iter_mut().chain(stack[..nstack].iter_mut()) {
                    if *w == s.cb_parent[k] {
                        *w = mine;
                    }
                }
            }
            let f = bias.wrapping_add(s.off as usize);
            let mut frame = GateFrame::new(f, ints, &stack[..nstack]);
            frame.set_sse(&s.sse[..(s.nsse as usize).min(8)]);
            frame
        })
    };
    match call {
        Ok(mut frame) => {
            // SAFETY: this is the helper: the parent asked for this call
            // with the function's own arguments; whatever the function
            // does stays in this process (a fault ends it, recorded by the
            // handler).
            unsafe { crate::gate::call_direct(&mut frame) };
            // SAFETY: the call and any nested ones are over: this thread is
            // the slot's only user on this side.
            let s = unsafe { &mut *sp };
            s.ret = [frame.ret[0], frame.ret[1], frame.fret[0], frame.fret[1]];
            s.status.store(chan::STATUS_OK, Ordering::Release);
        }
        Err(e) => {
            // SAFETY: as above.
            let s = unsafe { &mut *sp };
            let n = e.len().min(s.message.len() - 1);
            s.message[..n].copy_from_slice(&e.as_bytes()[..n]);
            s.message[n] = 0;
            s.status.store(chan::STATUS_UNRESOLVED, Ordering::Release);
        }
    }
}

// ---- callbacks ----
//
// The parent's `Callback` stubs are addresses in the parent; here each
// callback slot has a stub of its own (`stub::<I>`), put in place of the
// parent's in the call's argument words. A stub called on a slot thread
// asks the parent to run the callback (`MSG_CB_CALL`) and serves the
// parent's nested calls until its answer; the parent decides whether the
// call is allowed. A stub called on a thread of the library's own has no
// way to the parent: refused here, with the error value the parent sent.

/// What a stub returns: rax and xmm0 at once (System V classifies this
/// 16-byte struct as INTEGER then SSE), so that C reading either register
/// finds the callback's result.
#[repr(C)]
struct CbRet {
    rax: u64,
    xmm0: f64,
}

/// A stub's signature: the six integer and the eight SSE argument
/// registers, whatever the callback's own parameters (a callback has at
/// most six; registers C did not set hold garbage that the parent ignores
/// or rejects by type).
type Stub =
    extern "C" fn(u64, u64, u64, u64, u64, u64, f64, f64, f64, f64, f64, f64, f64, f64) -> CbRet;

/// Per callback slot: what a refused call returns (rax, xmm0).
static CB_ERROR: [[AtomicU64; 2]; crate::callback::NSLOTS] =
    [const { [AtomicU64::new(0), AtomicU64::new(0)] }; crate::callback::NSLOTS];

#[allow(
    clippy::too_many_arguments,
    reason = "one parameter per argument register"
)]
extern "C" fn stub<const I: usize>(
    a: u64,
    b: u64,
    c: u64,
    d: u64,
    e: u64,
    f: u64,
    x0: f64,
    x1: f64,
    x2: f64,
    x3: f64,
    x4: f64,
    x5: f64,
    x6: f64,
    x7: f64,
) -> CbRet {
    let sse = [x0, x1, x2, x3, x4, x5, x6, x7].map(f64::to_bits);
    let [rax, xmm0] = callback(I, [a, b, c, d, e, f], sse);
    CbRet {
        rax,
        xmm0: f64::from_bits(xmm0),
    }
}

macro_rules! sixteen {
    ($h:literal) => {
        [
            stub::<{ $h * 16 }>,
            stub::<{ $h * 16 + 1 }>,
            stub::<{ $h * 16 + 2 }>,
            stub::<{ $h * 16 + 3 }>,
            stub::<{ $h * 16 + 4 }>,
            stub::<{ $h * 16 + 5 }>,
            stub::<{ $h * 16 + 6 }>,
            stub::<{ $h * 16 + 7 }>,
            stub::<{ $h * 16 + 8 }>,
            stub::<{ $h * 16 + 9 }>,
            stub::<{ $h * 16 + 10 }>,
            stub::<{ $h * 16 + 11 }>,
            stub::<{ $h * 16 + 12 }>,
            stub::<{ $h * 16 + 13 }>,
            stub::<{ $h * 16 + 14 }>,
            stub::<{ $h * 16 + 15 }>,
        ]
    };
}

const _: () = assert!(crate::callback::NSLOTS == 256);
static STUBS: [[Stub; 16]; 16] = [
    sixteen!(0),
    sixteen!(1),
    sixteen!(2),
    sixteen!(3),
    sixteen!(4),
    sixteen!(5),
    sixteen!(6),
    sixteen!(7),
    sixteen!(8),
    sixteen!(9),
    sixteen!(10),
    sixteen!(11),
    sixteen!(12),
    sixteen!(13),
    sixteen!(14),
    sixteen!(15),
];

/// This helper's stub for callback slot `i` (< 256).
fn stub_address(i: usize) -> usize {
    STUBS[i / 16][i % 16] as usize
}

/// A call of callback slot `i`'s stub with these registers: (rax, xmm0).
fn callback(i: usize, gpr: [u64; 6], sse: [u64; 8]) -> [u64; 2] {
    let sp = CURRENT.with(|c| c.get()) as *mut Slot;
    if sp.is_null() {
        // A thread of the library's own: refused, and counted for the
        // parent.
        let control = CONTROL.load(Ordering::Acquire);
        if control != 0 {
            // SAFETY: CONTROL is the live control mapping once set.
            let hd = unsafe { chan::header(control) };
            hd.cb_refused[i].fetch_add(1, Ordering::Relaxed);
        }
        return [
            CB_ERROR[i][0].load(Ordering::Relaxed),
            CB_ERROR[i][1].load(Ordering::Relaxed),
        ];
    }
    // SAFETY: `sp` is this thread's slot; the parent reads these fields
    // only after the answer below publishes them.
    unsafe {
        core::ptr::write_volatile(&raw mut (*sp).cb_slot, i as u32);
        core::ptr::write_volatile(&raw mut (*sp).cb_gpr, gpr);
        core::ptr::write_volatile(&raw mut (*sp).cb_sse, sse);
    }
    answer(sp, chan::MSG_CB_CALL);
    serve_slot(sp, SPIN.load(Ordering::Relaxed))
}

/// An alternate signal stack for this thread (a stack overflow in foreign
/// code is still reported).
fn alt_stack() {
    const LEN: usize = 64 << 10;
    if let Ok(p) = sys::map_anon(LEN, libc::PROT_READ | libc::PROT_WRITE) {
        let ss = libc::stack_t {
            ss_sp: p.cast(),
            ss_flags: 0,
            ss_size: LEN,
        };
        // SAFETY: a valid stack description of a fresh mapping kept for the
        // thread's life.
        unsafe { libc::sigaltstack(&ss, core::ptr::null_mut()) };
    }
}

const FATAL: [c_int; 7] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGSYS,
    libc::SIGABRT,
    libc::SIGTRAP,
];

fn install_handlers() {
    for sig in FATAL {
        // SAFETY: a zeroed sigaction with our SA_SIGINFO handler is valid.
        unsafe {
            let mut act: libc::sigaction = core::mem::zeroed();
            act.sa_sigaction = on_fatal as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            sys::real_sigaction(sig, &act, core::ptr::null_mut());
        }
    }
}

/// Records the fault in the current slot, wakes the parent, and lets the
/// signal's default action end the process (re-raised, delivered when the
/// handler returns).
extern "C" fn on_fatal(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let s = CURRENT.with(|c| c.get()) as *mut Slot;
    if !s.is_null() {
        // SAFETY: `s` is this thread's live slot; `info` and `ctx` are what
        // the kernel passed an SA_SIGINFO handler. For SIGSYS the syscall
        // number sits at byte 24 of siginfo (`si_syscall`).
        unsafe {
            let uc = ctx as *const libc::ucontext_t;
            (*s).fault_signal = sig;
            (*s).fault_code = (*info).si_code;
            (*s).fault_ip = (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] as u64;
            if sig == libc::SIGSYS {
                let nr = *((info as *const u8).add(24) as *const c_int);
                (*s).fault_err = nr as u64;
                (*s).fault_addr.store(
                    (*uc).uc_mcontext.gregs[libc::REG_RDI as usize] as u64,
                    Ordering::Relaxed,
                );
            } else {
                (*s).fault_err = (*uc).uc_mcontext.gregs[libc::REG_ERR as usize] as u64;
                (*s).fault_addr
                    .store((*info).si_addr() as u64, Ordering::Relaxed);
            }
            (*s).status.store(chan::STATUS_FAULT, Ordering::SeqCst);
            sys::futex_wake(&(*s).resp, 1);
        }
    }
    // SAFETY: restores the default action and queues the signal again
    // (blocked while this handler runs): the process ends with it.
    unsafe {
        let mut dfl: libc::sigaction = core::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        sys::real_sigaction(sig, &dfl, core::ptr::null_mut());
        libc::syscall(libc::SYS_tgkill, sys::getpid(), sys::gettid(), sig);
    }
}

// Classic BPF for the helper's allowlist.
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JSET_K: u16 = 0x45;
const JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_TRAP: u32 = 0x0003_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// System calls foreign code may make in the helper. Everything else fails
/// with `EPERM`; a few that would reach out of the helper (to the parent or
/// another process) trap instead, so the call is reported as a fault of
/// kind `syscall`.
const ALLOWED: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_close,
    libc::SYS_stat,
    libc::SYS_fstat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_lseek,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_getdents64,
    libc::SYS_getcwd,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_fcntl,
    libc::SYS_flock,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_fadvise64,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_dup,
    libc::SYS_dup2,
    libc::SYS_dup3,
    libc::SYS_pipe2,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_mincore,
    libc::SYS_msync,
    libc::SYS_brk,
    libc::SYS_futex,
    libc::SYS_set_robust_list,
    libc::SYS_get_robust_list,
    libc::SYS_set_tid_address,
    libc::SYS_rseq,
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_gettimeofday,
    libc::SYS_time,
    libc::SYS_getrandom,
    libc::SYS_getrlimit,
    libc::SYS_prlimit64,
    libc::SYS_getrusage,
    libc::SYS_sysinfo,
    libc::SYS_uname,
    libc::SYS_umask,
    libc::SYS_prctl,
    libc::SYS_arch_prctl,
    libc::SYS_membarrier,
    libc::SYS_restart_syscall,
];

/// Reach out of the helper: trapped (reported), not just refused.
const TRAPPED: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_tkill,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_getfd,
    libc::SYS_pidfd_send_signal,
    libc::SYS_kcmp,
];

/// The helper's filter: x86_64 only; `kill` and `tgkill` only at itself;
/// the allowlist above; `EPERM` for the rest.
fn filter(pid: u32) -> Vec<SockFilter> {
    let mut p = vec![
        ins(LD_W_ABS, 0, 0, 4),
        ins(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        ins(RET_K, 0, 0, RET_TRAP),
        ins(LD_W_ABS, 0, 0, 0),
        ins(JGE_K, 0, 1, 0x4000_0000),
        ins(RET_K, 0, 0, RET_TRAP),
    ];
    // kill(pid, ..) and tgkill(pid, ..): only this process.
    for nr in [libc::SYS_kill, libc::SYS_tgkill] {
        p.push(ins(JEQ_K, 0, 4, nr as u32));
        p.push(ins(LD_W_ABS, 0, 0, 16)); // args[0], low half
        p.push(ins(JEQ_K, 1, 0, pid));
        p.push(ins(RET_K, 0, 0, RET_TRAP));
        p.push(ins(RET_K, 0, 0, RET_ALLOW));
    }
    for &nr in TRAPPED {
        p.push(ins(JEQ_K, 0, 1, nr as u32));
        p.push(ins(RET_K, 0, 0, RET_TRAP));
    }
    // clone: a process, a thread with a TLS of its own, or a vfork child; a
    // thread sharing the caller's TLS would pass the helper's thread check
    // as the caller (attack `clone-shared-tls`). clone3, whose flags BPF
    // cannot read: ENOSYS (glibc falls back to clone).
    const CLONE_VM: u32 = libc::CLONE_VM as u32;
    const SETTLS_OR_VFORK: u32 = (libc::CLONE_SETTLS | libc::CLONE_VFORK) as u32;
    p.push(ins(JEQ_K, 0, 5, libc::SYS_clone as u32));
    p.push(ins(LD_W_ABS, 0, 0, 16)); // args[0], low half
    p.push(ins(JSET_K, 0, 2, CLONE_VM));
    p.push(ins(JSET_K, 1, 0, SETTLS_OR_VFORK));
    p.push(ins(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32));
    p.push(ins(RET_K, 0, 0, RET_ALLOW));
    p.push(ins(JEQ_K, 0, 1, libc::SYS_clone3 as u32));
    p.push(ins(RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32));
    let n = ALLOWED.len();
    for (i, &nr) in ALLOWED.iter().enumerate() {
        // Jump to the ALLOW after the list and the EPERM.
        p.push(ins(JEQ_K, (n - i) as u8, 0, nr as u32));
    }
    p.push(ins(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32));
    p.push(ins(RET_K, 0, 0, RET_ALLOW));
    p
}

#[cfg(test)]
mod tests {
    #[test]
    fn filter_jumps_fit() {
        assert!(super::ALLOWED.len() < 255);
        let f = super::filter(42);
        assert!(f.len() < 4096);
    }
}

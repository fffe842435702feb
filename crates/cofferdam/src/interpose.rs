//! Handlers that foreign code registers to run later: refused.
//!
//! `atexit`, `__cxa_atexit`, `on_exit`, `pthread_atfork`/`__register_atfork`,
//! `pthread_key_create` with a destructor, and `__cxa_thread_atexit_impl`
//! (thread-exit callbacks, as C++ `thread_local` uses them) register a
//! function that glibc calls later, on whatever thread and with whatever
//! rights that thread then has: at exit, at fork or at thread exit, that is
//! Rust's rights. A handler registered by foreign code would run with P.
//!
//! Cofferdam defines these functions in the executable (as it does
//! `sigaction`, `fault/signals.rs`), so C code linked into the program calls
//! them instead of glibc's. Called by trusted code, they pass straight
//! through to glibc. Called by foreign code (inside a gate: PKRU denies P),
//! they refuse, with an error return and a line on standard error.
//!
//! Why refuse rather than run the handler without P: at exit the thread's
//! Rust stack is tagged and its gate state may already be gone, so running a
//! handler without rights means a full gate call at a time when the gate's
//! own per-thread state is being torn down; and a registration made from
//! inside a gate is rare (libraries register at load time, in constructors,
//! which run outside any gate). Refusal is deny-by-default and cannot be
//! turned into rights. The cost: a library that lazily registers such a
//! handler inside a call (a `pthread_key_create` with a destructor on first
//! use, as some libraries do) sees an error from it.
//!
//! The foreign path reads no static (Rust's statics carry P): only PKRU and
//! the read-only config page (`gate::foreign_running`).
//!
//! The linker exports these definitions from the executable (libc.so
//! defines the same names, so they must be able to override it): shared
//! libraries reach them too. Not covered: a compromised library can find
//! glibc's own `__cxa_atexit` itself (`dlvsym`) or write glibc's
//! exit-handler list, whose pointers are mangled with a guard it can read
//! from the TCB. Those are level-2 gaps, listed in the README.

use core::ffi::{c_int, c_void, CStr};
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::gate;
use crate::sys;

type Dtor = unsafe extern "C" fn(*mut c_void);
type Fork = Option<unsafe extern "C" fn()>;

/// glibc's definition of `name` (the next one after the executable), cached
/// in `slot`. Only trusted code gets here (it reads and writes a static):
/// every caller refuses foreign code first.
fn real(slot: &AtomicUsize, name: &CStr) -> usize {
    let f = slot.load(Ordering::Acquire);
    if f != 0 {
        return f;
    }
    // SAFETY: dlsym with a NUL-terminated name; RTLD_NEXT searches the
    // objects after the executable, i.e. glibc.
    let f = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) } as usize;
    if f == 0 {
        sys::write_stderr(b"cofferdam: glibc's handler registration function is missing\n");
        std::process::abort();
    }
    slot.store(f, Ordering::Release);
    f
}

/// Whether the caller is foreign code; if so, says so on standard error.
fn refuse(what: &[u8]) -> bool {
    // Only the mpk backend gives trusted code rights foreign code lacks:
    // elsewhere a handler gains nothing by running later.
    if crate::gate::config::get().deny_mask == 0 || !gate::foreign_running() {
        return false;
    }
    sys::write_stderr(b"cofferdam: refused ");
    sys::write_stderr(what);
    sys::write_stderr(b" from foreign code: the handler would run with Rust's rights\n");
    true
}

static CXA_ATEXIT: AtomicUsize = AtomicUsize::new(0);
static ON_EXIT: AtomicUsize = AtomicUsize::new(0);
static REGISTER_ATFORK: AtomicUsize = AtomicUsize::new(0);

extern "C" {
    /// glibc's `pthread_key_create`, under the alias Cofferdam does not
    /// shadow (exported since glibc 2.34, and as GLIBC_2.2.5 before).
    fn __pthread_key_create(key: *mut libc::pthread_key_t, dtor: Option<Dtor>) -> c_int;
}
static THREAD_ATEXIT: AtomicUsize = AtomicUsize::new(0);

/// Cofferdam's `__cxa_atexit` (see the module docs).
///
/// # Safety
/// As for glibc's `__cxa_atexit`.
#[no_mangle]
pub unsafe extern "C" fn __cxa_atexit(f: Dtor, arg: *mut c_void, dso: *mut c_void) -> c_int {
    if refuse(b"an exit handler (atexit/__cxa_atexit)") {
        return -1;
    }
    type F = unsafe extern "C" fn(Dtor, *mut c_void, *mut c_void) -> c_int;
    // SAFETY: glibc's __cxa_atexit has this type.
    let real: F = unsafe { core::mem::transmute(real(&CXA_ATEXIT, c"__cxa_atexit")) };
    // SAFETY: forwarded contract.
    unsafe { real(f, arg, dso) }
}

/// Cofferdam's `atexit`: glibc's is `__cxa_atexit(f, NULL, __dso_handle)`
/// (libc_nonshared); the executable is never unloaded, so a null handle is
/// the same.
///
/// # Safety
/// As for `atexit(3)`.
#[no_mangle]
pub unsafe extern "C" fn atexit(f: extern "C" fn()) -> c_int {
    // SAFETY: glibc calls a `__cxa_atexit` handler with its argument; a
    // function taking none ignores it (the System V ABI allows the call).
    unsafe {
        __cxa_atexit(
            core::mem::transmute::<extern "C" fn(), Dtor>(f),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        )
    }
}

/// Cofferdam's `on_exit`.
///
/// # Safety
/// As for `on_exit(3)`.
#[no_mangle]
pub unsafe extern "C" fn on_exit(
    f: unsafe extern "C" fn(c_int, *mut c_void),
    arg: *mut c_void,
) -> c_int {
    if refuse(b"an exit handler (on_exit)") {
        return -1;
    }
    type F = unsafe extern "C" fn(unsafe extern "C" fn(c_int, *mut c_void), *mut c_void) -> c_int;
    // SAFETY: glibc's on_exit has this type.
    let real: F = unsafe { core::mem::transmute(real(&ON_EXIT, c"on_exit")) };
    // SAFETY: forwarded contract.
    unsafe { real(f, arg) }
}

/// Cofferdam's `__register_atfork` (what glibc's `pthread_atfork` calls).
///
/// # Safety
/// As for glibc's `__register_atfork`.
#[no_mangle]
pub unsafe extern "C" fn __register_atfork(
    prepare: Fork,
    parent: Fork,
    child: Fork,
    dso: *mut c_void,
) -> c_int {
    if refuse(b"a fork handler (pthread_atfork)") {
        return libc::EPERM;
    }
    type F = unsafe extern "C" fn(Fork, Fork, Fork, *mut c_void) -> c_int;
    // SAFETY: glibc's __register_atfork has this type.
    let real: F = unsafe { core::mem::transmute(real(&REGISTER_ATFORK, c"__register_atfork")) };
    // SAFETY: forwarded contract.
    unsafe { real(prepare, parent, child, dso) }
}

/// Cofferdam's `pthread_atfork`.
///
/// # Safety
/// As for `pthread_atfork(3)`.
#[no_mangle]
pub unsafe extern "C" fn pthread_atfork(prepare: Fork, parent: Fork, child: Fork) -> c_int {
    // SAFETY: forwarded contract; see `atexit` for the null handle.
    unsafe { __register_atfork(prepare, parent, child, core::ptr::null_mut()) }
}

/// Cofferdam's `pthread_key_create`: foreign code may create keys, but not
/// with a destructor (it would run at thread exit with Rust's rights).
///
/// # Safety
/// As for `pthread_key_create(3)`.
#[no_mangle]
pub unsafe extern "C" fn pthread_key_create(
    key: *mut libc::pthread_key_t,
    dtor: Option<Dtor>,
) -> c_int {
    if dtor.is_some() && refuse(b"a thread-key destructor (pthread_key_create)") {
        return libc::EPERM;
    }
    // glibc's own alias, called directly: foreign code may get here (a key
    // without a destructor) and must not read a static (they carry P).
    // SAFETY: forwarded contract.
    unsafe { __pthread_key_create(key, dtor) }
}

/// Cofferdam's `__cxa_thread_atexit_impl` (thread-exit callbacks; the Rust
/// standard library registers its TLS destructors through it, as trusted
/// code).
///
/// # Safety
/// As for glibc's `__cxa_thread_atexit_impl`.
#[no_mangle]
pub unsafe extern "C" fn __cxa_thread_atexit_impl(
    f: Dtor,
    obj: *mut c_void,
    dso: *mut c_void,
) -> c_int {
    if refuse(b"a thread-exit callback (__cxa_thread_atexit_impl)") {
        return -1;
    }
    type F = unsafe extern "C" fn(Dtor, *mut c_void, *mut c_void) -> c_int;
    // SAFETY: glibc's __cxa_thread_atexit_impl has this type.
    let real: F =
        unsafe { core::mem::transmute(real(&THREAD_ATEXIT, c"__cxa_thread_atexit_impl")) };
    // SAFETY: forwarded contract.
    unsafe { real(f, obj, dso) }
}

/// Keeps the object with these definitions in every binary that links the
/// runtime (called at start-up).
pub(crate) fn keep() {
    let fs = [
        __cxa_atexit as *const () as usize,
        atexit as *const () as usize,
        on_exit as *const () as usize,
        __register_atfork as *const () as usize,
        pthread_atfork as *const () as usize,
        pthread_key_create as *const () as usize,
        __cxa_thread_atexit_impl as *const () as usize,
    ];
    core::hint::black_box(fs);
}

static EXIT: AtomicUsize = AtomicUsize::new(0);

/// Cofferdam's `exit`: from foreign code (on mpk) it goes straight to the
/// `exit_group` system call, which the syscall guard refuses: the gate call
/// ends with `Err(Fault)` of kind `exit` (the program, not the library,
/// decides when to exit), and the program's exit handlers do not run in
/// foreign code's context. From trusted code, glibc's `exit`.
///
/// # Safety
/// As for `exit(3)`.
#[no_mangle]
pub unsafe extern "C" fn exit(code: c_int) -> ! {
    if crate::gate::config::get().deny_mask != 0 && gate::foreign_running() {
        // SAFETY: exit_group has no memory arguments; under the guard it
        // ends this gate call and does not return here.
        unsafe { libc::syscall(libc::SYS_exit_group, code) };
        // Refused outside any gate call (a thread foreign code started):
        // that thread ends, the program does not.
        sys::exit_thread();
    }
    type F = unsafe extern "C" fn(c_int) -> !;
    // SAFETY: glibc's exit has this type.
    let real: F = unsafe { core::mem::transmute(real(&EXIT, c"exit")) };
    // SAFETY: forwarded contract.
    unsafe { real(code) }
}

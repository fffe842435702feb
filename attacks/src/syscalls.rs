//! Attacks of issue 10 (`c/syscalls.c`): the kernel as a deputy that remaps
//! or copies Rust memory for foreign code, a signal frame written on a stack
//! foreign code chose, a thread that shares the caller's TLS.
//!
//! Each runs the same C code in both modes; unprotected, the Rust memory is
//! ordinary memory of an ordinary program.

use core::sync::atomic::{AtomicU32, Ordering};

use cofferdam::{Error, ForeignBuf};

use super::{
    compartment, fn_addr, has_marker, printable, result_text, secret, step, summarise, Mode,
    Observation, SECRET_LEN,
};

pub mod ffi {
    //! The C attackers in `c/syscalls.c`.
    #![allow(missing_docs)]
    extern "C" {
        pub fn cd_remap_replace(target: *mut u8, len: usize, fill: i64) -> i64;
        pub fn cd_vm_read(remote: *const u8, out: *mut u8, n: usize) -> i64;
        pub fn cd_procmem_write(target: *mut u8, data: *const u8, n: usize) -> i64;
        pub fn cd_altstack_onto(target: *mut u8, len: usize) -> i64;
        pub fn cd_clone_call_cb(cb: *const (), a: *mut u8, b: *mut u8) -> i32;
        pub fn cd_clone_tls_call_cb(cb: *const (), a: *mut u8, b: *mut u8) -> i32;
        pub fn cd_pthread_roundtrip() -> i32;
        pub fn cd_call_cb_here(cb: *const (), a: *mut u8, b: *mut u8) -> i32;
        pub fn cd_syscall(nr: i64, args: *const i64) -> i64;
        pub fn cd_rseq_hijack(secret: *const u8, n: usize, start: u64, len: u64) -> i64;
    }
}

/// A page-aligned block of `pages` pages on the Rust heap, filled with the
/// secret pattern for `tag` (never freed: attacks may have changed its
/// mapping).
fn rust_pages(tag: &str, pages: usize) -> (*mut u8, Vec<u8>) {
    let len = pages * 4096;
    let layout = std::alloc::Layout::from_size_align(len, 4096).expect("layout");
    // SAFETY: non-zero layout.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!p.is_null());
    let s = secret(tag);
    let content: Vec<u8> = (0..len).map(|i| s[i % SECRET_LEN]).collect();
    // SAFETY: p holds len bytes we own.
    unsafe { core::ptr::copy_nonoverlapping(content.as_ptr(), p, len) };
    (p, content)
}

fn read_back(p: *const u8, len: usize) -> Vec<u8> {
    // SAFETY: volatile reads of memory the caller owns (len bytes at p).
    (0..len)
        .map(|i| unsafe { core::ptr::read_volatile(p.add(i)) })
        .collect()
}

fn fresh() -> cofferdam::Compartment {
    match compartment() {
        Ok(c) => c,
        Err(o) => panic!("{}", o.evidence),
    }
}

/// Issue 10, 1: the runtime's control pages (the thread table whose
/// `current` frame the gate returns through, the callback slots) moved away
/// with `mremap` and replaced with a page of foreign code's own. Unprotected
/// there is no such table: the same C replaces a page of a Rust object that
/// plays its part.
pub(crate) fn control_page_remap(mode: Mode) -> Observation {
    let c = fresh();
    let (target, len, what) = match (mode, cofferdam::control_pages()) {
        (Mode::Protected, Some((start, _))) => (
            start as *mut u8,
            4096usize,
            "the thread-state table's first page",
        ),
        _ => {
            let (p, _) = rust_pages("control-page-remap", 1);
            (p, 4096usize, "a Rust control object's page")
        }
    };
    let before = read_back(target, len);
    // SAFETY: cd_remap_replace(void*, size_t, long) -> long.
    let r: Result<i64, Error> = unsafe {
        c.call(
            "cd_remap_replace",
            fn_addr(ffi::cd_remap_replace as *const ()),
            (target, len, 0x41i64),
        )
    };
    let replaced = matches!(r, Ok(0));
    // The table page changes with every gate call (this thread's entry is
    // on it): intact means it was not replaced by C's page.
    let now = read_back(target, len);
    let intact = if mode == Mode::Protected {
        now.iter().any(|&b| b != 0x41)
    } else {
        now == before
    };
    // The program is alive if a gate call still works.
    // SAFETY: cd_noop(int) -> int.
    let after: Result<i32, Error> =
        unsafe { fresh().call("cd_noop", fn_addr(super::ffi::cd_noop as *const ()), (7,)) };
    let alive = matches!(after, Ok(8));
    summarise(
        vec![step(
            replaced,
            format!(
                "mremap({what}) away + mmap(MAP_FIXED) of foreign code's page there: {}; a gate call afterwards {}",
                result_text(&r),
                result_text(&after)
            ),
        )],
        intact && alive,
    )
}

/// Issue 10, 2: a page of a Rust local array (on the Rust stack) replaced
/// with foreign code's page through `mremap` + `MAP_FIXED`.
pub(crate) fn stack_page_remap(_mode: Mode) -> Observation {
    let c = fresh();
    // The stack is tagged at this thread's first gate call.
    // SAFETY: cd_noop(int) -> int.
    let _: Result<i32, Error> =
        unsafe { c.call("cd_noop", super::ffi::cd_noop as *const (), (1,)) };
    let mut words = [0u64; 1536];
    let s = secret("stack-page-remap");
    for (i, w) in words.iter_mut().enumerate() {
        *w = u64::from_le_bytes(
            s[(i * 8) % SECRET_LEN..(i * 8) % SECRET_LEN + 8]
                .try_into()
                .unwrap(),
        );
    }
    let expected = words;
    let base = words.as_mut_ptr() as usize;
    let page = (base + 4095) & !4095;
    // SAFETY: cd_remap_replace(void*, size_t, long) -> long; the page lies
    // inside `words` (1536 words span a whole page).
    let r: Result<i64, Error> = unsafe {
        c.call(
            "cd_remap_replace",
            fn_addr(ffi::cd_remap_replace as *const ()),
            (page as *mut u8, 4096usize, 0x42i64),
        )
    };
    let now: Vec<u64> = (0..words.len())
        // SAFETY: volatile reads of our own array.
        .map(|i| unsafe { core::ptr::read_volatile(words.as_ptr().add(i)) })
        .collect();
    let changed = now
        .iter()
        .zip(expected.iter())
        .filter(|(a, b)| a != b)
        .count();
    summarise(
        vec![step(
            changed > 0,
            format!(
                "mremap of a page of a Rust local array away + MAP_FIXED page of C's: {}; {changed} of {} words changed",
                result_text(&r),
                words.len()
            ),
        )],
        changed == 0,
    )
}

/// Issue 10, 3: `process_vm_readv(getpid())` copies a Rust secret for
/// foreign code (a remote access: the kernel does not check protection
/// keys).
pub(crate) fn process_vm_read(_mode: Mode) -> Observation {
    let c = fresh();
    let secret_box = Box::new(secret("process-vm-readv"));
    let out = ForeignBuf::zeroed(SECRET_LEN).expect("foreign buffer");
    // SAFETY: cd_vm_read(const void*, void*, size_t) -> long.
    let r: Result<i64, Error> = unsafe {
        c.call(
            "cd_vm_read",
            fn_addr(ffi::cd_vm_read as *const ()),
            (secret_box.as_ptr(), out.as_foreign_ptr(), SECRET_LEN),
        )
    };
    let got = out.to_vec();
    let leaked = has_marker(&got);
    let intact = *secret_box == secret("process-vm-readv");
    summarise(
        vec![step(
            leaked,
            format!(
                "process_vm_readv(getpid(), Rust secret): {}{}",
                result_text(&r),
                if leaked {
                    format!(", C read \"{}\"", printable(&got[..32]))
                } else {
                    String::new()
                }
            ),
        )],
        intact,
    )
}

/// Issue 10, 5: the alternate signal stack pointed at a Rust heap page,
/// then a signal to itself: the kernel writes the signal frame there.
pub(crate) fn sigaltstack_frame(_mode: Mode) -> Observation {
    let c = fresh();
    let (p, content) = rust_pages("sigaltstack-frame", 4);
    // SAFETY: cd_altstack_onto(void*, size_t) -> long.
    let r: Result<i64, Error> = unsafe {
        c.call(
            "cd_altstack_onto",
            fn_addr(ffi::cd_altstack_onto as *const ()),
            (p, 4 * 4096usize),
        )
    };
    let now = read_back(p, content.len());
    let changed = now
        .iter()
        .zip(content.iter())
        .filter(|(a, b)| a != b)
        .count();
    summarise(
        vec![step(
            changed > 0,
            format!(
                "sigaltstack(Rust heap pages) + raise(SIGUSR2): {}; {changed} Rust bytes overwritten by the signal frame",
                result_text(&r)
            ),
        )],
        changed == 0,
    )
}

static RAW_CLONE_RUNS: AtomicU32 = AtomicU32::new(0);

extern "C" fn raw_count_cb(_a: *mut u8, _b: *mut u8) -> i32 {
    RAW_CLONE_RUNS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Issue 10, 6: a raw `clone()` without `CLONE_SETTLS`: the new thread
/// shares the caller's FS base and calls an armed Rust callback.
pub(crate) fn clone_shared_tls(mode: Mode) -> Observation {
    let c = fresh();
    let g = ForeignBuf::from_slice(&[b'G'; 16]).expect("foreign buffer");
    let gp = g.as_foreign_ptr().as_raw();
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };
    let f = fn_addr(ffi::cd_clone_call_cb as *const ());
    let (r, runs, refusals) = match mode {
        Mode::Unprotected => {
            // SAFETY: cd_clone_call_cb(cb, a, b) -> int.
            let r: Result<i32, Error> =
                unsafe { c.call("cd_clone_call_cb", f, (raw_count_cb as *const (), gp, gp)) };
            (r, RAW_CLONE_RUNS.load(Ordering::SeqCst), 0)
        }
        Mode::Protected => {
            let ran = core::cell::Cell::new(0u32);
            let cb = cofferdam::Callback::<
                fn(cofferdam::ForeignPtr<u8>, cofferdam::ForeignPtr<u8>) -> i32,
            >::with_error(-1, |_, _| {
                ran.set(ran.get() + 1);
                // SAFETY: gettid has no preconditions.
                unsafe { libc::gettid() }
            })
            .expect("callback");
            // SAFETY: as above.
            let r: Result<i32, Error> = unsafe {
                c.call_with_callbacks("cd_clone_call_cb", f, (cb.stub(), gp, gp), &[&cb])
            };
            (r, ran.get(), cb.refusals())
        }
    };
    let other_thread = matches!(r, Ok(t) if t > 0 && t != me);
    summarise(
        vec![step(
            runs > 0,
            format!(
                "clone(CLONE_VM|CLONE_THREAD, no CLONE_SETTLS) calling a Rust callback: {}; the callback ran {runs} time(s){}, {refusals} refusal(s)",
                result_text(&r),
                if other_thread { " on another thread" } else { "" }
            ),
        )],
        true,
    )
}

static IMPOSTOR_RUNS: AtomicU32 = AtomicU32::new(0);
static IMPOSTOR_ELSEWHERE: AtomicU32 = AtomicU32::new(0);
static IMPOSTOR_CALLER: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(0);

extern "C" fn impostor_count_cb(_a: *mut u8, _b: *mut u8) -> i32 {
    IMPOSTOR_RUNS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: gettid has no preconditions.
    let t = unsafe { libc::gettid() };
    if t != IMPOSTOR_CALLER.load(Ordering::SeqCst) {
        IMPOSTOR_ELSEWHERE.fetch_add(1, Ordering::SeqCst);
    }
    t
}

/// A raw `clone(CLONE_SETTLS)` whose TLS is the caller's: the new thread
/// has the caller's FS base, so the gate's FS-base check takes it for the
/// caller. It calls an armed Rust callback while the caller waits in C. The
/// attack works when Rust code runs on a kernel thread other than the one
/// that made the gate call (it could as well run on the caller's Rust stack
/// at the same time as the caller, or return through its gate call).
pub(crate) fn clone_settls_impostor(mode: Mode) -> Observation {
    let c = fresh();
    let g = ForeignBuf::from_slice(&[b'G'; 16]).expect("foreign buffer");
    let gp = g.as_foreign_ptr().as_raw();
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };
    IMPOSTOR_CALLER.store(me, Ordering::SeqCst);
    let f = fn_addr(ffi::cd_clone_tls_call_cb as *const ());
    let (r, runs, elsewhere, refusals) = match mode {
        Mode::Unprotected => {
            // SAFETY: cd_clone_tls_call_cb(cb, a, b) -> int.
            let r: Result<i32, Error> = unsafe {
                c.call(
                    "cd_clone_tls_call_cb",
                    f,
                    (impostor_count_cb as *const (), gp, gp),
                )
            };
            (
                r,
                IMPOSTOR_RUNS.load(Ordering::SeqCst),
                IMPOSTOR_ELSEWHERE.load(Ordering::SeqCst),
                0,
            )
        }
        Mode::Protected => {
            let ran = core::cell::Cell::new(0u32);
            let elsewhere = core::cell::Cell::new(0u32);
            let cb = cofferdam::Callback::<
                fn(cofferdam::ForeignPtr<u8>, cofferdam::ForeignPtr<u8>) -> i32,
            >::with_error(-1, |_, _| {
                ran.set(ran.get() + 1);
                // SAFETY: gettid has no preconditions.
                let t = unsafe { libc::gettid() };
                if t != me {
                    elsewhere.set(elsewhere.get() + 1);
                }
                t
            })
            .expect("callback");
            // SAFETY: as above.
            let r: Result<i32, Error> = unsafe {
                c.call_with_callbacks("cd_clone_tls_call_cb", f, (cb.stub(), gp, gp), &[&cb])
            };
            (r, ran.get(), elsewhere.get(), cb.refusals())
        }
    };
    summarise(
        vec![step(
            elsewhere > 0,
            format!(
                "clone(CLONE_SETTLS with the caller's own TLS) calling a Rust callback: {}; the callback ran {runs} time(s), {elsewhere} of them on a thread other than the caller's; {refusals} refusal(s)",
                result_text(&r),
            ),
        )],
        true,
    )
}

/// Issue 10, 8: `/proc/self/mem` opened and written at a Rust secret's
/// address (the kernel's remote-access path ignores protection keys).
pub(crate) fn proc_self_mem(_mode: Mode) -> Observation {
    let c = fresh();
    let secret_box = Box::new(secret("proc-self-mem"));
    let data = ForeignBuf::from_slice(b"PWNED-BY-C").expect("foreign buffer");
    // SAFETY: cd_procmem_write(void*, const void*, size_t) -> long.
    let r: Result<i64, Error> = unsafe {
        c.call(
            "cd_procmem_write",
            fn_addr(ffi::cd_procmem_write as *const ()),
            (
                secret_box.as_ptr() as *mut u8,
                data.as_foreign_ptr(),
                10usize,
            ),
        )
    };
    let now = read_back(secret_box.as_ptr(), SECRET_LEN);
    let written = now.starts_with(b"PWNED");
    summarise(
        vec![step(
            written,
            format!(
                "open(/proc/self/mem) + pwrite at a Rust secret: {}; the secret now reads \"{}\"",
                result_text(&r),
                printable(&now[..24])
            ),
        )],
        !written && now == secret("proc-self-mem"),
    )
}

static ALARMS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_alarm(_: i32) {
    ALARMS.fetch_add(1, Ordering::SeqCst);
}

// Busy Rust code: the range C's forged critical section covers, exactly
// (its bounds are labels, so the range can never take in a neighbouring
// function, such as C's abort handler when the linker puts the attack's C
// object right after this one: the kernel would then refuse the descriptor).
core::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl cd_attack_rseq_spin",
    ".hidden cd_attack_rseq_spin",
    "cd_attack_rseq_spin:",
    "2:",
    "dec rdi",
    "jnz 2b",
    "ret",
    ".globl cd_attack_rseq_spin_end",
    ".hidden cd_attack_rseq_spin_end",
    "cd_attack_rseq_spin_end:",
);

extern "C" {
    fn cd_attack_rseq_spin(rounds: u64);
    static cd_attack_rseq_spin_end: u8;
}

fn rseq_spin(rounds: u64) {
    // SAFETY: the asm above counts rdi down to zero and returns; it touches
    // no memory and clobbers only rdi and the flags (caller-saved in the C ABI).
    unsafe { cd_attack_rseq_spin(rounds) }
}

/// Issue 10, 4: C writes a critical-section descriptor into glibc's rseq
/// area (untagged TLS) covering Rust code; when a signal (here a timer)
/// arrives while that code runs, after the gate call returned, the kernel
/// sends the thread to C's abort handler with Rust's rights. In the
/// unprotected run the handler prints the observation itself.
pub(crate) fn rseq_redirect(_mode: Mode) -> Observation {
    let c = fresh();
    let secret_box = Box::new(secret("rseq-redirect"));
    let start = cd_attack_rseq_spin as *const () as u64;
    // Only the label's address is taken (no unsafe needed): nothing is read.
    let len = core::ptr::addr_of!(cd_attack_rseq_spin_end) as u64 - start;
    // A timer signal every millisecond from 5 ms on: by then the thread
    // runs the Rust loop in the covered range (the first event outside the
    // range would make the kernel drop the descriptor).
    // SAFETY: installs a handler that only counts; setitimer with valid
    // structs; both undone below.
    unsafe {
        libc::signal(libc::SIGALRM, on_alarm as *const () as libc::sighandler_t);
        let t = libc::itimerval {
            it_interval: libc::timeval {
                tv_sec: 0,
                tv_usec: 1000,
            },
            it_value: libc::timeval {
                tv_sec: 0,
                tv_usec: 5000,
            },
        };
        libc::setitimer(libc::ITIMER_REAL, &t, core::ptr::null_mut());
    }
    // SAFETY: cd_rseq_hijack(const uint8_t*, size_t, uint64_t, uint64_t) -> long.
    let r: Result<i64, Error> = unsafe {
        c.call(
            "cd_rseq_hijack",
            fn_addr(ffi::cd_rseq_hijack as *const ()),
            (secret_box.as_ptr(), SECRET_LEN, start, len),
        )
    };
    // No calls, no syscalls: about half a second inside the range.
    rseq_spin(1_000_000_000);
    // SAFETY: disarms the timer and restores the default action.
    unsafe {
        let zero: libc::itimerval = core::mem::zeroed();
        libc::setitimer(libc::ITIMER_REAL, &zero, core::ptr::null_mut());
        libc::signal(libc::SIGALRM, libc::SIG_DFL);
    }
    // Still here: the abort handler never ran.
    let alarms = ALARMS.load(Ordering::SeqCst);
    summarise(
        vec![step(
            false,
            format!(
                "forged rseq critical section over Rust code: {}; {alarms} timer signals arrived while Rust code in the range ran, and the thread was never sent to C's abort handler",
                result_text(&r)
            ),
        )],
        *secret_box == secret("rseq-redirect"),
    )
}

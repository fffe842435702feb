//! The process backend: calls in a helper process, faults, death, timeouts,
//! memory limits, threads, renewal. Every compartment here is a process
//! compartment chosen with the builder, so the tests run whatever backend
//! is in force for the rest of the program.

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

use std::time::{Duration, Instant};

use core::cell::Cell;

use cofferdam::{
    Backend, CallRegs, Callback, Compartment, Error, FaultKind, ForeignBuf, ForeignPtr, ForeignVec,
};

fn process(name: &str) -> Compartment {
    Compartment::builder(name)
        .backend(Backend::Process)
        .build()
        .expect("process compartment")
}

/// The "library": plain C-ABI functions of this executable, resolved in the
/// helper by their offset in it.
extern "C" fn add3(a: i64, b: i64, c: i64) -> i64 {
    a + b + c
}

extern "C" fn my_pid() -> i32 {
    // SAFETY: getpid has no preconditions.
    unsafe { libc::getpid() }
}

static mut COUNTER: u64 = 0;

extern "C" fn bump() -> u64 {
    // SAFETY: a library-style static; the test calls it from one thread.
    unsafe {
        COUNTER += 1;
        COUNTER
    }
}

extern "C" fn spin_forever() -> i32 {
    loop {
        core::hint::spin_loop();
    }
}

/// Allocates 1 MiB blocks, touching each, until malloc fails; returns how
/// many it got (it never frees: a library that allocates without end).
extern "C" fn grab_all() -> u64 {
    let mut n = 0u64;
    loop {
        // SAFETY: malloc/memset on a block we just got.
        let p = unsafe { libc::malloc(1 << 20) };
        if p.is_null() || n > 100_000 {
            return n;
        }
        // SAFETY: p holds 1 MiB.
        unsafe { libc::memset(p, 1, 1 << 20) };
        n += 1;
    }
}

extern "C" fn mix(a: i32, x: f64, b: i64, y: f32, s7: i64, s8: i64) -> f64 {
    a as f64 + x + b as f64 + y as f64 + (s7 * 10 + s8) as f64
}

extern "C" fn many(a: u64, b: u64, c: u64, d: u64, e: u64, f: u64, g: u64, h: u64, i: u64) -> u64 {
    a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h + 9 * i
}

extern "C" fn fill(p: *mut u8, n: usize, v: u8) -> usize {
    // SAFETY: the caller passes n bytes of the shared arena.
    unsafe { core::ptr::write_bytes(p, v, n) };
    n
}

/// A string in the helper's own memory (its heap), returned by pointer.
extern "C" fn own_string() -> *const u8 {
    // SAFETY: leaks a C string in the helper.
    unsafe {
        let p = libc::malloc(16) as *mut u8;
        core::ptr::copy_nonoverlapping(c"from the helper".as_ptr().cast(), p, 16);
        p
    }
}

#[test]
fn calls_run_in_another_process() {
    let c = process("proc-basic");
    assert_eq!(c.backend(), Backend::Process);
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let r: i64 = unsafe { c.call("add3", add3 as *const (), (1i64, 2i64, 39i64)) }.unwrap();
    assert_eq!(r, 42);
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let pid: i32 = unsafe { c.call("my_pid", my_pid as *const (), ()) }.unwrap();
    assert_ne!(pid, std::process::id() as i32);
    assert_eq!(Some(pid), c.helper_pid());
}

#[test]
fn floats_and_stack_arguments() {
    let c = process("proc-regs");
    let regs = CallRegs {
        ints: [5, 1000, 7, 3, 0, 0],
        sse: [
            2.5f64.to_bits(),
            (0.25f32.to_bits()) as u64,
            0,
            0,
            0,
            0,
            0,
            0,
        ],
        nsse: 2,
        ..CallRegs::default()
    };
    // mix(a=5, x=2.5, b=1000, y=0.25, s7=7, s8=3): the ints go rdi, rsi, rdx, rcx.
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let r = unsafe { c.call_regs("mix", mix as *const (), &regs) }.unwrap();
    assert_eq!(f64::from_bits(r.xmm0), 5.0 + 2.5 + 1000.0 + 0.25 + 73.0);
    let stack = [7u64, 8, 9];
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let r = unsafe { c.call_words_stack("many", many as *const (), [1, 2, 3, 4, 5, 6], &stack) }
        .unwrap();
    assert_eq!(r[0], 1 + 4 + 9 + 16 + 25 + 36 + 49 + 64 + 81);
}

#[test]
fn foreign_buffers_are_shared_not_copied() {
    let c = process("proc-shared");
    let buf = ForeignBuf::zeroed(1 << 20).unwrap();
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let n: usize = unsafe {
        c.call(
            "fill",
            fill as *const (),
            (buf.as_foreign_ptr(), 1usize << 20, 0xabu8 as u64),
        )
    }
    .unwrap();
    assert_eq!(n, 1 << 20);
    assert!(buf.to_vec().iter().all(|&b| b == 0xab));
    // libc's own functions, resolved in the helper's libc.
    let s = ForeignBuf::from_str_nul("cofferdam").unwrap();
    let len: usize =
        // SAFETY: the C function named takes and returns exactly the argument
        // and return types given here (its definition is in this test's C code,
        // or libc's); memory it is handed is foreign memory or plain integers.
        unsafe { c.call("strlen", libc::strlen as *const (), (s.as_foreign_ptr(),)) }.unwrap();
    assert_eq!(len, 9);
}

#[test]
fn helper_memory_is_read_through_the_compartment() {
    let c = process("proc-read");
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let p: ForeignPtr<u8> = unsafe { c.call("own_string", own_string as *const (), ()) }.unwrap();
    assert_eq!(c.read_foreign_cstr(p, 64).unwrap(), b"from the helper");
    if cofferdam::backend() == Backend::Process {
        // Not in the shared arena: the parent never dereferences it. (With
        // a process compartment beside in-process ones, `ForeignPtr` cannot
        // tell whose pointer it holds: README.)
        assert!(matches!(p.read(), Err(Error::Invalid { .. })));
        // Adopting it as a ForeignBox would make the parent dereference its
        // own memory at that address: refused.
        let adopt = std::panic::catch_unwind(|| {
            // SAFETY: refused before any use (the point of the test).
            let _b = unsafe { cofferdam::ForeignBox::<u8>::from_foreign(p) };
        });
        assert!(adopt.is_err());
    }
}

#[test]
fn a_fault_is_an_error_and_renew_restarts() {
    let c = process("proc-fault");
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let e = unsafe { c.call::<_, usize>("strlen", libc::strlen as *const (), (0x10usize,)) }
        .unwrap_err();
    match &e {
        Error::Fault(f) => {
            assert_eq!(f.compartment, "proc-fault");
            assert_eq!(f.function, "strlen");
            assert_eq!(f.kind, FaultKind::Unmapped);
            assert_eq!(f.address, 0x10);
        }
        other => panic!("expected a fault, got {other:?}"),
    }
    assert!(c.is_poisoned());
    assert!(matches!(
        // SAFETY: the C function named takes and returns exactly the argument
        // and return types given here (its definition is in this test's C code,
        // or libc's); memory it is handed is foreign memory or plain integers.
        unsafe { c.call::<_, i64>("add3", add3 as *const (), (1i64, 1i64, 1i64)) },
        Err(Error::Poisoned { .. })
    ));
    let old = c.helper_pid();
    c.renew().unwrap();
    assert!(!c.is_poisoned());
    assert_ne!(c.helper_pid(), old);
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let r: i64 = unsafe { c.call("add3", add3 as *const (), (1i64, 1i64, 1i64)) }.unwrap();
    assert_eq!(r, 3);
}

#[test]
fn renew_resets_library_statics() {
    let c = process("proc-statics");
    for want in 1..=3u64 {
        assert_eq!(
            // SAFETY: the C function named takes and returns exactly the argument
            // and return types given here (its definition is in this test's C code,
            // or libc's); memory it is handed is foreign memory or plain integers.
            unsafe { c.call::<_, u64>("bump", bump as *const (), ()) }.unwrap(),
            want
        );
    }
    c.renew().unwrap();
    assert_eq!(
        // SAFETY: the C function named takes and returns exactly the argument
        // and return types given here (its definition is in this test's C code,
        // or libc's); memory it is handed is foreign memory or plain integers.
        unsafe { c.call::<_, u64>("bump", bump as *const (), ()) }.unwrap(),
        1
    );
}

#[test]
fn exit_and_abort_are_faults() {
    let c = process("proc-exit");
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let e = unsafe { c.call::<_, ()>("exit", libc::exit as *const (), (7i32,)) }.unwrap_err();
    match e {
        Error::Fault(f) => assert_eq!(f.kind, FaultKind::Exit, "{f}"),
        other => panic!("expected a fault, got {other:?}"),
    }
    assert!(c.is_poisoned());
    c.renew().unwrap();
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let e = unsafe { c.call::<_, ()>("abort", libc::abort as *const (), ()) }.unwrap_err();
    match e {
        Error::Fault(f) => assert_eq!(f.kind, FaultKind::Abort, "{f}"),
        other => panic!("expected a fault, got {other:?}"),
    }
}

#[test]
fn a_killed_helper_is_a_fault() {
    let c = process("proc-killed");
    let pid = c.helper_pid().unwrap();
    // SAFETY: signals the helper we started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // Wait until it is gone (kill is asynchronous): its /proc entry turns
    // into a zombie's, which the compartment has not reaped yet.
    while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| !st.contains(") Z")) {
        std::thread::yield_now();
    }
    // SAFETY: add3(i64, i64, i64) -> i64, a function of this test.
    let e = unsafe { c.call::<_, i64>("add3", add3 as *const (), (1i64, 1i64, 1i64)) }.unwrap_err();
    match e {
        Error::Fault(f) => assert_eq!(
            f.kind,
            FaultKind::Signal {
                signal: libc::SIGKILL
            },
            "{f}"
        ),
        other => panic!("expected a fault, got {other:?}"),
    }
}

#[test]
fn an_endless_loop_times_out_and_renew_recovers() {
    let c = Compartment::builder("proc-loop")
        .backend(Backend::Process)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let t = Instant::now();
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let e = unsafe { c.call::<_, i32>("spin_forever", spin_forever as *const (), ()) }.unwrap_err();
    assert!(
        matches!(e, Error::Timeout { function, .. } if function == "spin_forever"),
        "{e:?}"
    );
    // Not before the timeout (how long after it is the machine's business).
    let spent = t.elapsed();
    assert!(spent >= Duration::from_millis(300), "{spent:?}");
    assert!(c.is_poisoned());
    c.renew().unwrap();
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let r: i64 = unsafe { c.call("add3", add3 as *const (), (2i64, 2i64, 2i64)) }.unwrap();
    assert_eq!(r, 6);
}

#[test]
fn the_memory_limit_holds() {
    let grab = |limit: u64| -> u64 {
        let c = Compartment::builder("proc-mem")
            .backend(Backend::Process)
            .memory_limit(limit << 20)
            .build()
            .unwrap();
        // SAFETY: the C function named takes and returns exactly the argument
        // and return types given here (its definition is in this test's C code,
        // or libc's); memory it is handed is foreign memory or plain integers.
        unsafe { c.call("grab_all", grab_all as *const (), ()) }.unwrap()
    };
    let small = grab(32);
    assert!(
        small < 32,
        "the helper got {small} MiB under a 32 MiB limit"
    );
    // The limit is what stopped it: with a larger one it gets more.
    let large = grab(160);
    assert!(
        large > 64 && large < 160,
        "the helper got {large} MiB under a 160 MiB limit"
    );
}

#[test]
fn eight_threads_call_one_compartment() {
    let c = process("proc-threads");
    let handles: Vec<_> = (0..8i64)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..2000i64 {
                    let r: i64 =
                        // SAFETY: the C function named takes and returns exactly the argument
                        // and return types given here (its definition is in this test's C code,
                        // or libc's); memory it is handed is foreign memory or plain integers.
                        unsafe { c.call("add3", add3 as *const (), (t, i, 1i64)) }.unwrap();
                    assert_eq!(r, t + i + 1);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn the_helper_cannot_reach_the_parent() {
    let c = process("proc-ptrace");
    let ppid = std::process::id() as i64;
    // ptrace(PTRACE_ATTACH, parent): the helper's filter traps it.
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let e = unsafe {
        c.call::<_, i64>(
            "syscall",
            libc::syscall as *const (),
            (libc::SYS_ptrace, libc::PTRACE_ATTACH as i64, ppid),
        )
    }
    .unwrap_err();
    match e {
        Error::Fault(f) => assert!(
            matches!(f.kind, FaultKind::Syscall { nr, .. } if nr == libc::SYS_ptrace as u32),
            "{f}"
        ),
        other => panic!("expected a fault, got {other:?}"),
    }
    c.renew().unwrap();
    // kill(parent, SIGKILL): trapped too.
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let e = unsafe {
        c.call::<_, i32>(
            "kill",
            libc::kill as *const (),
            (ppid as i32, libc::SIGKILL),
        )
    }
    .unwrap_err();
    assert!(
        matches!(e, Error::Fault(ref f) if matches!(f.kind, FaultKind::Syscall { nr, .. } if nr == libc::SYS_kill as u32)),
        "{e:?}"
    );
    // Nor can it open the parent's memory, maps or environment through
    // /proc (the parent is not dumpable once it has a helper, and the
    // helper has no capabilities even when the program runs as root); the
    // parent's world-readable `stat` opens (the negative control: the path
    // and the call work).
    c.renew().unwrap();
    for (file, want_open) in [
        ("stat", true),
        ("mem", false),
        ("maps", false),
        ("environ", false),
    ] {
        {
            let path = ForeignBuf::from_str_nul(&format!("/proc/{ppid}/{file}")).unwrap();
            // SAFETY: open(const char *, int) -> int, libc's, on a
            // NUL-terminated foreign string; the descriptor stays in the
            // helper.
            let fd: i32 = unsafe {
                c.call(
                    "open",
                    libc::open as *const (),
                    (path.as_foreign_ptr(), libc::O_RDONLY),
                )
            }
            .unwrap();
            assert_eq!(
                fd >= 0,
                want_open,
                "/proc/{ppid}/{file} from the helper: {fd}"
            );
        }
    }
    // The same kill aimed at the helper itself is allowed (abort uses it).
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let me: i32 = unsafe { c.call("my_pid", my_pid as *const (), ()) }.unwrap();
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let r: i32 = unsafe { c.call("kill", libc::kill as *const (), (me, 0i32)) }.unwrap();
    assert_eq!(r, 0);
}

mod wrappers {
    use core::ffi::{c_char, c_int, c_uint};

    // The same declarations as on mpk, with the backend chosen in the
    // attribute.
    #[cofferdam::sandbox(
        compartment = "proc-macro",
        backend = "process",
        timeout_ms = 500,
        memory_limit = 268435456,
        safe(abs, getpid, sleep),
        handle = pub handle
    )]
    extern "C" {
        pub fn strlen(s: *const c_char) -> usize;
        pub fn abs(x: c_int) -> c_int;
        pub fn getpid() -> c_int;
        pub fn sleep(seconds: c_uint) -> c_uint;
    }
}

#[test]
fn sandbox_wrappers_work_unchanged_on_a_process_compartment() {
    let c = wrappers::handle().unwrap();
    assert_eq!(c.backend(), Backend::Process);
    assert_eq!(wrappers::abs(-42), Ok(42));
    let helper = wrappers::getpid().unwrap();
    assert_ne!(helper, std::process::id() as i32);
    let s = ForeignBuf::from_str_nul("twelve chars").unwrap();
    // SAFETY: a NUL-terminated foreign string.
    assert_eq!(unsafe { wrappers::strlen(&s) }, Ok(12));
    // The attribute's timeout: sleep(5) is killed after 500 ms.
    let e = wrappers::sleep(5).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Timeout {
                function: "sleep",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(matches!(wrappers::abs(1), Err(Error::Poisoned { .. })));
    c.renew().unwrap();
    assert_eq!(wrappers::abs(-1), Ok(1));
    assert_ne!(wrappers::getpid().unwrap(), helper);
}

#[test]
fn builder_options_are_checked() {
    if cofferdam::backend() != Backend::Process {
        let e = Compartment::builder("x")
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    }
    let e = Compartment::builder("x")
        .backend_named("bogus")
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
}

#[test]
fn the_helper_starts_clean_and_confined() {
    let c = process("proc-clean");
    // Not a fork: none of this process's environment is there.
    assert!(std::env::var_os("PATH").is_some());
    let name = ForeignBuf::from_str_nul("PATH").unwrap();
    // SAFETY: the C function named takes and returns exactly the argument
    // and return types given here (its definition is in this test's C code,
    // or libc's); memory it is handed is foreign memory or plain integers.
    let v: ForeignPtr<u8> = unsafe {
        c.call(
            "getenv",
            libc::getenv as *const (),
            (name.as_foreign_ptr(),),
        )
    }
    .unwrap();
    assert!(v.is_null(), "the helper sees PATH");
    // This process is not dumpable once it has a helper (no ptrace, no
    // /proc/<pid>/mem from a process of the same user).
    // SAFETY: prctl with integer arguments.
    assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE) }, 0);
    // Outside the allowlist: a socket works here, and is refused (EPERM)
    // in the helper.
    // SAFETY: socket/close with integer arguments.
    let here = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(here >= 0);
    // SAFETY: closing the descriptor just opened.
    unsafe { libc::close(here) };
    // SAFETY: socket(int, int, int) -> int, libc's, with integer arguments.
    let there: i32 = unsafe {
        c.call(
            "socket",
            libc::socket as *const (),
            (libc::AF_INET, libc::SOCK_STREAM, 0i32),
        )
    }
    .unwrap();
    assert_eq!(there, -1);
    let errno: *mut i32 =
        // SAFETY: the C function named takes and returns exactly the argument
        // and return types given here (its definition is in this test's C code,
        // or libc's); memory it is handed is foreign memory or plain integers.
        unsafe { c.call("__errno_location", libc::__errno_location as *const (), ()) }.unwrap();
    let e = c
        .read_foreign(ForeignPtr::<i32>::from_addr(errno as usize), 1)
        .unwrap();
    assert_eq!(e, [libc::EPERM]);
}

type Cmp = fn(ForeignPtr<i32>, ForeignPtr<i32>) -> i32;

#[test]
fn a_callback_from_the_child_runs_here() {
    let c = process("proc-qsort");
    let mut x: u32 = 2463534242;
    let data: Vec<i32> = (0..5000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 10_000) as i32
        })
        .collect();
    let v = ForeignVec::<i32>::from_slice(&data).unwrap();
    let calls = Cell::new(0u64);
    let here = std::thread::current().id();
    let cmp = Callback::<Cmp>::new(|a, b| {
        // On the calling thread, in this process.
        assert_eq!(std::thread::current().id(), here);
        calls.set(calls.get() + 1);
        a.read().unwrap().cmp(&b.read().unwrap()) as i32
    })
    .unwrap();
    // SAFETY: qsort(void *base, size_t n, size_t size, int (*)(const void *,
    // const void *)), libc's, resolved in the helper; base is foreign memory.
    let _: () = unsafe {
        c.call_with_callbacks(
            "qsort",
            libc::qsort as *const (),
            (v.as_foreign_ptr(), v.len(), 4usize, cmp.stub()),
            &[&cmp],
        )
    }
    .unwrap();
    let mut want = data.clone();
    want.sort();
    assert_eq!(v.to_vec(), want);
    assert!(
        calls.get() >= 4999,
        "the comparator ran {} times",
        calls.get()
    );
    assert_eq!(cmp.refusals(), 0);
}

/// Calls `cb(x)` and returns its result plus one; keeps `cb` for later.
extern "C" fn call_and_keep(cb: extern "C" fn(i64) -> i64, x: i64) -> i64 {
    KEPT.store(cb as usize, std::sync::atomic::Ordering::Relaxed);
    cb(x) + 1
}

static KEPT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Calls the callback an earlier call kept (after that call returned).
extern "C" fn call_kept(x: i64) -> i64 {
    let p = KEPT.load(std::sync::atomic::Ordering::Relaxed);
    if p == 0 {
        return -12345;
    }
    // SAFETY: the address call_and_keep was given, a function of that type.
    let cb: extern "C" fn(i64) -> i64 = unsafe { core::mem::transmute(p) };
    cb(x)
}

#[test]
fn callbacks_nest_with_calls_and_are_armed_for_their_call_only() {
    let c = process("proc-nest");
    let other = process("proc-nest-other");
    // SAFETY: my_pid() -> i32, a function of this test.
    let helper: i32 = unsafe { c.call("my_pid", my_pid as *const (), ()) }.unwrap();
    let depth = Cell::new(0);
    let cb = Callback::<fn(i64) -> i64>::with_error(-7, |x| {
        depth.set(depth.get() + 1);
        // A call into the same compartment from inside its own callback:
        // served by the same helper (and the same helper thread).
        // SAFETY: my_pid() -> i32 and add3(i64, i64, i64) -> i64, functions
        // of this test.
        let pid: i32 = unsafe { c.call("my_pid", my_pid as *const (), ()) }.unwrap();
        assert_eq!(pid, helper);
        // SAFETY: as above.
        let y: i64 = unsafe { c.call("add3", add3 as *const (), (x, x, 0i64)) }.unwrap();
        // And into another process compartment.
        // SAFETY: as above.
        let z: i64 = unsafe { other.call("add3", add3 as *const (), (y, 1i64, 0i64)) }.unwrap();
        z
    })
    .unwrap();
    // SAFETY: call_and_keep(fn(i64) -> i64, i64) -> i64, a function of this
    // test; the callback's stub goes where the function pointer goes.
    let r: i64 = unsafe {
        c.call_with_callbacks(
            "call_and_keep",
            call_and_keep as *const (),
            (cb.stub(), 20i64),
            &[&cb],
        )
    }
    .unwrap();
    assert_eq!(r, 20 + 20 + 1 + 1);
    assert_eq!(depth.get(), 1);
    // The helper kept the stub; a later call that did not pass the
    // callback calls it: refused in this process, C gets the error value.
    // SAFETY: call_kept(i64) -> i64, a function of this test.
    let r: i64 = unsafe { c.call("call_kept", call_kept as *const (), (5i64,)) }.unwrap();
    assert_eq!(r, -7);
    assert_eq!(
        depth.get(),
        1,
        "a callback ran outside the call that passed it"
    );
    assert_eq!(cb.refusals(), 1);
    assert!(!c.is_poisoned());
}

/// Calls `cb` without end (a library stuck in a loop over a callback).
extern "C" fn call_back_forever(cb: extern "C" fn(i64) -> i64) -> i64 {
    let mut x = 0;
    loop {
        x = cb(x);
    }
}

#[test]
fn a_library_calling_back_without_end_times_out() {
    let c = Compartment::builder("proc-cb-loop")
        .backend(Backend::Process)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let calls = Cell::new(0u64);
    let cb = Callback::<fn(i64) -> i64>::new(|x| {
        calls.set(calls.get() + 1);
        x + 1
    })
    .unwrap();
    // SAFETY: call_back_forever(fn(i64) -> i64) -> i64, a function of this
    // test.
    let e = unsafe {
        c.call_with_callbacks::<_, i64>(
            "call_back_forever",
            call_back_forever as *const (),
            (cb.stub(),),
            &[&cb],
        )
    }
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Timeout {
                function: "call_back_forever",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(calls.get() > 0, "the callback never ran");
    assert!(c.is_poisoned());
    c.renew().unwrap();
    // SAFETY: add3(i64, i64, i64) -> i64, a function of this test.
    let r: i64 = unsafe { c.call("add3", add3 as *const (), (1i64, 2i64, 3i64)) }.unwrap();
    assert_eq!(r, 6);
}

#[test]
fn a_library_the_program_opened_is_opened_in_the_helper_too() {
    // libz, opened here with dlopen (not linked into this test): the helper
    // opens the same file by path at the first call and resolves the
    // function at the same offset.
    // SAFETY: dlopen/dlsym with NUL-terminated names; the handle is kept
    // open for the rest of the test program.
    let f = unsafe {
        let h = libc::dlopen(c"libz.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        assert!(!h.is_null(), "libz.so.1 is not installed");
        libc::dlsym(h, c"zlibVersion".as_ptr())
    };
    assert!(!f.is_null());
    let c = process("proc-dlopen");
    // SAFETY: const char *zlibVersion(void), from libz.
    let v: ForeignPtr<u8> = unsafe { c.call("zlibVersion", f as *const (), ()) }.unwrap();
    let text = c.read_foreign_cstr(v, 32).unwrap();
    assert!(
        text.starts_with(b"1."),
        "{:?}",
        String::from_utf8_lossy(&text)
    );
    assert!(!c.is_poisoned());
}

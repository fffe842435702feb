//! The attack suite: C functions (`c/attacks.c`) that attack the Rust side
//! through FFI, and the harness that runs each one twice, in child processes:
//!
//! * **unprotected**: `COFFERDAM_BACKEND=none`, so the program is an ordinary
//!   Rust program (system allocator, bare calls) that hands C Rust memory as
//!   FFI code usually does; this run shows that the attack really works;
//! * **protected**: the backend in force (mpk where the CPU has it), with the
//!   program written as a Cofferdam user writes it (foreign buffers for C,
//!   calls through a [`Compartment`]); this run shows whether it is contained.
//!
//! A child reports one [`Observation`]; a child that dies is itself evidence
//! (the attack crashed the program). The executable that hosts the children
//! must use [`cofferdam::ProtectedAlloc`] as its global allocator and call
//! [`child_main`] when asked to (the `cofferdam` CLI does, under a hidden
//! `attack-child` subcommand).

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use cofferdam::{Backend, Compartment, Error, ForeignBuf};
use serde::{Deserialize, Serialize};

pub mod fatal;
mod heap;
pub mod integrity;
pub mod statics;
pub mod syscalls;

pub mod ffi {
    //! The C attackers (see `c/attacks.c`).
    #![allow(missing_docs)]
    extern "C" {
        pub fn cd_overread(
            buf: *const u8,
            len: usize,
            extra: usize,
            leak: *const u8,
            out: *mut u8,
            out_len: usize,
        ) -> i32;
        pub fn cd_overwrite(buf: *mut u8, len: usize, extra: usize, leak: *mut u8, leak_len: usize);
        pub fn cd_retain(p: *mut u8);
        pub fn cd_use_stale(n: usize);
        pub fn cd_free(p: *mut u8);
        pub fn cd_malloc_scan(n: usize, out: *mut u8, out_len: usize) -> i32;
        pub fn cd_stack_write(p: *mut u8, n: usize);
        pub fn cd_bad_bool() -> u8;
        pub fn cd_bad_enum() -> i32;
        pub fn cd_echo_ptr(p: *mut u8) -> *mut u8;
        pub fn cd_noop(x: i32) -> i32;
        pub fn cd_sum10(
            a: i64,
            b: i64,
            c: i64,
            d: i64,
            e: i64,
            f: i64,
            g: i64,
            h: i64,
            i: i64,
            j: i64,
        ) -> i64;
        pub fn cd_null_write();
        pub fn cd_div_zero(x: i32) -> i32;
        pub fn cd_ud2();
        pub fn cd_int3();
        pub fn cd_abort();
        pub fn cd_assert_positive(x: i32) -> i32;
        pub fn cd_raise_segv();
        pub fn cd_bad_sp();
        pub fn cd_exit(code: i32);
        pub fn cd__exit(code: i32);
        // c/stacks.c
        pub fn cd_smash_up(canary: u64, max: usize) -> i32;
        pub fn cd_environ_hunt(canary: u64, max: usize) -> i32;
        pub fn cd_frame_address() -> usize;
        pub fn cd_write_u64(p: *mut u64, v: u64);
        pub fn cd_mix(a: i32, x: f64, b: i64, y: f32, z: f64) -> f64;
        pub fn cd_halve(x: f32) -> f32;
        pub fn cd_clobber_mxcsr() -> u32;
        pub fn cd_clobber_fpucw() -> u32;
        pub fn cd_set_df();
        pub fn cd_clobber_then_cb(cb: *const (), a: *mut u8, b: *mut u8) -> u64;
        pub fn cd_cb_call(cb: *const (), a: *mut u8, b: *mut u8) -> i32;
        pub fn cd_cb_call_stored(a: *mut u8, b: *mut u8) -> i32;
        pub fn cd_cb_call_in_thread(cb: *const (), a: *mut u8, b: *mut u8) -> i32;
        pub fn cd_cb_sum(cb: *const (), a: *mut u8, b: *mut u8, n: i32) -> i64;
        pub fn cd_cb_double(cb: *const (), x: f64, n: i32) -> f64;
        pub fn cd_run_thread() -> i32;
        pub fn cd_own_wrpkru(secret: *const u8, out: *mut u8, n: usize, have_pku: i32) -> i32;
        pub fn cd_gate_jump(
            wrpkru: *const u8,
            secret: *const u8,
            out: *mut u8,
            n: usize,
            have_pku: i32,
        ) -> i32;
        pub fn cd_retag_and_read(
            page: *mut u8,
            len: usize,
            secret: *const u8,
            out: *mut u8,
            n: usize,
        ) -> i64;
        pub fn cd_mprotect_page(page: *mut u8, len: usize) -> i64;
        pub fn cd_zap_page(page: *mut u8, len: usize) -> i64;
        pub fn cd_rwx_wrpkru(secret: *const u8, out: *mut u8, n: usize, have_pku: i32) -> i64;
        // c/heap.c
        pub fn cd_heap_smash(n: usize) -> *mut u8;
        pub fn cd_heap_churn(rounds: i32) -> i32;
        pub fn cd_malloc(n: usize) -> *mut u8;
        pub fn cd_strdup(s: *const u8) -> *mut u8;
        pub fn cd_heap_fopen() -> i32;
    }

    extern "C" {
        /// Cofferdam's gate trampoline (global symbol in its asm): the
        /// rights-escalation attack jumps onto its first WRPKRU.
        pub fn cofferdam_gate_call();
    }

    /// The test library with a WRPKRU of its own (built by build.rs).
    pub const WRPKRU_SO: &str = env!("CD_WRPKRU_SO");
    /// A library that makes raw system calls from its own code.
    pub const SYSCALL_SO: &str = env!("CD_SYSCALL_SO");
}

/// How a run is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// An ordinary Rust program handing C its memory.
    Unprotected,
    /// A Cofferdam program.
    Protected,
}

impl Mode {
    /// `unprotected` or `protected`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Unprotected => "unprotected",
            Mode::Protected => "protected",
        }
    }
    /// Parses [`Mode::name`].
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "unprotected" => Some(Mode::Unprotected),
            "protected" => Some(Mode::Protected),
            _ => None,
        }
    }
}

/// What one run saw, reported by the child.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Observation {
    /// The attack's effect happened: a secret reached C, a canary changed,
    /// two live objects share memory.
    pub effect: bool,
    /// Rust's secrets and canaries are byte-for-byte what Rust wrote.
    pub intact: bool,
    /// The call's error, if the gate contained a fault.
    pub error: Option<String>,
    /// What happened, in words.
    pub evidence: String,
    /// The backend the run used.
    pub backend: String,
}

/// One attack of the suite.
pub struct Attack {
    /// Its name.
    pub name: &'static str,
    /// Its class (`heap-overflow-read`, …).
    pub class: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Backends that claim to contain it.
    pub claimed_by: &'static [Backend],
    /// The scenario, or `None` while the capability it needs is missing.
    run: Option<fn(Mode) -> Observation>,
    /// The capability that is missing, for pending attacks.
    pub pending: Option<&'static str>,
}

const HEAP: &[Backend] = &[Backend::Mpk, Backend::Process];

/// Every attack, in demo order.
pub fn all() -> &'static [Attack] {
    &[
        Attack {
            name: "overread-adjacent-secret",
            class: "heap-overflow-read",
            description: "C reads past a buffer Rust gave it into a Rust secret next to it, then at a leaked address",
            claimed_by: HEAP,
            run: Some(heap_overflow_read),
            pending: None,
        },
        Attack {
            name: "overwrite-adjacent-object",
            class: "heap-overflow-write",
            description: "C writes past its buffer into the Rust object next to it, then at a leaked address",
            claimed_by: HEAP,
            run: Some(heap_overflow_write),
            pending: None,
        },
        Attack {
            name: "write-after-free",
            class: "use-after-free",
            description: "C keeps a pointer to a Rust object; Rust frees it and reuses the memory; C writes through it",
            claimed_by: HEAP,
            run: Some(use_after_free),
            pending: None,
        },
        Attack {
            name: "free-rust-object",
            class: "double-free",
            description: "C calls free() on memory Rust owns; Rust's allocator then hands it out twice",
            claimed_by: HEAP,
            run: Some(double_free),
            pending: None,
        },
        Attack {
            name: "recycled-secret",
            class: "uninitialized-read",
            description: "Rust frees a buffer that held a secret; C mallocs and reads what it gets",
            claimed_by: &[Backend::Mpk, Backend::Split, Backend::Process],
            run: Some(uninitialized_read),
            pending: None,
        },
        Attack {
            name: "stack-smash",
            class: "stack-smash",
            description: "C overruns its frame looking for Rust locals, walks down from environ over Rust's frames, and writes through a leaked Rust stack address",
            claimed_by: HEAP,
            run: Some(stack_smash),
            pending: None,
        },
        Attack {
            name: "invalid-values",
            class: "invalid-return",
            description: "C returns 2 for a bool, a discriminant the enum lacks, and a pointer into the Rust heap",
            claimed_by: &[Backend::Mpk, Backend::Split, Backend::Process],
            run: Some(invalid_return),
            pending: None,
        },
        Attack {
            name: "callback-abuse",
            class: "callback-abuse",
            description: "C calls a Rust callback with a pointer into Rust memory, again after the call that passed it returned, and from a thread of its own",
            claimed_by: &[Backend::Mpk, Backend::Split, Backend::Process],
            run: Some(callback_abuse),
            pending: None,
        },
        Attack {
            name: "rights-escalation",
            class: "rights-escalation",
            description: "foreign code runs its own WRPKRU (a library built with one; a loaded library's function) or jumps onto the gate's WRPKRU with eax = 0, then reads a Rust secret",
            claimed_by: HEAP,
            run: Some(rights_escalation),
            pending: None,
        },
        Attack {
            name: "syscall-escape",
            class: "syscall-escape",
            description: "foreign code calls pkey_mprotect, mprotect and madvise(MADV_DONTNEED) on a Rust heap page, and maps an anonymous RWX page with a WRPKRU in it",
            claimed_by: HEAP,
            run: Some(syscall_escape),
            pending: None,
        },
        integrity::SIGNAL_ENTRY_WRPKRU,
        integrity::FORGED_SIGNAL_FRAME,
        integrity::SROP,
        integrity::HANDLER_DISARM,
        integrity::HANDLER_DISARM_KILL,
        integrity::HANDLER_DISARM_RAW,
        Attack {
            name: "static-hijack",
            class: "static-hijack",
            description: "C overwrites a dispatch pointer Rust calls through, swaps a wrapper's compartment static, writes a Rust static through an out-of-bounds index on a C global, and writes a Rust thread-local",
            claimed_by: HEAP,
            run: Some(statics::static_hijack),
            pending: None,
        },
        Attack {
            name: "exit-handler",
            class: "rights-escalation",
            description: "foreign code registers an atexit handler from inside a gate; at exit it would read a Rust secret with Rust's rights",
            claimed_by: HEAP,
            run: Some(statics::exit_handler),
            pending: None,
        },
        Attack {
            name: "control-page-remap",
            class: "syscall-escape",
            description: "C moves the runtime's thread-state table away with mremap and maps a page of its own at its address (unprotected: a page of a Rust object)",
            claimed_by: HEAP,
            run: Some(syscalls::control_page_remap),
            pending: None,
        },
        Attack {
            name: "stack-page-remap",
            class: "syscall-escape",
            description: "C replaces a page of a Rust local array with a page of its own (mremap + MAP_FIXED)",
            claimed_by: HEAP,
            run: Some(syscalls::stack_page_remap),
            pending: None,
        },
        Attack {
            name: "process-vm-readv",
            class: "syscall-escape",
            description: "C reads a Rust secret with process_vm_readv(getpid()), a copy the kernel makes without checking protection keys",
            claimed_by: HEAP,
            run: Some(syscalls::process_vm_read),
            pending: None,
        },
        Attack {
            name: "sigaltstack-frame",
            class: "syscall-escape",
            description: "C points the alternate signal stack at Rust heap pages and signals itself: the kernel writes the signal frame over Rust data",
            claimed_by: HEAP,
            run: Some(syscalls::sigaltstack_frame),
            pending: None,
        },
        Attack {
            name: "clone-shared-tls",
            class: "syscall-escape",
            description: "C starts a thread with a raw clone() without CLONE_SETTLS (it shares the caller's TLS and FS base) and calls an armed Rust callback from it",
            claimed_by: HEAP,
            run: Some(syscalls::clone_shared_tls),
            pending: None,
        },
        Attack {
            name: "fatal-div-zero",
            class: "fatal-signal",
            description: "C divides an integer by zero (SIGFPE); contained means Err(Fault) of the right kind, the compartment poisoned, and the program carrying on (another compartment, the heap, the compartment renewed)",
            claimed_by: &[Backend::Mpk, Backend::Split, Backend::Process],
            run: Some(fatal::div_zero),
            pending: None,
        },
        Attack {
            name: "fatal-ud2",
            class: "fatal-signal",
            description: "C executes ud2, an illegal instruction (SIGILL); contained means Err(Fault) of the right kind, the compartment poisoned, and the program carrying on (another compartment, the heap, the compartment renewed)",
            claimed_by: &[Backend::Mpk, Backend::Split, Backend::Process],
            run: Some(fatal::ud2),
            pending: None,
        },
        Attack {
            name: "fatal-int3",
            class: "fatal-signal",
            description: "C executes int3, a breakpoint (SIGTRAP); contained means Err(Fault) of the right kind, the compartment poisoned, and the program carrying on (another compartment, the heap, the compartment renewed)",
            claimed_by: &[Backend::Mpk, Backend::Split, Backend::Process],
            run: Some(fatal::int3),
            pending: None,
        },
        Attack {
            name: "fatal-abort",
            class: "fatal-signal",
            description: "C calls abort() (SIGABRT); contained means Err(Fault) of the right kind, the compartment poisoned, and the program carrying on (another compartment, the heap, the compartment renewed)",
            claimed_by: &[Backend::Mpk, Backend::Split, Backend::Process],
            run: Some(fatal::abort),
            pending: None,
        },
        Attack {
            name: "fatal-assert",
            class: "fatal-signal",
            description: "C fails an assert() (SIGABRT after the message); contained means Err(Fault) of the right kind, the compartment poisoned, and the program carrying on (another compartment, the heap, the compartment renewed)",
            claimed_by: &[Backend::Mpk, Backend::Split, Backend::Process],
            run: Some(fatal::assert),
            pending: None,
        },
        Attack {
            name: "fatal-raise-segv",
            class: "fatal-signal",
            description: "C raises SIGSEGV itself with raise(); contained means Err(Fault) of the right kind, the compartment poisoned, and the program carrying on (another compartment, the heap, the compartment renewed)",
            claimed_by: &[Backend::Mpk, Backend::Split, Backend::Process],
            run: Some(fatal::raise_segv),
            pending: None,
        },
        Attack {
            name: "fatal-exit",
            class: "fatal-signal",
            description: "C calls exit(3): the library, not the program, would decide when the program ends; contained means Err(Fault) of the right kind, the compartment poisoned, and the program carrying on (another compartment, the heap, the compartment renewed)",
            claimed_by: &[Backend::Mpk, Backend::Process],
            run: Some(fatal::exit),
            pending: None,
        },
        Attack {
            name: "fatal-_exit",
            class: "fatal-signal",
            description: "C calls _exit(3); contained means Err(Fault) of the right kind, the compartment poisoned, and the program carrying on (another compartment, the heap, the compartment renewed)",
            claimed_by: &[Backend::Mpk, Backend::Process],
            run: Some(fatal::exit_now),
            pending: None,
        },
        Attack {
            name: "fatal-bad-sp",
            class: "fatal-signal",
            description: "C returns with its stack pointer off by 8; contained means Err(Fault) of the right kind, the compartment poisoned, and the program carrying on (another compartment, the heap, the compartment renewed)",
            claimed_by: &[Backend::Mpk, Backend::Split, Backend::Process],
            run: Some(fatal::bad_sp),
            pending: None,
        },
        Attack {
            name: "clone-settls-impostor",
            class: "syscall-escape",
            description: "C starts a thread with clone(CLONE_SETTLS) and the caller's own TLS (so the caller's FS base) and calls an armed Rust callback from it: Rust code on a thread that did not make the call",
            claimed_by: HEAP,
            run: Some(syscalls::clone_settls_impostor),
            pending: None,
        },
        Attack {
            name: "rseq-redirect",
            class: "rights-escalation",
            description: "C writes a critical section over Rust code into glibc's rseq area (no syscall): at a signal after the gate call returned, the kernel would send the Rust thread to C's abort handler with Rust's rights",
            claimed_by: HEAP,
            run: Some(syscalls::rseq_redirect),
            pending: None,
        },
        Attack {
            name: "proc-self-mem",
            class: "syscall-escape",
            description: "C opens /proc/self/mem and writes over a Rust secret (the kernel's remote access ignores protection keys)",
            claimed_by: HEAP,
            run: Some(syscalls::proc_self_mem),
            pending: None,
        },
        Attack {
            name: "heap-metadata-smash",
            class: "heap-metadata-smash",
            description: "C overruns its own malloc'ed buffer by 64 KiB across its heap's metadata; the program then frees and allocates foreign memory, calls another compartment, renews the smashed one and calls it again",
            claimed_by: &[Backend::Mpk, Backend::Split, Backend::Process],
            run: Some(heap::metadata_smash),
            pending: None,
        },
    ]
}

/// Looks an attack up by name (in [`all`], or among the attacks that are
/// not contained yet, [`integrity::not_contained`]).
pub fn find(name: &str) -> Option<&'static Attack> {
    all()
        .iter()
        .chain(integrity::not_contained())
        .chain(integrity::mechanism_checks())
        .find(|a| a.name == name)
}

const SECRET_LEN: usize = 64;
/// How far past its 64-byte buffer the over-read goes: far enough to cross
/// the allocator's recently recycled blocks and reach the secret.
const OVERREAD: usize = 4096;

fn secret(tag: &str) -> [u8; SECRET_LEN] {
    let mut s = [b'#'; SECRET_LEN];
    let text = format!("COFFERDAM-SECRET:{tag}:");
    s[..text.len()].copy_from_slice(text.as_bytes());
    s
}

fn printable(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    bytes[..end]
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
        .collect()
}

fn has_marker(bytes: &[u8]) -> bool {
    bytes.windows(17).any(|w| w == b"COFFERDAM-SECRET:")
}

fn fn_addr(f: *const ()) -> *const () {
    f
}

fn observation(effect: bool, intact: bool, error: Option<&Error>, evidence: String) -> Observation {
    Observation {
        effect,
        intact,
        error: error.map(|e| e.to_string()),
        evidence,
        backend: cofferdam::backend().name().to_string(),
    }
}

fn compartment() -> Result<Compartment, Observation> {
    compartment_named("attacks")
}

fn compartment_named(name: &str) -> Result<Compartment, Observation> {
    Compartment::new(name)
        .map_err(|e| observation(false, true, Some(&e), format!("no compartment: {e}")))
}

fn outcome_text(r: &Result<(), Error>) -> String {
    match r {
        Ok(()) => "the call returned normally".to_string(),
        Err(e) => format!("the call returned Err: {e}"),
    }
}

fn heap_overflow_read(mode: Mode) -> Observation {
    let c = match compartment() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let out = ForeignBuf::zeroed(SECRET_LEN).expect("foreign buffer");
    let expected = secret("heap-overflow-read");
    let (r, secret_box, rc);
    match mode {
        Mode::Unprotected => {
            // The usual FFI: C gets a pointer into a Rust Vec.
            let buf = vec![b'.'; 64];
            secret_box = Box::new(expected);
            let mut code = 0i32;
            // SAFETY: cd_overread takes (ptr, size_t, size_t, ptr, ptr, size_t) and returns int.
            r = unsafe {
                c.call::<_, i32>(
                    "cd_overread",
                    fn_addr(ffi::cd_overread as *const ()),
                    (
                        buf.as_ptr(),
                        64usize,
                        OVERREAD,
                        secret_box.as_ptr(),
                        out.as_foreign_ptr(),
                        SECRET_LEN,
                    ),
                )
            }
            .map(|v| code = v);
            rc = code;
            std::hint::black_box(&buf);
        }
        Mode::Protected => {
            // The Cofferdam way: C gets a foreign buffer.
            let buf = ForeignBuf::from_slice(&[b'.'; 64]).expect("foreign buffer");
            secret_box = Box::new(expected);
            let mut code = 0i32;
            // SAFETY: as above.
            r = unsafe {
                c.call::<_, i32>(
                    "cd_overread",
                    fn_addr(ffi::cd_overread as *const ()),
                    (
                        buf.as_foreign_ptr(),
                        64usize,
                        OVERREAD,
                        secret_box.as_ptr(),
                        out.as_foreign_ptr(),
                        SECRET_LEN,
                    ),
                )
            }
            .map(|v| code = v);
            rc = code;
        }
    }
    let got = out.to_vec();
    let effect = has_marker(&got);
    let intact = *secret_box == expected;
    let how = match rc {
        1 => "by reading past its buffer",
        2 => "through the leaked pointer",
        _ => "",
    };
    let evidence = if effect {
        format!(
            "C copied the Rust secret out {how}: \"{}\"",
            printable(&got)
        )
    } else {
        format!(
            "no secret reached C; {}",
            outcome_text(&r.as_ref().map(|_| ()).map_err(|e| e.clone()))
        )
    };
    observation(effect, intact, r.as_ref().err(), evidence)
}

fn heap_overflow_write(mode: Mode) -> Observation {
    let c = match compartment() {
        Ok(c) => c,
        Err(o) => return o,
    };
    const CANARY: [u8; 64] = [0xC0; 64];
    let r;
    let canary;
    match mode {
        Mode::Unprotected => {
            let mut buf = vec![0u8; 64];
            canary = Box::new(CANARY);
            let target = &*canary as *const [u8; 64] as *mut u8;
            // SAFETY: cd_overwrite takes (ptr, size_t, size_t, ptr, size_t).
            r = unsafe {
                c.call::<_, ()>(
                    "cd_overwrite",
                    fn_addr(ffi::cd_overwrite as *const ()),
                    (buf.as_mut_ptr(), 64usize, 64usize, target, 64usize),
                )
            };
            // The overflow broke the allocator's bookkeeping next to `buf`:
            // freeing either block now would abort the process.
            std::mem::forget(buf);
        }
        Mode::Protected => {
            let buf = ForeignBuf::zeroed(64).expect("foreign buffer");
            canary = Box::new(CANARY);
            let target = &*canary as *const [u8; 64] as *mut u8;
            // SAFETY: as above.
            r = unsafe {
                c.call::<_, ()>(
                    "cd_overwrite",
                    fn_addr(ffi::cd_overwrite as *const ()),
                    (buf.as_foreign_ptr(), 64usize, 64usize, target, 64usize),
                )
            };
            // C overflowed its own heap: leave its block alone.
            std::mem::forget(buf);
        }
    }
    // SAFETY: reads the canary through a volatile load so that the compiler
    // cannot assume it still holds what Rust wrote.
    let now: [u8; 64] = unsafe { core::ptr::read_volatile(&*canary) };
    let changed = now.iter().filter(|&&b| b != 0xC0).count();
    std::mem::forget(canary);
    let effect = changed > 0;
    let evidence = if effect {
        format!(
            "{changed} of 64 canary bytes of the Rust object changed (now {:?}…)",
            &now[..4]
        )
    } else {
        format!(
            "the Rust object's 64 canary bytes are unchanged; {}",
            outcome_text(&r.clone())
        )
    };
    observation(effect, !effect, r.as_ref().err(), evidence)
}

fn use_after_free(_mode: Mode) -> Observation {
    let c = match compartment() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let obj = Box::new([0u8; 64]);
    let stale = &*obj as *const [u8; 64] as *mut u8;
    // SAFETY: cd_retain takes one pointer and only stores it.
    let r1 =
        unsafe { c.call::<_, ()>("cd_retain", fn_addr(ffi::cd_retain as *const ()), (stale,)) };
    // Everything the victim needs is made first: nothing else may allocate
    // between the free and the reuse.
    let expected = secret("use-after-free");
    let mut others: Vec<Box<[u8; 64]>> = Vec::with_capacity(64);
    drop(obj);
    // Rust allocates objects of the same size until one reuses the freed
    // block (the allocator's free lists decide which comes first).
    let mut victim = Box::new(expected);
    while &*victim as *const [u8; 64] as *mut u8 != stale && others.len() < 63 {
        others.push(victim);
        victim = Box::new(expected);
    }
    let reused = &*victim as *const [u8; 64] as *mut u8 == stale;
    // SAFETY: cd_use_stale takes a size_t.
    let r2 = unsafe {
        c.call::<_, ()>(
            "cd_use_stale",
            fn_addr(ffi::cd_use_stale as *const ()),
            (64usize,),
        )
    };
    // SAFETY: volatile read of a live Box.
    let now: [u8; 64] = unsafe { core::ptr::read_volatile(&*victim) };
    let effect = now != expected;
    let mut evidence = if effect {
        format!(
            "the Rust object that reused the freed memory now reads \"{}\"",
            printable(&now[..24])
        )
    } else {
        format!(
            "the Rust object {} the freed memory and is unchanged; {}",
            if reused { "reused" } else { "did not reuse" },
            outcome_text(&r2.clone())
        )
    };
    if r1.is_err() {
        evidence.push_str("; (retain failed)");
    }
    if matches!(r2, Err(Error::Fault(_))) {
        // SAFETY: as for cd_retain above.
        let r3 = unsafe {
            c.call::<_, ()>(
                "cd_retain",
                fn_addr(ffi::cd_retain as *const ()),
                (core::ptr::null_mut::<u8>(),),
            )
        };
        if matches!(r3, Err(Error::Poisoned { .. })) {
            evidence.push_str("; the next call was refused: compartment poisoned");
        }
    }
    std::mem::forget(victim);
    observation(effect, !effect, r2.as_ref().err(), evidence)
}

fn double_free(_mode: Mode) -> Observation {
    let c = match compartment() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let expected = secret("double-free");
    let owned = Box::into_raw(Box::new(expected));
    // SAFETY: cd_free takes one pointer. What free() does with a pointer it
    // does not own is the attack.
    let r = unsafe {
        c.call::<_, ()>(
            "cd_free",
            fn_addr(ffi::cd_free as *const ()),
            (owned as *mut u8,),
        )
    };
    let next = Box::new([0x55u8; 64]);
    let aliased = std::ptr::eq(&*next, owned);
    // SAFETY: `owned` is still Rust's (never freed by Rust); a volatile read
    // shows whatever the allocator let happen to it.
    let now: [u8; 64] = unsafe { core::ptr::read_volatile(owned) };
    let effect = aliased || now != expected;
    let evidence = if effect {
        format!(
            "free() released a live Rust object: the next Rust allocation {} (object now reads \"{}\")",
            if aliased { "got the same address, so two live Boxes share memory" } else { "overwrote it" },
            printable(&now[..16])
        )
    } else {
        format!(
            "the Rust object is still Rust's and unchanged; {}",
            outcome_text(&r.clone())
        )
    };
    std::mem::forget(next); // never free either: the allocator's state is the attacker's now
    observation(effect, !effect, r.as_ref().err(), evidence)
}

fn uninitialized_read(_mode: Mode) -> Observation {
    let c = match compartment() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let out = ForeignBuf::zeroed(SECRET_LEN).expect("foreign buffer");
    {
        let mut s = vec![0u8; 256];
        s[32..32 + SECRET_LEN].copy_from_slice(&secret("uninitialized-read"));
        std::hint::black_box(&mut s);
        drop(s);
    }
    // SAFETY: cd_malloc_scan takes (size_t, ptr, size_t) and returns int.
    let r = unsafe {
        c.call::<_, i32>(
            "cd_malloc_scan",
            fn_addr(ffi::cd_malloc_scan as *const ()),
            (256usize, out.as_foreign_ptr(), SECRET_LEN),
        )
    };
    let got = out.to_vec();
    let effect = has_marker(&got);
    let evidence = if effect {
        format!(
            "C's malloc returned Rust's freed buffer, secret included: \"{}\"",
            printable(&got)
        )
    } else {
        format!(
            "C's malloc never sees Rust's freed memory; {}",
            outcome_text(&r.clone().map(|_| ()))
        )
    };
    observation(effect, true, r.as_ref().err(), evidence)
}

/// The mask `c/stacks.c` applies to canaries it is told to look for.
const CD_MASK: u64 = 0xA5A5_A5A5_A5A5_A5A5;

fn stack_canary() -> u64 {
    // Different every run, and never a small number C might hold anyway.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (t ^ 0x9E37_79B9_7F4A_7C15).rotate_left(17) | 1 << 63
}

/// Three ways at the Rust stack: C overruns its frame upward looking for a
/// Rust local; C walks down from `environ` (the top of the main stack) over
/// Rust's frames looking for one; C writes through a Rust stack address it
/// was handed. Runs on the main thread (the attack child's).
fn stack_smash(mode: Mode) -> Observation {
    // The top page of the main thread's stack, shared with argv and the
    // environment, stays untagged (docs/stacks.md): the outermost frames
    // that happen to share it are not protected. The victim frames here are
    // an ordinary depth below it (8 KiB), as all but a program's first few
    // frames are.
    let mut room = [0u8; 8192];
    std::hint::black_box(&mut room);
    stack_smash_below(mode)
}

#[inline(never)]
fn stack_smash_below(_mode: Mode) -> Observation {
    // One compartment per step: a contained fault poisons its compartment.
    let (c1, c2, c3) = match (
        compartment_named("attacks"),
        compartment_named("attacks-environ"),
        compartment_named("attacks-leak"),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(o), _, _) | (_, Err(o), _) | (_, _, Err(o)) => return o,
    };
    let canary = stack_canary();
    // The reference copy lives in a static: C may overwrite every copy of
    // the canary on the stack, the compiler's spills of `canary` included.
    STACK_CANARY.store(canary, std::sync::atomic::Ordering::SeqCst);
    let mut locals = [canary; 8];
    std::hint::black_box(&mut locals);
    let mut parts = Vec::new();
    let mut errors = Vec::new();
    let mut record = |step: &str, r: Result<String, Error>| match r {
        Ok(what) => parts.push(format!("{step}: {what}")),
        Err(e) => {
            parts.push(format!("{step}: {e}"));
            errors.push(e);
        }
    };
    // Judged at once, into a bool: later steps may overwrite any stack copy
    // of the canary, a copy of `locals` included.
    let changed =
        |locals: [u64; 8]| locals != [STACK_CANARY.load(std::sync::atomic::Ordering::SeqCst); 8];
    // 1. Frame overrun: 8 KiB upward from C's own frame.
    // SAFETY: cd_smash_up(uint64_t, size_t) -> int: reads and writes above
    // its frame; that is the attack.
    let r: Result<i32, Error> = unsafe {
        c1.call(
            "cd_smash_up",
            fn_addr(ffi::cd_smash_up as *const ()),
            (canary ^ CD_MASK, 8usize << 10),
        )
    };
    record(
        "frame overrun",
        r.map(|n| format!("C overwrote {n} copies of the canary")),
    );
    let hit_overrun = changed(std::hint::black_box(locals));
    locals = [STACK_CANARY.load(std::sync::atomic::Ordering::SeqCst); 8];
    std::hint::black_box(&mut locals);
    // 2. From environ down: 32 KiB.
    // SAFETY: cd_environ_hunt(uint64_t, size_t) -> int: reads and writes
    // below `environ`; that is the attack.
    let r: Result<i32, Error> = unsafe {
        c2.call(
            "cd_environ_hunt",
            fn_addr(ffi::cd_environ_hunt as *const ()),
            (canary ^ CD_MASK, 32usize << 10),
        )
    };
    record("environ walk", r.map(|n| format!("C overwrote {n} copies")));
    let hit_environ = changed(std::hint::black_box(locals));
    // 3. A leaked address.
    let mut leaked = [0xC5u8; 64];
    std::hint::black_box(&mut leaked);
    // SAFETY: cd_stack_write takes (ptr, size_t); writing through the Rust
    // stack address is the attack.
    let r = unsafe {
        c3.call::<_, ()>(
            "cd_stack_write",
            fn_addr(ffi::cd_stack_write as *const ()),
            (leaked.as_mut_ptr(), 64usize),
        )
    };
    record(
        "leaked address",
        r.map(|()| "C's write returned".to_string()),
    );
    let leaked_now = std::hint::black_box(leaked);
    let hit_leak = leaked_now != [0xC5u8; 64];
    let effect = hit_overrun || hit_environ || hit_leak;
    let evidence = format!(
        "Rust locals changed by: overrun {}, environ walk {}, leaked address {} ({})",
        yes_no(hit_overrun),
        yes_no(hit_environ),
        yes_no(hit_leak),
        parts.join("; ")
    );
    observation(effect, !effect, errors.first(), evidence)
}

static STACK_CANARY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A callback that copies its first argument's bytes into its second, as an
/// ordinary binding would write it: trusting the pointers C passes.
extern "C" fn raw_copy_cb(dst: *mut u8, src: *mut u8) -> i32 {
    RAW_RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    // SAFETY: none: this is the unprotected baseline, trusting C exactly as
    // ordinary FFI code does.
    unsafe { core::ptr::copy(src, dst, 16) };
    0
}
static RAW_RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// C abuses a callback: calls it with a pointer into Rust memory, calls it
/// again after the call that passed it returned, and calls it from a thread
/// of its own.
fn callback_abuse(mode: Mode) -> Observation {
    use core::cell::Cell;
    use std::sync::atomic::Ordering;
    let c = match compartment() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let Ok(garbage) = ForeignBuf::from_slice(&[b'G'; 16]) else {
        return observation(false, true, None, "no foreign memory".into());
    };
    let g = garbage.as_foreign_ptr().as_raw();
    let target = Box::new([0x11u8; 16]);
    let t = target.as_ptr() as *mut u8;
    let (call, stored, thread) = (
        fn_addr(ffi::cd_cb_call as *const ()),
        fn_addr(ffi::cd_cb_call_stored as *const ()),
        fn_addr(ffi::cd_cb_call_in_thread as *const ()),
    );
    let mut errors = Vec::new();
    let runs: u32 = match mode {
        Mode::Unprotected => {
            let cb = raw_copy_cb as *const ();
            // SAFETY: cd_cb_call(cb, a, b) -> int etc.; the abuse is the test.
            unsafe {
                let _ = c.call::<_, i32>("cd_cb_call", call, (cb, t, g));
                let _ = c.call::<_, i32>("cd_cb_call_stored", stored, (g, g));
                let _ = c.call::<_, i32>("cd_cb_call_in_thread", thread, (cb, g, g));
            }
            RAW_RUNS.load(Ordering::SeqCst)
        }
        Mode::Protected => {
            let ran = Cell::new(0u32);
            let cb = match cofferdam::Callback::<
                fn(cofferdam::ForeignPtr<u8>, cofferdam::ForeignPtr<u8>) -> i32,
            >::with_error(-1, |dst, src| {
                ran.set(ran.get() + 1);
                // Reads through `src` are checked; `dst` could only be
                // written through the gate. Nothing Rust-side is touched.
                let _ = (dst, src.read());
                0
            }) {
                Ok(cb) => cb,
                Err(e) => return observation(false, true, Some(&e), format!("no callback: {e}")),
            };
            // SAFETY: as above; the callback is a Cofferdam stub armed for
            // the first call only.
            unsafe {
                if let Err(e) =
                    c.call_with_callbacks::<_, i32>("cd_cb_call", call, (cb.stub(), t, g), &[&cb])
                {
                    errors.push(e);
                }
                let _ = c.call::<_, i32>("cd_cb_call_stored", stored, (g, g));
                let _ = c.call_with_callbacks::<_, i32>(
                    "cd_cb_call_in_thread",
                    thread,
                    (cb.stub(), g, g),
                    &[&cb],
                );
            }
            ran.get()
        }
    };
    let intact = *target == [0x11u8; 16];
    let effect = runs > 0 || !intact;
    let evidence = format!(
        "the Rust callback ran {runs} of 3 abusive calls; the Rust object {}",
        if intact {
            "is intact"
        } else {
            "was overwritten through the callback"
        }
    );
    observation(effect, intact, errors.first(), evidence)
}

/// The Rust side's view of a C status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, cofferdam::ForeignEnum)]
#[repr(i32)]
enum Status {
    Ok = 0,
    Busy = 1,
    Gone = 5,
}

fn invalid_return(mode: Mode) -> Observation {
    let c = match compartment() {
        Ok(c) => c,
        Err(o) => return o,
    };
    let rust_object = Box::new([0u8; 16]);
    let rust_addr = rust_object.as_ptr() as *mut u8;
    let (bad_bool, bad_enum, echo) = (
        fn_addr(ffi::cd_bad_bool as *const ()),
        fn_addr(ffi::cd_bad_enum as *const ()),
        fn_addr(ffi::cd_echo_ptr as *const ()),
    );
    match mode {
        Mode::Unprotected => {
            // What an ordinary binding receives. Read as integers on purpose:
            // turning them into `bool`/`Status` unchecked would be UB here.
            // SAFETY: cd_bad_bool() -> uint8_t, cd_bad_enum() -> int,
            // cd_echo_ptr(void*) -> void*.
            let (b, e, p) = unsafe {
                (
                    c.call::<_, u8>("cd_bad_bool", bad_bool, ()),
                    c.call::<_, i32>("cd_bad_enum", bad_enum, ()),
                    c.call::<_, *mut u8>("cd_echo_ptr", echo, (rust_addr,)),
                )
            };
            let (b, e, p) = (
                b.unwrap_or(0),
                e.unwrap_or(0),
                p.unwrap_or(core::ptr::null_mut()),
            );
            let effect = b > 1 || !matches!(e, 0 | 1 | 5) || p == rust_addr;
            observation(
                effect,
                true,
                None,
                format!(
                    "unchecked, Rust would hold a bool of {b}, a Status of {e} (no such variant) and a \"foreign\" pointer {} its own heap",
                    if p == rust_addr { "into" } else { "outside" }
                ),
            )
        }
        Mode::Protected => {
            // SAFETY: as above; the returns are validated before Rust sees them.
            let (b, e, p) = unsafe {
                (
                    cofferdam::validate::call::<_, bool>(&c, "cd_bad_bool", bad_bool, ()),
                    cofferdam::validate::call::<_, Status>(&c, "cd_bad_enum", bad_enum, ()),
                    cofferdam::validate::call::<_, cofferdam::ForeignPtr<u8>>(
                        &c,
                        "cd_echo_ptr",
                        echo,
                        (rust_addr,),
                    ),
                )
            };
            let effect = b.is_ok() || e.is_ok() || p.is_ok();
            let detail = |r: Result<String, Error>| match r {
                Ok(v) => v,
                Err(err) => format!("refused ({err})"),
            };
            observation(
                effect,
                true,
                None,
                format!(
                    "bool: {}; Status: {}; pointer: {}",
                    detail(b.map(|v| format!("ACCEPTED {v}"))),
                    detail(e.map(|v| format!("ACCEPTED {v:?}"))),
                    detail(p.map(|v| format!("ACCEPTED {v:?}"))),
                ),
            )
        }
    }
}

fn have_pku() -> i32 {
    i32::from(cofferdam::read_pkru().is_some())
}

/// One step of a multi-part attack: whether it had its effect, and what
/// happened.
fn step(effect: bool, text: String) -> (bool, String) {
    (effect, text)
}

fn summarise(steps: Vec<(bool, String)>, intact: bool) -> Observation {
    let effect = steps.iter().any(|s| s.0);
    let evidence = steps
        .iter()
        .map(|(_, t)| t.as_str())
        .collect::<Vec<_>>()
        .join(" | ");
    observation(effect, intact, None, evidence)
}

fn result_text<T: core::fmt::Debug>(r: &Result<T, Error>) -> String {
    match r {
        Ok(v) => format!("returned {v:?}"),
        Err(e) => format!("refused: {e}"),
    }
}

/// The first WRPKRU (`0F 01 EF`) in the gate trampoline's code.
fn gate_wrpkru() -> *const u8 {
    let start = ffi::cofferdam_gate_call as *const () as *const u8;
    // SAFETY: reads the gate's own code bytes (mapped r-x) within its size
    // (a few hundred bytes; the scan stops at the first match).
    let code = unsafe { core::slice::from_raw_parts(start, 256) };
    code.windows(3)
        .position(|w| w == [0x0f, 0x01, 0xef])
        .map_or(core::ptr::null(), |i| start.wrapping_add(i))
}

fn rights_escalation(mode: Mode) -> Observation {
    let expected = secret("rights-escalation");
    let secret_box = Box::new(expected);
    let mut steps = Vec::new();
    let pku = have_pku();

    // (a) A library with a WRPKRU of its own.
    let out = ForeignBuf::zeroed(SECRET_LEN).expect("foreign buffer");
    match mode {
        Mode::Unprotected => {
            // An ordinary program dlopens it and calls it.
            let path = std::ffi::CString::new(ffi::WRPKRU_SO).expect("path");
            // SAFETY: dlopen/dlsym of the test library; the function has the
            // declared signature.
            let got = unsafe {
                let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
                let f = libc::dlsym(h, c"cd_lib_escalate".as_ptr());
                if f.is_null() {
                    0
                } else {
                    let f: extern "C" fn(*const u8, *mut u8, usize, i32) -> i32 =
                        core::mem::transmute(f);
                    f(
                        secret_box.as_ptr(),
                        out.as_foreign_ptr().addr() as *mut u8,
                        SECRET_LEN,
                        pku,
                    )
                }
            };
            let leaked = has_marker(&out.to_vec());
            steps.push(step(
                leaked,
                format!(
                    "(a) dlopen'ed library ran its WRPKRU and read the secret: {} ({got})",
                    printable(&out.to_vec())
                ),
            ));
        }
        Mode::Protected => {
            let r = Compartment::load("wrpkru-lib", ffi::WRPKRU_SO);
            let refused = matches!(r, Err(Error::UnsafeCode { .. }));
            let text = match &r {
                Ok(_) => "LOADED".to_string(),
                Err(e) => format!("refused: {e}"),
            };
            steps.push(step(!refused, format!("(a) Compartment::load {text}")));
        }
    }

    // (b) The library loaded behind Cofferdam's back (a linked-in object):
    // the first call is inspected.
    if mode == Mode::Protected {
        let out = ForeignBuf::zeroed(SECRET_LEN).expect("foreign buffer");
        let path = std::ffi::CString::new(ffi::WRPKRU_SO).expect("path");
        // SAFETY: dlopen/dlsym of the test library.
        let f = unsafe {
            let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            libc::dlsym(h, c"cd_lib_escalate".as_ptr())
        };
        match compartment() {
            Ok(c) => {
                // SAFETY: cd_lib_escalate(const uint8_t*, uint8_t*, size_t, int) -> int.
                let r: Result<i32, Error> = unsafe {
                    c.call(
                        "cd_lib_escalate",
                        f as *const (),
                        (secret_box.as_ptr(), out.as_foreign_ptr(), SECRET_LEN, pku),
                    )
                };
                let leaked = has_marker(&out.to_vec());
                steps.push(step(
                    leaked,
                    format!(
                        "(b) call into a loaded library with a WRPKRU: {}",
                        result_text(&r)
                    ),
                ));
            }
            Err(o) => return o,
        }
    }

    // (c) Jump onto the gate's WRPKRU with eax = 0, in a forked child (the
    // gate's check ends the call with Err(integrity); the child reports).
    let out = ForeignBuf::zeroed(SECRET_LEN).expect("foreign buffer");
    let target = gate_wrpkru();
    match mode {
        Mode::Unprotected => {
            // No gate to jump into: the foreign code reads the secret directly.
            // SAFETY: cd_gate_jump with a null target only copies.
            unsafe {
                ffi::cd_gate_jump(
                    core::ptr::null(),
                    secret_box.as_ptr(),
                    out.as_foreign_ptr().addr() as *mut u8,
                    SECRET_LEN,
                    pku,
                )
            };
            let leaked = has_marker(&out.to_vec());
            steps.push(step(
                leaked,
                format!(
                    "(c) without a gate, foreign code read the secret: {}",
                    printable(&out.to_vec())
                ),
            ));
        }
        Mode::Protected => {
            let c = match compartment() {
                Ok(c) => c,
                Err(o) => return o,
            };
            // SAFETY: fork; the child only makes the gate call and _exits.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: cd_gate_jump(void*, const uint8_t*, uint8_t*, size_t, int) -> int.
                let r: Result<i32, Error> = unsafe {
                    c.call(
                        "cd_gate_jump",
                        fn_addr(ffi::cd_gate_jump as *const ()),
                        (
                            target,
                            secret_box.as_ptr(),
                            out.as_foreign_ptr(),
                            SECRET_LEN,
                            pku,
                        ),
                    )
                };
                let leaked = has_marker(&out.to_vec());
                // SAFETY: ends the forked child.
                unsafe {
                    libc::_exit(if leaked {
                        42
                    } else if r.is_err() {
                        43
                    } else {
                        44
                    })
                };
            }
            let mut status = 0;
            // SAFETY: waits for the child just forked.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            let (leaked, text) = if libc::WIFSIGNALED(status)
                && libc::WTERMSIG(status) == libc::SIGILL
            {
                (false, "the gate's check after its WRPKRU saw eax = 0 and stopped the process (SIGILL, ud2) before the secret was read".to_string())
            } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 43 {
                (false, "the gate's check after its WRPKRU saw eax = 0 and refused: the call returned Err (integrity) and the process carried on, the secret unread".to_string())
            } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 42 {
                (
                    true,
                    "foreign code READ the secret after jumping onto the gate's WRPKRU".to_string(),
                )
            } else {
                (false, format!("the jump did not read the secret (wait status {status:#x}; no MPK: no WRPKRU to jump onto)"))
            };
            steps.push(step(leaked, format!("(c) {text}")));
        }
    }
    let intact = *secret_box == expected;
    summarise(steps, intact)
}

fn syscall_escape(_mode: Mode) -> Observation {
    let expected = secret("syscall-escape");
    let pku = have_pku();
    // A page-aligned Rust heap page holding the secret.
    let layout = std::alloc::Layout::from_size_align(4096, 4096).expect("layout");
    // SAFETY: a non-zero layout; the page is freed never (the attacks may
    // have changed its mapping).
    let page = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!page.is_null());
    // SAFETY: the page is 4096 bytes we own.
    unsafe { core::ptr::copy_nonoverlapping(expected.as_ptr(), page, SECRET_LEN) };
    let read_page = || -> [u8; SECRET_LEN] {
        let mut b = [0u8; SECRET_LEN];
        // SAFETY: volatile reads of our own page.
        for (i, x) in b.iter_mut().enumerate() {
            *x = unsafe { core::ptr::read_volatile(page.add(i)) };
        }
        b
    };
    let mut steps = Vec::new();
    let fresh = || match compartment() {
        Ok(c) => c,
        Err(o) => panic!("{}", o.evidence),
    };

    // pkey_mprotect, then read.
    let out = ForeignBuf::zeroed(SECRET_LEN).expect("foreign buffer");
    // SAFETY: cd_retag_and_read(void*, size_t, const uint8_t*, uint8_t*, size_t) -> long.
    let r: Result<i64, Error> = unsafe {
        fresh().call(
            "cd_retag_and_read",
            fn_addr(ffi::cd_retag_and_read as *const ()),
            (
                page,
                4096usize,
                page as *const u8,
                out.as_foreign_ptr(),
                SECRET_LEN,
            ),
        )
    };
    let leaked = has_marker(&out.to_vec());
    steps.push(step(
        leaked,
        format!(
            "pkey_mprotect(page, RW, 0) then read: {}{}",
            result_text(&r),
            if leaked { ", SECRET READ" } else { "" }
        ),
    ));

    // mprotect.
    // SAFETY: cd_mprotect_page(void*, size_t) -> long.
    let r: Result<i64, Error> = unsafe {
        fresh().call(
            "cd_mprotect_page",
            fn_addr(ffi::cd_mprotect_page as *const ()),
            (page, 4096usize),
        )
    };
    let changed = matches!(r, Ok(0));
    if changed {
        // Put the Rust page back so the run can go on.
        // SAFETY: our own page.
        unsafe { libc::mprotect(page.cast(), 4096, libc::PROT_READ | libc::PROT_WRITE) };
    }
    steps.push(step(
        changed,
        format!("mprotect(page, PROT_READ): {}", result_text(&r)),
    ));

    // madvise(MADV_DONTNEED).
    // SAFETY: cd_zap_page(void*, size_t) -> long.
    let r: Result<i64, Error> = unsafe {
        fresh().call(
            "cd_zap_page",
            fn_addr(ffi::cd_zap_page as *const ()),
            (page, 4096usize),
        )
    };
    let now = read_page();
    let zeroed = now != expected;
    steps.push(step(
        zeroed,
        format!(
            "madvise(page, MADV_DONTNEED): {}; the Rust page now reads \"{}\"",
            result_text(&r),
            printable(&now[..24])
        ),
    ));

    // Anonymous RWX page with a WRPKRU in it.
    // Restore the secret for the last step (the unprotected run zeroed it).
    // SAFETY: our own page.
    unsafe { core::ptr::copy_nonoverlapping(expected.as_ptr(), page, SECRET_LEN) };
    let out = ForeignBuf::zeroed(SECRET_LEN).expect("foreign buffer");
    // SAFETY: cd_rwx_wrpkru(const uint8_t*, uint8_t*, size_t, int) -> long.
    let r: Result<i64, Error> = unsafe {
        fresh().call(
            "cd_rwx_wrpkru",
            fn_addr(ffi::cd_rwx_wrpkru as *const ()),
            (page as *const u8, out.as_foreign_ptr(), SECRET_LEN, pku),
        )
    };
    let leaked = has_marker(&out.to_vec());
    steps.push(step(
        leaked || matches!(r, Ok(1)),
        format!(
            "mmap(RWX, anonymous) + WRPKRU in it: {}{}",
            result_text(&r),
            if leaked { ", SECRET READ" } else { "" }
        ),
    ));

    let intact = read_page() == expected && !zeroed;
    summarise(steps, intact)
}

/// Runs `attack` in this process, prints the observation as one line on
/// stdout and ends the process with `_exit` (no destructors: several attacks
/// leave the allocator's state in the attacker's hands on purpose).
/// What an attack means on the process backend, where foreign code runs in
/// a helper process that has none of Rust's memory: appended to the
/// protected run's evidence.
fn process_note(attack: &str) -> Option<&'static str> {
    Some(match attack {
        "overread-adjacent-secret" | "overwrite-adjacent-object" | "write-after-free"
        | "free-rust-object" => "process backend: the Rust heap is not in the helper's address space at all; a Rust address names nothing there (or the helper's own memory)",
        "recycled-secret" => "process backend: C's malloc is the helper's own heap, which never held Rust memory",
        "stack-smash" => "process backend: a stack smash cannot reach Rust's stack at all: the helper runs on stacks of its own in another address space, and a leaked Rust stack address names nothing there",
        "invalid-values" => "process backend: returns are validated in the parent exactly as on mpk",
        "callback-abuse" => "process backend: C in the helper calls a stub of the helper's own, which asks this process to run the callback; this process checks it as the reverse gate does (armed for that call only, on the calling thread, arguments by type) and a thread of the library's own is refused in the helper",
        "rights-escalation" => "process backend: a WRPKRU in the helper changes only the helper's rights, over memory that holds nothing of Rust's",
        "syscall-escape" => "process backend: the helper's syscalls act on its own address space (and its seccomp allowlist refuses pkey_mprotect); the Rust page is not there",
        "signal-entry-wrpkru" | "forged-signal-frame" | "srop" => "process backend: the jump, the forged frame and the sigreturn happen in the helper, whose rights cover nothing of Rust's; the program's signal entry is not reachable from another process",
        "handler-disarm" | "handler-disarm-kill" | "handler-disarm-raw" | "altstack-disable" | "foreign-handler" => "process backend: the signals C raises and the handlers it disarms are the helper's own; the program's fault handling is not reachable from another process, and each compartment has a helper of its own",
        "static-hijack" => "process backend: Rust's statics and thread-locals are in another address space; the helper writes only its own memory",
        "exit-handler" => "process backend: a handler the library registers runs at the helper's exit, in the helper, with nothing of Rust's in reach",
        "control-page-remap" | "stack-page-remap" => "process backend: the helper's mremap and MAP_FIXED act on its own address space; the program's thread table and stacks are not mapped there",
        "process-vm-readv" | "proc-self-mem" => "process backend: the helper reading its own memory finds nothing of Rust's; the program is another process, which the helper's allowlist, no-new-privileges and a non-dumpable parent keep it from reading (ptrace, process_vm_readv, /proc/<parent>/mem)",
        "sigaltstack-frame" => "process backend: the signal frame is written into the helper's own memory; Rust's heap is not mapped there",
        "clone-shared-tls" => "process backend: the helper's filter refuses a thread that shares the caller's TLS, and the program's callbacks are checked in the program, by thread",
        "clone-settls-impostor" => "process backend: the thread is the helper's; a callback it asks for runs in this process on the thread that made the call, checked there",
        n if n.starts_with("fatal-") => "process backend: the fault ended the compartment's helper process, not this one; renewal started a fresh helper",
        "heap-metadata-smash" => "process backend: the library's malloc is the helper's own heap, which the smash corrupts and which dies with the helper; foreign memory Rust made lives in the shared arena, whose bookkeeping is in this process, and renewal starts a fresh helper",
        "rseq-redirect" => "process backend: the rseq area and the code it would redirect are the helper's; the program's threads are not in the helper",
        _ => return None,
    })
}

/// For this package's tests: whether the mpk backend is in force. Elsewhere
/// the test skips with the reason printed, but fails under
/// `COFFERDAM_REQUIRE_MPK=1` (a broken detection never passes as a skip).
#[doc(hidden)]
pub fn mpk_or_skip(test: &str) -> bool {
    if cofferdam::backend() == Backend::Mpk {
        return true;
    }
    let why = cofferdam::info().reason;
    if std::env::var("COFFERDAM_REQUIRE_MPK").as_deref() == Ok("1") {
        panic!("{test}: COFFERDAM_REQUIRE_MPK=1 but the mpk backend is not in force: {why}");
    }
    eprintln!("skipping {test}: needs MPK ({why})");
    false
}

pub fn child_main(attack: &Attack, mode: Mode) -> ! {
    let obs = match attack.run {
        Some(run) => {
            let mut o = run(mode);
            if mode == Mode::Protected && cofferdam::backend() == Backend::Process {
                if let Some(note) = process_note(attack.name) {
                    o.evidence = format!("{}; {note}", o.evidence);
                }
            }
            o
        }
        None => observation(
            false,
            true,
            None,
            format!("not run: {}", attack.pending.unwrap_or("pending")),
        ),
    };
    let line = serde_json::to_string(&obs).expect("observation serialises");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "COFFERDAM-OBSERVATION {line}");
    let _ = out.flush();
    // SAFETY: _exit ends the process without running anything else.
    unsafe { libc::_exit(0) }
}

/// What one side of the demo reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnprotectedRun {
    /// The attack had its effect (or crashed the program).
    pub attack_succeeded: bool,
    /// What happened.
    pub evidence: String,
}

/// The protected side.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProtectedRun {
    /// The backend that ran it.
    pub backend: String,
    /// The attack's effect is absent, Rust's memory is intact, and the
    /// program survived.
    pub contained: bool,
    /// What happened.
    pub evidence: String,
}

/// One row of `cofferdam demo`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    /// The attack's name.
    pub attack: String,
    /// Its class.
    pub class: String,
    /// `run`, or `pending` when the capability it needs is missing.
    pub status: String,
    /// Whether the protected run's backend claims to contain this class.
    pub claimed: bool,
    /// The unprotected run.
    pub unprotected: UnprotectedRun,
    /// The protected run.
    pub protected: ProtectedRun,
}

/// How a child ended.
struct ChildEnd {
    observation: Option<Observation>,
    death: Option<String>,
}

fn run_child(mut cmd: Command) -> ChildEnd {
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            return ChildEnd {
                observation: None,
                death: Some(format!("could not start the child: {e}")),
            }
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let observation = stdout
        .lines()
        .find_map(|l| l.strip_prefix("COFFERDAM-OBSERVATION "))
        .and_then(|j| serde_json::from_str::<Observation>(j).ok());
    let death = if let Some(sig) = out.status.signal() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        let name = match sig {
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGABRT => "SIGABRT",
            libc::SIGBUS => "SIGBUS",
            libc::SIGILL => "SIGILL",
            _ => "a signal",
        };
        Some(if last.is_empty() {
            format!("the process was killed by {name} ({sig})")
        } else {
            format!("the process was killed by {name} ({sig}): {last}")
        })
    } else if observation.is_none() {
        Some(format!(
            "the child exited with {} and reported nothing",
            out.status
        ))
    } else {
        None
    };
    ChildEnd { observation, death }
}

/// Runs both sides of `attack`. `child` builds the command that runs
/// [`child_main`] for a mode; this function sets `COFFERDAM_BACKEND=none` for
/// the unprotected side and leaves the environment alone for the protected one.
pub fn run_attack(attack: &Attack, child: &dyn Fn(Mode) -> Command) -> Row {
    let backend = cofferdam::backend();
    let claimed = attack.claimed_by.contains(&backend);
    if let Some(why) = attack.pending {
        return Row {
            attack: attack.name.into(),
            class: attack.class.into(),
            status: "pending".into(),
            claimed,
            unprotected: UnprotectedRun {
                attack_succeeded: false,
                evidence: format!("not run yet: {why}"),
            },
            protected: ProtectedRun {
                backend: backend.name().into(),
                contained: false,
                evidence: format!("not contained yet: {why}"),
            },
        };
    }
    let mut cmd = child(Mode::Unprotected);
    cmd.env("COFFERDAM_BACKEND", "none");
    let u = run_child(cmd);
    let unprotected = match (&u.observation, &u.death) {
        (_, Some(death)) => UnprotectedRun {
            attack_succeeded: true,
            evidence: death.clone(),
        },
        (Some(o), None) => UnprotectedRun {
            attack_succeeded: o.effect,
            evidence: o.evidence.clone(),
        },
        (None, None) => unreachable!("run_child reports a death when there is no observation"),
    };
    let p = run_child(child(Mode::Protected));
    let protected = match (&p.observation, &p.death) {
        (_, Some(death)) => ProtectedRun {
            backend: backend.name().into(),
            contained: false,
            evidence: death.clone(),
        },
        (Some(o), None) => ProtectedRun {
            backend: o.backend.clone(),
            contained: !o.effect && o.intact && !o.evidence.starts_with("no compartment"),
            evidence: if o.intact {
                format!("{}; Rust's memory intact", o.evidence)
            } else {
                o.evidence.clone()
            },
        },
        (None, None) => unreachable!("run_child reports a death when there is no observation"),
    };
    Row {
        attack: attack.name.into(),
        class: attack.class.into(),
        status: "run".into(),
        claimed,
        unprotected,
        protected,
    }
}

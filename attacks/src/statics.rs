//! `static-hijack`: C goes after Rust's writable statics and thread-locals;
//! and an exit handler registered from inside a gate (`rights-escalation`).
//!
//! With Cofferdam's layout (the CLI's build script calls
//! `cofferdam_build::protect_statics()`) Rust's `.data`/`.bss` and its
//! thread-locals carry key P on the mpk backend: each write below faults in
//! C, the call returns `Err(Fault)`, and the statics keep every byte.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use cofferdam::{Compartment, Error, ForeignBuf};

use super::{
    compartment_named, has_marker, observation, printable, secret, step, Mode, Observation,
    SECRET_LEN,
};

pub mod ffi {
    //! The C side (see `c/statics.c`).
    #![allow(missing_docs)]
    extern "C" {
        pub fn cd_hijack_dispatch(slot: *mut usize, steal_into: *mut u8);
        pub fn cd_swap_word(slot: *mut u64, value: u64);
        pub fn cd_global_write(index: isize, bytes: *const u8, n: usize);
        pub fn cd_global_buf_addr() -> usize;
        pub fn cd_set_word(w: usize);
        pub fn cd_get_word() -> usize;
        pub fn cd_register_exit_handler(secret: *const u8, n: usize, fd: i32) -> i32;
        pub fn cd_key_create(with_dtor: i32) -> i32;
        pub fn cd_atfork() -> i32;
    }
}

/// A crate's dispatch pointer (as `memchr` keeps one): the function Rust
/// calls through it is chosen once and then trusted.
static DISPATCH: AtomicUsize = AtomicUsize::new(0);

/// The legitimate target of `DISPATCH`: hashes, and never copies, the
/// secret.
extern "C" fn honest_dispatch(secret: *const u8, _out: *mut u8, n: usize) -> i32 {
    // SAFETY: callers pass a readable buffer of n bytes.
    let s = unsafe { core::slice::from_raw_parts(secret, n) };
    s.iter()
        .fold(0i32, |h, &b| h.wrapping_mul(31).wrapping_add(b as i32))
}

/// A Rust static next to C's globals, for the out-of-bounds write.
static NEIGHBOUR: [AtomicUsize; 2] = [
    AtomicUsize::new(0x4e45_4947_4842_4f52),
    AtomicUsize::new(0x5255_5354_5354_4154),
];

thread_local! {
    /// A Rust thread-local (a session key, a cached allocator pointer).
    static TL_KEY: Cell<u64> = const { Cell::new(0x7433_7433_7433_7433) };
}

#[cofferdam::sandbox(compartment = "static-hijack-victim", handle = victim_compartment)]
extern "C" {
    #[cofferdam(safe)]
    #[link_name = "cd_noop"]
    fn victim_noop(x: i32) -> i32;
}

fn fn_ptr(f: *const ()) -> *const () {
    f
}

/// The bytes of every Rust static and thread-local the attack goes after.
fn snapshot(victim: &Compartment) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&DISPATCH.load(Ordering::SeqCst).to_ne_bytes());
    let slot = victim as *const Compartment as *const u8;
    // SAFETY: reads the bytes of a live &'static Compartment (the wrapper's
    // static), size_of of its type.
    v.extend_from_slice(unsafe {
        core::slice::from_raw_parts(slot, core::mem::size_of::<Compartment>())
    });
    for w in &NEIGHBOUR {
        v.extend_from_slice(&w.load(Ordering::SeqCst).to_ne_bytes());
    }
    v.extend_from_slice(&TL_KEY.with(|t| t.get()).to_ne_bytes());
    v
}

fn outcome<T: core::fmt::Debug>(r: &Result<T, Error>) -> String {
    match r {
        Ok(v) => format!("the call returned {v:?}"),
        Err(e) => format!("the call returned Err: {e}"),
    }
}

pub(crate) fn static_hijack(_mode: Mode) -> Observation {
    DISPATCH.store(honest_dispatch as *const () as usize, Ordering::SeqCst);
    let victim = match victim_compartment() {
        Ok(c) => c,
        Err(e) => return observation(false, true, Some(&e), format!("no compartment: {e}")),
    };
    let before = snapshot(victim);
    let expected = secret("static-hijack");
    let secret_box = Box::new(expected);
    let mut steps = Vec::new();

    // (a) The dispatch pointer: C points it at its own function, which Rust
    // then calls with its rights and the secret.
    let stolen = ForeignBuf::zeroed(SECRET_LEN).expect("foreign buffer");
    let c = match compartment_named("static-hijack") {
        Ok(c) => c,
        Err(o) => return o,
    };
    // SAFETY: cd_hijack_dispatch(void **, uint8_t *): writes the first.
    let r: Result<(), Error> = unsafe {
        c.call(
            "cd_hijack_dispatch",
            fn_ptr(ffi::cd_hijack_dispatch as *const ()),
            (DISPATCH.as_ptr(), stolen.as_foreign_ptr()),
        )
    };
    let f = DISPATCH.load(Ordering::SeqCst);
    // SAFETY: DISPATCH holds `honest_dispatch` unless C replaced it, in which
    // case it holds C's function of the same signature: that call is the
    // attack.
    let f: extern "C" fn(*const u8, *mut u8, usize) -> i32 = unsafe { core::mem::transmute(f) };
    let h = f(secret_box.as_ptr(), core::ptr::null_mut(), SECRET_LEN);
    let leaked = has_marker(&stolen.to_vec());
    steps.push(step(
        leaked,
        format!(
            "(a) dispatch pointer: {}; Rust's call through it returned {h:#x}, C holds {:?}",
            outcome(&r),
            printable(&stolen.to_vec())
        ),
    ));

    // (b) The wrapper's compartment static: C swaps it for a decoy's.
    let decoy = match compartment_named("static-hijack-decoy") {
        Ok(c) => c,
        Err(o) => return o,
    };
    if core::mem::size_of::<Compartment>() != 8 {
        return observation(
            false,
            true,
            None,
            "Compartment is not one pointer: attack not applicable".into(),
        );
    }
    // SAFETY: a Compartment is one Arc pointer (checked above); read its value.
    let decoy_word = unsafe { *(&decoy as *const Compartment as *const u64) };
    core::mem::forget(decoy.clone()); // the swapped-in pointer stays valid
    let c = Compartment::new("static-hijack-b").expect("compartment");
    let slot = victim as *const Compartment as *mut u64;
    // SAFETY: cd_swap_word(uint64_t *, uint64_t): writes the first.
    let r: Result<(), Error> = unsafe {
        c.call(
            "cd_swap_word",
            fn_ptr(ffi::cd_swap_word as *const ()),
            (slot, decoy_word),
        )
    };
    let now = victim_compartment()
        .map(|c| c.name().to_string())
        .unwrap_or_default();
    steps.push(step(
        now != "static-hijack-victim",
        format!(
            "(b) wrapper's compartment static: {}; the wrapper now uses {now:?}",
            outcome(&r)
        ),
    ));

    // (c) An out-of-bounds index on a C global lands on a Rust static.
    // SAFETY: cd_global_buf_addr(void) -> uintptr_t.
    let buf = unsafe { ffi::cd_global_buf_addr() };
    let target = NEIGHBOUR.as_ptr() as usize;
    let index = target.wrapping_sub(buf) as isize;
    let bytes = ForeignBuf::from_slice(b"OVERFLOWED-BY-C!").expect("foreign buffer");
    let c = Compartment::new("static-hijack-c").expect("compartment");
    // SAFETY: cd_global_write(ptrdiff_t, const uint8_t *, size_t).
    let r: Result<(), Error> = unsafe {
        c.call(
            "cd_global_write",
            fn_ptr(ffi::cd_global_write as *const ()),
            (index, bytes.as_foreign_ptr(), 16usize),
        )
    };
    let hit = NEIGHBOUR[0].load(Ordering::SeqCst) == usize::from_ne_bytes(*b"OVERFLOW");
    steps.push(step(
        hit,
        format!("(c) C global at {buf:#x}, index {index}: {}", outcome(&r)),
    ));

    // (d) A Rust thread-local.
    let tl = TL_KEY.with(|t| t.as_ptr());
    let c = Compartment::new("static-hijack-d").expect("compartment");
    // SAFETY: cd_swap_word(uint64_t *, uint64_t): writes the first.
    let r: Result<(), Error> = unsafe {
        c.call(
            "cd_swap_word",
            fn_ptr(ffi::cd_swap_word as *const ()),
            (tl, 0x5858_5858_5858_5858u64),
        )
    };
    let changed = TL_KEY.with(|t| t.get()) != 0x7433_7433_7433_7433;
    steps.push(step(changed, format!("(d) thread-local: {}", outcome(&r))));

    // The program lives on: a fresh compartment still calls C.
    let alive = Compartment::new("static-hijack-after").ok().and_then(|c| {
        // SAFETY: cd_noop(int) -> int.
        unsafe { c.call::<_, i32>("cd_noop", fn_ptr(super::ffi::cd_noop as *const ()), (1i32,)) }
            .ok()
    });
    steps.push(step(
        false,
        format!("afterwards a new compartment's call returned {alive:?}"),
    ));
    let intact = snapshot(victim) == before && alive == Some(2) && !leaked;
    super::summarise(steps, intact)
}

pub(crate) fn exit_handler(mode: Mode) -> Observation {
    let expected = secret("exit-handler");
    let secret_box = Box::new(expected);
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two descriptors into the array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return observation(false, true, None, "pipe failed".into());
    }
    let c = match compartment_named("exit-handler") {
        Ok(c) => c,
        Err(o) => return o,
    };
    // SAFETY: fork; the child registers the handler through the gate and
    // exits through exit(), which runs the handlers.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: cd_register_exit_handler(const uint8_t *, size_t, int) -> int.
        let r: Result<i32, Error> = unsafe {
            c.call(
                "cd_register_exit_handler",
                fn_ptr(ffi::cd_register_exit_handler as *const ()),
                (secret_box.as_ptr(), SECRET_LEN, fds[1]),
            )
        };
        let code = match r {
            Ok(0) => 0,
            Ok(_) => 1,
            Err(_) => 2,
        };
        // SAFETY: exit runs the registered handlers, then ends the child.
        unsafe { libc::exit(code) }
    }
    // SAFETY: our copy of the write end; the child keeps its own.
    unsafe { libc::close(fds[1]) };
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        // SAFETY: reads into a local buffer.
        let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        got.extend_from_slice(&buf[..n as usize]);
    }
    let mut status = 0;
    // SAFETY: waits for our child.
    unsafe {
        libc::close(fds[0]);
        libc::waitpid(pid, &mut status, 0);
    }
    let registered = match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
        (true, 0) => "atexit() accepted the handler",
        (true, 1) => "atexit() refused the handler",
        (true, _) => "the registering call failed",
        _ => "the child died",
    };
    let leaked = has_marker(&got);
    let _ = mode;
    observation(
        leaked,
        *secret_box == expected,
        None,
        format!(
            "{registered}; at exit the handler {}",
            if leaked {
                format!(
                    "read the Rust secret with Rust's rights: {}",
                    printable(&got)
                )
            } else if got.is_empty() {
                "did not run (or read nothing)".to_string()
            } else {
                format!("wrote {} bytes without the secret", got.len())
            }
        ),
    )
}

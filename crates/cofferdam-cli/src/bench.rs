//! `cofferdam bench`: figures measured side by side in one run.
//!
//! Each workload runs its variants in interleaved rounds (A B C A B C …) and
//! reports each variant's median over the rounds, so that a noisy neighbour
//! slows all variants alike and the ratios stay meaningful.

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use cofferdam::{Compartment, ProtectedAlloc};
use cofferdam_attacks::ffi::cd_noop;
use serde_json::{json, Value};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// This thread's CPU time in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`): time
/// the thread spent descheduled (other programs on a shared machine) is
/// not counted.
fn thread_cpu_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "CLOCK_THREAD_CPUTIME_ID");
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

/// Nanoseconds per iteration of `f` over `iters` iterations, in this
/// thread's CPU time (a busy machine deschedules the benchmark; wall-clock
/// time would charge that to whichever variant was running).
fn time_per_iter(iters: u64, mut f: impl FnMut(u64)) -> f64 {
    if wall_clock() {
        return wall_per_iter(iters, f);
    }
    let t = thread_cpu_ns();
    for i in 0..iters {
        f(i);
    }
    (thread_cpu_ns() - t) as f64 / iters as f64
}

/// Whether the per-call workloads time with the wall clock: on the process
/// backend a call waits for another process, often asleep on a futex,
/// which this thread's CPU time does not count.
fn wall_clock() -> bool {
    cofferdam::backend() == cofferdam::Backend::Process
}

fn timer_name() -> &'static str {
    if wall_clock() {
        "wall clock (process backend: the caller sleeps while the helper works)"
    } else {
        "thread CPU time"
    }
}

/// Nanoseconds per call of `f`, by the wall clock.
fn wall_per_iter(iters: u64, mut f: impl FnMut(u64)) -> f64 {
    let t = Instant::now();
    for i in 0..iters {
        f(i);
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

fn null_call(rounds: usize, iters: u64) -> Result<Value, String> {
    let c = Compartment::new("bench").map_err(|e| format!("no compartment: {e}"))?;
    let noop: extern "C" fn(i32) -> i32 = cd_noop_safe;
    let has_floor = floor_call(noop, 0).is_some();
    let (mut bare, mut floor, mut gate) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        bare.push(time_per_iter(iters, |i| {
            black_box(black_box(noop)(i as i32));
        }));
        if has_floor {
            floor.push(time_per_iter(iters, |i| {
                black_box(floor_call(black_box(noop), i as i32));
            }));
        }
        gate.push(time_per_iter(iters, |i| {
            // SAFETY: cd_noop takes an int and returns an int.
            let r: Result<i32, _> =
                unsafe { c.call("cd_noop", black_box(cd_noop as *const ()), (i as i32,)) };
            black_box(r.expect("cd_noop does not fault"));
        }));
    }
    let bare = median(bare);
    let gate = median(gate);
    let floor = has_floor.then(|| median(floor));
    Ok(json!({
        "name": "null-call",
        "backend": c.backend().name(),
        "bare_ns": round2(bare),
        "floor_ns": floor.map(round2),
        "gate_ns": round2(gate),
        "gate_over_floor": floor.map(|f| round2(gate / f)),
        "gate_over_bare": round2(gate / bare),
        "rounds": rounds,
        "iterations_per_round": iters,
        "floor_built": cfg!(feature = "bench-floor"),
        "timer": timer_name(),
        "note": if has_floor {
            Value::Null
        } else if !cfg!(feature = "bench-floor") {
            json!("built without the bench-floor feature: no WRPKRU floor")
        } else {
            json!("no MPK here: no WRPKRU floor; the gate runs without PKRU switches")
        },
    }))
}

/// The gate's null call on a thread whose crossings back also check the
/// kernel's thread id (`gettid`: where foreign code handed the thread's FS
/// base to a thread of its own), beside the same call on a thread without
/// the check, rounds alternating between the two threads.
fn null_call_thread_id(rounds: usize, iters: u64) -> Result<Value, String> {
    use std::sync::mpsc;
    let c = Compartment::new("bench-thread-id").map_err(|e| format!("no compartment: {e}"))?;
    let run = move |c: &Compartment| {
        time_per_iter(iters, |i| {
            // SAFETY: cd_noop takes an int and returns an int.
            let r: Result<i32, _> =
                unsafe { c.call("cd_noop", black_box(cd_noop as *const ()), (i as i32,)) };
            black_box(r.expect("cd_noop does not fault"));
        })
    };
    let (go_tx, go_rx) = mpsc::channel::<bool>();
    let (done_tx, done_rx) = mpsc::channel::<Result<f64, String>>();
    let cm = c.clone();
    let marked = std::thread::spawn(move || {
        if let Err(e) = cofferdam::check_thread_id_on_this_thread() {
            let _ = done_tx.send(Err(e.to_string()));
            return;
        }
        while let Ok(true) = go_rx.recv() {
            if done_tx.send(Ok(run(&cm))).is_err() {
                return;
            }
        }
    });
    let (mut plain, mut checked) = (vec![], vec![]);
    for _ in 0..rounds {
        plain.push(run(&c));
        let _ = go_tx.send(true);
        match done_rx.recv() {
            Ok(Ok(ns)) => checked.push(ns),
            Ok(Err(e)) => return Err(format!("cannot mark a thread: {e}")),
            Err(_) => return Err("the marked thread ended".into()),
        }
    }
    let _ = go_tx.send(false);
    let _ = marked.join();
    let (plain, checked) = (median(plain), median(checked));
    Ok(json!({
        "name": "null-call-thread-id",
        "backend": c.backend().name(),
        "gate_ns": round2(plain),
        "gate_thread_id_checked_ns": round2(checked),
        "checked_over_plain": round2(checked / plain),
        "timer": timer_name(),
        "rounds": rounds,
        "iterations_per_round": iters,
        "note": "the same null call on two threads, rounds alternating: one whose crossings back also compare gettid with its entry (as where foreign code gave its FS base to a thread of its own), one without",
    }))
}

mod sandboxed {
    // The same C function as `null-call`'s, behind a `#[cofferdam::sandbox]`
    // wrapper: what a user of the library writes.
    #[cofferdam::sandbox(compartment = "bench-sandbox", safe(cd_noop))]
    extern "C" {
        pub fn cd_noop(x: core::ffi::c_int) -> core::ffi::c_int;
    }
}

/// A `#[cofferdam::sandbox]` wrapper against a raw `Compartment::call_regs`
/// of the same function through the same compartment: what the wrapper
/// (compartment lookup, poisoned check, first-call inspection, argument
/// and return handling) adds to a gate call.
fn sandbox_call(rounds: usize, iters: u64) -> Result<Value, String> {
    sandboxed::cd_noop(0).map_err(|e| format!("sandbox wrapper: {e}"))?;
    let c = sandboxed::bench_sandbox_compartment().map_err(|e| format!("no compartment: {e}"))?;
    let (mut raw, mut wrapped) = (vec![], vec![]);
    for _ in 0..rounds {
        raw.push(time_per_iter(iters, |i| {
            let regs = cofferdam::CallRegs {
                ints: [i as i32 as u64, 0, 0, 0, 0, 0],
                ..cofferdam::CallRegs::default()
            };
            // SAFETY: cd_noop takes an int and returns an int.
            let r = unsafe { c.call_regs("cd_noop", black_box(cd_noop as *const ()), &regs) };
            black_box(r.expect("cd_noop does not fault").rax as i32);
        }));
        wrapped.push(time_per_iter(iters, |i| {
            black_box(sandboxed::cd_noop(black_box(i as i32)).expect("cd_noop does not fault"));
        }));
    }
    let raw = median(raw);
    let wrapped = median(wrapped);
    Ok(json!({
        "name": "sandbox-call",
        "backend": c.backend().name(),
        "call_regs_ns": round2(raw),
        "sandbox_ns": round2(wrapped),
        "sandbox_minus_call_regs_ns": round2(wrapped - raw),
        "timer": timer_name(),
        "rounds": rounds,
        "iterations_per_round": iters,
        "note": "the same C function (cd_noop), same compartment: Compartment::call_regs against the #[cofferdam::sandbox] wrapper",
    }))
}

/// The WRPKRU-pair floor, where it is built in and MPK is in force.
fn floor_call(f: extern "C" fn(i32) -> i32, x: i32) -> Option<i32> {
    #[cfg(feature = "bench-floor")]
    {
        cofferdam::wrpkru_pair_call(f, x)
    }
    #[cfg(not(feature = "bench-floor"))]
    {
        let _ = (f, x);
        None
    }
}

extern "C" fn bare_cmp(a: *const core::ffi::c_void, b: *const core::ffi::c_void) -> i32 {
    // SAFETY: qsort passes pointers to two elements of the c_int array.
    let (a, b) = unsafe { (*(a as *const i32), *(b as *const i32)) };
    a.cmp(&b) as i32
}

/// qsort over 100,000 integers with a Rust comparator: bare (an `extern "C"
/// fn` given to qsort directly) against gated (qsort through the gate, the
/// comparator a `Callback` behind the reverse gate, reading its arguments
/// through checked `ForeignPtr::read`s). Same input each round, copied in
/// outside the timing.
fn callback_qsort(rounds: usize) -> Result<Value, String> {
    use core::ffi::c_int;
    const N: usize = 100_000;
    let c = Compartment::new("bench-callback").map_err(|e| format!("no compartment: {e}"))?;
    let mut x: u32 = 0x9E37_79B9;
    let input: Vec<c_int> = (0..N)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as c_int
        })
        .collect();
    let mut want = input.clone();
    want.sort();
    let cmp = cofferdam::Callback::<
        fn(cofferdam::ForeignPtr<c_int>, cofferdam::ForeignPtr<c_int>) -> c_int,
    >::new(|a, b| match (a.read(), b.read()) {
        (Ok(a), Ok(b)) => a.cmp(&b) as c_int,
        _ => 0,
    })
    .map_err(|e| format!("no callback: {e}"))?;
    // On an in-process backend, the same sort through a process compartment
    // beside it (the comparator runs in this process either way).
    let pc = if c.backend() == cofferdam::Backend::Process {
        None
    } else {
        Some(
            Compartment::builder("bench-callback-process")
                .backend(cofferdam::Backend::Process)
                .build()
                .map_err(|e| format!("no process compartment: {e}"))?,
        )
    };
    let (mut bare, mut gate, mut process) = (vec![], vec![], vec![]);
    let mut plain = input.clone();
    for _ in 0..rounds {
        plain.copy_from_slice(&input);
        let t = Instant::now();
        // SAFETY: qsort over `plain`'s N ints with a comparator of the right
        // signature.
        unsafe {
            libc::qsort(
                plain.as_mut_ptr().cast(),
                N,
                4,
                Some(core::mem::transmute::<
                    extern "C" fn(*const core::ffi::c_void, *const core::ffi::c_void) -> i32,
                    unsafe extern "C" fn(*const core::ffi::c_void, *const core::ffi::c_void) -> i32,
                >(bare_cmp)),
            )
        };
        bare.push(t.elapsed().as_nanos() as f64);
        if plain != want {
            return Err("bare qsort did not sort".into());
        }
        let v = cofferdam::ForeignVec::<c_int>::from_slice(&input).map_err(|e| e.to_string())?;
        let t = Instant::now();
        // SAFETY: qsort(void *base, size_t n, size_t size, comparator) over
        // v's N ints, the comparator a Cofferdam callback armed for it.
        let r: Result<(), _> = unsafe {
            c.call_with_callbacks(
                "qsort",
                libc::qsort as *const (),
                (v.as_foreign_ptr(), N, 4usize, cmp.stub()),
                &[&cmp],
            )
        };
        gate.push(t.elapsed().as_nanos() as f64);
        r.map_err(|e| format!("gated qsort: {e}"))?;
        if v.to_vec() != want {
            return Err("gated qsort did not sort".into());
        }
        if let Some(pc) = &pc {
            let v =
                cofferdam::ForeignVec::<c_int>::from_slice(&input).map_err(|e| e.to_string())?;
            let t = Instant::now();
            // SAFETY: as above, in the helper's libc.
            let r: Result<(), _> = unsafe {
                pc.call_with_callbacks(
                    "qsort",
                    libc::qsort as *const (),
                    (v.as_foreign_ptr(), N, 4usize, cmp.stub()),
                    &[&cmp],
                )
            };
            process.push(t.elapsed().as_nanos() as f64);
            r.map_err(|e| format!("qsort in a helper: {e}"))?;
            if v.to_vec() != want {
                return Err("qsort in a helper did not sort".into());
            }
        }
    }
    let process = (!process.is_empty()).then(|| median(process));
    let (bare, gate) = (median(bare), median(gate));
    Ok(json!({
        "name": "callback",
        "backend": c.backend().name(),
        "description": "qsort of 100,000 ints with a Rust comparator",
        "bare_ns": round2(bare),
        "gate_ns": round2(gate),
        "gate_over_bare": round2(gate / bare),
        "process_ns": process.map(round2),
        "process_over_bare": process.map(|p| round2(p / bare)),
        "rounds": rounds,
    }))
}

extern "C" fn cd_noop_safe(x: i32) -> i32 {
    // SAFETY: cd_noop is a pure C function of one int.
    unsafe { cd_noop(x) }
}

/// Thread creation with one gate call: spawn, first call (the thread's
/// state, foreign stack, tagged stack and thread-locals), join (untagging).
/// Against spawn and join alone, interleaved.
fn thread_first_call(rounds: usize, threads: usize) -> Result<Value, String> {
    let c = Compartment::new("bench-threads").map_err(|e| e.to_string())?;
    let (mut plain, mut gated) = (vec![], vec![]);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..threads {
            std::thread::spawn(|| std::hint::black_box(1))
                .join()
                .map_err(|_| "thread panicked")?;
        }
        plain.push(t.elapsed().as_nanos() as f64 / threads as f64);
        let t = Instant::now();
        for _ in 0..threads {
            let c = c.clone();
            let r = std::thread::spawn(move || {
                // SAFETY: cd_noop(int) -> int.
                unsafe { c.call::<_, i32>("cd_noop", cd_noop as *const (), (1i32,)) }
            })
            .join()
            .map_err(|_| "thread panicked")?;
            r.map_err(|e| e.to_string())?;
        }
        gated.push(t.elapsed().as_nanos() as f64 / threads as f64);
    }
    let (plain, gated) = (median(plain), median(gated));
    Ok(json!({
        "name": "thread-first-call",
        "backend": c.backend().name(),
        "description": "spawn a thread, one gate call on it, join; against spawn and join alone",
        "spawn_join_ns": round2(plain),
        "spawn_call_join_ns": round2(gated),
        "first_call_extra_ns": round2(gated - plain),
        "statics": cofferdam::info().thread_locals_unprotected.unwrap_or_else(|| "protected".into()),
        "rounds": rounds,
    }))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A multi-threaded allocation-heavy workload: each thread keeps a window of
/// live blocks of pseudo-random sizes (16 B – 4 KiB, a few up to 64 KiB) and
/// replaces one per step. The same sequence runs against each allocator.
fn alloc_workload(
    threads: usize,
    ops: u64,
    alloc: fn(usize) -> *mut u8,
    free: fn(*mut u8, usize),
) -> f64 {
    let t = Instant::now();
    std::thread::scope(|s| {
        for tid in 0..threads {
            s.spawn(move || {
                const WINDOW: usize = 512;
                let mut live: Vec<(*mut u8, usize)> = vec![(std::ptr::null_mut(), 0); WINDOW];
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ tid as u64;
                for i in 0..ops {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let size = if x % 64 == 0 {
                        4096 + (x >> 8) as usize % 61440
                    } else {
                        16 + (x >> 8) as usize % 4080
                    };
                    let slot = (i as usize) % WINDOW;
                    let (old, old_size) = live[slot];
                    if !old.is_null() {
                        free(old, old_size);
                    }
                    let p = alloc(size);
                    assert!(!p.is_null(), "allocation failed");
                    // Touch the block as a program would.
                    // SAFETY: p is a fresh block of `size` >= 16 bytes.
                    unsafe {
                        p.write(i as u8);
                        p.add(size - 1).write(i as u8);
                    }
                    live[slot] = (p, size);
                }
                for (p, size) in live {
                    if !p.is_null() {
                        free(p, size);
                    }
                }
            });
        }
    });
    t.elapsed().as_nanos() as f64 / (threads as u64 * ops) as f64
}

fn glibc_alloc(size: usize) -> *mut u8 {
    // SAFETY: malloc with a non-zero size.
    unsafe { libc::malloc(size).cast() }
}
fn glibc_free(p: *mut u8, _: usize) {
    // SAFETY: p came from glibc_alloc.
    unsafe { libc::free(p.cast()) }
}
fn mimalloc_alloc(size: usize) -> *mut u8 {
    // SAFETY: mi_malloc with a non-zero size.
    unsafe { libmimalloc_sys::mi_malloc(size).cast() }
}
fn mimalloc_free(p: *mut u8, _: usize) {
    // SAFETY: p came from mimalloc_alloc.
    unsafe { libmimalloc_sys::mi_free(p.cast()) }
}
fn protected_alloc(size: usize) -> *mut u8 {
    // SAFETY: a valid non-zero layout.
    unsafe { ProtectedAlloc.alloc(Layout::from_size_align_unchecked(size, 8)) }
}
fn protected_free(p: *mut u8, size: usize) {
    // SAFETY: p came from protected_alloc with this layout.
    unsafe { ProtectedAlloc.dealloc(p, Layout::from_size_align_unchecked(size, 8)) }
}

fn alloc_mt(rounds: usize, threads: usize, ops: u64) -> Value {
    let (mut g, mut m, mut p) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        g.push(alloc_workload(threads, ops, glibc_alloc, glibc_free));
        m.push(alloc_workload(threads, ops, mimalloc_alloc, mimalloc_free));
        p.push(alloc_workload(
            threads,
            ops,
            protected_alloc,
            protected_free,
        ));
    }
    let (g, m, p) = (median(g), median(m), median(p));
    json!({
        "name": format!("alloc-mt-{threads}threads"),
        "glibc_ns": round2(g),
        "mimalloc_ns": round2(m),
        "protected_ns": round2(p),
        "protected_over_mimalloc": round2(p / m),
        "protected_over_glibc": round2(p / g),
        "heap_protected": cofferdam::info().heap_protected,
        "rounds": rounds,
        "ops_per_thread": ops,
    })
}

/// ns per syscall from trusted code: (`read` of 1 byte from /dev/zero,
/// `mmap` of a page without `MAP_FIXED` + `munmap`, `mmap(MAP_FIXED)` of a
/// page over our own, `mprotect` of our own page). Under the guard the
/// first is on the allowlist (the kernel's filter cache passes it), the
/// non-fixed `mmap` is decided by the filter, its `munmap` by the supervisor thread, and the last
/// two trap and are re-issued by the SIGSYS handler.
fn syscall_set(rounds: usize, iters: u64) -> [f64; 4] {
    // SAFETY: a fresh anonymous page of our own, and a file we open.
    let (page, fd) = unsafe {
        let p = libc::mmap(
            core::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        (p, libc::open(c"/dev/zero".as_ptr(), libc::O_RDONLY))
    };
    let mut byte = 0u8;
    let m =
        |f: &mut dyn FnMut()| median((0..rounds).map(|_| time_per_iter(iters, |_| f())).collect());
    let rd = m(&mut || {
        // SAFETY: reads one byte into `byte`.
        unsafe { libc::read(fd, (&mut byte as *mut u8).cast(), 1) };
    });
    let map = m(&mut || {
        // SAFETY: a fresh private page, unmapped at once.
        unsafe {
            let p = libc::mmap(
                core::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            libc::munmap(p, 4096);
        }
    });
    let fixed = m(&mut || {
        // SAFETY: replaces our own page with a fresh one (same protection).
        unsafe {
            libc::mmap(
                page,
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
    });
    let mp = m(&mut || {
        // SAFETY: our own page; same protection each time.
        unsafe { libc::mprotect(page, 4096, libc::PROT_READ | libc::PROT_WRITE) };
    });
    // SAFETY: ours.
    unsafe {
        libc::close(fd);
        libc::munmap(page, 4096);
    }
    [rd, map, fixed, mp]
}

/// The syscall guard's cost for trusted code's syscalls: measured in this
/// process before the first compartment (no filter) and after it (filter
/// installed where the guard is on), side by side.
fn syscall_guard(rounds: usize, iters: u64) -> Value {
    let iters = iters / 20;
    let before = syscall_set(rounds, iters);
    let _c = cofferdam::Compartment::new("bench-guard");
    let on = cofferdam::info().guard.syscall_guard;
    let after = syscall_set(rounds, iters);
    let row = |i: usize| json!({"without": round2(before[i]), "with": round2(after[i]), "ratio": round2(after[i] / before[i])});
    json!({
        "name": "syscall_guard",
        "guard_on": on,
        "guard_reason": cofferdam::info().guard.reason,
        "read_1_byte_ns (allowed)": row(0),
        "mmap_munmap_page_ns (mmap allowed, munmap decided by the supervisor thread)": row(1),
        "mmap_fixed_page_ns (trapped, re-issued)": row(2),
        "mprotect_page_ns (trapped, re-issued)": row(3),
        "note": "trusted code's calls, same process, before and after the first compartment installs the filter; trapped calls go through SIGSYS and the handler's re-issue",
    })
}

/// The process backend's round trip: a null call into a helper process,
/// with no spin (a futex wake each way), the default bounded spin, and a
/// long spin.
fn process_call(rounds: usize, iters: u64) -> Result<Value, String> {
    const SPINS: [u32; 3] = [0, 200, 4000];
    let mut cs = Vec::new();
    for spin in SPINS {
        cs.push(
            Compartment::builder("bench-process")
                .backend(cofferdam::Backend::Process)
                .spin(spin)
                .build()
                .map_err(|e| format!("no process compartment: {e}"))?,
        );
    }
    let mut times = vec![Vec::new(); SPINS.len()];
    for _ in 0..rounds {
        for (c, out) in cs.iter().zip(times.iter_mut()) {
            out.push(wall_per_iter(iters, |i| {
                // SAFETY: cd_noop takes an int and returns an int.
                let r: Result<i32, _> =
                    unsafe { c.call("cd_noop", black_box(cd_noop as *const ()), (i as i32,)) };
                black_box(r.expect("cd_noop does not fault"));
            }));
        }
    }
    let m: Vec<f64> = times.into_iter().map(median).collect();
    Ok(json!({
        "name": "process-null-call",
        "backend": "process",
        "futex_only_ns": round2(m[0]),
        "spin_200_ns": round2(m[1]),
        "spin_4000_ns": round2(m[2]),
        "default_spin": 200,
        "timer": "wall clock",
        "iterations_per_round": iters,
        "rounds": rounds,
        "note": "round trip to a helper process through its shared slot: both sides spin N pauses before sleeping on a futex; 0 is a futex wake each way",
    }))
}

/// Runs `cofferdam bench --json --only <only>` again under
/// `COFFERDAM_BACKEND=process` and returns its workloads.
fn process_rows(quick: bool, only: &str) -> Result<Vec<Value>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["bench", "--json", "--only", only])
        .env("COFFERDAM_BACKEND", "process");
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    v["workloads"]
        .as_array()
        .cloned()
        .ok_or_else(|| "no workloads in its output".to_string())
}

/// Runs the workloads (all, or those whose name starts with one of the
/// comma-separated prefixes in `only`) and prints their figures.
pub fn run(json_out: bool, quick: bool, only: Option<&str>) -> ExitCode {
    let (rounds, iters, ops) = if quick {
        (3, 200_000, 50_000)
    } else {
        (15, 2_000_000, 1_000_000)
    };
    let want = |name: &str| only.is_none_or(|o| o.split(',').any(|p| name.starts_with(p)));
    let mut workloads = vec![];
    if want("syscall_guard") {
        workloads.push(syscall_guard(rounds, iters));
    }
    if want("null-call") {
        match null_call(rounds, iters) {
            Ok(v) => workloads.push(v),
            Err(e) => {
                eprintln!("cofferdam bench: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if want("null-call-thread-id") {
        match null_call_thread_id(rounds, iters) {
            Ok(v) => workloads.push(v),
            Err(e) => {
                eprintln!("cofferdam bench: null-call-thread-id: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if want("sandbox-call") {
        match sandbox_call(rounds, iters) {
            Ok(v) => workloads.push(v),
            Err(e) => {
                eprintln!("cofferdam bench: sandbox-call: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if want("process-null-call") {
        let (prounds, piters) = if quick { (3, 5_000) } else { (9, 50_000) };
        match process_call(prounds, piters) {
            Ok(v) => workloads.push(v),
            Err(e) => {
                eprintln!("cofferdam bench: process: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // Real libraries behind the gate, each bare and gated in the same run.
    // They run before the allocator workloads, whose threads leave the
    // process's heaps and caches in a state that slows both sides of the
    // sqlite workload (measured: bare and gated alike, by a third).
    let real_rounds = if quick { 1 } else { 9 };
    if want("callback") {
        match callback_qsort(real_rounds) {
            Ok(v) => workloads.push(v),
            Err(e) => {
                eprintln!("cofferdam bench: callback: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if want("thread-first-call") {
        match thread_first_call(rounds.min(9), if quick { 100 } else { 1000 }) {
            Ok(v) => workloads.push(v),
            Err(e) => {
                eprintln!("cofferdam bench: threads: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if want("zlib") {
        workloads.extend(cofferdam_example_zlib::bench(real_rounds));
    }
    if want("sqlite") {
        workloads.extend(cofferdam_example_sqlite::bench(real_rounds));
    }
    // The same libraries on the process backend, beside: their wrappers'
    // compartments take the program's backend, so they run in a second
    // `cofferdam bench` under COFFERDAM_BACKEND=process, whose rows (backend
    // "process") are added here.
    let libs: Vec<&str> = ["zlib", "sqlite"].into_iter().filter(|w| want(w)).collect();
    if !libs.is_empty() && !wall_clock() {
        match process_rows(quick, &libs.join(",")) {
            Ok(rows) => workloads.extend(rows),
            Err(e) => {
                eprintln!("cofferdam bench: the process backend's run: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if want("alloc-mt-2threads") {
        workloads.push(alloc_mt(rounds.min(7), 2, ops));
    }
    if want("alloc-mt-4threads") {
        workloads.push(alloc_mt(rounds.min(7), 4, ops / 2));
    }
    let out = json!({ "workloads": workloads });
    if json_out {
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        for w in &workloads {
            println!("{}", w["name"].as_str().unwrap_or("?"));
            for (k, v) in w.as_object().expect("object") {
                if k != "name" {
                    println!("  {k:<24} {v}");
                }
            }
        }
    }
    ExitCode::SUCCESS
}

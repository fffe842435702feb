//! C heaps per compartment: routing of `malloc` and friends, quarantine of a
//! poisoned compartment's heap, and a program that survives one
//! compartment's smashed heap. On `mpk` in process (skipping with the reason
//! where the CPU lacks `pku`, failing under `COFFERDAM_REQUIRE_MPK=1`), on
//! `split` in a child process, the survival once more on `process` (in a
//! child), and the smash on `none` (in a child) to show that it kills an
//! unprotected program.

mod common;

use cofferdam::{Backend, Compartment, Error, ForeignBox, ForeignBuf, ForeignPtr};
use cofferdam_attacks::ffi;

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

/// Set in the child that runs a test again on another backend.
const CHILD: &str = "COFFERDAM_TEST_HEAPS_CHILD";

/// Whether to run here: on `mpk` (skipping where it is missing, failing
/// under `COFFERDAM_REQUIRE_MPK=1`), or on the backend a parent asked for.
fn run_here(test: &str) -> bool {
    if let Some(b) = std::env::var_os(CHILD) {
        assert_eq!(
            cofferdam::backend().name(),
            b.to_str().unwrap(),
            "{test}: child on the wrong backend"
        );
        return true;
    }
    common::mpk_or_skip(test)
}

fn malloc_in(c: &Compartment, n: usize) -> Result<usize, Error> {
    // SAFETY: cd_malloc(size_t) -> void *.
    unsafe { c.call("cd_malloc", ffi::cd_malloc as *const (), (n,)) }
}

fn free_in(c: &Compartment, p: usize) -> Result<(), Error> {
    // SAFETY: cd_free(void *) frees a malloc'ed block (or nothing for null).
    unsafe { c.call("cd_free", ffi::cd_free as *const (), (p as *mut u8,)) }
}

fn churn(c: &Compartment, rounds: i32) -> Result<i32, Error> {
    // SAFETY: cd_heap_churn(int) -> int.
    unsafe { c.call("cd_heap_churn", ffi::cd_heap_churn as *const (), (rounds,)) }
}

/// Whether `addr` can be read (a fault-tolerant read).
fn readable(addr: usize) -> bool {
    ForeignPtr::<u8>::from_addr(addr).read().is_ok()
}

#[test]
fn malloc_inside_a_gate_is_served_from_the_compartments_heap() {
    if !run_here("malloc_inside_a_gate_is_served_from_the_compartments_heap") {
        return;
    }
    let a = Compartment::new("heap-a").unwrap();
    let b = Compartment::new("heap-b").unwrap();

    // Inside a gate: the calling compartment's heap, each its own.
    let pa = malloc_in(&a, 100).unwrap();
    let pb = malloc_in(&b, 100).unwrap();
    assert!(
        a.owns(ForeignPtr::<u8>::from_addr(pa)),
        "{pa:#x} not in a's heap"
    );
    assert!(
        b.owns(ForeignPtr::<u8>::from_addr(pb)),
        "{pb:#x} not in b's heap"
    );
    assert!(!a.owns(ForeignPtr::<u8>::from_addr(pb)));
    // Through glibc's internal malloc too (strdup).
    let text = ForeignBuf::from_str_nul("cofferdam").unwrap();
    // SAFETY: cd_strdup(const char *) -> char *.
    let dup: usize = unsafe {
        a.call(
            "cd_strdup",
            ffi::cd_strdup as *const (),
            (text.as_foreign_ptr(),),
        )
    }
    .unwrap();
    assert!(a.owns(ForeignPtr::<u8>::from_addr(dup)), "strdup: {dup:#x}");
    assert_eq!(
        a.read_foreign_cstr(ForeignPtr::<u8>::from_addr(dup), 64)
            .unwrap(),
        b"cofferdam"
    );

    // Outside any gate: the C library's heap, in no compartment's.
    // SAFETY: a plain call of C's malloc wrapper.
    let outside = unsafe { ffi::cd_malloc(100) } as usize;
    assert_ne!(outside, 0);
    assert!(!a.owns(ForeignPtr::<u8>::from_addr(outside)));
    assert!(!b.owns(ForeignPtr::<u8>::from_addr(outside)));
    assert!(!cofferdam::is_protected_region(outside));
    // SAFETY: a live block of glibc's.
    assert!(unsafe { libc::malloc_usable_size(outside as *mut _) } >= 100);
    // SAFETY: as above.
    assert!(unsafe { libc::malloc_usable_size(pa as *mut _) } >= 100);

    // free works from anywhere, for either kind: a compartment block freed
    // by trusted code is reused by the next allocation of its size...
    // SAFETY: pa is a live block nobody else frees.
    unsafe { libc::free(pa as *mut _) };
    assert_eq!(malloc_in(&a, 100).unwrap(), pa, "freed block not reused");
    // ...a compartment block freed by another compartment's foreign code,
    free_in(&b, pa).unwrap();
    assert_eq!(malloc_in(&a, 100).unwrap(), pa, "freed block not reused");
    // ...and glibc blocks freed by foreign code inside a gate.
    free_in(&a, outside).unwrap();
    free_in(&a, pa).unwrap();
    free_in(&b, pb).unwrap();
    free_in(&a, dup).unwrap();

    // Foreign memory made for a compartment lives in its heap; made
    // without one, in Cofferdam's own (no compartment's).
    let boxed = ForeignBox::new_in(&a, 7u64).unwrap();
    assert!(a.owns(boxed.as_foreign_ptr()));
    let shared = ForeignBuf::zeroed(64).unwrap();
    assert!(!a.owns(shared.as_foreign_ptr()) && !b.owns(shared.as_foreign_ptr()));
    assert!(!cofferdam::is_protected_region(
        shared.as_foreign_ptr().addr()
    ));
    // A block foreign code allocated, adopted by Rust, freed on drop.
    let adopted = malloc_in(&b, 8).unwrap();
    // SAFETY: an 8-byte block malloc'ed in b's heap, given to Rust.
    let adopted = unsafe { ForeignBox::<u64>::from_foreign(ForeignPtr::from_addr(adopted)) };
    adopted.set(5);
    let at = adopted.as_foreign_ptr().addr();
    drop(adopted);
    assert_eq!(malloc_in(&b, 8).unwrap(), at, "adopted block not freed");
}

#[test]
fn a_poisoned_compartments_heap_is_quarantined_then_discarded() {
    if !run_here("a_poisoned_compartments_heap_is_quarantined_then_discarded") {
        return;
    }
    let c = Compartment::new("quarantined").unwrap();
    // Reads go through another compartment (this one's heap is not touched).
    let other = Compartment::new("reader").unwrap();
    let prober = Compartment::new("prober").unwrap();
    // The allocator's bookkeeping around a block (its header lies in the
    // 32 bytes before it), as foreign memory holds it now.
    let around = |addr: usize| {
        other
            .read_foreign(ForeignPtr::<u8>::from_addr(addr - 32), 96)
            .unwrap()
    };
    // Control: on a healthy heap, a drop runs the allocator, which rewrites
    // the block's header.
    let healthy = ForeignBuf::from_slice_in(&c, &[0xAB; 64]).unwrap();
    let h_addr = healthy.as_foreign_ptr().addr();
    let before = around(h_addr);
    drop(healthy);
    assert_ne!(around(h_addr), before, "a drop did not free the block");

    let kept = ForeignBuf::from_slice_in(&c, &[0xCD; 64]).unwrap();
    let dropped = ForeignBuf::from_slice_in(&c, &[0xEF; 64]).unwrap();
    let (k_addr, d_addr) = (
        kept.as_foreign_ptr().addr(),
        dropped.as_foreign_ptr().addr(),
    );
    // SAFETY: cd_null_write() writes through a null pointer.
    let r: Result<(), Error> =
        unsafe { c.call("cd_null_write", ffi::cd_null_write as *const (), ()) };
    assert!(matches!(r, Err(Error::Fault(_))), "{r:?}");
    assert!(c.is_poisoned());

    // Quarantined: no allocation in it, and drops leave its memory alone.
    assert!(ForeignBuf::zeroed_in(&c, 16).is_err());
    assert!(ForeignBox::new_in(&c, 1u32).is_err());
    assert!(ForeignBox::<u64>::zeroed_in(&c).is_err());
    let before = around(d_addr);
    drop(dropped);
    assert_eq!(
        around(d_addr),
        before,
        "a drop after poisoning ran the allocator"
    );
    // Foreign code freeing one of its blocks is ignored too.
    let before = around(k_addr);
    free_in(&other, k_addr).unwrap();
    assert_eq!(around(k_addr), before, "a foreign free ran the allocator");

    // Renewed: a fresh heap; the old one stays mapped while memory made in
    // it is alive.
    c.renew().unwrap();
    assert!(!c.owns(kept.as_foreign_ptr()));
    let fresh = ForeignBuf::zeroed_in(&c, 16).unwrap();
    assert!(c.owns(fresh.as_foreign_ptr()));
    assert_eq!(ForeignPtr::<u8>::from_addr(k_addr).read().unwrap(), 0xCD);
    // The last of the old heap's memory goes: the heap is discarded.
    drop(kept);
    assert!(
        discarded(k_addr, &prober),
        "the quarantined heap is still there"
    );
    assert!(discarded(d_addr, &prober));

    // A poisoned compartment dropped with its memory: discarded when both
    // are gone.
    let d = Compartment::new("dropped").unwrap();
    let left = ForeignBuf::from_slice_in(&d, &[0x5A; 64]).unwrap();
    let l_addr = left.as_foreign_ptr().addr();
    // SAFETY: as above.
    let r: Result<(), Error> =
        unsafe { d.call("cd_null_write", ffi::cd_null_write as *const (), ()) };
    assert!(r.is_err());
    drop(d);
    assert_eq!(
        ForeignPtr::<u8>::from_addr(l_addr).read().unwrap(),
        0x5A,
        "discarded while a buffer was alive"
    );
    drop(left);
    assert!(
        discarded(l_addr, &prober),
        "still there after everything went"
    );
}

/// Whether the heap memory at `addr` (which held non-zero bytes) was
/// discarded: it reads as zero, fresh pages, the old contents gone back to
/// the OS; and `prober`'s foreign code can still write there (the range is
/// kept mapped, so glibc's pointers into it stay usable).
fn discarded(addr: usize, prober: &Compartment) -> bool {
    let read = ForeignPtr::<u8>::from_addr(addr).read();
    if read.as_ref().ok() != Some(&0) {
        eprintln!("{addr:#x} reads {read:?}");
        return false;
    }
    // SAFETY: memset(void *, int, size_t) -> void *, one byte at `addr`:
    // foreign memory (a discarded heap's dead zero pages).
    let r: Result<usize, Error> =
        unsafe { prober.call("memset", libc::memset as *const (), (addr, 1usize, 1usize)) };
    if r.is_err() {
        eprintln!("a write to {addr:#x}: {r:?}");
        return false;
    }
    true
}

/// The scenario of the exit test: foreign code leaves a stream open (a block
/// of its heap linked into glibc's list of streams), its compartment is
/// poisoned, renewed and dropped, so the heap holding the stream is
/// discarded; then the program exits normally, and glibc walks its streams.
fn leave_a_stream_in_a_discarded_heap() {
    let c = Compartment::new("stdio").unwrap();
    let prober = Compartment::new("prober").unwrap();
    // SAFETY: cd_heap_fopen() -> int.
    let opened: i32 =
        unsafe { c.call("cd_heap_fopen", ffi::cd_heap_fopen as *const (), ()) }.unwrap();
    assert_eq!(opened, 1);
    let old = c.heap_range().unwrap();
    // SAFETY: cd_null_write() writes through a null pointer.
    let r: Result<(), Error> =
        unsafe { c.call("cd_null_write", ffi::cd_null_write as *const (), ()) };
    assert!(r.is_err());
    // The heap's header (its lock word, then its count of live blocks).
    let live = old.start + 8;
    assert_ne!(ForeignPtr::<u64>::from_addr(live).read().unwrap(), 0);
    c.renew().unwrap();
    drop(c);
    assert!(discarded(live, &prober), "the heap was not discarded");
    eprintln!("heap discarded; exiting");
}

#[test]
fn a_stream_left_open_in_a_discarded_heap_does_not_break_exit() {
    if std::env::var_os(CHILD).is_some() {
        if std::env::var_os("COFFERDAM_TEST_HEAPS_STDIO").is_some() {
            leave_a_stream_in_a_discarded_heap();
        }
        return;
    }
    // In children: the point is how the process exits. On split always, on
    // mpk where it is in force (skipping with the reason elsewhere).
    let mut backends = vec!["split"];
    if run_here("a_stream_left_open_in_a_discarded_heap_does_not_break_exit") {
        backends.push("mpk");
    }
    for backend in backends {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "a_stream_left_open_in_a_discarded_heap_does_not_break_exit",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("COFFERDAM_BACKEND", backend)
        .env(CHILD, backend)
        .env("COFFERDAM_TEST_HEAPS_STDIO", "1");
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.contains("heap discarded; exiting"),
            "on {backend}: {}\n{}\n{stderr}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn realloc_moves_a_block_out_of_a_quarantined_heap() {
    if !run_here("realloc_moves_a_block_out_of_a_quarantined_heap") {
        return;
    }
    let a = Compartment::new("moved-from").unwrap();
    let b = Compartment::new("moved-to").unwrap();
    let (p, p2) = (malloc_in(&a, 64).unwrap(), malloc_in(&a, 64).unwrap());
    for &q in &[p, p2] {
        // SAFETY: memset(void *, int, size_t) -> void *, on a live block.
        let _: usize =
            unsafe { a.call("memset", libc::memset as *const (), (q, 0x77usize, 64usize)) }
                .unwrap();
    }
    // SAFETY: cd_null_write() writes through a null pointer.
    let r: Result<(), Error> =
        unsafe { a.call("cd_null_write", ffi::cd_null_write as *const (), ()) };
    assert!(r.is_err() && a.is_poisoned());
    // Foreign code reallocates a block of the quarantined heap (as glibc
    // does with bookkeeping it keeps): a fresh block in its own heap, with
    // the old bytes.
    // SAFETY: realloc(void *, size_t) -> void *.
    let q: usize = unsafe { b.call("realloc", libc::realloc as *const (), (p, 128usize)) }.unwrap();
    assert!(b.owns(ForeignPtr::<u8>::from_addr(q)), "{q:#x}");
    assert_eq!(
        b.read_foreign(ForeignPtr::<u8>::from_addr(q), 64).unwrap(),
        [0x77; 64]
    );
    // Trusted code too: into the C library's heap.
    // SAFETY: p2 is a block nobody else uses; realloc gives it a new home.
    let t = unsafe { libc::realloc(p2 as *mut _, 4096) } as usize;
    assert_ne!(t, 0);
    assert!(!a.owns(ForeignPtr::<u8>::from_addr(t)) && !b.owns(ForeignPtr::<u8>::from_addr(t)));
    assert_eq!(
        b.read_foreign(ForeignPtr::<u8>::from_addr(t), 64).unwrap(),
        [0x77; 64]
    );
    // SAFETY: a live block of the C library's.
    unsafe { libc::free(t as *mut _) };
    free_in(&b, q).unwrap();
}

#[test]
fn a_drop_on_a_heap_foreign_code_corrupted_poisons_its_compartment() {
    if !run_here("a_drop_on_a_heap_foreign_code_corrupted_poisons_its_compartment") {
        return;
    }
    let c = Compartment::new("corrupted").unwrap();
    let buf = ForeignBuf::from_slice_in(&c, &[1u8; 64]).unwrap();
    let at = buf.as_foreign_ptr().addr();
    // Foreign code overwrites the allocator's header of a block Rust holds
    // (the call itself returns normally: nothing faults yet).
    // SAFETY: memset(void *, int, size_t) -> void *, on the 32 bytes before
    // the block: foreign memory of c's heap.
    let _: usize = unsafe {
        c.call(
            "memset",
            libc::memset as *const (),
            (at - 32, 0x41usize, 32usize),
        )
    }
    .unwrap();
    assert!(!c.is_poisoned());
    // Rust drops the block: the allocator runs through the gate on the
    // smashed header, faults there, and the fault is contained.
    drop(buf);
    assert!(
        c.is_poisoned(),
        "the faulting free did not poison the compartment"
    );
    let f = c.last_fault().expect("the fault is recorded");
    assert!(f.function.starts_with("free"), "{f}");
    assert_eq!(f.compartment, "corrupted");
    assert!(ForeignBuf::zeroed_in(&c, 8).is_err());
    // Everything else carries on, and the compartment is renewed.
    let other = ForeignBuf::from_str_nul("still here").unwrap();
    assert_eq!(other.to_bytes_until_nul(), b"still here");
    c.renew().unwrap();
    assert_eq!(churn(&c, 4), Ok(4));
}

/// The scenario of the `heap-metadata-smash` attack: returns normally only
/// if the program carried on after one compartment smashed its heap.
fn survive_a_smashed_heap() {
    let smashed = Compartment::new("smashed").unwrap();
    let other = Compartment::new("bystander").unwrap();
    let secret = Box::new([0x5Au8; 64]);
    let victim = ForeignBuf::from_slice_in(&smashed, &[7u8; 256]).unwrap();
    let bystander = ForeignBuf::from_slice_in(&other, &[9u8; 256]).unwrap();
    let shared = ForeignBuf::from_str_nul("shared").unwrap();
    assert_eq!(churn(&smashed, 4), Ok(4));
    // SAFETY: cd_heap_smash(size_t) -> void *: overruns its own buffer.
    let _: Result<usize, Error> = unsafe {
        smashed.call(
            "cd_heap_smash",
            ffi::cd_heap_smash as *const (),
            (64usize * 1024,),
        )
    };
    // C keeps using its smashed heap: contained or not, the program goes on.
    let again = churn(&smashed, 8);
    eprintln!("after the smash, C's allocations: {again:?}");
    drop(victim);
    drop(bystander);
    drop(shared);
    let fresh = ForeignBuf::from_str_nul("fresh").unwrap();
    assert_eq!(fresh.to_bytes_until_nul(), b"fresh");
    let theirs = ForeignBuf::from_slice_in(&other, &[1u8; 4096]).unwrap();
    assert_eq!(theirs.to_vec(), [1u8; 4096]);
    assert_eq!(churn(&other, 16), Ok(16));
    // Ungated C code and Rust's own heap are untouched.
    // SAFETY: plain calls of glibc's allocator, outside any gate.
    unsafe {
        let p = libc::malloc(4000);
        assert!(!p.is_null());
        libc::free(p);
    }
    let v: Vec<u64> = (0..10_000).collect();
    assert_eq!(v.iter().sum::<u64>(), 49_995_000);
    if smashed.is_poisoned() && smashed.heap_range().is_some() {
        // Quarantined until renewed (a process compartment has no heap of
        // its own here: its foreign memory is the shared arena).
        assert!(ForeignBuf::zeroed_in(&smashed, 8).is_err());
    }
    smashed.renew().unwrap();
    assert_eq!(churn(&smashed, 16), Ok(16));
    let after = ForeignBuf::from_slice_in(&smashed, &[3u8; 64]).unwrap();
    assert_eq!(after.to_vec(), [3u8; 64]);
    // SAFETY: a volatile read of a live Box.
    assert_eq!(unsafe { core::ptr::read_volatile(&*secret) }, [0x5A; 64]);
}

#[test]
fn a_program_survives_one_compartments_smashed_heap() {
    if std::env::var_os(CHILD).as_deref() == Some("none".as_ref()) {
        // The unprotected run (see below): expected to die in here.
        survive_a_smashed_heap();
        return;
    }
    if std::env::var_os(CHILD).as_deref() == Some("process".as_ref()) {
        survive_a_smashed_heap();
        return;
    }
    if !run_here("a_program_survives_one_compartments_smashed_heap") {
        return;
    }
    survive_a_smashed_heap();
}

#[test]
fn a_program_survives_one_compartments_smashed_heap_on_the_process_backend() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    // The helper process has a heap of its own: the smash corrupts it, the
    // helper dies or faults, and renewal starts a fresh one.
    let out = rerun(
        "a_program_survives_one_compartments_smashed_heap",
        "process",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "on process: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn rerun(test: &str, backend: &str) -> std::process::Output {
    let mut c = std::process::Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("COFFERDAM_BACKEND", backend)
        .env(CHILD, backend)
        .env_remove("COFFERDAM_REQUIRE_MPK");
    c.output().unwrap()
}

#[test]
fn the_smash_kills_an_unprotected_program() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let out = rerun("a_program_survives_one_compartments_smashed_heap", "none");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.signal().is_some(),
        "on the none backend (one glibc heap) the smash should kill the program: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_heaps_are_separate_regions_with_gaps() {
    if !run_here("the_heaps_are_separate_regions_with_gaps") {
        return;
    }
    let a = Compartment::new("gap-a").unwrap();
    let b = Compartment::new("gap-b").unwrap();
    let (ra, rb) = (a.heap_range().unwrap(), b.heap_range().unwrap());
    assert!(ra.end <= rb.start || rb.end <= ra.start, "{ra:x?} {rb:x?}");
    // Just past each heap's end: unmapped, so a linear overflow stops there.
    assert!(!readable(ra.end), "{:#x} is mapped", ra.end);
    assert!(!readable(rb.end), "{:#x} is mapped", rb.end);
    assert!(!readable(ra.start - 1), "{:#x} is mapped", ra.start - 1);
    // Foreign code running past its heap's end faults, inside the gate.
    // SAFETY: memset(void *, int, size_t) -> void *, from the last 16 bytes
    // of a's heap onwards: the overflow reaches the gap.
    let r: Result<usize, Error> = unsafe {
        a.call(
            "memset",
            libc::memset as *const (),
            (ra.end - 16, 0x41usize, 64usize),
        )
    };
    assert!(matches!(r, Err(Error::Fault(_))), "{r:?}");
    assert!(a.is_poisoned());
    assert!(!b.is_poisoned());
    assert_eq!(churn(&b, 4), Ok(4));
}

#[test]
fn threads_share_a_compartments_heap() {
    if !run_here("threads_share_a_compartments_heap") {
        return;
    }
    let c = Compartment::new("shared-heap").unwrap();
    // Foreign code allocating on four threads at once, and trusted code
    // making and dropping foreign memory in the same heap meanwhile: the
    // heap's lock serialises them.
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || churn(&c, 500))
        })
        .collect();
    for i in 0..2000u32 {
        let b = ForeignBox::new_in(&c, i).unwrap();
        assert_eq!(b.get(), i);
    }
    for w in workers {
        assert_eq!(w.join().unwrap(), Ok(500));
    }
    assert!(!c.is_poisoned());
}

#[test]
fn heaps_work_on_split() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    if Backend::Split == cofferdam::backend() {
        return;
    }
    for test in [
        "malloc_inside_a_gate_is_served_from_the_compartments_heap",
        "a_poisoned_compartments_heap_is_quarantined_then_discarded",
        "a_program_survives_one_compartments_smashed_heap",
        "a_drop_on_a_heap_foreign_code_corrupted_poisons_its_compartment",
        "the_heaps_are_separate_regions_with_gaps",
        "realloc_moves_a_block_out_of_a_quarantined_heap",
        "threads_share_a_compartments_heap",
    ] {
        let out = rerun(test, "split");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{test} on split: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_allocator_symbols_are_exported_for_loaded_libraries() {
    // A library loaded with dlopen binds `malloc` to the executable's
    // definition only if the executable exports it.
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let syms = dynamic_symbols(&exe);
    for s in ["malloc", "free", "calloc", "realloc"] {
        assert!(syms.iter().any(|n| n == s), "`{s}` is not exported");
    }
}

/// Names of the defined symbols in an ELF64 file's `.dynsym`.
fn dynamic_symbols(elf: &[u8]) -> Vec<String> {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let (shoff, shentsize, shnum) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c));
    let sh = |i: usize| shoff + i * shentsize;
    let mut out = Vec::new();
    for i in 0..shnum {
        if u32_at(sh(i) + 4) != 11 {
            continue; // not SHT_DYNSYM
        }
        let (off, size, link) = (
            u64_at(sh(i) + 0x18),
            u64_at(sh(i) + 0x20),
            u32_at(sh(i) + 0x28),
        );
        let stroff = u64_at(sh(link) + 0x18);
        for s in (off..off + size).step_by(24) {
            let (name, shndx) = (u32_at(s), u16_at(s + 6));
            if shndx == 0 {
                continue; // undefined
            }
            let start = stroff + name;
            let end = start + elf[start..].iter().position(|&b| b == 0).unwrap();
            out.push(String::from_utf8_lossy(&elf[start..end]).into_owned());
        }
    }
    out
}

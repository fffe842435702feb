//! A compartment that could not be created is not cached: a later call
//! tries again. This binary's global allocator serves from the system heap
//! until the test switches it to `ProtectedAlloc`, so the first creation
//! fails with `HeapNotProtected` and a later one succeeds.
//!
//! `harness = false`: the protection key must be allocated on the main
//! thread, before any other thread exists (threads inherit the PKRU that
//! grants it), which the test harness's own threads would prevent.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_int;
use std::sync::atomic::{AtomicBool, Ordering};

use cofferdam::{Error, LazyCompartment, ProtectedAlloc};

/// The system allocator until `PROTECT` is set, `ProtectedAlloc` after;
/// each block is freed by the allocator whose region holds it.
struct Switch;

static PROTECT: AtomicBool = AtomicBool::new(false);

// SAFETY: every block comes from one of two allocators and goes back to the
// one that made it (ProtectedAlloc's blocks are exactly those inside its
// region, `is_protected_region`); layouts are passed through unchanged.
unsafe impl GlobalAlloc for Switch {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if PROTECT.load(Ordering::Acquire) {
            // SAFETY: forwarded contract.
            unsafe { ProtectedAlloc.alloc(l) }
        } else {
            // SAFETY: forwarded contract.
            unsafe { std::alloc::System.alloc(l) }
        }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if cofferdam::is_protected_region(p as usize) {
            // SAFETY: a block of ProtectedAlloc (it lies in its region).
            unsafe { ProtectedAlloc.dealloc(p, l) }
        } else {
            // SAFETY: a block of the system allocator.
            unsafe { std::alloc::System.dealloc(p, l) }
        }
    }
}

#[global_allocator]
static GLOBAL: Switch = Switch;

static LAZY: LazyCompartment = LazyCompartment::new("lazy");

#[cofferdam::sandbox(compartment = "lazy-block", safe(abs))]
extern "C" {
    fn abs(x: c_int) -> c_int;
}

fn main() {
    // The runtime (and the key P) start here, on the main thread.
    if cofferdam::backend() == cofferdam::Backend::None {
        eprintln!("skipping lazy: the none backend does not check the heap");
        return;
    }
    a_failed_creation_is_retried();
    println!("test a_failed_creation_is_retried ... ok");
}

/// One thread switching the allocator, in two steps.
fn a_failed_creation_is_retried() {
    // The system heap is in use: creation fails, for the hand-made static
    // and for the macro's.
    assert_eq!(LAZY.get().map(|_| ()), Err(Error::HeapNotProtected));
    assert!(LAZY.get_if_created().is_none());
    assert_eq!(abs(-3), Err(Error::HeapNotProtected));
    assert_eq!(
        lazy_block_compartment().map(|_| ()),
        Err(Error::HeapNotProtected)
    );

    // ProtectedAlloc from now on: the next calls create the compartments.
    PROTECT.store(true, Ordering::Release);
    let c = LAZY.get().expect("created on the retry");
    assert_eq!(c.name(), "lazy");
    assert!(std::ptr::eq(c, LAZY.get().unwrap()), "created once");
    assert_eq!(abs(-3), Ok(3));
    assert_eq!(lazy_block_compartment().unwrap().name(), "lazy-block");
}

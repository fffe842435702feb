//! qsort with a Rust comparator through the reverse gate, N times over the
//! same input: for counting instructions per callback
//! (`valgrind --tool=callgrind`).
use core::ffi::c_int;

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let c = cofferdam::Compartment::new("qsort").expect("compartment");
    let input: Vec<c_int> = (0..n as c_int).rev().collect();
    let v = cofferdam::ForeignVec::<c_int>::from_slice(&input).expect("foreign memory");
    let calls = core::cell::Cell::new(0u64);
    let cmp = cofferdam::Callback::<
        fn(cofferdam::ForeignPtr<c_int>, cofferdam::ForeignPtr<c_int>) -> c_int,
    >::new(|a, b| {
        calls.set(calls.get() + 1);
        a.read().unwrap_or(0).cmp(&b.read().unwrap_or(0)) as c_int
    })
    .expect("callback");
    // SAFETY: qsort(base, n, size, comparator) over v's n ints.
    let _: () = unsafe {
        c.call_with_callbacks(
            "qsort",
            libc::qsort as *const (),
            (v.as_foreign_ptr(), n, 4usize, cmp.stub()),
            &[&cmp],
        )
    }
    .expect("qsort");
    println!("{} comparisons", calls.get());
}

//! Criterion: the gate against a bare call and the bare WRPKRU pair, and
//! ProtectedAlloc against glibc malloc and plain mimalloc.
//!
//! Run: `cargo bench -p cofferdam-benches`. The same figures, measured side by
//! side in one run, come from `cofferdam bench --json`.

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;

use cofferdam::{Compartment, ProtectedAlloc};
use cofferdam_attacks::ffi::cd_noop;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

#[global_allocator]
static GLOBAL: ProtectedAlloc = ProtectedAlloc;

extern "C" fn noop(x: i32) -> i32 {
    // SAFETY: cd_noop is a pure C function of one int.
    unsafe { cd_noop(x) }
}

fn null_call(c: &mut Criterion) {
    let comp = Compartment::new("bench").expect("compartment");
    let mut g = c.benchmark_group("null-call");
    g.bench_function("bare", |b| {
        b.iter(|| black_box(black_box(noop as extern "C" fn(i32) -> i32)(black_box(1))))
    });
    #[cfg(feature = "bench-floor")]
    if cofferdam::wrpkru_pair_call(noop, 0).is_some() {
        g.bench_function("floor", |b| {
            b.iter(|| black_box(cofferdam::wrpkru_pair_call(black_box(noop), black_box(1))))
        });
    }
    g.bench_function(BenchmarkId::new("gate", comp.backend().name()), |b| {
        b.iter(|| {
            // SAFETY: cd_noop takes an int and returns an int.
            let r: Result<i32, _> =
                unsafe { comp.call("cd_noop", black_box(cd_noop as *const ()), (black_box(1),)) };
            black_box(r.expect("no fault"))
        })
    });
    g.finish();
}

fn alloc_free(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc-free-64B");
    let l = Layout::from_size_align(64, 8).expect("layout");
    g.bench_function("glibc", |b| {
        b.iter(|| {
            // SAFETY: malloc/free pair of a non-zero size.
            unsafe { libc::free(black_box(libc::malloc(64))) }
        })
    });
    g.bench_function("protected", |b| {
        b.iter(|| {
            // SAFETY: alloc/dealloc pair with the same valid layout.
            unsafe { ProtectedAlloc.dealloc(black_box(ProtectedAlloc.alloc(l)), l) }
        })
    });
    g.finish();
}

criterion_group!(benches, null_call, alloc_free);
criterion_main!(benches);

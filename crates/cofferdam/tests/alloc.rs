//! ProtectedAlloc as the global allocator: placement, alignment, realloc,
//! zeroing, huge allocations, threads, growth past one region, and memory
//! going back to the OS.

use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

fn in_region<T: ?Sized>(p: *const T) -> bool {
    cofferdam::is_protected_region(p as *const u8 as usize)
}

#[test]
fn ordinary_allocations_come_from_the_region() {
    let b = Box::new(7u64);
    let v: Vec<u8> = vec![1; 100_000];
    let s = String::from("hello");
    assert!(in_region(&*b));
    assert!(in_region(v.as_ptr()));
    assert!(in_region(s.as_ptr()));
    // And C's malloc never does.
    // SAFETY: malloc/free pair.
    unsafe {
        let c = libc::malloc(64);
        assert!(!in_region(c as *const u8));
        libc::free(c);
    }
    let info = cofferdam::info();
    assert!(info.protected_alloc_active);
    assert_eq!(
        info.heap_protected,
        cofferdam::backend() == cofferdam::Backend::Mpk
    );
}

#[test]
fn every_alignment_layout_allows() {
    // From 1 byte up to 1 GiB alignment: mimalloc below 64 KiB, mappings of
    // their own above.
    for shift in 0..=30 {
        let align = 1usize << shift;
        for size in [1usize, 24, align, 3 * align / 2 + 1] {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero layout; the block is written within its size and freed once.
            unsafe {
                let p = alloc(l);
                assert!(!p.is_null(), "size {size} align {align}");
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                p.write(0xAB);
                p.add(size - 1).write(0xCD);
                dealloc(p, l);
            }
        }
    }
}

#[test]
fn zeroed_allocations_are_zero_even_after_reuse() {
    for round in 0..50 {
        let l = Layout::from_size_align(4096 + round, 16).unwrap();
        // SAFETY: non-zero layouts; written within bounds, freed once.
        unsafe {
            let p = alloc(l);
            std::ptr::write_bytes(p, 0xFF, l.size());
            dealloc(p, l);
            let z = alloc_zeroed(l);
            assert!((0..l.size()).all(|i| *z.add(i) == 0));
            dealloc(z, l);
        }
    }
    // Over-aligned and huge zeroed blocks come from fresh mappings.
    let l = Layout::from_size_align(3 << 20, 1 << 20).unwrap();
    // SAFETY: as above.
    unsafe {
        let z = alloc_zeroed(l);
        assert!((0..l.size()).step_by(4093).all(|i| *z.add(i) == 0));
        dealloc(z, l);
    }
}

#[test]
fn realloc_keeps_contents_across_every_path() {
    // 16 B → 1 MiB → 1.5 GiB (direct mapping) → 100 B, at two alignments.
    for align in [8usize, 4096] {
        let l = Layout::from_size_align(16, align).unwrap();
        // SAFETY: each realloc receives the block and layout of the previous
        // step; contents are checked within the smaller size.
        unsafe {
            let mut p = alloc(l);
            for i in 0..16 {
                p.add(i).write(i as u8);
            }
            let mut cur = l;
            for new in [1 << 20, 3 << 29, 100] {
                p = realloc(p, cur, new);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0);
                assert!(
                    (0..16).all(|i| *p.add(i) == i as u8),
                    "lost contents growing to {new}"
                );
                cur = Layout::from_size_align(new, align).unwrap();
            }
            dealloc(p, cur);
        }
    }
}

#[test]
fn allocations_far_larger_than_a_page() {
    // 2 GiB: a mapping of its own, committed lazily; touch one byte every
    // 64 MiB and the last one. (Not every MiB: where transparent huge pages
    // are `always`, each touch commits 2 MiB, and a 2 GiB test VM ran out of
    // memory.)
    let l = Layout::from_size_align(2 << 30, 64).unwrap();
    // SAFETY: non-zero layout; writes stay inside; freed once.
    unsafe {
        let p = alloc(l);
        assert!(!p.is_null());
        let offsets = (0..l.size()).step_by(64 << 20).chain([l.size() - 1]);
        for off in offsets.clone() {
            p.add(off).write(off as u8 | 1);
        }
        for off in offsets {
            assert_eq!(*p.add(off), off as u8 | 1);
        }
        dealloc(p, l);
    }
    let v = vec![3u8; 300 << 20];
    assert!(in_region(v.as_ptr()));
    assert_eq!(v[(300 << 20) - 1], 3);
}

#[test]
fn threads_allocate_and_free_each_others_blocks() {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<Box<[u8; 48]>>>();
    let producers: Vec<_> = (0..4)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for round in 0..200 {
                    let batch: Vec<Box<[u8; 48]>> = (0..64)
                        .map(|i| Box::new([(t * 7 + round + i) as u8; 48]))
                        .collect();
                    assert!(batch.iter().all(|b| in_region(&**b)));
                    tx.send(batch).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = std::thread::spawn(move || {
        let mut n = 0;
        for batch in rx {
            for b in batch {
                assert!(b.iter().all(|&x| x == b[0]));
                n += 1;
            }
        }
        n
    });
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(consumer.join().unwrap(), 4 * 200 * 64);
}

#[test]
fn the_heap_grows_past_one_region() {
    // Twelve 1 GiB blocks (committed lazily: only one page of each is
    // touched) do not fit one 8 GiB region: the allocator must add regions.
    let before = cofferdam::info().heap_reserved;
    let l = Layout::from_size_align(1 << 30, 16).unwrap();
    let mut blocks = vec![];
    for _ in 0..12 {
        // SAFETY: non-zero layout.
        let p = unsafe { alloc(l) };
        assert!(!p.is_null(), "allocation failed after {} GiB", blocks.len());
        assert!(in_region(p));
        // SAFETY: inside the block.
        unsafe { p.write(9) };
        blocks.push(p);
    }
    let after = cofferdam::info().heap_reserved;
    assert!(
        after >= before + (8 << 30),
        "reserved {before} → {after}: no region was added"
    );
    for p in blocks {
        // SAFETY: each block was allocated with `l` above.
        unsafe { dealloc(p, l) };
    }
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn freed_memory_goes_back_to_the_os() {
    const SIZE: usize = 256 << 20;
    let v = vec![1u8; SIZE];
    assert!(in_region(v.as_ptr()));
    let high = rss_bytes();
    drop(v);
    // mimalloc purges freed arena memory after a delay; allocation activity
    // gives it the chance to.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let churn: Vec<Box<[u8; 256]>> = (0..1000).map(|_| Box::new([0; 256])).collect();
        drop(churn);
        let now = rss_bytes();
        if now + SIZE / 2 < high {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "RSS stayed at {now} bytes (peak {high}) 20 s after freeing 256 MiB"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Many threads allocate small blocks at once from the shared allocator and
/// each keeps its own blocks filled with its own mark: a block handed to two
/// threads at once would show the other's mark.
#[test]
fn concurrent_small_allocations_are_never_handed_out_twice() {
    const ROUNDS: usize = 4000;
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mark = 0x1111_1111_1111_1111u64 * (t + 1);
                for round in 0..ROUNDS {
                    let mut v: Vec<Box<[u64; 4]>> = Vec::with_capacity(500);
                    for _ in 0..500 {
                        v.push(Box::new([mark; 4]));
                    }
                    for b in &v {
                        assert!(
                            b.iter().all(|&x| x == mark),
                            "thread {t} round {round}: {b:x?}"
                        );
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

//! Makes N null calls through the gate: for counting instructions per call
//! (`valgrind --tool=callgrind`), which noisy machines cannot spoil.
#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

extern "C" fn noop(x: i32) -> i32 {
    x + 1
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let c = cofferdam::Compartment::new("null").expect("compartment");
    let mut acc = 0i64;
    for i in 0..n {
        // SAFETY: noop takes an int and returns an int.
        let r: i32 =
            unsafe { c.call("noop", std::hint::black_box(noop as *const ()), (i as i32,)) }
                .expect("no fault");
        acc += r as i64;
    }
    println!("{acc}");
}

//! Thread creation with one gate call, N times: spawn, one call on the new
//! thread (its state, foreign stack, tagged stack and thread-locals), join
//! (untagging). Prints wall and CPU (user + system) time per thread, for
//! comparing `COFFERDAM_STATICS=off` against the default in alternating runs.

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

fn cpu_ns() -> u128 {
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid out-parameter.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) };
    let t = |tv: libc::timeval| tv.tv_sec as u128 * 1_000_000_000 + tv.tv_usec as u128 * 1000;
    t(r.ru_utime) + t(r.ru_stime)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let c = cofferdam::Compartment::new("threads").expect("compartment");
    let (w0, c0) = (std::time::Instant::now(), cpu_ns());
    for _ in 0..n {
        let c = c.clone();
        std::thread::spawn(move || {
            // A frame of some depth, as real thread code has: a first gate
            // call from the stack's top page (an optimised closure's first
            // frame) leaves the stack untagged ("bounds could not be
            // determined", gate/thread.rs) and would measure less work.
            let pad = std::hint::black_box([0u8; 16384]);
            std::hint::black_box(&pad);
            // SAFETY: cd_noop(int) -> int.
            let r: Result<i32, _> = unsafe {
                c.call(
                    "cd_noop",
                    cofferdam_attacks::ffi::cd_noop as *const (),
                    (1i32,),
                )
            };
            assert_eq!(r.unwrap(), 2);
        })
        .join()
        .unwrap();
    }
    let (wall, cpu) = (w0.elapsed().as_nanos(), cpu_ns() - c0);
    let i = cofferdam::info();
    let tls = i
        .thread_locals_unprotected
        .unwrap_or_else(|| "tagged".into());
    let stacks = i.stacks_unprotected.unwrap_or("tagged");
    println!(
        "threads {n}: wall {} ns, cpu {} ns per thread (thread-locals: {tls}; stacks: {stacks})",
        wall / n as u128,
        cpu / n as u128
    );
}

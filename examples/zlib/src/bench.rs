//! Gated against bare, measured side by side in one run: the two variants
//! alternate round by round (bare, gated, bare, gated, ...) and each
//! reports its median, so that a noisy neighbour slows both alike.

use std::hint::black_box;
use std::time::Instant;

use serde_json::{json, Value};

use crate::copy::CopyMode;
use crate::gated;
use crate::input::{text, EIGHT_MIB};

/// The level the benchmark compresses at (zlib's default).
pub const LEVEL: i32 = 6;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn time<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let r = f();
    (t.elapsed().as_nanos() as f64, r)
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Runs `bare`, `gated` and `gated_volatile` in interleaved rounds and
/// reports their medians; every round checks that they agree.
fn workload<T: PartialEq>(
    name: &str,
    rounds: usize,
    bytes: usize,
    bare: impl Fn() -> T,
    gated: impl Fn() -> T,
    gated_volatile: impl Fn() -> T,
) -> Value {
    let rounds = rounds.max(1);
    let (mut b, mut g, mut v) = (vec![], vec![], vec![]);
    for _ in 0..rounds {
        let (tb, rb) = time(|| black_box(bare()));
        let (tg, rg) = time(|| black_box(gated()));
        let (tv, rv) = time(|| black_box(gated_volatile()));
        assert!(
            rb == rg && rb == rv,
            "{name}: the gated result differs from the bare one"
        );
        b.push(tb);
        g.push(tg);
        v.push(tv);
    }
    let (b, g, v) = (median(b), median(g), median(v));
    let mib = bytes as f64 / (1 << 20) as f64;
    json!({
        "name": name,
        "backend": cofferdam::backend().name(),
        "bare_ns": b.round(),
        "gate_ns": g.round(),
        "gate_over_bare": round4(g / b),
        "gate_volatile_copy_ns": v.round(),
        "gate_volatile_copy_over_bare": round4(v / b),
        "bare_mib_per_s": round2(mib / (b / 1e9)),
        "gate_mib_per_s": round2(mib / (g / 1e9)),
        "rounds": rounds,
        "note": "gate: buffers copied with memcpy (crate::copy, CopyMode::Bulk); gate_volatile_copy: with the runtime's ForeignVec::write/append_to (volatile SSE2 loads and stores)",
    })
}

/// `zlib-compress-8MiB` and `zlib-decompress-8MiB`: the same 8 MiB input
/// ([`crate::input::text`]), level 6, 1 MiB chunks, gated against bare.
/// Throughput figures are in MiB of uncompressed data per second.
///
/// # Panics
/// If zlib fails, or the two paths disagree.
pub fn bench(rounds: usize) -> Vec<Value> {
    let input = text(EIGHT_MIB, 1);
    let compressed = crate::compress_bare(&input, LEVEL).expect("bare compress");
    vec![
        workload(
            "zlib-compress-8MiB",
            rounds,
            input.len(),
            || crate::compress_bare(&input, LEVEL).expect("bare compress"),
            || crate::compress_gated(&input, LEVEL).expect("gated compress"),
            || gated::compress(&input, LEVEL, CopyMode::Volatile).expect("gated compress"),
        ),
        workload(
            "zlib-decompress-8MiB",
            rounds,
            input.len(),
            || crate::decompress_bare(&compressed).expect("bare decompress"),
            || crate::decompress_gated(&compressed).expect("gated decompress"),
            || gated::decompress(&compressed, CopyMode::Volatile).expect("gated decompress"),
        ),
    ]
}

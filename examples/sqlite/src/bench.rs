//! Gated against bare, measured side by side in one run: the two variants
//! alternate round by round and each reports its median.

use std::hint::black_box;
use std::time::Instant;

use serde_json::{json, Value};

use crate::{bare, gated, Row, ROWS};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// `sqlite-100k-rows`: the whole workload (open `:memory:`, create, insert
/// 100,000 rows in one transaction, read them back), gated against bare. The
/// rows are generated once, outside the timing. Also reported: the gate calls
/// the gated run made and the extra time per gate call.
///
/// # Panics
/// If SQLite fails, or the two paths disagree.
pub fn bench(rounds: usize) -> Vec<Value> {
    let rounds = rounds.max(1);
    let rows: Vec<Row> = (0..ROWS).map(crate::row).collect();
    let (mut b, mut g) = (vec![], vec![]);
    let mut calls = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let rb = black_box(bare::workload_rows(&rows).expect("bare workload"));
        b.push(t.elapsed().as_nanos() as f64);
        let t = Instant::now();
        let (rg, c) = black_box(gated::workload_rows(&rows).expect("gated workload"));
        g.push(t.elapsed().as_nanos() as f64);
        assert!(
            rb == rg,
            "sqlite: the gated result differs from the bare one"
        );
        calls = c;
    }
    let (b, g) = (median(b), median(g));
    let (call_bare, call_gate) = one_call(rounds);
    vec![
        json!({
            "name": "sqlite-100k-rows",
            "backend": cofferdam::backend().name(),
            "bare_ns": b.round(),
            "gate_ns": g.round(),
            "gate_over_bare": round4(g / b),
            "gate_calls": calls,
            "gate_calls_per_row": round4(calls as f64 / ROWS as f64),
            "extra_ns_per_gate_call": round4((g - b) / calls as f64),
            "rows": ROWS,
            "rounds": rounds,
        }),
        json!({
            "name": "sqlite-column-int64-call",
            "backend": cofferdam::backend().name(),
            "bare_ns": round4(call_bare),
            "gate_ns": round4(call_gate),
            "gate_over_bare": round4(call_gate / call_bare),
            "extra_ns_per_gate_call": round4(call_gate - call_bare),
            "calls_per_round": CALLS,
            "rounds": rounds,
            "note": "one sqlite3_column_int64 on a current row, in a tight loop (warm caches and branch predictors): the least a gated call adds",
        }),
    ]
}

const CALLS: u32 = 1_000_000;

/// Nanoseconds per `sqlite3_column_int64` call, bare and through
/// [`gated::Stmt::column_int64`], on one row, in interleaved rounds.
fn one_call(rounds: usize) -> (f64, f64) {
    use libsqlite3_sys as ffi;
    const SETUP: &str = "CREATE TABLE t(a INTEGER); INSERT INTO t VALUES (42)";
    let db = gated::Db::open(":memory:").expect("open");
    db.exec(SETUP).expect("setup");
    let stmt = db.prepare("SELECT a FROM t").expect("prepare");
    assert!(stmt.step().expect("step"), "one row");

    let mut raw_db = core::ptr::null_mut();
    let mut raw = core::ptr::null_mut();
    // SAFETY: NUL-terminated strings, valid out-pointers; each call's
    // success is checked; the statement is finalized and the connection
    // closed below, once.
    unsafe {
        assert_eq!(
            ffi::sqlite3_open_v2(c":memory:".as_ptr(), &mut raw_db, 6, core::ptr::null()),
            0
        );
        let setup = std::ffi::CString::new(SETUP).expect("no NUL");
        let no = core::ptr::null_mut();
        assert_eq!(
            ffi::sqlite3_exec(raw_db, setup.as_ptr(), None, no, no.cast()),
            0
        );
        let select = c"SELECT a FROM t";
        assert_eq!(
            ffi::sqlite3_prepare_v2(raw_db, select.as_ptr(), -1, &mut raw, no.cast()),
            0
        );
        assert_eq!(ffi::sqlite3_step(raw), 100);
    }
    let (mut b, mut g) = (vec![], vec![]);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..CALLS {
            // SAFETY: a live statement on a row with one column.
            black_box(unsafe { ffi::sqlite3_column_int64(black_box(raw), 0) });
        }
        b.push(t.elapsed().as_nanos() as f64 / CALLS as f64);
        let t = Instant::now();
        for _ in 0..CALLS {
            black_box(stmt.column_int64(black_box(0)).expect("column"));
        }
        g.push(t.elapsed().as_nanos() as f64 / CALLS as f64);
    }
    // SAFETY: finalized and closed once; not used after.
    unsafe {
        ffi::sqlite3_finalize(raw);
        ffi::sqlite3_close(raw_db);
    }
    (median(b), median(g))
}

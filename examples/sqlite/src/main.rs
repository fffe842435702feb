//! `cofferdam-example-sqlite`: 100,000 rows into an in-memory SQLite database
//! and back, through the Cofferdam gate, checked against SQLite called
//! directly. `cofferdam-example-sqlite bench [rounds]` measures both.

use std::process::ExitCode;
use std::time::Instant;

use cofferdam_example_sqlite as ex;

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("demo") => match demo() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cofferdam-example-sqlite: {e}");
                ExitCode::FAILURE
            }
        },
        Some("bench") => {
            let rounds = match args.get(1).map(|r| r.parse::<usize>()) {
                None => 11,
                Some(Ok(r)) if r > 0 => r,
                Some(_) => {
                    eprintln!("usage: cofferdam-example-sqlite bench [rounds > 0]");
                    return ExitCode::from(2);
                }
            };
            let out = serde_json::json!({ "workloads": ex::bench(rounds) });
            println!("{}", serde_json::to_string_pretty(&out).expect("json"));
            ExitCode::SUCCESS
        }
        Some(_) => {
            eprintln!("usage: cofferdam-example-sqlite [demo | bench [rounds]]");
            ExitCode::from(2)
        }
    }
}

fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let info = cofferdam::init()?;
    println!("backend:   {} ({})", info.backend.name(), info.reason);
    let t = Instant::now();
    let (report, calls) = ex::gated::workload(ex::ROWS)?;
    let elapsed = t.elapsed();
    println!(
        "gated:     {} rows inserted and read back in {elapsed:.1?}, {calls} gate calls",
        report.rows.len()
    );
    println!("checksum:  {:#018x}", report.checksum);
    for r in report.rows.iter().take(3) {
        println!(
            "           {:>6} {:<28} {:>20}",
            r.id,
            format!("{:?}", r.name),
            r.value
        );
    }
    let bare = ex::workload_bare(ex::ROWS)?;
    let expected = ex::expected(ex::ROWS);
    println!(
        "checks:    same rows as bare SQLite {}, as the generator {}",
        if bare == report { "ok" } else { "FAILED" },
        if expected == report { "ok" } else { "FAILED" }
    );
    let db = ex::gated::Db::open(":memory:")?;
    match db.exec("SELECT * FROM no_such_table") {
        Err(e) => println!("bad SQL:   refused: {e}"),
        Ok(()) => println!("bad SQL:   accepted?!"),
    }
    if bare != report || expected != report {
        return Err("the gated path disagrees with bare SQLite".into());
    }
    Ok(())
}

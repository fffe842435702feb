//! `cofferdam-example-zlib`: compress and decompress 8 MiB with C zlib
//! through the Cofferdam gate, and check the result against zlib called
//! directly. `cofferdam-example-zlib bench [rounds]` measures both.

use std::process::ExitCode;
use std::time::Instant;

use cofferdam_example_zlib as ex;

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("demo") => demo(),
        Some("bench") => {
            let rounds = match args.get(1).map(|r| r.parse::<usize>()) {
                None => 11,
                Some(Ok(r)) if r > 0 => r,
                Some(_) => {
                    eprintln!("usage: cofferdam-example-zlib bench [rounds > 0]");
                    return ExitCode::from(2);
                }
            };
            let out = serde_json::json!({ "workloads": ex::bench(rounds) });
            println!("{}", serde_json::to_string_pretty(&out).expect("json"));
            ExitCode::SUCCESS
        }
        Some(_) => {
            eprintln!("usage: cofferdam-example-zlib [demo | bench [rounds]]");
            ExitCode::from(2)
        }
    }
}

fn demo() -> ExitCode {
    match run_demo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cofferdam-example-zlib: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_demo() -> Result<(), Box<dyn std::error::Error>> {
    let info = cofferdam::init()?;
    println!("backend:      {} ({})", info.backend.name(), info.reason);
    println!(
        "zlib:         {} (libz-sys, static), through the gate",
        ex::version()?
    );
    let input = ex::input::text(ex::input::EIGHT_MIB, 1);
    let t = Instant::now();
    let gated = ex::compress_gated(&input, 6)?;
    let tc = t.elapsed();
    let t = Instant::now();
    let restored = ex::decompress_gated(&gated)?;
    let td = t.elapsed();
    let bare = ex::compress_bare(&input, 6)?;
    println!(
        "compressed:   {} -> {} bytes ({:.1}%) in {:.1?}, gated",
        input.len(),
        gated.len(),
        100.0 * gated.len() as f64 / input.len() as f64,
        tc
    );
    println!(
        "decompressed: {} bytes in {:.1?}, gated",
        restored.len(),
        td
    );
    println!(
        "checks:       round trip {}, same bytes as bare zlib {}",
        if restored == input { "ok" } else { "FAILED" },
        if bare == gated { "ok" } else { "FAILED" }
    );
    let mut corrupt = gated.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x55;
    println!(
        "corrupt:      {}",
        match ex::decompress_gated(&corrupt) {
            Ok(_) => "decompressed?!".to_string(),
            Err(e) => format!("refused: {e}"),
        }
    );
    if restored != input || bare != gated {
        return Err("the gated path disagrees with bare zlib".into());
    }
    Ok(())
}

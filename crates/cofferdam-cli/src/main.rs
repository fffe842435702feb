//! `cofferdam`: run the attack demo, report protection, benchmark the gate,
//! audit a crate's FFI exposure, scan a library for PKRU-changing code.

mod bench;
mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

#[derive(Parser)]
#[command(
    name = "cofferdam",
    version,
    about = "Call C from Rust without handing it your memory"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every attack twice, unprotected and protected, and show what happened.
    Demo {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// Run only the attacks whose name or class contains this text.
        #[arg(long)]
        only: Option<String>,
    },
    /// Say which backend is in force, whether the CPU and kernel support protection keys, and why.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Time the gate against a bare call and the bare WRPKRU pair, and the allocator against glibc and mimalloc.
    Bench {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Fewer rounds (for smoke tests; figures are noisier).
        #[arg(long)]
        quick: bool,
        /// Run only the workloads whose name starts with one of these
        /// comma-separated prefixes (e.g. `null-call,sandbox-call`).
        #[arg(long)]
        only: Option<String>,
    },
    /// Show where a crate and its dependencies hand Rust memory to foreign code.
    Audit(cofferdam_audit::AuditArgs),
    /// Find WRPKRU, XRSTOR and XRSTORS in an ELF file's executable code, aligned or hidden.
    Scan(cofferdam_scan::ScanArgs),
    /// Internal: run one side of one attack (used by `demo`).
    #[command(hide = true)]
    AttackChild { name: String, mode: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { json, only } => demo::run(json, only.as_deref()),
        Command::Info { json } => info(json),
        Command::Bench { json, quick, only } => bench::run(json, quick, only.as_deref()),
        Command::Audit(args) => ExitCode::from(cofferdam_audit::run(&args).clamp(0, 255) as u8),
        Command::Scan(args) => ExitCode::from(cofferdam_scan::run(&args).clamp(0, 255) as u8),
        Command::AttackChild { name, mode } => {
            let (Some(attack), Some(mode)) = (
                cofferdam_attacks::find(&name),
                cofferdam_attacks::Mode::parse(&mode),
            ) else {
                eprintln!("cofferdam attack-child: unknown attack `{name}` or mode `{mode}`");
                return ExitCode::from(2);
            };
            cofferdam_attacks::child_main(attack, mode)
        }
    }
}

fn info(json: bool) -> ExitCode {
    // One compartment, so that the syscall guard's decision (made at the
    // first compartment) is reported too.
    let _c = cofferdam::Compartment::new("info");
    let i = cofferdam::info();
    if json {
        let v = serde_json::json!({
            "backend": i.backend.name(),
            "protects_memory": i.backend.protects_memory(),
            "reason": i.reason,
            "refused": i.refused,
            "cpu_pku": i.cpu_pku,
            "os_pke": i.os_pke,
            "kernel_pkeys": i.kernel_pkeys,
            "kernel_errno": i.kernel_errno,
            "pkey": i.pkey,
            "protected_alloc_active": i.protected_alloc_active,
            "heap_protected": i.heap_protected,
            "heap_reserved_bytes": i.heap_reserved,
            "stacks_protected": i.stacks_unprotected.is_none(),
            "stacks_unprotected_reason": i.stacks_unprotected,
            "signal_frames_authenticated": i.signal_frames_unprotected.is_none(),
            "signal_frames_unprotected_reason": i.signal_frames_unprotected,
            "statics_protected": i.statics_unprotected.is_none(),
            "statics_unprotected_reason": i.statics_unprotected,
            "statics_bytes": i.statics_bytes,
            "thread_locals_protected": i.thread_locals_unprotected.is_none(),
            "thread_locals_unprotected_reason": i.thread_locals_unprotected,
            "foreign_stack_bytes": i.foreign_stack,
            "control_words": i.control_words,
            "thread_identity": i.thread_identity,
            "pkru": i.pkru,
            "protected_range": i.protected_range.map(|(s, l)| format!("{s:#x}..{:#x}", s + l)),
            "syscall_guard": i.guard.syscall_guard,
            "syscall_guard_reason": i.guard.reason,
            "inspection": i.guard.inspection,
            "pkey_set": i.guard.pkey_set,
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        print!("{i}");
    }
    if i.refused.is_some() {
        ExitCode::FAILURE
    } else if let Err(e) = cofferdam::init() {
        // COFFERDAM_REQUIRE_STATICS=1 and statics are not protected.
        eprintln!("cofferdam info: {e}");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

//! Stand-alone `cofferdam audit` for benchmarks and manual use, until the CLI
//! crate wires it: `cargo run --release -p cofferdam-audit --example audit -- --deps PATH`.

use clap::Parser;

/// `cofferdam audit` without the rest of the CLI.
#[derive(Parser, Debug)]
#[command(name = "cofferdam-audit", version)]
struct Cli {
    #[command(flatten)]
    args: cofferdam_audit::AuditArgs,
}

fn main() {
    let cli = Cli::parse();
    std::process::exit(cofferdam_audit::run(&cli.args));
}

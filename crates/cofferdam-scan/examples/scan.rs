//! Stand-in for `cofferdam scan` until the CLI wires it up:
//! `cargo run -p cofferdam-scan --example scan -- [--json] [--all] FILE...`
use clap::Parser;

#[derive(Parser)]
#[command(name = "cofferdam-scan")]
struct Cli {
    #[command(flatten)]
    args: cofferdam_scan::ScanArgs,
}

fn main() {
    let cli = Cli::parse();
    std::process::exit(cofferdam_scan::run(&cli.args));
}

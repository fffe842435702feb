//! `cofferdam demo`: the attack suite, each attack run unprotected and then
//! protected, each run in a child process of its own.

use std::process::{Command, ExitCode};

use cofferdam_attacks::{all, run_attack, Mode, Row};

pub fn run(json: bool, only: Option<&str>) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cofferdam demo: cannot find my own executable to run the attacks: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(reason) = cofferdam::info().refused {
        eprintln!("cofferdam demo: {reason}");
        return ExitCode::from(2);
    }
    let rows: Vec<Row> = all()
        .iter()
        .filter(|a| only.is_none_or(|o| a.name.contains(o) || a.class.contains(o)))
        .map(|a| {
            run_attack(a, &|mode: Mode| {
                let mut c = Command::new(&exe);
                c.args(["attack-child", a.name, mode.name()]);
                c
            })
        })
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialise")
        );
    } else {
        print_table(&rows);
    }
    let broken: Vec<&Row> = rows
        .iter()
        .filter(|r| r.claimed && !r.protected.contained)
        .collect();
    if broken.is_empty() {
        ExitCode::SUCCESS
    } else {
        for r in broken {
            eprintln!(
                "cofferdam demo: the {} backend claims to contain `{}` ({}) but did not: {}",
                r.protected.backend, r.attack, r.class, r.protected.evidence
            );
        }
        ExitCode::FAILURE
    }
}

fn print_table(rows: &[Row]) {
    let backend = cofferdam::backend();
    let label = if backend.protects_memory() {
        backend.name().to_string()
    } else {
        format!("{} (unprotected)", backend.name())
    };
    println!("cofferdam demo — backend: {label}");
    println!();
    println!(
        "{:<26} {:<20} {:<15} {:<15} BACKEND",
        "ATTACK", "CLASS", "UNPROTECTED", "PROTECTED"
    );
    for r in rows {
        let u = match (r.status.as_str(), r.unprotected.attack_succeeded) {
            ("pending", _) => "not run",
            (_, true) => "attack worked",
            (_, false) => "no effect",
        };
        let p = match (r.status.as_str(), r.protected.contained, r.claimed) {
            ("pending", _, _) => "pending",
            (_, true, _) => "contained",
            (_, false, true) => "NOT CONTAINED",
            (_, false, false) => "not contained",
        };
        println!(
            "{:<26} {:<20} {:<15} {:<15} {}",
            r.attack, r.class, u, p, r.protected.backend
        );
        println!("    unprotected: {}", r.unprotected.evidence);
        println!("    protected:   {}", r.protected.evidence);
    }
    println!();
    println!("\"not contained\" marks classes this backend does not claim (yet); \"NOT CONTAINED\" is a failure.");
}

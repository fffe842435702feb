//! Renewal: a compartment poisoned by a fault in foreign code is renewed and
//! runs calls again, raw and through a `#[cofferdam::sandbox]` block's
//! handle; poisoned calls are refused until then. On `mpk` in process, and
//! on `split` in a child process.

mod common;

use core::ffi::c_int;

use cofferdam::{Access, Backend, Compartment, Error, Fault, FaultKind};
use cofferdam_attacks::ffi;

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

#[cofferdam::sandbox(compartment = "renewable", safe(cd_noop))]
extern "C" {
    /// Writes through a null pointer.
    fn cd_null_write();
    /// Returns its argument plus one.
    fn cd_noop(x: c_int) -> c_int;
}

/// Set in the child that runs a test again on the `split` backend.
const SPLIT_CHILD: &str = "COFFERDAM_TEST_RENEW_SPLIT";

/// Whether to run: on `mpk` (skipping where it is missing, failing under
/// `COFFERDAM_REQUIRE_MPK=1`), or on `split` in the child that
/// `renewal_works_on_split` starts.
fn contained_or_skip(test: &str) -> bool {
    if std::env::var_os(SPLIT_CHILD).is_some() {
        assert_eq!(
            cofferdam::backend(),
            Backend::Split,
            "{test}: child not on split"
        );
        return true;
    }
    common::mpk_or_skip(test)
}

fn null_write_fault(r: Result<(), Error>, compartment: &str) -> Fault {
    match r {
        Err(Error::Fault(f)) => {
            assert_eq!(f.compartment, compartment);
            assert_eq!(f.function, "cd_null_write");
            assert_eq!(f.kind, FaultKind::Unmapped);
            assert_eq!(f.access, Access::Write);
            assert_eq!(f.address, 0);
            f
        }
        other => panic!("expected the null write to fault, got {other:?}"),
    }
}

fn noop(c: &Compartment, x: i32) -> Result<i32, Error> {
    // SAFETY: cd_noop(int) -> int, no memory involved.
    unsafe { c.call("cd_noop", ffi::cd_noop as *const (), (x,)) }
}

fn null_write(c: &Compartment) -> Result<(), Error> {
    // SAFETY: cd_null_write(void) writes through a null pointer: the fault
    // is the test, contained by the gate.
    unsafe { c.call("cd_null_write", ffi::cd_null_write as *const (), ()) }
}

#[test]
fn a_raw_compartment_is_renewed_after_a_fault() {
    if !contained_or_skip("a_raw_compartment_is_renewed_after_a_fault") {
        return;
    }
    let c = Compartment::new("raw-renew").unwrap();
    let other_handle = c.clone();
    assert_eq!(noop(&c, 1), Ok(2));
    assert_eq!(c.last_fault(), None);
    assert_eq!(c.renewals(), 0);

    let fault = null_write_fault(null_write(&c), "raw-renew");
    assert!(c.is_poisoned());
    assert!(other_handle.is_poisoned(), "clones share the compartment");
    assert_eq!(c.last_fault(), Some(fault.clone()));
    // Poisoned: refused without running, whatever the function.
    let poisoned = Err(Error::Poisoned {
        compartment: "raw-renew".into(),
    });
    assert_eq!(noop(&c, 1), poisoned);
    assert_eq!(noop(&other_handle, 1), poisoned);
    let text = noop(&c, 1).unwrap_err().to_string();
    assert!(text.contains("until it is renewed"), "{text}");

    // Renewed through one handle: every handle works again.
    c.renew().unwrap();
    assert!(!c.is_poisoned());
    assert!(!other_handle.is_poisoned());
    assert_eq!(c.renewals(), 1);
    assert_eq!(noop(&c, 41), Ok(42));
    assert_eq!(noop(&other_handle, 7), Ok(8));
    // The fault stays on record after the renewal.
    assert_eq!(c.last_fault(), Some(fault));

    // A renewed compartment is a compartment like any other: a new fault
    // poisons it again, and it can be renewed again.
    let again = null_write_fault(null_write(&other_handle), "raw-renew");
    assert!(c.is_poisoned());
    assert_eq!(c.last_fault(), Some(again));
    assert_eq!(noop(&c, 1), poisoned);
    other_handle.renew().unwrap();
    assert_eq!(c.renewals(), 2);
    assert_eq!(noop(&c, 2), Ok(3));
    // Renewing a healthy compartment is allowed and keeps it working.
    c.renew().unwrap();
    assert_eq!(noop(&c, 3), Ok(4));
}

#[test]
fn a_sandbox_block_is_renewed_through_its_handle() {
    if !contained_or_skip("a_sandbox_block_is_renewed_through_its_handle") {
        return;
    }
    // The default handle: `<compartment>_compartment`.
    let c: &'static Compartment = renewable_compartment().unwrap();
    assert_eq!(c.name(), "renewable");
    assert_eq!(cd_noop(1), Ok(2));
    assert!(!c.is_poisoned());

    // SAFETY: the null write faults inside the gate: the fault is the test.
    let fault = null_write_fault(unsafe { cd_null_write() }, "renewable");
    assert!(renewable_compartment().unwrap().is_poisoned());
    assert_eq!(c.last_fault(), Some(fault));
    // Every wrapper of the block refuses until the renewal.
    let poisoned = Error::Poisoned {
        compartment: "renewable".into(),
    };
    assert_eq!(cd_noop(1), Err(poisoned.clone()));
    // SAFETY: refused before it runs.
    assert_eq!(unsafe { cd_null_write() }, Err(poisoned));

    // A server's loop: serve, and renew after a bad input.
    let mut served = Vec::new();
    for input in [5, -1, 6, -1, 7] {
        let r = if input < 0 {
            // SAFETY: as above: the bad input faults inside the gate.
            unsafe { cd_null_write() }.map(|()| 0)
        } else {
            cd_noop(input)
        };
        match r {
            Ok(v) => served.push(v),
            Err(Error::Fault(f)) => {
                assert_eq!(f.function, "cd_null_write");
                renewable_compartment().unwrap().renew().unwrap();
            }
            Err(Error::Poisoned { .. }) => {
                renewable_compartment().unwrap().renew().unwrap();
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    // The first input found the compartment poisoned (renewed, not
    // served); the rest were served around two faults.
    assert_eq!(served, [7, 8]);
    assert_eq!(c.renewals(), 3);
    assert!(!c.is_poisoned());
    assert_eq!(cd_noop(9), Ok(10));
    // The same compartment throughout: the handle's reference stays valid.
    assert!(std::ptr::eq(c, renewable_compartment().unwrap()));
}

#[test]
fn renewal_works_on_split() {
    if std::env::var_os(SPLIT_CHILD).is_some() {
        return;
    }
    for test in [
        "a_raw_compartment_is_renewed_after_a_fault",
        "a_sandbox_block_is_renewed_through_its_handle",
    ] {
        let mut c = std::process::Command::new(std::env::current_exe().unwrap());
        c.args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env("COFFERDAM_BACKEND", "split")
            .env(SPLIT_CHILD, "1")
            .env_remove("COFFERDAM_REQUIRE_MPK");
        let out = c.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{test} on split: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

//! `heap-metadata-smash`: C overruns one of its own `malloc`ed buffers by
//! 64 KiB, across its heap's metadata, and keeps using the heap. The program
//! must carry on: free and allocate foreign memory, call another
//! compartment, renew the smashed one and call it again.
//!
//! Unprotected (`none`: one glibc heap for everybody) the next allocation
//! or free anywhere aborts the process (`malloc(): corrupted top size`) or
//! the overrun itself runs off the heap: the child dies. Protected, the
//! smash stays in the compartment's own heap: its next allocation faults
//! inside the gate, the compartment is poisoned and its heap quarantined,
//! and everything else goes on.

use cofferdam::{Compartment, Error, ForeignBuf};

use crate::{compartment_named, ffi, fn_addr, secret, step, summarise, Mode, Observation};

/// How far past its 32-byte buffer C writes.
const SMASH: usize = 64 * 1024;

fn churn(c: &Compartment, rounds: i32) -> Result<i32, Error> {
    // SAFETY: cd_heap_churn(int) -> int; it allocates and frees in its
    // compartment's heap.
    unsafe {
        c.call(
            "cd_heap_churn",
            fn_addr(ffi::cd_heap_churn as *const ()),
            (rounds,),
        )
    }
}

pub(crate) fn metadata_smash(_mode: Mode) -> Observation {
    let smashed = match compartment_named("heap-smash") {
        Ok(c) => c,
        Err(o) => return o,
    };
    let other = match compartment_named("heap-bystander") {
        Ok(c) => c,
        Err(o) => return o,
    };
    let expected = secret("heap-metadata-smash");
    let secret_box = Box::new(expected);
    let mut steps = Vec::new();

    // Foreign memory made before the smash: in the smashed compartment's
    // heap, in the other compartment's, and compartment-less.
    let victim = ForeignBuf::from_slice_in(&smashed, &[7u8; 256]).expect("foreign buffer");
    let bystander = ForeignBuf::from_slice_in(&other, &[9u8; 256]).expect("foreign buffer");
    let shared = ForeignBuf::from_str_nul("shared").expect("foreign buffer");
    // Warm the heap up, as a library does before its bug.
    let warm = churn(&smashed, 4);
    steps.push(step(
        warm != Ok(4),
        format!("warm-up: {}", crate::result_text(&warm)),
    ));

    // SAFETY: cd_heap_smash(size_t) -> void *: it overruns its own buffer.
    let r: Result<*mut u8, Error> = unsafe {
        smashed.call(
            "cd_heap_smash",
            fn_addr(ffi::cd_heap_smash as *const ()),
            (SMASH,),
        )
    };
    steps.push(step(
        false,
        format!(
            "C wrote {SMASH} bytes from a 32-byte buffer: {}",
            match &r {
                Ok(_) => "returned".to_string(),
                Err(e) => format!("refused: {e}"),
            }
        ),
    ));
    // C goes on allocating in its smashed heap.
    let again = churn(&smashed, 8);
    steps.push(step(
        false,
        format!("C allocates again: {}", crate::result_text(&again)),
    ));

    // The program carries on. Frees of foreign memory, everywhere.
    drop(victim);
    drop(bystander);
    drop(shared);
    steps.push(step(
        false,
        "freed foreign memory of all three heaps".into(),
    ));
    // Allocations: compartment-less and in the other compartment.
    let fresh = ForeignBuf::from_str_nul("fresh");
    let theirs = ForeignBuf::from_slice_in(&other, &[1u8; 4096]);
    let ok = matches!(&fresh, Ok(b) if b.to_bytes_until_nul() == b"fresh")
        && matches!(&theirs, Ok(b) if b.to_vec() == [1u8; 4096]);
    steps.push(step(
        !ok,
        format!(
            "new foreign memory: {}",
            if ok {
                "allocated and read back"
            } else {
                "FAILED"
            }
        ),
    ));
    // Another compartment, whose C allocates.
    let theirs_churn = churn(&other, 16);
    steps.push(step(
        theirs_churn != Ok(16),
        format!("another compartment: {}", crate::result_text(&theirs_churn)),
    ));
    // The smashed one: poisoned if it faulted, renewed, called again.
    let poisoned = smashed.is_poisoned();
    let renewed = smashed.renew();
    let after = churn(&smashed, 16);
    let after_buf = ForeignBuf::from_slice_in(&smashed, &[3u8; 64]).map(|b| b.to_vec());
    let carried_on = renewed.is_ok() && after == Ok(16) && after_buf == Ok(vec![3u8; 64]);
    steps.push(step(
        !carried_on,
        format!(
            "smashed compartment {}; renewed: {}; called again: {}",
            if poisoned { "poisoned" } else { "not poisoned" },
            crate::result_text(&renewed),
            crate::result_text(&after),
        ),
    ));
    // SAFETY: a volatile read of a live Box, so that the compiler cannot
    // assume it still holds what Rust wrote.
    let intact = unsafe { core::ptr::read_volatile(&*secret_box) } == expected;
    summarise(steps, intact)
}

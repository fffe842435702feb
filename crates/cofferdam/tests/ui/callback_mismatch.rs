// A callback whose signature does not match the C declaration's (two
// pointer parameters) is a compile error, not a wrong call at run time.

use core::ffi::{c_int, c_void};

#[cofferdam::sandbox(compartment = "libc")]
extern "C" {
    fn qsort(
        base: *mut c_void,
        nmemb: usize,
        size: usize,
        compar: Option<unsafe extern "C" fn(*const c_void, *const c_void) -> c_int>,
    );
}

fn main() {
    let v = cofferdam::ForeignVec::<c_int>::zeroed(4).unwrap();
    let one = cofferdam::Callback::<fn(cofferdam::ForeignPtr<c_int>) -> c_int>::new(|_| 0).unwrap();
    // SAFETY: never runs (this file must not compile).
    let _ = unsafe { qsort(&v, 4, 4, Some(one.as_arg())) };
}

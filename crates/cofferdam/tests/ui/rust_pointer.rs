// A Rust pointer cannot be passed where the C declaration has a pointer.
use core::ffi::{c_char, c_int, c_void};

#[cofferdam::sandbox(compartment = "libc")]
extern "C" {
    fn strlen(s: *const c_char) -> usize;
    fn memset(s: *mut c_void, c: c_int, n: usize) -> *mut c_void;
}

fn main() {
    // SAFETY (for every block below): none is needed, none of this compiles;
    // the point of the test is the error each argument gets.
    let mut local: c_char = 0;
    let _ = unsafe { strlen(&mut local) };
    let mut v: Vec<c_char> = vec![0; 8];
    let _ = unsafe { strlen(v.as_mut_ptr()) };
    let _ = unsafe { memset(v, 0, 8) };
}

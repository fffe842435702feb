// What the gate cannot carry is refused by the macro, naming the function;
// every problem of a block is reported at once.
// (On errors the macro emits only them, so the imports go unused.)
#![allow(unused_imports)]

use core::ffi::{c_char, c_double, c_int, c_void};

#[cofferdam::sandbox(compartment = "limits", safe(memset, nowhere))]
extern "C" {
    fn printf(format: *const c_char, ...) -> c_int;
    fn too_many(
        a0: c_int,
        a1: c_int,
        a2: c_int,
        a3: c_int,
        a4: c_int,
        a5: c_int,
        a6: c_int,
        a7: c_int,
        a8: c_int,
        a9: c_int,
        a10: c_int,
        a11: c_int,
        a12: c_int,
        a13: c_int,
        a14: c_int,
        a15: c_int,
        a16: c_int,
        a17: c_int,
        a18: c_int,
        a19: c_int,
        a20: c_int,
        a21: c_int,
        a22: c_int,
    ) -> c_int;
    fn many_floats(
        a: c_double,
        b: c_double,
        c: c_double,
        d: c_double,
        e: c_double,
        f: c_double,
        g: c_double,
        h: c_double,
        i: c_double,
        j: c_double,
        k: c_double,
        l: c_double,
        m: c_double,
        n: c_double,
        o: c_double,
        p: c_double,
        q: c_double,
        r: c_double,
        s: c_double,
        t: c_double,
        u: c_double,
        v: c_double,
        w: c_double,
        x: c_double,
        y: c_double,
    ) -> f64;
    fn wide_callback(cb: Option<unsafe extern "C" fn(c_int, c_int, c_int, c_int, c_int, c_int, c_int)>);
    fn wide(x: u128) -> u64;
    fn by_ref(x: &mut u8);
    fn memset(s: *mut c_void, c: c_int, n: usize) -> *mut c_void;
}

extern "C" fn cb() {}

#[cofferdam::sandbox]
extern "C" {
    fn unnamed(f: Option<unsafe extern "C" fn()>);
}

fn main() {
    let _ = cb;
}

// `#[derive(Pod)]` refuses what foreign memory could make invalid.
use cofferdam::ForeignPtr;

// No `#[repr(C)]`: Rust's layout is not the C struct's.
#[derive(Clone, Copy, cofferdam::Pod)]
pub struct NoRepr {
    pub a: u32,
}

// Fields that are not Pod: a `bool` (only 0 and 1 are valid), a raw
// pointer (a pointer field is a `ForeignPtr`), an enum.
#[derive(Clone, Copy)]
pub enum Mode {
    Fast,
    Slow,
}

#[derive(Clone, Copy, cofferdam::Pod)]
#[repr(C)]
pub struct NotPodFields {
    pub ok: u64,
    pub done: bool,
    pub next: *mut u8,
    pub mode: Mode,
    pub fine: ForeignPtr<u8>,
}

// Enums, unions and generic structs.
#[derive(Clone, Copy, cofferdam::Pod)]
#[repr(C)]
pub enum Status {
    Ok,
    Failed,
}

#[derive(Clone, Copy, cofferdam::Pod)]
#[repr(C)]
pub union Either {
    pub a: u32,
    pub b: f32,
}

#[derive(Clone, Copy, cofferdam::Pod)]
#[repr(C)]
pub struct Generic<T: Copy> {
    pub t: T,
}

fn main() {}

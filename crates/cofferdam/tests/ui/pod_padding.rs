// `#[derive(Pod)]` refuses padding: 3 bytes after `tag` (and 4 at the end
// of `Tail`) that no field owns.
#[derive(Clone, Copy, cofferdam::Pod)]
#[repr(C)]
pub struct Inner {
    pub tag: u8,
    pub len: u32,
}

#[derive(Clone, Copy, cofferdam::Pod)]
#[repr(C)]
pub struct Tail {
    pub p: u64,
    pub n: u32,
}

// The same layouts with the padding spelled out, or packed, are accepted.
#[derive(Clone, Copy, cofferdam::Pod)]
#[repr(C)]
pub struct Explicit {
    pub tag: u8,
    pub _pad: [u8; 3],
    pub len: u32,
}

#[derive(Clone, Copy, cofferdam::Pod)]
#[repr(C, packed)]
pub struct Packed {
    pub tag: u8,
    pub len: u32,
}

fn main() {}

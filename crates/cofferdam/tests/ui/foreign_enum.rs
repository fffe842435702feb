// `ForeignEnum` needs a fieldless enum with a known representation.
#[derive(cofferdam::ForeignEnum)]
pub enum NoRepr {
    A,
}

#[derive(cofferdam::ForeignEnum)]
#[repr(u8)]
pub enum WithFields {
    A(u8),
    B,
}

fn main() {}

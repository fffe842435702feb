// Types the macro cannot see through are checked by traits whose messages
// point at the declaration: a struct by value, a pointer behind an alias.
#[repr(C)]
pub struct Pair {
    a: u64,
    b: u64,
}

pub type PairPtr = *mut Pair;

#[cofferdam::sandbox(compartment = "structs")]
extern "C" {
    fn take_pair(p: Pair) -> i32;
    fn make_pair() -> Pair;
    fn through_alias(p: PairPtr) -> PairPtr;
}

fn main() {}

//! A deterministic, compressible input: words from a small vocabulary picked
//! by a linear congruential generator, separated by spaces and newlines.

const WORDS: &[&str] = &[
    "the",
    "gate",
    "foreign",
    "memory",
    "rust",
    "zlib",
    "deflate",
    "inflate",
    "stream",
    "buffer",
    "compartment",
    "protection",
    "key",
    "heap",
    "pointer",
    "fault",
    "window",
    "huffman",
    "literal",
    "distance",
    "adler",
    "checksum",
    "block",
    "of",
    "and",
    "a",
    "to",
    "in",
    "is",
    "copy",
    "safe",
    "unsafe",
];

/// `len` bytes of pseudo-random text; the same `seed` gives the same bytes.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    let mut x = seed;
    let mut n = 0u32;
    while out.len() < len {
        // Knuth's MMIX LCG; the high bits are the good ones.
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let r = (x >> 33) as usize;
        out.extend_from_slice(WORDS[r % WORDS.len()].as_bytes());
        n += 1;
        // A number now and then, so that the text is not too easy.
        if r % 7 == 0 {
            out.extend_from_slice(format!(" {}", (r >> 8) % 100_000).as_bytes());
        }
        out.push(if n % 12 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

/// 8 MiB, the size the tests and the benchmark use.
pub const EIGHT_MIB: usize = 8 << 20;

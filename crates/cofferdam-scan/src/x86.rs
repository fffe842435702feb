//! The x86-64 side of the scan: candidate byte patterns, confirmation with a
//! real decoder (iced-x86), and linear-sweep instruction boundaries.

use iced_x86::{Code, Decoder, DecoderError, DecoderOptions, Instruction};

/// Longest x86 instruction, in bytes.
pub(crate) const MAX_INSN_LEN: usize = 15;

/// Which instruction an occurrence is: one that changes PKRU, or the FS or
/// GS base (WRFSBASE would let a thread take another thread's identity at
/// the gate, see `cofferdam`'s `gate::thread::ident`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Found {
    Wrpkru,
    Xrstor,
    Xrstor64,
    Xrstors,
    Xrstors64,
    Wrfsbase,
    Wrgsbase,
}

impl Found {
    fn from_code(code: Code) -> Option<Found> {
        match code {
            Code::Wrpkru => Some(Found::Wrpkru),
            Code::Xrstor_mem => Some(Found::Xrstor),
            Code::Xrstor64_mem => Some(Found::Xrstor64),
            Code::Xrstors_mem => Some(Found::Xrstors),
            Code::Xrstors64_mem => Some(Found::Xrstors64),
            Code::Wrfsbase_r32 | Code::Wrfsbase_r64 => Some(Found::Wrfsbase),
            Code::Wrgsbase_r32 | Code::Wrgsbase_r64 => Some(Found::Wrgsbase),
            _ => None,
        }
    }

    pub(crate) fn mnemonic(self) -> &'static str {
        match self {
            Found::Wrpkru => "wrpkru",
            Found::Xrstor => "xrstor",
            Found::Xrstor64 => "xrstor64",
            Found::Xrstors => "xrstors",
            Found::Xrstors64 => "xrstors64",
            Found::Wrfsbase => "wrfsbase",
            Found::Wrgsbase => "wrgsbase",
        }
    }
}

/// Legacy prefixes and REX: the bytes that may stand before an opcode.
fn is_prefix(b: u8) -> bool {
    matches!(
        b,
        0x66 | 0x67 | 0xF0 | 0xF2 | 0xF3 | 0x2E | 0x36 | 0x3E | 0x26 | 0x64 | 0x65 | 0x40..=0x4F
    )
}

/// Offsets `p` of the `0F` opcode byte of every byte pattern that may be
/// WRPKRU (`0F 01 EF`), XRSTOR (`0F AE /5`, memory operand) or XRSTORS
/// (`0F C7 /3`, memory operand), at any alignment.
pub(crate) fn candidates(code: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    if code.len() < 3 {
        return out;
    }
    for p in 0..code.len() - 2 {
        if code[p] != 0x0F {
            continue;
        }
        let (op, modrm) = (code[p + 1], code[p + 2]);
        let md = modrm >> 6;
        let reg = (modrm >> 3) & 7;
        let hit = match op {
            0x01 => modrm == 0xEF,
            // XRSTOR (memory, /5); WRFSBASE/WRGSBASE (register, /2, /3).
            0xAE => (md != 3 && reg == 5) || (md == 3 && (reg == 2 || reg == 3)),
            0xC7 => md != 3 && reg == 3,
            _ => false,
        };
        if hit {
            out.push(p);
        }
    }
    out
}

/// Decode one instruction at `start` of `code` (whose first byte is at
/// virtual address `base`). `None` when the bytes do not form a valid
/// instruction or it runs past the end of `code`.
fn decode_at(code: &[u8], start: usize, base: u64) -> Option<Instruction> {
    let end = code.len().min(start.checked_add(MAX_INSN_LEN)?);
    let bytes = code.get(start..end)?;
    let mut dec = Decoder::with_ip(
        64,
        bytes,
        base.wrapping_add(start as u64),
        DecoderOptions::NONE,
    );
    let ins = dec.decode();
    if ins.is_invalid() {
        None
    } else {
        Some(ins)
    }
}

/// A confirmed occurrence at one opcode position.
#[derive(Debug, Clone)]
pub(crate) struct Confirmed {
    /// Every start (opcode position, or a run of prefixes before it) from
    /// which the decoder reads one of the target instructions, with what it
    /// reads and the instruction's length. Sorted by start, ascending.
    pub starts: Vec<(usize, Found, usize)>,
}

/// Confirm a candidate with the decoder: decode at the opcode position and
/// at each start of a run of up to 14 prefix bytes before it.
pub(crate) fn confirm(code: &[u8], p: usize, base: u64) -> Option<Confirmed> {
    let mut starts = Vec::new();
    // Walk back over prefix bytes; the decoder decides whether a prefixed
    // form is still the same instruction (e.g. 66/F2/F3 make WRPKRU #UD).
    let mut k = 0usize;
    loop {
        let s = p - k;
        if let Some(ins) = decode_at(code, s, base) {
            if let Some(found) = Found::from_code(ins.code()) {
                // The opcode must be the one at `p` (prefix bytes are never
                // opcodes in 64-bit mode, so this holds; checked anyway).
                if s + ins.len() > p + 2 {
                    starts.push((s, found, ins.len()));
                }
            }
        }
        if k == MAX_INSN_LEN - 1 || s == 0 || !is_prefix(code[s - 1]) {
            break;
        }
        k += 1;
    }
    if starts.is_empty() {
        return None;
    }
    starts.sort_by_key(|s| s.0);
    Some(Confirmed { starts })
}

/// Linear sweep of `code[start..end]`: a bitmap (indexed from `start`) of
/// the offsets where an instruction begins. On bytes that do not decode the
/// sweep steps one byte and tries again (resynchronises).
pub(crate) fn sweep(code: &[u8], start: usize, end: usize, base: u64) -> Vec<bool> {
    let end = end.min(code.len());
    if start >= end {
        return Vec::new();
    }
    let region = &code[start..end];
    let mut marks = vec![false; region.len()];
    let ip0 = base.wrapping_add(start as u64);
    let mut dec = Decoder::with_ip(64, region, ip0, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    while dec.can_decode() {
        let pos = dec.position();
        dec.decode_out(&mut ins);
        if ins.is_invalid() {
            if dec.last_error() == DecoderError::NoMoreBytes {
                break;
            }
            let next = pos + 1;
            if next >= region.len() || dec.set_position(next).is_err() {
                break;
            }
            dec.set_ip(ip0.wrapping_add(next as u64));
        } else {
            marks[pos] = true;
        }
    }
    marks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_wrpkru_in_mov_immediate_as_candidate() {
        let code = [0xB8, 0x90, 0x0F, 0x01, 0xEF, 0xC3];
        assert_eq!(candidates(&code), vec![2]);
        let c = confirm(&code, 2, 0x1000).unwrap();
        assert_eq!(c.starts, vec![(2, Found::Wrpkru, 3)]);
        let marks = sweep(&code, 0, code.len(), 0x1000);
        assert!(marks[0] && !marks[2] && marks[5]);
    }

    #[test]
    fn xrstor_forms() {
        // xrstor [rdi]; xrstor64 [rdi]; lfence (0F AE E8: mod == 3, not xrstor)
        let code = [0x0F, 0xAE, 0x2F, 0x48, 0x0F, 0xAE, 0x2F, 0x0F, 0xAE, 0xE8];
        assert_eq!(candidates(&code), vec![0, 4]);
        let a = confirm(&code, 0, 0).unwrap();
        assert_eq!(a.starts, vec![(0, Found::Xrstor, 3)]);
        let b = confirm(&code, 4, 0).unwrap();
        assert_eq!(
            b.starts,
            vec![(3, Found::Xrstor64, 4), (4, Found::Xrstor, 3)]
        );
        // wrfsbase rax = F3 48 0F AE D0; wrgsbase ecx = F3 0F AE D9; the
        // same bytes without F3 are not these instructions.
        let fs = [0x90, 0xF3, 0x48, 0x0F, 0xAE, 0xD0];
        assert_eq!(candidates(&fs), vec![3]);
        assert_eq!(
            confirm(&fs, 3, 0).unwrap().starts,
            vec![(1, Found::Wrfsbase, 5)]
        );
        let gs = [0xF3, 0x0F, 0xAE, 0xD9];
        assert_eq!(
            confirm(&gs, 1, 0).unwrap().starts,
            vec![(0, Found::Wrgsbase, 4)]
        );
        assert!(confirm(&[0x90, 0x0F, 0xAE, 0xD0], 1, 0).is_none());
        // xrstors [rdi] = 0F C7 1F; xrstors64 = 48 0F C7 1F
        let code = [0x0F, 0xC7, 0x1F, 0x48, 0x0F, 0xC7, 0x1F];
        let a = confirm(&code, 0, 0).unwrap();
        assert_eq!(a.starts[0].1, Found::Xrstors);
        let b = confirm(&code, 4, 0).unwrap();
        assert_eq!(b.starts[0], (3, Found::Xrstors64, 4));
    }

    #[test]
    fn truncated_instruction_is_not_confirmed() {
        // 0F AE 2C needs a SIB byte that is not there.
        let code = [0x0F, 0xAE, 0x2C];
        assert_eq!(candidates(&code), vec![0]);
        assert!(confirm(&code, 0, 0).is_none());
    }
}

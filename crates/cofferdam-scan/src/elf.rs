//! The ELF side of the scan: header checks with clear errors, executable
//! segments (as they are mapped), and sized function symbols.

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader, Sym};
use object::Endianness;
use std::borrow::Cow;

use crate::ScanError;

/// Mapping granularity of x86-64 Linux: the loader maps whole 4 KiB pages,
/// so the bytes of the file that share a page with an executable segment are
/// mapped executable too.
pub(crate) const PAGE: u64 = 4096;

/// More executable segments than this is refused (real files have one or
/// two); it bounds the work a crafted file can ask for.
pub(crate) const MAX_EXEC_SEGMENTS: usize = 64;

/// An executable `PT_LOAD` segment and the bytes that get mapped executable
/// with it.
#[derive(Debug)]
pub(crate) struct ExecSegment<'a> {
    pub index: usize,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub flags: u32,
    /// File offset of `image[0]` (page-aligned down from `p_offset`).
    pub image_offset: u64,
    /// Virtual address of `image[0]`.
    pub image_vaddr: u64,
    /// Memory image of the mapped pages backed by the file: from the page
    /// start before `p_offset` to the page end after `p_offset + p_filesz`
    /// (clipped to the end of the file); bytes past `p_filesz` are zero when
    /// the loader zero-fills them (`p_memsz > p_filesz`).
    pub image: Cow<'a, [u8]>,
}

/// A function symbol with a size (from `.symtab` or `.dynsym`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Func {
    pub name: String,
    pub vaddr: u64,
    pub size: u64,
}

#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub elf_type: &'static str,
    pub segments: Vec<ExecSegment<'a>>,
    pub funcs: Vec<Func>,
    pub has_symtab: bool,
    pub has_dynsym: bool,
}

/// Name of an `e_machine` value, for the "ELF for X, not x86_64" error.
fn machine_name(m: u16) -> String {
    let n = match m {
        0 => "no machine (EM_NONE)",
        2 => "sparc",
        3 => "i386",
        4 => "m68k",
        8 => "mips",
        20 => "powerpc",
        21 => "powerpc64",
        22 => "s390",
        40 => "arm",
        42 => "superh",
        43 => "sparc64",
        50 => "ia64",
        62 => "x86_64",
        183 => "aarch64",
        243 => "riscv",
        247 => "bpf",
        258 => "loongarch",
        _ => return format!("machine 0x{m:x}"),
    };
    n.to_string()
}

fn end_of(off: u64, size: u64) -> Option<u64> {
    off.checked_add(size)
}

pub(crate) fn parse(data: &[u8]) -> Result<Parsed<'_>, ScanError> {
    let len = data.len() as u64;
    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        return Err(ScanError::NotElf);
    }
    if data.len() < 20 {
        return Err(ScanError::Truncated(format!(
            "ELF identification needs 20 bytes, the file has {}",
            data.len()
        )));
    }
    let class = data[4];
    let encoding = data[5];
    let machine = match encoding {
        1 => u16::from_le_bytes([data[18], data[19]]),
        2 => u16::from_be_bytes([data[18], data[19]]),
        other => {
            return Err(ScanError::Malformed(format!(
                "unknown data encoding {other} in e_ident"
            )))
        }
    };
    if machine != elf::EM_X86_64.0 {
        return Err(ScanError::WrongArch(machine_name(machine)));
    }
    match class {
        2 => {}
        1 => {
            return Err(ScanError::Unsupported(
                "ELF32 for x86_64 (x32 ABI), only ELF64 x86_64 is scanned".into(),
            ))
        }
        other => {
            return Err(ScanError::Malformed(format!(
                "unknown ELF class {other} in e_ident"
            )))
        }
    }
    if encoding != 1 {
        return Err(ScanError::Malformed("big-endian ELF for x86_64".into()));
    }
    let hdr_size = std::mem::size_of::<elf::FileHeader64<Endianness>>();
    if data.len() < hdr_size {
        return Err(ScanError::Truncated(format!(
            "ELF header needs {hdr_size} bytes, the file has {}",
            data.len()
        )));
    }
    let header = elf::FileHeader64::<Endianness>::parse(data)
        .map_err(|e| ScanError::Malformed(e.to_string()))?;
    let endian = header
        .endian()
        .map_err(|e| ScanError::Malformed(e.to_string()))?;
    let elf_type = match header.e_type(endian) {
        elf::ET_DYN => "DYN",
        elf::ET_EXEC => "EXEC",
        t => {
            let what = match t {
                elf::ET_REL => "REL (relocatable object)",
                elf::ET_CORE => "CORE (core dump)",
                elf::ET_NONE => "NONE",
                _ => "unknown",
            };
            return Err(ScanError::Unsupported(format!(
                "ELF type {what} (0x{:x}), only shared objects (DYN) and executables (EXEC) are scanned",
                t.0
            )));
        }
    };

    // Program header table: check its bounds ourselves for a clear message.
    let phoff = header.e_phoff(endian);
    let phentsize = u64::from(header.e_phentsize(endian));
    let e_phnum = u64::from(header.e_phnum(endian));
    if phoff != 0 && e_phnum != 0 && e_phnum != u64::from(elf::PN_XNUM) {
        let table_end = e_phnum
            .checked_mul(phentsize)
            .and_then(|s| end_of(phoff, s));
        match table_end {
            Some(end) if end <= len => {}
            Some(end) => {
                return Err(ScanError::Truncated(format!(
                    "program header table ends at 0x{end:x} past the end of the file (0x{len:x})"
                )))
            }
            None => {
                return Err(ScanError::Malformed(
                    "program header table size overflows".into(),
                ))
            }
        }
    }
    let phdrs = header
        .program_headers(endian, data)
        .map_err(|e| ScanError::Malformed(format!("program headers: {e}")))?;

    let mut segments = Vec::new();
    for (index, ph) in phdrs.iter().enumerate() {
        if ph.p_type(endian) != elf::PT_LOAD {
            continue;
        }
        let p_offset = ph.p_offset(endian);
        let p_filesz = ph.p_filesz(endian);
        let seg_end = end_of(p_offset, p_filesz).ok_or_else(|| {
            ScanError::Malformed(format!(
                "segment {index}: offset 0x{p_offset:x} + size 0x{p_filesz:x} overflows"
            ))
        })?;
        if seg_end > len {
            return Err(ScanError::Truncated(format!(
                "segment {index} ends at 0x{seg_end:x} past the end of the file (0x{len:x})"
            )));
        }
        let flags = ph.p_flags(endian).0;
        if flags & elf::PF_X.0 == 0 {
            continue;
        }
        let p_vaddr = ph.p_vaddr(endian);
        let p_memsz = ph.p_memsz(endian);
        let image_offset = p_offset - p_offset % PAGE;
        let image_end = seg_end
            .checked_add(PAGE - 1)
            .map(|e| e - e % PAGE)
            .unwrap_or(u64::MAX)
            .min(len);
        // In-range by the checks above: image_offset <= p_offset <= seg_end <= len.
        if segments.len() == MAX_EXEC_SEGMENTS {
            return Err(ScanError::Unsupported(format!(
                "more than {MAX_EXEC_SEGMENTS} executable segments"
            )));
        }
        let mut image = Cow::Borrowed(&data[image_offset as usize..image_end as usize]);
        if p_memsz > p_filesz {
            // The loader zero-fills the rest of the last file-backed page.
            let from = (seg_end - image_offset) as usize;
            image.to_mut()[from..].fill(0);
        }
        segments.push(ExecSegment {
            index,
            p_offset,
            p_vaddr,
            p_filesz,
            p_memsz,
            flags,
            image_offset,
            image_vaddr: p_vaddr.wrapping_sub(p_offset - image_offset),
            image,
        });
    }

    // Section headers (absent in some stripped files: then no symbols).
    let shoff = header.e_shoff(endian);
    let mut funcs = Vec::new();
    let (mut has_symtab, mut has_dynsym) = (false, false);
    if shoff != 0 {
        let shentsize = u64::from(header.e_shentsize(endian));
        let e_shnum = u64::from(header.e_shnum(endian));
        // e_shnum == 0 means the count is in section 0: at least one entry.
        let table_end = e_shnum
            .max(1)
            .checked_mul(shentsize)
            .and_then(|s| end_of(shoff, s));
        match table_end {
            Some(end) if end <= len => {}
            Some(end) => {
                return Err(ScanError::Truncated(format!(
                    "section header table ends at 0x{end:x} past the end of the file (0x{len:x})"
                )))
            }
            None => {
                return Err(ScanError::Malformed(
                    "section header table size overflows".into(),
                ))
            }
        }
        let shdrs = header
            .section_headers(endian, data)
            .map_err(|e| ScanError::Malformed(format!("section headers: {e}")))?;
        for sh in shdrs {
            let t = sh.sh_type(endian);
            if t != elf::SHT_SYMTAB && t != elf::SHT_DYNSYM && t != elf::SHT_STRTAB {
                continue;
            }
            let end = end_of(sh.sh_offset(endian), sh.sh_size(endian));
            if end.is_none_or(|e| e > len) {
                return Err(ScanError::Truncated(format!(
                    "symbol or string table at 0x{:x} (0x{:x} bytes) ends past the end of the file (0x{len:x})",
                    sh.sh_offset(endian),
                    sh.sh_size(endian)
                )));
            }
        }
        let sections = header
            .sections(endian, data)
            .map_err(|e| ScanError::Malformed(format!("section headers: {e}")))?;
        for (which, sh_type) in [("symtab", elf::SHT_SYMTAB), ("dynsym", elf::SHT_DYNSYM)] {
            let table = sections
                .symbols(endian, data, sh_type)
                .map_err(|e| ScanError::Malformed(format!(".{which}: {e}")))?;
            if table.is_empty() {
                continue;
            }
            if sh_type == elf::SHT_SYMTAB {
                has_symtab = true;
            } else {
                has_dynsym = true;
            }
            for sym in table.iter() {
                let st = sym.st_type();
                if st != elf::STT_FUNC && st != elf::STT_GNU_IFUNC {
                    continue;
                }
                if sym.st_shndx(endian) == elf::SHN_UNDEF {
                    continue;
                }
                let size = sym.st_size(endian);
                if size == 0 {
                    continue;
                }
                let name = match table.symbol_name(endian, sym) {
                    Ok(n) => String::from_utf8_lossy(n).into_owned(),
                    Err(_) => continue,
                };
                let f = Func {
                    name,
                    vaddr: sym.st_value(endian),
                    size,
                };
                funcs.push(f);
            }
        }
    }
    // .symtab first, then .dynsym: keep the first of each (vaddr, size, name).
    let mut seen = std::collections::HashSet::new();
    funcs.retain(|f| seen.insert((f.vaddr, f.size, f.name.clone())));

    Ok(Parsed {
        elf_type,
        segments,
        funcs,
        has_symtab,
        has_dynsym,
    })
}

//! `cofferdam scan`: find the instructions that let code change PKRU itself
//! (WRPKRU, XRSTOR, XRSTORS) in the executable segments of ELF64 x86-64
//! shared objects and executables.
//!
//! Cofferdam's protection-key isolation holds only as long as foreign code
//! cannot write PKRU. Any `0F 01 EF` (WRPKRU) or XRSTOR/XRSTORS (which load
//! PKRU from an XSAVE area when XCR0.PKRU is set) that is mapped executable is
//! a way to do that, whether the compiler meant it as an instruction or it
//! hides inside another instruction and is reached by a jump into the middle.
//!
//! See `docs/scan.md` for the method, its limits and the JSON schema.

#![forbid(unsafe_code)]

mod elf;
mod x86;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Version of the `--json` document. Bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Cofferdam's own gate trampolines: function symbols whose instructions
/// (at intended boundaries) are allowed.
pub const GATE_SYMBOLS: [&str; 4] = [
    "cofferdam_gate_call",
    "cofferdam_gate_landing",
    "cofferdam_signal_entry",
    "cofferdam_wrpkru_pair_call",
];

/// The gate that is allowed but only meant for benchmarks (no check after
/// its WRPKRU).
pub const BENCHMARK_ONLY_GATE: &str = "cofferdam_wrpkru_pair_call";

/// A gate symbol larger than this is not trusted as a gate (the real ones
/// are a few hundred bytes); a forged giant "gate" cannot cover a library.
pub const MAX_GATE_SIZE: u64 = 4096;

/// Arguments of `cofferdam scan`.
#[cfg(feature = "cli")]
#[derive(clap::Args, Debug, Clone)]
pub struct ScanArgs {
    /// ELF files to scan (ELF64 x86_64 shared objects and executables).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Print a JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
    /// List allowed occurrences (Cofferdam's own gates) in the table too.
    #[arg(long)]
    pub all: bool,
    /// Do not allow Cofferdam's gate symbols: every occurrence is unsafe.
    /// Use for foreign libraries, which have no business defining them.
    #[arg(long)]
    pub no_gates: bool,
}

/// Options of a scan.
#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    /// Allow occurrences at intended boundaries in Cofferdam's gate functions.
    pub allow_gates: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions { allow_gates: true }
    }
}

/// Why a file could not be scanned. Display is one line, without the file
/// name (callers prefix it).
#[derive(Debug)]
pub enum ScanError {
    /// The file could not be read.
    Io(std::io::Error),
    /// No ELF magic.
    NotElf,
    /// A header, table or segment lies past the end of the file.
    Truncated(String),
    /// An ELF for another architecture (the name of `e_machine`).
    WrongArch(String),
    /// A well-formed ELF that is not scanned (relocatable object, x32, ...).
    Unsupported(String),
    /// An ELF whose headers do not make sense.
    Malformed(String),
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::Io(e) => write!(f, "cannot read: {e}"),
            ScanError::NotElf => write!(f, "not an ELF file"),
            ScanError::Truncated(m) => write!(f, "truncated: {m}"),
            ScanError::WrongArch(a) => write!(f, "ELF for {a}, not x86_64"),
            ScanError::Unsupported(m) => write!(f, "unsupported: {m}"),
            ScanError::Malformed(m) => write!(f, "malformed ELF: {m}"),
        }
    }
}

impl std::error::Error for ScanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ScanError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl ScanError {
    /// Exit code of `cofferdam scan` for this error.
    pub fn exit_code(&self) -> i32 {
        2
    }
}

/// Which instruction: one that changes PKRU, or the FS/GS base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `0F 01 EF`: writes EAX to PKRU.
    Wrpkru,
    /// `0F AE /5` (memory): restores state components, PKRU among them.
    Xrstor,
    /// `0F C7 /3` (memory): supervisor restore (faults at CPL 3, reported anyway).
    Xrstors,
    /// `F3 0F AE /2` (register): writes the FS base, the thread pointer the
    /// gate identifies a thread by.
    Wrfsbase,
    /// `F3 0F AE /3` (register): writes the GS base.
    Wrgsbase,
}

impl Kind {
    /// The name used in the JSON document and the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Wrpkru => "wrpkru",
            Kind::Xrstor => "xrstor",
            Kind::Xrstors => "xrstors",
            Kind::Wrfsbase => "wrfsbase",
            Kind::Wrgsbase => "wrgsbase",
        }
    }
}

/// One executable segment that was scanned.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentInfo {
    /// Index in the program header table.
    pub index: usize,
    /// `p_offset`.
    pub offset: u64,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_vaddr + p_memsz`.
    pub vaddr_end: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// Flags as `r-x`.
    pub flags: String,
    /// First virtual address scanned (page start before `p_vaddr`).
    pub scanned_vaddr: u64,
    /// End of the scanned range: the page end after the file-backed part,
    /// clipped to the end of the file.
    pub scanned_vaddr_end: u64,
}

/// One WRPKRU / XRSTOR / XRSTORS found.
#[derive(Debug, Clone, Serialize)]
pub struct Occurrence {
    /// File offset of the first byte of the instruction.
    pub offset: u64,
    /// Virtual address (as linked; add the load base for a shared object).
    pub vaddr: u64,
    /// Which instruction.
    pub kind: Kind,
    /// Exact form as decoded: wrpkru, xrstor, xrstor64, xrstors, xrstors64.
    pub mnemonic: String,
    /// The instruction's bytes, lower-case hex without separators.
    pub bytes: String,
    /// It starts on an instruction boundary of the linear sweep of the
    /// function (or gap between functions) that contains it; false: it is
    /// only reachable by jumping into the middle of another instruction.
    pub intended: bool,
    /// Smallest sized function symbol that contains it.
    pub symbol: Option<String>,
    /// Offset from the start of `symbol`.
    pub symbol_offset: Option<u64>,
    /// Allowed: one of Cofferdam's own gate sites.
    pub gate: bool,
    /// Allowed gate that exists only for benchmarks (`cofferdam_wrpkru_pair_call`).
    pub benchmark_only: bool,
    /// It lies in the part of a page that is mapped with the segment but
    /// is outside `p_offset .. p_offset + p_filesz`.
    pub page_slack: bool,
    /// Program header index of the segment.
    pub segment: usize,
}

impl Occurrence {
    /// Unsafe: anything but an allowed gate site.
    pub fn is_unsafe(&self) -> bool {
        !self.gate
    }
}

/// Counts over a report.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub occurrences: usize,
    #[serde(rename = "unsafe")]
    pub unsafe_: usize,
    pub gate: usize,
    pub benchmark_only: usize,
    pub intended: usize,
    pub unaligned: usize,
    pub wrpkru: usize,
    pub xrstor: usize,
    pub xrstors: usize,
    pub wrfsbase: usize,
    pub wrgsbase: usize,
}

/// The result of scanning one file.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    pub path: String,
    /// Always `ELF64`.
    pub class: String,
    /// `DYN` or `EXEC`.
    #[serde(rename = "type")]
    pub elf_type: String,
    /// Always `x86_64`.
    pub arch: String,
    /// A `.symtab` with entries was found.
    pub has_symtab: bool,
    /// A `.dynsym` with entries was found.
    pub has_dynsym: bool,
    /// Sized function symbols used as sweep starts.
    pub function_symbols: usize,
    pub segments: Vec<SegmentInfo>,
    pub occurrences: Vec<Occurrence>,
    pub summary: Summary,
}

impl ScanReport {
    /// Some occurrence is not an allowed gate.
    pub fn has_unsafe(&self) -> bool {
        self.summary.unsafe_ > 0
    }
}

/// Read and scan a file.
pub fn scan_file(path: &Path) -> Result<ScanReport, ScanError> {
    scan_file_with(path, ScanOptions::default())
}

/// Read and scan a file with options.
pub fn scan_file_with(path: &Path, options: ScanOptions) -> Result<ScanReport, ScanError> {
    let data = std::fs::read(path).map_err(ScanError::Io)?;
    scan_bytes_with(&path.display().to_string(), &data, options)
}

/// Scan the bytes of an ELF file; `name` is only copied into the report.
pub fn scan_bytes(name: &str, elf: &[u8]) -> Result<ScanReport, ScanError> {
    scan_bytes_with(name, elf, ScanOptions::default())
}

/// A sized function as positions in one segment image.
struct Span<'a> {
    name: &'a str,
    start: usize,
    end: usize,
    vaddr: u64,
    size: u64,
}

/// Scan the bytes of an ELF file with options.
pub fn scan_bytes_with(
    name: &str,
    elf: &[u8],
    options: ScanOptions,
) -> Result<ScanReport, ScanError> {
    let parsed = elf::parse(elf)?;
    let mut occurrences: Vec<Occurrence> = Vec::new();
    let mut segments = Vec::new();
    let mut seen_vaddr = std::collections::HashSet::new();

    for seg in &parsed.segments {
        let f = seg.flags;
        segments.push(SegmentInfo {
            index: seg.index,
            offset: seg.p_offset,
            vaddr: seg.p_vaddr,
            vaddr_end: seg.p_vaddr.wrapping_add(seg.p_memsz),
            filesz: seg.p_filesz,
            flags: format!(
                "{}{}{}",
                if f & 4 != 0 { 'r' } else { '-' },
                if f & 2 != 0 { 'w' } else { '-' },
                if f & 1 != 0 { 'x' } else { '-' }
            ),
            scanned_vaddr: seg.image_vaddr,
            scanned_vaddr_end: seg.image_vaddr.wrapping_add(seg.image.len() as u64),
        });

        let image = &seg.image[..];
        let base = seg.image_vaddr;
        let img_len = image.len() as u64;
        // Function symbols that overlap this image, as image positions.
        let spans: Vec<Span> = parsed
            .funcs
            .iter()
            .filter_map(|fun| {
                let start = fun.vaddr.checked_sub(base)?;
                if start >= img_len {
                    return None;
                }
                let end = start.saturating_add(fun.size).min(img_len);
                Some(Span {
                    name: &fun.name,
                    start: start as usize,
                    end: end as usize,
                    vaddr: fun.vaddr,
                    size: fun.size,
                })
            })
            .collect();
        let mut sweeps: HashMap<(usize, usize), Vec<bool>> = HashMap::new();
        let mut is_start = |start: usize, end: usize, pos: usize| -> bool {
            if pos < start || pos >= end {
                return false;
            }
            let marks = sweeps
                .entry((start, end))
                .or_insert_with(|| x86::sweep(image, start, end, base));
            marks.get(pos - start).copied().unwrap_or(false)
        };

        for p in x86::candidates(image) {
            let Some(c) = x86::confirm(image, p, base) else {
                continue;
            };
            let containing: Vec<&Span> =
                spans.iter().filter(|s| s.start <= p && p < s.end).collect();
            let smallest = containing.iter().min_by_key(|s| s.end - s.start).copied();
            // The region whose sweep decides "intended".
            let (r_start, r_end) = match smallest {
                Some(s) => (s.start, s.end),
                None => {
                    let prev_end = spans
                        .iter()
                        .filter(|s| s.end <= p)
                        .map(|s| s.end)
                        .max()
                        .unwrap_or(0);
                    let next_start = spans
                        .iter()
                        .filter(|s| s.start > p)
                        .map(|s| s.start)
                        .min()
                        .unwrap_or(image.len());
                    (prev_end, next_start)
                }
            };
            let intended_start = c
                .starts
                .iter()
                .find(|st| is_start(r_start, r_end, st.0))
                .copied();
            // Gate: inside a gate function AND at an instruction boundary of
            // that function's own sweep.
            let mut gate_name: Option<&str> = None;
            if options.allow_gates {
                for s in &containing {
                    if GATE_SYMBOLS.contains(&s.name)
                        && s.size <= MAX_GATE_SIZE
                        && c.starts.iter().any(|st| is_start(s.start, s.end, st.0))
                    {
                        gate_name = Some(s.name);
                        break;
                    }
                }
            }
            // Reported form: the intended one, else the longest (all prefixes).
            let (start, found, len) = intended_start.unwrap_or(c.starts[0]);
            let vaddr = base.wrapping_add(start as u64);
            if !seen_vaddr.insert(vaddr) {
                continue; // same bytes seen through an overlapping segment
            }
            let offset = seg.image_offset + start as u64;
            let kind = match found {
                x86::Found::Wrpkru => Kind::Wrpkru,
                x86::Found::Xrstor | x86::Found::Xrstor64 => Kind::Xrstor,
                x86::Found::Xrstors | x86::Found::Xrstors64 => Kind::Xrstors,
                x86::Found::Wrfsbase => Kind::Wrfsbase,
                x86::Found::Wrgsbase => Kind::Wrgsbase,
            };
            let bytes: String = image[start..start + len]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let page_slack = offset < seg.p_offset || offset >= seg.p_offset + seg.p_filesz;
            occurrences.push(Occurrence {
                offset,
                vaddr,
                kind,
                mnemonic: found.mnemonic().to_string(),
                bytes,
                intended: intended_start.is_some(),
                symbol: smallest.map(|s| s.name.to_string()),
                symbol_offset: smallest.map(|s| vaddr.wrapping_sub(s.vaddr)),
                gate: gate_name.is_some(),
                benchmark_only: gate_name == Some(BENCHMARK_ONLY_GATE),
                page_slack,
                segment: seg.index,
            });
        }
    }
    occurrences.sort_by_key(|o| o.vaddr);

    let mut summary = Summary {
        occurrences: occurrences.len(),
        ..Summary::default()
    };
    for o in &occurrences {
        if o.is_unsafe() {
            summary.unsafe_ += 1;
        } else {
            summary.gate += 1;
        }
        if o.benchmark_only {
            summary.benchmark_only += 1;
        }
        if o.intended {
            summary.intended += 1;
        } else {
            summary.unaligned += 1;
        }
        match o.kind {
            Kind::Wrpkru => summary.wrpkru += 1,
            Kind::Xrstor => summary.xrstor += 1,
            Kind::Xrstors => summary.xrstors += 1,
            Kind::Wrfsbase => summary.wrfsbase += 1,
            Kind::Wrgsbase => summary.wrgsbase += 1,
        }
    }

    Ok(ScanReport {
        path: name.to_string(),
        class: "ELF64".into(),
        elf_type: parsed.elf_type.into(),
        arch: "x86_64".into(),
        has_symtab: parsed.has_symtab,
        has_dynsym: parsed.has_dynsym,
        function_symbols: parsed.funcs.len(),
        segments,
        occurrences,
        summary,
    })
}

/// Exit code for a set of results: 2 if any file could not be scanned,
/// else 1 if any unsafe occurrence was found, else 0.
pub fn exit_code(results: &[(PathBuf, Result<ScanReport, ScanError>)]) -> i32 {
    if results.is_empty() || results.iter().any(|(_, r)| r.is_err()) {
        2
    } else if results
        .iter()
        .any(|(_, r)| matches!(r, Ok(rep) if rep.has_unsafe()))
    {
        1
    } else {
        0
    }
}

/// The `--json` document for a set of results.
pub fn json_document(results: &[(PathBuf, Result<ScanReport, ScanError>)]) -> serde_json::Value {
    use serde_json::json;
    let mut files = Vec::new();
    let (mut errors, mut with_unsafe, mut unsafe_total, mut gate_total) =
        (0usize, 0usize, 0usize, 0usize);
    for (path, r) in results {
        match r {
            Ok(rep) => {
                let mut v = serde_json::to_value(rep).unwrap_or(serde_json::Value::Null);
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("path".into(), json!(path.display().to_string()));
                    obj.insert("error".into(), serde_json::Value::Null);
                }
                if rep.has_unsafe() {
                    with_unsafe += 1;
                }
                unsafe_total += rep.summary.unsafe_;
                gate_total += rep.summary.gate;
                files.push(v);
            }
            Err(e) => {
                errors += 1;
                files.push(json!({ "path": path.display().to_string(), "error": e.to_string() }));
            }
        }
    }
    json!({
        "schema_version": SCHEMA_VERSION,
        "tool": "cofferdam scan",
        "files": files,
        "summary": {
            "files": results.len(),
            "errors": errors,
            "files_with_unsafe": with_unsafe,
            "unsafe": unsafe_total,
            "gate": gate_total,
        },
        "exit_code": exit_code(results),
    })
}

fn status_of(o: &Occurrence) -> &'static str {
    match (o.gate, o.benchmark_only) {
        (true, true) => "gate (benchmark-only)",
        (true, false) => "gate",
        (false, _) => "UNSAFE",
    }
}

/// The readable table for one report.
pub fn render_table(rep: &ScanReport, all: bool) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let segs: Vec<String> = rep
        .segments
        .iter()
        .map(|g| {
            format!(
                "#{} 0x{:x}..0x{:x} {}",
                g.index, g.vaddr, g.vaddr_end, g.flags
            )
        })
        .collect();
    let syms = match (rep.has_symtab, rep.has_dynsym) {
        (true, true) => ".symtab+.dynsym",
        (true, false) => ".symtab",
        (false, true) => ".dynsym",
        (false, false) => "no symbols",
    };
    let _ = writeln!(
        s,
        "{}: {} {} {}, executable segments: {}; {} ({} functions)",
        rep.path,
        rep.class,
        rep.elf_type,
        rep.arch,
        if segs.is_empty() {
            "none".to_string()
        } else {
            segs.join(", ")
        },
        syms,
        rep.function_symbols
    );
    let shown: Vec<&Occurrence> = rep
        .occurrences
        .iter()
        .filter(|o| all || o.is_unsafe())
        .collect();
    if !shown.is_empty() {
        let _ = writeln!(
            s,
            "  {:<10} {:<14} {:<9} {:<24} {:<10} {:<36} STATUS",
            "OFFSET", "VADDR", "KIND", "BYTES", "BOUNDARY", "WHERE"
        );
        for o in shown {
            let bytes: Vec<String> = o
                .bytes
                .as_bytes()
                .chunks(2)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect();
            let place = match (&o.symbol, o.symbol_offset) {
                (Some(n), Some(off)) => format!("{n}+0x{off:x}"),
                _ if o.page_slack => "(page slack outside segment)".to_string(),
                _ => "(no function symbol)".to_string(),
            };
            let _ = writeln!(
                s,
                "  0x{:<8x} 0x{:<12x} {:<9} {:<24} {:<10} {:<36} {}",
                o.offset,
                o.vaddr,
                o.mnemonic,
                bytes.join(" "),
                if o.intended { "intended" } else { "unaligned" },
                place,
                status_of(o)
            );
        }
    }
    let m = &rep.summary;
    let _ = writeln!(
        s,
        "  {} occurrence(s): {} unsafe, {} gate{} ({} intended, {} unaligned; wrpkru {}, xrstor {}, xrstors {}, wrfsbase {}, wrgsbase {})",
        m.occurrences,
        m.unsafe_,
        m.gate,
        if m.benchmark_only > 0 { format!(" ({} benchmark-only)", m.benchmark_only) } else { String::new() },
        m.intended,
        m.unaligned,
        m.wrpkru,
        m.xrstor,
        m.xrstors,
        m.wrfsbase,
        m.wrgsbase
    );
    s
}

/// `cofferdam scan`: 0 nothing unsafe, 1 an unsafe occurrence, 2 bad input.
#[cfg(feature = "cli")]
pub fn run(args: &ScanArgs) -> i32 {
    use std::io::Write;
    if args.files.is_empty() {
        eprintln!("cofferdam scan: no files given");
        return 2;
    }
    let options = ScanOptions {
        allow_gates: !args.no_gates,
    };
    let results: Vec<(PathBuf, Result<ScanReport, ScanError>)> = args
        .files
        .iter()
        .map(|p| (p.clone(), scan_file_with(p, options)))
        .collect();
    for (path, r) in &results {
        if let Err(e) = r {
            eprintln!("cofferdam scan: {}: {e}", path.display());
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        let doc = json_document(&results);
        let text = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
        let _ = writeln!(out, "{text}");
    } else {
        for (_, r) in &results {
            if let Ok(rep) = r {
                let _ = write!(out, "{}", render_table(rep, args.all));
            }
        }
    }
    exit_code(&results)
}

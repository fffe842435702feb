//! Integration tests: small shared objects built with the system C compiler
//! at test time, the system's libraries, and bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

use cofferdam_scan::{
    json_document, run, scan_bytes, scan_bytes_with, scan_file, Kind, ScanArgs, ScanError,
    ScanOptions, ScanReport,
};

const LIBC: &str = "/lib/x86_64-linux-gnu/libc.so.6";
const LD_SO: &str = "/lib64/ld-linux-x86-64.so.2";
const LIBZ: &str = "/lib/x86_64-linux-gnu/libz.so.1";
const LIBSQLITE: &str = "/lib/x86_64-linux-gnu/libsqlite3.so.0";

fn tmp_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cofferdam-scan-tests");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Compile `src` into `NAME.so` with `cc -shared -fPIC -O1` (extra flags
/// appended) and return its path.
fn build_so(name: &str, src: &str, extra: &[&str]) -> PathBuf {
    let dir = tmp_dir();
    let c = dir.join(format!("{name}.c"));
    let so = dir.join(format!("{name}.so"));
    std::fs::write(&c, src).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&so)
        .arg(&c)
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(
        out.status.success(),
        "{cc} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    so
}

fn args(files: &[&Path]) -> ScanArgs {
    ScanArgs {
        files: files.iter().map(|p| p.to_path_buf()).collect(),
        json: false,
        all: false,
        no_gates: false,
    }
}

fn json_args(files: &[&Path]) -> ScanArgs {
    ScanArgs {
        json: true,
        ..args(files)
    }
}

const WRPKRU_C: &str = r#"
void set_pkru(unsigned v) { __asm__ volatile("wrpkru" :: "a"(v), "c"(0), "d"(0) : "memory"); }
int add(int a, int b) { return a + b; }
"#;

const HIDDEN_C: &str = r#"
int hidden(void) { int r; __asm__ volatile("mov $0xEF010F90, %0" : "=a"(r)); return r; }
"#;

const XRSTOR_C: &str = r#"
void restore(void *p) {
    __asm__ volatile("xrstor (%0)" :: "r"(p), "a"(-1), "d"(-1) : "memory");
    __asm__ volatile("xrstor64 (%0)" :: "r"(p), "a"(-1), "d"(-1) : "memory");
}
void restore_s(void *p) {
    __asm__ volatile("xrstors (%0)" :: "r"(p), "a"(-1), "d"(-1) : "memory");
    __asm__ volatile("xrstors64 (%0)" :: "r"(p), "a"(-1), "d"(-1) : "memory");
}
"#;

/// A thread that sets its own FS base takes another thread's identity at
/// the gate: WRFSBASE (and WRGSBASE) are refused like WRPKRU.
const FSBASE_C: &str = r#"
void set_fs(unsigned long v) { __asm__ volatile("wrfsbase %0" :: "r"(v) : "memory"); }
void set_gs(unsigned v) { __asm__ volatile("wrgsbase %0" :: "r"(v) : "memory"); }
"#;

const CLEAN_C: &str = r#"
#include <string.h>
int sum(const int *v, int n) { int s = 0; for (int i = 0; i < n; i++) s += v[i]; return s; }
unsigned long len(const char *s) { return strlen(s); }
"#;

/// Functions named like Cofferdam's gates: intended WRPKRUs are allowed,
/// a hidden one is not.
const GATES_C: &str = r#"
void cofferdam_gate_call(unsigned v) { __asm__ volatile("wrpkru" :: "a"(v), "c"(0), "d"(0) : "memory"); }
void cofferdam_wrpkru_pair_call(unsigned v) { __asm__ volatile("wrpkru" :: "a"(v), "c"(0), "d"(0) : "memory"); }
int cofferdam_gate_landing(void) { int r; __asm__ volatile("mov $0xEF010F90, %0" : "=a"(r)); return r; }
void not_a_gate(unsigned v) { __asm__ volatile("wrpkru" :: "a"(v), "c"(0), "d"(0) : "memory"); }
"#;

fn only(rep: &ScanReport) -> &cofferdam_scan::Occurrence {
    assert_eq!(rep.occurrences.len(), 1, "{rep:#?}");
    &rep.occurrences[0]
}

#[test]
fn intended_wrpkru_in_a_function() {
    let so = build_so("wrpkru", WRPKRU_C, &[]);
    let rep = scan_file(&so).unwrap();
    assert_eq!(rep.elf_type, "DYN");
    let o = only(&rep);
    assert_eq!(o.kind, Kind::Wrpkru);
    assert_eq!(o.bytes, "0f01ef");
    assert!(o.intended);
    assert!(!o.gate && o.is_unsafe());
    assert_eq!(o.symbol.as_deref(), Some("set_pkru"));
    assert!(!o.page_slack);
    // The reported offset really holds the bytes.
    let data = std::fs::read(&so).unwrap();
    assert_eq!(
        &data[o.offset as usize..o.offset as usize + 3],
        &[0x0F, 0x01, 0xEF]
    );
    assert_eq!(run(&args(&[&so])), 1);
}

#[test]
fn wrpkru_hidden_in_an_immediate_is_unaligned() {
    let so = build_so("hidden", HIDDEN_C, &[]);
    let rep = scan_file(&so).unwrap();
    let o = only(&rep);
    assert_eq!(o.kind, Kind::Wrpkru);
    assert!(!o.intended, "the 0F 01 EF is inside `mov eax, imm32`");
    assert!(o.is_unsafe());
    assert_eq!(o.symbol.as_deref(), Some("hidden"));
    // B8 90 0F 01 EF: the occurrence starts 2 bytes into the mov.
    let data = std::fs::read(&so).unwrap();
    let off = o.offset as usize;
    assert_eq!(&data[off - 2..off + 3], &[0xB8, 0x90, 0x0F, 0x01, 0xEF]);
    assert_eq!(rep.summary.unaligned, 1);
    assert_eq!(run(&args(&[&so])), 1);
}

#[test]
fn wrfsbase_and_wrgsbase_are_unsafe() {
    let so = build_so("fsbase", FSBASE_C, &[]);
    let rep = scan_file(&so).unwrap();
    let got: Vec<(&str, Kind, bool, Option<&str>)> = rep
        .occurrences
        .iter()
        .map(|o| (o.mnemonic.as_str(), o.kind, o.intended, o.symbol.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("wrfsbase", Kind::Wrfsbase, true, Some("set_fs")),
            ("wrgsbase", Kind::Wrgsbase, true, Some("set_gs")),
        ]
    );
    assert_eq!(rep.summary.wrfsbase, 1);
    assert_eq!(rep.summary.wrgsbase, 1);
    assert_eq!(rep.summary.unsafe_, 2);
    assert_eq!(run(&args(&[&so])), 1);
}

#[test]
fn xrstor_and_xrstors_forms() {
    let so = build_so("xrstor", XRSTOR_C, &[]);
    let rep = scan_file(&so).unwrap();
    let got: Vec<(&str, Kind, bool, Option<&str>)> = rep
        .occurrences
        .iter()
        .map(|o| (o.mnemonic.as_str(), o.kind, o.intended, o.symbol.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("xrstor", Kind::Xrstor, true, Some("restore")),
            ("xrstor64", Kind::Xrstor, true, Some("restore")),
            ("xrstors", Kind::Xrstors, true, Some("restore_s")),
            ("xrstors64", Kind::Xrstors, true, Some("restore_s")),
        ]
    );
    // REX.W is part of the reported bytes of the 64-bit forms.
    assert!(
        rep.occurrences[1].bytes.starts_with("480fae"),
        "{}",
        rep.occurrences[1].bytes
    );
    assert!(
        rep.occurrences[3].bytes.starts_with("480fc7"),
        "{}",
        rep.occurrences[3].bytes
    );
    assert_eq!(rep.summary.xrstor, 2);
    assert_eq!(rep.summary.xrstors, 2);
    assert_eq!(rep.summary.unsafe_, 4);
    assert_eq!(run(&args(&[&so])), 1);
}

#[test]
fn clean_library_exits_zero() {
    let so = build_so("clean", CLEAN_C, &[]);
    let rep = scan_file(&so).unwrap();
    assert!(rep.occurrences.is_empty(), "{:#?}", rep.occurrences);
    assert!(!rep.segments.is_empty());
    assert!(rep.segments.iter().all(|s| s.flags.contains('x')));
    assert_eq!(run(&args(&[&so])), 0);
    assert_eq!(run(&json_args(&[&so])), 0);
}

#[test]
fn gate_symbols_are_allowed_only_at_intended_boundaries() {
    let so = build_so("gates", GATES_C, &[]);
    let rep = scan_file(&so).unwrap();
    let by_sym = |name: &str| {
        rep.occurrences
            .iter()
            .find(|o| o.symbol.as_deref() == Some(name))
            .unwrap()
    };
    assert_eq!(rep.occurrences.len(), 4, "{:#?}", rep.occurrences);

    let g = by_sym("cofferdam_gate_call");
    assert!(g.intended && g.gate && !g.benchmark_only && !g.is_unsafe());
    let b = by_sym("cofferdam_wrpkru_pair_call");
    assert!(b.intended && b.gate && b.benchmark_only);
    let h = by_sym("cofferdam_gate_landing");
    assert!(
        !h.intended && !h.gate && h.is_unsafe(),
        "hidden WRPKRU inside a gate is unsafe"
    );
    let n = by_sym("not_a_gate");
    assert!(n.intended && !n.gate);

    assert_eq!(rep.summary.gate, 2);
    assert_eq!(rep.summary.benchmark_only, 1);
    assert_eq!(rep.summary.unsafe_, 2);
    assert_eq!(run(&args(&[&so])), 1);

    // Without the allow-list everything is unsafe.
    let data = std::fs::read(&so).unwrap();
    let strict = scan_bytes_with("gates", &data, ScanOptions { allow_gates: false }).unwrap();
    assert_eq!(strict.summary.unsafe_, 4);
    assert_eq!(strict.summary.gate, 0);
}

#[test]
fn only_gates_exits_zero() {
    let src = r#"
void cofferdam_gate_call(unsigned v) { __asm__ volatile("wrpkru" :: "a"(v), "c"(0), "d"(0) : "memory"); }
void cofferdam_signal_entry(unsigned v) { __asm__ volatile("wrpkru" :: "a"(v), "c"(0), "d"(0) : "memory"); }
"#;
    let so = build_so("only_gates", src, &[]);
    let rep = scan_file(&so).unwrap();
    assert_eq!(rep.summary.gate, 2, "{:#?}", rep.occurrences);
    assert_eq!(rep.summary.unsafe_, 0);
    assert_eq!(run(&args(&[&so])), 0);
    let strict = ScanArgs {
        no_gates: true,
        ..args(&[&so])
    };
    assert_eq!(run(&strict), 1);
}

/// Zero the section header fields of the ELF header: what a stripped file
/// without section headers looks like. Segments are still scanned; with no
/// symbols, nothing is a gate.
fn drop_section_headers(data: &mut [u8]) {
    data[0x28..0x30].fill(0); // e_shoff
    data[0x3C..0x40].fill(0); // e_shnum, e_shstrndx
}

#[test]
fn without_section_headers_segments_are_scanned_and_nothing_is_a_gate() {
    let so = build_so("gates_nosh", GATES_C, &[]);
    let mut data = std::fs::read(&so).unwrap();
    drop_section_headers(&mut data);
    let rep = scan_bytes("gates_nosh", &data).unwrap();
    assert!(!rep.has_symtab && !rep.has_dynsym);
    assert_eq!(rep.occurrences.len(), 4, "{:#?}", rep.occurrences);
    assert_eq!(rep.summary.gate, 0);
    assert_eq!(rep.summary.unsafe_, 4);
    assert!(rep.occurrences.iter().all(|o| o.symbol.is_none()));
    // Whole-segment sweep: the plain ones are intended, the hidden one is not.
    assert_eq!(rep.summary.intended, 3);
    assert_eq!(rep.summary.unaligned, 1);
}

#[test]
fn stripped_library_still_found() {
    let so = build_so("wrpkru_stripped", WRPKRU_C, &["-s"]);
    let rep = scan_file(&so).unwrap();
    assert!(!rep.has_symtab);
    let o = only(&rep);
    assert!(o.intended);
    // Exported function: .dynsym still names it.
    assert_eq!(o.symbol.as_deref(), Some("set_pkru"));
}

#[test]
fn executable_is_scanned() {
    let dir = tmp_dir();
    let c = dir.join("exe.c");
    let exe = dir.join("exe");
    std::fs::write(&c, "int main(void) { __asm__ volatile(\"wrpkru\" :: \"a\"(0), \"c\"(0), \"d\"(0)); return 0; }\n")
        .unwrap();
    let st = Command::new("cc")
        .args(["-O1", "-no-pie", "-o"])
        .arg(&exe)
        .arg(&c)
        .status()
        .unwrap();
    assert!(st.success());
    let rep = scan_file(&exe).unwrap();
    assert_eq!(rep.elf_type, "EXEC");
    let o = only(&rep);
    assert_eq!(o.symbol.as_deref(), Some("main"));
    assert!(o.intended);
}

#[test]
fn system_libz_has_no_unsafe_occurrence() {
    let rep = scan_file(Path::new(LIBZ)).unwrap();
    assert_eq!(rep.summary.unsafe_, 0, "{:#?}", rep.occurrences);
    assert!(!rep.segments.is_empty());
    assert_eq!(run(&args(&[Path::new(LIBZ)])), 0);
}

#[test]
fn system_libraries_scan_without_error() {
    for lib in [LIBC, LD_SO, LIBSQLITE] {
        let rep = scan_file(Path::new(lib)).unwrap_or_else(|e| panic!("{lib}: {e}"));
        assert!(!rep.segments.is_empty(), "{lib}");
        // Recorded in docs/scan.md; printed here for the record.
        eprintln!("{lib}: {:?}", rep.summary);
        for o in &rep.occurrences {
            eprintln!(
                "  {} 0x{:x} {} intended={} {:?}",
                o.mnemonic, o.vaddr, o.bytes, o.intended, o.symbol
            );
        }
    }
    // glibc's pkey_set is a WRPKRU by design.
    let libc = scan_file(Path::new(LIBC)).unwrap();
    assert!(libc
        .occurrences
        .iter()
        .any(|o| o.kind == Kind::Wrpkru && o.intended && o.symbol.as_deref() == Some("pkey_set")));
}

#[test]
fn json_document_shape() {
    let so = build_so("hidden_json", HIDDEN_C, &[]);
    let missing = PathBuf::from("/nonexistent/lib.so");
    let results = vec![
        (so.clone(), scan_file(&so)),
        (missing.clone(), scan_file(&missing)),
    ];
    let doc = json_document(&results);
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["exit_code"], 2);
    let f = &doc["files"][0];
    assert_eq!(f["path"], so.display().to_string());
    assert!(f["error"].is_null());
    assert_eq!(f["class"], "ELF64");
    assert_eq!(f["type"], "DYN");
    assert_eq!(f["arch"], "x86_64");
    assert!(f["segments"][0]["vaddr"].is_u64());
    assert!(f["segments"][0]["vaddr_end"].is_u64());
    let o = &f["occurrences"][0];
    assert_eq!(o["kind"], "wrpkru");
    assert_eq!(o["bytes"], "0f01ef");
    assert_eq!(o["intended"], false);
    assert_eq!(o["gate"], false);
    assert_eq!(o["symbol"], "hidden");
    assert!(o["offset"].is_u64() && o["vaddr"].is_u64());
    assert_eq!(f["summary"]["unsafe"], 1);
    assert_eq!(f["summary"]["unaligned"], 1);
    let e = &doc["files"][1];
    assert!(e["error"].as_str().unwrap().starts_with("cannot read"));
    assert_eq!(doc["summary"]["errors"], 1);
    assert_eq!(doc["summary"]["files_with_unsafe"], 1);
}

// ---------------------------------------------------------------- bad input

fn write_tmp(name: &str, data: &[u8]) -> PathBuf {
    let p = tmp_dir().join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// A minimal ELF header: class (1 = 32, 2 = 64), little-endian, ET_DYN,
/// the given e_machine, no program or section headers.
fn crafted_header(class: u8, machine: u16) -> Vec<u8> {
    let size = if class == 2 { 64 } else { 52 };
    let mut h = vec![0u8; size];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = class;
    h[5] = 1; // little-endian
    h[6] = 1; // EV_CURRENT
    h[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h
}

#[test]
fn text_file_is_not_elf() {
    let p = write_tmp("notes.txt", b"just some text\n");
    let err = scan_file(&p).unwrap_err();
    assert!(matches!(err, ScanError::NotElf));
    assert_eq!(err.to_string(), "not an ELF file");
    assert_eq!(run(&args(&[&p])), 2);
    let empty = write_tmp("empty", b"");
    assert_eq!(
        scan_file(&empty).unwrap_err().to_string(),
        "not an ELF file"
    );
}

#[test]
fn truncated_libz_is_an_error() {
    let data = std::fs::read(LIBZ).unwrap();
    let p = write_tmp("libz-truncated.so", &data[..1000]);
    let err = scan_file(&p).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ScanError::Truncated(_)), "{msg}");
    assert!(msg.starts_with("truncated: segment "), "{msg}");
    assert!(msg.ends_with("past the end of the file (0x3e8)"), "{msg}");
    assert_eq!(run(&args(&[&p])), 2);
}

#[test]
fn other_architectures_are_rejected() {
    let aarch64 = write_tmp("aarch64.so", &crafted_header(2, 183));
    let err = scan_file(&aarch64).unwrap_err();
    assert_eq!(err.to_string(), "ELF for aarch64, not x86_64");
    assert_eq!(run(&args(&[&aarch64])), 2);

    let i386 = write_tmp("i386.so", &crafted_header(1, 3));
    assert_eq!(
        scan_file(&i386).unwrap_err().to_string(),
        "ELF for i386, not x86_64"
    );
    assert_eq!(run(&args(&[&i386])), 2);

    let x32 = write_tmp("x32.so", &crafted_header(1, 62));
    assert!(matches!(
        scan_file(&x32).unwrap_err(),
        ScanError::Unsupported(_)
    ));
}

#[test]
fn relocatable_object_is_unsupported() {
    let mut h = crafted_header(2, 62);
    h[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
    let err = scan_bytes("x.o", &h).unwrap_err();
    assert!(err.to_string().contains("REL"), "{err}");
}

#[test]
fn minimal_x86_64_header_without_segments_is_clean() {
    let rep = scan_bytes("empty.so", &crafted_header(2, 62)).unwrap();
    assert!(rep.segments.is_empty() && rep.occurrences.is_empty());
}

#[test]
fn missing_file_is_exit_2() {
    let p = PathBuf::from("/nonexistent/definitely-missing.so");
    assert!(matches!(scan_file(&p).unwrap_err(), ScanError::Io(_)));
    assert_eq!(run(&args(&[&p])), 2);
    // Bad input wins over unsafe findings.
    let so = build_so("wrpkru_mixed", WRPKRU_C, &[]);
    assert_eq!(run(&args(&[&so, &p])), 2);
}

#[test]
fn scan_bytes_accepts_unaligned_slices() {
    let data = std::fs::read(LIBZ).unwrap();
    let mut shifted = vec![0u8; data.len() + 1];
    shifted[1..].copy_from_slice(&data);
    let rep = scan_bytes("libz+1", &shifted[1..]).unwrap();
    assert_eq!(rep.summary.unsafe_, 0);
}

// ---------------------------------------------------------------- no panics

/// Deterministic xorshift, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn truncations_of_libz_never_panic() {
    let data = std::fs::read(LIBZ).unwrap();
    let n = data.len();
    let mut cuts: Vec<usize> = (0..50).map(|i| i * n / 50).collect();
    cuts.extend([1, 3, 4, 15, 16, 19, 20, 52, 63, 64, 65, 100, n - 1]);
    for cut in cuts {
        match scan_bytes("libz-cut", &data[..cut]) {
            Ok(rep) => assert_eq!(rep.summary.unsafe_, 0, "cut {cut}"),
            Err(e) => assert!(!e.to_string().is_empty(), "cut {cut}"),
        }
    }
}

#[test]
fn garbage_and_mutations_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Random garbage, with and without an ELF64 x86_64 header in front.
    for i in 0..200 {
        let len = (rng.next() % 4096) as usize;
        let mut buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 {
            let h = crafted_header(2, 62);
            let k = h.len().min(buf.len());
            buf[..k].copy_from_slice(&h[..k]);
        }
        let _ = scan_bytes("garbage", &buf);
    }
    // Mutate the headers (ELF header, program headers) of a real library.
    let data = std::fs::read(LIBZ).unwrap();
    for _ in 0..300 {
        let mut m = data.clone();
        for _ in 0..1 + rng.next() % 8 {
            let at = (rng.next() % 0x300) as usize;
            m[at] = rng.next() as u8;
        }
        let _ = scan_bytes("mutated", &m);
    }
    // Mutate the section headers at the end of the file too.
    for _ in 0..100 {
        let mut m = data.clone();
        let n = m.len();
        for _ in 0..1 + rng.next() % 8 {
            let at = n - 1 - (rng.next() % 0x700) as usize;
            m[at] = rng.next() as u8;
        }
        let _ = scan_bytes("mutated-sh", &m);
    }
}

#[test]
fn garbage_in_code_never_panics() {
    // Random bytes over the text of a small library with symbols: exercises
    // candidate search, confirmation and the sweeps on nonsense code.
    let so = build_so("fuzz_base", GATES_C, &[]);
    let data = std::fs::read(&so).unwrap();
    let base = scan_bytes("base", &data).unwrap();
    let seg = &base.segments[0];
    let (lo, hi) = (seg.offset as usize, (seg.offset + seg.filesz) as usize);
    let mut rng = Rng(12345);
    for round in 0..200 {
        let mut m = data.clone();
        for b in &mut m[lo..hi] {
            if round % 4 == 0 || rng.next() % 8 == 0 {
                *b = rng.next() as u8;
            }
        }
        // Sprinkle target patterns so confirmation and sweeps run a lot.
        for _ in 0..20 {
            let at = lo + (rng.next() as usize) % (hi - lo - 3);
            let pat: &[u8] = match rng.next() % 3 {
                0 => &[0x0F, 0x01, 0xEF],
                1 => &[0x0F, 0xAE, 0x2C],
                _ => &[0x0F, 0xC7, 0x5C],
            };
            m[at..at + 3].copy_from_slice(pat);
        }
        let rep = scan_bytes("garbage-code", &m).unwrap();
        // Every reported occurrence's bytes are where it says they are.
        for o in &rep.occurrences {
            let bytes: String = m[o.offset as usize..][..o.bytes.len() / 2]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(bytes, o.bytes);
        }
    }
}

#[test]
fn bytes_mapped_in_the_page_slack_are_scanned() {
    // The loader maps whole pages: file bytes after p_filesz in the last page
    // of an executable segment are executable too.
    let so = build_so("slack", CLEAN_C, &[]);
    let mut data = std::fs::read(&so).unwrap();
    let seg = scan_bytes("slack", &data).unwrap().segments[0].clone();
    let end = (seg.offset + seg.filesz) as usize;
    let page_end = end.div_ceil(4096) * 4096;
    assert!(
        page_end - end >= 16 && page_end <= data.len(),
        "no slack in this layout"
    );
    let at = end + 8;
    data[at..at + 3].copy_from_slice(&[0x0F, 0x01, 0xEF]);
    let rep = scan_bytes("slack", &data).unwrap();
    let o = only(&rep);
    assert!(o.page_slack && o.is_unsafe());
    assert_eq!(o.offset as usize, at);
}

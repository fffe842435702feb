//! Inspection of foreign code for instructions that can write PKRU
//! (WRPKRU, XRSTOR, XRSTORS) or the FS/GS base (WRFSBASE, WRGSBASE: a
//! thread that sets its FS base to another's is that thread to the gate's
//! FS-base check), with the `cofferdam-scan` library.
//!
//! * [`scan_library`]: `Compartment::load` scans the file before `dlopen`
//!   and refuses any occurrence (intended or hidden) outside
//!   `cofferdam_`-prefixed symbols.
//! * [`check_function`]: at the first call of a foreign function whose
//!   object (found with `dladdr`) has not been scanned yet, the object's file
//!   is scanned once (cached by path); calls into an object with an unsafe
//!   occurrence are refused before any of its code runs. Policy:
//!   - allowed: Cofferdam's verified gates, and intended occurrences inside
//!     symbols named `cofferdam_*` (Cofferdam's own trampolines);
//!   - allowed, patched: libc's `pkey_set` WRPKRU, made `ud2; nop` at start-up
//!     by [`neutralise_pkey_set`];
//!   - allowed, residual: the XRSTORs of ld.so's lazy-binding trampolines
//!     (`_dl_runtime_resolve_xsave*`), reported;
//!   - reported, not refused: *hidden* occurrences (inside other
//!     instructions) in the main executable — rustc's output contains some,
//!     and refusing them would refuse every Rust program;
//!   - refused: everything else.
//!
//! After a successful check the object's executable segments are recorded,
//! so later calls into it cost one range comparison.

use core::ffi::{c_void, CStr};
use core::sync::atomic::{AtomicUsize, Ordering};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cofferdam_scan::{Kind, Occurrence, ScanError, ScanReport};

use crate::error::Error;
use crate::sys;

/// One object the inspection looked at.
#[derive(Clone, Debug)]
pub struct ScannedObject {
    /// Its file.
    pub path: String,
    /// WRPKRU/XRSTOR/XRSTORS occurrences found in the file.
    pub occurrences: usize,
    /// Calls into it are refused; one line per unsafe occurrence.
    pub refused: Vec<String>,
    /// Occurrences allowed but worth knowing: hidden ones in the main
    /// executable, ld.so's XRSTORs, patched ones, benchmark-only gates.
    pub reported: Vec<String>,
}

struct State {
    objects: Vec<(PathBuf, ScannedObject)>,
    pkey_set: String,
    /// Addresses of WRPKRUs patched in memory (libc's `pkey_set`).
    patched: Vec<usize>,
}

static STATE: Mutex<State> = Mutex::new(State {
    objects: Vec::new(),
    pkey_set: String::new(),
    patched: Vec::new(),
});

const MAX_VERIFIED: usize = 64;
static VERIFIED_N: AtomicUsize = AtomicUsize::new(0);
static VERIFIED_START: [AtomicUsize; MAX_VERIFIED] = [const { AtomicUsize::new(0) }; MAX_VERIFIED];
static VERIFIED_END: [AtomicUsize; MAX_VERIFIED] = [const { AtomicUsize::new(0) }; MAX_VERIFIED];

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn scanned() -> Vec<ScannedObject> {
    state().objects.iter().map(|(_, o)| o.clone()).collect()
}

pub(crate) fn pkey_set_status() -> String {
    let s = state();
    if s.pkey_set.is_empty() {
        "not inspected".into()
    } else {
        s.pkey_set.clone()
    }
}

fn scan_error(path: &Path, e: ScanError) -> Error {
    Error::Load {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn describe(o: &Occurrence) -> String {
    format!(
        "offset {:#x}: {} ({}) {}{}",
        o.offset,
        o.mnemonic,
        o.bytes,
        if o.intended {
            "intended"
        } else {
            "hidden inside another instruction"
        },
        match (&o.symbol, o.symbol_offset) {
            (Some(s), Some(off)) => format!(" in {s}+{off:#x}"),
            _ => String::new(),
        }
    )
}

/// Scans a library file that is about to be `dlopen`ed: every occurrence
/// outside `cofferdam_*` trampolines is refused.
pub(crate) fn scan_library(path: &Path) -> Result<ScanReport, Error> {
    let rep =
        cofferdam_scan::scan_file_with(path, cofferdam_scan::ScanOptions { allow_gates: false })
            .map_err(|e| scan_error(path, e))?;
    let findings: Vec<String> = rep.occurrences.iter().map(describe).collect();
    if findings.is_empty() {
        Ok(rep)
    } else {
        Err(Error::UnsafeCode {
            path: path.display().to_string(),
            findings,
        })
    }
}

/// Whether the function at `f` lies in an object already found clean.
#[inline]
fn verified(f: usize) -> bool {
    let n = VERIFIED_N.load(Ordering::Acquire);
    (0..n).any(|i| {
        f >= VERIFIED_START[i].load(Ordering::Relaxed)
            && f < VERIFIED_END[i].load(Ordering::Relaxed)
    })
}

fn add_verified(start: usize, end: usize) {
    let n = VERIFIED_N.load(Ordering::Acquire);
    if n < MAX_VERIFIED {
        VERIFIED_START[n].store(start, Ordering::Relaxed);
        VERIFIED_END[n].store(end, Ordering::Relaxed);
        VERIFIED_N.store(n + 1, Ordering::Release);
    }
}

/// Refuses a call into `f` if its object holds an unsafe occurrence.
#[inline]
pub(crate) fn check_function(f: *const ()) -> Result<(), Error> {
    if verified(f as usize) {
        return Ok(());
    }
    check_slow(f as usize)
}

fn is_loader(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("ld-linux"))
}

#[cold]
fn check_slow(f: usize) -> Result<(), Error> {
    let Some((path, base)) = sys::object_of(f) else {
        // Not in any loaded object: anonymous executable memory, which the
        // syscall guard does not let foreign code create. Refuse.
        return Err(Error::UnsafeCode {
            path: format!("{f:#x}"),
            findings: vec!["the function lies in no loaded object (not inspectable)".into()],
        });
    };
    let mut st = state();
    if let Some((_, o)) = st.objects.iter().find(|(p, _)| *p == path) {
        return if o.refused.is_empty() {
            Ok(()) // verified range table full; the cache still answers
        } else {
            Err(Error::UnsafeCode {
                path: o.path.clone(),
                findings: o.refused.clone(),
            })
        };
    }
    let main = std::fs::read_link("/proc/self/exe").ok();
    let is_main = main.as_deref() == Some(path.as_path());
    let rep = cofferdam_scan::scan_file(&path).map_err(|e| scan_error(&path, e))?;
    // Where the file's virtual addresses are in memory.
    let bias = if rep.elf_type == "DYN" { base } else { 0 };
    let mut obj = ScannedObject {
        path: path.display().to_string(),
        occurrences: rep.occurrences.len(),
        refused: Vec::new(),
        reported: Vec::new(),
    };
    for o in &rep.occurrences {
        let at = bias.wrapping_add(o.vaddr as usize);
        if o.benchmark_only && crate::gate::is_bench_floor(at) {
            obj.reported.push(format!(
                "{} — benchmark-only gate (feature bench-floor): an unchecked WRPKRU pair",
                describe(o)
            ));
        } else if o.intended && crate::gate::is_gate_code(at) {
            // By address only, never by name (any object can name a function
            // `cofferdam_*`): the trampolines' code, `cofferdam_gate_call` up
            // to `cofferdam_gate_code_end`, in this very process.
            continue;
        } else if st.patched.contains(&at) {
            obj.reported
                .push(format!("{} — patched to ud2 at start-up", describe(o)));
        } else if is_loader(&path) && o.kind == Kind::Xrstor {
            obj.reported.push(format!(
                "{} — ld.so lazy-binding trampoline: residual (docs/guard.md)",
                describe(o)
            ));
        } else if is_main && !o.intended {
            obj.reported.push(format!(
                "{} — hidden, in the main executable: reported, not refused (docs/guard.md)",
                describe(o)
            ));
        } else {
            obj.refused.push(describe(o));
        }
    }
    let refused = obj.refused.clone();
    if refused.is_empty() {
        for s in &rep.segments {
            add_verified(
                bias.wrapping_add(s.scanned_vaddr as usize),
                bias.wrapping_add(s.scanned_vaddr_end as usize),
            );
        }
    }
    let shown = obj.path.clone();
    st.objects.push((path, obj));
    if refused.is_empty() {
        Ok(())
    } else {
        Err(Error::UnsafeCode {
            path: shown,
            findings: refused,
        })
    }
}

/// Makes libc's `pkey_set` harmless: its WRPKRU (`0F 01 EF`) becomes
/// `ud2; nop` (`0F 0B 90`). Found by scanning the libc file that holds
/// `pkey_set` and patching every intended WRPKRU inside that symbol; the
/// bytes are re-read afterwards to verify. Runs before the seccomp filter
/// exists (it needs `mprotect` with `PROT_EXEC` on libc's text).
pub(crate) fn neutralise_pkey_set() {
    let status = patch_pkey_set();
    let mut st = state();
    match status {
        Ok((addrs, note)) => {
            st.pkey_set = note;
            st.patched.extend(addrs);
        }
        Err(e) => st.pkey_set = e,
    }
}

fn patch_pkey_set() -> Result<(Vec<usize>, String), String> {
    let Some(sym) = sys::dlsym(libc::RTLD_DEFAULT, c"pkey_set") else {
        return Ok((Vec::new(), "absent: this libc has no pkey_set".into()));
    };
    let (path, base) = sys::object_of(sym as usize).ok_or("pkey_set lies in no loaded object")?;
    let rep = cofferdam_scan::scan_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bias = if rep.elf_type == "DYN" { base } else { 0 };
    let targets: Vec<usize> = rep
        .occurrences
        .iter()
        .filter(|o| o.kind == Kind::Wrpkru && o.intended)
        .filter(|o| o.symbol.as_deref() == Some("pkey_set"))
        .map(|o| bias.wrapping_add(o.vaddr as usize))
        .collect();
    if targets.is_empty() {
        return Ok((
            Vec::new(),
            format!("no WRPKRU found in pkey_set of {}", path.display()),
        ));
    }
    let page = sys::page_size();
    for &t in &targets {
        let start = t & !(page - 1);
        let len = if (t + 2) & !(page - 1) != start {
            2 * page
        } else {
            page
        };
        // SAFETY: the bytes at `t` are the WRPKRU the scan found in libc's
        // pkey_set (a private file mapping: writing makes a private copy).
        // The page stays executable throughout (RWX for the instant of the
        // write) so other threads running code on it are not disturbed; the
        // three bytes are replaced by an instruction sequence of the same
        // length that traps (ud2) where WRPKRU would have run.
        unsafe {
            sys::mprotect(
                start as *mut c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            )
            .map_err(|e| format!("mprotect libc text writable: {e}"))?;
            let p = t as *mut u8;
            p.write_volatile(0x0f);
            p.add(1).write_volatile(0x0b);
            p.add(2).write_volatile(0x90);
            sys::mprotect(start as *mut c_void, len, libc::PROT_READ | libc::PROT_EXEC)
                .map_err(|e| format!("mprotect libc text back: {e}"))?;
        }
    }
    // Verify: re-read each site from memory.
    for &t in &targets {
        // SAFETY: the page is mapped readable (just restored to r-x).
        let now = unsafe { core::slice::from_raw_parts(t as *const u8, 3) };
        if now != [0x0f, 0x0b, 0x90] {
            return Err(format!("patching pkey_set at {t:#x} did not stick"));
        }
    }
    Ok((
        targets.clone(),
        format!(
            "patched: {} WRPKRU in pkey_set of {} replaced by ud2 (verified)",
            targets.len(),
            path.display()
        ),
    ))
}

/// A library loaded by [`crate::Compartment::load`]; see there.
#[derive(Debug)]
pub struct Library {
    compartment: crate::Compartment,
    handle: *mut c_void,
    path: PathBuf,
    report: ScanReport,
}

// SAFETY: a dlopen handle may be used from any thread (dlsym is
// thread-safe); the report is plain data.
unsafe impl Send for Library {}
// SAFETY: as above; no interior mutability.
unsafe impl Sync for Library {}

impl Library {
    pub(crate) fn open(path: &Path, compartment: crate::Compartment) -> Result<Library, Error> {
        if !path.exists() {
            return Err(Error::Load {
                path: path.display().to_string(),
                reason: "no such file".into(),
            });
        }
        let report = scan_library(path)?;
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| {
            Error::Load {
                path: path.display().to_string(),
                reason: "the path contains a NUL byte".into(),
            }
        })?;
        let handle = sys::dlopen(&c).map_err(|reason| Error::Load {
            path: path.display().to_string(),
            reason,
        })?;
        let lib = Library {
            compartment,
            handle,
            path: path.to_path_buf(),
            report,
        };
        // The file scanned is the file loaded: record its segments as
        // verified, and remember it for info().
        if let Some(any) = lib.first_symbol_addr() {
            let _ = check_function(any as *const ());
        }
        Ok(lib)
    }

    fn first_symbol_addr(&self) -> Option<usize> {
        // SAFETY: a zeroed link_map pointer out-parameter is valid.
        let mut lm: *mut c_void = core::ptr::null_mut();
        // SAFETY: RTLD_DI_LINKMAP (2) writes a `struct link_map *`.
        if unsafe { libc::dlinfo(self.handle, 2, (&mut lm as *mut *mut c_void).cast()) } != 0
            || lm.is_null()
        {
            return None;
        }
        // SAFETY: link_map starts with l_addr (the load bias).
        let bias = unsafe { *(lm as *const usize) };
        self.report
            .segments
            .first()
            .map(|s| bias.wrapping_add(s.vaddr as usize))
    }

    /// The compartment its functions are called through.
    pub fn compartment(&self) -> &crate::Compartment {
        &self.compartment
    }

    /// Calls `symbol` of this library through its compartment
    /// ([`crate::Compartment::call`] after [`Library::symbol`]).
    ///
    /// # Safety
    /// As for [`crate::Compartment::call`]: the symbol must be a function
    /// whose C signature matches `A` and `R`.
    pub unsafe fn call<A: crate::GateArgs, R: crate::GateReturn>(
        &self,
        symbol: &'static str,
        args: A,
    ) -> Result<R, Error> {
        let f = self.symbol(symbol)?;
        // SAFETY: forwarded contract.
        unsafe { self.compartment.call(symbol, f, args) }
    }

    /// The file that was scanned and loaded.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the scan found (no unsafe occurrence, or loading was refused).
    pub fn scan(&self) -> &ScanReport {
        &self.report
    }

    /// The address of symbol `name` in this library, for
    /// [`crate::Compartment::call`].
    pub fn symbol(&self, name: &str) -> Result<*const (), Error> {
        let c = std::ffi::CString::new(name).map_err(|_| Error::Load {
            path: name.into(),
            reason: "the name contains a NUL byte".into(),
        })?;
        sys::dlsym(
            self.handle,
            CStr::from_bytes_with_nul(c.as_bytes_with_nul()).unwrap_or(c"?"),
        )
        .map(|p| p as *const ())
        .ok_or_else(|| Error::Load {
            path: format!("{}: {name}", self.path.display()),
            reason: sys::dlerror(),
        })
    }
}

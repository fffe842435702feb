//! `Compartment::load`: the library is scanned before `dlopen`.

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

mod common;

use cofferdam::{Compartment, Error};

#[test]
fn a_library_with_wrpkru_is_refused_with_each_occurrence() {
    match Compartment::load("evil", cofferdam_attacks::ffi::WRPKRU_SO) {
        Err(Error::UnsafeCode { path, findings }) => {
            assert!(path.ends_with("libcd_wrpkru.so"));
            assert_eq!(findings.len(), 1, "{findings:?}");
            assert!(
                findings[0].contains("wrpkru")
                    && findings[0].contains("intended")
                    && findings[0].contains("cd_lib_escalate"),
                "{findings:?}"
            );
        }
        other => panic!("expected UnsafeCode, got {other:?}"),
    }
}

#[test]
fn a_clean_library_loads_and_its_functions_are_called_through_the_gate() {
    let z = Compartment::load("zlib", "libz.so.1").expect("libz loads");
    assert!(!z.scan().has_unsafe());
    // SAFETY: zlibVersion() -> const char*.
    let v: cofferdam::ForeignPtr<u8> = unsafe { z.call("zlibVersion", ()) }.unwrap();
    let s = z.compartment().read_foreign_cstr(v, 32).unwrap();
    assert!(s.starts_with(b"1."), "{s:?}");
    assert!(matches!(
        z.symbol("no_such_symbol"),
        Err(Error::Load { .. })
    ));
}

#[test]
fn missing_and_non_elf_files_are_clear_errors() {
    let e = Compartment::load("x", "/nonexistent/libx.so").unwrap_err();
    assert!(
        matches!(e, Error::Load { .. }) && e.to_string().contains("no such file"),
        "{e}"
    );
    let dir = std::env::temp_dir().join(format!("cd-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("notelf.so");
    std::fs::write(&f, b"hello, not an ELF").unwrap();
    let e = Compartment::load("x", &f).unwrap_err();
    assert!(e.to_string().contains("not an ELF"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn first_call_into_a_library_loaded_behind_cofferdams_back_is_inspected() {
    if !common::mpk_or_skip("first_call_into_a_library_loaded_behind_cofferdams_back_is_inspected")
    {
        return;
    }
    let path = std::ffi::CString::new(cofferdam_attacks::ffi::WRPKRU_SO).unwrap();
    // SAFETY: dlopen/dlsym of the test library.
    let f = unsafe {
        let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        libc::dlsym(h, c"cd_lib_add".as_ptr())
    };
    assert!(!f.is_null());
    let c = Compartment::new("behind").unwrap();
    // SAFETY: cd_lib_add(int, int) -> int.
    let r: Result<i32, Error> = unsafe { c.call("cd_lib_add", f as *const (), (1i32, 2i32)) };
    assert!(matches!(r, Err(Error::UnsafeCode { .. })), "{r:?}");
    // Calls into clean objects still work.
    // SAFETY: abs(int) -> int.
    let a: i32 = unsafe { c.call("abs", libc::abs as *const (), (-3i32,)) }.unwrap();
    assert_eq!(a, 3);
}

/// The per-call-site inspection flag `#[cofferdam::sandbox]` wrappers use
/// (`Compartment::call_regs_once`): a refused object stays refused at
/// every call (the flag is set only by a pass), a clean one runs.
#[test]
fn a_call_site_remembers_only_a_passed_inspection() {
    if !common::mpk_or_skip("a_call_site_remembers_only_a_passed_inspection") {
        return;
    }
    let path = std::ffi::CString::new(cofferdam_attacks::ffi::WRPKRU_SO).unwrap();
    // SAFETY: dlopen/dlsym of the test library.
    let f = unsafe {
        let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        libc::dlsym(h, c"cd_lib_add".as_ptr())
    };
    assert!(!f.is_null());
    let c = Compartment::new("once").unwrap();
    static BAD_SITE: cofferdam::InspectedOnce = cofferdam::InspectedOnce::new();
    let regs = cofferdam::CallRegs {
        ints: [1, 2, 0, 0, 0, 0],
        ..cofferdam::CallRegs::default()
    };
    for _ in 0..3 {
        // SAFETY: cd_lib_add(int, int) -> int.
        let r = unsafe { c.call_regs_once("cd_lib_add", f as *const (), &regs, &BAD_SITE) };
        assert!(matches!(r, Err(Error::UnsafeCode { .. })), "{r:?}");
    }
    static GOOD_SITE: cofferdam::InspectedOnce = cofferdam::InspectedOnce::new();
    let regs = cofferdam::CallRegs {
        ints: [(-3i64) as u64, 0, 0, 0, 0, 0],
        ..cofferdam::CallRegs::default()
    };
    for _ in 0..3 {
        // SAFETY: abs(int) -> int.
        let r = unsafe { c.call_regs_once("abs", libc::abs as *const (), &regs, &GOOD_SITE) };
        assert_eq!(r.unwrap().rax as i32, 3);
    }
}

//! zlib's file API (`gzopen`/`gzwrite`/`gzread`/`gzclose`) through the gate,
//! on a file on disk, under the syscall guard's default list: the library
//! opens, writes, reads and closes the file itself.

use core::ffi::{c_char, c_int, c_uint, c_void};

use cofferdam::{ForeignBuf, ForeignPtr};
use cofferdam_example_zlib::input;

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

#[cofferdam::sandbox(compartment = "zlib-files", handle = gz_compartment)]
extern "C" {
    fn gzopen(path: *const c_char, mode: *const c_char) -> *mut c_void;
    fn gzwrite(file: *mut c_void, buf: *const c_void, len: c_uint) -> c_int;
    fn gzread(file: *mut c_void, buf: *mut c_void, len: c_uint) -> c_int;
    fn gzclose(file: *mut c_void) -> c_int;
}

#[test]
fn a_gzip_file_on_disk_written_and_read_by_zlib_behind_the_gate() {
    let data = input::text(1 << 20, 7);
    let path = std::env::temp_dir().join(format!("cofferdam-gz-{}.gz", std::process::id()));
    let name = ForeignBuf::from_str_nul(path.to_str().unwrap()).unwrap();
    let wmode = ForeignBuf::from_str_nul("wb6").unwrap();
    let rmode = ForeignBuf::from_str_nul("rb").unwrap();
    let buf = ForeignBuf::from_slice(&data).unwrap();
    // SAFETY: gzopen(const char*, const char*) with NUL-terminated foreign
    // strings; gzwrite(gzFile, const void*, unsigned) with the foreign
    // buffer and its length; gzclose(gzFile) of the file gzopen returned.
    unsafe {
        let f: ForeignPtr<c_void> = gzopen(&name, &wmode).unwrap();
        assert!(!f.is_null(), "gzopen for writing failed");
        let n = gzwrite(f, &buf, data.len() as c_uint).unwrap();
        assert_eq!(n as usize, data.len());
        assert_eq!(gzclose(f).unwrap(), 0);
    }
    // The file is a real gzip file: Rust reads it back with bare zlib's
    // inflate (gzip header: window bits 31).
    let on_disk = std::fs::read(&path).unwrap();
    assert_eq!(&on_disk[..2], &[0x1f, 0x8b]);
    assert!(on_disk.len() < data.len() / 2);
    let back = ForeignBuf::zeroed(data.len() + 16).unwrap();
    // SAFETY: as above; gzread into a foreign buffer of the given length.
    unsafe {
        let f: ForeignPtr<c_void> = gzopen(&name, &rmode).unwrap();
        assert!(!f.is_null(), "gzopen for reading failed");
        let n = gzread(f, &back, back.len() as c_uint).unwrap();
        assert_eq!(n as usize, data.len());
        assert_eq!(gzclose(f).unwrap(), 0);
    }
    assert!(back.to_vec()[..data.len()] == data[..]);
    std::fs::remove_file(&path).unwrap();
    assert!(!gz_compartment().unwrap().is_poisoned());
    let info = cofferdam::info();
    if cofferdam::backend() == cofferdam::Backend::Mpk {
        assert!(info.guard.syscall_guard, "{info}");
    }
    println!(
        "guard on: {}; trusted calls re-issued {}, foreign calls checked {}, refused {}",
        info.guard.syscall_guard,
        info.guard.reissued_syscalls,
        info.guard.checked_syscalls,
        info.guard.refused_syscalls
    );
    assert_eq!(info.guard.refused_syscalls, 0);
}

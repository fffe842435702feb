//! The operating system and the CPU: protection keys, PKRU's location in the
//! XSAVE area, memory mappings, the untouched `sigaction`.
//!
//! This is the one dispatch point for platform code. Only Linux on x86_64 is
//! implemented; other targets fail to compile here, in one place.

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod linux_x86_64;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) use linux_x86_64::*;

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
compile_error!("cofferdam supports Linux on x86_64 only (protection keys, System V gate)");

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod linux_guard;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) use linux_guard::*;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod linux_process;
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub(crate) use linux_process::*;

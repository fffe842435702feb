//! The gate's constants, on a page of their own that is made read-only once
//! written.
//!
//! The gate compares the PKRU value it wrote against `deny_mask`. If that mask
//! lived in ordinary writable memory, foreign code could set it to zero and
//! the check would pass with full rights. The page is written exactly once,
//! when the runtime starts, and then `mprotect`ed read-only; foreign code
//! would need a syscall to undo that, which is the syscall guard's business.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// Gate constants. `repr(C)` and page-aligned (so page-sized): the page
/// holds nothing else.
#[repr(C, align(4096))]
pub(crate) struct GateConfig {
    /// PKRU bits that deny key P (access- and write-disable), or 0 when the
    /// gate does not switch PKRU (no MPK). Read by the asm at offset 0.
    pub deny_mask: u32,
    /// The protection key P, or 0 when there is none.
    pub pkey: u32,
    /// Offset of PKRU in a signal frame's XSAVE area.
    pub pkru_xsave_offset: u32,
    /// 12: 1 when user space may run RDFSBASE (the gate then checks that a
    /// thread state belongs to the thread using it), else 0.
    pub fsgsbase: u32,
    /// 16, 24: the table of per-thread states (`thread.rs`), tagged with P.
    pub state_base: usize,
    pub state_len: usize,
    /// 32, 40: the callback slots (`callback.rs`), tagged with P.
    pub slot_base: usize,
    pub nslots: usize,
    /// 48: bytes of foreign stack per thread (guard page not included).
    pub foreign_stack: usize,
    /// 56: 1 when Rust thread stacks are tagged with P at a thread's first
    /// gate call.
    pub tag_stacks: u32,
    /// 60: 1 when the alternate signal stacks carry P, so that a signal frame
    /// on one was written by the kernel (Linux 6.12 and later write frames
    /// with every key enabled; older kernels cannot write onto a tagged
    /// stack while foreign code runs).
    pub frames_tagged: u32,
    /// The arena of per-thread alternate signal stacks: entry `i` of the
    /// state table owns the slot at `alt_base + (i << ALT_SHIFT)`. The
    /// signal entry authenticates a frame by where it lies (see `asm.rs`).
    pub alt_base: usize,
    pub alt_len: usize,
    /// The main thread's id, for signals redirected from threads that have
    /// no state (see `fault::untrusted`).
    pub main_tid: i32,
    /// 1 when this process inherited a parent Cofferdam process's seccomp
    /// filter, which refuses `rt_sigreturn` without the parent's token: the
    /// signal entry then returns through a user-space sigreturn.
    pub inherited_guard: u32,
    /// How the gate gives Rust back its MXCSR and x87 control word when a
    /// call ends (and C its own when a callback ends): 1 reloads the words
    /// saved on entry unconditionally (LDMXCSR + FLDCW: cheap on AMD, where
    /// STMXCSR is the slow one); 0 stores the current words and reloads only
    /// those foreign code changed (cheap on Intel, where loads are the slow
    /// ones). Chosen per CPU vendor at start-up (`ControlWords`).
    pub cw_reload: u32,
    /// The identity word (`thread::ident`), on a P-tagged page of its own
    /// next to the callback slots: nonzero once a thread foreign code made
    /// may share another thread's FS base. The gate's return path and the
    /// callback entry then check the kernel's thread id as well.
    pub ident: usize,
}

const _: () = assert!(core::mem::size_of::<GateConfig>() == 4096);

impl GateConfig {
    /// The end of the control pages: the state table, the callback slots
    /// and the identity word's page, in one P-tagged mapping.
    pub(crate) fn control_end(&self) -> usize {
        self.ident + 4096
    }
}

/// The one instance, referenced by symbol from `asm.rs`.
#[repr(transparent)]
pub(crate) struct ConfigPage(pub(crate) UnsafeCell<GateConfig>);

// SAFETY: the page is written once, by `configure`, before any gate call or
// wrapped signal handler can read it (callers order this through the runtime's
// initialisation state), and is read-only afterwards.
unsafe impl Sync for ConfigPage {}

pub(crate) static CONFIG: ConfigPage = ConfigPage(UnsafeCell::new(GateConfig {
    deny_mask: 0,
    pkey: 0,
    pkru_xsave_offset: 0,
    fsgsbase: 0,
    state_base: 0,
    state_len: 0,
    slot_base: 0,
    nslots: 0,
    foreign_stack: 0,
    tag_stacks: 0,
    frames_tagged: 0,
    alt_base: 0,
    alt_len: 0,
    main_tid: 0,
    inherited_guard: 0,
    cw_reload: 0,
    ident: 0,
}));

/// What `configure` writes besides the key.
pub(crate) struct Settings {
    pub pkey: Option<u32>,
    pub pkru_xsave_offset: u32,
    pub fsgsbase: bool,
    pub control: (usize, usize),
    pub slots: (usize, usize),
    pub foreign_stack: usize,
    pub tag_stacks: bool,
    pub frames_tagged: bool,
    pub alt: (usize, usize),
    pub control_words: ControlWords,
    pub ident: usize,
}

/// How the gate restores the control words (see `GateConfig::cw_reload`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ControlWords {
    /// Reload the saved words unconditionally.
    Reload,
    /// Store the current words, compare, reload only what differs.
    Compare,
}

impl ControlWords {
    /// The name `COFFERDAM_CONTROL_WORDS` takes and `Info` reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ControlWords::Reload => "reload",
            ControlWords::Compare => "compare",
        }
    }

    /// The choice for this process: `COFFERDAM_CONTROL_WORDS=reload` or
    /// `=compare` if set (both are equally safe: they differ only in cost),
    /// else by CPU vendor: on AMD (Zen 3: STMXCSR 7.3 ns, LDMXCSR 1.0 ns,
    /// FLDCW 1.1 ns) reloading is cheaper than storing again and comparing;
    /// elsewhere (Intel: LDMXCSR 2.9 ns, FLDCW 3.9 ns, stores about 1 ns)
    /// comparing is. An unknown value is reported on stderr and ignored.
    pub(crate) fn choose() -> ControlWords {
        match crate::sys::getenv_bytes(c"COFFERDAM_CONTROL_WORDS") {
            Some(b"reload") => return ControlWords::Reload,
            Some(b"compare") => return ControlWords::Compare,
            Some(_) => crate::sys::write_stderr(
                b"cofferdam: COFFERDAM_CONTROL_WORDS must be `reload` or `compare`; \
                  choosing by CPU vendor\n",
            ),
            None => {}
        }
        if crate::sys::cpu_vendor_amd() {
            ControlWords::Reload
        } else {
            ControlWords::Compare
        }
    }
}

/// The choice in force (after `configure`).
pub(crate) fn control_words() -> ControlWords {
    if get().cw_reload != 0 {
        ControlWords::Reload
    } else {
        ControlWords::Compare
    }
}

static SEALED: AtomicBool = AtomicBool::new(false);

/// Writes the gate constants and seals the page read-only. Called once.
pub(crate) fn configure(set: &Settings) {
    assert!(
        !SEALED.swap(true, Ordering::SeqCst),
        "gate configured twice"
    );
    let page = CONFIG.0.get();
    // SAFETY: not sealed yet and called once (asserted above), so nothing else
    // writes; readers only start after the runtime's init state says ready.
    unsafe {
        (*page).deny_mask = set.pkey.map_or(0, |k| 0b11 << (2 * k));
        (*page).pkey = set.pkey.unwrap_or(0);
        (*page).pkru_xsave_offset = set.pkru_xsave_offset;
        (*page).fsgsbase = set.fsgsbase as u32;
        (*page).state_base = set.control.0;
        (*page).state_len = set.control.1;
        (*page).slot_base = set.slots.0;
        (*page).nslots = set.slots.1;
        (*page).foreign_stack = set.foreign_stack;
        (*page).tag_stacks = set.tag_stacks as u32;
        (*page).frames_tagged = set.frames_tagged as u32;
        (*page).alt_base = set.alt.0;
        (*page).alt_len = set.alt.1;
        (*page).main_tid = crate::sys::getpid();
        (*page).inherited_guard = crate::sys::inherited_guard() as u32;
        (*page).cw_reload = (set.control_words == ControlWords::Reload) as u32;
        (*page).ident = set.ident;
    }
    // SAFETY: `CONFIG` is page-aligned and page-sized, so the range is exactly
    // its own page; making it read-only affects nothing else.
    let r = unsafe { crate::sys::mprotect(page.cast(), 4096, libc::PROT_READ) };
    if r.is_err() {
        crate::sys::write_stderr(b"cofferdam: cannot seal the gate configuration page read-only\n");
        std::process::abort();
    }
}

/// The current constants.
pub(crate) fn get() -> &'static GateConfig {
    // SAFETY: after `configure` the page is immutable; before it, it holds
    // the zero constants and nothing writes it concurrently with readers
    // (see `ConfigPage`'s Sync argument).
    unsafe { &*CONFIG.0.get() }
}

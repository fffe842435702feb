//! The `process` backend: each compartment's foreign code runs in a helper
//! process of its own.
//!
//! * The helper is a fresh process running this same executable
//!   (`/proc/self/exe`), not a fork: it holds none of the parent's heap,
//!   stacks, statics or environment. A constructor in this crate
//!   (`child.rs`, in `.init_array`) recognises it before `main` runs and
//!   turns it into the helper's loop; it never returns to `main`.
//! * Functions are named by (object, offset from the object's load bias)
//!   and resolved in the helper: the main executable, or a library it opens
//!   with `dlopen`.
//! * Foreign memory (`ForeignBox`, `ForeignVec`, `ForeignBuf`) lives in a
//!   shared arena (`crate::foreign::arena`) mapped at the same address on both sides: no
//!   copies. Memory the library allocates itself lives in the helper; Rust
//!   reads it through `Compartment::read_foreign`, never by dereferencing.
//! * Calls travel through one shared page per calling thread (`chan.rs`):
//!   arguments and results in place, a short bounded spin, then a futex.
//!   One helper thread serves each calling thread, so the library's
//!   thread-local state and `errno` behave as they would in-process.
//! * Callbacks run here, on the calling thread: the helper has a stub of
//!   its own per callback slot (`child.rs`) and puts it in place of this
//!   process's stub among the call's arguments; C calling it sends the
//!   registers back over the same slot, and `crate::callback::run_for_process`
//!   applies the reverse gate's checks. The conversation on a slot nests
//!   (`chan.rs`): a callback may call the same compartment again.
//! * A fault, `abort`, `exit` or kill of the helper is `Err(Fault)` naming
//!   the compartment and function; a call that runs past the compartment's
//!   timeout kills the helper (`Err(Timeout)`). Either poisons the
//!   compartment; renewing it starts a fresh helper (library statics
//!   included).

pub(crate) mod chan;
mod child;

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::compartment::{CallRegs, Returned};
use crate::error::{Access, Error, Fault, FaultKind};
use crate::foreign::arena;
use crate::sys::{self, Ended};
use chan::{Slot, CONTROL_LEN, MAGIC, NSLOTS};

/// Spins before sleeping on a futex (each a `pause`, about 20-40 ns on
/// current x86): a few microseconds. Longer spins lose on a loaded machine,
/// where the spinning side holds the CPU the other side needs (BENCHMARKS.md).
pub(crate) const SPIN: u32 = 200;
/// How often a waiting caller checks that the helper still lives.
const LIVENESS_NS: u64 = 2_000_000;
/// How long a new helper may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Per-compartment settings of the process backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// A call that runs longer kills the helper.
    pub timeout: Option<Duration>,
    /// The helper's private writable memory (`RLIMIT_DATA`: its `malloc`
    /// heap, thread stacks and private mappings; the shared arena is not
    /// counted).
    pub memory: Option<u64>,
    /// A backend name the builder did not know (refused at build).
    pub unknown_backend: bool,
    /// Spin iterations before a futex sleep, on both sides (default
    /// [`SPIN`]); 0 measures the futex alone.
    pub spin: Option<u32>,
}

/// A process compartment: its settings and its current helper.
pub(crate) struct Engine {
    limits: Limits,
    helper: Mutex<Option<Arc<Helper>>>,
}

impl core::fmt::Debug for Engine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let pid = self.pid();
        f.debug_struct("process::Engine")
            .field("limits", &self.limits)
            .field("pid", &pid)
            .finish()
    }
}

impl Engine {
    /// A compartment whose helper starts now.
    pub(crate) fn new(limits: Limits) -> Result<Engine, Error> {
        let h = Helper::spawn(&limits)?;
        Ok(Engine {
            limits,
            helper: Mutex::new(Some(h)),
        })
    }

    /// The helper's process id.
    pub(crate) fn pid(&self) -> Option<i32> {
        let g = self.helper.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref().map(|h| h.pid)
    }

    /// The renew hook: ends the current helper and starts a fresh one (the
    /// library's statics and heap start over).
    pub(crate) fn renew(&self) -> Result<(), Error> {
        let old = self.helper.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = old {
            h.kill();
        }
        let h = Helper::spawn(&self.limits)?;
        *self.helper.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
        Ok(())
    }

    fn current(&self) -> Result<Arc<Helper>, Error> {
        let mut g = self.helper.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = g.as_ref() {
            return Ok(h.clone());
        }
        let h = Helper::spawn(&self.limits)?;
        *g = Some(h.clone());
        Ok(h)
    }

    /// One call in the helper. `Err(Fault)` and `Err(Timeout)` mean the
    /// helper is gone (the caller poisons the compartment).
    pub(crate) fn call(
        &self,
        compartment: &str,
        function: &'static str,
        f: *const (),
        regs: &CallRegs<'_>,
    ) -> Result<Returned, Error> {
        assert!(
            regs.callbacks.len() <= chan::MAX_CALLBACKS,
            "at most six callbacks per call"
        );
        let (obj, off) = resolve(f as usize).map_err(|reason| Error::Load {
            path: format!("{f:p} ({function})"),
            reason,
        })?;
        let helper = self.current()?;
        let mut lease = Lease::take(&helper).map_err(|reason| Error::Unavailable { reason })?;
        let announce = !helper.knows(obj);
        let sp = chan::slot(helper.control, lease.slot);
        {
            // SAFETY: the slot is this thread's alone (the lease: a nested
            // call from a callback takes it only while the outer call waits
            // for that callback, holding no reference into the slot) and
            // lies in the helper's live control mapping (`helper` is held).
            // The reference ends before the helper is told to read it.
            let s = unsafe { &mut *sp };
            s.status.store(chan::STATUS_OK, Ordering::Relaxed);
            s.req_kind = chan::MSG_CALL;
            s.obj = obj;
            s.off = off;
            s.ints = regs.ints;
            s.sse = regs.sse;
            s.nsse = regs.nsse as u64;
            s.nstack = regs.stack.len() as u64;
            s.stack[..regs.stack.len()].copy_from_slice(regs.stack);
            s.ncb = regs.callbacks.len() as u32;
            for (k, &cb) in regs.callbacks.iter().enumerate() {
                s.cb_slots[k] = cb;
                s.cb_parent[k] = crate::callback::stub_addr(cb) as u64;
                s.cb_error[k] = crate::callback::error_words(cb);
            }
            s.path_len = 0;
            if announce {
                let path = object_path(obj);
                let p = path.as_bytes();
                if p.len() > chan::PATH_MAX {
                    return Err(Error::Load {
                        path: path.clone(),
                        reason: "the object's path is too long for the process backend".into(),
                    });
                }
                s.path[..p.len()].copy_from_slice(p);
                s.path_len = p.len() as u32;
            }
        }
        let spin = self.limits.spin.unwrap_or(SPIN);
        let mut cb_error = None;
        let outcome = helper.round_trip(
            sp,
            &mut lease,
            regs.callbacks,
            self.limits.timeout,
            spin,
            &mut cb_error,
        );
        if !regs.callbacks.is_empty() {
            // SAFETY: the control mapping is live while `helper` is.
            let hd = unsafe { chan::header(helper.control) };
            for &cb in regs.callbacks {
                let n =
                    hd.cb_refused[cb as usize % crate::callback::NSLOTS].swap(0, Ordering::Relaxed);
                crate::callback::add_refusals(cb, n as u64);
            }
        }
        // SAFETY: as above; the nested calls, if any, are over: this thread
        // is the slot's only user again.
        let s = unsafe { &*sp };
        match outcome {
            Wait::Done => {}
            Wait::TimedOut(after) => {
                helper.kill();
                self.forget(&helper);
                return Err(Error::Timeout {
                    compartment: compartment.to_owned(),
                    function,
                    after,
                });
            }
            Wait::Died(ended) => {
                self.forget(&helper);
                return Err(Error::Fault(died(compartment, function, s, ended)));
            }
        }
        match s.status.load(Ordering::Acquire) {
            chan::STATUS_OK => {
                if announce {
                    helper.learned(obj);
                }
                if let Some(detail) = cb_error {
                    return Err(Error::Callback { function, detail });
                }
                // The helper wrote these: read them as they are in memory.
                // SAFETY: a valid, aligned field of the live slot.
                let ret = unsafe { core::ptr::read_volatile(&s.ret) };
                Ok(Returned {
                    rax: ret[0],
                    rdx: ret[1],
                    xmm0: ret[2],
                    xmm1: ret[3],
                })
            }
            chan::STATUS_UNRESOLVED => Err(Error::Load {
                path: format!("{} ({function})", object_path(obj)),
                reason: format!(
                    "the helper process could not resolve it: {}",
                    // SAFETY: a valid, aligned field of the live slot.
                    text(&unsafe { core::ptr::read_volatile(&s.message) })
                ),
            }),
            _ => {
                // A fault the helper's handler recorded (it dies now).
                helper.kill();
                self.forget(&helper);
                Err(Error::Fault(died(compartment, function, s, None)))
            }
        }
    }

    /// Drops `h` as the current helper (the next call or renew starts
    /// another only through `renew`: the compartment is poisoned).
    fn forget(&self, h: &Arc<Helper>) {
        let mut g = self.helper.lock().unwrap_or_else(|e| e.into_inner());
        if g.as_ref().is_some_and(|c| Arc::ptr_eq(c, h)) {
            *g = None;
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(h) = self
            .helper
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            h.kill();
        }
    }
}

/// The `Fault` of a call whose helper ended: what its handler recorded in
/// the slot if anything, else how the process ended.
fn died(compartment: &str, function: &'static str, s: &Slot, ended: Option<Ended>) -> Fault {
    let recorded = s.status.load(Ordering::Acquire) == chan::STATUS_FAULT;
    // The helper's handler wrote the record: read it as it is in memory.
    // SAFETY: valid, aligned fields of the live slot.
    let (signal, code, ip, err) = unsafe {
        (
            core::ptr::read_volatile(&s.fault_signal),
            core::ptr::read_volatile(&s.fault_code),
            core::ptr::read_volatile(&s.fault_ip),
            core::ptr::read_volatile(&s.fault_err),
        )
    };
    let mut f = Fault {
        compartment: compartment.to_owned(),
        function,
        kind: FaultKind::Signal {
            signal: libc::SIGKILL,
        },
        access: Access::Unknown,
        address: 0,
        ip: 0,
        pkey: None,
    };
    if recorded {
        f.address = s.fault_addr.load(Ordering::Relaxed) as usize;
        f.ip = ip as usize;
        // A fault signal with si_code <= 0 was sent (raise, tgkill), not
        // raised by the CPU: as on mpk, kind `Signal`, and si_addr means
        // nothing (it holds the sender's pid and uid).
        let sent = code <= 0 && !matches!(signal, libc::SIGSYS | libc::SIGABRT);
        if sent {
            f.address = 0;
        }
        f.kind = match signal {
            _ if sent => FaultKind::Signal { signal },
            libc::SIGSYS => FaultKind::Syscall {
                nr: err as u32,
                name: crate::guard::syscall_name(err as u32, false),
            },
            libc::SIGBUS => FaultKind::Bus,
            libc::SIGSEGV => match code {
                1 => FaultKind::Unmapped,
                2 => FaultKind::AccessRights,
                c => FaultKind::Other(c),
            },
            libc::SIGABRT => FaultKind::Abort,
            libc::SIGFPE => FaultKind::Arithmetic { code },
            libc::SIGILL => FaultKind::IllegalInstruction { code },
            libc::SIGTRAP => FaultKind::Breakpoint,
            sig => FaultKind::Signal { signal: sig },
        };
        if signal == libc::SIGSEGV && !sent {
            f.access = if err & 0x10 != 0 {
                Access::Execute
            } else if err & 0x2 != 0 {
                Access::Write
            } else {
                Access::Read
            };
        }
    } else {
        f.kind = match ended {
            Some(Ended::Exited(_)) => FaultKind::Exit,
            Some(Ended::Signaled(sig)) => FaultKind::Signal { signal: sig },
            None => FaultKind::Signal {
                signal: libc::SIGKILL,
            },
        };
    }
    f
}

fn text(b: &[u8]) -> String {
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..n]).into_owned()
}

/// Function address -> (object, offset); and the object paths (object 0,
/// the main executable, has none).
type Objects = (HashMap<usize, (u32, u64)>, Vec<String>);
static OBJECTS: Mutex<Option<Objects>> = Mutex::new(None);

/// (object index, offset) of a function address in this process, found
/// with `dladdr` once and cached. Object 0 is the main executable.
fn resolve(f: usize) -> Result<(u32, u64), String> {
    let mut g = OBJECTS.lock().unwrap_or_else(|e| e.into_inner());
    let (cache, objects) = g.get_or_insert_with(|| (HashMap::new(), vec![String::new()]));
    if let Some(&hit) = cache.get(&f) {
        return Ok(hit);
    }
    let (bias, path) =
        sys::object_bias(f).ok_or("the address is in no loaded object (dladdr found none)")?;
    let off = f.wrapping_sub(bias) as u64;
    let o = match path {
        None => 0,
        Some(p) => {
            let s = p.to_string_lossy().into_owned();
            if !s.starts_with('/') {
                return Err(format!(
                    "the object `{s}` has no file path the helper could open"
                ));
            }
            match objects.iter().position(|x| *x == s) {
                Some(i) => i as u32,
                None => {
                    objects.push(s);
                    (objects.len() - 1) as u32
                }
            }
        }
    };
    cache.insert(f, (o, off));
    Ok((o, off))
}

/// The path of object `o` (empty for the main executable).
fn object_path(o: u32) -> String {
    let g = OBJECTS.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref()
        .and_then(|(_, objects)| objects.get(o as usize).cloned())
        .unwrap_or_default()
}

/// How a wait for the helper ended.
enum Wait {
    Done,
    TimedOut(Duration),
    Died(Option<Ended>),
}

/// One running helper process.
struct Helper {
    id: u64,
    pid: i32,
    control: usize,
    _control_fd: OwnedFd,
    /// The write end of the lifeline pipe: the helper exits when it closes.
    _lifeline: OwnedFd,
    ended: Mutex<Option<Ended>>,
    slots: Mutex<SlotPool>,
    known: Mutex<HashSet<u32>>,
}

#[derive(Default)]
struct SlotPool {
    next: usize,
    /// Released slots with the last call number used on them.
    free: Vec<(usize, u32)>,
}

impl Helper {
    fn spawn(limits: &Limits) -> Result<Arc<Helper>, Error> {
        static IDS: AtomicU64 = AtomicU64::new(1);
        let fail = |reason: String| Error::Process { reason };
        let arena = arena::get().map_err(fail)?;
        let cfd = sys::memfd_sealed(c"cofferdam-control", CONTROL_LEN)
            .map_err(|e| fail(format!("memfd: {e}")))?;
        // SAFETY: a descriptor we just created and own.
        let control_fd = unsafe { OwnedFd::from_raw_fd(cfd) };
        let control = sys::map_shared(0, CONTROL_LEN, cfd, false)
            .map_err(|e| fail(format!("mapping the control page: {e}")))?
            as usize;
        let h = chan::Header {
            magic: MAGIC,
            arena_addr: arena.base as u64,
            arena_len: arena.len as u64,
            memory_limit: limits.memory.unwrap_or(0),
            thread_stack: crate::gate::config::get().foreign_stack.max(256 << 10) as u64,
            spin: limits.spin.unwrap_or(SPIN),
            threads_wanted: Default::default(),
            ready: Default::default(),
            message: [0; 512],
            cb_refused: [const { AtomicU32::new(0) }; crate::callback::NSLOTS],
        };
        // SAFETY: the mapping is fresh, ours, page-aligned and large enough.
        unsafe { (control as *mut chan::Header).write(h) };
        let mut pipe = [0i32; 2];
        // SAFETY: a valid out-array of two descriptors.
        if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            // SAFETY: our mapping, unused from here on.
            unsafe { sys::unmap(control as *mut u8, CONTROL_LEN) };
            return Err(fail(format!("pipe: {}", std::io::Error::last_os_error())));
        }
        // SAFETY: descriptors we just created and own.
        let (lr, lw) = unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
        // The parent is not dumpable from now on: a helper (same user) can
        // then neither ptrace it nor open its /proc/<pid>/mem, maps or
        // environ.
        let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0);
        let pid = match start_process(cfd, lr.as_raw_fd(), arena.fd) {
            Ok(pid) => pid,
            Err(e) => {
                // SAFETY: our mapping, unused from here on.
                unsafe { sys::unmap(control as *mut u8, CONTROL_LEN) };
                return Err(fail(format!("starting {}: {e}", "/proc/self/exe")));
            }
        };
        drop(lr);
        let helper = Arc::new(Helper {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            pid,
            control,
            _control_fd: control_fd,
            _lifeline: lw,
            ended: Mutex::new(None),
            slots: Mutex::new(SlotPool::default()),
            known: Mutex::new(HashSet::new()),
        });
        // SAFETY: the control mapping is live while `helper` is.
        let hd = unsafe { chan::header(control) };
        let start = Instant::now();
        loop {
            match hd.ready.load(Ordering::Acquire) {
                1 => return Ok(helper),
                2 => {
                    // SAFETY: a valid, aligned field of the live header.
                    let msg = text(&unsafe { core::ptr::read_volatile(&hd.message) });
                    helper.kill();
                    return Err(fail(format!("the helper process failed to start: {msg}")));
                }
                _ => {}
            }
            if let Some(e) = helper.ended() {
                return Err(fail(format!(
                    "the helper process ended at start-up ({e:?})"
                )));
            }
            if start.elapsed() > START_TIMEOUT {
                helper.kill();
                return Err(fail("the helper process did not start in time".into()));
            }
            sys::futex_wait(&hd.ready, 0, Some(LIVENESS_NS));
        }
    }

    /// Whether the helper has ended (reaping it if so).
    fn ended(&self) -> Option<Ended> {
        let mut g = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = sys::wait_child(self.pid, false);
        }
        *g
    }

    /// Kills and reaps the helper.
    fn kill(&self) {
        let mut g = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            sys::kill_hard(self.pid);
            *g = sys::wait_child(self.pid, true);
        }
    }

    fn knows(&self, obj: u32) -> bool {
        obj == 0
            || self
                .known
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&obj)
    }

    fn learned(&self, obj: u32) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(obj);
    }

    /// Posts the call prepared in slot `sp` and waits for its end, the
    /// helper's death or the timeout. Meanwhile the helper may call the
    /// callbacks `armed`: each runs here, on this thread
    /// (`crate::callback::run_for_process`), and may make nested calls on
    /// the same slot; the first callback failure goes to `cb_error`.
    ///
    /// The timeout counts the time spent waiting for the helper, summed over
    /// the call's round trips, not the time callbacks run here: a library
    /// that calls back without end is stopped like one that loops.
    fn round_trip(
        &self,
        sp: *mut Slot,
        lease: &mut LeaseGuard,
        armed: &[u32],
        timeout: Option<Duration>,
        spin: u32,
        cb_error: &mut Option<String>,
    ) -> Wait {
        let mut waited = Duration::ZERO;
        loop {
            let seq = lease.next_seq();
            // SAFETY: `sp` is this thread's live slot (see `Engine::call`);
            // only shared references to its atomics are made here.
            let s = unsafe { &*sp };
            let left = timeout.map(|t| t.saturating_sub(waited));
            let start = Instant::now();
            let w = self.post_and_wait(s, seq, left, spin);
            waited += start.elapsed();
            match w {
                Wait::Done => {}
                Wait::TimedOut(_) => return Wait::TimedOut(waited),
                other => return other,
            }
            if timeout.is_some_and(|t| waited >= t) {
                // Answered, but past the budget (a library calling back
                // without end answers every time).
                return Wait::TimedOut(waited);
            }
            if s.status.load(Ordering::Acquire) != chan::STATUS_OK {
                return Wait::Done; // the caller reads the record
            }
            // The helper wrote these: read them as they are in memory.
            // SAFETY: valid, aligned fields of the live slot.
            let (kind, slot, gpr, sse) = unsafe {
                (
                    core::ptr::read_volatile(&s.resp_kind),
                    core::ptr::read_volatile(&s.cb_slot),
                    core::ptr::read_volatile(&s.cb_gpr),
                    core::ptr::read_volatile(&s.cb_sse),
                )
            };
            if kind != chan::MSG_CB_CALL {
                return Wait::Done;
            }
            // The slot is free for nested calls while the callback runs.
            lease.set_busy(false);
            let (words, failed) = crate::callback::run_for_process(slot, armed, gpr, sse);
            lease.set_busy(true);
            if cb_error.is_none() {
                *cb_error = failed;
            }
            // SAFETY: as above; the nested calls are over and held no
            // reference into the slot past their end.
            unsafe {
                core::ptr::write_volatile(&raw mut (*sp).cb_ret, [words[0], words[2]]);
                core::ptr::write_volatile(&raw mut (*sp).req_kind, chan::MSG_CB_RET);
            }
        }
    }

    /// Posts message `seq` on slot `s` and waits for the helper's answer
    /// (`resp == seq`), its death or the timeout.
    fn post_and_wait(&self, s: &Slot, seq: u32, timeout: Option<Duration>, spin: u32) -> Wait {
        s.req.store(seq, Ordering::SeqCst);
        if s.child_sleeping.load(Ordering::SeqCst) != 0 {
            sys::futex_wake(&s.req, 1);
        }
        for _ in 0..spin {
            if s.resp.load(Ordering::Acquire) == seq {
                return Wait::Done;
            }
            core::hint::spin_loop();
        }
        let start = Instant::now();
        loop {
            s.parent_sleeping.store(1, Ordering::SeqCst);
            let now = s.resp.load(Ordering::SeqCst);
            if now == seq {
                s.parent_sleeping.store(0, Ordering::Relaxed);
                return Wait::Done;
            }
            if s.status.load(Ordering::Acquire) == chan::STATUS_FAULT {
                s.parent_sleeping.store(0, Ordering::Relaxed);
                return Wait::Done; // the caller reads the record
            }
            sys::futex_wait(&s.resp, now, Some(LIVENESS_NS));
            s.parent_sleeping.store(0, Ordering::Relaxed);
            if s.resp.load(Ordering::Acquire) == seq {
                return Wait::Done;
            }
            if let Some(e) = self.ended() {
                return Wait::Died(Some(e));
            }
            let spent = start.elapsed();
            if timeout.is_some_and(|t| spent >= t) {
                return Wait::TimedOut(spent);
            }
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.kill();
        // SAFETY: no slot lease outlives the helper's last strong reference
        // while in use (a lease holds an Arc during a call); the mapping is
        // ours.
        unsafe { sys::unmap(self.control as *mut u8, CONTROL_LEN) };
    }
}

/// Starts `/proc/self/exe` as a helper: the control memfd as fd 3, the
/// lifeline pipe's read end as fd 4, the arena memfd as fd 5; an
/// environment of its own (nothing of the parent's but `LD_LIBRARY_PATH`).
fn start_process(control: i32, lifeline: i32, arena: i32) -> std::io::Result<i32> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg0("cofferdam-helper")
        .env_clear()
        .env(child::ENV, "1")
        .env("COFFERDAM_BACKEND", "none")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    if let Some(v) = std::env::var_os("LD_LIBRARY_PATH") {
        cmd.env("LD_LIBRARY_PATH", v);
    }
    let fds = [control, lifeline, arena];
    // SAFETY: the closure runs between fork and exec and uses only
    // async-signal-safe calls (fcntl, dup2, setsid) on descriptors that
    // exist in the forked child.
    unsafe {
        cmd.pre_exec(move || {
            let mut high = [0i32; 3];
            for (h, &fd) in high.iter_mut().zip(&fds) {
                *h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 64);
                if *h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, &h) in high.iter().enumerate() {
                if libc::dup2(h, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // Out of the parent's session: a terminal's ^C does not reach it.
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    Ok(child.id() as i32)
}

/// A calling thread's slot in one helper.
struct Lease {
    helper: Weak<Helper>,
    helper_id: u64,
    slot: usize,
    seq: u32,
    busy: bool,
}

thread_local! {
    static LEASES: RefCell<Vec<Lease>> = const { RefCell::new(Vec::new()) };
}

/// Marks this thread's lease free again when the call ends.
struct LeaseGuard {
    helper_id: u64,
    slot: usize,
}

impl Lease {
    /// This thread's slot in `h` (taken at its first call), marked busy.
    fn take(h: &Arc<Helper>) -> Result<LeaseGuard, &'static str> {
        LEASES.with(|l| {
            let mut l = l
                .try_borrow_mut()
                .map_err(|_| "a nested call on the process backend (from a signal handler)")?;
            l.retain(|x| x.helper.strong_count() > 0);
            if let Some(x) = l.iter_mut().find(|x| x.helper_id == h.id) {
                if x.busy {
                    return Err("a nested call on the process backend from the same thread");
                }
                x.busy = true;
                return Ok(LeaseGuard {
                    helper_id: h.id,
                    slot: x.slot,
                });
            }
            let (slot, seq) = {
                let mut p = h.slots.lock().unwrap_or_else(|e| e.into_inner());
                match p.free.pop() {
                    Some(s) => s,
                    None if p.next < NSLOTS => {
                        p.next += 1;
                        (p.next - 1, 0)
                    }
                    None => {
                        return Err("more than 64 threads call one process compartment at once")
                    }
                }
            };
            // SAFETY: the control mapping is live while `h` is.
            let hd = unsafe { chan::header(h.control) };
            if hd
                .threads_wanted
                .fetch_max(slot as u32 + 1, Ordering::SeqCst)
                <= slot as u32
            {
                sys::futex_wake(&hd.threads_wanted, 1);
            }
            l.push(Lease {
                helper: Arc::downgrade(h),
                helper_id: h.id,
                slot,
                seq,
                busy: true,
            });
            Ok(LeaseGuard {
                helper_id: h.id,
                slot,
            })
        })
    }
}

impl LeaseGuard {
    /// Marks the lease free (`false`: a callback runs, and may make nested
    /// calls on the slot) or taken again.
    fn set_busy(&mut self, busy: bool) {
        LEASES.with(|l| {
            let mut l = l.borrow_mut();
            if let Some(x) = l.iter_mut().find(|x| x.helper_id == self.helper_id) {
                x.busy = busy;
            }
        });
    }

    fn next_seq(&mut self) -> u32 {
        LEASES.with(|l| {
            let mut l = l.borrow_mut();
            let x = l
                .iter_mut()
                .find(|x| x.helper_id == self.helper_id)
                .expect("lease taken");
            x.seq = x.seq.wrapping_add(1);
            if x.seq == 0 {
                x.seq = 1;
            }
            x.seq
        })
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let _ = LEASES.try_with(|l| {
            if let Ok(mut l) = l.try_borrow_mut() {
                if let Some(x) = l.iter_mut().find(|x| x.helper_id == self.helper_id) {
                    x.busy = false;
                }
            }
        });
    }
}

impl Drop for Lease {
    /// At thread exit: the slot goes back to the helper's pool.
    fn drop(&mut self) {
        if let Some(h) = self.helper.upgrade() {
            let mut p = h.slots.lock().unwrap_or_else(|e| e.into_inner());
            p.free.push((self.slot, self.seq));
        }
    }
}

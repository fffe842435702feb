//! SQLite through the gate, with small safe types around the handles.
//!
//! Every SQLite call goes through the compartment `sqlite`. What SQLite
//! reads (SQL, bound text) is copied into foreign memory first; what it
//! hands back (handles, text) is validated and copied out.

// The wrappers the sandbox macro generates keep SQLite's names, and unlike
// foreign declarations they are Rust functions, which this lint checks.
#![allow(non_snake_case)]

use core::cell::Cell;
use core::ffi::{c_char, c_int, c_void};

use cofferdam::{ForeignBox, ForeignBuf, ForeignPtr};

use crate::c::*;
use crate::{sql, Checksum, Error, Report, Row};

/// `sqlite3`: opaque, only ever behind a [`ForeignPtr`].
#[repr(C)]
pub struct Sqlite3 {
    _p: [u8; 0],
}

/// `sqlite3_stmt`: opaque, only ever behind a [`ForeignPtr`].
#[repr(C)]
pub struct Sqlite3Stmt {
    _p: [u8; 0],
}

// Out-parameters (`sqlite3 **ppDb`, `sqlite3_stmt **ppStmt`) are declared
// `*mut u64` and passed a `ForeignBox<u64>` (written before `ForeignPtr`
// was `Pod`; a `&ForeignBox<ForeignPtr<T>>` would do now, the value read
// back as untrusted all the same). `char **` out-parameters we
// do not use are `*mut u64` too, passed null. `sqlite3_bind_text`'s
// destructor is an integer: SQLITE_TRANSIENT (-1) is not a function.
#[cofferdam::sandbox(compartment = "sqlite", handle = pub sqlite_compartment)]
extern "C" {
    pub fn sqlite3_open_v2(
        filename: *const c_char,
        pp_db: *mut u64,
        flags: c_int,
        z_vfs: *const c_char,
    ) -> c_int;
    pub fn sqlite3_close(db: *mut Sqlite3) -> c_int;
    pub fn sqlite3_exec(
        db: *mut Sqlite3,
        sql: *const c_char,
        callback: Option<
            unsafe extern "C" fn(*mut c_void, c_int, *mut *mut c_char, *mut *mut c_char) -> c_int,
        >,
        arg: *mut c_void,
        errmsg: *mut u64,
    ) -> c_int;
    pub fn sqlite3_prepare_v2(
        db: *mut Sqlite3,
        sql: *const c_char,
        n_byte: c_int,
        pp_stmt: *mut u64,
        pz_tail: *mut u64,
    ) -> c_int;
    pub fn sqlite3_bind_int64(stmt: *mut Sqlite3Stmt, index: c_int, value: i64) -> c_int;
    pub fn sqlite3_bind_text(
        stmt: *mut Sqlite3Stmt,
        index: c_int,
        text: *const c_char,
        n: c_int,
        destructor: isize,
    ) -> c_int;
    pub fn sqlite3_step(stmt: *mut Sqlite3Stmt) -> c_int;
    pub fn sqlite3_reset(stmt: *mut Sqlite3Stmt) -> c_int;
    pub fn sqlite3_column_int64(stmt: *mut Sqlite3Stmt, col: c_int) -> i64;
    pub fn sqlite3_column_text(stmt: *mut Sqlite3Stmt, col: c_int) -> *const u8;
    pub fn sqlite3_column_bytes(stmt: *mut Sqlite3Stmt, col: c_int) -> c_int;
    pub fn sqlite3_finalize(stmt: *mut Sqlite3Stmt) -> c_int;
    pub fn sqlite3_errmsg(db: *mut Sqlite3) -> *const c_char;
}

/// A handle SQLite wrote into an out-parameter: validated as a returned
/// pointer would be (not into the protected heap), since the macro only
/// validates returns.
fn handle<T>(function: &'static str, out: &ForeignBox<u64>) -> Result<ForeignPtr<T>, Error> {
    Ok(cofferdam::validate::check::<ForeignPtr<T>>(
        function,
        [out.get(), 0],
    )?)
}

/// An open database connection.
pub struct Db {
    db: ForeignPtr<Sqlite3>,
    /// Gate calls made so far (for the benchmark's cost analysis).
    calls: Cell<u64>,
}

impl Db {
    /// Opens (creating) the database `path`; `":memory:"` for a private
    /// in-memory one.
    pub fn open(path: &str) -> Result<Db, Error> {
        let name = ForeignBuf::from_str_nul(path)?;
        let out = ForeignBox::new(0u64)?;
        // SAFETY: `name` is a NUL-terminated foreign string, `out` a foreign
        // u64 for the `sqlite3 *` SQLite writes, zVfs null (the default).
        let rc = unsafe {
            sqlite3_open_v2(
                &name,
                &out,
                SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                ForeignPtr::null(),
            )
        }?;
        let db = Db {
            db: handle("sqlite3_open_v2", &out)?,
            calls: Cell::new(1),
        };
        if db.db.is_null() {
            // Only when SQLite could not allocate the connection.
            return Err(Error::Sqlite {
                function: "sqlite3_open_v2",
                code: rc,
                message: "no connection".into(),
            });
        }
        // On an error the connection exists and is closed by `Drop`.
        db.check("sqlite3_open_v2", rc, SQLITE_OK)?;
        Ok(db)
    }

    fn count(&self, n: u64) {
        self.calls.set(self.calls.get() + n);
    }

    /// Gate calls made through this connection and its statements.
    pub fn gate_calls(&self) -> u64 {
        self.calls.get()
    }

    /// `Ok` if `rc` is `want`, else the error with SQLite's message.
    fn check(&self, function: &'static str, rc: c_int, want: c_int) -> Result<(), Error> {
        if rc == want {
            Ok(())
        } else {
            Err(Error::Sqlite {
                function,
                code: rc,
                message: self.errmsg(),
            })
        }
    }

    /// `sqlite3_errmsg`, copied out.
    pub fn errmsg(&self) -> String {
        self.count(3); // errmsg, strnlen, memcpy
                       // SAFETY: `db` is an open connection.
        let p = match unsafe { sqlite3_errmsg(self.db) } {
            Ok(p) if !p.is_null() => p,
            Ok(_) => return String::new(),
            Err(e) => return format!("(no message: {e})"),
        };
        // SQLite's message, read through the gate (a lying pointer is an
        // error, not UB); 4 KiB is longer than any SQLite message.
        let compartment = match sqlite_compartment() {
            Ok(c) => c,
            Err(e) => return format!("(no message: {e})"),
        };
        match compartment.read_foreign_cstr(p, 4096) {
            Ok(msg) => String::from_utf8_lossy(&msg).into_owned(),
            Err(e) => format!("(no message: {e})"),
        }
    }

    /// Runs SQL that returns no rows.
    pub fn exec(&self, sql: &str) -> Result<(), Error> {
        let text = ForeignBuf::from_str_nul(sql)?;
        self.count(1);
        // SAFETY: open connection, NUL-terminated foreign SQL, no callback
        // (so `arg` is unused), no error-message out-parameter.
        let rc = unsafe {
            sqlite3_exec(
                self.db,
                &text,
                None,
                ForeignPtr::<c_void>::null(),
                ForeignPtr::null(),
            )
        }?;
        self.check("sqlite3_exec", rc, SQLITE_OK)
    }

    /// Compiles one statement.
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>, Error> {
        let text = ForeignBuf::from_str_nul(sql)?;
        let out = ForeignBox::new(0u64)?;
        self.count(1);
        // SAFETY: open connection, NUL-terminated foreign SQL (nByte -1: up
        // to the NUL), `out` a foreign u64 for the `sqlite3_stmt *`, no tail.
        let rc = unsafe { sqlite3_prepare_v2(self.db, &text, -1, &out, ForeignPtr::null()) }?;
        let stmt = handle("sqlite3_prepare_v2", &out)?;
        self.check("sqlite3_prepare_v2", rc, SQLITE_OK)?;
        if stmt.is_null() {
            return Err(Error::Protocol(format!("no statement in {sql:?}")));
        }
        Ok(Stmt {
            db: self,
            stmt,
            text: ForeignBuf::zeroed(64)?,
        })
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // Statements borrow the connection, so they are finalized by now.
        // SAFETY: an open connection (or null, a no-op), closed once.
        let _ = unsafe { sqlite3_close(self.db) };
    }
}

/// A prepared statement.
pub struct Stmt<'db> {
    db: &'db Db,
    stmt: ForeignPtr<Sqlite3Stmt>,
    /// Foreign scratch space for text to bind (SQLite copies it).
    text: ForeignBuf,
}

impl Stmt<'_> {
    fn check(&self, function: &'static str, rc: c_int) -> Result<(), Error> {
        self.db.check(function, rc, SQLITE_OK)
    }

    /// Binds parameter `index` (1-based) to an integer.
    pub fn bind_int64(&self, index: c_int, value: i64) -> Result<(), Error> {
        self.db.count(1);
        // SAFETY: a live statement; SQLite checks the index.
        let rc = unsafe { sqlite3_bind_int64(self.stmt, index, value) }?;
        self.check("sqlite3_bind_int64", rc)
    }

    /// Binds parameter `index` (1-based) to a copy of `text`.
    pub fn bind_text(&mut self, index: c_int, text: &str) -> Result<(), Error> {
        let n = c_int::try_from(text.len())
            .map_err(|_| Error::Protocol("text longer than 2 GiB".into()))?;
        if text.len() > self.text.len() {
            self.text = ForeignBuf::zeroed(text.len().next_power_of_two())?;
        }
        self.text.write(0, text.as_bytes()).expect("fits");
        self.db.count(1);
        // SAFETY: a live statement; `self.text` holds `n` bytes of UTF-8;
        // SQLITE_TRANSIENT makes SQLite copy them before returning, so the
        // scratch buffer may be reused.
        let rc = unsafe { sqlite3_bind_text(self.stmt, index, &self.text, n, SQLITE_TRANSIENT) }?;
        self.check("sqlite3_bind_text", rc)
    }

    /// Runs one step: `Ok(true)` for a row, `Ok(false)` when done.
    pub fn step(&self) -> Result<bool, Error> {
        self.db.count(1);
        // SAFETY: a live statement.
        match unsafe { sqlite3_step(self.stmt) }? {
            SQLITE_ROW => Ok(true),
            SQLITE_DONE => Ok(false),
            rc => Err(Error::Sqlite {
                function: "sqlite3_step",
                code: rc,
                message: self.db.errmsg(),
            }),
        }
    }

    /// Resets it to run again (bindings are kept).
    pub fn reset(&self) -> Result<(), Error> {
        self.db.count(1);
        // SAFETY: a live statement.
        let rc = unsafe { sqlite3_reset(self.stmt) }?;
        self.check("sqlite3_reset", rc)
    }

    /// Column `col` (0-based) of the current row, as an integer.
    pub fn column_int64(&self, col: c_int) -> Result<i64, Error> {
        self.db.count(1);
        // SAFETY: a live statement on a row; SQLite checks the column.
        Ok(unsafe { sqlite3_column_int64(self.stmt, col) }?)
    }

    /// Column `col` (0-based) of the current row, as text (`""` for NULL),
    /// copied out of SQLite's buffer.
    pub fn column_text(&self, col: c_int) -> Result<String, Error> {
        self.db.count(3); // column_text, column_bytes, memcpy
                          // SAFETY: a live statement on a row. `sqlite3_column_text` first,
                          // then `sqlite3_column_bytes`, as SQLite's documentation asks.
        let (p, n) = unsafe {
            (
                sqlite3_column_text(self.stmt, col)?,
                sqlite3_column_bytes(self.stmt, col)?,
            )
        };
        let n = usize::try_from(n)
            .map_err(|_| Error::Protocol(format!("sqlite3_column_bytes returned {n}")))?;
        if p.is_null() {
            return if n == 0 {
                Ok(String::new())
            } else {
                Err(Error::Protocol(format!("null text of {n} bytes")))
            };
        }
        // SQLite promises `n` readable bytes at `p`, but SQLite is the
        // untrusted side: the copy runs through the gate (C's memcpy into a
        // foreign buffer), so a lying pointer or length faults inside the
        // gate and comes back as an error, and a range in the protected heap
        // is refused before it is read.
        let bytes = sqlite_compartment()?.read_foreign(p, n)?;
        String::from_utf8(bytes).map_err(|e| Error::Protocol(format!("text is not UTF-8: {e}")))
    }
}

impl Drop for Stmt<'_> {
    fn drop(&mut self) {
        self.db.count(1);
        // SAFETY: a live statement, finalized once.
        let _ = unsafe { sqlite3_finalize(self.stmt) };
    }
}

/// The workload on `rows`: returns the report and the number of gate calls.
pub fn workload_rows(rows: &[Row]) -> Result<(Report, u64), Error> {
    let db = Db::open(":memory:")?;
    db.exec(sql::CREATE)?;
    db.exec("BEGIN")?;
    // docs/examples.md shows this loop next to bare::workload_rows.
    let mut insert = db.prepare(sql::INSERT)?;
    for r in rows {
        insert.bind_int64(1, r.id)?;
        insert.bind_text(2, &r.name)?;
        insert.bind_int64(3, r.value)?;
        if insert.step()? {
            return Err(Error::Protocol("INSERT returned a row".into()));
        }
        insert.reset()?;
    }
    drop(insert);
    db.exec("COMMIT")?;

    let select = db.prepare(sql::SELECT)?;
    let mut out = Vec::with_capacity(rows.len());
    let mut sum = Checksum::default();
    while select.step()? {
        let id = select.column_int64(0)?;
        let name = select.column_text(1)?;
        let value = select.column_int64(2)?;
        sum.row(id, name.as_bytes(), value);
        out.push(Row { id, name, value });
    }
    drop(select);
    let report = Report {
        rows: out,
        checksum: sum.value(),
    };
    Ok((report, db.gate_calls()))
}

/// The workload on `n` rows ([`crate::row`]); returns the report and the
/// number of gate calls.
pub fn workload(n: usize) -> Result<(Report, u64), Error> {
    let rows: Vec<Row> = (0..n).map(crate::row).collect();
    workload_rows(&rows)
}

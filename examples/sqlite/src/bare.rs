//! The same workload, the ordinary way: libsqlite3-sys's declarations, Rust
//! strings handed to SQLite directly, text columns read in place.

use core::ffi::{c_int, CStr};
use core::ptr;
use std::ffi::CString;

use libsqlite3_sys as ffi;

use crate::c::*;
use crate::{sql, Checksum, Error, Report, Row};

/// The error for `rc`, with SQLite's message.
///
/// # Safety
/// `db` is an open connection.
unsafe fn error(db: *mut ffi::sqlite3, function: &'static str, rc: c_int) -> Error {
    // SAFETY: open connection (contract); errmsg returns a NUL-terminated
    // string valid until the next call on it.
    let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db)) };
    Error::Sqlite {
        function,
        code: rc,
        message: message.to_string_lossy().into_owned(),
    }
}

/// # Safety
/// `db` is an open connection.
unsafe fn exec(db: *mut ffi::sqlite3, sql: &str) -> Result<(), Error> {
    let sql = CString::new(sql).expect("no NUL in SQL");
    // SAFETY: open connection, NUL-terminated SQL, no callback.
    let rc = unsafe { ffi::sqlite3_exec(db, sql.as_ptr(), None, ptr::null_mut(), ptr::null_mut()) };
    if rc == SQLITE_OK {
        Ok(())
    } else {
        // SAFETY: open connection.
        Err(unsafe { error(db, "sqlite3_exec", rc) })
    }
}

/// # Safety
/// `db` is an open connection; the statement must be finalized before it
/// is closed.
unsafe fn prepare(db: *mut ffi::sqlite3, sql: &str) -> Result<*mut ffi::sqlite3_stmt, Error> {
    let sql = CString::new(sql).expect("no NUL in SQL");
    let mut stmt = ptr::null_mut();
    // SAFETY: open connection, NUL-terminated SQL, a valid out-pointer.
    let rc = unsafe { ffi::sqlite3_prepare_v2(db, sql.as_ptr(), -1, &mut stmt, ptr::null_mut()) };
    if rc != SQLITE_OK {
        // SAFETY: open connection.
        return Err(unsafe { error(db, "sqlite3_prepare_v2", rc) });
    }
    Ok(stmt)
}

/// The workload on `rows`.
pub fn workload_rows(rows: &[Row]) -> Result<Report, Error> {
    let mut db = ptr::null_mut();
    let name = c":memory:";
    // SAFETY: NUL-terminated name, valid out-pointer, default VFS.
    let rc = unsafe {
        ffi::sqlite3_open_v2(
            name.as_ptr(),
            &mut db,
            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
            ptr::null(),
        )
    };
    if db.is_null() {
        return Err(Error::Sqlite {
            function: "sqlite3_open_v2",
            code: rc,
            message: "no connection".into(),
        });
    }
    // SAFETY: `db` is open here and closed once, after every statement is
    // finalized (`run` finalizes the ones it prepares).
    unsafe {
        let result = if rc == SQLITE_OK {
            run(db, rows)
        } else {
            Err(error(db, "sqlite3_open_v2", rc))
        };
        ffi::sqlite3_close(db);
        result
    }
}

/// # Safety
/// `db` is an open connection.
unsafe fn run(db: *mut ffi::sqlite3, rows: &[Row]) -> Result<Report, Error> {
    // SAFETY: open connection (contract), for every call below; each
    // statement is finalized on every path.
    unsafe {
        exec(db, sql::CREATE)?;
        exec(db, "BEGIN")?;
        let insert = prepare(db, sql::INSERT)?;
        let r = insert_all(db, insert, rows);
        ffi::sqlite3_finalize(insert);
        r?;
        exec(db, "COMMIT")?;
        let select = prepare(db, sql::SELECT)?;
        let r = select_all(db, select, rows.len());
        ffi::sqlite3_finalize(select);
        r
    }
}

/// # Safety
/// `stmt` is the INSERT prepared on the open connection `db`.
// docs/examples.md shows this loop next to gated::workload_rows.
unsafe fn insert_all(
    db: *mut ffi::sqlite3,
    insert: *mut ffi::sqlite3_stmt,
    rows: &[Row],
) -> Result<(), Error> {
    let check = |function, rc| {
        if rc == SQLITE_OK {
            Ok(())
        } else {
            // SAFETY: open connection (contract).
            Err(unsafe { error(db, function, rc) })
        }
    };
    for r in rows {
        let n = c_int::try_from(r.name.len())
            .map_err(|_| Error::Protocol("text longer than 2 GiB".into()))?;
        // SAFETY: a live statement; the text is `n` bytes of UTF-8 that
        // SQLITE_TRANSIENT makes SQLite copy before returning.
        unsafe {
            check(
                "sqlite3_bind_int64",
                ffi::sqlite3_bind_int64(insert, 1, r.id),
            )?;
            check(
                "sqlite3_bind_text",
                ffi::sqlite3_bind_text(
                    insert,
                    2,
                    r.name.as_ptr().cast(),
                    n,
                    ffi::SQLITE_TRANSIENT(),
                ),
            )?;
            check(
                "sqlite3_bind_int64",
                ffi::sqlite3_bind_int64(insert, 3, r.value),
            )?;
            match ffi::sqlite3_step(insert) {
                SQLITE_DONE => {}
                SQLITE_ROW => return Err(Error::Protocol("INSERT returned a row".into())),
                rc => return Err(error(db, "sqlite3_step", rc)),
            }
            check("sqlite3_reset", ffi::sqlite3_reset(insert))?;
        }
    }
    Ok(())
}

/// # Safety
/// `stmt` is the SELECT prepared on the open connection `db`.
unsafe fn select_all(
    db: *mut ffi::sqlite3,
    select: *mut ffi::sqlite3_stmt,
    expect: usize,
) -> Result<Report, Error> {
    let mut out = Vec::with_capacity(expect);
    let mut sum = Checksum::default();
    loop {
        // SAFETY: a live statement; on a row, columns 0..3 exist, and the
        // text pointer is valid for `n` bytes until the next step.
        unsafe {
            match ffi::sqlite3_step(select) {
                SQLITE_ROW => {}
                SQLITE_DONE => break,
                rc => return Err(error(db, "sqlite3_step", rc)),
            }
            let id = ffi::sqlite3_column_int64(select, 0);
            let p = ffi::sqlite3_column_text(select, 1);
            let n = ffi::sqlite3_column_bytes(select, 1);
            let bytes = if p.is_null() {
                &[][..]
            } else {
                core::slice::from_raw_parts(p, n as usize)
            };
            let name = String::from_utf8(bytes.to_vec())
                .map_err(|e| Error::Protocol(format!("text is not UTF-8: {e}")))?;
            let value = ffi::sqlite3_column_int64(select, 2);
            sum.row(id, name.as_bytes(), value);
            out.push(Row { id, name, value });
        }
    }
    Ok(Report {
        rows: out,
        checksum: sum.value(),
    })
}

/// The workload on `n` rows ([`crate::row`]).
pub fn workload(n: usize) -> Result<Report, Error> {
    let rows: Vec<Row> = (0..n).map(crate::row).collect();
    workload_rows(&rows)
}

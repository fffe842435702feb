//! Unmodified C SQLite behind the Cofferdam gate.
//!
//! The C library is the amalgamation `libsqlite3-sys` bundles, built and
//! linked statically. One workload — open `:memory:`, create a table,
//! insert rows with one prepared statement inside a transaction, read them
//! back — is written twice:
//!
//! * [`workload_gated`]: through `#[cofferdam::sandbox(compartment =
//!   "sqlite")]` ([`gated`]). SQL text and bound strings are copied into
//!   foreign memory; the `sqlite3 **` and `sqlite3_stmt **` out-parameters
//!   are `ForeignBox<u64>`s; handles are `ForeignPtr`s Rust never
//!   dereferences; text columns are copied out of SQLite's buffer.
//! * [`workload_bare`]: the ordinary way, with `libsqlite3-sys`'s
//!   declarations and Rust buffers ([`bare`]).
//!
//! Both produce a [`Report`]: every row, and a checksum over them.

// The gated block declares SQLite's functions again, with its own handle
// types and with out-parameters as `*mut u64`: the same symbols as
// libsqlite3-sys's declarations, with types that differ on purpose.
#![allow(clashing_extern_declarations)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod bare;
pub mod bench;
pub mod gated;

use core::fmt;

// Links libsqlite3-sys's static C SQLite, whose symbols the gated block uses.
use libsqlite3_sys as _;

pub use bench::bench;

/// Rows the workload inserts and reads back.
pub const ROWS: usize = 100_000;

/// The SQL of the workload, shared by both paths.
pub mod sql {
    /// Creates the table.
    pub const CREATE: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, value INTEGER)";
    /// Inserts one row.
    pub const INSERT: &str = "INSERT INTO t(id, name, value) VALUES (?1, ?2, ?3)";
    /// Reads them all back.
    pub const SELECT: &str = "SELECT id, name, value FROM t ORDER BY id";
}

/// SQLite's result codes and flags used here (from `sqlite3.h`).
pub mod c {
    #![allow(missing_docs)]
    pub const SQLITE_OK: i32 = 0;
    pub const SQLITE_ROW: i32 = 100;
    pub const SQLITE_DONE: i32 = 101;
    pub const SQLITE_OPEN_READWRITE: i32 = 0x0000_0002;
    pub const SQLITE_OPEN_CREATE: i32 = 0x0000_0004;
    /// `SQLITE_TRANSIENT`: `(sqlite3_destructor_type)-1`, "copy the value
    /// before `bind` returns".
    pub const SQLITE_TRANSIENT: isize = -1;
}

/// One row of table `t`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// `id INTEGER PRIMARY KEY`.
    pub id: i64,
    /// `name TEXT`.
    pub name: String,
    /// `value INTEGER`.
    pub value: i64,
}

/// What the workload read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Every row, in `id` order.
    pub rows: Vec<Row>,
    /// FNV-1a over the rows ([`Checksum`]).
    pub checksum: u64,
}

/// FNV-1a (64 bits) over each row's id, name and value, in order.
#[derive(Clone, Copy, Debug)]
pub struct Checksum(u64);

impl Default for Checksum {
    fn default() -> Self {
        Checksum(0xcbf2_9ce4_8422_2325)
    }
}

impl Checksum {
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    /// Adds a row.
    pub fn row(&mut self, id: i64, name: &[u8], value: i64) {
        self.bytes(&id.to_le_bytes());
        self.bytes(&(name.len() as u64).to_le_bytes());
        self.bytes(name);
        self.bytes(&value.to_le_bytes());
    }
    /// The value so far.
    pub fn value(self) -> u64 {
        self.0
    }
}

const WORDS: &[&str] = &[
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliett",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "x-ray",
    "yankee",
    "zulu",
    "ünïcödé",
];

/// The `i`-th row the workload inserts (0-based): deterministic, with names
/// of varying length (some non-ASCII) and values of both signs.
pub fn row(i: usize) -> Row {
    let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 32;
    let a = WORDS[(x % WORDS.len() as u64) as usize];
    let b = WORDS[((x >> 8) % WORDS.len() as u64) as usize];
    let name = match x % 4 {
        0 => format!("{a}-{i}"),
        1 => format!("{a} {b} #{i}"),
        2 => format!("{a}{b}{a}-{}", x % 1000),
        _ => a.to_string(),
    };
    Row {
        id: i as i64 + 1,
        name,
        value: (x >> 11) as i64 - (1 << 52),
    }
}

/// The report the workload must produce for `n` rows, computed in Rust.
pub fn expected(n: usize) -> Report {
    let rows: Vec<Row> = (0..n).map(row).collect();
    let mut sum = Checksum::default();
    for r in &rows {
        sum.row(r.id, r.name.as_bytes(), r.value);
    }
    Report {
        rows,
        checksum: sum.value(),
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// An SQLite function returned an error code.
    Sqlite {
        /// The function.
        function: &'static str,
        /// Its result code.
        code: i32,
        /// `sqlite3_errmsg`, copied out.
        message: String,
    },
    /// SQLite handed back something it cannot have: a text column that is
    /// not UTF-8, a negative length, a null handle with `SQLITE_OK`.
    Protocol(String),
    /// The gate refused or contained the call.
    Gate(cofferdam::Error),
    /// C's `malloc` could not allocate a foreign buffer.
    Alloc(cofferdam::ForeignAllocError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sqlite {
                function,
                code,
                message,
            } => write!(f, "{function} returned {code}: {message}"),
            Error::Protocol(d) => write!(f, "SQLite broke its contract: {d}"),
            Error::Gate(e) => write!(f, "gate: {e}"),
            Error::Alloc(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl From<cofferdam::Error> for Error {
    fn from(e: cofferdam::Error) -> Self {
        Error::Gate(e)
    }
}

impl From<cofferdam::ForeignAllocError> for Error {
    fn from(e: cofferdam::ForeignAllocError) -> Self {
        Error::Alloc(e)
    }
}

/// Inserts `n` rows ([`row`]) and reads them back, through the gate.
pub fn workload_gated(n: usize) -> Result<Report, Error> {
    gated::workload(n).map(|(report, _calls)| report)
}

/// As [`workload_gated`], calling SQLite directly.
pub fn workload_bare(n: usize) -> Result<Report, Error> {
    bare::workload(n)
}

//! The gated SQLite workload against SQLite called directly, and against
//! the rows generated in Rust: all 100,000 rows, exactly.

use cofferdam_example_sqlite::{expected, gated, row, workload_bare, workload_gated, Error, ROWS};

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

#[test]
fn hundred_thousand_rows_match_bare_sqlite_exactly() {
    let (g, calls) = gated::workload(ROWS).expect("gated workload");
    let b = workload_bare(ROWS).expect("bare workload");
    assert_eq!(g.rows.len(), ROWS);
    assert_eq!(b.rows.len(), ROWS);
    for (i, (gr, br)) in g.rows.iter().zip(&b.rows).enumerate() {
        assert_eq!(gr, br, "row {i}");
    }
    assert_eq!(g.checksum, b.checksum);
    assert!(g == b);
    // And both are what was inserted.
    let want = expected(ROWS);
    assert!(g == want, "rows differ from the generator's");
    assert_eq!(g.rows[0], row(0));
    assert_eq!(g.rows[ROWS - 1].id, ROWS as i64);
    // The data is varied: non-ASCII names, negative values.
    assert!(g.rows.iter().any(|r| !r.name.is_ascii()));
    assert!(g.rows.iter().any(|r| r.value < 0));
    // Eleven gate calls a row (5 to insert; 5 to read plus the memcpy that
    // copies the text out through the gate), plus setup.
    assert!(
        (11 * ROWS as u64..11 * ROWS as u64 + 20).contains(&calls),
        "{calls}"
    );
    assert!(!gated::sqlite_compartment().unwrap().is_poisoned());
}

#[test]
fn workload_gated_is_the_public_entry() {
    let r = workload_gated(1000).unwrap();
    assert!(r == expected(1000));
    assert!(r == workload_bare(1000).unwrap());
    assert!(workload_gated(0).unwrap().rows.is_empty());
}

#[test]
fn sqlite_errors_come_back_with_their_message() {
    let db = gated::Db::open(":memory:").unwrap();
    match db.exec("SELECT * FROM no_such_table") {
        Err(Error::Sqlite {
            function: "sqlite3_exec",
            code: 1,
            message,
        }) => assert_eq!(message, "no such table: no_such_table"),
        other => panic!("{other:?}"),
    }
    match db.prepare("SELEKT 1") {
        Err(Error::Sqlite {
            function: "sqlite3_prepare_v2",
            message,
            ..
        }) => assert!(message.contains("syntax error"), "{message}"),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("prepared bad SQL"),
    }
    // A constraint violation at step.
    db.exec("CREATE TABLE u(id INTEGER PRIMARY KEY)").unwrap();
    db.exec("INSERT INTO u VALUES (1)").unwrap();
    let mut ins = db.prepare("INSERT INTO u VALUES (?1)").unwrap();
    ins.bind_int64(1, 1).unwrap();
    match ins.step() {
        Err(Error::Sqlite {
            function: "sqlite3_step",
            code,
            message,
        }) => {
            assert_eq!(code & 0xff, 19, "SQLITE_CONSTRAINT, got {code}");
            assert!(message.contains("UNIQUE"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // reset reports the failed step again; the statement is usable after.
    assert!(ins.reset().is_err());
    ins.bind_int64(1, 2).unwrap();
    assert!(!ins.step().unwrap());
    // Binding a statement that ran without a reset is SQLITE_MISUSE; a bad
    // parameter index is SQLITE_RANGE.
    assert!(matches!(
        ins.bind_int64(1, 3),
        Err(Error::Sqlite { code: 21, .. })
    ));
    ins.reset().unwrap();
    assert!(matches!(
        ins.bind_text(9, "x"),
        Err(Error::Sqlite { code: 25, .. })
    ));
    // Long text (longer than the statement's scratch buffer) and NULL text.
    drop(ins);
    db.exec("CREATE TABLE s(x TEXT)").unwrap();
    let long = "ü".repeat(5000);
    let mut ins = db.prepare("INSERT INTO s VALUES (?1)").unwrap();
    ins.bind_text(1, &long).unwrap();
    assert!(!ins.step().unwrap());
    drop(ins);
    db.exec("INSERT INTO s VALUES (NULL)").unwrap();
    let sel = db.prepare("SELECT x FROM s ORDER BY rowid").unwrap();
    assert!(sel.step().unwrap());
    assert_eq!(sel.column_text(0).unwrap(), long);
    assert!(sel.step().unwrap());
    assert_eq!(sel.column_text(0).unwrap(), "");
    assert!(!sel.step().unwrap());
    drop(sel);
    assert!(!gated::sqlite_compartment().unwrap().is_poisoned());
}

//! SQLite with a database file on disk, behind the gate, under the syscall
//! guard's default list: SQLite opens, locks, writes, syncs, truncates and
//! deletes its files itself (the database and its rollback journal).

use cofferdam_example_sqlite::gated::Db;

#[global_allocator]
static GLOBAL: cofferdam::ProtectedAlloc = cofferdam::ProtectedAlloc;

#[test]
fn a_database_file_on_disk_written_closed_and_read_back() {
    let dir = std::env::temp_dir().join(format!("cofferdam-sqlite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("test.db");
    let p = path.to_str().unwrap();
    {
        let db = Db::open(p).expect("open");
        db.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v INTEGER)")
            .unwrap();
        db.exec("BEGIN").unwrap();
        let mut ins = db.prepare("INSERT INTO t VALUES (?1, ?2, ?3)").unwrap();
        for i in 0..1000i64 {
            ins.bind_int64(1, i).unwrap();
            ins.bind_text(2, &format!("row-{i}")).unwrap();
            ins.bind_int64(3, i * i - 500).unwrap();
            assert!(!ins.step().unwrap());
            ins.reset().unwrap();
        }
        drop(ins);
        db.exec("COMMIT").unwrap();
        // A second transaction that is rolled back (the journal is used).
        db.exec("BEGIN").unwrap();
        db.exec("DELETE FROM t WHERE id < 500").unwrap();
        db.exec("ROLLBACK").unwrap();
    }
    assert!(std::fs::metadata(&path).unwrap().len() > 4096);
    {
        let db = Db::open(p).expect("reopen");
        let s = db.prepare("SELECT count(*), sum(v) FROM t").unwrap();
        assert!(s.step().unwrap());
        assert_eq!(s.column_int64(0).unwrap(), 1000);
        let want: i64 = (0..1000i64).map(|i| i * i - 500).sum();
        assert_eq!(s.column_int64(1).unwrap(), want);
    }
    std::fs::remove_dir_all(&dir).unwrap();
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

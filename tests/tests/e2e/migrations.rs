//! `waybill migrate` on CockroachDB terms: no advisory lock (CockroachDB has none), and still
//! only one migrator at a time, so several processes started together all succeed and the
//! schema is applied once.

use std::collections::BTreeSet;
use std::process::Output;

use sqlx::{Connection, PgConnection};
use waybill_e2e::{assert_succeeded, TestEnv};

/// The write side's migration files, by version.
fn migration_versions() -> BTreeSet<i64> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../write-side/migrations");
    std::fs::read_dir(&dir)
        .expect("read write-side/migrations")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".sql")?.split('_').next()?.parse().ok()
        })
        .collect()
}

/// The versions a `waybill migrate` says it applied.
fn applied_by(output: &Output) -> Vec<i64> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|line| line.split_once("event store migrations: ").map(|(_, v)| v))
        .map(|list| {
            list.split(", ")
                .map(|v| v.trim().parse().expect("a version number"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn two_migrators_at_once_apply_a_fresh_schema_once_without_advisory_locks() {
    let env = TestEnv::new("migrate_race").await;
    // A database nobody created yet: both processes race to create and migrate it.
    let database = format!("{}_fresh", env.database);
    let url = format!("{}_fresh", env.database_url);
    let admin_url = url.replace(&format!("/{database}"), "/postgres");

    let fresh_url = [("DATABASE_URL", url.as_str())];
    let spawn = || env.run_migrate(&fresh_url);
    // Watches pg_locks from another session while the migrators run.
    let mut watcher = PgConnection::connect(&admin_url)
        .await
        .expect("connect to the postgres database");
    let migrators = async { tokio::join!(spawn(), spawn()) };
    tokio::pin!(migrators);
    let mut samples = 0u32;
    let mut advisory_seen = 0i64;
    let (first, second) = loop {
        tokio::select! {
            outputs = &mut migrators => break outputs,
            held = sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
                 WHERE l.locktype = 'advisory' AND d.datname = $1",
            )
            .bind(&database)
            .fetch_one(&mut watcher) => {
                advisory_seen = advisory_seen.max(held.expect("read pg_locks"));
                samples += 1;
            }
        }
    };
    for output in [&first, &second] {
        assert_succeeded(output, "waybill migrate");
    }
    assert!(samples > 5, "pg_locks was sampled only {samples} times");
    assert_eq!(advisory_seen, 0, "a migrator held an advisory lock");

    // Between them the two applied every migration exactly once.
    let mut applied = applied_by(&first);
    applied.extend(applied_by(&second));
    applied.sort_unstable();
    let expected: Vec<i64> = migration_versions().into_iter().collect();
    assert!(!expected.is_empty());
    assert_eq!(
        applied, expected,
        "each migration applied by exactly one process"
    );

    let mut fresh = PgConnection::connect(&url).await.expect("connect to it");
    let recorded: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&mut fresh)
            .await
            .expect("read _sqlx_migrations");
    assert_eq!(recorded, expected);
    let leases: i64 = sqlx::query_scalar("SELECT count(*) FROM waybill_migration_lease")
        .fetch_one(&mut fresh)
        .await
        .expect("read the lease table");
    assert_eq!(leases, 0, "the lease is released after migrating");
    let isolation: String = sqlx::query_scalar("SHOW default_transaction_isolation")
        .fetch_one(&mut fresh)
        .await
        .expect("read the default isolation");
    assert_eq!(isolation, "serializable");
    let _ = fresh.close().await;

    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(&mut watcher)
        .await;
}

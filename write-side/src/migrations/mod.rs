//! Applying the write side's schema without an advisory lock.
//!
//! sqlx's migrator serialises migrators with a Postgres advisory lock, which CockroachDB does not
//! implement. Here its locking is off and a [`lease::MigrationLease`] (a row claimed in a
//! SERIALIZABLE statement) makes sure only one process migrates at a time; a process that
//! waited for the lease then finds the work done and applies nothing. Each migration still runs
//! in a transaction of its own, so a migrator killed midway leaves whole migrations behind.

pub mod lease;

use std::future::Future;

use sqlx::PgPool;

use crate::event_store::retry;
use lease::{LeaseTiming, MigrationLease, SCHEMA_LEASE};

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("taking the migration lease: {0}")]
    Lease(#[source] sqlx::Error),
    #[error("the migration lease was lost while migrating; run `waybill migrate` again")]
    LeaseLost,
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("reading the applied migrations: {0}")]
    Applied(#[source] sqlx::Error),
}

/// The write side's migrations (the event store, idempotency records, channel orders, outbox),
/// with sqlx's advisory locking turned off: run them through [`run`] (or [`run_with`]), which
/// holds the lease instead.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_locking(false);
    migrator
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Versions this process applied (empty: the schema was already up to date).
    pub versions: Vec<i64>,
}

/// Applies every pending migration under the migration lease.
pub async fn run(pool: &PgPool) -> Result<Applied, MigrationError> {
    run_with(pool, LeaseTiming::default(), async { Ok(()) })
        .await
        .map(|(applied, ())| applied)
}

/// Applies the pending migrations, then runs `more` (e.g. another store's migrations), all
/// while holding the lease; gives up if the lease is lost on the way.
pub async fn run_with<T, E, F>(
    pool: &PgPool,
    timing: LeaseTiming,
    more: F,
) -> Result<(Applied, T), E>
where
    F: Future<Output = Result<T, E>>,
    E: From<MigrationError>,
{
    let lease = MigrationLease::acquire(pool, SCHEMA_LEASE, timing)
        .await
        .map_err(MigrationError::Lease)?;
    let work = async {
        let before = applied_versions(pool).await?;
        migrator().run(pool).await.map_err(MigrationError::from)?;
        let after = applied_versions(pool).await?;
        let versions = after.into_iter().filter(|v| !before.contains(v)).collect();
        let extra = more.await?;
        Ok::<_, E>((Applied { versions }, extra))
    };
    let outcome = tokio::select! {
        outcome = work => outcome,
        () = lease.lost() => Err(MigrationError::LeaseLost.into()),
    };
    // A failed release only delays the next migrator until the lease lapses.
    if let Err(e) = lease.release().await {
        tracing::warn!(error = %e, "could not release the migration lease; it lapses on its own");
    }
    outcome
}

/// Versions recorded in sqlx's `_sqlx_migrations` (none before the first run).
async fn applied_versions(pool: &PgPool) -> Result<Vec<i64>, MigrationError> {
    let read = retry::serializable(|| {
        sqlx::query_scalar::<_, i64>("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
    })
    .await;
    match read {
        Ok(versions) => Ok(versions),
        // 42P01: undefined table — nothing applied yet.
        Err(e) if retry::sqlstate(&e).as_deref() == Some("42P01") => Ok(Vec::new()),
        Err(e) => Err(MigrationError::Applied(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migrator_never_takes_an_advisory_lock() {
        assert!(!migrator().locking);
    }

    /// The project's own SQL (Rust sources, migrations, scripts) never asks for an advisory
    /// lock; the e2e test `two_migrators_at_once_…` watches `pg_locks` for what the
    /// dependencies do at run time.
    #[test]
    fn no_sql_of_ours_takes_an_advisory_lock() {
        let needle = ["pg_", "advisory"].concat();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut offenders = Vec::new();
        let mut scanned = 0;
        let mut dirs = vec![root];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if path.is_dir() {
                    if !name.starts_with('.') && name != "target" && name != "node_modules" {
                        dirs.push(path);
                    }
                } else if [".rs", ".sql", ".sh", ".yml", ".toml"]
                    .iter()
                    .any(|ext| name.ends_with(ext))
                {
                    scanned += 1;
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    if text.to_lowercase().contains(&needle) {
                        offenders.push(path.display().to_string());
                    }
                }
            }
        }
        assert!(scanned > 50, "only {scanned} files scanned: wrong root?");
        assert!(offenders.is_empty(), "advisory locks in {offenders:?}");
    }
}

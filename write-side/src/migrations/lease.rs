//! The migration lease: one row in `waybill_migration_lease` that says which process may
//! migrate, until when. It replaces the advisory lock sqlx's migrator would take (CockroachDB
//! has none): the row is claimed with one `INSERT … ON CONFLICT DO UPDATE … WHERE expired`, so
//! of several processes starting at once exactly one gets it; the holder renews it while it
//! migrates and deletes it when done. A holder killed with -9 stops renewing, and its lease
//! lapses after [`LeaseTiming::ttl`]: the next migrator takes over, and its migrations (each in
//! a transaction of its own) start from what the dead one committed.
//!
//! Times are the database's clock (`now()`), never the processes', so clock skew between
//! machines cannot let two holders overlap.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::event_store::retry;

/// The table is made here, not by a migration: it must exist before any migration runs.
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS waybill_migration_lease (\
     name TEXT PRIMARY KEY, holder UUID NOT NULL, expires_at TIMESTAMPTZ NOT NULL)";

/// Claims the lease when nobody holds it, it has lapsed, or this holder already has it (so a
/// claim whose commit was ambiguous can be repeated). Returns a row when the claim won.
const CLAIM: &str = "INSERT INTO waybill_migration_lease (name, holder, expires_at) \
     VALUES ($1, $2, now() + $3::float8 * interval '1 millisecond') \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
     WHERE waybill_migration_lease.expires_at < now() \
        OR waybill_migration_lease.holder = excluded.holder \
     RETURNING holder";

const RENEW: &str = "UPDATE waybill_migration_lease \
     SET expires_at = now() + $3::float8 * interval '1 millisecond' \
     WHERE name = $1 AND holder = $2";

const RELEASE: &str = "DELETE FROM waybill_migration_lease WHERE name = $1 AND holder = $2";

const HOLDER_OF: &str = "SELECT holder::text, expires_at::text FROM waybill_migration_lease \
     WHERE name = $1";

/// The one lease name of the write side's schema.
pub const SCHEMA_LEASE: &str = "schema";

/// How long a lease lasts and how often it is renewed and polled for.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTiming {
    /// A lease not renewed for this long may be taken by another process.
    pub ttl: Duration,
    /// How often the holder renews (well under `ttl`).
    pub renew_every: Duration,
    /// How often a waiting process tries to claim it.
    pub poll_every: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            renew_every: Duration::from_secs(5),
            poll_every: Duration::from_millis(200),
        }
    }
}

/// A held lease. Renewed in the background until [`MigrationLease::release`]; [`MigrationLease::lost`]
/// resolves if renewing failed until the lease could have lapsed.
pub struct MigrationLease {
    pool: PgPool,
    name: &'static str,
    holder: Uuid,
    lost: watch::Receiver<bool>,
    renewer: JoinHandle<()>,
}

impl MigrationLease {
    /// Waits until this process holds lease `name`.
    pub async fn acquire(
        pool: &PgPool,
        name: &'static str,
        timing: LeaseTiming,
    ) -> Result<Self, sqlx::Error> {
        create_table(pool).await?;
        let holder = Uuid::now_v7();
        let mut waited_since = tokio::time::Instant::now();
        loop {
            if claim(pool, name, holder, timing.ttl).await? {
                tracing::info!(lease = name, %holder, "migration lease taken");
                break;
            }
            if waited_since.elapsed() >= Duration::from_secs(10) {
                let held: Option<(String, String)> = sqlx::query_as(HOLDER_OF)
                    .bind(name)
                    .fetch_optional(pool)
                    .await?;
                tracing::info!(lease = name, held_by = ?held, "waiting for another process's migration");
                waited_since = tokio::time::Instant::now();
            }
            tokio::time::sleep(timing.poll_every).await;
        }
        let (lost_tx, lost) = watch::channel(false);
        let renewer = tokio::spawn(renew(pool.clone(), name, holder, timing, lost_tx));
        Ok(Self {
            pool: pool.clone(),
            name,
            holder,
            lost,
            renewer,
        })
    }

    /// Resolves when the lease can no longer be trusted (renewal failed for a whole `ttl`, or
    /// another holder took it). Pending forever while the lease is held.
    pub async fn lost(&self) {
        let mut lost = self.lost.clone();
        if lost.wait_for(|lost| *lost).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Stops renewing and deletes the row, so a waiting process goes ahead at once.
    pub async fn release(self) -> Result<(), sqlx::Error> {
        self.renewer.abort();
        retry::serializable_idempotent(|| {
            sqlx::query(RELEASE)
                .bind(self.name)
                .bind(self.holder)
                .execute(&self.pool)
        })
        .await?;
        tracing::info!(lease = self.name, holder = %self.holder, "migration lease released");
        Ok(())
    }
}

/// `CREATE TABLE IF NOT EXISTS` run by two sessions at once can still fail on Postgres: the
/// catalog's unique index on type names (23505), the table (42P07), or, on Postgres 15, the
/// table's row type found by the second session after its own existence check (42710, "type
/// … already exists"). The table exists then, so that is success.
async fn create_table(pool: &PgPool) -> Result<(), sqlx::Error> {
    match retry::serializable_idempotent(|| sqlx::query(CREATE_TABLE).execute(pool)).await {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                retry::sqlstate(&e).as_deref(),
                Some("23505" | "42P07" | "42710")
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// One turn of a periodic job that only one of several processes should run (the idempotency
/// sweep of every command API): true for the first caller after the last turn lapsed, which
/// then holds lease `name` for `ttl` without renewing it; false for everyone else meanwhile.
/// A process killed during its turn leaves the lease to lapse, and the next caller runs the job.
pub async fn claim_turn(pool: &PgPool, name: &str, ttl: Duration) -> Result<bool, sqlx::Error> {
    create_table(pool).await?;
    claim(pool, name, Uuid::now_v7(), ttl).await
}

async fn claim(
    pool: &PgPool,
    name: &str,
    holder: Uuid,
    ttl: Duration,
) -> Result<bool, sqlx::Error> {
    let won: Option<Uuid> = retry::serializable_idempotent(|| {
        sqlx::query_scalar(CLAIM)
            .bind(name)
            .bind(holder)
            .bind(ttl.as_millis() as f64)
            .fetch_optional(pool)
    })
    .await?;
    Ok(won == Some(holder))
}

async fn renew(
    pool: PgPool,
    name: &'static str,
    holder: Uuid,
    timing: LeaseTiming,
    lost: watch::Sender<bool>,
) {
    let mut renewed_at = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(timing.renew_every).await;
        let renewed = retry::serializable_idempotent(|| {
            sqlx::query(RENEW)
                .bind(name)
                .bind(holder)
                .bind(timing.ttl.as_millis() as f64)
                .execute(&pool)
        })
        .await;
        match renewed {
            Ok(done) if done.rows_affected() == 1 => renewed_at = tokio::time::Instant::now(),
            Ok(_) => {
                tracing::error!(lease = name, %holder, "migration lease taken by another process");
                let _ = lost.send(true);
                return;
            }
            Err(e) if renewed_at.elapsed() + timing.renew_every >= timing.ttl => {
                tracing::error!(lease = name, %holder, error = %e, "could not renew the migration lease");
                let _ = lost.send(true);
                return;
            }
            Err(e) => {
                tracing::warn!(lease = name, error = %e, "renewing the migration lease failed; trying again")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;

    fn quick() -> LeaseTiming {
        LeaseTiming {
            ttl: Duration::from_millis(600),
            renew_every: Duration::from_millis(100),
            poll_every: Duration::from_millis(20),
        }
    }

    #[tokio::test]
    async fn a_second_claimant_waits_until_the_first_releases() {
        let db = TestDatabase::create("lease").await;
        let first = MigrationLease::acquire(&db.pool, "t", quick())
            .await
            .expect("first claim");
        let pool = db.pool.clone();
        let second =
            tokio::spawn(async move { MigrationLease::acquire(&pool, "t", quick()).await });
        // Held and renewed past several TTLs: the second one must still be waiting.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(!second.is_finished(), "second claim got a lease still held");
        first.release().await.expect("release");
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("second claim after release")
            .expect("task")
            .expect("claim");
        second.release().await.expect("release");
        db.drop().await;
    }

    #[tokio::test]
    async fn a_lease_nobody_renews_lapses_and_is_taken_over() {
        let db = TestDatabase::create("lease").await;
        create_table(&db.pool).await.expect("table");
        let dead = Uuid::now_v7();
        assert!(claim(&db.pool, "t", dead, Duration::from_millis(300))
            .await
            .expect("claim"));
        assert!(
            !claim(&db.pool, "t", Uuid::now_v7(), Duration::from_secs(1))
                .await
                .expect("claim")
        );
        // Claiming again as the same holder is allowed (an ambiguous first claim retried).
        assert!(claim(&db.pool, "t", dead, Duration::from_millis(300))
            .await
            .expect("claim"));
        let next = tokio::time::timeout(
            Duration::from_secs(5),
            MigrationLease::acquire(&db.pool, "t", quick()),
        )
        .await
        .expect("taken over after the lapse")
        .expect("claim");
        assert_ne!(next.holder, dead);
        next.release().await.expect("release");
        db.drop().await;
    }

    #[tokio::test]
    async fn a_turn_goes_to_one_caller_until_it_lapses() {
        let db = TestDatabase::create("lease").await;
        let ttl = Duration::from_millis(400);
        let (a, b) = tokio::join!(
            claim_turn(&db.pool, "sweep", ttl),
            claim_turn(&db.pool, "sweep", ttl)
        );
        assert_eq!(
            [a.expect("claim"), b.expect("claim")]
                .iter()
                .filter(|won| **won)
                .count(),
            1,
            "exactly one of two callers at once gets the turn"
        );
        assert!(!claim_turn(&db.pool, "sweep", ttl).await.expect("claim"));
        tokio::time::sleep(ttl + Duration::from_millis(200)).await;
        assert!(claim_turn(&db.pool, "sweep", ttl).await.expect("claim"));
        db.drop().await;
    }

    #[tokio::test]
    async fn a_holder_whose_lease_was_taken_is_told() {
        let db = TestDatabase::create("lease").await;
        let lease = MigrationLease::acquire(&db.pool, "t", quick())
            .await
            .expect("claim");
        sqlx::query("UPDATE waybill_migration_lease SET holder = $1")
            .bind(Uuid::now_v7())
            .execute(&db.pool)
            .await
            .expect("steal");
        tokio::time::timeout(Duration::from_secs(5), lease.lost())
            .await
            .expect("the holder learns it lost the lease");
        db.drop().await;
    }
}

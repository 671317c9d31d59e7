//! `waybill migrate`: creates the database if it does not exist (with SERIALIZABLE as its
//! default isolation, as production runs) and applies the write side's migrations, then the
//! warehouse's, under the migration lease (no advisory lock: see
//! `waybill_write_side::migrations`), so several processes may run it at once.

use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

/// Creates the database named in `database_url` if it is missing.
pub async fn ensure_database(database_url: &str) -> anyhow::Result<()> {
    let options: PgConnectOptions = database_url
        .parse()
        .context("DATABASE_URL is not a Postgres URL")?;
    let name = options
        .get_database()
        .map(str::to_owned)
        .context("DATABASE_URL names no database")?;
    if options.connect().await.is_ok() {
        return Ok(());
    }
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .context("connecting to Postgres (is it running? infra/scripts)")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = quote_ident(&name);
        match sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut admin)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created the database"),
            // Another process created it in the meantime (42P04, or 23505 when both inserted
            // into the catalog at the same moment).
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(e) => return Err(e).with_context(|| format!("creating database {name}")),
        }
        let alter =
            format!("ALTER DATABASE {quoted} SET default_transaction_isolation = 'serializable'");
        // Two processes creating the database at once both set this; Postgres may refuse the
        // second with 23505 on its settings catalog while the first commits. Setting it again
        // is harmless, so try again.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match sqlx::query(&alter).execute(&mut admin).await {
                Ok(_) => break,
                Err(sqlx::Error::Database(e))
                    if attempt < 5 && matches!(e.code().as_deref(), Some("23505" | "40001")) =>
                {
                    tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("making SERIALIZABLE the default of {name}"))
                }
            }
        }
    }
    let _ = admin.close().await;
    Ok(())
}

/// Connections idle at least this long are pinged before use.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// A pool over the event store database. Connections are not pinged on every checkout (sqlx's
/// default): that doubled the round trips of every short query. Only a connection that sat
/// idle for [`IDLE_CHECK`] is pinged, and dropped if the server closed it (a restart,
/// `pg_terminate_backend`), so a dead pooled connection never reaches a request; one that dies
/// between uses fails its statement, which `retry::serializable` repeats on another connection.
pub async fn connect(database_url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_CHECK {
                    // An error drops the connection and the pool hands out another.
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(session_options(database_url)?)
        .await
        .context("connecting to the event store database")
}

/// How each session of the event store pool starts: SERIALIZABLE by default (as the database
/// Waybill creates is set up too), so a statement run outside an explicit transaction (an
/// append of one statement) is a SERIALIZABLE transaction of its own on any database.
fn session_options(database_url: &str) -> anyhow::Result<PgConnectOptions> {
    let options: PgConnectOptions = database_url
        .parse()
        .context("parsing the event store database URL")?;
    Ok(options.options([("default_transaction_isolation", "serializable")]))
}

/// Ensures the database and applies every migration.
pub async fn migrate(database_url: &str) -> anyhow::Result<PgPool> {
    ensure_database(database_url).await?;
    let pool = connect(database_url, 4).await?;
    let applied = waybill_write_side::migrations::run(&pool)
        .await
        .context("applying migrations")?;
    tracing::info!(applied = ?applied.versions, "database migrated");
    Ok(pool)
}

/// `waybill migrate`: the event store's migrations, then the warehouse's, both under the one
/// migration lease. Prints what this process applied (another one may have done the work).
pub async fn migrate_all(
    database_url: &str,
    warehouse: &waybill_projectors::WarehouseConfig,
) -> anyhow::Result<()> {
    ensure_database(database_url).await?;
    let pool = connect(database_url, 4).await?;
    let (applied, ()) = waybill_write_side::migrations::run_with(
        &pool,
        waybill_write_side::migrations::lease::LeaseTiming::default(),
        async { migrate_warehouse(warehouse).await },
    )
    .await
    .context("applying migrations")?;
    if applied.versions.is_empty() {
        println!("event store schema already up to date");
    } else {
        let versions: Vec<String> = applied.versions.iter().map(i64::to_string).collect();
        println!(
            "applied {} event store migrations: {}",
            versions.len(),
            versions.join(", ")
        );
    }
    pool.close().await;
    Ok(())
}

/// Creates the ClickHouse database if missing and applies its migrations.
pub async fn migrate_warehouse(
    warehouse: &waybill_projectors::WarehouseConfig,
) -> anyhow::Result<()> {
    waybill_projectors::warehouse::migrate(warehouse)
        .await
        .with_context(|| {
            format!(
                "migrating ClickHouse database {} at {} (is it running? infra/scripts/ensure-clickhouse.sh)",
                warehouse.database,
                warehouse.urls.join(", ")
            )
        })?;
    tracing::info!(database = %warehouse.database, "warehouse migrated");
    Ok(())
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A pool's sessions are SERIALIZABLE even on a database whose own default is not (the
    /// server's `postgres` database keeps Postgres's READ COMMITTED): an append of one statement
    /// outside a transaction relies on it.
    #[tokio::test]
    async fn pool_sessions_are_serializable_whatever_the_database_default() {
        let server = std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/waybill".to_owned());
        let (server, _) = server.split_once('?').unwrap_or((&server, ""));
        let (server, _) = server.rsplit_once('/').unwrap();
        let pool = connect(&format!("{server}/postgres"), 1).await.unwrap();
        let database: String = sqlx::query_scalar(
            "SELECT coalesce((SELECT unnest(setconfig) FROM pg_db_role_setting s \
             JOIN pg_database d ON d.oid = s.setdatabase AND s.setrole = 0 \
             WHERE d.datname = 'postgres' LIMIT 1), 'none')",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(!database.contains("serializable"), "{database}");
        let isolation: String = sqlx::query_scalar("SHOW transaction_isolation")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(isolation, "serializable");
        pool.close().await;
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("waybill"), "\"waybill\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}

//! Applies the warehouse migrations (`projectors/clickhouse/migrations/*.sql`, compiled in) in
//! name order, each once: applied names are recorded in `schema_migrations`. Used by
//! `waybill migrate`, `serve all` and the test harnesses.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::{WarehouseConfig, WarehouseError};

/// `(name, SQL)` in the order they apply.
pub const MIGRATIONS: &[(&str, &str)] = &[(
    "0001_analytics",
    include_str!("../../clickhouse/migrations/0001_analytics.sql"),
)];

#[derive(Debug, Row, Serialize, Deserialize)]
struct Applied {
    name: String,
}

/// Creates the database if missing and applies the migrations not applied yet. Returns the names
/// it applied.
pub async fn migrate(config: &WarehouseConfig) -> Result<Vec<&'static str>, WarehouseError> {
    let database = &config.database;
    if database.is_empty()
        || !database
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(WarehouseError::BadDatabaseName(database.clone()));
    }
    config
        .server_client()
        .query(&format!("CREATE DATABASE IF NOT EXISTS {database}"))
        .execute()
        .await
        .map_err(WarehouseError::clickhouse("creating the database"))?;
    let client = config.client();
    client
        .query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name String, applied_at DateTime('UTC')) \
             ENGINE = ReplacingMergeTree ORDER BY name",
        )
        .execute()
        .await
        .map_err(WarehouseError::clickhouse("creating schema_migrations"))?;
    let applied: Vec<String> = client
        .query("SELECT DISTINCT name FROM schema_migrations")
        .fetch_all::<Applied>()
        .await
        .map_err(WarehouseError::clickhouse("reading schema_migrations"))?
        .into_iter()
        .map(|a| a.name)
        .collect();

    let mut done = Vec::new();
    for (name, sql) in MIGRATIONS {
        if applied.iter().any(|a| a == name) {
            continue;
        }
        for (index, statement) in statements(sql).enumerate() {
            client.query(&statement).execute().await.map_err(|source| {
                WarehouseError::Migration {
                    name,
                    index,
                    source,
                }
            })?;
        }
        client
            .query("INSERT INTO schema_migrations (name, applied_at) SELECT ?, now()")
            .bind(*name)
            .execute()
            .await
            .map_err(WarehouseError::clickhouse("recording a migration"))?;
        tracing::info!(migration = name, database = %database, "warehouse migration applied");
        done.push(*name);
    }
    Ok(done)
}

/// The statements of a migration file: `--` comment lines dropped, split on `;`.
fn statements(sql: &str) -> impl Iterator<Item = String> + '_ {
    let code: String = sql
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    code.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_statement_is_one_create_table() {
        for (name, sql) in MIGRATIONS {
            let all: Vec<String> = statements(sql).collect();
            assert!(!all.is_empty(), "{name} has no statements");
            for statement in all {
                assert!(
                    statement.starts_with("CREATE TABLE IF NOT EXISTS"),
                    "{name}: {statement}"
                );
                for banned in ["DateTime64", "Bool", "OR REPLACE", "LowCardinality", "{"] {
                    assert!(!statement.contains(banned), "{name} uses {banned}");
                }
            }
        }
    }
}

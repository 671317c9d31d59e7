//! Applies the warehouse migrations (`projectors/clickhouse/migrations/*.sql`, compiled in) in
//! name order, each once: applied names are recorded in `schema_migrations`. Used by
//! `waybill migrate`, `serve all` and the test harnesses.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::{is_identifier, WarehouseConfig, WarehouseError};

/// `(name, SQL)` in the order they apply.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_analytics",
        include_str!("../../clickhouse/migrations/0001_analytics.sql"),
    ),
    (
        "0002_view_markers",
        include_str!("../../clickhouse/migrations/0002_view_markers.sql"),
    ),
];

#[derive(Debug, Row, Serialize, Deserialize)]
struct Applied {
    name: String,
}

/// Creates the database if missing and applies the migrations not applied yet. Returns the names
/// it applied (on a cluster: those any replica applied).
///
/// On a cluster ([`WarehouseConfig::cluster`]) it runs on every replica in turn, each of which
/// must be up: each table becomes a `ReplicatedReplacingMergeTree` local table `<name>_local`
/// (ZooKeeper path `/clickhouse/tables/{shard}/<database>/<name>`, replica `{replica}`: the
/// servers' macros) and a `Distributed` table `<name>` over it, sharded by its sorting key so
/// that the versions of one row meet in one shard (where `FINAL` and merges replace them).
/// Everything else reads and writes `<name>` as on a single server. `schema_migrations` stays a
/// table of each replica: it records what that replica has applied.
pub async fn migrate(config: &WarehouseConfig) -> Result<Vec<&'static str>, WarehouseError> {
    if !is_identifier(&config.database) {
        return Err(WarehouseError::BadDatabaseName(config.database.clone()));
    }
    let Some(cluster) = &config.cluster else {
        return migrate_server(config, None).await;
    };
    if !is_identifier(cluster) {
        return Err(WarehouseError::BadClusterName(cluster.clone()));
    }
    let mut applied = Vec::new();
    for index in 0..config.urls.len() {
        for name in migrate_server(&config.replica(index), Some(cluster)).await? {
            if !applied.contains(&name) {
                applied.push(name);
            }
        }
    }
    Ok(applied)
}

/// Drops the database made by [`migrate`]: on a cluster, on every replica (which also removes
/// each replica's tables from ZooKeeper).
pub async fn drop_database(config: &WarehouseConfig) -> Result<(), WarehouseError> {
    if !is_identifier(&config.database) {
        return Err(WarehouseError::BadDatabaseName(config.database.clone()));
    }
    for server in servers(config) {
        server
            .server_client()
            .query(&format!("DROP DATABASE IF EXISTS {}", config.database))
            .execute()
            .await
            .map_err(WarehouseError::clickhouse("dropping the database"))?;
    }
    Ok(())
}

/// Makes every table of the migrations exist again, even where `schema_migrations` says
/// they were made (tables dropped by hand, a database dropped under a running process): runs
/// [`migrate`], then every migration statement (each is `CREATE TABLE IF NOT EXISTS`) on every
/// server. Used by the analytics view's self-healing before it fills its store again.
pub async fn restore_schema(config: &WarehouseConfig) -> Result<(), WarehouseError> {
    migrate(config).await?;
    for server in servers(config) {
        let client = server.client();
        for (name, sql) in MIGRATIONS {
            let statements: Vec<String> = match &config.cluster {
                None => statements(sql).collect(),
                Some(cluster) => statements(sql)
                    .flat_map(|s| cluster_statements(&s, cluster, &config.database))
                    .collect(),
            };
            for (index, statement) in statements.iter().enumerate() {
                client.query(statement).execute().await.map_err(|source| {
                    WarehouseError::Migration {
                        name,
                        index,
                        source,
                    }
                })?;
            }
        }
    }
    Ok(())
}

/// Each server DDL must run on: every replica of a cluster, else the one server.
pub(crate) fn servers(config: &WarehouseConfig) -> Vec<WarehouseConfig> {
    match config.cluster {
        Some(_) => (0..config.urls.len()).map(|i| config.replica(i)).collect(),
        None => vec![config.clone()],
    }
}

/// Migrates one server: as a single node (`cluster` `None`) or as a replica of `cluster`.
async fn migrate_server(
    config: &WarehouseConfig,
    cluster: Option<&str>,
) -> Result<Vec<&'static str>, WarehouseError> {
    let database = &config.database;
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
        let statements: Vec<String> = match cluster {
            None => statements(sql).collect(),
            Some(cluster) => statements(sql)
                .flat_map(|s| cluster_statements(&s, cluster, database))
                .collect(),
        };
        for (index, statement) in statements.iter().enumerate() {
            client.query(statement).execute().await.map_err(|source| {
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
        tracing::info!(migration = name, database = %database, cluster, "warehouse migration applied");
        done.push(*name);
    }
    Ok(done)
}

/// One `CREATE TABLE IF NOT EXISTS <name> (…) ENGINE = ReplacingMergeTree[(<version>)] …
/// ORDER BY <key>` statement as the two statements of a cluster: the replicated local table
/// `<name>_local` and the `Distributed` table `<name>` over it, sharded by `cityHash64(<key>)`.
/// (Every migration statement has that form: a unit test holds them to it.)
pub fn cluster_statements(statement: &str, cluster: &str, database: &str) -> Vec<String> {
    const CREATE: &str = "CREATE TABLE IF NOT EXISTS ";
    const ENGINE: &str = "ENGINE = ReplacingMergeTree";
    let Some(rest) = statement.strip_prefix(CREATE) else {
        return vec![statement.to_owned()];
    };
    let name_end = rest
        .find(|c: char| c.is_whitespace() || c == '(')
        .unwrap_or(rest.len());
    let (name, body) = rest.split_at(name_end);
    let Some(engine_at) = body.find(ENGINE) else {
        return vec![statement.to_owned()];
    };
    let after_engine = &body[engine_at + ENGINE.len()..];
    let (version, tail) = match after_engine.strip_prefix('(') {
        Some(args) => match args.find(')') {
            Some(close) => (Some(args[..close].trim()), &args[close + 1..]),
            None => (None, after_engine),
        },
        None => (None, after_engine),
    };
    let path = format!("'/clickhouse/tables/{{shard}}/{database}/{name}'");
    let engine = match version {
        Some(version) if !version.is_empty() => {
            format!("ENGINE = ReplicatedReplacingMergeTree({path}, '{{replica}}', {version})")
        }
        _ => format!("ENGINE = ReplicatedReplacingMergeTree({path}, '{{replica}}')"),
    };
    let key = tail
        .rsplit_once("ORDER BY")
        .map(|(_, key)| {
            key.trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .trim()
        })
        .unwrap_or("rand()");
    let local = format!("{CREATE}{name}_local{}{engine}{tail}", &body[..engine_at]);
    let distributed = format!(
        "{CREATE}{name} AS {name}_local \
         ENGINE = Distributed({cluster}, {database}, {name}_local, cityHash64({key}))"
    );
    vec![local, distributed]
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
                // The form cluster_statements rewrites: one ReplacingMergeTree, one ORDER BY.
                assert_eq!(
                    statement.matches("ENGINE = ReplacingMergeTree").count(),
                    1,
                    "{name}: {statement}"
                );
                assert_eq!(
                    statement.matches("ORDER BY").count(),
                    1,
                    "{name}: {statement}"
                );
                let clustered = cluster_statements(&statement, "wb", "db");
                assert_eq!(clustered.len(), 2, "{name}: {statement}");
                assert!(
                    clustered[0].contains(
                        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/"
                    ),
                    "{}",
                    clustered[0]
                );
                assert!(
                    clustered[1].contains("ENGINE = Distributed(wb, db, "),
                    "{}",
                    clustered[1]
                );
            }
        }
    }

    #[test]
    fn a_table_becomes_a_replicated_local_table_and_a_distributed_one() {
        let statement = "CREATE TABLE IF NOT EXISTS ledger_entries (\n    entry_id String,\n    day Date,\n    version UInt64\n) ENGINE = ReplacingMergeTree(version)\nPARTITION BY toYYYYMM(day)\nORDER BY entry_id";
        let clustered = cluster_statements(statement, "waybill", "wh");
        assert_eq!(
            clustered,
            vec![
                "CREATE TABLE IF NOT EXISTS ledger_entries_local (\n    entry_id String,\n    day Date,\n    version UInt64\n) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/wh/ledger_entries', '{replica}', version)\nPARTITION BY toYYYYMM(day)\nORDER BY entry_id".to_owned(),
                "CREATE TABLE IF NOT EXISTS ledger_entries AS ledger_entries_local ENGINE = Distributed(waybill, wh, ledger_entries_local, cityHash64(entry_id))".to_owned(),
            ]
        );
    }

    #[test]
    fn a_compound_sorting_key_shards_by_all_its_columns() {
        let clustered = cluster_statements(
            "CREATE TABLE IF NOT EXISTS line_facts (order_id String, line_no UInt32, version UInt64) ENGINE = ReplacingMergeTree(version)\nORDER BY (order_id, line_no)",
            "c",
            "d",
        );
        assert!(
            clustered[1].ends_with("cityHash64(order_id, line_no))"),
            "{}",
            clustered[1]
        );
    }
}

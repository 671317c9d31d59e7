//! Generations of a view's warehouse tables, for a blue/green rebuild while the view serves.
//!
//! [`create`] makes a new database beside the live one with the same schema (the green
//! generation: nobody reads it, the rebuild fills it). [`switch`] then moves the view's tables
//! of the green database in place of the live ones and the live ones aside, **one table per
//! statement** (`RENAME TABLE live.t TO retired.t, green.t TO live.t`) on each server.
//! Readers and the live projector keep using the live database's names and land on the new
//! tables from then on. Tables the rebuild does not own (the reconciliation results, the
//! migrations record, the view markers) stay where they are.
//!
//! Why not every table in one statement (which would switch them all at one instant): on
//! ClickHouse 18.16 a `RENAME TABLE` of several live tables locks them one after another, and
//! a finance query reading several of them takes its read locks one after another too; each
//! waited for a lock the other held, for good (seen in a test run: the RENAME and a summary
//! query stuck for over half an hour, then every new query refused with "Too many
//! simultaneous queries"). A statement that names one live table cannot be part of such a
//! cycle. The price: for the moments between two statements, a query may read some tables of
//! the new generation and others of the old one, each whole (the old one is what the live
//! projector kept; the new one was caught up to the log before the switch).
//!
//! On a cluster ([`WarehouseConfig::cluster`]) the renamed tables are each replica's
//! replicated `<t>_local` tables; the live `Distributed` tables name their local tables by
//! name, so they read the new ones after the rename. The green local tables keep their own
//! ZooKeeper path (`/clickhouse/tables/{shard}/<green database>/<t>`), so the old and new
//! generations never share replication state. The statement runs replica by replica: for the
//! moment between two replicas a query may read the old generation on one and the new one on
//! the other (both whole).

use clickhouse::Row;
use serde::Deserialize;

use super::migrate::servers;
use super::{is_identifier, migrate, WarehouseConfig, WarehouseError};
use crate::views::analytics::string_list;

/// Makes (and migrates) the database `<live database>_<label>` on the live servers and returns
/// its configuration.
pub async fn create(
    live: &WarehouseConfig,
    label: &str,
) -> Result<WarehouseConfig, WarehouseError> {
    let green = live.with_database(format!("{}_{label}", live.database));
    if !is_identifier(&green.database) {
        return Err(WarehouseError::BadDatabaseName(green.database));
    }
    migrate(&green).await?;
    Ok(green)
}

/// The name of table `table` on each server of `config`: `<table>_local` on a cluster.
fn local_name(config: &WarehouseConfig, table: &str) -> String {
    match config.cluster {
        Some(_) => format!("{table}_local"),
        None => table.to_owned(),
    }
}

/// Moves `tables` of `live` into the database `retired` (made if missing) and those of `green`
/// into `live`, one statement per table on each server (see the module doc). The caller drops
/// `green` and `retired` afterwards ([`super::drop_database`]).
pub async fn switch(
    live: &WarehouseConfig,
    green: &WarehouseConfig,
    retired: &str,
    tables: &[&str],
) -> Result<(), WarehouseError> {
    for name in [live.database.as_str(), green.database.as_str(), retired] {
        if !is_identifier(name) {
            return Err(WarehouseError::BadDatabaseName(name.to_owned()));
        }
    }
    let statements: Vec<String> = tables
        .iter()
        .map(|table| local_name(live, table))
        .map(|t| {
            format!(
                "RENAME TABLE {live}.{t} TO {retired}.{t}, {green}.{t} TO {live}.{t}",
                live = live.database,
                green = green.database
            )
        })
        .collect();
    for server in servers(live) {
        let client = server.server_client();
        client
            .query(&format!("CREATE DATABASE IF NOT EXISTS {retired}"))
            .execute()
            .await
            .map_err(WarehouseError::clickhouse(
                "creating the retired generation's database",
            ))?;
        for statement in &statements {
            client
                .query(statement)
                .execute()
                .await
                .map_err(WarehouseError::clickhouse("switching table generations"))?;
        }
    }
    Ok(())
}

#[derive(Debug, Row, Deserialize)]
struct TableName {
    name: String,
}

/// Which of `tables` the database of `config` lacks, on the server it connects to.
pub async fn missing_tables(
    config: &WarehouseConfig,
    tables: &[&str],
) -> Result<Vec<String>, WarehouseError> {
    let names: Vec<String> = tables.iter().map(|t| (*t).to_owned()).collect();
    let present: Vec<String> = config
        .server_client()
        .query(&format!(
            "SELECT name FROM system.tables WHERE database = {} AND name IN ({})",
            string_list(std::slice::from_ref(&config.database)),
            string_list(&names)
        ))
        .fetch_all::<TableName>()
        .await
        .map_err(WarehouseError::clickhouse("listing tables"))?
        .into_iter()
        .map(|t| t.name)
        .collect();
    Ok(names
        .into_iter()
        .filter(|name| !present.contains(name))
        .collect())
}

/// Drops `tables` of `config`'s database where they exist, on every server.
pub async fn drop_tables(config: &WarehouseConfig, tables: &[&str]) -> Result<(), WarehouseError> {
    if !is_identifier(&config.database) {
        return Err(WarehouseError::BadDatabaseName(config.database.clone()));
    }
    for server in servers(config) {
        let client = server.server_client();
        for table in tables {
            let mut names = vec![(*table).to_owned()];
            if config.cluster.is_some() {
                names.push(local_name(config, table));
            }
            for name in names {
                client
                    .query(&format!("DROP TABLE IF EXISTS {}.{name}", config.database))
                    .execute()
                    .await
                    .map_err(WarehouseError::clickhouse("dropping a table"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{drop_warehouse, fresh_warehouse};
    use crate::warehouse::drop_database;

    #[derive(Debug, Row, serde::Serialize, Deserialize, PartialEq)]
    struct Position {
        stream_id: String,
        version: u64,
    }

    async fn positions(config: &WarehouseConfig) -> Vec<Position> {
        config
            .client()
            .query("SELECT ?fields FROM stream_positions FINAL ORDER BY stream_id")
            .fetch_all()
            .await
            .expect("read positions")
    }

    /// The green generation's rows replace the live ones under the live names; tables the
    /// switch does not name keep their rows; the old rows are in the retired database.
    #[tokio::test]
    async fn a_switch_puts_the_green_tables_under_the_live_names_and_leaves_the_others() {
        let live = fresh_warehouse().await;
        let write = |config: WarehouseConfig, id: &'static str, version: u64| async move {
            crate::warehouse::rows::insert_rows(
                &config.client(),
                "stream_positions",
                &[crate::warehouse::rows::StreamPositionRow {
                    stream_id: id.to_owned(),
                    version,
                }],
            )
            .await
            .expect("insert");
        };
        write(live.clone(), "payout-old", 1).await;
        live.client()
            .query("INSERT INTO payouts (payout_id, currency, amount, paid_on, transaction_count, version) VALUES ('po_live', 'EUR', 5, today(), 1, 1)")
            .execute()
            .await
            .expect("insert payout");
        let green = create(&live, "green_test").await.expect("green");
        write(green.clone(), "payout-new", 2).await;

        let retired = format!("{}_retired", live.database);
        switch(&live, &green, &retired, &["stream_positions"])
            .await
            .expect("switch");
        assert_eq!(
            positions(&live).await,
            vec![Position {
                stream_id: "payout-new".into(),
                version: 2
            }]
        );
        let payouts: u64 = live
            .client()
            .query("SELECT count() FROM payouts")
            .fetch_one()
            .await
            .expect("count");
        assert_eq!(payouts, 1, "a table not switched keeps its rows");
        let old = live.with_database(retired.clone());
        assert_eq!(positions(&old).await[0].stream_id, "payout-old");
        assert_eq!(
            missing_tables(&green, &["stream_positions"])
                .await
                .expect("list"),
            vec!["stream_positions".to_owned()]
        );
        drop_database(&green).await.expect("drop green");
        drop_database(&old).await.expect("drop retired");
        drop_warehouse(&live).await;
    }

    #[tokio::test]
    async fn dropped_tables_are_missing_and_the_schema_comes_back() {
        let live = fresh_warehouse().await;
        assert!(missing_tables(&live, &["order_facts", "payouts"])
            .await
            .expect("list")
            .is_empty());
        drop_tables(&live, &["payouts"]).await.expect("drop");
        assert_eq!(
            missing_tables(&live, &["order_facts", "payouts"])
                .await
                .expect("list"),
            vec!["payouts".to_owned()]
        );
        crate::warehouse::restore_schema(&live)
            .await
            .expect("restore");
        assert!(missing_tables(&live, &["order_facts", "payouts"])
            .await
            .expect("list")
            .is_empty());
        drop_warehouse(&live).await;
    }
}

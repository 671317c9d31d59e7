//! The ClickHouse analytics warehouse: connection settings, the schema migrations in
//! `projectors/clickhouse/migrations/`, and the row types of its tables ([`rows`]). The analytics
//! view ([`crate::views::analytics`]) and the reconciliation runner ([`crate::reconciliation`])
//! write through it; the finance API reads the same tables.
//!
//! The `clickhouse` crate runs with `.with_validation(false)` because Debian's ClickHouse 18.16
//! knows neither `RowBinaryWithNamesAndTypes` nor the settings validation needs. A row struct
//! that does not match its table then reads wrong values without an error, so every row type has
//! a write-and-read-back test with exact values ([`rows`]' tests).

pub mod finance;
mod migrate;
pub mod rows;

pub use migrate::{migrate, MIGRATIONS};

use clickhouse::Client;

/// Where the warehouse lives.
#[derive(Debug, Clone)]
pub struct WarehouseConfig {
    /// HTTP URL of the server, e.g. `http://127.0.0.1:8124`.
    pub url: String,
    /// Database holding Waybill's tables (created by [`migrate`]).
    pub database: String,
    /// User and password, when the server wants them (the Debian 18.16 server here does not;
    /// a current ClickHouse image does for network access).
    pub credentials: Option<(String, String)>,
}

impl WarehouseConfig {
    pub fn new(url: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            database: database.into(),
            credentials: None,
        }
    }

    /// The same warehouse, logging in as `user` with `password`.
    pub fn with_credentials(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// A client bound to the database (which must exist: run [`migrate`] first).
    pub fn client(&self) -> Client {
        self.server_client().with_database(&self.database)
    }

    /// A client not bound to any database (to create or drop one). Logs in with
    /// [`WarehouseConfig::credentials`] when they are set.
    pub fn server_client(&self) -> Client {
        let client = Client::default().with_url(&self.url).with_validation(false);
        match &self.credentials {
            Some((user, password)) => client.with_user(user).with_password(password),
            None => client,
        }
    }
}

/// A warehouse read or write that failed.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("ClickHouse {what}: {source}")]
    ClickHouse {
        what: &'static str,
        source: clickhouse::error::Error,
    },
    #[error("migration {name} statement {index} failed: {source}")]
    Migration {
        name: &'static str,
        index: usize,
        source: clickhouse::error::Error,
    },
    #[error("database name {0:?} is not a plain identifier")]
    BadDatabaseName(String),
}

impl WarehouseError {
    /// Wraps a driver error with what was being done.
    pub fn clickhouse(what: &'static str) -> impl FnOnce(clickhouse::error::Error) -> Self {
        move |source| WarehouseError::ClickHouse { what, source }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{drop_warehouse, fresh_warehouse};

    /// The configured user and password reach the server: the right ones read, a wrong
    /// password is refused (so they are sent, not dropped).
    #[tokio::test]
    async fn credentials_are_sent_to_the_server() {
        let warehouse = fresh_warehouse().await;
        let count = |config: super::WarehouseConfig| async move {
            config
                .client()
                .query("SELECT count() FROM schema_migrations")
                .fetch_one::<u64>()
                .await
        };
        let right = warehouse.clone().with_credentials("default", "");
        assert!(count(right).await.is_ok());
        let wrong = warehouse
            .clone()
            .with_credentials("default", "not-the-password");
        let refused = count(wrong).await.expect_err("a wrong password is refused");
        assert!(
            refused.to_string().to_lowercase().contains("password")
                || refused.to_string().contains("516"),
            "{refused}"
        );
        drop_warehouse(&warehouse).await;
    }
}

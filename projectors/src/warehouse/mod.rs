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
pub mod generation;
mod migrate;
pub mod replicas;
pub mod rows;

pub use migrate::{cluster_statements, drop_database, migrate, restore_schema, MIGRATIONS};

use std::sync::{Arc, OnceLock};

use clickhouse::Client;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;

use replicas::{FailoverConnector, Replicas, TlsTrust};

/// Where the warehouse lives.
#[derive(Debug, Clone)]
pub struct WarehouseConfig {
    /// HTTP(S) base URLs of the server, or of every replica of a cluster in the order they are
    /// preferred, e.g. `http://127.0.0.1:8124` (see [`replicas`] for the failover).
    pub urls: Vec<String>,
    /// Database holding Waybill's tables (created by [`migrate`]).
    pub database: String,
    /// User and password, when the server wants them (the Debian 18.16 server here does not;
    /// a current ClickHouse image does for network access). Sent with every request
    /// (`X-ClickHouse-User` / `X-ClickHouse-Key`).
    pub credentials: Option<(String, String)>,
    /// The ClickHouse cluster (`remote_servers` name) the replicas form. Set, [`migrate`]
    /// creates replicated local tables and `Distributed` tables over them on every replica;
    /// unset, plain tables on one server.
    pub cluster: Option<String>,
    /// The CA that signed the servers' certificates, for `https` URLs.
    pub tls: Option<TlsTrust>,
    /// The replica list every client of this configuration shares (so a failover is sticky
    /// across them), parsed on first use.
    replicas: Arc<OnceLock<Result<Arc<Replicas>, String>>>,
}

impl WarehouseConfig {
    /// `url` is one URL or a comma-separated list of replica URLs.
    pub fn new(url: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            urls: split_urls(&url.into()),
            database: database.into(),
            credentials: None,
            cluster: None,
            tls: None,
            replicas: Arc::new(OnceLock::new()),
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

    /// The same servers as the replicas of `cluster`.
    pub fn with_cluster(mut self, cluster: impl Into<String>) -> Self {
        self.cluster = Some(cluster.into());
        self
    }

    /// The same servers over TLS, trusting the CA certificates in `ca_file` (PEM).
    pub fn with_ca_file(mut self, ca_file: impl Into<std::path::PathBuf>) -> Self {
        self.tls = Some(TlsTrust::ca_file(ca_file));
        self.replicas = Arc::new(OnceLock::new());
        self
    }

    /// The same servers and settings with another database.
    pub fn with_database(&self, database: impl Into<String>) -> Self {
        Self {
            database: database.into(),
            ..self.clone()
        }
    }

    /// The configuration of replica `index` alone (migrations run on each replica).
    pub fn replica(&self, index: usize) -> Self {
        Self {
            urls: vec![self.urls[index].clone()],
            replicas: Arc::new(OnceLock::new()),
            ..self.clone()
        }
    }

    /// Checks the URLs and the CA file without connecting.
    pub fn check(&self) -> Result<(), String> {
        self.shared_replicas().map(|_| ())?;
        if let Some(tls) = &self.tls {
            tls.client_config()?;
        } else if self.urls.iter().any(|u| u.starts_with("https:")) {
            return Err("an https ClickHouse URL needs WAYBILL_CLICKHOUSE_CA_FILE".to_owned());
        }
        if let Some(cluster) = &self.cluster {
            if !is_identifier(cluster) {
                return Err(format!(
                    "cluster name {cluster:?} is not a plain identifier"
                ));
            }
        }
        Ok(())
    }

    fn shared_replicas(&self) -> Result<Arc<Replicas>, String> {
        self.replicas
            .get_or_init(|| Replicas::parse(&self.urls).map(Arc::new))
            .clone()
    }

    /// A client bound to the database (which must exist: run [`migrate`] first).
    pub fn client(&self) -> Client {
        self.server_client().with_database(&self.database)
    }

    /// A client not bound to any database (to create or drop one). Logs in with
    /// [`WarehouseConfig::credentials`] when they are set; connects through the replicas'
    /// failover connector.
    pub fn server_client(&self) -> Client {
        let first = self.urls.first().cloned().unwrap_or_default();
        let client = match self.shared_replicas() {
            Ok(replicas) => {
                let connector = FailoverConnector::new(replicas, self.tls.as_ref());
                let http = HttpClient::builder(TokioExecutor::new())
                    .pool_idle_timeout(std::time::Duration::from_secs(2))
                    .build(connector);
                Client::with_http_client(http)
            }
            // Unusable URLs: the default client fails each request with the URL's error.
            Err(_) => Client::default(),
        };
        let client = client.with_url(first).with_validation(false);
        // On a cluster an insert into a Distributed table returns once the rows are in a
        // replica's table, not queued on the server that took them (which may die next).
        let client = match self.cluster {
            Some(_) => client.with_setting("insert_distributed_sync", "1"),
            None => client,
        };
        match &self.credentials {
            Some((user, password)) => client.with_user(user).with_password(password),
            None => client,
        }
    }
}

fn split_urls(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty())
        .collect()
}

/// Letters, digits and underscores: safe to splice into SQL as a name.
pub(crate) fn is_identifier(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
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
    #[error("cluster name {0:?} is not a plain identifier")]
    BadClusterName(String),
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

//! Elasticsearch / OpenSearch settings beyond the node list (`ELASTICSEARCH_URL`, in
//! [`super::Settings`]): authentication, the CA, the index layout and bulk retries.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use waybill_projectors::views::search::{ElasticAuth, ElasticOptions};

#[derive(Debug, Clone, Args)]
pub struct ElasticSettings {
    /// Elasticsearch/OpenSearch API key (sent as `Authorization: ApiKey <key>`).
    #[arg(
        long,
        env = "ELASTICSEARCH_API_KEY",
        global = true,
        hide_env_values = true,
        conflicts_with = "elasticsearch_username"
    )]
    pub elasticsearch_api_key: Option<String>,
    /// Basic authentication user (with ELASTICSEARCH_PASSWORD).
    #[arg(
        long,
        env = "ELASTICSEARCH_USERNAME",
        global = true,
        requires = "elasticsearch_password"
    )]
    pub elasticsearch_username: Option<String>,
    #[arg(
        long,
        env = "ELASTICSEARCH_PASSWORD",
        global = true,
        hide_env_values = true,
        requires = "elasticsearch_username"
    )]
    pub elasticsearch_password: Option<String>,
    /// PEM CA file the search nodes' certificates are checked against.
    #[arg(long, env = "ELASTICSEARCH_CA_FILE", global = true)]
    pub elasticsearch_ca_file: Option<PathBuf>,
    /// Primary shards of a new search index.
    #[arg(long, env = "WAYBILL_SEARCH_SHARDS", global = true, default_value_t = 1,
        value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub search_shards: u32,
    /// Replicas per shard of a new search index (0 on one node, 1 or more on a cluster).
    #[arg(
        long,
        env = "WAYBILL_SEARCH_REPLICAS",
        global = true,
        default_value_t = 0
    )]
    pub search_replicas: u32,
    /// The search index's refresh interval (`1s`, `30s`): documents become searchable within
    /// it and the projector stops refreshing after each batch. Unset: a refresh per batch.
    #[arg(long, env = "WAYBILL_SEARCH_REFRESH_INTERVAL", global = true)]
    pub search_refresh_interval: Option<String>,
    /// Attempts of one bulk write while the cluster answers 429 or 5xx (backoff from 100 ms,
    /// doubling to 5 s).
    #[arg(long, env = "WAYBILL_SEARCH_BULK_ATTEMPTS", global = true, default_value_t = 6,
        value_parser = clap::value_parser!(u32).range(1..=100))]
    pub search_bulk_attempts: u32,
}

impl ElasticSettings {
    pub fn options(&self) -> ElasticOptions {
        let auth = match (
            &self.elasticsearch_api_key,
            &self.elasticsearch_username,
            &self.elasticsearch_password,
        ) {
            (Some(key), _, _) => ElasticAuth::ApiKey(key.clone()),
            (None, Some(user), Some(password)) => ElasticAuth::Basic {
                user: user.clone(),
                password: password.clone(),
            },
            _ => ElasticAuth::None,
        };
        ElasticOptions {
            auth,
            ca_file: self.elasticsearch_ca_file.clone(),
            shards: self.search_shards,
            replicas: self.search_replicas,
            refresh_interval: self.search_refresh_interval.clone(),
            bulk_attempts: self.search_bulk_attempts,
            retry_base: Duration::from_millis(100),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Only {
        #[command(flatten)]
        elastic: ElasticSettings,
    }

    #[test]
    fn defaults_are_one_shard_no_replica_and_a_refresh_per_batch() {
        let options = Only::parse_from(["waybill"]).elastic.options();
        assert_eq!((options.shards, options.replicas), (1, 0));
        assert_eq!(options.refresh_interval, None);
        assert_eq!(options.auth, ElasticAuth::None);
    }

    #[test]
    fn an_api_key_or_a_user_with_password_but_not_both() {
        let key = Only::parse_from(["waybill", "--elasticsearch-api-key", "a2V5"]);
        assert_eq!(
            key.elastic.options().auth,
            ElasticAuth::ApiKey("a2V5".into())
        );
        assert!(Only::try_parse_from([
            "waybill",
            "--elasticsearch-api-key",
            "a2V5",
            "--elasticsearch-username",
            "u",
            "--elasticsearch-password",
            "p"
        ])
        .is_err());
        assert!(Only::try_parse_from(["waybill", "--elasticsearch-username", "u"]).is_err());
    }
}

//! NATS settings beyond the server list (`NATS_URL`, in [`super::Settings`]): credentials, TLS,
//! and the replicas and retention limits of the streams Waybill creates.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::stream::DiscardPolicy;
use clap::{Args, ValueEnum};
use waybill_write_side::nats::connection::auth_from_settings;
use waybill_write_side::nats::{NatsConfigError, NatsConnection, NatsTls, StreamLimits};

#[derive(Debug, Clone, Args)]
pub struct NatsSettings {
    /// NATS user (with NATS_PASSWORD). Set at most one credential: user and password, token,
    /// creds file or nkey seed file.
    #[arg(long, env = "NATS_USER", global = true)]
    pub nats_user: Option<String>,
    #[arg(long, env = "NATS_PASSWORD", global = true, hide_env_values = true)]
    pub nats_password: Option<String>,
    /// NATS authentication token.
    #[arg(long, env = "NATS_TOKEN", global = true, hide_env_values = true)]
    pub nats_token: Option<String>,
    /// A NATS `.creds` file (user JWT and nkey seed, decentralised auth).
    #[arg(long, env = "NATS_CREDS_FILE", global = true)]
    pub nats_creds_file: Option<PathBuf>,
    /// A file holding an nkey seed (`SU...`).
    #[arg(long, env = "NATS_NKEY_SEED_FILE", global = true)]
    pub nats_nkey_seed_file: Option<PathBuf>,

    /// PEM CA file the NATS servers' certificates are checked against (turns TLS on).
    #[arg(long, env = "NATS_TLS_CA_FILE", global = true)]
    pub nats_tls_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for servers that verify clients; with NATS_TLS_KEY_FILE.
    #[arg(long, env = "NATS_TLS_CERT_FILE", global = true)]
    pub nats_tls_cert_file: Option<PathBuf>,
    #[arg(long, env = "NATS_TLS_KEY_FILE", global = true)]
    pub nats_tls_key_file: Option<PathBuf>,
    /// Refuse NATS servers that do not offer TLS (implied by a CA or client certificate).
    #[arg(
        long,
        env = "NATS_TLS_REQUIRED",
        global = true,
        default_value_t = false
    )]
    pub nats_tls_required: bool,

    /// Replicas of the event stream: 1 on one server, 3 on a cluster (R3: a node may die
    /// without the stream stopping or losing anything).
    #[arg(
        long,
        env = "WAYBILL_NATS_REPLICAS",
        global = true,
        default_value_t = 1,
        value_parser = clap::value_parser!(u8).range(1..=5)
    )]
    pub nats_replicas: u8,
    /// Hours the event stream keeps a message (views consume it live and rebuild from the
    /// event store); 0 keeps messages forever.
    #[arg(
        long,
        env = "WAYBILL_NATS_MAX_AGE_HOURS",
        global = true,
        default_value_t = 168
    )]
    pub nats_max_age_hours: u64,
    /// Size limit of the event stream in bytes; 0 for none.
    #[arg(
        long,
        env = "WAYBILL_NATS_MAX_BYTES",
        global = true,
        default_value_t = 0
    )]
    pub nats_max_bytes: u64,
    /// What the event stream does at its size limit: `new` refuses new messages (they wait in
    /// the outbox: nothing is lost), `old` drops the oldest ones.
    #[arg(long, env = "WAYBILL_NATS_DISCARD", global = true, value_enum, default_value_t = Discard::New)]
    pub nats_discard: Discard,
    /// Replicas of the dead-letter stream; the event stream's when unset.
    #[arg(long, env = "WAYBILL_NATS_DLQ_REPLICAS", global = true,
        value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_dlq_replicas: Option<u8>,
    /// Hours dead letters are kept; 0 forever.
    #[arg(
        long,
        env = "WAYBILL_NATS_DLQ_MAX_AGE_HOURS",
        global = true,
        default_value_t = 336
    )]
    pub nats_dlq_max_age_hours: u64,
    /// Size limit of the dead-letter stream in bytes (the oldest are dropped); 0 for none.
    #[arg(
        long,
        env = "WAYBILL_NATS_DLQ_MAX_BYTES",
        global = true,
        default_value_t = 0
    )]
    pub nats_dlq_max_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Discard {
    New,
    Old,
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NatsSettingsError {
    #[error(transparent)]
    Connection(#[from] NatsConfigError),
    #[error("WAYBILL_NATS_MAX_AGE_HOURS must be 0 (forever) or cover the 2-minute de-duplication window")]
    MaxAgeTooShort,
}

impl NatsSettings {
    /// The connection to the servers in `servers` (NATS_URL) with these credentials and TLS.
    pub fn connection(&self, servers: &str) -> Result<NatsConnection, NatsSettingsError> {
        let auth = auth_from_settings(
            self.nats_user.as_deref(),
            self.nats_password.as_deref(),
            self.nats_token.as_deref(),
            self.nats_creds_file.clone(),
            self.nats_nkey_seed_file.clone(),
        )?;
        let client_cert = match (&self.nats_tls_cert_file, &self.nats_tls_key_file) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            (Some(_), None) => {
                return Err(
                    NatsConfigError::Incomplete("NATS_TLS_CERT_FILE", "NATS_TLS_KEY_FILE").into(),
                )
            }
            (None, Some(_)) => {
                return Err(
                    NatsConfigError::Incomplete("NATS_TLS_KEY_FILE", "NATS_TLS_CERT_FILE").into(),
                )
            }
        };
        Ok(NatsConnection {
            servers: NatsConnection::parse_servers(servers)?,
            auth,
            tls: NatsTls {
                ca_file: self.nats_tls_ca_file.clone(),
                client_cert,
                required: self.nats_tls_required,
            },
            name: None,
        })
    }

    /// Replicas and retention of the event stream.
    pub fn event_limits(&self) -> Result<StreamLimits, NatsSettingsError> {
        let max_age = hours(self.nats_max_age_hours);
        if !max_age.is_zero() && max_age < waybill_write_side::outbox::relay::DUPLICATE_WINDOW {
            return Err(NatsSettingsError::MaxAgeTooShort);
        }
        Ok(StreamLimits {
            replicas: usize::from(self.nats_replicas),
            max_age,
            max_bytes: (self.nats_max_bytes > 0).then_some(self.nats_max_bytes),
            discard: match self.nats_discard {
                Discard::New => DiscardPolicy::New,
                Discard::Old => DiscardPolicy::Old,
            },
        })
    }

    /// Replicas and retention of the dead-letter stream.
    pub fn dead_letter_limits(&self) -> StreamLimits {
        StreamLimits {
            replicas: usize::from(self.nats_dlq_replicas.unwrap_or(self.nats_replicas)),
            max_age: hours(self.nats_dlq_max_age_hours),
            max_bytes: (self.nats_dlq_max_bytes > 0).then_some(self.nats_dlq_max_bytes),
            discard: DiscardPolicy::Old,
        }
    }
}

fn hours(hours: u64) -> Duration {
    Duration::from_secs(hours.saturating_mul(3600))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Only {
        #[command(flatten)]
        nats: NatsSettings,
    }

    fn parse(args: &[&str]) -> NatsSettings {
        Only::try_parse_from(std::iter::once("waybill").chain(args.iter().copied()))
            .expect("arguments parse")
            .nats
    }

    #[test]
    fn defaults_are_one_replica_a_week_of_events_and_two_weeks_of_dead_letters() {
        let settings = parse(&[]);
        let events = settings.event_limits().unwrap();
        assert_eq!(events, StreamLimits::EVENTS);
        assert_eq!(settings.dead_letter_limits(), StreamLimits::DEAD_LETTERS);
    }

    #[test]
    fn a_cluster_setting_gives_both_streams_three_replicas_and_the_limits_asked_for() {
        let settings = parse(&[
            "--nats-replicas",
            "3",
            "--nats-max-age-hours",
            "24",
            "--nats-max-bytes",
            "1000000",
            "--nats-discard",
            "old",
        ]);
        let events = settings.event_limits().unwrap();
        assert_eq!(events.replicas, 3);
        assert_eq!(events.max_age, Duration::from_secs(24 * 3600));
        assert_eq!(events.max_bytes, Some(1_000_000));
        assert_eq!(events.discard, DiscardPolicy::Old);
        assert_eq!(settings.dead_letter_limits().replicas, 3);
        assert_eq!(
            parse(&["--nats-replicas", "3", "--nats-dlq-replicas", "1"])
                .dead_letter_limits()
                .replicas,
            1
        );
    }

    #[test]
    fn six_replicas_and_a_client_certificate_without_its_key_are_refused() {
        assert!(Only::try_parse_from(["waybill", "--nats-replicas", "6"]).is_err());
        let settings = parse(&["--nats-tls-cert-file", "client.pem"]);
        let err = settings.connection("nats://127.0.0.1:4222").unwrap_err();
        assert!(err.to_string().contains("NATS_TLS_KEY_FILE"), "{err}");
    }

    #[test]
    fn credentials_and_tls_reach_the_connection() {
        let settings = parse(&[
            "--nats-user",
            "relay",
            "--nats-password",
            "pw",
            "--nats-tls-ca-file",
            "/etc/nats/ca.pem",
        ]);
        let connection = settings
            .connection("nats://10.0.0.1:4222,nats://10.0.0.2:4222")
            .unwrap();
        assert_eq!(connection.servers.len(), 2);
        assert_eq!(
            connection.auth,
            waybill_write_side::nats::NatsAuth::UserPassword {
                user: "relay".into(),
                password: "pw".into()
            }
        );
        assert_eq!(
            connection.tls.ca_file.as_deref(),
            Some(std::path::Path::new("/etc/nats/ca.pem"))
        );
    }
}

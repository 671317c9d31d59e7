//! The NATS connection: a list of servers (one node or the seed nodes of a cluster; the client
//! also learns the cluster's other nodes from the server and reconnects to any of them),
//! one way of authenticating, and TLS with the operator's CA and an optional client certificate.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::{ConnectOptions, ServerAddr};

/// How the client proves who it is.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum NatsAuth {
    /// No credentials (or the user and password in the server URLs).
    #[default]
    None,
    UserPassword {
        user: String,
        password: String,
    },
    Token(String),
    /// A `.creds` file (user JWT + nkey seed), as issued by an operator.
    CredsFile(PathBuf),
    /// A file holding an nkey seed (`SU...`).
    NkeySeedFile(PathBuf),
}

impl std::fmt::Debug for NatsAuth {
    // Secrets are never printed, only which kind of credential is configured.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::UserPassword { user, .. } => write!(f, "UserPassword({user}, ***)"),
            Self::Token(_) => f.write_str("Token(***)"),
            Self::CredsFile(path) => write!(f, "CredsFile({})", path.display()),
            Self::NkeySeedFile(path) => write!(f, "NkeySeedFile({})", path.display()),
        }
    }
}

/// TLS towards the servers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsTls {
    /// PEM file of the CA(s) the servers' certificates are checked against.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate and key presented to servers that verify clients.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Refuse to talk to a server without TLS (implied by a CA or client certificate).
    pub required: bool,
}

impl NatsTls {
    fn required(&self) -> bool {
        self.required || self.ca_file.is_some() || self.client_cert.is_some()
    }
}

/// A setting that cannot be used, named.
#[derive(Debug, thiserror::Error)]
pub enum NatsConfigError {
    #[error("NATS_URL holds no server address")]
    NoServers,
    #[error("NATS_URL entry {entry:?} is not a NATS server address: {reason}")]
    BadServer { entry: String, reason: String },
    #[error("more than one NATS credential is configured ({0}); set exactly one")]
    SeveralCredentials(String),
    #[error("{0} is set without {1}")]
    Incomplete(&'static str, &'static str),
}

/// Why connecting failed.
#[derive(Debug, thiserror::Error)]
pub enum NatsConnectError {
    #[error("reading NATS credentials from {path}: {source}")]
    Credentials {
        path: String,
        source: std::io::Error,
    },
    #[error("connecting to NATS at {servers}: {source}")]
    Connect {
        servers: String,
        source: async_nats::ConnectError,
    },
}

/// Everything needed to open a connection.
#[derive(Debug, Clone)]
pub struct NatsConnection {
    pub servers: Vec<ServerAddr>,
    pub auth: NatsAuth,
    pub tls: NatsTls,
    /// Shown by the server's monitoring (`/connz`): which role is connected.
    pub name: Option<String>,
}

impl NatsConnection {
    /// One server or several, comma-separated (`nats://a:4222,nats://b:4222`); the scheme
    /// defaults to `nats://` and the port to 4222.
    pub fn parse_servers(list: &str) -> Result<Vec<ServerAddr>, NatsConfigError> {
        let servers = list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<ServerAddr>()
                    .map_err(|err| NatsConfigError::BadServer {
                        entry: entry.to_owned(),
                        reason: err.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err(NatsConfigError::NoServers);
        }
        Ok(servers)
    }

    /// A connection without credentials or TLS to the servers in `list`.
    pub fn plain(list: &str) -> Result<Self, NatsConfigError> {
        Ok(Self {
            servers: Self::parse_servers(list)?,
            auth: NatsAuth::None,
            tls: NatsTls::default(),
            name: None,
        })
    }

    /// The server list as configured, comma-separated (for logs and errors; no passwords).
    pub fn servers_display(&self) -> String {
        self.servers
            .iter()
            .map(|server| {
                let url = server.clone().into_inner();
                format!(
                    "{}://{}:{}",
                    url.scheme(),
                    url.host_str().unwrap_or(""),
                    url.port_or_known_default().unwrap_or(4222)
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Connects to one of the servers. The client keeps reconnecting to any server of the list
    /// (and those the cluster told it about) when the one it uses goes away.
    pub async fn connect(&self) -> Result<async_nats::Client, NatsConnectError> {
        let options = self.options().await?;
        let client = options
            .connect(self.servers.clone())
            .await
            .map_err(|source| NatsConnectError::Connect {
                servers: self.servers_display(),
                source,
            })?;
        let info = client.server_info();
        tracing::info!(
            server = %info.server_name,
            version = %info.version,
            cluster = info.cluster.as_deref().unwrap_or("-"),
            "connected to NATS"
        );
        Ok(client)
    }

    async fn options(&self) -> Result<ConnectOptions, NatsConnectError> {
        let options = match &self.auth {
            NatsAuth::None => ConnectOptions::new(),
            NatsAuth::UserPassword { user, password } => {
                ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            NatsAuth::Token(token) => ConnectOptions::with_token(token.clone()),
            NatsAuth::CredsFile(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|source| NatsConnectError::Credentials {
                    path: path.display().to_string(),
                    source,
                })?,
            NatsAuth::NkeySeedFile(path) => {
                let seed = tokio::fs::read_to_string(path).await.map_err(|source| {
                    NatsConnectError::Credentials {
                        path: path.display().to_string(),
                        source,
                    }
                })?;
                ConnectOptions::with_nkey(seed.trim().to_owned())
            }
        };
        // The first connect tries every listed server once (a node that is down at start is
        // not fatal while another answers); after that the client reconnects by itself.
        let mut options = options
            .connection_timeout(Duration::from_secs(5))
            .event_callback(|event| async move {
                tracing::info!(%event, "NATS connection event");
            });
        if let Some(name) = &self.name {
            options = options.name(name);
        }
        if let Some(ca) = &self.tls.ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls.client_cert {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if self.tls.required() {
            options = options.require_tls(true);
        }
        Ok(options)
    }
}

/// Picks the one credential among those set (`None` values are unset).
pub fn auth_from_settings(
    user: Option<&str>,
    password: Option<&str>,
    token: Option<&str>,
    creds_file: Option<PathBuf>,
    nkey_seed_file: Option<PathBuf>,
) -> Result<NatsAuth, NatsConfigError> {
    let mut chosen = Vec::new();
    match (user, password) {
        (Some(user), Some(password)) => chosen.push(NatsAuth::UserPassword {
            user: user.to_owned(),
            password: password.to_owned(),
        }),
        (Some(_), None) => return Err(NatsConfigError::Incomplete("NATS_USER", "NATS_PASSWORD")),
        (None, Some(_)) => return Err(NatsConfigError::Incomplete("NATS_PASSWORD", "NATS_USER")),
        (None, None) => {}
    }
    if let Some(token) = token {
        chosen.push(NatsAuth::Token(token.to_owned()));
    }
    if let Some(path) = creds_file {
        chosen.push(NatsAuth::CredsFile(path));
    }
    if let Some(path) = nkey_seed_file {
        chosen.push(NatsAuth::NkeySeedFile(path));
    }
    match chosen.len() {
        0 => Ok(NatsAuth::None),
        1 => Ok(chosen.remove(0)),
        _ => Err(NatsConfigError::SeveralCredentials(
            chosen
                .iter()
                .map(|auth| format!("{auth:?}"))
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_url_and_a_comma_separated_list_both_parse() {
        let one = NatsConnection::parse_servers("nats://127.0.0.1:4222").unwrap();
        assert_eq!(one.len(), 1);
        let three =
            NatsConnection::parse_servers("nats://10.0.0.1:4222, 10.0.0.2 ,tls://n3.example:4443")
                .unwrap();
        assert_eq!(three.len(), 3);
        let shown = NatsConnection {
            servers: three,
            auth: NatsAuth::None,
            tls: NatsTls::default(),
            name: None,
        }
        .servers_display();
        assert_eq!(
            shown,
            "nats://10.0.0.1:4222,nats://10.0.0.2:4222,tls://n3.example:4443"
        );
    }

    #[test]
    fn an_empty_list_or_a_bad_entry_is_refused_by_name() {
        assert!(matches!(
            NatsConnection::parse_servers(" , "),
            Err(NatsConfigError::NoServers)
        ));
        let err = NatsConnection::parse_servers("nats://ok:4222,http://[::1").unwrap_err();
        assert!(err.to_string().contains("http://[::1"), "{err}");
    }

    #[test]
    fn passwords_in_urls_are_not_displayed() {
        let connection = NatsConnection::plain("nats://app:s3cret@127.0.0.1:4222").unwrap();
        assert!(!connection.servers_display().contains("s3cret"));
    }

    #[test]
    fn exactly_one_credential_is_accepted() {
        assert_eq!(
            auth_from_settings(None, None, None, None, None).unwrap(),
            NatsAuth::None
        );
        assert_eq!(
            auth_from_settings(Some("app"), Some("pw"), None, None, None).unwrap(),
            NatsAuth::UserPassword {
                user: "app".into(),
                password: "pw".into()
            }
        );
        assert!(matches!(
            auth_from_settings(Some("app"), None, None, None, None),
            Err(NatsConfigError::Incomplete("NATS_USER", "NATS_PASSWORD"))
        ));
        let several = auth_from_settings(None, None, Some("tok"), Some("a.creds".into()), None)
            .unwrap_err()
            .to_string();
        assert!(several.contains("Token(***)"), "{several}");
        assert!(
            !several.contains("tok,"),
            "the token is not shown: {several}"
        );
    }

    #[test]
    fn a_ca_or_client_certificate_requires_tls() {
        assert!(!NatsTls::default().required());
        let with_ca = NatsTls {
            ca_file: Some("ca.pem".into()),
            ..NatsTls::default()
        };
        assert!(with_ca.required());
    }
}

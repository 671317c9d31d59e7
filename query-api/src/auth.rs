//! Who may read a tracking view: the customer holding the order's tracking token (an HMAC the
//! command API handed out), or a staff/service client presenting a Bearer API key with a role
//! that may read orders (`agent`, `admin`, `service`).
//!
//! API keys come from `WAYBILL_API_KEYS` as comma-separated `key:client_id:role`. Keys are kept
//! only as SHA-256 digests and compared in constant time against every configured key.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What an API key's holder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Service,
    Agent,
    Finance,
    Admin,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "service" => Some(Self::Service),
            "agent" => Some(Self::Agent),
            "finance" => Some(Self::Finance),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Agent => "agent",
            Self::Finance => "finance",
            Self::Admin => "admin",
        }
    }
    /// Roles that may read any order's tracking view.
    pub fn may_read_tracking(&self) -> bool {
        matches!(self, Self::Service | Self::Agent | Self::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("API key entry #{index} is not `key:client_id:role`")]
    Malformed { index: usize },
    #[error("API key entry #{index} has an empty key or client id")]
    Empty { index: usize },
    #[error("API key entry #{index} has unknown role '{role}' (service, agent, finance, admin)")]
    UnknownRole { index: usize, role: String },
}

/// One configured key; the secret itself is only kept as a digest.
#[derive(Clone)]
pub struct ApiKey {
    digest: [u8; 32],
    pub client_id: String,
    pub role: Role,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("client_id", &self.client_id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The set of API keys a service accepts.
#[derive(Clone, Default, Debug)]
pub struct ApiKeys(Arc<Vec<ApiKey>>);

impl ApiKeys {
    /// Parses `key:client_id:role[,key:client_id:role...]`; blank input gives an empty set.
    pub fn parse(raw: &str) -> Result<Self, ApiKeyError> {
        let mut keys = Vec::new();
        for (index, entry) in raw.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let mut parts = entry.splitn(3, ':');
            let (Some(key), Some(client_id), Some(role)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(ApiKeyError::Malformed { index });
            };
            if key.is_empty() || client_id.is_empty() {
                return Err(ApiKeyError::Empty { index });
            }
            let role = Role::parse(role).ok_or_else(|| ApiKeyError::UnknownRole {
                index,
                role: role.chars().take(32).collect(),
            })?;
            keys.push(ApiKey {
                digest: digest(key),
                client_id: client_id.to_owned(),
                role,
            });
        }
        Ok(Self(Arc::new(keys)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The key matching `presented`, comparing digests in constant time against every key.
    pub fn authenticate(&self, presented: &str) -> Option<&ApiKey> {
        let presented = digest(presented);
        let mut found = None;
        for key in self.0.iter() {
            if bool::from(key.digest.ct_eq(&presented)) && found.is_none() {
                found = Some(key);
            }
        }
        found
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Who a tracking request was let in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// The customer, proven by the order's tracking token.
    Customer,
    /// A staff or service client by API key.
    Client { client_id: String, role: Role },
}

/// Why a request was refused before the view was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No token and no Authorization header.
    NoCredentials,
    /// A Bearer key that is not configured, or an Authorization header that is not Bearer.
    BadApiKey,
    /// A valid key whose role may not read tracking.
    RoleNotAllowed(Role),
    /// A tracking token that does not belong to this order. Reported exactly like a missing
    /// order, so a guesser learns nothing.
    WrongToken,
}

/// Decides who is reading. An API key takes precedence over a token when both are given.
pub fn authorize(
    keys: &ApiKeys,
    secret: &[u8],
    order: waybill_schemas::OrderId,
    authorization: Option<&str>,
    token: Option<&str>,
) -> Result<Reader, Denied> {
    if let Some(header) = authorization {
        let presented = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or(Denied::BadApiKey)?;
        let key = keys.authenticate(presented).ok_or(Denied::BadApiKey)?;
        if !key.role.may_read_tracking() {
            return Err(Denied::RoleNotAllowed(key.role));
        }
        return Ok(Reader::Client {
            client_id: key.client_id.clone(),
            role: key.role,
        });
    }
    match token {
        None => Err(Denied::NoCredentials),
        Some(token) if waybill_schemas::access::verify_tracking_token(secret, order, token) => {
            Ok(Reader::Customer)
        }
        Some(_) => Err(Denied::WrongToken),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use waybill_schemas::access::tracking_token;
    use waybill_schemas::OrderId;

    #[test]
    fn api_keys_parse_the_documented_format() {
        let keys = ApiKeys::parse("k1:shop:service, k2:alice:agent,k3:bob:finance").unwrap();
        assert_eq!(keys.len(), 3);
        let alice = keys.authenticate("k2").unwrap();
        assert_eq!(alice.client_id, "alice");
        assert_eq!(alice.role, Role::Agent);
        assert!(keys.authenticate("k4").is_none());
        assert!(keys.authenticate("").is_none());
        assert!(ApiKeys::parse("").unwrap().is_empty());
    }

    #[test]
    fn malformed_api_keys_are_refused_with_the_entry_named() {
        assert_eq!(
            ApiKeys::parse("k1:shop").unwrap_err(),
            ApiKeyError::Malformed { index: 0 }
        );
        assert_eq!(
            ApiKeys::parse("k1:a:admin,:b:agent").unwrap_err(),
            ApiKeyError::Empty { index: 1 }
        );
        assert!(matches!(
            ApiKeys::parse("k1:a:root"),
            Err(ApiKeyError::UnknownRole { index: 0, .. })
        ));
    }

    #[test]
    fn finance_keys_may_not_read_tracking_and_wrong_tokens_are_denied() {
        let keys = ApiKeys::parse("f:fin:finance,a:ann:agent").unwrap();
        let order = OrderId::new_v7();
        let auth = |h: Option<&str>, t: Option<&str>| authorize(&keys, b"s", order, h, t);
        assert_eq!(
            auth(Some("Bearer f"), None),
            Err(Denied::RoleNotAllowed(Role::Finance))
        );
        assert!(matches!(
            auth(Some("Bearer a"), None),
            Ok(Reader::Client { .. })
        ));
        assert_eq!(auth(Some("Basic a"), None), Err(Denied::BadApiKey));
        assert_eq!(auth(None, None), Err(Denied::NoCredentials));
        assert_eq!(auth(None, Some("00")), Err(Denied::WrongToken));
        let token = tracking_token(b"s", order);
        assert_eq!(auth(None, Some(&token)), Ok(Reader::Customer));
    }
}

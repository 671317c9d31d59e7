//! API keys for staff and service clients: `Authorization: Bearer <key>`, each key naming a
//! client id and a role. Configured as comma-separated `key:client_id:role` (the
//! `WAYBILL_API_KEYS` format). Only SHA-256 digests of the keys are kept, and a presented key is
//! compared in constant time against every configured one, so neither the comparison nor the
//! search leaks how much of a key was right. Shared by the command API and the query API.
//!
//! When JWTs are configured ([`ApiKeys::with_jwt`] for Waybill's own HS256 secret,
//! [`ApiKeys::with_jwt_verifier`] for an identity provider's keys too), a Bearer credential shaped
//! like a JWT is verified as one instead ([`crate::jwt`]); that is how customers (role
//! `customer`, only their own orders) and staff signed in elsewhere authenticate.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::envelope::{Actor, ActorKind};
use crate::jwt::{looks_like_jwt, JwtKey, JwtPolicy, JwtVerifier};

/// What a key's holder may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A shopper signed in with a JWT whose `sub` is their customer id: their own orders only.
    Customer,
    Service,
    Agent,
    Finance,
    Admin,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "customer" => Some(Self::Customer),
            "service" => Some(Self::Service),
            "agent" => Some(Self::Agent),
            "finance" => Some(Self::Finance),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Service => "service",
            Self::Agent => "agent",
            Self::Finance => "finance",
            Self::Admin => "admin",
        }
    }
    /// Roles allowed to send commands (channels, support agents, admins).
    pub fn may_command(self) -> bool {
        matches!(self, Self::Service | Self::Agent | Self::Admin)
    }
    /// Roles that may read any order's tracking view.
    pub fn may_read_tracking(self) -> bool {
        matches!(self, Self::Service | Self::Agent | Self::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller a key identifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub client_id: String,
    pub role: Role,
}

impl Principal {
    /// The actor recorded on events this caller causes.
    pub fn actor(&self) -> Actor {
        let kind = match self.role {
            Role::Customer => ActorKind::Customer,
            Role::Service => ActorKind::Service,
            Role::Agent | Role::Finance | Role::Admin => ActorKind::Agent,
        };
        Actor {
            kind,
            id: self.client_id.clone(),
        }
    }
}

/// A configuration value that could not be read as API keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("API key entry #{index} is not `key:client_id:role`")]
    Malformed { index: usize },
    #[error("API key entry #{index} has an empty key or client id")]
    Empty { index: usize },
    #[error("API key entry #{index} has unknown role '{role}' (customer, service, agent, finance, admin)")]
    UnknownRole { index: usize, role: String },
}

#[derive(Clone)]
struct Entry {
    digest: [u8; 32],
    principal: Principal,
}

/// The configured keys, and the JWT verifier if JWTs are accepted. Cheap to clone.
#[derive(Clone, Default)]
pub struct ApiKeys(Arc<Vec<Entry>>, Option<Arc<JwtVerifier>>);

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("count", &self.0.len())
            .field("jwt", &self.1.is_some())
            .finish_non_exhaustive()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    /// Parses `key:client_id:role[,key:client_id:role...]`; blank input gives an empty set.
    pub fn parse(raw: &str) -> Result<Self, ApiKeyError> {
        let mut keys = Self::default();
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
            let role = Role::parse(role.trim()).ok_or_else(|| ApiKeyError::UnknownRole {
                index,
                role: role.chars().take(32).collect(),
            })?;
            keys.add(key, client_id, role);
        }
        Ok(keys)
    }

    /// Adds one key (e.g. a generated development key).
    pub fn add(&mut self, key: &str, client_id: &str, role: Role) {
        Arc::make_mut(&mut self.0).push(Entry {
            digest: digest(key),
            principal: Principal {
                client_id: client_id.to_owned(),
                role,
            },
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The principal of `presented`, checking every entry in constant time each.
    pub fn authenticate(&self, presented: &str) -> Option<&Principal> {
        let presented = digest(presented);
        let mut found = None;
        for entry in self.0.iter() {
            if bool::from(entry.digest.ct_eq(&presented)) && found.is_none() {
                found = Some(&entry.principal);
            }
        }
        found
    }

    /// Also accepts HS256 JWTs signed with `secret` under the default policy (an empty secret
    /// leaves JWTs off).
    pub fn with_jwt(self, secret: &[u8]) -> Self {
        let verifier = (!secret.is_empty())
            .then(|| JwtVerifier::new(JwtPolicy::default()).with_secret_key(JwtKey::new(secret)));
        self.with_jwt_verifier(verifier)
    }

    /// Accepts the JWTs `verifier` accepts (`None`, or one without keys: JWTs off).
    pub fn with_jwt_verifier(mut self, verifier: Option<JwtVerifier>) -> Self {
        self.1 = verifier.filter(JwtVerifier::accepts_tokens).map(Arc::new);
        self
    }

    /// The JWT verifier, when JWTs are accepted.
    pub fn jwt(&self) -> Option<&JwtVerifier> {
        self.1.as_deref()
    }

    /// The principal of an `Authorization: Bearer <credential>` header value: a JWT when JWTs
    /// are configured and the credential has a JWT's shape (checked against the clock), else an
    /// API key.
    pub fn authenticate_header(&self, authorization: Option<&str>) -> Option<Principal> {
        let (scheme, credential) = authorization?.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let credential = credential.trim();
        match &self.1 {
            Some(jwt) if looks_like_jwt(credential) => {
                jwt.verify(credential, chrono::Utc::now().timestamp()).ok()
            }
            _ => self.authenticate(credential).cloned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_authenticate_with_their_role() {
        let keys = ApiKeys::parse("k1:shop:service, k2:alice:agent,k3:bob:finance").unwrap();
        assert_eq!(keys.len(), 3);
        assert_eq!(
            keys.authenticate_header(Some("Bearer k1"))
                .map(|p| p.client_id),
            Some("shop".to_owned())
        );
        assert_eq!(keys.authenticate("k2").map(|p| p.role), Some(Role::Agent));
        assert_eq!(keys.authenticate("k4"), None);
        assert_eq!(keys.authenticate(""), None);
        assert_eq!(keys.authenticate_header(Some("Basic k1")), None);
        assert!(ApiKeys::parse("").unwrap().is_empty());
    }

    #[test]
    fn malformed_entries_are_refused_with_the_entry_named() {
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
    fn adding_to_a_shared_set_leaves_the_other_copy_alone() {
        let base = ApiKeys::parse("k1:shop:service").unwrap();
        let mut more = base.clone();
        more.add("k2", "ops", Role::Admin);
        assert_eq!(base.len(), 1);
        assert_eq!(more.len(), 2);
        assert_eq!(more.authenticate("k2").map(|p| p.role), Some(Role::Admin));
        assert!(!Role::Finance.may_command());
        assert!(!Role::Finance.may_read_tracking());
        assert!(!Role::Customer.may_command());
        assert!(!Role::Customer.may_read_tracking());
    }

    #[test]
    fn jwts_authenticate_only_when_a_secret_is_configured() {
        let key = JwtKey::new(b"jwt-secret");
        let token = key.issue(&crate::jwt::Claims {
            sub: "cust-1".into(),
            role: "customer".into(),
            exp: chrono::Utc::now().timestamp() + 60,
        });
        let header = format!("Bearer {token}");
        let keys = ApiKeys::parse("k1:shop:service").unwrap();
        assert_eq!(keys.authenticate_header(Some(&header)), None);
        let keys = keys.with_jwt(b"jwt-secret");
        let principal = keys.authenticate_header(Some(&header)).unwrap();
        assert_eq!(
            (principal.client_id.as_str(), principal.role),
            ("cust-1", Role::Customer)
        );
        assert_eq!(
            keys.authenticate_header(Some("Bearer k1")).map(|p| p.role),
            Some(Role::Service)
        );
        let other = ApiKeys::default().with_jwt(b"another");
        assert_eq!(other.authenticate_header(Some(&header)), None);
    }
}

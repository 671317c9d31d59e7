//! API keys: `Authorization: Bearer <key>`, each key naming a client id and a role. Keys are
//! compared as sha256 digests in constant time, against every configured key, so neither the
//! comparison nor the search leaks how much of a key was right.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use waybill_schemas::envelope::ActorKind;
use waybill_schemas::Actor;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Service,
    Agent,
    Finance,
    Admin,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "service" => Self::Service,
            "agent" => Self::Agent,
            "finance" => Self::Finance,
            "admin" => Self::Admin,
            _ => return None,
        })
    }
    /// Roles allowed to send commands.
    pub fn may_command(self) -> bool {
        matches!(self, Self::Service | Self::Agent | Self::Admin)
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
#[error("API key entry {index} is not `key:client_id:role` with role service|agent|finance|admin")]
pub struct ApiKeysError {
    pub index: usize,
}

struct Entry {
    digest: [u8; 32],
    principal: Principal,
}

/// The configured keys.
#[derive(Default)]
pub struct ApiKeys {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("count", &self.entries.len())
            .finish_non_exhaustive()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl ApiKeys {
    /// Reads `key:client_id:role[,key:client_id:role...]` (the `WAYBILL_API_KEYS` format).
    pub fn parse(raw: &str) -> Result<Self, ApiKeysError> {
        let mut keys = Self::default();
        for (index, entry) in raw
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let mut parts = entry.splitn(3, ':');
            let (Some(key), Some(client_id), Some(role)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(ApiKeysError { index });
            };
            let role = Role::parse(role.trim()).ok_or(ApiKeysError { index })?;
            if key.is_empty() || client_id.is_empty() {
                return Err(ApiKeysError { index });
            }
            keys.add(key, client_id, role);
        }
        Ok(keys)
    }

    pub fn add(&mut self, key: &str, client_id: &str, role: Role) {
        self.entries.push(Entry {
            digest: digest(key),
            principal: Principal {
                client_id: client_id.to_owned(),
                role,
            },
        });
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The principal of `key`, checking every entry in constant time each.
    pub fn authenticate(&self, key: &str) -> Option<Principal> {
        let presented = digest(key);
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.digest.ct_eq(&presented)) {
                found = Some(entry.principal.clone());
            }
        }
        found
    }

    /// The principal of an `Authorization` header value.
    pub fn authenticate_header(&self, authorization: Option<&str>) -> Option<Principal> {
        let value = authorization?.trim();
        let (scheme, key) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.authenticate(key.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_authenticate_with_their_role() {
        let keys = ApiKeys::parse("k1:shop:service, k2:bob:agent").expect("valid");
        assert_eq!(
            keys.authenticate_header(Some("Bearer k1"))
                .map(|p| p.client_id),
            Some("shop".to_owned())
        );
        assert_eq!(keys.authenticate("k2").map(|p| p.role), Some(Role::Agent));
        assert_eq!(keys.authenticate("k3"), None);
        assert_eq!(keys.authenticate_header(Some("Basic k1")), None);
        assert!(ApiKeys::parse("k1:shop").is_err());
        assert!(ApiKeys::parse("k1:shop:root").is_err());
    }
}

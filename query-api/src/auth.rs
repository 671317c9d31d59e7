//! Who may read a tracking view: the customer holding the order's tracking token (an HMAC the
//! command API handed out), or a staff/service client presenting a Bearer API key with a role
//! that may read orders (`agent`, `admin`, `service`).
//!
//! API keys come from `WAYBILL_API_KEYS` as comma-separated `key:client_id:role`. Keys are kept
//! only as SHA-256 digests and compared in constant time against every configured key.

pub use waybill_schemas::api_keys::{ApiKeyError, ApiKeys, Principal, Role};

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
        let key = keys
            .authenticate_header(Some(header))
            .ok_or(Denied::BadApiKey)?;
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

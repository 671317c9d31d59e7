//! Who may read a tracking view: the customer holding the order's tracking token (an HMAC the
//! command API handed out), a signed-in customer (Bearer JWT with role `customer`) reading an
//! order placed under their customer id, or a staff/service client presenting a Bearer API key
//! or JWT with a role that may read orders (`agent`, `admin`, `service`).
//!
//! API keys come from `WAYBILL_API_KEYS` as comma-separated `key:client_id:role`. Keys are kept
//! only as SHA-256 digests and compared in constant time against every configured key; JWTs are
//! HS256 under `WAYBILL_JWT_SECRET` (`waybill_schemas::jwt`).

pub use waybill_schemas::api_keys::{ApiKeyError, ApiKeys, Principal, Role};

/// Who a tracking request was let in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// The customer, proven by the order's tracking token.
    TokenHolder,
    /// A signed-in customer: may read the order only if it was placed under their customer id
    /// (checked against the view, answered 404 otherwise).
    SignedIn { customer_digest: String },
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

impl Reader {
    /// Whether this reader may see `view`: staff and token holders were checked already; a
    /// signed-in customer only sees orders placed under their own customer id.
    pub fn may_see(&self, view: &waybill_schemas::views::TrackingView) -> bool {
        match self {
            Self::TokenHolder | Self::Client { .. } => true,
            Self::SignedIn { customer_digest } => {
                view.access.customer.as_deref() == Some(customer_digest.as_str())
            }
        }
    }

    /// Public callers (customers) are rate limited; staff and service clients are not.
    pub fn is_public(&self) -> bool {
        !matches!(self, Self::Client { .. })
    }
}

/// Decides who is reading. An API key takes precedence over a token when both are given.
pub fn authorize(
    keys: &ApiKeys,
    tracking: &waybill_schemas::access::TrackingKeys,
    order: waybill_schemas::OrderId,
    authorization: Option<&str>,
    token: Option<&str>,
) -> Result<Reader, Denied> {
    if let Some(header) = authorization {
        let key = keys
            .authenticate_header(Some(header))
            .ok_or(Denied::BadApiKey)?;
        if key.role == Role::Customer {
            return Ok(Reader::SignedIn {
                customer_digest: waybill_schemas::access::customer_digest(&key.client_id),
            });
        }
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
        Some(token) if tracking.verify(order, token, chrono::Utc::now()) => Ok(Reader::TokenHolder),
        Some(_) => Err(Denied::WrongToken),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use waybill_schemas::access::{tracking_token, TrackingKeys};
    use waybill_schemas::OrderId;

    #[test]
    fn finance_keys_may_not_read_tracking_and_wrong_tokens_are_denied() {
        let keys = ApiKeys::parse("f:fin:finance,a:ann:agent").unwrap();
        let order = OrderId::new_v7();
        let tracking = TrackingKeys::new(b"s".as_slice());
        let auth = |h: Option<&str>, t: Option<&str>| authorize(&keys, &tracking, order, h, t);
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
        assert_eq!(auth(None, Some(&token)), Ok(Reader::TokenHolder));
        let token = tracking.token(order, chrono::Utc::now());
        assert_eq!(auth(None, Some(&token)), Ok(Reader::TokenHolder));
        let expired = tracking.token(order, chrono::Utc::now() - tracking.ttl());
        assert_eq!(auth(None, Some(&expired)), Err(Denied::WrongToken));
    }

    #[test]
    fn a_signed_in_customer_sees_only_orders_placed_under_their_id() {
        let keys = ApiKeys::default().with_jwt(b"j");
        let jwt = waybill_schemas::jwt::JwtKey::new(b"j").issue(&waybill_schemas::jwt::Claims {
            sub: "cust-1".into(),
            role: "customer".into(),
            exp: chrono::Utc::now().timestamp() + 60,
        });
        let order = OrderId::new_v7();
        let tracking = TrackingKeys::new(b"s".as_slice());
        let reader = authorize(
            &keys,
            &tracking,
            order,
            Some(&format!("Bearer {jwt}")),
            None,
        )
        .unwrap();
        let mut view: waybill_schemas::views::TrackingView =
            serde_json::from_value(serde_json::json!({
                "order_id": order.to_string(), "version": 1, "status": "placed",
                "channel": "web", "channel_order_ref": "W-1", "currency": "EUR", "lines": [],
                "totals": {"subtotal_minor": 0, "discount_minor": 0, "tax_minor": 0,
                           "shipping_minor": 0, "grand_total_minor": 0},
                "shipping_method": "standard", "placed_at": "2026-11-25T10:00:00Z",
                "updated_at": "2026-11-25T10:00:00Z", "cancellation_reason": null,
                "timeline": []
            }))
            .unwrap();
        assert!(!reader.may_see(&view), "a guest order is nobody's");
        view.access.customer = Some(waybill_schemas::access::customer_digest("cust-2"));
        assert!(!reader.may_see(&view), "another customer's order");
        view.access.customer = Some(waybill_schemas::access::customer_digest("cust-1"));
        assert!(reader.may_see(&view));
        assert!(reader.is_public());
    }
}

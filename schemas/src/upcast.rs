//! Upcasters: old payload versions are lifted to the current one when read, never rewritten in
//! place. Each step takes version N to N+1; `to_current` chains them.

use serde_json::{Map, Value};

use crate::events::{DecodeError, OrderEventKind};

/// Lifts `payload` from `version` to the kind's current version.
pub fn to_current(
    kind: OrderEventKind,
    version: i32,
    mut payload: Value,
) -> Result<Value, DecodeError> {
    let current = kind.current_version();
    if version < 1 || version > current {
        return Err(DecodeError::UnknownVersion {
            event_type: kind.name().to_owned(),
            version,
        });
    }
    for from in version..current {
        payload = step(kind, from, payload).map_err(|source| DecodeError::Payload {
            event_type: kind.name().to_owned(),
            version: from,
            source,
        })?;
    }
    Ok(payload)
}

fn step(kind: OrderEventKind, from: i32, payload: Value) -> Result<Value, serde_json::Error> {
    match (kind, from) {
        (OrderEventKind::OrderPlaced, 1) => order_placed_v1_to_v2(payload),
        (OrderEventKind::OrderPlaced, 2) => order_placed_v2_to_v3(payload),
        (OrderEventKind::OrderPlaced, 3) => order_placed_v3_to_v4(payload),
        // `to_current` only asks for steps below the current version, and every kind's
        // steps are listed above.
        _ => Ok(payload),
    }
}

/// v1 kept the customer as flat `customer_name`, `customer_email`, `customer_phone`; v2 groups
/// them in `customer` and adds the channel's `customer_id` (unknown for v1 events: null).
fn order_placed_v1_to_v2(payload: Value) -> Result<Value, serde_json::Error> {
    let mut obj: Map<String, Value> = serde_json::from_value(payload)?;
    let mut take = |key: &str| obj.remove(key).unwrap_or(Value::Null);
    let name = take("customer_name");
    let email = take("customer_email");
    let phone = take("customer_phone");
    let mut customer = Map::new();
    customer.insert("customer_id".into(), Value::Null);
    customer.insert("name".into(), name);
    customer.insert("email".into(), email);
    customer.insert("phone".into(), phone);
    obj.insert("customer".into(), Value::Object(customer));
    Ok(Value::Object(obj))
}

/// v3 added the payment method and the buyer's risk context; orders captured before that have
/// neither (null).
fn order_placed_v2_to_v3(payload: Value) -> Result<Value, serde_json::Error> {
    let mut obj: Map<String, Value> = serde_json::from_value(payload)?;
    obj.insert("payment".into(), Value::Null);
    obj.insert("risk_context".into(), Value::Null);
    Ok(Value::Object(obj))
}

/// v4 added the pickup store the customer chose; orders captured before that have none (null:
/// their routing picks a pickup store as it always did).
fn order_placed_v3_to_v4(payload: Value) -> Result<Value, serde_json::Error> {
    let mut obj: Map<String, Value> = serde_json::from_value(payload)?;
    obj.insert("pickup_store".into(), Value::Null);
    Ok(Value::Object(obj))
}

/// `OrderPlaced` v3 as it was written, kept so its JSON Schema stays generated from a type.
pub mod v3 {
    use chrono::{DateTime, Utc};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use crate::events::{
        Address, Customer, Discount, OrderLine, PaymentMethod, RiskContext, Shipping, Totals,
    };
    use crate::values::{Channel, Currency, OrderId};

    /// `OrderPlaced` v3: an order was captured from a channel. Carries everything the order was
    /// priced with, so no consumer has to look anything up to understand it.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(title = "OrderPlaced")]
    pub struct OrderPlacedV3 {
        pub order_id: OrderId,
        pub channel: Channel,
        /// The order's id in the channel (web checkout id, marketplace order number, POS receipt).
        pub channel_order_ref: String,
        pub customer: Customer,
        pub currency: Currency,
        pub lines: Vec<OrderLine>,
        /// Order-level discounts (codes, promotions); line discounts sit on the lines.
        pub discounts: Vec<Discount>,
        pub shipping_address: Address,
        pub billing_address: Option<Address>,
        pub shipping: Shipping,
        pub totals: Totals,
        /// New in v3: how the customer pays (`None` only for orders captured before v3).
        pub payment: Option<PaymentMethod>,
        /// New in v3: what the channel knows about the buyer's session, for risk scoring.
        pub risk_context: Option<RiskContext>,
        pub placed_at: DateTime<Utc>,
    }
}

/// `OrderPlaced` v2 as it was written, kept so its JSON Schema stays generated from a type.
pub mod v2 {
    use chrono::{DateTime, Utc};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use crate::events::{Address, Customer, Discount, OrderLine, Shipping, Totals};
    use crate::values::{Channel, Currency, OrderId};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct OrderPlacedV2 {
        pub order_id: OrderId,
        pub channel: Channel,
        pub channel_order_ref: String,
        pub customer: Customer,
        pub currency: Currency,
        pub lines: Vec<OrderLine>,
        pub discounts: Vec<Discount>,
        pub shipping_address: Address,
        pub billing_address: Option<Address>,
        pub shipping: Shipping,
        pub totals: Totals,
        pub placed_at: DateTime<Utc>,
    }
}

/// `OrderPlaced` v1 as it was written, kept so its JSON Schema stays generated from a type.
pub mod v1 {
    use chrono::{DateTime, Utc};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};

    use crate::events::{Address, Discount, OrderLine, Shipping, Totals};
    use crate::values::{Channel, Currency, Email, OrderId};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct OrderPlacedV1 {
        pub order_id: OrderId,
        pub channel: Channel,
        pub channel_order_ref: String,
        pub customer_name: String,
        pub customer_email: Email,
        pub customer_phone: Option<String>,
        pub currency: Currency,
        pub lines: Vec<OrderLine>,
        pub discounts: Vec<Discount>,
        pub shipping_address: Address,
        pub billing_address: Option<Address>,
        pub shipping: Shipping,
        pub totals: Totals,
        pub placed_at: DateTime<Utc>,
    }
}

//! Order request bodies the tests send, with the totals the API must compute for them.

use serde_json::{json, Value};

/// What [`sample_order`] must total to, in minor units of USD:
/// lines 2 × 1500 (tax 240) and 1 × 1200 (discount 200, tax 160), order discount 500,
/// shipping 500 (tax 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleTotals {
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub tax_minor: i64,
    pub shipping_minor: i64,
    pub grand_total_minor: i64,
    /// Per line: quantity × unit price − line discount + line tax.
    pub line_totals_minor: [i64; 2],
}

pub const SAMPLE_TOTALS: SampleTotals = SampleTotals {
    subtotal_minor: 4200,
    discount_minor: 700,
    tax_minor: 400,
    shipping_minor: 500,
    grand_total_minor: 4400,
    line_totals_minor: [3240, 1160],
};

/// A valid web order with two lines, an order discount and shipping; `channel_order_ref` makes
/// it a different order from any other (the same ref is the same order).
pub fn sample_order(channel_order_ref: &str) -> Value {
    json!({
        "channel": "web",
        "channel_order_ref": channel_order_ref,
        "currency": "USD",
        "customer": {"customer_id": "c-42", "name": "Ada Lovelace", "email": "ada@example.com", "phone": null},
        "lines": [
            {"sku": "TEE-RED-M", "name": "Red tee", "quantity": 2, "unit_price_minor": 1500,
             "discount_minor": 0, "tax_minor": 240},
            {"sku": "MUG-BLK", "name": "Black mug", "quantity": 1, "unit_price_minor": 1200,
             "discount_minor": 200, "tax_minor": 160}
        ],
        "discounts": [{"code": "WELCOME5", "amount_minor": 500}],
        "shipping_address": {"name": "Ada Lovelace", "line1": "1 Main St", "line2": null,
                             "city": "Springfield", "region": "IL", "postal_code": "62701",
                             "country": "US"},
        "billing_address": null,
        "shipping": {"method": "standard", "price_minor": 500, "tax_minor": 0},
        "payment": {"method": "card", "token": "tok_4242424242424242"},
        "risk_context": {"ip": "203.0.113.7", "device_id": "e2e-device"}
    })
}

/// A cancel request body.
pub fn sample_cancel(reason: &str) -> Value {
    json!({"reason": reason, "note": null})
}

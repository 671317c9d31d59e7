//! What an agent can do to an order from the console, as pure decisions: a form (the fields
//! the order page rendered) becomes the command API request it stands for and a sentence for
//! the confirmation step, or the field that is wrong. Amounts are typed in the order currency's
//! major units and read by [`Currency::parse_major`] (the inverse of how they are shown).

use std::collections::HashMap;

use serde_json::{json, Value};
use waybill_schemas::views::TrackingView;
use waybill_schemas::{Currency, IdempotencyKey, Money};

use crate::screens::ScreenError;

/// An action of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Approve or reject an order held for review.
    Review,
    /// Cancel units of a line that has not left its node.
    CancelLines,
    /// Refund part of the order to the original payment.
    Refund,
    /// Goodwill store credit on the customer's account.
    StoreCredit,
    /// Record the inspection of a returned parcel.
    Inspection,
    /// Answer a dispute (chargeback) with evidence.
    Evidence,
    /// Send a customer notification again.
    ResendNotification,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Review,
        Action::CancelLines,
        Action::Refund,
        Action::StoreCredit,
        Action::Inspection,
        Action::Evidence,
        Action::ResendNotification,
    ];

    pub fn slug(self) -> &'static str {
        match self {
            Self::Review => "review",
            Self::CancelLines => "cancel-lines",
            Self::Refund => "refund",
            Self::StoreCredit => "store-credit",
            Self::Inspection => "inspection",
            Self::Evidence => "evidence",
            Self::ResendNotification => "resend-notification",
        }
    }

    pub fn parse(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.slug() == slug)
    }

    /// What the page says once the command was accepted.
    pub fn done(self) -> &'static str {
        match self {
            Self::Review => "Review decision recorded.",
            Self::CancelLines => "Units cancelled.",
            Self::Refund => "Refund requested.",
            Self::StoreCredit => "Store credit issued.",
            Self::Inspection => "Inspection recorded.",
            Self::Evidence => "Dispute evidence submitted.",
            Self::ResendNotification => {
                "Resend recorded: the message goes out once the notifications view applies it."
            }
        }
    }
}

/// A command ready to send: where, what, and how to say it to the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub path: String,
    pub body: Value,
    pub summary: String,
    pub idempotency_key: String,
}

/// The form fields of one submission.
pub type Fields = HashMap<String, String>;

fn field<'a>(fields: &'a Fields, name: &'static str) -> Result<&'a str, ScreenError> {
    fields
        .get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or(ScreenError::BadInput {
            field: name,
            detail: "is required".to_owned(),
        })
}

fn optional<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn number(fields: &Fields, name: &'static str) -> Result<u32, ScreenError> {
    field(fields, name)?
        .parse::<u32>()
        .map_err(|_| ScreenError::BadInput {
            field: name,
            detail: "must be a whole number".to_owned(),
        })
}

fn amount(fields: &Fields, currency: Currency) -> Result<i64, ScreenError> {
    let minor = currency
        .parse_major(field(fields, "amount")?)
        .map_err(|error| ScreenError::BadInput {
            field: "amount",
            detail: format!(
                "{error} (an amount in {currency} with at most {} decimals)",
                currency.exponent()
            ),
        })?;
    if minor <= 0 {
        return Err(ScreenError::BadInput {
            field: "amount",
            detail: "must be more than 0".to_owned(),
        });
    }
    Ok(minor)
}

fn one_of(fields: &Fields, name: &'static str, allowed: &[&str]) -> Result<String, ScreenError> {
    let value = field(fields, name)?;
    allowed
        .contains(&value)
        .then(|| value.to_owned())
        .ok_or_else(|| ScreenError::BadInput {
            field: name,
            detail: format!("must be one of {}", allowed.join(", ")),
        })
}

/// Reads `fields` as `action` on the order `view`.
pub fn prepare(
    action: Action,
    view: &TrackingView,
    fields: &Fields,
) -> Result<Prepared, ScreenError> {
    let key = field(fields, "idempotency_key")?;
    IdempotencyKey::parse(key).map_err(|error| ScreenError::BadInput {
        field: "idempotency_key",
        detail: error.to_string(),
    })?;
    let order = &view.order_id;
    let note = optional(fields, "note").map(str::to_owned);
    let currency = Currency::parse(&view.currency).map_err(|_| ScreenError::BadInput {
        field: "amount",
        detail: format!(
            "the order's currency {} is not one Waybill knows",
            view.currency
        ),
    })?;
    let (path, body, summary) =
        match action {
            Action::Review => {
                let decision = one_of(fields, "decision", &["approve", "reject"])?;
                let summary = format!(
                    "{} order {} after review.",
                    if decision == "approve" {
                        "Approve"
                    } else {
                        "Reject"
                    },
                    view.channel_order_ref
                );
                (
                    format!("/v1/orders/{order}/review"),
                    json!({"decision": decision, "note": note}),
                    summary,
                )
            }
            Action::CancelLines => {
                let line_no = number(fields, "line_no")?;
                let quantity = number(fields, "quantity")?;
                let line = view.lines.iter().find(|l| l.line_no == line_no).ok_or(
                    ScreenError::BadInput {
                        field: "line_no",
                        detail: "is not a line of this order".to_owned(),
                    },
                )?;
                let reason = one_of(
                    fields,
                    "reason",
                    &["customer_request", "fraud", "out_of_stock", "other"],
                )?;
                (
                    format!("/v1/orders/{order}/lines/cancel"),
                    json!({"lines": [{"line_no": line_no, "quantity": quantity}],
                       "reason": reason, "note": note}),
                    format!(
                        "Cancel {quantity} × {} ({}) from line {line_no}, reason {reason}.",
                        line.name, line.sku
                    ),
                )
            }
            Action::Refund | Action::StoreCredit => {
                let minor = amount(fields, currency)?;
                let reason = field(fields, "reason")?.to_owned();
                let (destination, words) = if action == Action::Refund {
                    ("original_payment", "Refund {} to the original payment")
                } else {
                    (
                        "store_credit",
                        "Give {} goodwill store credit to the customer",
                    )
                };
                let summary = format!(
                    "{}, reason: {reason}.",
                    words.replace("{}", &Money { minor, currency }.to_string())
                );
                (
                    format!("/v1/orders/{order}/refunds"),
                    json!({"amount_minor": minor, "currency": currency.code(), "reason": reason,
                       "kind": "goodwill", "destination": destination}),
                    summary,
                )
            }
            Action::Inspection => {
                let return_id = field(fields, "return_id")?.to_owned();
                let line_no = number(fields, "line_no")?;
                let line = view.lines.iter().find(|l| l.line_no == line_no).ok_or(
                    ScreenError::BadInput {
                        field: "line_no",
                        detail: "is not a line of this order".to_owned(),
                    },
                )?;
                let accepted = number(fields, "accepted")?;
                let rejected = number(fields, "rejected")?;
                let resellable = number(fields, "resellable")?;
                (
                    format!("/v1/orders/{order}/returns/{return_id}/inspection"),
                    json!({"lines": [{"line_no": line_no, "sku": line.sku, "accepted": accepted,
                                  "rejected": rejected, "resellable": resellable, "note": note}]}),
                    format!(
                        "Record return {return_id}, line {line_no} ({}): {accepted} accepted \
                     ({resellable} back to stock), {rejected} rejected.",
                        line.sku
                    ),
                )
            }
            Action::ResendNotification => {
                let kinds: Vec<&str> = waybill_schemas::notifications::NotificationKind::ALL
                    .iter()
                    .map(|k| k.as_str())
                    .collect();
                let kind = one_of(fields, "kind", &kinds)?;
                let medium = match optional(fields, "medium") {
                    None | Some("any") => None,
                    Some(_) => Some(one_of(fields, "medium", &["email", "sms"])?),
                };
                let title = waybill_schemas::notifications::NotificationKind::from_name(&kind)
                    .map_or(kind.as_str(), |k| k.title());
                (
                    format!("/v1/orders/{order}/notifications/resend"),
                    json!({"kind": kind, "medium": medium, "reason": note}),
                    format!(
                        "Send the “{title}” message of order {} again{}.",
                        view.channel_order_ref,
                        medium
                            .as_deref()
                            .map_or(String::new(), |m| format!(" by {m} only"))
                    ),
                )
            }
            Action::Evidence => {
                let dispute_id = field(fields, "dispute_id")?.to_owned();
                let text = field(fields, "text")?.to_owned();
                (
                    format!(
                        "/v1/orders/{order}/disputes/{}/evidence",
                        crate::screens::url_encode(&dispute_id)
                    ),
                    json!({"text": text}),
                    format!(
                        "Answer dispute {dispute_id} with {} characters of evidence.",
                        text.chars().count()
                    ),
                )
            }
        };
    Ok(Prepared {
        path,
        body,
        summary,
        idempotency_key: key.to_owned(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn view() -> TrackingView {
        serde_json::from_value(json!({
            "order_id": "0190f0c4-0000-7000-8000-000000000001", "version": 3,
            "status": "confirmed", "channel": "web", "channel_order_ref": "W-1",
            "currency": "USD",
            "lines": [{"line_no": 1, "sku": "TEE", "name": "Tee", "quantity": 2,
                       "unit_price_minor": 1500, "total_minor": 3000}],
            "totals": {"subtotal_minor": 3000, "discount_minor": 0, "tax_minor": 0,
                       "shipping_minor": 0, "grand_total_minor": 3000},
            "shipping_method": "standard", "placed_at": "2026-11-25T10:00:00Z",
            "updated_at": "2026-11-25T10:00:00Z", "cancellation_reason": null, "timeline": []
        }))
        .unwrap()
    }

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        let mut map: Fields = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        map.entry("idempotency_key".into())
            .or_insert_with(|| "console-key-1".into());
        map
    }

    #[test]
    fn a_partial_refund_is_typed_in_major_units_and_sent_in_minor_units() {
        let prepared = prepare(
            Action::Refund,
            &view(),
            &fields(&[("amount", "12.50"), ("reason", "late parcel")]),
        )
        .unwrap();
        assert_eq!(
            prepared.path,
            "/v1/orders/0190f0c4-0000-7000-8000-000000000001/refunds"
        );
        assert_eq!(prepared.body["amount_minor"], 1250);
        assert_eq!(prepared.body["destination"], "original_payment");
        assert_eq!(
            prepared.summary,
            "Refund 12.50 USD to the original payment, reason: late parcel."
        );
        assert_eq!(prepared.idempotency_key, "console-key-1");
        let credit = prepare(
            Action::StoreCredit,
            &view(),
            &fields(&[("amount", "5"), ("reason", "sorry")]),
        )
        .unwrap();
        assert_eq!(credit.body["destination"], "store_credit");
        assert_eq!(credit.body["amount_minor"], 500);
    }

    #[test]
    fn each_wrong_field_is_named() {
        let wrong = |action, pairs: &[(&str, &str)]| match prepare(action, &view(), &fields(pairs))
        {
            Err(ScreenError::BadInput { field, .. }) => field,
            other => panic!("expected a bad field, got {other:?}"),
        };
        assert_eq!(
            wrong(Action::Refund, &[("amount", "1.005"), ("reason", "x")]),
            "amount"
        );
        assert_eq!(
            wrong(Action::Refund, &[("amount", "0"), ("reason", "x")]),
            "amount"
        );
        assert_eq!(wrong(Action::Refund, &[("amount", "1")]), "reason");
        assert_eq!(wrong(Action::Review, &[("decision", "maybe")]), "decision");
        assert_eq!(
            wrong(
                Action::CancelLines,
                &[("line_no", "9"), ("quantity", "1"), ("reason", "other")]
            ),
            "line_no"
        );
        assert_eq!(wrong(Action::Evidence, &[("dispute_id", "d-1")]), "text");
        assert_eq!(
            wrong(
                Action::Review,
                &[("decision", "approve"), ("idempotency_key", "")]
            ),
            "idempotency_key"
        );
    }

    #[test]
    fn every_action_has_a_slug_that_reads_back() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.slug()), Some(action));
        }
        assert_eq!(Action::parse("resend-everything"), None);
    }

    #[test]
    fn a_resend_names_a_kind_and_at_most_one_medium() {
        let prepared = prepare(
            Action::ResendNotification,
            &view(),
            &fields(&[
                ("kind", "order_confirmed"),
                ("medium", "sms"),
                ("note", "lost it"),
            ]),
        )
        .unwrap();
        assert_eq!(
            prepared.path,
            "/v1/orders/0190f0c4-0000-7000-8000-000000000001/notifications/resend"
        );
        assert_eq!(
            prepared.body,
            json!({"kind": "order_confirmed", "medium": "sms", "reason": "lost it"})
        );
        assert_eq!(
            prepared.summary,
            "Send the “Order confirmed” message of order W-1 again by sms only."
        );
        let any = prepare(
            Action::ResendNotification,
            &view(),
            &fields(&[("kind", "shipped"), ("medium", "any")]),
        )
        .unwrap();
        assert_eq!(any.body["medium"], Value::Null);
        assert!(matches!(
            prepare(
                Action::ResendNotification,
                &view(),
                &fields(&[("kind", "spam")])
            ),
            Err(ScreenError::BadInput { field: "kind", .. })
        ));
    }
}

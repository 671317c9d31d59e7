//! What the payment gateway says it settled and paid out. These events live in streams of their
//! own, not in order streams: `settlement-<report_id>` (one event per imported report, appended
//! at expected version 0, so the same report twice is one import) and
//! `payout-<gateway>-<payout_id>` (one event per payout, also at expected version 0).

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::values::{Money, OrderId};

/// Stream prefix of imported settlement reports.
pub const SETTLEMENT_STREAM_PREFIX: &str = "settlement-";
/// Stream prefix of payouts.
pub const PAYOUT_STREAM_PREFIX: &str = "payout-";

/// The stream of one imported report (`report_id` is the SHA-256 of its bytes, hex).
pub fn settlement_stream_id(report_id: &str) -> String {
    format!("{SETTLEMENT_STREAM_PREFIX}{report_id}")
}

/// The stream of one payout of one gateway.
pub fn payout_stream_id(gateway: &str, payout_id: &str) -> String {
    format!("{PAYOUT_STREAM_PREFIX}{gateway}-{payout_id}")
}

/// What a settlement report line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SettlementLineKind {
    /// Money taken from the card holder (`transaction_id` = the capture id).
    Capture,
    /// Money given back (`transaction_id` = the gateway refund id).
    Refund,
    /// A lost or provisional chargeback debit (`transaction_id` = the dispute id).
    Chargeback,
    /// A chargeback debit given back after a won dispute (`transaction_id` = the dispute id).
    ChargebackReversal,
    /// A fee on its own (dispute fee, monthly fee), `gross` zero.
    Fee,
    /// A correction by the gateway.
    Adjustment,
}

impl SettlementLineKind {
    pub const ALL: &'static [SettlementLineKind] = &[
        Self::Capture,
        Self::Refund,
        Self::Chargeback,
        Self::ChargebackReversal,
        Self::Fee,
        Self::Adjustment,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Refund => "refund",
            Self::Chargeback => "chargeback",
            Self::ChargebackReversal => "chargeback_reversal",
            Self::Fee => "fee",
            Self::Adjustment => "adjustment",
        }
    }
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == raw)
    }
}

/// One line of a gateway settlement report, as the gateway wrote it (duplicates and odd
/// amounts included: reconciliation judges them, the import does not).
///
/// Signs are from the merchant's side: `gross` is positive for money in (capture,
/// chargeback reversal) and negative for money out (refund, chargeback); `fee` is what the
/// gateway kept (positive; negative when it gave a fee back); `net = gross − fee` always (the
/// import refuses a report where it is not). All three are in the settlement currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementLine {
    /// 1-based position among the report's data lines (the CSV header is line 0).
    pub line_no: u32,
    pub transaction_id: String,
    pub kind: SettlementLineKind,
    /// The Waybill order, when the gateway knows it (the order id travels as the gateway
    /// payment's reference).
    pub order_id: Option<OrderId>,
    pub gross: Money,
    pub fee: Money,
    pub net: Money,
    /// The amount in the currency the customer paid, when the gateway converted it.
    pub original: Option<Money>,
    pub payout_id: Option<String>,
    pub transaction_date: NaiveDate,
    pub settled_on: NaiveDate,
}

/// `SettlementReportImported` v1: Waybill imported a gateway's settlement report for
/// `report_date`. Stream `settlement-<report_id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementReportImported {
    /// SHA-256 of the report's bytes, lowercase hex.
    pub report_id: String,
    /// Which gateway sent it (`sandbox` for ours).
    pub gateway: String,
    pub report_date: NaiveDate,
    pub lines: Vec<SettlementLine>,
    pub imported_by: String,
    pub imported_at: DateTime<Utc>,
}

/// `PayoutRecorded` v1: the gateway paid (or will pay on `paid_on`) `amount` to the merchant's
/// bank account; it is the sum of the `net` of the report lines listed in `transaction_ids`.
/// Stream `payout-<gateway>-<payout_id>`; recorded from the first report that names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutRecorded {
    pub payout_id: String,
    pub gateway: String,
    pub amount: Money,
    pub paid_on: NaiveDate,
    /// The report it was recorded from.
    pub report_id: String,
    /// The transaction ids of the report lines it settles, in report order.
    pub transaction_ids: Vec<String>,
    pub recorded_at: DateTime<Utc>,
}

-- Waybill analytics read models (ClickHouse). Written only by the analytics projector and the
-- reconciliation runner; read by the finance API. SQL that ClickHouse 18.16 and current releases
-- both run: no DateTime64, Bool, CREATE OR REPLACE, server-side parameters or LowCardinality.
-- Every table is a ReplacingMergeTree keyed by its natural key with a version column, so a row
-- written twice (redelivery, rebuild, rerun) is one row; readers use FINAL or argMax.
-- The migration runner drops `--` comment lines and runs the statements split on `;`.

-- One row per order: the latest state the projector folded, `version` = its stream version.
CREATE TABLE IF NOT EXISTS order_facts (
    order_id String,
    channel String,
    currency String,
    status String,
    line_count UInt32,
    item_count UInt32,
    subtotal Int64,
    discount_total Int64,
    tax_total Int64,
    shipping_total Int64,
    grand_total Int64,
    authorized Int64,
    captured Int64,
    refunded Int64,
    chargebacks_lost Int64,
    placed_at DateTime('UTC'),
    risk_assessed_at Nullable(DateTime('UTC')),
    reserved_at Nullable(DateTime('UTC')),
    authorized_at Nullable(DateTime('UTC')),
    confirmed_at Nullable(DateTime('UTC')),
    captured_at Nullable(DateTime('UTC')),
    cancelled_at Nullable(DateTime('UTC')),
    cancel_reason String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY order_id;

-- One row per order line, as placed.
CREATE TABLE IF NOT EXISTS line_facts (
    order_id String,
    line_no UInt32,
    sku String,
    channel String,
    currency String,
    quantity UInt32,
    unit_price Int64,
    discount Int64,
    tax Int64,
    total Int64,
    placed_at DateTime('UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (order_id, line_no);

-- Every money movement (authorization, capture, void, refund, chargeback opened/won/lost, fee),
-- positive amounts in minor units; `kind` gives the direction. `entry_id` is the event id for
-- order events and `<report id>:<line no>` for fees, which only settlement reports tell (their
-- `channel` is empty: it is the order's). `gateway_txn_id` is what settlement reports name.
CREATE TABLE IF NOT EXISTS ledger_entries (
    entry_id String,
    order_id String,
    kind String,
    gateway_txn_id String,
    channel String,
    currency String,
    amount Int64,
    occurred_at DateTime('UTC'),
    day Date,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY entry_id;

-- Shipments and returns (filled once fulfilment and returns exist).
CREATE TABLE IF NOT EXISTS shipments (
    shipment_id String,
    order_id String,
    channel String,
    carrier String,
    status String,
    shipped_at Nullable(DateTime('UTC')),
    delivered_at Nullable(DateTime('UTC')),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY shipment_id;

CREATE TABLE IF NOT EXISTS returns (
    return_id String,
    order_id String,
    line_no UInt32,
    sku String,
    channel String,
    reason String,
    quantity UInt32,
    requested_at DateTime('UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (return_id, line_no);

-- The lines of imported gateway settlement reports, keyed by report and line number.
CREATE TABLE IF NOT EXISTS settlement_lines (
    report_id String,
    line_no UInt32,
    gateway_txn_id String,
    kind String,
    order_id String,
    currency String,
    gross Int64,
    fee Int64,
    net Int64,
    original_currency String,
    original_amount Int64,
    payout_id String,
    transaction_date Date,
    settled_date Date,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (report_id, line_no);

-- Payouts the gateway made, and how many report lines each settles.
CREATE TABLE IF NOT EXISTS payouts (
    payout_id String,
    currency String,
    amount Int64,
    paid_on Date,
    transaction_count UInt32,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY payout_id;

-- One row per reconciled item of a day: matched, or the discrepancy found. A rerun of a day
-- writes every item again with a higher `run_version`; readers keep the newest run per day.
CREATE TABLE IF NOT EXISTS reconciliation_results (
    day Date,
    item_key String,
    outcome String,
    gateway_txn_id String,
    order_id String,
    kind String,
    channel String,
    currency String,
    payout_id String,
    ledger_amount Int64,
    report_amount Int64,
    ledger_fee Int64,
    report_fee Int64,
    detail String,
    run_version UInt64
) ENGINE = ReplacingMergeTree(run_version)
PARTITION BY toYYYYMM(day)
ORDER BY (day, item_key);

-- The last stream version applied of streams that have no fact row of their own (settlement
-- reports, payouts): the projector's position, written after the rows it covers.
CREATE TABLE IF NOT EXISTS stream_positions (
    stream_id String,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY stream_id;

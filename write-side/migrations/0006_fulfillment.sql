-- The fulfillment process manager's work list and durable deadlines (same design as
-- checkout_flows): one row per confirmed order whose fulfillment is not finished. `due_at` is
-- "run now" or a deadline (the auto-close time after the last delivery); a claim pushes it
-- forward by a lease; `wakeups` counts node/carrier webhooks so none is lost during a pass.
-- Rows are created in the same transaction as the order's `OrderConfirmed`.
CREATE TABLE IF NOT EXISTS fulfillment_flows (
    order_id    UUID        PRIMARY KEY,
    due_at      TIMESTAMPTZ NOT NULL,
    wakeups     BIGINT      NOT NULL DEFAULT 0,
    -- What the flow waits for (`run`, `node`, `auto_close`, `retry`).
    stage       TEXT        NOT NULL DEFAULT 'run',
    attempts    INT         NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS fulfillment_flows_due_at ON fulfillment_flows (due_at);

-- Transit times learned from deliveries (routing's ETA): one row per delivered parcel, written
-- in the transaction of its `ShipmentTracked` delivered event. Insert-only (no hot counter row
-- that every delivery would update under SERIALIZABLE); routing averages the last 90 days per
-- carrier and zone distance.
CREATE TABLE IF NOT EXISTS carrier_transit_samples (
    shipment_id   TEXT        PRIMARY KEY,
    carrier       TEXT        NOT NULL,
    distance      INT         NOT NULL,
    hours         BIGINT      NOT NULL,
    delivered_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS carrier_transit_samples_recent
    ON carrier_transit_samples (delivered_at);

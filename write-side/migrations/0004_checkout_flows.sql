-- The checkout process manager's work list and durable deadlines: one row per order whose
-- checkout flow is not finished. `due_at` is when a worker should next look at the order (now,
-- or a deadline: reservation expiry, 3-D Secure timeout, review timeout, authorization expiry).
-- Workers claim due rows with FOR UPDATE SKIP LOCKED and push `due_at` forward by a lease, so a
-- crashed worker's orders come due again by themselves. `wakeups` counts wake-ups (a webhook, a
-- cancel, a review decision): a worker only parks or finishes a row whose count it has seen,
-- so a wake-up that lands while it works is never lost.
CREATE TABLE IF NOT EXISTS checkout_flows (
    order_id    UUID        PRIMARY KEY,
    due_at      TIMESTAMPTZ NOT NULL,
    wakeups     BIGINT      NOT NULL DEFAULT 0,
    -- What the flow waits for (`run`, `review`, `payment_challenge`, `capture`, ...).
    stage       TEXT        NOT NULL DEFAULT 'run',
    attempts    INT         NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS checkout_flows_due_at ON checkout_flows (due_at);
CREATE INDEX IF NOT EXISTS checkout_flows_stage ON checkout_flows (stage);

-- Gateway webhooks already applied, by the gateway's event id: a redelivered webhook changes
-- nothing. Written in the same transaction as the events it caused.
CREATE TABLE IF NOT EXISTS webhook_receipts (
    provider     TEXT        NOT NULL,
    event_id     TEXT        NOT NULL,
    order_id     UUID,
    outcome      TEXT        NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (provider, event_id)
);

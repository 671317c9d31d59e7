-- Crypto-shredding (erasure). Personal fields of events are sealed in the event JSON under a
-- per-customer data key; the data key is stored here wrapped (sealed) under the operator's
-- master key, which is never in the database. Erasing a customer destroys the wrapped key: the
-- sealed fields stay in the log and in every copy of it (outbox, NATS, feed) but never open
-- again, and read as erased. Runs unchanged on PostgreSQL and CockroachDB: UUID keys, a partial
-- unique index, no sequences, no advisory locks.

CREATE TABLE IF NOT EXISTS pii_keys (
    key_id      UUID        PRIMARY KEY,
    -- `customer:<channel customer id>`, or `order:<order stream>` for a guest checkout.
    subject     TEXT        NOT NULL,
    -- The data key sealed under the master key; NULL once erased.
    wrapped     BYTEA,
    created_at  TIMESTAMPTZ NOT NULL,
    erased_at   TIMESTAMPTZ,
    CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL))
);
-- At most one live key per subject; an erased subject that orders again gets a new key.
CREATE UNIQUE INDEX IF NOT EXISTS pii_keys_live_subject ON pii_keys (subject)
    WHERE erased_at IS NULL;
CREATE INDEX IF NOT EXISTS pii_keys_subject ON pii_keys (subject);

-- Which key an order stream's personal fields are sealed under: later events of the order
-- (an edited address, a proof of delivery) seal under the same key, and an erasure finds the
-- customer's orders here.
CREATE TABLE IF NOT EXISTS pii_streams (
    stream_id   TEXT        PRIMARY KEY,
    key_id      UUID        NOT NULL
);
CREATE INDEX IF NOT EXISTS pii_streams_key ON pii_streams (key_id);

-- The event log, the idempotency records, channel order references and the outbox.
-- Runs unchanged on PostgreSQL and CockroachDB: UUID and natural keys only, no sequences that
-- must be gapless, no advisory locks, no LISTEN/NOTIFY.

CREATE TABLE IF NOT EXISTS events (
    stream_id       TEXT        NOT NULL,
    stream_version  BIGINT      NOT NULL CHECK (stream_version >= 1),
    event_id        UUID        NOT NULL UNIQUE,
    event_type      TEXT        NOT NULL,
    schema_version  INT         NOT NULL,
    occurred_at     TIMESTAMPTZ NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    correlation_id  UUID        NOT NULL,
    causation_id    UUID,
    traceparent     TEXT,
    actor_kind      TEXT        NOT NULL,
    actor_id        TEXT        NOT NULL,
    channel         TEXT,
    payload         JSONB       NOT NULL,
    -- The primary key is the optimistic concurrency check: two writers of one version collide.
    PRIMARY KEY (stream_id, stream_version)
);

-- One row per (client, Idempotency-Key): the request's hash and the exact response sent.
CREATE TABLE IF NOT EXISTS idempotency_records (
    scope            TEXT        NOT NULL,
    idempotency_key  TEXT        NOT NULL,
    request_hash     BYTEA       NOT NULL,
    response_status  SMALLINT    NOT NULL,
    response_headers JSONB       NOT NULL,
    response_body    BYTEA       NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX IF NOT EXISTS idempotency_records_created_at ON idempotency_records (created_at);

-- Multi-channel capture: one Waybill order per channel order reference.
CREATE TABLE IF NOT EXISTS channel_orders (
    channel            TEXT NOT NULL,
    channel_order_ref  TEXT NOT NULL,
    order_id           UUID NOT NULL,
    PRIMARY KEY (channel, channel_order_ref)
);

-- Events committed but not yet acknowledged by JetStream. Written in the same transaction as the
-- events; deleted by the relay only after the publish ack.
CREATE TABLE IF NOT EXISTS outbox (
    event_id        UUID        PRIMARY KEY,
    stream_id       TEXT        NOT NULL,
    stream_version  BIGINT      NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_created_at ON outbox (created_at);

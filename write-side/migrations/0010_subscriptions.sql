-- Event subscriptions for integrators (write-side/src/subscriptions/ owns these tables).
--
-- The event feed: every event of the log with a feed position. Positions are assigned after the
-- event committed, by the feed view (projectors/src/views/feed), which takes them from the one
-- `event_feed_head` row in the transaction that inserts the feed rows. That row lock orders the
-- writers: positions N+1.. become visible only after every position up to N committed, so a
-- reader paging `position > cursor` can never step over an event that commits later. Commands
-- never touch this table: the log itself keeps no global sequence.
CREATE TABLE IF NOT EXISTS event_feed (
    position        BIGINT      PRIMARY KEY,
    stream_id       TEXT        NOT NULL,
    stream_version  BIGINT      NOT NULL,
    event_type      TEXT        NOT NULL,
    UNIQUE (stream_id, stream_version)
);

-- The last position given out (one row).
CREATE TABLE IF NOT EXISTS event_feed_head (
    id        SMALLINT PRIMARY KEY CHECK (id = 1),
    position  BIGINT   NOT NULL
);
INSERT INTO event_feed_head (id, position) VALUES (1, 0) ON CONFLICT DO NOTHING;

-- Per stream, the last version the feed holds: the feed view's compare-and-set state.
CREATE TABLE IF NOT EXISTS event_feed_streams (
    stream_id  TEXT   PRIMARY KEY,
    version    BIGINT NOT NULL
);

-- Registered webhook endpoints. `position` is the feed position delivered (or held back as a
-- retry) through; the delivery workers lease a subscription (`leased_until`, claimed with
-- FOR UPDATE SKIP LOCKED) so each is delivered by one worker at a time.
CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    subscription_id  UUID        PRIMARY KEY,
    url              TEXT        NOT NULL,
    -- Empty: every event type.
    event_types      TEXT[]      NOT NULL,
    description      TEXT,
    -- The signing secret, sealed (ChaCha20-Poly1305 under WAYBILL_WEBHOOK_SEALING_KEY).
    sealed_secret    BYTEA       NOT NULL,
    status           TEXT        NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    position         BIGINT      NOT NULL,
    -- Rounds in a row in which every delivery failed (the receiver looks down).
    failures         INT         NOT NULL DEFAULT 0,
    retry_at         TIMESTAMPTZ NOT NULL,
    last_error       TEXT,
    last_delivered_at TIMESTAMPTZ,
    delivered        BIGINT      NOT NULL DEFAULT 0,
    leased_until     TIMESTAMPTZ,
    lease_owner      UUID
);
CREATE INDEX IF NOT EXISTS webhook_subscriptions_due ON webhook_subscriptions (retry_at)
    WHERE status = 'active';

-- Events held back for one subscription after a failed delivery, with the later events of the
-- same order behind them (so each order's events still arrive in order).
CREATE TABLE IF NOT EXISTS webhook_retries (
    subscription_id  UUID        NOT NULL,
    position         BIGINT      NOT NULL,
    stream_id        TEXT        NOT NULL,
    attempts         INT         NOT NULL,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    last_error       TEXT,
    -- Set when this is a dead letter sent again on request.
    dead_letter_id   UUID,
    PRIMARY KEY (subscription_id, position)
);

-- Events given up on after the attempts ran out; sent again on request.
CREATE TABLE IF NOT EXISTS webhook_dead_letters (
    dead_letter_id   UUID        PRIMARY KEY,
    subscription_id  UUID        NOT NULL,
    position         BIGINT      NOT NULL,
    event_id         UUID        NOT NULL,
    stream_id        TEXT        NOT NULL,
    event_type       TEXT        NOT NULL,
    attempts         INT         NOT NULL,
    last_error       TEXT,
    -- dead | redelivering | redelivered
    status           TEXT        NOT NULL,
    dead_at          TIMESTAMPTZ NOT NULL,
    redelivered_at   TIMESTAMPTZ,
    UNIQUE (subscription_id, position)
);
CREATE INDEX IF NOT EXISTS webhook_dead_letters_by_subscription
    ON webhook_dead_letters (subscription_id, dead_at DESC);

-- The exceptions desk (write-side/src/desk/ owns desk_entries; projectors/src/desk/store.rs the
-- others). The desk projector folds each order's events into a watch (its current stage, since
-- when, its deadlines and open problems) and records every finished stage's duration and the
-- signals anomaly detection counts, in the transaction that advances the watch's version, so
-- redelivered events add nothing twice. The detector turns watches, dead letters and anomalies
-- into entries; resolving one is a DeskEntryResolved event in the entry's stream `desk-<id>`.
CREATE TABLE IF NOT EXISTS desk_watches (
    stream_id   TEXT        PRIMARY KEY,
    version     BIGINT      NOT NULL,
    -- False once the order is closed or cancelled: nothing left to watch.
    active      BOOLEAN     NOT NULL,
    state       JSONB       NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS desk_watches_active ON desk_watches (active) WHERE active;

-- How long each finished stage took, per channel and fulfillment node ('-' when none).
CREATE TABLE IF NOT EXISTS desk_stage_samples (
    stream_id    TEXT        NOT NULL,
    stage        TEXT        NOT NULL,
    -- The version that entered the stage: a stage entered twice is two samples.
    entered_version BIGINT   NOT NULL,
    channel      TEXT        NOT NULL,
    node         TEXT        NOT NULL,
    duration_ms  BIGINT      NOT NULL,
    finished_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (stream_id, stage, entered_version)
);
CREATE INDEX IF NOT EXISTS desk_stage_samples_recent
    ON desk_stage_samples (stage, channel, node, finished_at DESC);

-- Confirmations, declines and fraud holds per channel, one row per event.
CREATE TABLE IF NOT EXISTS desk_signals (
    stream_id   TEXT        NOT NULL,
    version     BIGINT      NOT NULL,
    channel     TEXT        NOT NULL,
    signal      TEXT        NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (stream_id, version)
);
CREATE INDEX IF NOT EXISTS desk_signals_at ON desk_signals (at);

CREATE TABLE IF NOT EXISTS desk_entries (
    entry_id     UUID        PRIMARY KEY,
    -- What makes two findings the same entry (`stage_overdue:<order>:<stage>:<version>`).
    dedupe_key   TEXT        NOT NULL UNIQUE,
    kind         TEXT        NOT NULL,
    order_id     UUID,
    channel      TEXT,
    reason       TEXT        NOT NULL,
    suggested_action TEXT    NOT NULL,
    details      JSONB       NOT NULL,
    status       TEXT        NOT NULL,
    opened_at    TIMESTAMPTZ NOT NULL,
    resolved_at  TIMESTAMPTZ,
    resolved_by  TEXT,
    resolution   TEXT,
    resolution_note TEXT,
    resolution_event_id UUID
);
CREATE INDEX IF NOT EXISTS desk_entries_open ON desk_entries (status, opened_at DESC);

-- Operations samples for the /ops page: one row per metric and label per sampling tick,
-- kept for a day (the sampler deletes older rows).
CREATE TABLE IF NOT EXISTS ops_samples (
    at      TIMESTAMPTZ      NOT NULL,
    metric  TEXT             NOT NULL,
    label   TEXT             NOT NULL,
    value   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (metric, label, at)
);
CREATE INDEX IF NOT EXISTS ops_samples_at ON ops_samples (at);

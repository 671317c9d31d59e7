-- Velocity signals for risk scoring: one row per (identifier, order), e.g.
-- ('email:ada@example.com', <order id>). Counting the rows of one signal recorded since a cutoff
-- gives "orders from this email in the last hour". Owned by write-side/src/risk_signals.rs.
CREATE TABLE risk_signals (
    signal      TEXT        NOT NULL,
    order_id    UUID        NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (signal, order_id)
);

-- The window count: one range scan per signal.
CREATE INDEX risk_signals_signal_recorded_at ON risk_signals (signal, recorded_at);

-- The purge of rows older than the longest window.
CREATE INDEX risk_signals_recorded_at ON risk_signals (recorded_at);

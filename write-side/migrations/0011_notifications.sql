-- Customer notifications.
--
-- notification_deliveries is the notifications view's sent-once ledger
-- (projectors/src/views/notifications/ledger.rs owns it): one row per message, keyed by the event
-- that caused it and the medium. A sender claims the row (status 'sending', a short claim) before
-- it hands the message to the provider and marks it 'sent' after the provider accepted it; a row
-- that is 'sent' is never sent again, whatever happens to Redis (the view's state) or NATS
-- (redelivery). A claim left by a sender killed between the provider's answer and the update is
-- taken over once it lapses and sent again with the same Message-ID / Idempotency-Key, so a
-- provider that de-duplicates (the SMS sandbox does) drops the repeat.
CREATE TABLE IF NOT EXISTS notification_deliveries (
    event_id       UUID        NOT NULL,
    medium         TEXT        NOT NULL,
    order_id       UUID        NOT NULL,
    kind           TEXT        NOT NULL,
    recipient      TEXT        NOT NULL,
    locale         TEXT        NOT NULL,
    -- 'sending' (claimed), 'sent', or 'failed' (the provider refused it for good).
    status         TEXT        NOT NULL,
    attempts       INT         NOT NULL,
    claimed_by     TEXT        NOT NULL,
    claimed_until  TIMESTAMPTZ NOT NULL,
    provider_id    TEXT,
    last_error     TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    sent_at        TIMESTAMPTZ,
    PRIMARY KEY (event_id, medium)
);
CREATE INDEX IF NOT EXISTS notification_deliveries_by_order
    ON notification_deliveries (order_id, created_at);

-- What each signed-in customer wants to hear by, and in which language
-- (write-side/src/notification_preferences.rs owns it). The customer id is the channel's id of
-- the customer (the JWT subject, OrderPlaced.customer.customer_id). media: 'email', 'sms'; empty
-- means no messages at all.
CREATE TABLE IF NOT EXISTS notification_preferences (
    customer_id  TEXT        PRIMARY KEY,
    media        TEXT[]      NOT NULL,
    locale       TEXT        NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- The inventory bounded context: locations, stock per SKU per location, reservations per order
-- line and location, and the movements that changed on-hand stock. Only
-- `write-side/src/inventory/store.rs` reads or writes these tables.

CREATE TABLE IF NOT EXISTS inventory_locations (
    location_id  TEXT    PRIMARY KEY,
    kind         TEXT    NOT NULL CHECK (kind IN ('warehouse', 'store', 'third_party')),
    name         TEXT    NOT NULL,
    country      CHAR(2) NOT NULL,
    zone         INT     NOT NULL,
    active       BOOL    NOT NULL DEFAULT TRUE
);

-- The CHECK is the last line of defence against overselling: no code path can commit more
-- reserved + allocated units than there are on hand.
CREATE TABLE IF NOT EXISTS inventory_stock (
    sku          TEXT   NOT NULL,
    location_id  TEXT   NOT NULL REFERENCES inventory_locations (location_id),
    on_hand      BIGINT NOT NULL,
    reserved     BIGINT NOT NULL DEFAULT 0,
    allocated    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (sku, location_id),
    CONSTRAINT inventory_stock_never_oversold CHECK (
        on_hand >= 0 AND reserved >= 0 AND allocated >= 0 AND reserved + allocated <= on_hand
    )
);

-- Units of one order line held at one location. `reserved` rows expire at `expires_at` (the
-- sweep releases them); `allocated` rows are hard holds taken at confirmation.
CREATE TABLE IF NOT EXISTS inventory_reservations (
    order_id          UUID        NOT NULL,
    line_no           INT         NOT NULL,
    sku               TEXT        NOT NULL,
    location_id       TEXT        NOT NULL,
    quantity          BIGINT      NOT NULL CHECK (quantity > 0),
    state             TEXT        NOT NULL CHECK (state IN ('reserved', 'allocated', 'released')),
    -- Where the order ships to, so an expired reservation can be taken again at allocation.
    ship_country      CHAR(2)     NOT NULL,
    ship_postal_code  TEXT        NOT NULL,
    expires_at        TIMESTAMPTZ NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (order_id, line_no, location_id)
);
CREATE INDEX IF NOT EXISTS inventory_reservations_expires_at
    ON inventory_reservations (expires_at) WHERE state = 'reserved';

-- Restocks and adjustments. The id is derived from the caller's idempotency key, so a retried
-- movement is applied once.
CREATE TABLE IF NOT EXISTS inventory_movements (
    movement_id    TEXT        PRIMARY KEY,
    sku            TEXT        NOT NULL,
    location_id    TEXT        NOT NULL,
    delta_on_hand  BIGINT      NOT NULL,
    reason         TEXT        NOT NULL,
    order_id       UUID,
    at             TIMESTAMPTZ NOT NULL
);

-- An order's desk entries, for the order's own timeline (the console's order page and
-- GET /v1/agent/orders/{id} show each resolution beside the order's events).
CREATE INDEX IF NOT EXISTS desk_entries_by_order ON desk_entries (order_id) WHERE order_id IS NOT NULL;

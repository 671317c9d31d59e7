-- The routing simulator (`waybill routing simulate`, `POST /v1/routing/simulations`) pages
-- through the `RoutingDecided` events of a time window. A partial index holds only those rows
-- (one per routing decision, a few per cent of the log), in log order, so a window is one
-- range scan whatever the size of the rest of the log. PostgreSQL and CockroachDB (20.2+)
-- both support partial indexes.
CREATE INDEX IF NOT EXISTS events_routing_decided
    ON events (recorded_at, stream_id, stream_version)
    WHERE event_type = 'RoutingDecided';

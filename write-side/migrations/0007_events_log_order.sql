-- The log order rebuilds and catch-up page through (`EventStore::read_all_page`): keyset paging
-- on this index reads each page as a range scan after the previous page's last key, instead of
-- sorting the whole table for every page.
-- On CockroachDB a time-ordered index concentrates inserts on one range; at scale declare it
-- `USING HASH` there (PostgreSQL has no such clause, so this file keeps the portable form).
CREATE INDEX IF NOT EXISTS events_log_order ON events (recorded_at, stream_id, stream_version);

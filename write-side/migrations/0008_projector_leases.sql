-- Partition ownership of a view run by several projector instances
-- (projectors/src/runtime/leases.rs owns these tables). Each instance keeps a membership row
-- alive and holds leases on its share of the view's partitions; rows expire unless renewed, so
-- a killed instance's partitions pass to the others once its leases run out. Claimed and renewed
-- in SERIALIZABLE transactions with the database's clock: no advisory locks (CockroachDB).
CREATE TABLE IF NOT EXISTS projector_members (
    view        TEXT        NOT NULL,
    instance    TEXT        NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (view, instance)
);

CREATE TABLE IF NOT EXISTS projector_leases (
    view        TEXT        NOT NULL,
    partition   INT         NOT NULL,
    owner       TEXT        NOT NULL,
    -- Incremented on every change of owner: how often the partition moved.
    epoch       BIGINT      NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (view, partition)
);

-- Generation markers of the views kept in this warehouse (projectors/src/runtime/self_heal.rs):
-- the row named after the view holds its generation and whether it is `catching_up` or
-- `ready`; the row `<view>:filler` holds the lease of the instance filling it (`holder`,
-- `lease_until` in Unix milliseconds). Written with a growing `version`, read with FINAL. The
-- table lives in the database it marks, so a `DROP DATABASE` takes the marker with the data.
CREATE TABLE IF NOT EXISTS view_markers (
    name String,
    generation String,
    state String,
    holder String,
    lease_until UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY name;

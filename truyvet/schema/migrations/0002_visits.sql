-- Visits, written by the stream worker. Deterministic visit_id + ReplacingMergeTree(version):
-- a redelivered batch writes identical rows, a re-emitted visit a higher version; readers take the
-- latest version (FINAL) and drop rows marked deleted. Daily partitions by t_in: retention drops
-- whole partitions. visits_by_venue is the same data keyed for "who was at venue V between t1 and t2".
CREATE TABLE IF NOT EXISTS visits (
    visit_id String,
    person_id String,
    venue_id String,
    t_in DateTime('UTC'),
    t_out DateTime('UTC'),
    source_in String,
    source_out String,
    version UInt64,
    deleted UInt8,
    written_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(t_in)
ORDER BY (person_id, t_in, visit_id);

CREATE TABLE IF NOT EXISTS visits_by_venue (
    visit_id String,
    person_id String,
    venue_id String,
    t_in DateTime('UTC'),
    t_out DateTime('UTC'),
    source_in String,
    source_out String,
    version UInt64,
    deleted UInt8,
    written_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(t_in)
ORDER BY (venue_id, t_in, visit_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS visits_by_venue_mv TO visits_by_venue AS
SELECT visit_id, person_id, venue_id, t_in, t_out, source_in, source_out, version, deleted, written_at
FROM visits;

-- Issue 5 (trace latency): visits and visits_by_venue rebuilt with index_granularity = 1024 (was the
-- default 8192). A trace reads a few rows of hundreds of persons or venues in each daily partition;
-- with 8192-row granules (and 64 KiB compressed blocks) each of those reads decompressed ~1 MB to
-- return a handful of rows (100M visits: 280 MB decompressed for 1,200 rows). Together with the
-- server's smaller compressed blocks (deploy/clickhouse/users.xml: min_compress_block_size 4096) a
-- read now costs about one 1024-row granule per column.
-- 18.16 cannot change index_granularity of an existing table, so the tables are swapped for new ones
-- and the rows copied. The copy goes through the recreated materialized view (visits ->
-- visits_by_venue), so both sort orders hold the same rows, also rows written to the old table
-- until the swap. Traces see incomplete data until the copy ends (minutes at 100M visits). If the
-- migration stops after the RENAME, finish by hand: INSERT INTO visits SELECT * FROM visits_0002,
-- then drop visits_0002 and visits_by_venue_0002.
CREATE TABLE IF NOT EXISTS visits_g1024 (
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
ORDER BY (person_id, t_in, visit_id)
SETTINGS index_granularity = 1024;

CREATE TABLE IF NOT EXISTS visits_by_venue_g1024 (
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
ORDER BY (venue_id, t_in, visit_id)
SETTINGS index_granularity = 1024;

DROP TABLE IF EXISTS visits_by_venue_mv;

RENAME TABLE visits TO visits_0002, visits_g1024 TO visits, visits_by_venue TO visits_by_venue_0002, visits_by_venue_g1024 TO visits_by_venue;

CREATE MATERIALIZED VIEW IF NOT EXISTS visits_by_venue_mv TO visits_by_venue AS
SELECT visit_id, person_id, venue_id, t_in, t_out, source_in, source_out, version, deleted, written_at
FROM visits;

INSERT INTO visits (visit_id, person_id, venue_id, t_in, t_out, source_in, source_out, version, deleted, written_at)
SELECT visit_id, person_id, venue_id, t_in, t_out, source_in, source_out, version, deleted, written_at
FROM visits_0002;

DROP TABLE IF EXISTS visits_0002;

DROP TABLE IF EXISTS visits_by_venue_0002

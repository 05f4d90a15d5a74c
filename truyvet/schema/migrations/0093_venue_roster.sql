-- A venue registration that names its roster row (`roster_id`, issue 15); venues without one are
-- matched to the roster by normalised name and address within their ward (trace_api/compliance.py).
CREATE TABLE IF NOT EXISTS venue_roster (
    venue_id String,
    roster_id String,
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(updated_at) ORDER BY venue_id;

-- Health declarations (Decision 2666/QĐ-BYT), pseudonymous: the person is the same pseudonym scans
-- carry; no name, no ID number. Partitioned by day so retention drops whole days (streams/retention.py).
CREATE TABLE IF NOT EXISTS declarations (
    declaration_id String,
    declared_at DateTime('UTC'),
    person_id String,
    ward_code String,
    venue_id String,
    symptoms Array(String),
    other_symptoms String,
    contact_with_case UInt8,
    travel String,
    source String,
    received_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(received_at) PARTITION BY toYYYYMMDD(declared_at)
ORDER BY (ward_code, declared_at, declaration_id);

-- Personal details read from CCCD cards at the ingest edge, keyed by the person's pseudonym.
-- Restricted: only the health roles read it (trace API), only for their ward. The raw ID number is
-- never stored anywhere; birth_date is 'YYYY-MM-DD' text because Date starts at 1970.
CREATE TABLE IF NOT EXISTS person_details (
    person_id String,
    full_name String,
    birth_date String,
    sex String,
    address String,
    residence_ward_code String,
    source String,
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(updated_at) ORDER BY person_id;

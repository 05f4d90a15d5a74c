-- Card details that disagree with the person's stored details (same pseudonym, other name, birth date, sex
-- or address): the first write stands in person_details, a device cannot overwrite it; what it sent is kept
-- here for the health center of the stored residence ward (and of the card's ward) to resolve.
-- Restricted like person_details: only the health roles read it (trace API), only for their ward.
CREATE TABLE IF NOT EXISTS person_details_conflicts (
    person_id String,
    full_name String,
    birth_date String,
    sex String,
    address String,
    residence_ward_code String,
    stored_ward_code String,
    reported_by String,
    received_at DateTime('UTC')
) ENGINE = MergeTree PARTITION BY toYYYYMM(received_at) ORDER BY (stored_ward_code, received_at, person_id);

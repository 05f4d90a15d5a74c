-- Printed personal cards (issue 15): the signed payload issued for a pseudonymous person, its key id,
-- and the phone given at issue (restricted like person_details: health roles of the person's ward).
CREATE TABLE IF NOT EXISTS person_cards (
    person_id String,
    residence_ward_code String,
    phone String,
    card_payload String,
    key_id String,
    issued_by String,
    issued_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(issued_at) ORDER BY person_id;

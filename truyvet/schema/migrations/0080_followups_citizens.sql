-- Issue 14: follow-up lists of ward health stations, citizens of the app and the phones they give.
-- follow_ups: one record per (case, contact), in the ward the contact's alert went to. The alert
-- dispatcher writes it with status 'new' and version 0 when it first reads the alert (so also for
-- contacts found later by late scans); every change writes the whole row again with a higher version
-- (ReplacingMergeTree): readers take FINAL and filter status after it. ward_code, case_id, person_id,
-- generation and created_at never change for a record, so they may be filtered inside FINAL.
CREATE TABLE IF NOT EXISTS follow_ups (
    ward_code String,
    case_id String,
    person_id String,
    generation UInt8,
    status String,
    note String,
    created_at DateTime('UTC'),
    updated_at DateTime('UTC'),
    updated_by String,
    new_case_id String,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (ward_code, case_id, person_id);

-- citizens: the app's pseudonymous ids (POST /v1/citizens) with the SHA-256 of the secret the app
-- keeps (the secret itself is never stored). Looked up by that hash on every /v1/me call.
CREATE TABLE IF NOT EXISTS citizens (
    secret_hash String,
    person_id String,
    created_at DateTime('UTC'),
    deleted UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY secret_hash;

-- person_contacts: a phone given with consent (PUT /v1/me/contact); DELETE writes a row with an empty
-- phone and deleted = 1. Restricted like person_details: read only by the health center that may
-- read that person, every read audited.
CREATE TABLE IF NOT EXISTS person_contacts (
    person_id String,
    phone String,
    consent UInt8,
    updated_at DateTime('UTC'),
    deleted UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY person_id;

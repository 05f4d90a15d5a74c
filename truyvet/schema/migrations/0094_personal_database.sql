-- The personal stores move to a database of their own, `<database>_personal` ({personal_database} is
-- filled by the migration runner). ClickHouse 18.16 grants by database only: the ingest and trace
-- accounts (which write and read them for the health roles) and retention may use it; the worker and
-- the dispatcher may not. The worker needs a person's residence ward alone (the ward rule of alerts):
-- `person_wards` in the data database keeps it, written by ingest beside the details.
CREATE DATABASE IF NOT EXISTS {personal_database};

CREATE TABLE IF NOT EXISTS {personal_database}.person_details (
    person_id String,
    full_name String,
    birth_date String,
    sex String,
    address String,
    residence_ward_code String,
    source String,
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(updated_at) ORDER BY person_id;

INSERT INTO {personal_database}.person_details (person_id, full_name, birth_date, sex, address, residence_ward_code, source, updated_at)
SELECT person_id, full_name, birth_date, sex, address, residence_ward_code, source, updated_at FROM person_details;

CREATE TABLE IF NOT EXISTS person_wards (
    person_id String,
    residence_ward_code String,
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(updated_at) ORDER BY person_id;

INSERT INTO person_wards (person_id, residence_ward_code, updated_at)
SELECT person_id, residence_ward_code, updated_at FROM person_details;

DROP TABLE IF EXISTS person_details;

CREATE TABLE IF NOT EXISTS {personal_database}.person_details_conflicts (
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

INSERT INTO {personal_database}.person_details_conflicts (person_id, full_name, birth_date, sex, address, residence_ward_code, stored_ward_code, reported_by, received_at)
SELECT person_id, full_name, birth_date, sex, address, residence_ward_code, stored_ward_code, reported_by, received_at FROM person_details_conflicts;

DROP TABLE IF EXISTS person_details_conflicts;

CREATE TABLE IF NOT EXISTS {personal_database}.person_contacts (
    person_id String,
    phone String,
    consent UInt8,
    updated_at DateTime('UTC'),
    deleted UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY person_id;

INSERT INTO {personal_database}.person_contacts (person_id, phone, consent, updated_at, deleted, version)
SELECT person_id, phone, consent, updated_at, deleted, version FROM person_contacts;

DROP TABLE IF EXISTS person_contacts;

CREATE TABLE IF NOT EXISTS {personal_database}.person_cards (
    person_id String,
    residence_ward_code String,
    phone String,
    card_payload String,
    key_id String,
    issued_by String,
    issued_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(issued_at) ORDER BY person_id;

INSERT INTO {personal_database}.person_cards (person_id, residence_ward_code, phone, card_payload, key_id, issued_by, issued_at)
SELECT person_id, residence_ward_code, phone, card_payload, key_id, issued_by, issued_at FROM person_cards;

DROP TABLE IF EXISTS person_cards

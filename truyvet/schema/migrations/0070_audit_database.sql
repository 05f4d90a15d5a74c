-- The audit log moves to a database of its own, `<database>_audit` ({audit_database} is filled by
-- the migration runner): the one account allowed DDL on the data (retention, which drops expired visit
-- partitions) cannot use that database, and every other service account has no DDL at all, so no
-- service can alter, delete from, drop or truncate the log (SECURITY.md, "Accounts and secrets").
CREATE DATABASE IF NOT EXISTS {audit_database};

CREATE TABLE IF NOT EXISTS {audit_database}.audit_log (
    at DateTime('UTC'),
    actor String,
    role String,
    ward_code String,
    action String,
    case_id String,
    params String,
    result_count UInt32,
    reason String
) ENGINE = MergeTree PARTITION BY toYYYYMM(at) ORDER BY (at, actor);

INSERT INTO {audit_database}.audit_log (at, actor, role, ward_code, action, case_id, params, result_count, reason)
SELECT at, actor, role, ward_code, action, case_id, params, result_count, reason FROM audit_log;

DROP TABLE IF EXISTS audit_log;

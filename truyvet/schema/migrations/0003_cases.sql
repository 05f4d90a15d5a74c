-- Positive cases and the append-only audit log (the API user may only INSERT into audit_log).
CREATE TABLE IF NOT EXISTS cases (
    case_id String,
    person_id String,
    infectious_from DateTime('UTC'),
    infectious_to DateTime('UTC'),
    label String,
    created_by String,
    created_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(created_at) ORDER BY case_id;

CREATE TABLE IF NOT EXISTS audit_log (
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

-- Alerts and their delivery state, written by the alert dispatcher. Every state change rewrites the
-- whole row with a higher version (ReplacingMergeTree): readers take FINAL. Columns other than
-- status/attempts/last_error/delivered_at/version/updated_at never change for an alert_id, so they
-- may be filtered inside a FINAL query.
CREATE TABLE IF NOT EXISTS alerts (
    alert_id String,
    case_id String,
    person_id String,
    generation UInt8,
    ward_code String,
    venue_id String,
    created_at DateTime('UTC'),
    status String,
    attempts UInt32,
    last_error String,
    delivered_at DateTime('UTC'),
    updated_at DateTime('UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (ward_code, case_id, alert_id);

-- Webhook per ward health center (`truyvet webhook set`); the secret signs each delivery (HMAC-SHA256).
CREATE TABLE IF NOT EXISTS ward_webhooks (
    ward_code String,
    url String,
    secret String,
    updated_at DateTime('UTC'),
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY ward_code;

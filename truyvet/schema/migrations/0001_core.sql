-- Administrative units (loaded from CSV, never code), venues and API tokens.
CREATE TABLE IF NOT EXISTS units (
    code String,
    name String,
    level String,
    parent_code String,
    loaded_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(loaded_at) ORDER BY code;

CREATE TABLE IF NOT EXISTS venues (
    venue_id String,
    name String,
    category String,
    ward_code String,
    address String,
    phone String,
    default_stay_minutes UInt16,
    valid_from DateTime('UTC'),
    valid_until DateTime('UTC'),
    created_at DateTime('UTC'),
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(updated_at) ORDER BY venue_id;

CREATE TABLE IF NOT EXISTS api_tokens (
    token_hash String,
    token_prefix String,
    role String,
    ward_code String,
    name String,
    created_at DateTime('UTC'),
    revoked UInt8,
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(updated_at) ORDER BY token_hash;

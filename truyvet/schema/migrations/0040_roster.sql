-- The establishments that must scan (the origin letter's duty list), loaded from CSV per ward.
-- A load replaces the roster of every ward present in the file: each load gets a new load_id
-- (nanoseconds) and readers take, per ward, only the rows of that ward's highest load_id.
CREATE TABLE IF NOT EXISTS roster (
    ward_code String,
    load_id UInt64,
    category String,
    name String,
    address String,
    loaded_at DateTime('UTC')
) ENGINE = MergeTree ORDER BY (ward_code, load_id, category);

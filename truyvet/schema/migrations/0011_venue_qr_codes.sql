-- The signed QR text issued for each venue (what its printed poster carries), with the key id.
CREATE TABLE IF NOT EXISTS venue_qr_codes (
    venue_id String,
    qr_payload String,
    key_id String,
    issued_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(issued_at) ORDER BY venue_id;

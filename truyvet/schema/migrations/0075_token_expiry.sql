-- When each API token stops working (`truyvet token create --expires`). A token without a row here
-- (created before this table) expires DEFAULT_TOKEN_DAYS after its created_at (truyvet/auth.py).
CREATE TABLE IF NOT EXISTS api_token_expiry (
    token_hash String,
    expires_at DateTime('UTC'),
    updated_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(updated_at) ORDER BY token_hash;

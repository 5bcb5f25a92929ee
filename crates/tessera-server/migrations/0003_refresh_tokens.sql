-- Refresh tokens: stored only as the SHA-256 of the token, in families.
-- Every use spends a token and adds its successor to the family; a spent
-- token presented again revokes the whole family (reuse detection).

CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    family      TEXT NOT NULL,
    client_id   TEXT NOT NULL,
    subject     TEXT NOT NULL,
    scope       TEXT NOT NULL,
    -- The access tokens' aud and the user's claims, as JSON.
    audience    TEXT NOT NULL,
    claims      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    -- The family's absolute end, and this token's idle deadline.
    expires_at  BIGINT NOT NULL,
    idle_until  BIGINT NOT NULL,
    spent_at    BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

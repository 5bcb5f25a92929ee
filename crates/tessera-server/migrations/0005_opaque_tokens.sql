-- Opaque access tokens (clients with token_format "opaque"): stored only as
-- the SHA-256 of the token, with the claims a JWT would have carried; valid
-- only through introspection, revocable at once (the row is deleted).

CREATE TABLE opaque_tokens (
    token_hash TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    -- The refresh-token family it was issued with, if any: revoking the
    -- family deletes it too.
    family     TEXT,
    claims     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX opaque_tokens_family ON opaque_tokens (family);
CREATE INDEX opaque_tokens_expires_at ON opaque_tokens (expires_at);

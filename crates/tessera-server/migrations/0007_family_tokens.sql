-- The JWT access tokens issued with a refresh-token family (at the login
-- that started it and at every rotation), so that revoking the family
-- (reuse, POST /revoke of a refresh token, logout everywhere) lists them
-- on the deny-list too (RFC 7009 §2.1, RFC 9700 §4.14.2). Opaque tokens of
-- a family are in opaque_tokens already. A row goes when the family is
-- revoked (its jti is then listed) or once the token has expired.
CREATE TABLE family_tokens (
    family     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    -- The token's exp plus the leeway: how long a verifier may accept it.
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (family, jti)
);
CREATE INDEX family_tokens_expires_at ON family_tokens (expires_at);

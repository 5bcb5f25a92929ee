-- Revoking everything at once (admin: a subject's logout everywhere, a
-- client, a signing key) and tokens exchanged from a revoked token.
--
-- The deny-list now holds rules as well as jtis: `kind` says what `target`
-- names. 'jti': one token. 'sub' and 'client': every token of that subject
-- or client whose iat is before `not_before`. 'kid': every token signed by
-- that key. A rule lives until the last token it covers has expired.
ALTER TABLE revocations RENAME COLUMN jti TO target;
ALTER TABLE revocations ADD COLUMN kind TEXT NOT NULL DEFAULT 'jti';
ALTER TABLE revocations ADD COLUMN not_before BIGINT;
DROP INDEX revocations_jti;
CREATE UNIQUE INDEX revocations_target ON revocations (kind, target);

-- Access tokens issued by token exchange from a Tessera token (downscoped,
-- delegated, phantom): revoking the token they came from, or everything of
-- its client or key, lists them too. `parent` is the subject token's (or,
-- for delegation, the actor token's) jti, or 'tso:' and the hash of an
-- opaque one: a delegated token has two parents.
CREATE TABLE derived_tokens (
    jti           TEXT NOT NULL,
    parent        TEXT NOT NULL,
    parent_client TEXT NOT NULL,
    parent_kid    TEXT,
    expires_at    BIGINT NOT NULL,
    PRIMARY KEY (jti, parent)
);
CREATE INDEX derived_tokens_parent ON derived_tokens (parent);
CREATE INDEX derived_tokens_parent_client ON derived_tokens (parent_client);
CREATE INDEX derived_tokens_parent_kid ON derived_tokens (parent_kid);
CREATE INDEX derived_tokens_expires_at ON derived_tokens (expires_at);

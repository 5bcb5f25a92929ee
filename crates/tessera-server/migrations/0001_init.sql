-- One schema for SQLite and PostgreSQL: only TEXT and BIGINT columns, and
-- partial unique indexes (both engines have them) to make "one active and
-- one pending key per algorithm" a database rule, so two nodes racing to
-- rotate cannot both win.

CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    alg            TEXT NOT NULL,
    state          TEXT NOT NULL,
    public_jwk     TEXT NOT NULL,
    -- AES-256-GCM under the key-encryption key, the kid as associated data;
    -- NULL once the key is removed or compromised (private part destroyed).
    private_sealed TEXT,
    created_at     BIGINT NOT NULL,
    activate_at    BIGINT NOT NULL,
    activated_at   BIGINT,
    retired_at     BIGINT,
    remove_at      BIGINT,
    removed_at     BIGINT,
    compromised_at BIGINT
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (alg) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_pending ON signing_keys (alg) WHERE state = 'pending';

CREATE TABLE clients (
    client_id   TEXT PRIMARY KEY,
    -- RFC 7591 metadata plus Tessera's own members, as JSON.
    metadata    TEXT NOT NULL,
    -- SHA-256 of the 256-bit secret, base64url; NULL for private_key_jwt.
    secret_hash TEXT,
    created_at  BIGINT NOT NULL
);

-- private_key_jwt assertions seen, kept until they expire (RFC 7523 §3 jti).
CREATE TABLE used_assertions (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE audit_log (
    id      TEXT PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

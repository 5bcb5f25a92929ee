-- The deny-list: revoked JWT access tokens by jti, until they expire, with a
-- sequence number that followers page by (GET /revocations?since=SEQ).
-- The sequence lives in a row updated with RETURNING (SQLite and
-- PostgreSQL both have it), so several nodes share one gap-free order.

CREATE TABLE revocations (
    seq        BIGINT PRIMARY KEY,
    jti        TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX revocations_jti ON revocations (jti);
CREATE INDEX revocations_expires_at ON revocations (expires_at);

CREATE TABLE sequences (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
-- The last sequence number handed out, and the highest one purged.
INSERT INTO sequences (name, value) VALUES ('revocations', 0);
INSERT INTO sequences (name, value) VALUES ('revocations_purged', 0);

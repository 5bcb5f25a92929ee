-- Every private_key_jwt authentication and jwt-bearer grant deletes the
-- expired entries of used_assertions before recording its jti: by this
-- index, not by a scan of the whole table.
CREATE INDEX used_assertions_expires_at ON used_assertions (expires_at);

-- For the reuse interval: the successor of a spent refresh token, sealed
-- under the key-encryption key, so a client's concurrent retry within the
-- interval gets the same answer instead of killing the family. Only ever
-- used within the interval; it goes with the row when the family ends.
ALTER TABLE refresh_tokens ADD COLUMN successor_sealed TEXT;

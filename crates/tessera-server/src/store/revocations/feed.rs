//! The feed behind `GET /revocations`, read in sequence order, and the
//! purge of entries whose tokens have all expired.

use sqlx::Row as _;
use tessera_jose::UnixTime;

use super::{FeedEntry, RuleKind};
use crate::store::{Store, StoreError};

/// One page of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    /// The latest sequence number given out (listed or since purged).
    pub latest: i64,
    /// Whether the `since` asked for is older than the purge horizon: the
    /// follower may drop what it holds from before it.
    pub snapshot: bool,
    /// The entries after `since`, in sequence order.
    pub entries: Vec<FeedEntry>,
}

impl Store {
    /// Removes entries whose tokens have all expired, remembering the
    /// highest sequence number removed (a follower behind it needs a
    /// snapshot), and the record of expired exchanged tokens.
    ///
    /// # Errors
    /// On database failure.
    pub async fn purge_revocations(&self, now: UnixTime) -> Result<u64, StoreError> {
        let now = now.secs();
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM derived_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let max: Option<i64> =
            sqlx::query("SELECT MAX(seq) FROM revocations WHERE expires_at < $1")
                .bind(now)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        let Some(max) = max else {
            tx.commit().await?;
            return Ok(0);
        };
        let done = sqlx::query("DELETE FROM revocations WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE sequences SET value = $1 WHERE name = 'revocations_purged' AND value < $1",
        )
        .bind(max)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// The feed after `since`, at most `limit` entries. From `since` 0 this
    /// is every live entry: a full snapshot.
    ///
    /// # Errors
    /// On database failure, or [`StoreError::Corrupt`] for an entry of an
    /// unknown kind.
    pub async fn revocations_since(&self, since: i64, limit: i64) -> Result<FeedPage, StoreError> {
        let mut tx = self.pool.begin().await?;
        let latest: i64 = sqlx::query("SELECT value FROM sequences WHERE name = 'revocations'")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let purged: i64 =
            sqlx::query("SELECT value FROM sequences WHERE name = 'revocations_purged'")
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        // Entries are only ever purged once their tokens have expired, so
        // a follower behind the purge horizon lost nothing it needs: every
        // live entry newer than `since` follows, and `snapshot` tells it
        // that what it holds older than the horizon may be dropped.
        let snapshot = since < purged;
        let rows = sqlx::query(
            "SELECT seq, kind, target, not_before, expires_at FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(since)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let entries = rows
            .iter()
            .map(|r| {
                let kind: String = r.try_get(1)?;
                let kind = RuleKind::from_name(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("revocation kind {kind:?}")))?;
                Ok(FeedEntry::new(
                    r.try_get(0)?,
                    kind,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(FeedPage {
            latest,
            snapshot,
            entries,
        })
    }
}

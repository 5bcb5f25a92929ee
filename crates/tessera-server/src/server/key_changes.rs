//! The task that hears other nodes' key changes (PostgreSQL `LISTEN`,
//! `store/key_changes.rs`) and reloads this node's key ring at once: a
//! compromise or an immediate rotation on one node stops the others
//! signing with the old key within milliseconds, not at their next
//! periodic refresh (`keys.refresh_interval`), which stays as the fallback.

use std::sync::Arc;
use std::time::Duration;

use crate::authority::Authority;

/// The first wait before listening again after a lost connection.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two attempts to listen again.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Listens until the task is aborted. Each (re)connection is followed by
/// one reload: changes committed while nobody listened were not heard.
pub(super) async fn listen(authority: Arc<Authority>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match authority.store().listen_key_changes().await {
            Ok(None) => return,
            Ok(Some(mut changes)) => {
                backoff = FIRST_BACKOFF;
                reload(&authority).await;
                loop {
                    match changes.next().await {
                        Ok(true) => reload(&authority).await,
                        Ok(false) => {
                            tracing::warn!(
                                "lost the connection that listens for key changes; listening again"
                            );
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "listening for key changes failed; listening again");
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot listen for key changes; the periodic refresh still runs");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Reloads the key ring, and wakes this node's feed readers: a compromise
/// also listed its key on the deny-list.
async fn reload(authority: &Authority) {
    if let Err(e) = authority.keys().reload().await {
        // The last good ring keeps serving; the next notification or the
        // periodic refresh tries again.
        tracing::warn!(error = %e, "reloading keys after a key change failed");
    }
    authority.deny_list().listed();
}

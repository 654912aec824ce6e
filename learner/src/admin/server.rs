//! The admin plane server (skeleton; see mod.rs for the invariants).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::AdminContext;

/// Serves the admin plane on `endpoint` until `shutdown` is cancelled.
pub async fn serve(endpoint: quinn::Endpoint, ctx: Arc<AdminContext>, shutdown: CancellationToken) {
    let _ = (&endpoint, &ctx);
    shutdown.cancelled().await;
}

//! A learner's join loop (skeleton).

use tokio_util::sync::CancellationToken;

use crate::conf::ReplicaConf;

/// Asks the peers' admin planes to add this replica as a learner; retries until added.
pub async fn join_as_learner(
    conf: &ReplicaConf,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let _ = (conf, shutdown);
    anyhow::bail!("join_as_learner is not implemented yet")
}

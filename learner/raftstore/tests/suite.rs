//! openraft's own storage conformance suite (`openraft::testing::Suite`) against our log store
//! and state machine, each test on a fresh data directory with real fsync'd files.

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use raftstore::{LogStore, StateMachineStore, StorageOptions, TypeConfig};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = TempDir::new().expect("create a temp dir");
        let storage = raftstore::open(dir.path(), StorageOptions::default()).expect("open storage");
        Ok((dir, storage.log, storage.state_machine))
    }
}

#[test]
fn openraft_storage_suite() {
    // Note: the suite itself sleeps ~1 s in a few purge tests ("purge may be asynchronous");
    // our purge is synchronous, so those waits are openraft's, not ours.
    if let Err(e) = Suite::test_all(Builder) {
        panic!("openraft storage suite failed: {e}");
    }
}

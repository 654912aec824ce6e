//! Raft glue: type config and durable storage (log, vote, snapshots, state machine).

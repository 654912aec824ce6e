//! Append + fsync latency of the raft log store (placeholder until the store lands).

fn main() {}

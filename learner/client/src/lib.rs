//! bootstorm-client: talks to a running cluster as an operator — the admin plane client
//! ([`admin::AdminClient`]: replica failover, leader redirects, bounded waits) and the client
//! side of the admin commands ([`commands`]: `commit`, `rollback`, `log`, `status`, `members`,
//! `certs`, `policy`, `node` — their arguments, requests and outputs). The `bootstorm` CLI, the
//! load tester, `bootstorm dev` and the tests use it without linking the daemon.
//!
//! Must never: link consensus or server code (no openraft, no daemon), or retry a write whose
//! outcome is unknown on another replica.

pub mod admin;
pub mod certs_issue;
pub mod commands;
pub mod limits;

pub use admin::{AdminClient, ClientError};

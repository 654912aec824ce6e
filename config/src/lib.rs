//! The bootstorm journal domain: config entries, commands, and the deterministic state machine
//! that every replica applies in Raft log order.
//!
//! Owns: the vocabulary of the journal (seed 001), the meaning of every command, the fold that
//! turns deltas into a scope's effective config, and the admin's delta file format.
//!
//! Must never: read the clock, touch the disk or network, use randomness, or iterate a hash map.
//! Time enters only as a timestamp inside a command. Same commands in → same state out, on
//! every machine, byte for byte.

pub mod delta_toml;
pub mod demo;
mod error;
pub mod limits;
mod names;
mod state;
mod types;
pub mod validate;

pub use delta_toml::DeltaParseError;
pub use error::Rejected;
pub use state::{apply, merge, Applied, JournalState};
pub use types::*;

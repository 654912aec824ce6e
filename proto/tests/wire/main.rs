//! Wire-format tests of `proto`, one binary (one link on a 2-core machine) with a module per
//! concern: exact bytes (`fixtures`), round trips (`roundtrip`), hostile input (`garbage`) and
//! every limit at its edge (`edges`). `support` holds the shared strategies and helpers.

mod edges;
mod fixtures;
mod garbage;
mod roundtrip;
mod support;

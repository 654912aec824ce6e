//! The admin plane as the workloads use it: connecting an admin client with a few retries,
//! and naming the failure kind of a commit's outcome for the reports. Shared by `commits`,
//! the boots scenarios (commits during a storm, the leader's status) and `boots` setup.
//!
//! Invariants: every connect is bounded (`CONNECT_ATTEMPTS_MAX` tries, `CONNECT_RETRY_MS`
//! apart), and only refusals and unreachable replicas are retried (a credentials or protocol
//! error will not go away); a commit counts as ok only when answered `Committed`.

use std::time::Duration;

use anyhow::Result;
use client::{AdminClient, ClientError};
use conf::ClusterFile;
use proto::AdminResponse;

use crate::failures::one_line;
use crate::limits::{CONNECT_ATTEMPTS_MAX, CONNECT_RETRY_MS};

/// Connects one admin client, retrying refusals and unreachable replicas a few times.
pub async fn connect(cluster: &ClusterFile) -> Result<AdminClient> {
    let mut attempt = 1;
    loop {
        match AdminClient::connect(cluster).await {
            Ok(client) => return Ok(client),
            Err(error @ (ClientError::Refused { .. } | ClientError::Unreachable { .. }))
                if attempt < CONNECT_ATTEMPTS_MAX =>
            {
                note_connect_retry(&error, attempt);
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(CONNECT_RETRY_MS)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Says once (at the first retry) why connecting is retried, so a slow start is explained.
fn note_connect_retry(error: &ClientError, attempt: u32) {
    if attempt == 1 {
        eprintln!(
            "an admin connection failed, retrying (up to {CONNECT_ATTEMPTS_MAX} attempts): {}",
            one_line(&error.to_string())
        );
    }
}

/// The failure kind and message of one commit's outcome; `None` when it committed.
pub fn failure_kind(outcome: &Result<AdminResponse, ClientError>) -> Option<(String, String)> {
    let kind = match outcome {
        Ok(AdminResponse::Committed { .. }) => return None,
        Ok(AdminResponse::Error { code, message }) => {
            return Some((format!("error:{}", code.as_str()), one_line(message)))
        }
        Ok(other) => {
            return Some((
                format!("unexpected:{}", other.kind().as_str()),
                one_line(&format!("{other:?}")),
            ))
        }
        Err(ClientError::Credentials(_)) => "credentials",
        Err(ClientError::NoAdminCredentials) => "no-admin-credentials",
        Err(ClientError::Quic(_)) => "quic-setup",
        Err(ClientError::Encode(_)) => "encode",
        Err(ClientError::Refused { .. }) => "refused",
        Err(ClientError::Unreachable { .. }) => "unreachable",
        Err(ClientError::NoLeader { .. }) => "no-leader",
        Err(ClientError::TimedOut { .. }) => "client-timeout",
        Err(ClientError::OutcomeUnknown { .. }) => "outcome-unknown",
        Err(ClientError::Protocol { .. }) => "protocol",
    };
    let message = outcome.as_ref().err().map(ToString::to_string);
    Some((kind.to_owned(), one_line(&message.unwrap_or_default())))
}

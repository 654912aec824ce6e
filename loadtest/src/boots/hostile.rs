//! The `--flood-at` scenario of a storm: from `at_s` for `seconds`, hostile traffic against
//! one replica (the first learner, else the first replica) — spoofed client Initials from many
//! loopback addresses, idle handshake holders, garbage to its check port (`crate::flood`) —
//! then one event comparing the storm before it (undisturbed) with the storm during it
//! (flooded): boots/s and failed boots of each window, and what the flood sent.
//!
//! Invariants: loopback only (`flood::ensure_loopback`); bounded by `seconds` (and dropped
//! with the other scenarios when the storm ends first: then no comparison is reported).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use conf::{ClusterReplica, Role};
use proto::client::ClientTls;
use tokio::time::Instant;

use super::storm::Storm;
use crate::flood;
use crate::limits::FLOOD_INITIALS_CRAFTED;
use crate::scenario::FloodPlan;

/// Spoofed source addresses of the Initials.
const SPOOF_SOURCES: u32 = 1_024;
/// Source addresses of the garbage datagrams.
const GARBAGE_SOURCES: u32 = 64;

/// Runs the flood of `plan` beside `storm`, then records the comparison as an event.
pub async fn flood_scenario(
    plan: &FloodPlan,
    storm: &Arc<Storm>,
    replicas: &[ClusterReplica],
    tls: ClientTls,
) {
    let target = replicas
        .iter()
        .find(|r| r.role == Role::Learner)
        .or(replicas.first())
        .cloned();
    let Some(target) = target else { return };
    match run(plan, storm, &target, tls).await {
        Ok(summary) => {
            eprintln!("{summary}");
            storm.scenario.event(storm.t0.elapsed(), summary);
        }
        Err(error) => {
            eprintln!("error: the flood scenario failed: {error:#}");
            storm
                .scenario
                .event(storm.t0.elapsed(), format!("flood failed: {error:#}"));
        }
    }
}

async fn run(
    plan: &FloodPlan,
    storm: &Arc<Storm>,
    target: &ClusterReplica,
    tls: ClientTls,
) -> Result<String> {
    flood::ensure_loopback(target.boot)?;
    // Crafted before the flood starts, on a blocking thread (a ClientHello each).
    let initials = {
        let (boot, name, tls) = (target.boot, target.name.clone(), tls.clone());
        tokio::task::spawn_blocking(move || {
            flood::craft_initials(FLOOD_INITIALS_CRAFTED, boot, &name, &tls)
        })
        .await??
    };
    tokio::time::sleep_until(storm.t0 + Duration::from_secs_f64(plan.at_s)).await;
    let (ok0, failed0) = counts(storm);
    let started = Instant::now();
    let until = (started + Duration::from_secs_f64(plan.seconds)).into_std();
    let spoofed = flood::spoofed_initials(
        target.boot,
        Arc::new(initials),
        plan.initials_per_s,
        SPOOF_SOURCES,
        until,
    );
    let holders = flood::idle_holders(target.boot, &target.name, &tls, plan.holders, until);
    let garbage = async {
        match (target.check, plan.garbage_per_s) {
            (Some(check), per_s) if per_s > 0 => {
                flood::garbage(check, per_s, GARBAGE_SOURCES, until).await
            }
            _ => Ok((0, 0)),
        }
    };
    let (spoofed, holders, garbage) = tokio::join!(spoofed, holders, garbage);
    let ((sent, dropped), holders, (garbage, _)) = (spoofed?, holders?, garbage?);
    let flooded_s = started.elapsed().as_secs_f64();
    let (ok1, failed1) = counts(storm);
    let before_rate = ok0 as f64 / plan.at_s.max(f64::EPSILON);
    let during_rate = (ok1 - ok0) as f64 / flooded_s;
    let ratio = if before_rate > 0.0 {
        format!("{:.2}", during_rate / before_rate)
    } else {
        "n/a".to_owned()
    };
    Ok(format!(
        "flood of {} ({:.0}-{:.0} s): undisturbed {before_rate:.1} boots/s, {failed0} failed; \
         flooded {during_rate:.1} boots/s, {} failed; ratio {ratio}; {sent} spoofed Initials \
         ({:.0}/s, {dropped} not sent), {garbage} garbage datagrams, idle holders: {} \
         connected, {} closed by the replica, {} refused",
        target.name,
        plan.at_s,
        plan.at_s + flooded_s,
        failed1 - failed0,
        sent as f64 / flooded_s,
        holders.connected,
        holders.closed_by_server,
        holders.refused,
    ))
}

/// (ok, failed) boots finished so far.
fn counts(storm: &Storm) -> (u64, u64) {
    let finished = storm.finished.load(Ordering::Relaxed);
    let failed = storm.failed.load(Ordering::Relaxed);
    (finished.saturating_sub(failed), failed)
}

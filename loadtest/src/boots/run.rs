//! One `boots` round as the shared driver (`rounds::main`) runs it: open the target, measure
//! the storm, close the target, make the report, then the nginx peer on the bytes of one of
//! the overlays the storm served; and what a single round writes besides the JSON (`--plot`).
//!
//! Invariants: the target is closed (a spawned cluster stopped) on every path out of a round,
//! before the peer runs, so the peer never shares the CPU with our replicas.

use std::path::Path;

use anyhow::{Context, Result};

use super::measure::measure;
use super::plan::{BootsBaselinePeer, BootsPlan};
use super::report::BootsReport;
use crate::baseline::after_ours;
use crate::interrupt::Interrupt;
use crate::limits::NGINX_REQUESTS_MAX;
use crate::nginx::run_nginx;
use crate::rounds::{RoundOutcome, Workload};
use crate::target::Target;

/// The vCluster whose overlay the nginx baseline serves (the larger demo overlay).
pub const BASELINE_VCLUSTER: &str = "gpu";

impl Workload for BootsPlan {
    type Report = BootsReport;

    fn rounds(&self) -> u32 {
        self.rounds
    }

    fn json(&self) -> Option<&Path> {
        self.json.as_deref()
    }

    /// One storm: ours, then the peer when asked.
    async fn round(&self, interrupt: &Interrupt) -> Result<RoundOutcome<BootsReport>> {
        let mut target = Target::open(&self.target, interrupt).await?;
        let description = target.description();
        let measured = measure(self, &mut target, interrupt).await;
        target.close(measured.is_err()).await;
        let (stats, measurement, overlays) = measured?;
        let report = BootsReport::new(self, &description, &stats, &measurement);
        let concurrency = self.baseline_concurrency();
        let requests = self.boots.min(NGINX_REQUESTS_MAX);
        let peer = self.baseline.map(|BootsBaselinePeer::Nginx| {
            let run = async move {
                let bytes = overlays
                    .get(BASELINE_VCLUSTER)
                    .or_else(|| overlays.values().max_by_key(|b| b.len()))
                    .context("no overlay was fetched to serve (the prefetch found no vCluster)")?;
                eprintln!(
                    "running the nginx baseline: {} bytes, concurrency {concurrency}, {requests} requests (shared/bench/nginx-https-baseline)",
                    bytes.len()
                );
                run_nginx(bytes, concurrency, requests).await
            };
            ("nginx", run)
        });
        Ok(after_ours(report, peer, interrupt).await)
    }

    fn write_extras(&self, report: &BootsReport) -> Result<()> {
        match &self.plot {
            Some(path) => report.write_plot(path),
            None => Ok(()),
        }
    }
}

//! Inside a bench process, the services and each sandbox run on a Tokio runtime of their own
//! whose threads are named for the role, so [`super::cpu`] can tell their CPU time apart from
//! /proc/self/task: what Waybill spends stands alone, without the simulated gateway and
//! logistics partners or the load that drives it. Everything not started here (the bench's
//! main thread and the main runtime: the load driver, lag samplers, progress polls) is the
//! load driver's row.
//!
//! Tasks a part spawns land on its runtime (they are spawned from inside it), and so do the
//! connections it opens and the blocking work it hands off (a runtime's blocking threads carry
//! its name too). The runtimes live as long as the process.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use tokio::runtime::{Builder, Handle, Runtime};

use crate::config::Settings;
use crate::secrets::Secrets;
use crate::services::{self, Addresses, Part, Running};
use crate::shutdown::Shutdown;

/// What a thread of the bench process works for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Waybill's own parts: APIs, relay, projectors, workers (and the search index's threads).
    Services,
    PaymentSandbox,
    LogisticsSandbox,
    /// The integrator's end of `bench webhooks`: the receiver the deliveries go to.
    WebhookReceiver,
    /// The rest of the bench process: the load driver and the bench's observers.
    Driver,
}

/// Thread names (at most 15 bytes: /proc cuts `comm` there).
const SERVICES_THREAD: &str = "waybill-svc";
const PAYMENT_THREAD: &str = "sandbox-pay";
const LOGISTICS_THREAD: &str = "sandbox-logi";
const RECEIVER_THREAD: &str = "sandbox-hooks";
/// Threads the search index (Tantivy) starts for its writer: indexing workers, the segment
/// updater and merges. Only the services' projector opens a writer.
const SEARCH_INDEX_THREADS: &[&str] = &["thrd-tantivy", "segment_update", "merge_thread"];

impl Role {
    /// The role of a thread of this process, from its name.
    pub fn of_thread(comm: &str) -> Role {
        if comm.starts_with(SERVICES_THREAD)
            || SEARCH_INDEX_THREADS.iter().any(|p| comm.starts_with(p))
        {
            Role::Services
        } else if comm.starts_with(PAYMENT_THREAD) {
            Role::PaymentSandbox
        } else if comm.starts_with(LOGISTICS_THREAD) {
            Role::LogisticsSandbox
        } else if comm.starts_with(RECEIVER_THREAD) {
            Role::WebhookReceiver
        } else {
            Role::Driver
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Services => "waybill services",
            Role::PaymentSandbox => "payment sandbox",
            Role::LogisticsSandbox => "logistics sandbox",
            Role::WebhookReceiver => "webhook receiver",
            Role::Driver => "load driver + bench",
        }
    }

    fn of_part(part: Part) -> Role {
        match part {
            Part::PaymentSandbox => Role::PaymentSandbox,
            Part::LogisticsSandbox => Role::LogisticsSandbox,
            _ => Role::Services,
        }
    }

    /// The runtime this role's tasks run on, built on first use.
    pub fn handle(self) -> Handle {
        static SERVICES: OnceLock<Runtime> = OnceLock::new();
        static PAYMENT: OnceLock<Runtime> = OnceLock::new();
        static LOGISTICS: OnceLock<Runtime> = OnceLock::new();
        static RECEIVER: OnceLock<Runtime> = OnceLock::new();
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let (cell, name, workers) = match self {
            Role::Services => (&SERVICES, SERVICES_THREAD, cores),
            Role::PaymentSandbox => (&PAYMENT, PAYMENT_THREAD, 1),
            Role::LogisticsSandbox => (&LOGISTICS, LOGISTICS_THREAD, 1),
            Role::WebhookReceiver => (&RECEIVER, RECEIVER_THREAD, 1),
            Role::Driver => return Handle::current(),
        };
        cell.get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(workers)
                .thread_name(name)
                // Blocking threads that ended would leave their time unattributed.
                .thread_keep_alive(Duration::from_secs(3_600))
                .enable_all()
                .build()
                .expect("building a bench runtime")
        })
        .handle()
        .clone()
    }
}

/// Starts `parts` (all of one role) on their role's runtime, on ports the OS picks.
pub(super) async fn start(
    settings: &Settings,
    secrets: &Secrets,
    parts: &[Part],
    shutdown: &Shutdown,
) -> anyhow::Result<Running> {
    let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let addresses = Addresses {
        command: any_port,
        query: any_port,
        payment_sandbox: any_port,
        logistics_sandbox: any_port,
        sms_sandbox: any_port,
    };
    let role = parts
        .first()
        .map_or(Role::Services, |part| Role::of_part(*part));
    anyhow::ensure!(
        parts.iter().all(|part| Role::of_part(*part) == role),
        "internal: parts of different roles started together: {parts:?}"
    );
    let (settings, secrets, parts, shutdown) = (
        settings.clone(),
        secrets.clone(),
        parts.to_vec(),
        shutdown.clone(),
    );
    role.handle()
        .spawn(
            async move { services::start(&settings, &secrets, &parts, addresses, &shutdown).await },
        )
        .await
        .context("starting the services panicked")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_told_apart_by_name() {
        assert_eq!(Role::of_thread("waybill-svc"), Role::Services);
        assert_eq!(Role::of_thread("thrd-tantivy-in"), Role::Services);
        assert_eq!(Role::of_thread("merge_thread_0"), Role::Services);
        assert_eq!(Role::of_thread("sandbox-pay"), Role::PaymentSandbox);
        assert_eq!(Role::of_thread("sandbox-logi"), Role::LogisticsSandbox);
        assert_eq!(Role::of_thread("sandbox-hooks"), Role::WebhookReceiver);
        assert_eq!(Role::of_thread("tokio-runtime-w"), Role::Driver);
        assert_eq!(Role::of_thread("waybill"), Role::Driver);
    }

    #[test]
    fn parts_run_on_their_role_runtime_whose_threads_carry_its_name() {
        for role in [
            Role::Services,
            Role::PaymentSandbox,
            Role::LogisticsSandbox,
            Role::WebhookReceiver,
        ] {
            let name = role
                .handle()
                .block_on(async {
                    tokio::spawn(async { std::thread::current().name().map(str::to_owned) }).await
                })
                .unwrap_or_default()
                .unwrap_or_default();
            assert_eq!(Role::of_thread(&name), role, "{name}");
        }
        assert_eq!(Role::of_part(Part::Commands), Role::Services);
        assert_eq!(
            Role::of_part(Part::LogisticsSandbox),
            Role::LogisticsSandbox
        );
    }
}

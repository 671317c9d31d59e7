//! `waybill`: the one binary that runs Waybill. `serve all` runs the command API, the outbox
//! relay, the tracking projector and the query API in one process; `serve <part>` runs one of
//! them for multi-process deploys. `migrate`, `rebuild tracking`, `demo` and `bench` (place,
//! flash-sale, checkout) are the operational and developer commands. See `waybill --help`.

mod balance;
mod bench;
mod client;
mod config;
mod config_check;
mod demo;
mod identity;
mod json_logs;
mod metrics;
mod migrate;
mod orders;
mod progress;
mod readiness;
mod rebuild;
mod reconcile;
mod routing;
mod secrets;
mod services;
mod settlement;
mod shutdown;
mod telemetry;
mod webhook_receiver;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use config::{
    Bench, Cli, Command, ConfigCommand, Role, RoutingCommand, Settings, Settlement, View,
};
use secrets::Secrets;
use services::{Addresses, Part};
use shutdown::Shutdown;
use telemetry::Telemetry;

/// mimalloc instead of the system allocator: the pipeline allocates many small, short-lived
/// buffers (JSON, HTTP, driver messages), and glibc's malloc/free were ~15 % of the process's
/// CPU in the `bench place` profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // A malformed variable stops clap at the first one; `config check` names them all.
            let args: Vec<String> = std::env::args().collect();
            match config_check::requested_role(&args) {
                Some(role) if error.kind() != clap::error::ErrorKind::DisplayHelp => {
                    return check_config(role)
                }
                _ => error.exit(),
            }
        }
    };
    if let Command::Config {
        config: ConfigCommand::Check { role },
    } = &cli.command
    {
        return check_config(*role);
    }
    let service = match &cli.command {
        Command::Serve { role } => match role {
            Role::All => "waybill",
            Role::Commands => "waybill-commands",
            Role::Relay => "waybill-relay",
            Role::Projector => "waybill-projector",
            Role::Query => "waybill-query",
            Role::Checkout => "waybill-checkout",
            Role::PaymentSandbox => "waybill-payment-sandbox",
            Role::Fulfillment => "waybill-fulfillment",
            Role::LogisticsSandbox => "waybill-logistics-sandbox",
            Role::SmsSandbox => "waybill-sms-sandbox",
            Role::Webhooks => "waybill-webhooks",
        },
        _ => "waybill-cli",
    };
    let filter = match &cli.command {
        Command::Demo(_)
        | Command::Bench { .. }
        | Command::Settlement { .. }
        | Command::Balance(_) => telemetry::QUIET_FILTER,
        Command::Routing { .. } => telemetry::QUIET_FILTER,
        _ => telemetry::SERVICE_FILTER,
    };
    let telemetry = match Telemetry::init(
        service,
        cli.settings.log_format,
        filter,
        cli.settings.otlp_endpoint.as_deref(),
    ) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("waybill: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|runtime| {
            let result = runtime.block_on(run(cli));
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
            result
        });
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("waybill: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(role: Role) -> ExitCode {
    if config_check::run(role) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = cli.settings;
    if !matches!(cli.command, Command::Config { .. } | Command::Balance(_)) {
        let serving =
            matches!(cli.command, Command::Serve { role } if secrets::serves_personal_data(role));
        secrets::install_pii_master_key(&settings, serving)?;
    }
    match cli.command {
        Command::Migrate => {
            migrate::migrate_all(&settings.database_url, &settings.warehouse.config()).await
        }
        Command::Reconcile(args) => reconcile::run(&settings, &args).await,
        Command::Serve { role } => serve(&settings, role).await,
        Command::Rebuild {
            view: View::Tracking,
        } => rebuild::tracking(&settings).await,
        Command::Rebuild { view: View::Search } => rebuild::search(&settings).await,
        Command::Rebuild {
            view: View::Notifications,
        } => rebuild::notifications(&settings).await,
        Command::Rebuild {
            view: View::Analytics,
        } => rebuild::analytics(&settings).await,
        Command::Demo(args) => demo::run(&settings, &args).await,
        Command::Bench {
            bench: Bench::Place(args),
        } => bench::place(&settings, &args).await,
        Command::Bench {
            bench: Bench::FlashSale(args),
        } => bench::flash_sale(&settings, &args).await,
        Command::Bench {
            bench: Bench::Checkout(args),
        } => bench::checkout(&settings, &args).await,
        Command::Bench {
            bench: Bench::Tracking(args),
        } => bench::tracking(&settings, &args).await,
        Command::Bench {
            bench: Bench::Search(args),
        } => bench::search(&args).await,
        Command::Settlement {
            settlement: Settlement::Import(args),
        } => settlement::import(&settings, &args).await,
        Command::Bench {
            bench: Bench::Analytics(args),
        } => bench::analytics(&settings, &args).await,
        Command::Bench {
            bench: Bench::Lifecycle(args),
        } => bench::lifecycle(&settings, &args).await,
        Command::Bench {
            bench: Bench::LogRead(args),
        } => bench::log_read(&settings, &args).await,
        Command::Bench {
            bench: Bench::LivePages(args),
        } => bench::live_pages(&settings, &args).await,
        Command::Bench {
            bench: Bench::RoutingSim(args),
        } => bench::routing_sim(&settings, &args).await,
        Command::Bench {
            bench: Bench::Webhooks(args),
        } => bench::webhooks(&settings, &args).await,
        Command::Routing {
            routing: RoutingCommand::Simulate(args),
        } => routing::simulate(&settings, &args).await,
        Command::Config { .. } => Ok(()),
        Command::Balance(args) => balance::run(&args).await,
    }
}

async fn serve(settings: &Settings, role: Role) -> anyhow::Result<()> {
    let all: Vec<Part> = Part::ALL
        .into_iter()
        .filter(|p| *p != Part::Checkout || settings.checkout.checkout_worker)
        .filter(|p| *p != Part::Fulfillment || settings.fulfillment.fulfillment_worker)
        .collect();
    let parts: &[Part] = match role {
        Role::All => &all,
        Role::Commands => &[Part::Commands],
        Role::Relay => &[Part::Relay],
        Role::Projector => &[Part::Projector],
        Role::Query => &[Part::Query],
        Role::Checkout => &[Part::Checkout],
        Role::PaymentSandbox => &[Part::PaymentSandbox],
        Role::Fulfillment => &[Part::Fulfillment],
        Role::LogisticsSandbox => &[Part::LogisticsSandbox],
        Role::SmsSandbox => &[Part::SmsSandbox],
        Role::Webhooks => &[Part::Webhooks],
    };
    if role == Role::All {
        migrate::migrate(&settings.database_url).await?;
    }
    let secrets = Secrets::resolve(settings)?;
    let render = metrics::install()?;
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    let addresses = Addresses {
        command: settings.command_addr,
        query: settings.query_addr,
        payment_sandbox: settings.checkout.payment_sandbox_addr,
        logistics_sandbox: settings.fulfillment.logistics_sandbox_addr,
        sms_sandbox: settings.checkout.sms_sandbox_addr,
    };
    let running = services::start(settings, &secrets, parts, addresses, &shutdown).await?;
    // Every role of the system (not the simulated sandboxes) serves `/metrics`, `/live` and
    // `/ready` on its own listener, apart from the public API ports.
    let worker_metrics = (!matches!(
        role,
        Role::PaymentSandbox | Role::LogisticsSandbox | Role::SmsSandbox
    ))
    .then(|| {
        let stop = shutdown.wait();
        let addr = settings.metrics_addr;
        let shutdown = shutdown.clone();
        let readiness = running.readiness.clone();
        tokio::spawn(async move {
            let result = metrics::serve_metrics(addr, render, readiness, stop).await;
            if result.is_err() {
                shutdown.trigger();
            }
            result
        })
    });
    tracing::info!(
        parts = ?parts.iter().map(Part::name).collect::<Vec<_>>(),
        command = ?running.command_addr,
        query = ?running.query_addr,
        "waybill running; SIGINT/SIGTERM to stop"
    );
    let result = running.wait().await;
    if let Some(task) = worker_metrics {
        task.await.context("metrics listener panicked")??;
    }
    result
}

//! `waybill reconcile --from --to`: runs reconciliation over a date range and prints the
//! discrepancies it wrote.

use chrono::Utc;

use crate::config::{ReconcileArgs, Settings};

pub async fn run(settings: &Settings, args: &ReconcileArgs) -> anyhow::Result<()> {
    let to = args.to.unwrap_or(args.from);
    anyhow::ensure!(to >= args.from, "--to {to} is before --from {}", args.from);
    let warehouse = settings.warehouse.config();
    crate::migrate::migrate_warehouse(&warehouse).await?;
    let run_version = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
    let report = waybill_projectors::reconciliation::run_reconciliation(
        &warehouse,
        args.from,
        to,
        &settings.warehouse.fees(),
        run_version,
    )
    .await?;
    println!(
        "reconciliation {}..={} (run {}): {}",
        report.from,
        report.to,
        report.run_version,
        report
            .outcomes
            .iter()
            .map(|(outcome, count)| format!("{outcome} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for d in &report.discrepancies {
        println!(
            "  {:<18} {:<40} order {:<36} ledger {:>10} report {:>10} fee {:>6}/{:<6} {}",
            d.outcome.as_str(),
            d.item_key,
            d.order_id,
            d.ledger_amount,
            d.report_amount,
            d.expected_fee,
            d.report_fee,
            d.detail
        );
    }
    Ok(())
}

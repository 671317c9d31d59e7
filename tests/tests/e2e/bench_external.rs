//! `waybill bench lifecycle --external`, the half of the capacity run that drives a stack
//! already running (the cluster stack in `infra/scripts/capacity.sh`), here against one
//! `serve all` with both sandboxes. It runs twice on the same services: the second run's
//! database and sandbox already hold the first run's orders, tasks and parcels, and its report
//! must count its own orders only, as a run on a long-lived stack has to.

use serde_json::Value;
use waybill_e2e::fulfillment::FulfillmentWorld;

#[tokio::test]
async fn bench_lifecycle_external_counts_only_its_own_orders_on_a_running_stack() {
    let world = FulfillmentWorld::start(
        "bench_lifecycle_external",
        &[("WAYBILL_AUTO_CLOSE_DAYS", "0")],
    )
    .await;
    let waybill = &world.world.waybill;
    let command = waybill.command_url();
    let query = waybill.query_url();
    let metrics = format!("{}/metrics", waybill.metrics_url());
    let sandbox = world.logistics.logistics_url();
    let env = &world.world.env;
    for run in 1..=2 {
        let out = env.log_dir.join(format!("lifecycle-external-{run}.json"));
        let stdout = env
            .run_ok_with(
                &[
                    "bench",
                    "lifecycle",
                    "--external",
                    "--orders",
                    "12",
                    "--clients",
                    "4",
                    "--return-share",
                    "0.25",
                    "--deadline-secs",
                    "90",
                    "--sandbox-url",
                    &sandbox,
                    "--metrics-url",
                    &metrics,
                    "--out",
                    out.to_str().expect("path"),
                ],
                &[
                    (
                        "WAYBILL_COMMAND_ADDR",
                        command.trim_start_matches("http://"),
                    ),
                    ("WAYBILL_QUERY_ADDR", query.trim_start_matches("http://")),
                ],
            )
            .await;
        let report: Value =
            serde_json::from_slice(&std::fs::read(&out).expect("the report")).expect("JSON report");
        assert!(
            report["baseline_checkout"].is_null(),
            "no baseline: {report}"
        );
        let runs = report["runs"].as_array().expect("runs");
        assert_eq!(runs.len(), 1, "one run on the running stack: {report}");
        let r = &runs[0];
        assert_eq!(r["fulfillment_commit"], "as deployed", "{r}");
        assert_eq!(r["accepted"], 12, "run {run}: {r}");
        // Every one of the run's orders closed once, and none of the other run's is counted.
        assert_eq!(r["closed"], 12, "run {run}: {r}\n{stdout}");
        assert_eq!(r["returns"]["expected"], 3, "run {run}: {r}");
        assert_eq!(r["returns"]["opened"], 3, "run {run}: {r}");
        assert_eq!(r["returns"]["refunded"], 3, "run {run}: {r}");
        assert!(r["lifecycles_per_sec"].as_f64().unwrap_or(0.0) > 0.0, "{r}");
        // The tracking lag came from the service's /metrics page.
        assert!(r["lag_samples"].as_u64().unwrap_or(0) > 0, "{r}");
        assert!(
            r["fulfillment"]["flows_claimed"].as_f64().unwrap_or(0.0) >= 12.0,
            "the fulfillment counters came from the service's /metrics page: {r}"
        );
        // Each stage gap is of the run's own orders: packed after submitted, and so on.
        let stages = r["stages"].as_array().expect("stages");
        assert_eq!(stages.len(), 7, "{r}");
        for gap in stages {
            assert!(gap["ms"]["max"].as_f64().is_some(), "{gap}");
        }
    }
}

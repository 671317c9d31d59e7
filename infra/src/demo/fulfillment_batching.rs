//! The demo's word on how the fulfillment side wrote: the worker's rounds and the node/carrier
//! webhooks' group commit, read from the process's metrics listener (`WAYBILL_METRICS_ADDR`; in
//! `serve all` that page covers the workers too). A few lines; nothing is asserted.

use crate::client::ApiClient;

/// The sum over every label set of the series `name` in a Prometheus text page.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub async fn show(client: &ApiClient, url: &str) {
    let Ok(text) = client.get_text(url).await else {
        return;
    };
    let appends = metric(&text, "waybill_fulfillment_append_orders_count");
    let orders = metric(&text, "waybill_fulfillment_append_orders_sum");
    let batches = metric(&text, "waybill_logistics_webhook_batch_size_count");
    let webhooks = metric(&text, "waybill_logistics_webhook_batch_size_sum");
    if appends == 0.0 {
        println!("\nFulfillment writes: no fulfillment metrics on {url} (the workers run in another process).");
        return;
    }
    println!("\nFulfillment writes (WAYBILL_FULFILLMENT_COMMIT, default rounds):");
    println!(
        "  {appends:.0} transactions carried {orders:.0} orders' fulfillment events ({:.1} per transaction)",
        orders / appends
    );
    if batches > 0.0 {
        println!(
            "  {webhooks:.0} node/carrier webhooks were stored in {batches:.0} group commits ({:.1} per commit)",
            webhooks / batches
        );
    }
}

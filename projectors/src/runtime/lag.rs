//! Consumer lag, polled from the server: `waybill_projector_lag_messages{view}` is the number of
//! messages not yet delivered to the view. When nothing is pending or in flight,
//! `waybill_projector_lag_seconds{view}` (set per batch from the newest applied `recorded_at`)
//! drops to 0.

use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;

pub(crate) async fn report_lag(consumer: PullConsumer, view: String, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match consumer.get_info().await {
            Ok(info) => {
                metrics::gauge!("waybill_projector_lag_messages", "view" => view.clone())
                    .set(info.num_pending as f64);
                if info.num_pending == 0 && info.num_ack_pending == 0 {
                    metrics::gauge!("waybill_projector_lag_seconds", "view" => view.clone())
                        .set(0.0);
                }
            }
            Err(err) => tracing::debug!(view, error = %err, "consumer lag not read"),
        }
    }
}

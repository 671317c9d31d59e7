//! The messages an order's customer was sent, for the order page: the notifications view's own
//! pure decision ([`waybill_projectors::views::notifications::apply`]) replayed over the order's
//! events, so the page lists exactly what the projector hands its sink, without a second record
//! of it. (A message the sink failed to deliver is retried by the projector, not shown here.)

use waybill_projectors::views::notifications::{apply, Links, Notification, NotificationState};
use waybill_schemas::access::TrackingKeys;
use waybill_schemas::EventEnvelope;

/// Every message the order's events caused, in order.
pub fn sent(events: &[EventEnvelope], tracking: &TrackingKeys) -> Vec<Notification> {
    let links = Links {
        public_tracking_base_url: String::new(),
        tracking: tracking.clone(),
    };
    let mut state: Option<NotificationState> = None;
    for event in events {
        match apply(state.as_ref(), event, &links) {
            Ok(next) => state = Some(next),
            Err(error) => {
                tracing::warn!(%error, stream_id = %event.stream_id, "notifications replay skipped an event");
            }
        }
    }
    state.map(|s| s.outgoing).unwrap_or_default()
}

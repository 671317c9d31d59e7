//! Dead letters: an event a view could not apply after its last attempt is published, with the
//! reason, to `waybill.dlq.<root>.<view>`, which the `<stream>_DLQ` stream keeps for
//! inspection and replay.

use async_nats::jetstream;

/// Header carrying why the view gave up (one line, at most 1,024 characters).
pub const HEADER_ERROR: &str = "Waybill-Error";
/// Header carrying the subject the event was consumed from.
pub const HEADER_ORIGINAL_SUBJECT: &str = "Waybill-Original-Subject";
/// Header carrying how many deliveries were attempted.
pub const HEADER_DELIVERIES: &str = "Waybill-Deliveries";

/// Publishes `message` (body and headers as received) plus the failure headers, and waits for
/// the DLQ stream's ack.
pub(crate) async fn publish(
    js: &jetstream::Context,
    subject: &str,
    message: &jetstream::Message,
    reason: &str,
    delivered: i64,
) -> Result<(), jetstream::context::PublishError> {
    let mut headers = message.headers.clone().unwrap_or_default();
    let one_line: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(1024)
        .collect();
    headers.insert(HEADER_ERROR, one_line);
    headers.insert(HEADER_ORIGINAL_SUBJECT, message.subject.as_str());
    headers.insert(HEADER_DELIVERIES, delivered.to_string());
    js.publish_with_headers(subject.to_owned(), headers, message.payload.clone())
        .await?
        .await?;
    Ok(())
}

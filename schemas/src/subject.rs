//! NATS subjects for published events: `<root>.v1.<partition>.<event_type>` (root `orders` unless
//! configured otherwise, e.g. to isolate test runs on one server), where the partition
//! is a stable hash of the stream id, so all of one order's events share a partition and
//! consumers can scale out per partition without losing per-order order.

/// The JetStream stream all order events are published to.
pub const STREAM: &str = "ORDERS";
/// The default subject root.
pub const DEFAULT_ROOT: &str = "orders";

/// Subjects the stream captures for a root: `orders.v1.>`.
pub fn stream_subjects(root: &str) -> String {
    format!("{root}.v1.>")
}
/// Where projectors put events they could not apply after their last attempt.
pub const DEAD_LETTER_PREFIX: &str = "waybill.dlq";

/// FNV-1a: stable across processes, versions and platforms (unlike `DefaultHasher`).
pub fn partition_of(stream_id: &str, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in stream_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

pub fn subject_for(root: &str, stream_id: &str, event_type: &str, partitions: u32) -> String {
    format!(
        "{root}.v1.{}.{}",
        partition_of(stream_id, partitions),
        event_type
    )
}

/// The dead-letter subject for a view's consumer (outside the event stream's subjects).
pub fn dead_letter_subject(root: &str, view: &str) -> String {
    format!("{DEAD_LETTER_PREFIX}.{root}.{view}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stream_always_lands_in_one_partition() {
        let id = "order-0191e0c4-7c1a-7000-8000-000000000001";
        let first = subject_for("orders", id, "OrderPlaced", 16);
        let second = subject_for("orders", id, "OrderCancelled", 16);
        assert_eq!(
            first.rsplit_once('.').map(|p| p.0),
            second.rsplit_once('.').map(|p| p.0)
        );
        assert!(first.starts_with("orders.v1."));
        assert!(first.ends_with(".OrderPlaced"));
    }

    #[test]
    fn partitions_spread_streams() {
        let used: std::collections::HashSet<u32> = (0..1000)
            .map(|i| partition_of(&format!("order-{i}"), 8))
            .collect();
        assert_eq!(used.len(), 8);
    }
}

//! Multi-channel capture: `channel_orders` maps `(channel, channel_order_ref)` to the one Waybill
//! order captured for it. The primary key makes a second capture of the same reference collide.

use sqlx::{PgConnection, PgPool};
use waybill_schemas::{Channel, OrderId};

use crate::event_store::retry;

/// One channel reference and the order captured for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelOrder {
    pub channel: Channel,
    pub channel_order_ref: String,
    pub order_id: OrderId,
}

/// The order captured for `(channel, channel_order_ref)`, if any.
pub async fn find(
    pool: &PgPool,
    channel: Channel,
    channel_order_ref: &str,
) -> Result<Option<OrderId>, sqlx::Error> {
    let id: Option<uuid::Uuid> = retry::serializable(|| {
        sqlx::query_scalar(
            "SELECT order_id FROM channel_orders WHERE channel = $1 AND channel_order_ref = $2",
        )
        .bind(channel.as_str())
        .bind(channel_order_ref)
        .fetch_optional(pool)
    })
    .await?;
    Ok(id.map(OrderId::from_uuid))
}

/// Inserts `rows` with one statement; a reference already captured fails it with a unique
/// violation on `channel_orders_pkey`.
pub async fn insert(conn: &mut PgConnection, rows: &[&ChannelOrder]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let channels: Vec<&str> = rows.iter().map(|r| r.channel.as_str()).collect();
    let refs: Vec<&str> = rows.iter().map(|r| r.channel_order_ref.as_str()).collect();
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.order_id.as_uuid()).collect();
    sqlx::query(
        "INSERT INTO channel_orders (channel, channel_order_ref, order_id) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::uuid[])",
    )
    .bind(channels)
    .bind(refs)
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

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

/// Inserts `rows` with one statement, skipping every reference already captured, and returns
/// the `(channel, channel_order_ref)` pairs it inserted. `rows` must not repeat a reference.
pub async fn insert_new(
    conn: &mut PgConnection,
    rows: &[&ChannelOrder],
) -> Result<Vec<(String, String)>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let channels: Vec<&str> = rows.iter().map(|r| r.channel.as_str()).collect();
    let refs: Vec<&str> = rows.iter().map(|r| r.channel_order_ref.as_str()).collect();
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.order_id.as_uuid()).collect();
    sqlx::query_as(
        "INSERT INTO channel_orders (channel, channel_order_ref, order_id) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::uuid[]) \
         ON CONFLICT DO NOTHING \
         RETURNING channel, channel_order_ref",
    )
    .bind(channels)
    .bind(refs)
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// The orders captured for each of `refs` (`(channel, channel_order_ref)` pairs), read in the
/// caller's transaction; references not captured are absent from the answer.
pub async fn find_many(
    conn: &mut PgConnection,
    refs: &[(Channel, &str)],
) -> Result<Vec<(String, String, OrderId)>, sqlx::Error> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let channels: Vec<&str> = refs.iter().map(|r| r.0.as_str()).collect();
    let order_refs: Vec<&str> = refs.iter().map(|r| r.1).collect();
    let rows: Vec<(String, String, uuid::Uuid)> = sqlx::query_as(
        "SELECT c.channel, c.channel_order_ref, c.order_id \
         FROM channel_orders c JOIN UNNEST($1::text[], $2::text[]) AS x(ch, r) \
           ON c.channel = x.ch AND c.channel_order_ref = x.r",
    )
    .bind(channels)
    .bind(order_refs)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(channel, r, id)| (channel, r, OrderId::from_uuid(id)))
        .collect())
}

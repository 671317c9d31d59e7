//! Reading positions from and writing a batch's rows to the ClickHouse warehouse.
//!
//! A batch is written table by table: line facts, settlement lines, payouts, ledger entries,
//! and last the rows that hold the positions (order facts, stream positions). A crash before
//! those leaves the old positions: the events come again and rewrite the same rows (every table
//! is a ReplacingMergeTree on its natural key), which is what makes redelivery harmless.
//!
//! Fee entries come from settlement streams, which do not know the order's channel; the store
//! fills it in from the batch's own orders or `order_facts` before writing (I/O belongs here,
//! not in the pure apply). A fee of an order not projected yet keeps an empty channel, and the
//! finance queries take the channel from the order for those.

use std::collections::HashMap;

use clickhouse::Client;
use waybill_schemas::OrderId;

use super::{AnalyticsError, AnalyticsState, OrderAnalytics, SettlementAnalytics};
use crate::warehouse::rows::{
    insert_rows, LedgerEntryRow, OrderFactRow, ShipmentRow, StreamPositionRow,
};
use crate::warehouse::WarehouseError;

/// The tables this view writes and nothing else does: what a rebuild fills and switches, and
/// what the view's self-healing makes sure exists. (`reconciliation_results` is the
/// reconciliation runner's, `view_markers` the markers'.) `order_facts` and `stream_positions`
/// hold the positions.
pub const TABLES: &[&str] = &[
    "order_facts",
    "line_facts",
    "ledger_entries",
    "shipments",
    "returns",
    "settlement_lines",
    "payouts",
    "stream_positions",
];

/// The tables holding the view's positions (see [`TABLES`]).
pub const POSITION_TABLES: &[&str] = &["order_facts", "stream_positions"];

/// The analytics tables of one warehouse database.
#[derive(Clone)]
pub struct AnalyticsStore {
    client: Client,
}

impl AnalyticsStore {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The stored states of these streams, in order (`None`: nothing applied yet). Only
    /// positions are read (an order's fact row is its position); rows already written are not
    /// needed to apply further events.
    pub async fn load_streams(
        &self,
        stream_ids: &[String],
    ) -> Result<Vec<Option<AnalyticsState>>, AnalyticsError> {
        let mut order_ids = Vec::new();
        let mut others = Vec::new();
        for stream_id in stream_ids {
            match OrderId::from_stream_id(stream_id) {
                Some(id) => order_ids.push(id.to_string()),
                None => others.push(stream_id.clone()),
            }
        }
        let mut facts: HashMap<String, OrderFactRow> = HashMap::new();
        if !order_ids.is_empty() {
            let rows: Vec<OrderFactRow> = self
                .client
                .query(&format!(
                    "SELECT ?fields FROM order_facts FINAL WHERE order_id IN ({})",
                    string_list(&order_ids)
                ))
                .fetch_all()
                .await
                .map_err(WarehouseError::clickhouse("reading order facts"))?;
            facts = rows.into_iter().map(|f| (f.order_id.clone(), f)).collect();
        }
        let mut shipments: HashMap<String, Vec<ShipmentRow>> = HashMap::new();
        if !facts.is_empty() {
            let known: Vec<String> = facts.keys().cloned().collect();
            let rows: Vec<ShipmentRow> = self
                .client
                .query(&format!(
                    "SELECT ?fields FROM shipments FINAL WHERE order_id IN ({}) \
                     ORDER BY shipment_id",
                    string_list(&known)
                ))
                .fetch_all()
                .await
                .map_err(WarehouseError::clickhouse("reading shipments"))?;
            for row in rows {
                shipments.entry(row.order_id.clone()).or_default().push(row);
            }
        }
        let mut positions: HashMap<String, u64> = HashMap::new();
        if !others.is_empty() {
            let rows: Vec<StreamPositionRow> = self
                .client
                .query(&format!(
                    "SELECT ?fields FROM stream_positions FINAL WHERE stream_id IN ({})",
                    string_list(&others)
                ))
                .fetch_all()
                .await
                .map_err(WarehouseError::clickhouse("reading stream positions"))?;
            positions = rows.into_iter().map(|p| (p.stream_id, p.version)).collect();
        }
        Ok(stream_ids
            .iter()
            .map(|stream_id| match OrderId::from_stream_id(stream_id) {
                Some(id) => facts.remove(&id.to_string()).map(|fact| {
                    AnalyticsState::Order(OrderAnalytics {
                        shipments: shipments.remove(&fact.order_id).unwrap_or_default(),
                        fact,
                        lines: Vec::new(),
                        ledger: Vec::new(),
                        returns: Vec::new(),
                    })
                }),
                None => positions.remove(stream_id).map(|version| {
                    AnalyticsState::Settlement(SettlementAnalytics {
                        stream_id: stream_id.clone(),
                        version,
                        ..SettlementAnalytics::default()
                    })
                }),
            })
            .collect())
    }

    /// Writes the batch's rows, positions last. Returns the number of rows written.
    pub async fn write(&self, states: &[AnalyticsState]) -> Result<usize, AnalyticsError> {
        let mut lines = Vec::new();
        let mut ledger = Vec::new();
        let mut facts = Vec::new();
        let mut settlement_lines = Vec::new();
        let mut payouts = Vec::new();
        let mut positions = Vec::new();
        let mut parcels = Vec::new();
        let mut returned = Vec::new();
        for state in states {
            match state {
                AnalyticsState::Order(order) => {
                    lines.extend(order.lines.iter().cloned());
                    ledger.extend(order.ledger.iter().cloned());
                    parcels.extend(order.shipments.iter().cloned());
                    returned.extend(order.returns.iter().cloned());
                    facts.push(order.fact.clone());
                }
                AnalyticsState::Settlement(settlement) => {
                    settlement_lines.extend(settlement.lines.iter().cloned());
                    ledger.extend(settlement.fees.iter().cloned());
                    payouts.extend(settlement.payouts.iter().cloned());
                    positions.push(StreamPositionRow {
                        stream_id: settlement.stream_id.clone(),
                        version: settlement.version,
                    });
                }
            }
        }
        self.fill_fee_channels(&mut ledger, &facts).await?;
        insert_rows(&self.client, "line_facts", &lines).await?;
        insert_rows(&self.client, "settlement_lines", &settlement_lines).await?;
        insert_rows(&self.client, "payouts", &payouts).await?;
        insert_rows(&self.client, "ledger_entries", &ledger).await?;
        insert_rows(&self.client, "shipments", &parcels).await?;
        insert_rows(&self.client, "returns", &returned).await?;
        insert_rows(&self.client, "order_facts", &facts).await?;
        insert_rows(&self.client, "stream_positions", &positions).await?;
        Ok(lines.len()
            + settlement_lines.len()
            + payouts.len()
            + ledger.len()
            + parcels.len()
            + returned.len()
            + facts.len()
            + positions.len())
    }
}

impl AnalyticsStore {
    /// Sets the channel of entries that have none but name an order: from `batch` first, then
    /// from the stored order facts.
    async fn fill_fee_channels(
        &self,
        ledger: &mut [LedgerEntryRow],
        batch: &[OrderFactRow],
    ) -> Result<(), AnalyticsError> {
        let mut channels: HashMap<String, String> = batch
            .iter()
            .map(|f| (f.order_id.clone(), f.channel.clone()))
            .collect();
        let mut unknown: Vec<String> = ledger
            .iter()
            .filter(|e| e.channel.is_empty() && !e.order_id.is_empty())
            .filter(|e| !channels.contains_key(&e.order_id))
            .map(|e| e.order_id.clone())
            .collect();
        unknown.sort();
        unknown.dedup();
        for chunk in unknown.chunks(5_000) {
            let rows: Vec<OrderChannel> = self
                .client
                .query(&format!(
                    "SELECT order_id, channel FROM order_facts FINAL WHERE order_id IN ({})",
                    string_list(chunk)
                ))
                .fetch_all()
                .await
                .map_err(WarehouseError::clickhouse("reading order channels"))?;
            channels.extend(rows.into_iter().map(|r| (r.order_id, r.channel)));
        }
        for entry in ledger.iter_mut().filter(|e| e.channel.is_empty()) {
            if let Some(channel) = channels.get(&entry.order_id) {
                entry.channel = channel.clone();
            }
        }
        Ok(())
    }
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct OrderChannel {
    order_id: String,
    channel: String,
}

/// `'a','b'` for an `IN (…)` list: ClickHouse 18.16 has no server-side parameters and takes no
/// array after `IN`, so the values are quoted here (backslash and quote escaped).
pub(crate) fn string_list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(",")
}

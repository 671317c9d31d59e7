//! Withdrawing cancelled units: each node task holding some is amended (`POST
//! /wms/v1/tasks/{task}/cancel`, key `<fulfillment id>:cancel:<n>`, n counting that fulfillment
//! order's cancellations from 1), then their stock is given back to the inventory (key
//! `<order>:cancel:<cancellation id>`). Both calls are idempotent, so a crash before the
//! outcome is recorded repeats them harmlessly.
//!
//! Units an edit took out of the order in the fulfillment hold are released the same way when
//! the order is routed (key `<order>:edit:<edit id>`, once per edit however often routing is
//! retried).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use waybill_schemas::events::FulfillmentLine;
use waybill_schemas::OrderId;

use super::logistics::TaskCancel;
use super::worker::FulfillmentServices;
use super::FulfillmentError;
use crate::domain::fulfillment::{Fulfillment, FulfillmentCommand};
use crate::inventory::{PartialRelease, UnitsAt};

/// Amends the nodes and releases the stock of cancellation `cancellation_id`; answers the
/// command that records it.
pub(super) async fn withdraw(
    services: &FulfillmentServices,
    order_id: OrderId,
    state: &Fulfillment,
    cancellation_id: Uuid,
    now: DateTime<Utc>,
) -> Result<FulfillmentCommand, FulfillmentError> {
    let (cancellation, _) = state
        .cancellations
        .iter()
        .find(|(c, _)| c.cancellation_id == cancellation_id)
        .ok_or_else(|| {
            FulfillmentError::Inconsistent(format!("no cancellation {cancellation_id}"))
        })?;
    let nodes: BTreeSet<&str> = cancellation
        .lines
        .iter()
        .filter_map(|l| l.fulfillment_id.as_deref())
        .collect();
    let mut amended = Vec::new();
    for fulfillment_id in nodes {
        let Some(o) = state.order(fulfillment_id) else {
            continue;
        };
        let Some(task_id) = o.wms_task_id.as_deref() else {
            // Not submitted yet: the task will be sent without the cancelled units.
            continue;
        };
        if o.packed {
            // Ready at a store and never collected: the store puts the units back itself.
            continue;
        }
        let n = state
            .cancellations
            .iter()
            .filter(|(c, _)| {
                c.lines
                    .iter()
                    .any(|l| l.fulfillment_id.as_deref() == Some(fulfillment_id))
            })
            .position(|(c, _)| c.cancellation_id == cancellation_id)
            .map_or(1, |i| i + 1);
        let lines: Vec<FulfillmentLine> = cancellation
            .lines
            .iter()
            .filter(|l| l.fulfillment_id.as_deref() == Some(fulfillment_id))
            .map(|l| FulfillmentLine {
                line_no: l.line_no,
                sku: l.sku.clone(),
                quantity: l.quantity,
            })
            .collect();
        let key = format!("{fulfillment_id}:cancel:{n}");
        if services
            .logistics
            .cancel_task_lines(&key, task_id, &TaskCancel { lines })
            .await?
        {
            amended.push(fulfillment_id.to_owned());
        } else {
            tracing::warn!(%order_id, %fulfillment_id, "node refused to take cancelled units out of a packed task");
        }
    }
    let lines = cancellation
        .lines
        .iter()
        .map(|l| UnitsAt {
            line_no: l.line_no,
            sku: l.sku.clone(),
            quantity: l.quantity.get(),
            location_id: l
                .fulfillment_id
                .as_deref()
                .and_then(|id| state.order(id))
                .map(|o| o.routed.node_id.clone()),
        })
        .collect();
    let released_units = services
        .inventory
        .release_units(PartialRelease {
            order_id,
            release_id: format!("{order_id}:cancel:{cancellation_id}"),
            lines,
            now,
        })
        .await?;
    Ok(FulfillmentCommand::RecordWithdrawal {
        cancellation_id,
        nodes_amended: amended,
        released_units,
    })
}

/// Gives back the stock of the units every edit took out of the order (before routing them).
pub(super) async fn release_edited_units(
    services: &FulfillmentServices,
    order_id: OrderId,
    state: &Fulfillment,
    now: DateTime<Utc>,
) -> Result<(), FulfillmentError> {
    for (edit_id, removed) in &state.edit_removals {
        let lines = removed
            .iter()
            .map(|l| UnitsAt {
                line_no: l.line_no,
                sku: l.sku.clone(),
                quantity: l.quantity.get(),
                location_id: state
                    .allocated
                    .iter()
                    .find(|a| a.line_no == l.line_no)
                    .map(|a| a.location_id.clone()),
            })
            .collect();
        services
            .inventory
            .release_units(PartialRelease {
                order_id,
                release_id: format!("{order_id}:edit:{edit_id}"),
                lines,
                now,
            })
            .await?;
    }
    Ok(())
}

//! Recording what the inventory context did with the order's stock: reserved (or short),
//! allocated at confirmation, released back.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use waybill_schemas::events::{
    BackorderedLine, InventoryAllocated, InventoryReleased, InventoryReservationFailed,
    InventoryReserved, ReleaseReason, ReservedLine, Shortage,
};
use waybill_schemas::OrderEvent;

use super::{OrderError, OrderState};

impl OrderState {
    /// Reserved plus back-ordered units must cover every order line exactly.
    pub(super) fn record_reservation(
        &self,
        lines: &[ReservedLine],
        backordered: &[BackorderedLine],
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        if let Some(recorded) = &self.reserved {
            if recorded.lines == lines
                && recorded.backordered == backordered
                && recorded.expires_at == expires_at
            {
                return Ok(vec![]);
            }
            return Err(self.conflict(
                format_args!("a reservation until {}", recorded.expires_at),
                format_args!("another reservation until {expires_at}"),
            ));
        }
        if self.shortages.is_some() {
            return Err(self.conflict("a reservation failure", "a reservation"));
        }
        // Stock held by the inventory is a fact even on an order cancelled meanwhile (the flow's
        // reservation raced the cancel): recorded, so the flow releases it.
        let ordered = units_by_line(
            self.placed
                .lines
                .iter()
                .map(|l| (l.line_no, l.quantity.get())),
        );
        let covered = units_by_line(
            lines
                .iter()
                .map(|l| (l.line_no, l.quantity.get()))
                .chain(backordered.iter().map(|b| (b.line_no, b.quantity.get()))),
        );
        self.ensure_covers("reservation", &ordered, &covered)?;
        Ok(vec![OrderEvent::InventoryReserved(InventoryReserved {
            order_id: self.order_id(),
            lines: lines.to_vec(),
            backordered: backordered.to_vec(),
            expires_at,
            reserved_at: now,
        })])
    }

    pub(super) fn record_reservation_failure(
        &self,
        shortages: &[Shortage],
        action: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        if let Some(recorded) = &self.shortages {
            if recorded == shortages {
                return Ok(vec![]);
            }
            return Err(self.conflict("a reservation failure", "a different reservation failure"));
        }
        if self.reserved.is_some() {
            return Err(self.conflict("a reservation", "a reservation failure"));
        }
        self.ensure_not_cancelled(action)?;
        Ok(vec![OrderEvent::InventoryReservationFailed(
            InventoryReservationFailed {
                order_id: self.order_id(),
                shortages: shortages.to_vec(),
                failed_at: now,
            },
        )])
    }

    /// Turns the live soft reservation into an allocation of the same units per line (the
    /// locations may differ: allocation picks the nearest one with stock).
    pub(super) fn record_allocation(
        &self,
        lines: &[ReservedLine],
        action: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        if let Some(recorded) = &self.allocated {
            if recorded == lines {
                return Ok(vec![]);
            }
            return Err(self.conflict("an allocation", "a different allocation"));
        }
        self.ensure_not_cancelled(action)?;
        let reservation = self.reservation();
        let Some(reserved) = self.reserved.as_ref().filter(|_| reservation.is_live()) else {
            return Err(OrderError::BlockedByStock {
                order_id: self.order_id(),
                action,
                reservation,
            });
        };
        let expected = units_by_line(reserved.lines.iter().map(|l| (l.line_no, l.quantity.get())));
        let covered = units_by_line(lines.iter().map(|l| (l.line_no, l.quantity.get())));
        self.ensure_covers("allocation", &expected, &covered)?;
        Ok(vec![OrderEvent::InventoryAllocated(InventoryAllocated {
            order_id: self.order_id(),
            lines: lines.to_vec(),
            allocated_at: now,
        })])
    }

    /// A compensation: accepted after cancellation. A confirmed order keeps its stock unless it
    /// is cancelled.
    pub(super) fn record_release(
        &self,
        reason: ReleaseReason,
        action: &'static str,
        now: DateTime<Utc>,
    ) -> Result<Vec<OrderEvent>, OrderError> {
        if let Some(recorded) = self.released {
            if recorded == reason {
                return Ok(vec![]);
            }
            return Err(self.conflict(
                format_args!("a release ({})", recorded.as_str()),
                format_args!("a release ({})", reason.as_str()),
            ));
        }
        let reservation = self.reservation();
        if !reservation.is_live() {
            return Err(OrderError::BlockedByStock {
                order_id: self.order_id(),
                action,
                reservation,
            });
        }
        if self.confirmed.is_some() && !self.is_cancelled() {
            return Err(OrderError::ConfirmedNotCancelled {
                order_id: self.order_id(),
                action,
            });
        }
        Ok(vec![OrderEvent::InventoryReleased(InventoryReleased {
            order_id: self.order_id(),
            reason,
            released_at: now,
        })])
    }

    fn ensure_covers(
        &self,
        what: &'static str,
        expected: &BTreeMap<u32, u32>,
        covered: &BTreeMap<u32, u32>,
    ) -> Result<(), OrderError> {
        let mismatch = expected
            .keys()
            .chain(covered.keys())
            .map(|line_no| {
                let want = expected.get(line_no).copied().unwrap_or(0);
                let got = covered.get(line_no).copied().unwrap_or(0);
                (*line_no, want, got)
            })
            .find(|(_, want, got)| want != got);
        match mismatch {
            None => Ok(()),
            Some((line_no, expected, covered)) => Err(OrderError::StockDoesNotCover {
                order_id: self.order_id(),
                what,
                line_no,
                expected,
                covered,
            }),
        }
    }
}

/// Units per order line number (quantities are at most 10,000 each, so the sums fit).
fn units_by_line(units: impl Iterator<Item = (u32, u32)>) -> BTreeMap<u32, u32> {
    let mut by_line = BTreeMap::new();
    for (line_no, quantity) in units {
        let total: &mut u32 = by_line.entry(line_no).or_default();
        *total = total.saturating_add(quantity);
    }
    by_line
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use waybill_schemas::events::{CancelReason, CaptureMode, ReleaseReason, Shortage};
    use waybill_schemas::Sku;

    use super::super::fixtures::*;
    use super::super::*;

    fn accepted() -> Order {
        with(placed_order(card()), &[accept_risk()], t0())
    }

    fn reserved() -> Order {
        with(accepted(), &[reserve_all(t0() + minutes(15))], t0())
    }

    fn shortage() -> OrderCommand {
        OrderCommand::RecordReservationFailure {
            shortages: vec![Shortage {
                line_no: 1,
                sku: Sku::parse("TEE-RED-M").expect("valid sku"),
                requested: 2,
                available: 1,
            }],
        }
    }

    fn release(reason: ReleaseReason) -> OrderCommand {
        OrderCommand::RecordRelease { reason }
    }

    fn allocate() -> OrderCommand {
        OrderCommand::RecordAllocation {
            lines: full_lines(),
        }
    }

    fn cancelled(mut order: Order) -> Order {
        let id = order.state().expect("placed").order_id();
        order
            .record(&cancel_command(id, CancelReason::CustomerRequest), t0())
            .expect("cancelled");
        order
    }

    #[test]
    fn a_reservation_is_recorded_once_and_repeats_are_no_ops() {
        let order = reserved();
        let state = order.state().expect("placed");
        assert_eq!(
            state.reservation(),
            ReservationState::Reserved {
                expires_at: t0() + minutes(15)
            }
        );
        assert_eq!(
            state.reserved().map(|r| r.lines.clone()),
            Some(full_lines())
        );
        assert_eq!(
            order.handle(&reserve_all(t0() + minutes(15)), t0()),
            Ok(vec![])
        );
        let err = order
            .handle(&reserve_all(t0() + minutes(30)), t0())
            .expect_err("different reservation");
        assert!(
            matches!(err, OrderError::ConflictingOutcome { .. }),
            "{err}"
        );
        let err = order
            .handle(&shortage(), t0())
            .expect_err("after reservation");
        assert!(
            matches!(err, OrderError::ConflictingOutcome { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_reservation_must_cover_every_ordered_unit() {
        let err = accepted()
            .handle(
                &OrderCommand::RecordReservation {
                    lines: vec![
                        reserved_line(1, "TEE-RED-M", 1),
                        reserved_line(2, "CAP-BLUE", 1),
                    ],
                    backordered: vec![],
                    expires_at: t0() + minutes(15),
                },
                t0(),
            )
            .expect_err("short");
        assert!(
            matches!(
                err,
                OrderError::StockDoesNotCover {
                    line_no: 1,
                    expected: 2,
                    covered: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err
            .to_string()
            .ends_with("the reservation covers 1 units of line 1, expected 2"));
        let split = OrderCommand::RecordReservation {
            lines: vec![
                reserved_line(1, "TEE-RED-M", 1),
                reserved_line(2, "CAP-BLUE", 1),
            ],
            backordered: vec![backordered_line(1, "TEE-RED-M", 1)],
            expires_at: t0() + minutes(15),
        };
        assert!(accepted().handle(&split, t0()).is_ok());
    }

    #[test]
    fn a_reservation_failure_is_recorded_once() {
        let failed = with(accepted(), &[shortage()], t0());
        let state = failed.state().expect("placed");
        assert_eq!(state.reservation(), ReservationState::Failed);
        assert_eq!(state.shortages().map(<[Shortage]>::len), Some(1));
        assert_eq!(failed.handle(&shortage(), t0()), Ok(vec![]));
        let err = failed
            .handle(
                &OrderCommand::RecordReservationFailure { shortages: vec![] },
                t0(),
            )
            .expect_err("different failure");
        assert!(
            matches!(err, OrderError::ConflictingOutcome { .. }),
            "{err}"
        );
        let err = failed
            .handle(&reserve_all(t0() + minutes(15)), t0())
            .expect_err("reservation after failure");
        assert!(
            matches!(err, OrderError::ConflictingOutcome { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_cancelled_order_records_stock_it_was_given_but_allocates_nothing() {
        // The inventory reserved while the cancel landed: the fact is recorded so the flow
        // can release it.
        let reserved_late = with(
            cancelled(accepted()),
            &[reserve_all(t0() + minutes(15))],
            t0(),
        );
        assert_eq!(
            reserved_late.state().map(|s| s.status()),
            Some(OrderStatus::Cancelled)
        );
        assert!(reserved_late
            .handle(
                &OrderCommand::RecordRelease {
                    reason: ReleaseReason::OrderCancelled
                },
                t0()
            )
            .is_ok_and(|e| e.len() == 1));
        let err = cancelled(reserved())
            .handle(&allocate(), t0())
            .expect_err("cancelled");
        assert!(
            matches!(
                err,
                OrderError::Cancelled {
                    action: "allocate stock",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn allocation_turns_the_live_reservation_into_the_same_units() {
        let order = with(reserved(), &[allocate()], t0());
        let state = order.state().expect("placed");
        assert_eq!(state.reservation(), ReservationState::Allocated);
        assert_eq!(state.allocated_lines().map(<[_]>::len), Some(2));
        assert_eq!(order.handle(&allocate(), t0()), Ok(vec![]));
        let err = order
            .handle(&OrderCommand::RecordAllocation { lines: vec![] }, t0())
            .expect_err("different allocation");
        assert!(
            matches!(err, OrderError::ConflictingOutcome { .. }),
            "{err}"
        );

        let err = reserved()
            .handle(
                &OrderCommand::RecordAllocation {
                    lines: vec![reserved_line(1, "TEE-RED-M", 2)],
                },
                t0(),
            )
            .expect_err("line 2 missing");
        assert!(
            matches!(err, OrderError::StockDoesNotCover { line_no: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn allocation_needs_a_live_reservation() {
        let err = accepted()
            .handle(&allocate(), t0())
            .expect_err("nothing reserved");
        assert!(
            matches!(
                err,
                OrderError::BlockedByStock {
                    reservation: ReservationState::None,
                    ..
                }
            ),
            "{err}"
        );
        let released = with(reserved(), &[release(ReleaseReason::Expired)], t0());
        let err = released.handle(&allocate(), t0()).expect_err("released");
        assert!(
            err.to_string()
                .ends_with("cannot allocate stock while its stock is released (expired)"),
            "{err}"
        );
    }

    #[test]
    fn a_release_is_recorded_once_per_reason() {
        let order = with(reserved(), &[release(ReleaseReason::Expired)], t0());
        assert_eq!(
            order.state().map(OrderState::reservation),
            Some(ReservationState::Released {
                reason: ReleaseReason::Expired
            })
        );
        assert_eq!(
            order.handle(&release(ReleaseReason::Expired), t0()),
            Ok(vec![])
        );
        let err = order
            .handle(&release(ReleaseReason::OrderCancelled), t0())
            .expect_err("other reason");
        assert!(
            matches!(err, OrderError::ConflictingOutcome { .. }),
            "{err}"
        );
        let err = accepted()
            .handle(&release(ReleaseReason::Expired), t0())
            .expect_err("nothing held");
        assert!(matches!(err, OrderError::BlockedByStock { .. }), "{err}");
    }

    #[test]
    fn a_confirmed_order_keeps_its_stock_until_it_is_cancelled() {
        let confirmed = with(
            reserved(),
            &[
                authorize("auth_1", t0() + Duration::days(7)),
                allocate(),
                OrderCommand::Confirm {
                    capture_mode: CaptureMode::OnShipment,
                },
            ],
            t0(),
        );
        let err = confirmed
            .handle(&release(ReleaseReason::AllocationFailed), t0())
            .expect_err("confirmed");
        assert!(
            matches!(err, OrderError::ConfirmedNotCancelled { .. }),
            "{err}"
        );
        let after_cancel = with(
            cancelled(confirmed),
            &[release(ReleaseReason::OrderCancelled)],
            t0(),
        );
        assert_eq!(
            after_cancel.state().map(OrderState::reservation),
            Some(ReservationState::Released {
                reason: ReleaseReason::OrderCancelled
            })
        );
    }
}

//! Waybill's write side: the box at the top of ARCHITECTURE.md's diagram.
//!
//! Commands arrive over HTTP ([`command_api`]), are parsed into validated values and decided by
//! the pure order aggregate ([`domain`]), and are committed — events, idempotency record,
//! channel reference and outbox rows in one SERIALIZABLE transaction — by the [`commit_batcher`],
//! which groups many commands per transaction. The [`event_store`] owns the `events` table and
//! serves reads to the projectors; the [`outbox`] relay publishes committed events to
//! JetStream with `Nats-Msg-Id = event_id`. [`trace_context`] carries the W3C trace from the
//! command into the envelope. [`settlement`] reads gateway settlement reports into their own
//! streams (reports, payouts).

pub mod channel_orders;
pub mod checkout;
pub mod command_api;
pub mod commands;
pub mod commit_batcher;
pub mod desk;
pub mod domain;
pub mod event_store;
pub mod fulfillment;
pub mod idempotency;
pub mod idle_backoff;
pub mod inventory;
pub mod jwks;
pub mod migrations;
pub mod nats;
pub mod notification_preferences;
pub mod outbox;
pub mod payment;
pub mod pii;
pub mod readiness;
pub mod risk_signals;
pub mod routing_simulation;
pub mod settlement;
pub mod state_file;
pub mod subscriptions;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod trace_context;
pub mod work_list;

/// The write side's migrations, without sqlx's advisory lock: see [`migrations`].
pub use migrations::migrator;

//! Reconciliation: the ledger (what our events say moved) against the gateway's settlement
//! reports (what it says it settled), by gateway transaction id. [`matcher`] decides, purely;
//! [`runner`] loads both sides of a date range from the warehouse and writes one row per item
//! into `reconciliation_results`. Rerunning a range replaces its results (a newer
//! `run_version` per day), so a report imported late turns yesterday's "missing in report" into
//! "matched" on the next run.

pub mod matcher;
mod runner;

pub use matcher::{reconcile, FeeSchedule, Finding, LedgerItem, Outcome, ReportItem};
pub use runner::{run_reconciliation, RunReport, SETTLEMENT_LAG_DAYS};

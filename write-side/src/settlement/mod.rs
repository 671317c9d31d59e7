//! Gateway settlement reports: reading the gateway's CSV ([`csv`]), deciding what an import
//! records ([`import`], pure), and fetching a day's report through the gateway adapter.
//!
//! An import is one `SettlementReportImported` in the stream `settlement-<sha256 of the bytes>`
//! at expected version 0 (the same report twice is one import) plus one `PayoutRecorded` per
//! payout the report names that is not recorded yet (`payout-<gateway>-<payout_id>`, also at
//! expected version 0), committed in one transaction with the request's idempotency record.
//! Fees are recorded here, as the report states them per line; the order ledger does not carry
//! them. Matching the lines against the ledger is reconciliation's job, not the import's.

pub mod csv;
pub mod import;

pub use csv::{parse_report, CsvError, CsvErrors};
pub use import::{decide_import, report_id, Import, ImportInput};

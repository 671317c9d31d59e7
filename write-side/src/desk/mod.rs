//! The exceptions desk's write-side half: what an entry can be about and what may be done
//! ([`kinds`]), the `desk_entries` table ([`entries`]), and resolving an entry, which appends
//! `DeskEntryResolved` to the entry's stream `desk-<id>` at expected version 0 through the commit
//! batcher with the request's idempotency record (`commands::resolve_desk_entry`). Finding the
//! entries is the projectors' job (`projectors/src/desk/`): they watch the event stream.

pub mod entries;
pub mod kinds;

pub use entries::{Entry, EntryFilter, EntryStatus, NewEntry, Resolution};
pub use kinds::{Action, Effect, EntryKind};

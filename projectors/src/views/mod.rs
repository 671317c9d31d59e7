//! The read models. Each view has the same rooms: `mod.rs` (what it stores where, its error),
//! `apply.rs` (pure: how an event changes it), `store.rs` (reading and compare-and-set writing
//! its store) and `tests.rs` (against the real store). Both keep one Redis hash per order, laid
//! out and compare-and-set written by [`order_hashes`]. The consumer runtime in
//! [`crate::runtime`] feeds every view through the [`crate::runtime::View`] trait.

pub mod analytics;
pub mod feed;
pub mod notifications;
pub mod order_hashes;
pub mod search;
pub mod store_marker;
pub mod tracking;

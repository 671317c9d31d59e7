//! How Waybill reaches JetStream, one machine or a cluster: the server list, credentials and TLS
//! of the connection ([`connection`]), and the streams it owns with their replicas and retention
//! limits ([`streams`]). The relay and the projectors both go through here, so a setting means
//! the same thing in every role.

pub mod connection;
pub mod streams;

pub use connection::{NatsAuth, NatsConfigError, NatsConnection, NatsTls};
pub use streams::{ensure_stream, StreamLimits, StreamSetupError};

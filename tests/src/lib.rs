//! The end-to-end harness: everything a test in `tests/tests/` needs to run the real `waybill`
//! binary against the real Postgres, NATS JetStream and Redis of this machine, isolated from every
//! other test running at the same time.
//!
//! A test builds a [`TestEnv`] (its own database created from scratch with SERIALIZABLE as the
//! default isolation, its own JetStream stream name and subject root, its own Redis key prefix),
//! starts one or more [`WaybillProcess`]es from it (`serve all`, or `serve commands`/`relay`/
//! `projector`/`query` as separate processes it can kill -9 and restart), talks to them through
//! [`Api`], and inspects the stores directly (events in the database, messages in the stream).
//! Everything is torn down when the values are dropped.
//!
//! In the ARCHITECTURE.md diagram this crate stands outside all three boxes, where the channels
//! and the customers are.

mod api;
mod binary;
pub mod browser;
pub mod checkout;
pub mod clickhouse_cluster;
pub mod cluster_stack;
mod env;
pub mod fulfillment;
mod identity_provider;
pub mod lifecycle_actors;
mod money;
mod nats_cluster;
mod order_flow;
mod orders;
mod osmem;
mod otlp;
mod poll;
pub mod private_postgres;
mod process;
mod redis_cluster;
mod redis_server;
pub mod screens;
mod secure_nats;
pub mod smtp_server;
mod tcp_proxy;
pub mod webhook_receiver;

pub use api::{Api, HttpResponse, ADMIN_KEY, AGENT_KEY, FINANCE_KEY, SERVICE_KEY};
pub use binary::{assert_succeeded, waybill_binary};
pub use env::TestEnv;
pub use identity_provider::IdentityProvider;
pub use nats_cluster::NatsCluster;
pub use order_flow::{assert_views_equal_the_log, produce, produce_listed, Flow, Produced};
pub use orders::{sample_cancel, sample_order, SampleTotals, SAMPLE_TOTALS};
pub use osmem::Osmem;
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use poll::{eventually, DEFAULT_DEADLINE};
pub use process::{Role, WaybillProcess};
pub use redis_cluster::{ClusterNode, RedisCluster};
pub use redis_server::RedisServer;
pub use secure_nats::SecureNats;
pub use tcp_proxy::TcpProxy;
pub use webhook_receiver::WebhookReceiver;

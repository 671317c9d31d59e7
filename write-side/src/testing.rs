//! Test support for every crate whose tests need a real event store: a database of its own per
//! test, SERIALIZABLE by default (as the non-negotiables ask of tests), with the migrations
//! applied. Enabled by the `testing` feature (and in this crate's own unit tests).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection, PgPool};

/// The master key of personal data in tests that use the event store directly.
pub const TEST_PII_MASTER_KEY: &str = "unit-test-pii-master-key-of-every-test-process";

/// The Postgres server tests use: `DATABASE_URL`'s server, else the local default.
pub fn server_options() -> PgConnectOptions {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/waybill".to_owned());
    PgConnectOptions::from_str(&url)
        .expect("DATABASE_URL is a Postgres URL")
        .disable_statement_logging()
}

/// Creates database `name` with SERIALIZABLE as its default isolation level.
pub async fn create_serializable_database(
    admin: &mut PgConnection,
    name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut *admin)
        .await?;
    sqlx::query(&format!(
        "ALTER DATABASE {name} SET default_transaction_isolation = 'serializable'"
    ))
    .execute(&mut *admin)
    .await?;
    Ok(())
}

/// A migrated database of its own. Call [`TestDatabase::drop`] at the end of the test; one
/// left behind by a failed test is removed by `infra/scripts/test.sh` on its next run.
pub struct TestDatabase {
    pub pool: PgPool,
    pub name: String,
}

impl TestDatabase {
    /// `waybill_<label>_<uuid>`; `label` names the suite, so leftovers say where they came from.
    /// Installs a master key of personal data for the test process (appending an event that
    /// holds personal fields is refused without one).
    pub async fn create(label: &str) -> Self {
        crate::pii::install(
            crate::subscriptions::seal::SealingKey::parse(TEST_PII_MASTER_KEY)
                .expect("a valid master key"),
        );
        let name = format!("waybill_{label}_{}", uuid::Uuid::now_v7().simple());
        let mut admin = server_options()
            .database("postgres")
            .connect()
            .await
            .expect("connect to Postgres (infra/scripts/ensure-services.sh starts it)");
        create_serializable_database(&mut admin, &name)
            .await
            .expect("create the test database");
        let pool = PgPoolOptions::new()
            .max_connections(12)
            .acquire_timeout(Duration::from_secs(20))
            .connect_with(server_options().database(&name))
            .await
            .expect("connect to the test database");
        crate::migrations::run(&pool).await.expect("migrations run");
        Self { pool, name }
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .expect("count rows")
    }

    /// Drops the database, best effort.
    pub async fn drop(self) {
        self.pool.close().await;
        if let Ok(mut admin) = server_options().database("postgres").connect().await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .await;
        }
    }
}

/// A valid `POST /v1/orders` body: one line of 2 × 15.00 USD with 2.40 tax, the promotion
/// code WELCOME5 (5.00 off) and 5.00 shipping (grand total 32.40 USD), paid by a sandbox card
/// token that authorizes, under `channel_ref`. Taxes and shipping are sent explicitly, so the
/// totals do not move when the rule tables change.
pub fn order_body(channel_ref: &str) -> serde_json::Value {
    serde_json::json!({"channel":"web","channel_order_ref":channel_ref,"currency":"USD",
        "customer":{"customer_id":"c-42","name":"Ada","email":"ada@example.com","phone":null},
        "lines":[{"sku":"TEE-RED-M","name":"Red tee","quantity":2,"unit_price_minor":1500,
                  "discount_minor":0,"tax_minor":240}],
        "promo_codes":["WELCOME5"],
        "shipping_address":{"name":"Ada","line1":"1 Main St","line2":null,"city":"Springfield",
                            "region":"IL","postal_code":"62701","country":"US"},
        "billing_address":null,
        "shipping":{"method":"standard","price_minor":500,"tax_minor":0},
        "payment":{"method":"card","token":"tok_4242424242424242"},
        "risk_context":{"ip":"203.0.113.7","device_id":"dev-1"}})
}

/// The `OrderPlaced` event a valid request body becomes (a fresh order id, placed at
/// 2023-11-14T22:13:20Z), for tests of what consumes placed orders.
pub fn order_placed(body: &serde_json::Value) -> waybill_schemas::events::OrderPlaced {
    let o = crate::domain::parse_place_order(body).expect("a valid order body");
    waybill_schemas::events::OrderPlaced {
        order_id: waybill_schemas::OrderId::new_v7(),
        channel: o.channel,
        channel_order_ref: o.channel_order_ref,
        customer: o.customer,
        currency: o.currency,
        lines: o.lines,
        discounts: o.discounts,
        shipping_address: o.shipping_address,
        billing_address: o.billing_address,
        shipping: o.shipping,
        totals: o.totals,
        payment: o.payment,
        risk_context: o.risk_context,
        pickup_store: o.pickup_store,
        placed_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("a valid time"),
    }
}

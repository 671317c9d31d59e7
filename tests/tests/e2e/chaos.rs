//! Chaos on the cluster stack (issue 14, item 6): `infra/scripts/cluster.sh` starts a 3-node
//! NATS JetStream cluster (R3), a Redis Cluster of 3 masters and 3 replicas, two ClickHouse
//! replicas with ZooKeeper, osmem-server and two processes of every role behind balancers.
//! Orders (300 here, `WAYBILL_E2E_CHAOS_ORDERS` for more: 2,000 by hand) go through the whole
//! lifecycle — checkout, fulfillment, delivery, close; one in ten cancelled by the customer right
//! after placement, one in ten sending a unit back after it closed — while, at random moments
//! (seed printed; `WAYBILL_E2E_CHAOS_SEED` replays one), one instance of every role, the NATS
//! stream's leader, a Redis master, a ClickHouse replica and both sandboxes are killed with -9
//! and started again by running the script once more.
//!
//! Afterwards: every order is in its terminal state (closed, or cancelled); every captured
//! order's payment was captured once and refunded at most what it should, in the event log and
//! at the gateway (the sandbox's own ledger agrees with the log, order by order); no stock is
//! left reserved and what is allocated is exactly the units of the orders that were not
//! cancelled; every order's tracking view (Redis Cluster) is the fold of its events, its search
//! document (OpenSearch API) too, the finance summary (ClickHouse cluster)
//! equals the event log's totals, and no customer message was sent twice.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use waybill_e2e::cluster_stack::ClusterStack;
use waybill_e2e::lifecycle_actors::{act_as_nodes_and_carrier, act_as_returning_customers, Http};
use waybill_e2e::{eventually, TestEnv, ADMIN_KEY, FINANCE_KEY, SERVICE_KEY};
use waybill_projectors::views::search;
use waybill_projectors::views::tracking::fold;
use waybill_write_side::event_store::EventStore;

const SKUS: [&str; 4] = ["CHAOS-A", "CHAOS-B", "CHAOS-C", "CHAOS-D"];
const UNIT_PRICE_MINOR: i64 = 2_500;
/// Customers placing orders at once.
const PLACERS: usize = 4;
/// How long the orders may take to reach their terminal state after the last restart: 300 s,
/// and half a second more for each order beyond the CI run's 300.
fn settle_deadline(orders: usize) -> Duration {
    Duration::from_secs(300) + Duration::from_millis(500) * orders.saturating_sub(300) as u32
}

/// A small deterministic generator (splitmix64): the seed printed replays the same schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

/// What is killed, once each, in a random order.
#[derive(Debug, Clone)]
enum Victim {
    /// One of the two instances of a role (`commands`, `query`, ...).
    Role(&'static str),
    NatsStreamLeader,
    RedisMaster,
    ClickHouseReplica,
    /// The payment and the logistics sandbox together.
    Sandboxes,
}

const ROLES: [&str; 6] = [
    "commands",
    "query",
    "checkout",
    "fulfillment",
    "relay",
    "projector",
];

#[derive(Debug, Clone)]
struct Placed {
    order_id: String,
    sku: &'static str,
    quantity: i64,
    /// The customer's cancel was accepted.
    cancelled: bool,
    /// The customer sends a unit back once it closed.
    returning: bool,
}

fn order_body(n: usize, sku: &str, quantity: i64) -> Value {
    let reference = format!("CHAOS-{n}");
    json!({
        "channel": "web",
        "channel_order_ref": reference,
        "currency": "USD",
        "customer": {"customer_id": reference, "name": "Ada Chaos",
                     "email": format!("chaos-{n}@example.com"), "phone": "+1 555 0100"},
        "lines": [{"sku": sku, "name": sku, "quantity": quantity, "unit_price_minor": UNIT_PRICE_MINOR}],
        "shipping_address": {"name": "Ada Chaos", "line1": "1 Main St", "city": "Springfield",
                             "region": "IL", "postal_code": "62701", "country": "US"},
        "shipping": {"method": "standard"},
        "payment": {"method": "card", "token": "tok_4242424242424242"}
    })
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_survive_kill_9_of_every_role_engine_node_and_sandbox_on_the_cluster_stack() {
    let orders = env_number("WAYBILL_E2E_CHAOS_ORDERS").unwrap_or(300) as usize;
    let seed = env_number("WAYBILL_E2E_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!(
        "chaos: {orders} orders, seed {seed} (WAYBILL_E2E_CHAOS_SEED={seed} replays the schedule)"
    );
    let mut rng = Rng(seed);

    let mut env = TestEnv::new("chaos").await;
    let dir = env.log_dir.join("cluster");
    let settings = [
        // A delivered order closes at once; a confirmed one is routed at once.
        ("WAYBILL_AUTO_CLOSE_DAYS", "0"),
        ("WAYBILL_FULFILLMENT_HOLD_SECS", "0"),
        // A killed projector's partitions pass on quickly.
        ("WAYBILL_PROJECTOR_LEASE_MS", "1500"),
        ("WAYBILL_QUERY_RATE_LIMIT", "0"),
    ];
    let started = Instant::now();
    let Some(stack) = ClusterStack::start(&env, &dir, &settings) else {
        return;
    };
    eprintln!(
        "chaos: cluster stack up in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    // Tracking views are read from the stack's Redis Cluster (given back before the end: the
    // stack's data goes with it, and a stopped cluster would only slow the clean-up down).
    let machine_redis =
        std::mem::replace(&mut env.redis_url, stack.setting("REDIS_URL").to_owned());
    let stack = Arc::new(stack);
    let command = stack.command_url();
    let http = Http::new();

    // Two warehouses; enough of every SKU that no order runs out.
    for (id, zone) in [("wh-east", 1), ("wh-west", 9)] {
        let (status, body) = http
            .answered(
                reqwest::Method::PUT,
                &format!("{command}/v1/inventory/locations/{id}"),
                Some(ADMIN_KEY),
                Some(&format!("chaos-location-{id}")),
                Some(&json!({"kind": "warehouse", "name": id, "country": "US", "zone": zone})),
            )
            .await;
        assert!(status < 300, "location {id}: {status} {body}");
    }
    let stock = orders as i64 * 2;
    for sku in SKUS {
        let (status, body) = http
            .answered(
                reqwest::Method::POST,
                &format!("{command}/v1/inventory/stock/{sku}/wh-east/restock"),
                Some(ADMIN_KEY),
                Some(&format!("chaos-restock-{sku}")),
                Some(&json!({"quantity": stock})),
            )
            .await;
        assert!(status < 300, "restock {sku}: {status} {body}");
    }

    // The partners and the returning customers act for as long as orders move.
    let stop = Arc::new(AtomicBool::new(false));
    let returning: Arc<Mutex<HashSet<String>>> = Arc::default();
    let nodes = tokio::spawn(act_as_nodes_and_carrier(
        http.clone(),
        stack.setting("LOGISTICS_SANDBOX_URL").to_owned(),
        Arc::clone(&stop),
    ));
    let customers = tokio::spawn(act_as_returning_customers(
        http.clone(),
        env.db().clone(),
        command.clone(),
        stack.setting("LOGISTICS_SANDBOX_URL").to_owned(),
        SERVICE_KEY.to_owned(),
        Arc::clone(&returning),
        Arc::clone(&stop),
    ));

    // Customers place the orders.
    let placed_count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let placers: Vec<_> = (0..PLACERS)
        .map(|worker| {
            let (http, command) = (http.clone(), command.clone());
            let (returning, placed_count) = (Arc::clone(&returning), Arc::clone(&placed_count));
            tokio::spawn(async move {
                let mut placed = Vec::new();
                for n in (worker..orders).step_by(PLACERS) {
                    let sku = SKUS[n % SKUS.len()];
                    let quantity = 1 + (n % 2) as i64;
                    let (status, body) = http
                        .answered(
                            reqwest::Method::POST,
                            &format!("{command}/v1/orders"),
                            Some(SERVICE_KEY),
                            Some(&format!("chaos-place-{n}")),
                            Some(&order_body(n, sku, quantity)),
                        )
                        .await;
                    assert_eq!(status, 201, "order {n}: {body}");
                    let order_id = body["order_id"].as_str().expect("order id").to_owned();
                    let mut cancelled = false;
                    if n % 10 == 3 {
                        let (status, body) = http
                            .answered(
                                reqwest::Method::POST,
                                &format!("{command}/v1/orders/{order_id}/cancel"),
                                Some(SERVICE_KEY),
                                Some(&format!("chaos-cancel-{n}")),
                                Some(&json!({"reason": "customer_request"})),
                            )
                            .await;
                        // 409: it shipped (or is shipping) before the cancel came.
                        assert!(
                            status == 200 || status == 409,
                            "cancel {n}: {status} {body}"
                        );
                        cancelled = status == 200;
                    }
                    let returns = n % 10 == 7;
                    if returns {
                        returning
                            .lock()
                            .expect("returning orders")
                            .insert(order_id.clone());
                    }
                    placed.push(Placed {
                        order_id,
                        sku,
                        quantity,
                        cancelled,
                        returning: returns,
                    });
                    placed_count.fetch_add(1, Ordering::Relaxed);
                }
                placed
            })
        })
        .collect();

    // Chaos: once orders flow, every victim once, in a random order, at random moments.
    let mut victims: Vec<Victim> = ROLES.iter().map(|r| Victim::Role(r)).collect();
    victims.extend([
        Victim::NatsStreamLeader,
        Victim::RedisMaster,
        Victim::ClickHouseReplica,
        Victim::Sandboxes,
    ]);
    for i in (1..victims.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        victims.swap(i, j);
    }
    let chaos = {
        let stack = Arc::clone(&stack);
        let placed_count = Arc::clone(&placed_count);
        let stream = env.stream.clone();
        tokio::spawn(async move {
            while placed_count.load(Ordering::Relaxed) < orders / 10 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let chaos_started = Instant::now();
            let mut log = Vec::new();
            for victim in victims {
                tokio::time::sleep(rng.millis(500, 4_000)).await;
                let what = kill(&stack, &victim, &stream, &mut rng).await;
                let killed_at = chaos_started.elapsed();
                tokio::time::sleep(rng.millis(300, 2_500)).await;
                let stack = Arc::clone(&stack);
                tokio::task::spawn_blocking(move || stack.start_missing())
                    .await
                    .expect("cluster.sh start ran");
                log.push(format!(
                    "{what} at {:.1} s, back at {:.1} s",
                    killed_at.as_secs_f64(),
                    chaos_started.elapsed().as_secs_f64()
                ));
            }
            log
        })
    };

    let mut placed: Vec<Placed> = Vec::new();
    for placer in placers {
        placed.extend(placer.await.expect("a placer"));
    }
    let kills = chaos.await.expect("the chaos schedule");
    for line in &kills {
        eprintln!("chaos: killed {line}");
    }
    assert_eq!(placed.len(), orders);

    // Every order reaches its terminal state.
    let store = EventStore::new(env.db().clone());
    let settle_started = Instant::now();
    eventually(
        "every order in its terminal state",
        settle_deadline(orders),
        || async {
            let unfinished = unfinished(&env, &placed).await;
            if unfinished.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} orders not yet terminal after {:.0} s, e.g. {:?}",
                    unfinished.len(),
                    settle_started.elapsed().as_secs_f64(),
                    &unfinished[..unfinished.len().min(3)]
                ))
            }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let (packed, delivered) = nodes.await.expect("nodes and carrier");
    let returned = customers.await.expect("returning customers");

    let flows: i64 = sqlx::query_scalar("SELECT count(*) FROM checkout_flows")
        .fetch_one(env.db())
        .await
        .expect("checkout flows");
    assert_eq!(flows, 0, "checkout flows left open");

    // Money: once in the log, once at the gateway, and the two agree order by order.
    let log_money = money_in_the_log(&env).await;
    let gateway = money_at_the_gateway(&stack.sandbox_state_dir().join("payment-sandbox.json"));
    for order in &placed {
        let log = log_money.get(&order.order_id).cloned().unwrap_or_default();
        let at_gateway = gateway.get(&order.order_id).cloned().unwrap_or_default();
        assert_eq!(
            log, at_gateway,
            "order {}: the event log's (captures, captured, refunds, refunded) differ from the gateway's",
            order.order_id
        );
        assert!(
            log.captures <= 1,
            "order {} captured twice: {log:?}",
            order.order_id
        );
        assert!(
            log.refunded <= log.captured,
            "order {} refunded more than captured: {log:?}",
            order.order_id
        );
        let total = order.quantity * UNIT_PRICE_MINOR;
        if order.cancelled {
            assert_eq!(
                log.refunded, log.captured,
                "cancelled order {} refunded in full: {log:?}",
                order.order_id
            );
            assert!(
                log.refunds <= 1,
                "cancelled order {} refunded twice: {log:?}",
                order.order_id
            );
        } else {
            assert_eq!(
                log.captures, 1,
                "order {} captured once: {log:?}",
                order.order_id
            );
            assert!(
                log.captured >= total,
                "order {} captured {log:?} for {total}",
                order.order_id
            );
            let expected_refunds = i64::from(order.returning);
            assert_eq!(
                log.refunds, expected_refunds,
                "order {} refunds: {log:?}",
                order.order_id
            );
        }
    }

    // Stock: nothing reserved; allocated exactly the units of the orders not cancelled.
    let api = waybill_e2e::Api::new(&command, &stack.query_url());
    for sku in SKUS {
        let response = api
            .command_get(&format!("/v1/inventory/stock/{sku}"), ADMIN_KEY)
            .await;
        assert_eq!(response.status, 200, "{}", response.describe());
        let levels = response.json()["levels"].clone();
        let sum = |field: &str| -> i64 {
            levels
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| l[field].as_i64().unwrap_or(0))
                .sum()
        };
        let kept: i64 = placed
            .iter()
            .filter(|o| o.sku == sku && !o.cancelled)
            .map(|o| o.quantity)
            .sum();
        assert_eq!(sum("reserved"), 0, "{sku}: stock left reserved: {levels}");
        assert_eq!(
            sum("allocated"),
            kept,
            "{sku}: allocated vs units of orders kept: {levels}"
        );
    }

    // Views: tracking and search documents are the fold of the log; finance = the log.
    for order in &placed {
        eventually(
            &format!(
                "the tracking view of {} equal to the fold of its log",
                order.order_id
            ),
            Duration::from_secs(60),
            || tracking_is_the_fold(&env, &store, &order.order_id),
        )
        .await;
    }
    let search_index = format!(
        "{}/{}",
        stack.setting("ELASTICSEARCH_URL"),
        search::alias_name(&env.redis_prefix)
    );
    for order in &placed {
        eventually(
            &format!(
                "the search document of {} equal to the fold of its log",
                order.order_id
            ),
            Duration::from_secs(60),
            || search_is_the_fold(&store, &http, &search_index, &order.order_id),
        )
        .await;
    }
    let log_totals = finance_in_the_log(&env).await;
    eventually(
        "the finance summary (ClickHouse cluster) equal to the event log",
        Duration::from_secs(150),
        || async {
            let seen = finance_summary(&http, &stack.query_url()).await?;
            if seen == log_totals {
                Ok(())
            } else {
                Err(format!("finance {seen:?}, event log {log_totals:?}"))
            }
        },
    )
    .await;

    // Customer messages: none sent twice.
    let sent = sent_twice(&env.notifications_dir);
    assert!(sent.1.is_empty(), "messages sent twice: {:?}", sent.1);

    let cancelled = placed.iter().filter(|o| o.cancelled).count();
    eprintln!(
        "chaos: {} orders ({} cancelled, {} returned) terminal {:.0} s after the last restart; \
         {packed} tasks packed, {delivered} parcels delivered, {} messages, {} kills; \
         finance (captured, orders, gross, refunded) {log_totals:?}",
        placed.len(),
        cancelled,
        returned.len(),
        settle_started.elapsed().as_secs_f64(),
        sent.0,
        kills.len(),
    );
    drop(stack);
    env.redis_url = machine_redis;
}

/// Kills `victim`; says what was killed.
async fn kill(stack: &ClusterStack, victim: &Victim, stream: &str, rng: &mut Rng) -> String {
    match victim {
        Victim::Role(role) => {
            let name = format!("{role}-{}", 1 + rng.below(2));
            let pid = stack.kill_process(&name);
            format!("{name} (pid {pid})")
        }
        Victim::NatsStreamLeader => match stack.nats_stream_leader(stream).await {
            Some(leader) => {
                let pid = stack.kill_nats(&leader);
                format!("NATS node {leader}, leader of stream {stream} (pid {pid})")
            }
            None => {
                let pid = stack.kill_nats("n1");
                format!("NATS node n1 (no leader of {stream} named; pid {pid})")
            }
        },
        Victim::RedisMaster => {
            let masters: Vec<u16> = stack
                .redis
                .nodes()
                .await
                .into_iter()
                .filter(|n| n.master && !n.failed)
                .map(|n| n.port)
                .collect();
            let port = masters[rng.below(masters.len() as u64) as usize];
            stack.redis.kill_hard(port);
            format!("Redis master on port {port}")
        }
        Victim::ClickHouseReplica => {
            let n = 1 + rng.below(2) as usize;
            stack.clickhouse.kill_hard(n);
            format!("ClickHouse replica r{n}")
        }
        Victim::Sandboxes => {
            let payment = stack.kill_process("payment-sandbox");
            let logistics = stack.kill_process("logistics-sandbox");
            format!("payment sandbox (pid {payment}) and logistics sandbox (pid {logistics})")
        }
    }
}

/// Orders whose log does not (yet) end where it must: cancelled ones cancelled, the others
/// closed, and those sending a unit back refunded and closed again.
async fn unfinished(env: &TestEnv, placed: &[Placed]) -> Vec<String> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT stream_id, event_type, count(*) FROM events \
         WHERE event_type IN ('OrderClosed', 'OrderCancelled', 'PaymentRefunded') \
         GROUP BY stream_id, event_type",
    )
    .fetch_all(env.db())
    .await
    .unwrap_or_default();
    let counts: HashMap<(String, String), i64> = rows
        .into_iter()
        .map(|(stream, kind, n)| ((stream, kind), n))
        .collect();
    let count = |order: &str, kind: &str| {
        counts
            .get(&(format!("order-{order}"), kind.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    placed
        .iter()
        .filter(|o| {
            let id = &o.order_id;
            if o.cancelled {
                count(id, "OrderCancelled") == 0
            } else if o.returning {
                count(id, "OrderClosed") < 2 || count(id, "PaymentRefunded") < 1
            } else {
                count(id, "OrderClosed") < 1
            }
        })
        .map(|o| o.order_id.clone())
        .collect()
}

/// One order's money: (captures, captured minor units, refunds, refunded minor units).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Money {
    captures: i64,
    captured: i64,
    refunds: i64,
    refunded: i64,
}

async fn money_in_the_log(env: &TestEnv) -> HashMap<String, Money> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT payload->>'order_id', event_type, (payload #>> '{amount,minor}')::bigint \
         FROM events WHERE event_type IN ('PaymentCaptured', 'PaymentRefunded')",
    )
    .fetch_all(env.db())
    .await
    .expect("payments in the log");
    let mut money: HashMap<String, Money> = HashMap::new();
    for (order, kind, amount) in rows {
        let entry = money.entry(order).or_default();
        if kind == "PaymentCaptured" {
            entry.captures += 1;
            entry.captured += amount;
        } else {
            entry.refunds += 1;
            entry.refunded += amount;
        }
    }
    money
}

/// The same from the payment sandbox's own ledger (its state file).
fn money_at_the_gateway(state_file: &std::path::Path) -> HashMap<String, Money> {
    let text = std::fs::read_to_string(state_file)
        .unwrap_or_else(|e| panic!("{}: {e}", state_file.display()));
    let state: Value = serde_json::from_str(&text).expect("the sandbox state is JSON");
    let ledger = &state["ledger"];
    let mut money: HashMap<String, Money> = HashMap::new();
    for capture in ledger["captures"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        let entry = money
            .entry(capture["order_id"].as_str().unwrap_or_default().to_owned())
            .or_default();
        entry.captures += 1;
        entry.captured += capture["amount"]["minor"].as_i64().unwrap_or(0);
    }
    for refund in ledger["refunds"].as_array().into_iter().flatten() {
        let entry = money
            .entry(refund["order_id"].as_str().unwrap_or_default().to_owned())
            .or_default();
        entry.refunds += 1;
        entry.refunded += refund["amount"]["minor"].as_i64().unwrap_or(0);
    }
    money
}

async fn tracking_is_the_fold(
    env: &TestEnv,
    store: &EventStore,
    order_id: &str,
) -> Result<(), String> {
    let events = store
        .read_stream(&format!("order-{order_id}"), 1, None)
        .await
        .map_err(|e| e.to_string())?;
    let folded = fold(&events).map_err(|e| e.to_string())?;
    let folded = serde_json::to_value(folded.ok_or("no events")?).map_err(|e| e.to_string())?;
    match env.tracking_hash(order_id).await {
        Some((version, view)) if version == events.len() as i64 && view == folded => Ok(()),
        Some((version, _)) => Err(format!(
            "view at v{version}, log at v{} (or the view differs from the fold)",
            events.len()
        )),
        None => Err("no tracking view".into()),
    }
}

/// The order's search document (OpenSearch API) equals the fold of its events.
async fn search_is_the_fold(
    store: &EventStore,
    http: &Http,
    index: &str,
    order_id: &str,
) -> Result<(), String> {
    let events = store
        .read_stream(&format!("order-{order_id}"), 1, None)
        .await
        .map_err(|e| e.to_string())?;
    let mut folded = None;
    for event in &events {
        folded = Some(search::apply(folded.as_ref(), event).map_err(|e| e.to_string())?);
    }
    let folded = serde_json::to_value(folded.ok_or("no events")?).map_err(|e| e.to_string())?;
    let id = order_id.to_lowercase();
    let (status, body) = http
        .send(
            reqwest::Method::GET,
            &format!("{index}/_doc/{id}"),
            None,
            None,
            None,
        )
        .await?;
    let document = &body["_source"]["document"];
    if status == 200 && *document == folded {
        Ok(())
    } else {
        Err(format!(
            "search document {status} at v{}, log at v{} (or it differs from the fold)",
            document["version"],
            events.len()
        ))
    }
}

/// `(captured, orders, gross sales, refunded)` of today summed over channels and currencies.
type Finance = (i64, i64, i64, i64);

async fn finance_summary(http: &Http, query_url: &str) -> Result<Finance, String> {
    let today = chrono::Utc::now().date_naive();
    let url = format!("{query_url}/v1/finance/summary?from={today}&to={today}");
    let (status, body) = http
        .send(reqwest::Method::GET, &url, Some(FINANCE_KEY), None, None)
        .await?;
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    let mut totals = (0, 0, 0, 0);
    for row in body["items"].as_array().into_iter().flatten() {
        let n = |f: &str| row[f].as_i64().unwrap_or(0);
        totals.0 += n("captures");
        totals.1 += n("orders");
        totals.2 += n("gross_sales");
        totals.3 += n("refunds");
    }
    Ok(totals)
}

async fn finance_in_the_log(env: &TestEnv) -> Finance {
    let sum = |kind: &'static str, path: &'static str| async move {
        let total: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT sum((payload #>> '{{{path}}}')::bigint)::bigint FROM events WHERE event_type = $1"
        ))
        .bind(kind)
        .fetch_one(env.db())
        .await
        .expect("a sum over the event log");
        total.unwrap_or(0)
    };
    let orders: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'")
            .fetch_one(env.db())
            .await
            .expect("orders");
    (
        sum("PaymentCaptured", "amount,minor").await,
        orders,
        sum("OrderPlaced", "totals,grand_total,minor").await,
        sum("PaymentRefunded", "amount,minor").await,
    )
}

/// Messages written by the development sink (`<time>-<order>-<kind>-<event>.<medium>.txt`):
/// how many, and those written more than once for the same order, kind, event and medium.
fn sent_twice(dir: &std::path::Path) -> (usize, Vec<String>) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".txt") {
            continue;
        }
        // Everything after the time stamp names the message.
        if let Some((_, message)) = name.split_once('-') {
            *seen.entry(message.to_owned()).or_default() += 1;
        }
    }
    let total = seen.values().sum();
    let twice = seen
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(message, n)| format!("{message} ×{n}"))
        .collect();
    (total, twice)
}

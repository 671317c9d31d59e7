//! Erasure by crypto-shredding (`POST /v1/customers/{id}/erasure`, and for guest checkouts
//! `POST /v1/guests/erasure` by email): a customer's (or a guest's) orders go through checkout
//! (risk, stock, payment, capture), a refund whose free-text reason names the customer, and
//! their notifications; the customer is erased; then every store the test can reach (every
//! Postgres table as raw text, every Redis key and value, the search index and notification
//! files on disk, every ClickHouse table) is searched for the customer's name, email, phone,
//! address and IP: none holds them. The order history and the finance figures are what they
//! were, another customer's data is untouched, a repeat destroys nothing more, and rebuilding
//! the views from the log brings nothing back.

use std::path::Path;

use serde_json::{json, Value};
use waybill_e2e::checkout::{cards, order, CheckoutWorld, SETTLE};
use waybill_e2e::{
    eventually, HttpResponse, Osmem, TestEnv, ADMIN_KEY, AGENT_KEY, FINANCE_KEY, SERVICE_KEY,
};

const CUSTOMER: &str = "cust-erase-1";
const NAME: &str = "Philippa Marchbanks";
const EMAIL: &str = "philippa.marchbanks@erasure.example";
const PHONE: &str = "+44 7700 900461";
const LINE1: &str = "47 Wellington Crescent";
const CITY: &str = "Tewkesbury";
const POSTCODE: &str = "62748-3915";
const IP: &str = "198.51.100.77";
/// What must be found nowhere after the erasure: the values as sent, and the words a search
/// index keeps (lower case).
const NEEDLES: [&str; 10] = [
    NAME,
    EMAIL,
    PHONE,
    LINE1,
    CITY,
    POSTCODE,
    IP,
    "marchbanks",
    "tewkesbury",
    "wellington",
];

const OTHER: &str = "cust-keep-1";
const OTHER_NAME: &str = "Bartholomew Keepwell";

/// Whose data is erased: a customer by channel customer id, or a guest (checkouts without a
/// customer id) by email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Customer,
    Guest,
}

/// An order of the erased subject (`erased`) or of the one kept. A guest's second order gives
/// the email in another case: the erasure by email still finds it.
fn customer_order(reference: &str, subject: Subject, erased: bool, name: &str) -> Value {
    let mut body = order(reference, "ERA-1", 1, cards::APPROVED);
    let email = if erased && reference == "ERA-2" && subject == Subject::Guest {
        EMAIL.to_uppercase()
    } else if erased {
        EMAIL.to_owned()
    } else {
        format!("{}@keep.example", reference.to_lowercase())
    };
    let customer_id = match (subject, erased) {
        (Subject::Guest, _) => Value::Null,
        (Subject::Customer, true) => json!(CUSTOMER),
        (Subject::Customer, false) => json!(OTHER),
    };
    let (phone, line1, city, postcode, ip) = if erased {
        (PHONE, LINE1, CITY, POSTCODE, IP)
    } else {
        (
            "+1 217 555 0199",
            "9 Elm Row",
            "Springfield",
            "62701",
            "192.0.2.9",
        )
    };
    body["customer"] =
        json!({"customer_id": customer_id, "name": name, "email": email, "phone": phone});
    body["shipping_address"] = json!({"name": name, "line1": line1, "city": city,
        "region": "IL", "postal_code": postcode, "country": "US"});
    body["risk_context"] = json!({"ip": ip, "device_id": format!("device-{reference}")});
    body
}

/// Polls tracking as the service until the view is at `version` and not stale.
async fn view_at(world: &CheckoutWorld, order_id: &str, version: usize) -> Value {
    let min = version.to_string();
    eventually(
        &format!("tracking of {order_id} at {version}"),
        SETTLE,
        || async {
            let response = world
                .api
                .tracking(order_id, &[("min_version", &min)], Some(SERVICE_KEY))
                .await;
            let body = response.json();
            if response.status == 200 && body["consistency"]["stale"] == json!(false) {
                Ok(body["view"].clone())
            } else {
                Err(response.describe())
            }
        },
    )
    .await
}

async fn agent_order(world: &CheckoutWorld, order_id: &str) -> HttpResponse {
    world
        .api
        .query_get(
            &format!("/v1/agent/orders/{order_id}"),
            &[],
            Some(AGENT_KEY),
        )
        .await
}

async fn search_hits(world: &CheckoutWorld, q: &str) -> usize {
    let response = world
        .api
        .query_get("/v1/search/orders", &[("q", q)], Some(AGENT_KEY))
        .await;
    assert_eq!(response.status, 200, "{}", response.describe());
    response.json()["hits"].as_array().map_or(0, Vec::len)
}

/// Today's finance summary summed over channels and currencies:
/// `(captured, refunded, orders, gross sales, net)` (amounts in minor units).
async fn finance_totals(world: &CheckoutWorld) -> (i64, i64, i64, i64, i64) {
    let today = chrono::Utc::now().date_naive();
    let path = format!("/v1/finance/summary?from={today}&to={today}");
    // 503 view-catching-up while the analytics view fills its new store: asked again.
    let response = eventually("the finance summary answered", SETTLE, || async {
        let response = world.api.query_get(&path, &[], Some(FINANCE_KEY)).await;
        if response.status == 503 {
            Err(response.describe())
        } else {
            Ok(response)
        }
    })
    .await;
    assert_eq!(response.status, 200, "{}", response.describe());
    let mut t = (0, 0, 0, 0, 0);
    for row in response.json()["items"].as_array().into_iter().flatten() {
        let n = |f: &str| row[f].as_i64().unwrap_or(0);
        t.0 += n("captures");
        t.1 += n("refunds");
        t.2 += n("orders");
        t.3 += n("gross_sales");
        t.4 += n("net");
    }
    t
}

async fn erase(world: &CheckoutWorld, customer: &str, bearer: &str, key: &str) -> HttpResponse {
    world
        .api
        .command_request(
            &format!("/v1/customers/{customer}/erasure"),
            Some(bearer),
            Some(key),
            None,
            Vec::new(),
        )
        .await
}

async fn erase_guest(world: &CheckoutWorld, email: &str, bearer: &str, key: &str) -> HttpResponse {
    world
        .api
        .post_json("/v1/guests/erasure", bearer, key, &json!({"email": email}))
        .await
}

/// Erases the test's subject: the customer by id, the guest by email (as support would type
/// it, in another case and with spaces around).
async fn erase_subject(
    world: &CheckoutWorld,
    subject: Subject,
    bearer: &str,
    key: &str,
) -> HttpResponse {
    match subject {
        Subject::Customer => erase(world, CUSTOMER, bearer, key).await,
        Subject::Guest => {
            erase_guest(world, &format!("  {} ", EMAIL.to_uppercase()), bearer, key).await
        }
    }
}

/// Where each needle is found: `"<store> <place>: <needle>"`.
async fn stores_holding(env: &TestEnv, search_url: Option<&str>, needles: &[&str]) -> Vec<String> {
    let mut found = postgres_holding(env, needles).await;
    found.extend(redis_holding(env, needles).await);
    found.extend(files_holding(&env.notifications_dir, needles));
    found.extend(files_holding(&env.log_dir.join("search"), needles));
    found.extend(clickhouse_holding(env, needles).await);
    if let Some(url) = search_url {
        found.extend(opensearch_holding(url, needles).await);
    }
    found
}

/// Every document of every index of the test's own OpenSearch-API server, as stored.
async fn opensearch_holding(url: &str, needles: &[&str]) -> Vec<String> {
    let text = reqwest::get(format!("{url}/_search?size=10000"))
        .await
        .expect("search the whole OpenSearch server")
        .text()
        .await
        .expect("its answer");
    needles
        .iter()
        .filter(|needle| text.contains(*needle))
        .map(|needle| format!("OpenSearch holds {needle:?}"))
        .collect()
}

/// Every row of every table of the test's database, as text (bytea as hex too).
async fn postgres_holding(env: &TestEnv, needles: &[&str]) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(env.db())
    .await
    .expect("list tables");
    let mut found = Vec::new();
    for table in tables {
        for needle in needles {
            let hits: i64 = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM \"{table}\" x WHERE strpos(lower(x::text), lower($1)) > 0 \
                 OR strpos(x::text, encode(convert_to($1, 'UTF8'), 'hex')) > 0"
            ))
            .bind(needle)
            .fetch_one(env.db())
            .await
            .expect("search a table");
            if hits > 0 {
                found.push(format!("postgres {table} ({hits} rows): {needle}"));
            }
        }
    }
    found
}

/// Every key of the test's prefix and every value under it.
async fn redis_holding(env: &TestEnv, needles: &[&str]) -> Vec<String> {
    let redis = env.redis().await;
    let keys = redis
        .scan(format!("{}:*", env.redis_prefix))
        .collect_all()
        .await
        .expect("scan Redis");
    let mut conn = redis.clone();
    let mut found = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("TYPE");
        let values: Vec<String> = match kind.as_str() {
            "string" => redis::cmd("GET").arg(&key).query_async(&mut conn).await,
            "hash" => redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await,
            "zset" => {
                redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
            }
            "set" => {
                redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
            }
            "list" => {
                redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
            }
            _ => Ok(Vec::new()),
        }
        .unwrap_or_default();
        let text = format!("{key} {}", values.join(" ")).to_lowercase();
        for needle in needles {
            if text.contains(&needle.to_lowercase()) {
                found.push(format!("redis {key}: {needle}"));
            }
        }
    }
    found
}

/// Every file under `dir`, as bytes.
fn files_holding(dir: &Path, needles: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            for needle in needles {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(format!("file {}: {needle}", path.display()));
                }
            }
        }
    }
    found
}

async fn clickhouse(env: &TestEnv, query: String) -> String {
    let response = reqwest::Client::new()
        .post(&env.clickhouse_url)
        .body(query.clone())
        .send()
        .await
        .expect("reach ClickHouse");
    let status = response.status();
    let text = response.text().await.expect("ClickHouse answer");
    assert!(status.is_success(), "{query}: {text}");
    text
}

/// Every row of every table of the test's ClickHouse database.
async fn clickhouse_holding(env: &TestEnv, needles: &[&str]) -> Vec<String> {
    let db = &env.clickhouse_database;
    let tables = clickhouse(
        env,
        format!(
            "SELECT name FROM system.tables WHERE database = '{db}' \
             AND engine NOT IN ('View', 'MaterializedView') FORMAT TabSeparated"
        ),
    )
    .await;
    let mut found = Vec::new();
    for table in tables.lines().filter(|t| !t.is_empty()) {
        let rows = clickhouse(
            env,
            format!("SELECT * FROM {db}.`{table}` FORMAT JSONEachRow"),
        )
        .await
        .to_lowercase();
        for needle in needles {
            if rows.contains(&needle.to_lowercase()) {
                found.push(format!("clickhouse {table}: {needle}"));
            }
        }
    }
    found
}

#[tokio::test]
async fn an_erased_customer_is_in_no_store_while_history_and_money_stay() {
    erase_and_search_every_store("erasure", &[], Subject::Customer).await;
}

/// The same with the search view on the OpenSearch API (the test's in-memory server).
#[tokio::test]
async fn an_erased_customer_leaves_no_document_in_opensearch() {
    let Some(search) = Osmem::start() else { return };
    erase_and_search_every_store(
        "erasure_opensearch",
        &[("ELASTICSEARCH_URL", search.url.as_str())],
        Subject::Customer,
    )
    .await;
}

/// A guest (two checkouts without a customer id, the email in two cases) erased by email.
#[tokio::test]
async fn an_erased_guest_is_in_no_store_while_history_and_money_stay() {
    erase_and_search_every_store("erasure_guest", &[], Subject::Guest).await;
}

async fn erase_and_search_every_store(test_name: &str, extra: &[(&str, &str)], subject: Subject) {
    let world = CheckoutWorld::start(test_name, extra, &[("ERA-1", 20)]).await;
    let env = &world.env;
    let search_url = extra
        .iter()
        .find(|(name, _)| *name == "ELASTICSEARCH_URL")
        .map(|(_, url)| *url);
    let mut orders = Vec::new();
    for (reference, erased, name) in [
        ("ERA-1", true, NAME),
        ("ERA-2", true, NAME),
        ("KEEP-1", false, OTHER_NAME),
    ] {
        let placed = world
            .place(&customer_order(reference, subject, erased, name))
            .await;
        orders.push(placed["order_id"].as_str().expect("order id").to_owned());
    }
    for id in &orders {
        let events = world.settled(id, None).await;
        assert_eq!(
            events.last().map(String::as_str),
            Some("PaymentCaptured"),
            "{events:?}"
        );
    }
    // A partial refund of the first order, its reason in the agent's words, naming the
    // customer: free text is sealed like the customer's own fields, and erased with them.
    let refund = world
        .api
        .post_json(
            &format!("/v1/orders/{}/refunds", orders[0]),
            AGENT_KEY,
            "erasure-refund-1",
            &json!({"amount_minor": 700, "currency": "USD",
                "reason": format!("{NAME} rang from {PHONE}: parcel late")}),
        )
        .await;
    assert_eq!(refund.status, 202, "{}", refund.describe());
    eventually("the refund is recorded", SETTLE, || async {
        let types = env.event_types_of_order(&orders[0]).await;
        if types.iter().any(|t| t == "PaymentRefunded") {
            Ok(())
        } else {
            Err(format!("{types:?}"))
        }
    })
    .await;

    // Every view has caught up, and reads the personal data (opened on read).
    let mut history = Vec::new();
    for id in &orders {
        let types = env.event_types_of_order(id).await;
        let view = view_at(&world, id, types.len()).await;
        history.push((types, view["status"].clone()));
    }
    let before = eventually(
        "finance shows the captures and the refund",
        SETTLE,
        || async {
            let totals = finance_totals(&world).await;
            if totals.0 > 0 && totals.1 == 700 && totals.2 == 3 {
                Ok(totals)
            } else {
                Err(format!("{totals:?}"))
            }
        },
    )
    .await;
    eventually("search finds the customer's orders", SETTLE, || async {
        match search_hits(&world, "Marchbanks").await {
            2 => Ok(()),
            n => Err(format!("{n} hits")),
        }
    })
    .await;
    if let Some(url) = search_url {
        // The raw look at the search server sees the name while it is there.
        assert!(!opensearch_holding(url, &[NAME]).await.is_empty());
    }
    let agent = agent_order(&world, &orders[0]).await;
    assert_eq!(agent.status, 200, "{}", agent.describe());
    assert!(agent.text().contains(NAME), "{}", agent.describe());
    let email = world
        .notification(&orders[0], "order_confirmed", "email")
        .await;
    assert!(email.contains(EMAIL), "{email}");

    // The log never held the personal data in the clear: it is sealed there.
    let sealed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE payload::text LIKE '%\"$pii\"%'")
            .fetch_one(env.db())
            .await
            .expect("count sealed events");
    assert!(sealed >= 3, "sealed events: {sealed}");
    let clear: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE strpos(payload::text, $1) > 0 \
         OR strpos(payload::text, $2) > 0",
    )
    .bind(NAME)
    .bind(EMAIL)
    .fetch_one(env.db())
    .await
    .expect("search the log");
    assert_eq!(clear, 0, "the log holds personal data in the clear");

    let ledger_before = env.count_rows("notification_deliveries").await;
    // A stored response that echoed the customer's data (as an answer carrying an address
    // would): the erasure scrubs the responses about the customer's orders.
    sqlx::query(
        "INSERT INTO idempotency_records (scope, idempotency_key, request_hash, response_status, \
         response_headers, response_body, created_at) \
         VALUES ('e2e-agent', 'echo-1', '\\x00', 200, '[]', convert_to($1, 'UTF8'), now())",
    )
    .bind(
        json!({"order_id": orders[0], "customer": {"name": NAME, "email": EMAIL}, "line1": LINE1})
            .to_string(),
    )
    .execute(env.db())
    .await
    .expect("store a response echoing the customer");

    // Only an admin erases; an unknown customer (or guest email) is a 404 naming the id (the
    // email); a guest's email that is none is a 422 naming it.
    erase_subject(&world, subject, AGENT_KEY, "erase-as-agent")
        .await
        .assert_problem(403, "forbidden", "an agent erasing");
    let unknown = match subject {
        Subject::Customer => erase(&world, "nobody-ever", ADMIN_KEY, "erase-nobody").await,
        Subject::Guest => {
            erase_guest(
                &world,
                "nobody-ever@erasure.example",
                ADMIN_KEY,
                "erase-nobody",
            )
            .await
        }
    };
    unknown.assert_problem(404, "not-found", "an unknown customer");
    let named = if subject == Subject::Guest {
        "email"
    } else {
        "id"
    };
    assert_eq!(unknown.problem_fields(), vec![named]);
    if subject == Subject::Guest {
        let malformed = erase_guest(&world, "not an email", ADMIN_KEY, "erase-malformed").await;
        malformed.assert_problem(422, "validation-failed", "an email that is none");
        assert_eq!(malformed.problem_fields(), vec!["email"]);
    }

    let erased = erase_subject(&world, subject, ADMIN_KEY, "erase-1").await;
    assert_eq!(erased.status, 200, "{}", erased.describe());
    let body = erased.json();
    assert_eq!(body["status"], "erased");
    assert_eq!(body["keys_destroyed"], 1);
    match subject {
        Subject::Customer => assert_eq!(body["customer_id"], CUSTOMER),
        Subject::Guest => {
            assert_eq!(body.get("customer_id"), None);
            assert!(
                !erased.text().to_lowercase().contains(EMAIL),
                "the answer repeats the email: {}",
                erased.text()
            );
        }
    }
    let mut listed: Vec<String> = body["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| o.as_str().expect("id").to_owned())
        .collect();
    listed.sort();
    let mut expected = orders[..2].to_vec();
    expected.sort();
    assert_eq!(listed, expected);
    let repeat = erase_subject(&world, subject, ADMIN_KEY, "erase-1").await;
    assert_eq!(repeat.status, 200, "{}", repeat.describe());
    assert_eq!(repeat.json(), body, "a repeat answers the first response");
    // Asked again (a new request): the orders are scrubbed again, no key is left to destroy.
    let again = erase_subject(&world, subject, ADMIN_KEY, "erase-2").await;
    assert_eq!(again.status, 200, "{}", again.describe());
    assert_eq!(again.json()["keys_destroyed"], 0);
    assert_eq!(again.json()["orders"], body["orders"]);

    // No store holds the customer's personal data any more.
    eventually(
        "no store holds the erased customer's data",
        SETTLE,
        || async {
            let found = stores_holding(env, search_url, &NEEDLES).await;
            if found.is_empty() {
                Ok(())
            } else {
                Err(found.join("\n"))
            }
        },
    )
    .await;
    assert_eq!(search_hits(&world, "Marchbanks").await, 0);
    // `/track` finds the erased orders by number + email or postcode no more.
    let redis = env.redis().await;
    let lookups = redis
        .scan(format!("{}:tracking-lookup:*", env.redis_prefix))
        .collect_all()
        .await
        .expect("scan lookups");
    let mut conn = redis.clone();
    let mut found = Vec::new();
    for key in lookups {
        let order: String = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("GET lookup");
        assert!(!orders[..2].contains(&order), "{key} still finds {order}");
        found.push(order);
    }
    assert!(
        found.contains(&orders[2]),
        "the other customer's lookups stay"
    );
    let agent = agent_order(&world, &orders[0]).await;
    assert_eq!(agent.status, 200, "{}", agent.describe());
    assert!(agent.text().contains("[erased]"), "{}", agent.describe());

    // The history and the money are what they were; the other customer is untouched.
    for (id, (types, status)) in orders.iter().zip(&history) {
        let now = env.event_types_of_order(id).await;
        assert_eq!(&now, types, "history of {id}");
        let view = view_at(&world, id, types.len()).await;
        assert_eq!(&view["status"], status, "status of {id}");
    }
    assert_eq!(finance_totals(&world).await, before);
    // Re-projecting the notifications view sent nothing again.
    assert_eq!(
        env.count_rows("notification_deliveries").await,
        ledger_before
    );
    let other = agent_order(&world, &orders[2]).await;
    assert!(other.text().contains(OTHER_NAME), "{}", other.describe());
    assert_eq!(search_hits(&world, "Keepwell").await, 1);
    let audit: Vec<Value> = sqlx::query_scalar(
        "SELECT payload FROM events WHERE event_type = 'CustomerErased' ORDER BY recorded_at",
    )
    .fetch_all(env.db())
    .await
    .expect("the audit events");
    assert_eq!(audit.len(), 2, "the erasure and its repeat: {audit:?}");
    for (event, destroyed) in audit.iter().zip([1, 0]) {
        assert_eq!(event["requested_by"], "e2e-admin");
        assert_eq!(event["keys_destroyed"], destroyed);
        assert_eq!(event["orders"].as_array().map(Vec::len), Some(2));
        let guest = (subject == Subject::Guest).then_some(json!(true));
        assert_eq!(event.get("guest").cloned(), guest);
        let text = event.to_string().to_lowercase();
        assert!(!text.contains(CUSTOMER) && !text.contains(EMAIL), "{event}");
    }

    // Rebuilding the views from the log brings nothing back (the search view too where it can
    // be rebuilt while the projector runs: on the OpenSearch API).
    let mut views = vec!["tracking", "notifications"];
    if search_url.is_some() {
        views.push("search");
    }
    for view in views {
        let output = env.run_command(&["rebuild", view]).await;
        assert!(
            output.status.success(),
            "rebuild {view}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let found = stores_holding(env, search_url, &NEEDLES).await;
    assert!(
        found.is_empty(),
        "after the rebuilds:\n{}",
        found.join("\n")
    );
    for (id, (types, status)) in orders.iter().zip(&history) {
        let view = view_at(&world, id, types.len()).await;
        assert_eq!(&view["status"], status, "status of {id} after the rebuild");
    }
}

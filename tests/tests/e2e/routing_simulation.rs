//! Routing what-if end to end: orders confirmed and routed by the real fulfillment worker with
//! the bundled config record their decisions (`RoutingDecided`); `POST /v1/routing/simulations`
//! and `waybill routing simulate` replay them with a candidate config. Checked: the bundled
//! config replays to exactly what was recorded; with a node disabled and the carbon weight
//! raised, every order's deltas equal what `route()` gives for its recorded inputs, and the
//! aggregate counts and split-rate change are right; a bad config is refused naming the field;
//! only admins may simulate.

use serde_json::{json, Value};
use waybill_e2e::fulfillment::{multi_line_order, FulfillmentWorld};
use waybill_e2e::{eventually, ADMIN_KEY, AGENT_KEY, DEFAULT_DEADLINE};
use waybill_schemas::events::RoutingDecided;
use waybill_write_side::domain::fulfillment::decision::RoutingInputs;
use waybill_write_side::domain::fulfillment::RoutingConfig;

const BUNDLED: &str = include_str!("../../../write-side/fulfillment-routing.json");

/// The bundled config with `wh-west` disabled and the carbon weight ×100.
fn candidate() -> Value {
    let mut config: Value = serde_json::from_str(BUNDLED).expect("bundled config");
    config["weights"]["carbon"] = json!(500);
    config["nodes"]
        .as_array_mut()
        .expect("nodes")
        .push(json!({"node_id": "wh-west", "disabled": true}));
    config
}

/// Cost, grams, ETA hours after the decision, nodes and unroutable units of the plan `config`
/// makes from a recorded decision's inputs, measured here from the routes themselves.
fn expected(decided: &RoutingDecided, config: &RoutingConfig) -> (i64, i64, Option<i64>, u32, u32) {
    let plan = RoutingInputs::recorded(decided).plan(config);
    let cost = plan.routes.iter().map(|r| r.cost_minor).sum();
    let grams = plan.routes.iter().map(|r| r.co2_grams).sum();
    let eta = plan
        .routes
        .iter()
        .map(|r| (r.eta - decided.decided_at).num_hours())
        .max();
    let unroutable = plan.unroutable.iter().map(|l| l.quantity.get()).sum();
    (cost, grams, eta, plan.routes.len() as u32, unroutable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_config_replays_recorded_decisions_per_order_and_in_aggregate() {
    let started = chrono::Utc::now() - chrono::Duration::minutes(1);
    let f = FulfillmentWorld::start("routing_simulation", &[]).await;
    let w = &f.world;
    w.restock("TEE-RED-M", "wh-east", 10).await;
    w.restock("MUG-BLK", "wh-west", 10).await;
    let mut orders = Vec::new();
    for (reference, skus) in [
        ("SIM-SPLIT", vec![("TEE-RED-M", 1), ("MUG-BLK", 1)]),
        ("SIM-EAST", vec![("TEE-RED-M", 2)]),
        ("SIM-WEST", vec![("MUG-BLK", 1)]),
    ] {
        let placed = w
            .place(&multi_line_order(reference, &skus, "standard"))
            .await;
        orders.push(placed["order_id"].as_str().expect("order id").to_owned());
    }
    let mut decisions = Vec::new();
    for order_id in &orders {
        let payload = eventually("the order's routing decision", DEFAULT_DEADLINE, || async {
            let payloads = w.env.payloads_of(order_id, "RoutingDecided").await;
            payloads
                .into_iter()
                .next()
                .ok_or_else(|| "not routed yet".to_owned())
        })
        .await;
        let decided: RoutingDecided =
            serde_json::from_value(payload).expect("a RoutingDecided payload");
        // Recorded with the routes it led to, by the config the worker runs.
        let routed = w.env.payloads_of(order_id, "FulfillmentRouted").await;
        assert_eq!(routed.len(), decided.outcome.routes.len());
        assert_eq!(
            decided.config_version,
            RoutingConfig::bundled().unwrap().version
        );
        decisions.push(decided);
    }
    // The split order went to both warehouses; its inputs say where the units were.
    assert_eq!(decisions[0].outcome.routes.len(), 2, "{:?}", decisions[0]);
    assert!(decisions[0]
        .allocated
        .as_ref()
        .is_some_and(|a| a.len() == 2));

    let window = |extra: Value| {
        let mut body = json!({
            "from": started.to_rfc3339(),
            "to": (chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339(),
            "orders": "all",
        });
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };

    // The config that made the decisions replays to exactly what was recorded.
    let same = w
        .api
        .post_json(
            "/v1/routing/simulations",
            ADMIN_KEY,
            "sim-bundled",
            &window(json!({"config": serde_json::from_str::<Value>(BUNDLED).unwrap()})),
        )
        .await;
    assert_eq!(same.status, 200, "{}", same.describe());
    let same = same.json();
    assert_eq!(same["aggregate"]["orders"], json!(3));
    assert_eq!(same["aggregate"]["decisions"], json!(3));
    assert_eq!(same["aggregate"]["changed_orders"], json!(0), "{same}");
    assert_eq!(same["aggregate"]["cost_delta_minor"], json!(0));
    assert_eq!(same["aggregate"]["split_rate_delta"], json!(0.0));

    // The candidate: wh-west disabled, carbon weighed 100 times more.
    let candidate_config = RoutingConfig::parse(&candidate().to_string()).unwrap();
    let answer = w
        .api
        .post_json(
            "/v1/routing/simulations",
            ADMIN_KEY,
            "sim-candidate",
            &window(json!({"config": candidate()})),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.describe());
    let answer = answer.json();
    let rows = answer["orders"].as_array().expect("rows").clone();
    assert_eq!(rows.len(), 3);
    assert_eq!(answer["orders_total"], json!(3));
    for (order_id, decided) in orders.iter().zip(&decisions) {
        let row = rows
            .iter()
            .find(|r| r["order_id"] == json!(order_id))
            .expect("a row per order");
        let (cost, grams, eta, nodes, unroutable) = expected(decided, &candidate_config);
        let recorded_cost: i64 = decided.outcome.routes.iter().map(|r| r.cost_minor).sum();
        let recorded_grams: i64 = decided.outcome.routes.iter().map(|r| r.co2_grams).sum();
        let recorded_eta = decided
            .outcome
            .routes
            .iter()
            .map(|r| (r.eta - decided.decided_at).num_hours())
            .max();
        assert_eq!(row["candidate"]["cost_minor"], json!(cost), "{row}");
        assert_eq!(
            row["cost_delta_minor"],
            json!(cost - recorded_cost),
            "{row}"
        );
        assert_eq!(
            row["co2_delta_grams"],
            json!(grams - recorded_grams),
            "{row}"
        );
        assert_eq!(
            row["eta_delta_hours"],
            json!(eta.zip(recorded_eta).map(|(a, b)| a - b)),
            "{row}"
        );
        assert_eq!(row["candidate"]["nodes"], json!(nodes), "{row}");
        assert_eq!(
            row["candidate"]["unroutable_units"],
            json!(unroutable),
            "{row}"
        );
        assert_eq!(row["href"], json!(format!("/v1/agent/orders/{order_id}")));
    }
    // What disabling wh-west means here: the split order keeps only its east half, the
    // west-only order has nowhere to go, the east-only order is untouched.
    let row = |i: usize| {
        rows.iter()
            .find(|r| r["order_id"] == json!(orders[i]))
            .expect("row")
            .clone()
    };
    assert_eq!(row(0)["candidate"]["nodes"], json!(1));
    assert_eq!(row(0)["candidate"]["unroutable_units"], json!(1));
    assert_eq!(row(2)["candidate"]["eta_hours"], json!(null));
    assert_eq!(row(2)["eta_delta_hours"], json!(null));
    let aggregate = &answer["aggregate"];
    assert_eq!(aggregate["orders"], json!(3));
    let changed = rows.iter().filter(|r| r["changed"] == json!(true)).count();
    assert!(changed >= 2, "{answer}");
    assert_eq!(aggregate["changed_orders"], json!(changed));
    assert_eq!(aggregate["recorded"]["split_orders"], json!(1));
    assert_eq!(aggregate["candidate"]["split_orders"], json!(0));
    assert_eq!(aggregate["no_longer_split_orders"], json!(1));
    let delta = aggregate["split_rate_delta"]
        .as_f64()
        .expect("split rate delta");
    assert!((delta + 1.0 / 3.0).abs() < 1e-9, "{aggregate}");
    assert_eq!(aggregate["candidate"]["unroutable_units"], json!(2));

    // `orders: changed` (the default) leaves the untouched order out.
    let mut body = window(json!({"config": candidate()}));
    body.as_object_mut().expect("object").remove("orders");
    let changed_only = w
        .api
        .post_json("/v1/routing/simulations", ADMIN_KEY, "sim-changed", &body)
        .await
        .json();
    assert_eq!(changed_only["orders_total"], json!(changed));

    // The command line gives the same aggregate and writes its page.
    let dir = w.env.log_dir.join("routing-sim");
    let candidate_file = w.env.log_dir.join("candidate.json");
    std::fs::write(&candidate_file, candidate().to_string()).expect("candidate file");
    let stdout = w
        .env
        .run_ok(&[
            "routing",
            "simulate",
            "--config",
            candidate_file.to_str().expect("path"),
            "--from",
            &started.to_rfc3339(),
            "--to",
            &(chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339(),
            "--out",
            dir.to_str().expect("path"),
        ])
        .await;
    assert!(stdout.contains("3 orders (3 decisions)"), "{stdout}");
    let file: Value = serde_json::from_slice(&std::fs::read(dir.join("simulation.json")).unwrap())
        .expect("simulation.json");
    assert_eq!(&file["aggregate"], aggregate);
    let csv = std::fs::read_to_string(dir.join("orders.csv")).expect("orders.csv");
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let html = std::fs::read_to_string(dir.join("index.html")).expect("index.html");
    assert!(html.contains("<svg") && html.contains("Cost change per order"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_candidate_config_is_refused_naming_the_field_and_only_admins_simulate() {
    let f = FulfillmentWorld::start("routing_simulation_refusals", &[]).await;
    let api = &f.world.api;
    let now = chrono::Utc::now();
    let body = |config: Value| {
        json!({
            "config": config,
            "from": (now - chrono::Duration::hours(1)).to_rfc3339(),
            "to": now.to_rfc3339(),
        })
    };
    let mut config = candidate();
    config["weights"]["carbon"] = json!("a lot");
    let refused = api
        .post_json(
            "/v1/routing/simulations",
            ADMIN_KEY,
            "sim-bad-1",
            &body(config),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.describe());
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(refused.json()["field"], json!("config.weights.carbon"));

    let mut config = candidate();
    config["nodes"][0]["carriers"] = json!(["parcelco", "nobody"]);
    let refused = api
        .post_json(
            "/v1/routing/simulations",
            ADMIN_KEY,
            "sim-bad-2",
            &body(config),
        )
        .await;
    assert_eq!(refused.status, 422);
    assert_eq!(
        refused.json()["field"],
        json!("config.nodes[0].carriers[1]")
    );

    let mut long = body(candidate());
    long["from"] = json!((now - chrono::Duration::days(60)).to_rfc3339());
    let refused = api
        .post_json("/v1/routing/simulations", ADMIN_KEY, "sim-bad-3", &long)
        .await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.json()["field"], json!("to"));

    let agent = api
        .post_json(
            "/v1/routing/simulations",
            AGENT_KEY,
            "sim-agent",
            &body(candidate()),
        )
        .await;
    assert_eq!(agent.status, 403, "{}", agent.describe());
}

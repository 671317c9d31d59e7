//! Agent search over HTTP against the real binary (embedded Tantivy index): orders placed on the
//! command API are found by each field an agent may type, filtered, faceted and paged; other
//! roles are refused; the consistency token of a command makes the next search see it.

use serde_json::{json, Value};
use waybill_e2e::{
    eventually, sample_cancel, sample_order, Api, Osmem, Role, TestEnv, AGENT_KEY,
    DEFAULT_DEADLINE, FINANCE_KEY, SERVICE_KEY,
};

use crate::{place, Placed};

fn customer_order(reference: &str, channel: &str, name: &str, email: &str, phone: &str) -> Value {
    let mut order = sample_order(reference);
    order["channel"] = json!(channel);
    order["customer"]["name"] = json!(name);
    order["customer"]["email"] = json!(email);
    order["customer"]["phone"] = json!(phone);
    order["shipping_address"]["name"] = json!(name);
    order
}

async fn search(api: &Api, query: &[(&str, &str)]) -> Value {
    let response = api
        .query_get("/v1/search/orders", query, Some(AGENT_KEY))
        .await;
    assert_eq!(
        response.status,
        200,
        "search {query:?}: {}",
        response.describe()
    );
    response.json()
}

fn hit_ids(body: &Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .map(|h| {
                    h["document"]["order_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (with the consistency token) until the order's document is indexed.
async fn indexed(api: &Api, placed: &Placed) {
    let token = placed.consistency_token.clone();
    eventually("search document indexed", DEFAULT_DEADLINE, || async {
        let body = search(
            api,
            &[("q", &placed.order_id), ("consistency_token", &token)],
        )
        .await;
        if body["consistency"]["stale"] == json!(false)
            && hit_ids(&body) == [placed.order_id.clone()]
        {
            Ok(())
        } else {
            Err(body.to_string())
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_finds_orders_by_every_field_with_filters_facets_and_pages() {
    let env = TestEnv::new("search_agent").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();

    let grace = place(
        &api,
        "search-1",
        &customer_order(
            "WEB-GRACE-1",
            "web",
            "Grace Hopper",
            "grace.hopper@navy.example",
            "+1 202 555 0101",
        ),
    )
    .await;
    let mut alan_order = customer_order(
        "APP-ALAN-2",
        "app",
        "Alan Turing",
        "alan@bletchley.example",
        "+44 20 7946 0958",
    );
    alan_order["lines"][1]["sku"] = json!("ENIGMA-MUG");
    alan_order["lines"][1]["name"] = json!("Enigma mug");
    let alan = place(&api, "search-2", &alan_order).await;
    let ada = place(
        &api,
        "search-3",
        &customer_order(
            "WEB-ADA-3",
            "web",
            "Ada Lovelace",
            "ada@analytical.example",
            "+1 217 555 0142",
        ),
    )
    .await;
    for order in [&grace, &alan, &ada] {
        indexed(&api, order).await;
    }

    let cases: Vec<(&str, &Placed)> = vec![
        ("Grace Hoper", &grace),          // typo in a name
        ("turnig", &alan),                // transposed letters
        ("grace.hop", &grace),            // email prefix
        ("ada@analytical.example", &ada), // exact email
        ("+1 217 555 0142", &ada),        // phone as written
        ("7946 0958", &alan),             // the local part of a phone
        ("WEB-GRACE-1", &grace),          // channel order ref
        ("ENIGMA-MUG", &alan),            // SKU
        ("enigma", &alan),                // product name
    ];
    for (q, expected) in cases {
        let body = search(&api, &[("q", q)]).await;
        assert_eq!(
            hit_ids(&body),
            [expected.order_id.as_str()],
            "q={q}: {body}"
        );
    }
    let body = search(&api, &[("q", &ada.order_id)]).await;
    assert_eq!(hit_ids(&body), [ada.order_id.as_str()], "{body}");
    let highlights = &body["hits"][0]["highlights"];
    assert!(
        highlights
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["field"] == "order_id")),
        "{body}"
    );
    let body = search(&api, &[("q", "lovelace")]).await;
    assert!(
        body["hits"][0]["highlights"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["fragment"] == "Ada <em>Lovelace</em>")),
        "{body}"
    );

    // Filters and facets: all three share "Red tee"; two are web orders.
    let body = search(&api, &[("q", "red tee")]).await;
    assert_eq!(body["total"], 3, "{body}");
    let web = body["facets"]["channel"]
        .as_array()
        .and_then(|f| f.iter().find(|c| c["value"] == "web"))
        .cloned();
    assert_eq!(web, Some(json!({"value": "web", "count": 2})), "{body}");
    let body = search(&api, &[("q", "red tee"), ("channel", "app")]).await;
    assert_eq!(hit_ids(&body), [alan.order_id.as_str()], "{body}");
    let body = search(
        &api,
        &[
            ("total_min", "1"),
            ("status", "placed"),
            ("has_exception", "false"),
        ],
    )
    .await;
    assert_eq!(body["total"], 3, "{body}");

    // Pages of one, newest first, cover the three orders once each.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..4 {
        let mut query = vec![("limit", "1".to_owned())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = search(&api, &query).await;
        seen.extend(hit_ids(&body));
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    seen.dedup();
    assert_eq!(
        seen,
        [
            ada.order_id.clone(),
            alan.order_id.clone(),
            grace.order_id.clone()
        ],
        "pages"
    );

    // Roles: finance and service keys are refused, no key is unauthenticated, bad input names
    // its parameter.
    for key in [FINANCE_KEY, SERVICE_KEY] {
        let response = api
            .query_get("/v1/search/orders", &[("q", "ada")], Some(key))
            .await;
        assert_eq!(response.status, 403, "{}", response.describe());
        let path = format!("/v1/agent/orders/{}", ada.order_id);
        let response = api.query_get(&path, &[], Some(key)).await;
        assert_eq!(response.status, 403, "{}", response.describe());
    }
    let response = api
        .query_get("/v1/search/orders", &[("q", "ada")], None)
        .await;
    assert_eq!(response.status, 401, "{}", response.describe());
    for (name, value) in [
        ("status", "shipped"),
        ("created_from", "yesterday"),
        ("limit", "1000"),
        ("cursor", "nope"),
    ] {
        let response = api
            .query_get("/v1/search/orders", &[(name, value)], Some(AGENT_KEY))
            .await;
        assert_eq!(response.status, 422, "{}", response.describe());
        assert_eq!(
            response.problem_fields(),
            [name.to_owned()],
            "{}",
            response.describe()
        );
    }
}

/// A SKU finds only the orders that hold it (its fragments never fuzzy-match other orders'
/// names or addresses), a prefix finds every SKU it starts, and free text is ranked by
/// relevance unless a sort is asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sku_finds_only_its_orders_and_free_text_ranks_by_relevance() {
    let env = TestEnv::new("search_precision").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();

    // Medium red tees for Hedy Lamarr; large ones, later, for Hedy Lamar at "Apt M": every
    // word of the medium SKU is somewhere in the large order.
    let medium = place(
        &api,
        "precision-1",
        &customer_order(
            "WEB-HEDY-1",
            "web",
            "Hedy Lamarr",
            "hedy@example.com",
            "+1 310 555 0100",
        ),
    )
    .await;
    let mut large_order = customer_order(
        "WEB-HEDY-2",
        "web",
        "Hedy Lamar",
        "h.lamar@example.com",
        "+1 310 555 0199",
    );
    large_order["lines"][0]["sku"] = json!("TEE-RED-L");
    large_order["shipping_address"]["line2"] = json!("Apt M");
    let large = place(&api, "precision-2", &large_order).await;
    for order in [&medium, &large] {
        indexed(&api, order).await;
    }

    for (q, expected) in [
        ("TEE-RED-M", vec![&medium]),
        ("tee-red-l", vec![&large]),
        ("TEE-RED-X", vec![]),
        ("TEE-RED", vec![&large, &medium]), // a prefix: both, newest first on a tie
        ("MUG-BLK", vec![&large, &medium]),
        ("lamarr", vec![&medium, &large]), // the exact spelling first, though older
        ("lamar", vec![&large, &medium]),
    ] {
        let body = search(&api, &[("q", q)]).await;
        let expected: Vec<&str> = expected.iter().map(|p| p.order_id.as_str()).collect();
        assert_eq!(hit_ids(&body), expected, "q={q}: {body}");
    }
    let body = search(&api, &[("q", "lamarr"), ("sort", "-created_at")]).await;
    assert_eq!(
        hit_ids(&body),
        [large.order_id.as_str(), medium.order_id.as_str()],
        "{body}"
    );

    // Relevance pages by its own cursor, and refuses another sort's.
    let body = search(&api, &[("q", "lamarr"), ("limit", "1")]).await;
    assert_eq!(hit_ids(&body), [medium.order_id.as_str()], "{body}");
    let next = body["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let body = search(&api, &[("q", "lamarr"), ("limit", "1"), ("cursor", &next)]).await;
    assert_eq!(hit_ids(&body), [large.order_id.as_str()], "{body}");
    let response = api
        .query_get(
            "/v1/search/orders",
            &[("q", "lamarr"), ("sort", "total"), ("cursor", &next)],
            Some(AGENT_KEY),
        )
        .await;
    assert_eq!(response.status, 422, "{}", response.describe());
    assert_eq!(response.problem_fields(), ["cursor".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_is_visible_to_the_next_search_and_detail_with_its_consistency_token() {
    let env = TestEnv::new("search_ryw").await;
    let waybill = env.start(Role::All).await;
    let api = waybill.api();

    let placed = place(&api, "ryw-1", &sample_order("WEB-RYW-1")).await;
    let cancelled = api
        .cancel_order(
            &placed.order_id,
            "ryw-cancel-1",
            &sample_cancel("customer_request"),
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.describe());
    let token = cancelled.json()["consistency_token"]
        .as_str()
        .expect("cancel answers a consistency token")
        .to_owned();

    // One request, no retry: the token makes the query wait for the cancel.
    let body = search(
        &api,
        &[
            ("q", "WEB-RYW-1"),
            ("status", "cancelled"),
            ("consistency_token", &token),
        ],
    )
    .await;
    assert_eq!(body["consistency"]["stale"], false, "{body}");
    assert_eq!(hit_ids(&body), [placed.order_id.as_str()], "{body}");
    assert_eq!(
        body["hits"][0]["document"]["tags"],
        json!(["cancelled"]),
        "{body}"
    );

    let path = format!("/v1/agent/orders/{}", placed.order_id);
    let response = api
        .query_get(&path, &[("consistency_token", &token)], Some(AGENT_KEY))
        .await;
    assert_eq!(response.status, 200, "{}", response.describe());
    let detail = response.json();
    assert_eq!(detail["consistency"]["stale"], false, "{detail}");
    assert_eq!(
        detail["document"]["customer"]["email"], "ada@example.com",
        "{detail}"
    );
    assert_eq!(detail["document"]["status"], "cancelled", "{detail}");
    let types: Vec<&str> = detail["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert_eq!(types, ["OrderPlaced", "OrderCancelled"], "{detail}");
    assert_eq!(
        detail["timeline"][0]["payload"]["customer"]["name"], "Ada Lovelace",
        "{detail}"
    );

    // An unknown order is 404; a token of another order is refused naming the parameter.
    let unknown = format!("/v1/agent/orders/{}", uuid_like());
    let response = api.query_get(&unknown, &[], Some(AGENT_KEY)).await;
    assert_eq!(response.status, 404, "{}", response.describe());
    let other = format!("{}.1", uuid_like());
    let response = api
        .query_get(&path, &[("consistency_token", &other)], Some(AGENT_KEY))
        .await;
    assert_eq!(response.status, 422, "{}", response.describe());
    assert_eq!(response.problem_fields(), ["consistency_token"]);
}

fn uuid_like() -> String {
    "01900000-0000-7000-8000-000000000001".to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_process_of_its_own_reads_the_projectors_index_and_a_killed_projector_comes_back() {
    let env = TestEnv::new("search_processes").await;
    let commands = env.start(Role::Commands).await;
    let _relay = env.start(Role::Relay).await;
    let mut projector = env.start(Role::Projector).await;
    let query = env.start(Role::Query).await;
    let api = Api::new(&commands.command_url(), &query.query_url());

    // The query process opened the directory the projector writes; the token makes it wait
    // until the projector's commit has reached its reader.
    let first = place(&api, "proc-1", &sample_order("WEB-PROC-1")).await;
    let body = search(
        &api,
        &[
            ("q", "WEB-PROC-1"),
            ("consistency_token", &first.consistency_token),
        ],
    )
    .await;
    assert_eq!(body["consistency"]["stale"], false, "{body}");
    assert_eq!(hit_ids(&body), [first.order_id.as_str()], "{body}");

    // kill -9 leaves Tantivy's writer lock to the kernel: the restarted projector takes it.
    projector.kill_hard();
    let second = place(&api, "proc-2", &sample_order("WEB-PROC-2")).await;
    projector.restart().await;
    indexed(&api, &second).await;
    let body = search(&api, &[("q", "web-proc")]).await;
    assert_eq!(body["total"], 2, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_elasticsearch_url_the_binary_indexes_and_searches_through_the_opensearch_api() {
    let Some(server) = Osmem::start() else { return };
    let env = TestEnv::new("search_opensearch").await;
    let waybill = env
        .start_with(Role::All, &[("ELASTICSEARCH_URL", server.url.as_str())])
        .await;
    let api = waybill.api();

    let placed = place(&api, "os-1", &sample_order("WEB-OS-1")).await;
    let cancelled = api
        .cancel_order(
            &placed.order_id,
            "os-cancel-1",
            &sample_cancel("customer_request"),
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.describe());
    let token = cancelled.json()["consistency_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let body = search(
        &api,
        &[
            ("q", "lovlace"),
            ("status", "cancelled"),
            ("consistency_token", &token),
        ],
    )
    .await;
    assert_eq!(body["consistency"]["stale"], false, "{body}");
    assert_eq!(hit_ids(&body), [placed.order_id.as_str()], "{body}");

    // The documents are in the server, behind the alias the binary created.
    // `<prefix>-orders` with the prefix's `:` made `-` (index names may not hold it).
    let alias = format!(
        "{}/{}-orders/_count",
        server.url,
        env.redis_prefix.replace(':', "-")
    );
    let count: Value = reqwest::get(&alias)
        .await
        .expect("count request")
        .json()
        .await
        .expect("count body");
    assert_eq!(count["count"], 1, "{count}");
}

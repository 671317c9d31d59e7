//! One suite, run against both backends: Tantivy in a fresh directory, and the OpenSearch API
//! on an osmem-server of the test's own. Plus the pure apply rules.

use chrono::Duration;
use uuid::Uuid;
use waybill_schemas::events::{CancelReason, RiskDecision};
use waybill_schemas::views::{OrderDocument, PaymentState, TrackingStatus};
use waybill_schemas::{Channel, OrderId};

use super::osmem::Osmem;
use super::*;
use crate::testing::*;

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("waybill-search-test-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

macro_rules! on_both_backends {
    ($($suite:ident),+ $(,)?) => { $(
        mod $suite {
            #[tokio::test]
            async fn tantivy() {
                let dir = super::TempDir::new();
                let index = super::TantivyIndex::open_writer(&dir.0).expect("tantivy index opens");
                super::$suite(index).await;
            }

            #[tokio::test]
            async fn opensearch_api() {
                let Some(server) = super::Osmem::start() else { return };
                let prefix = format!("t{}", uuid::Uuid::now_v7().simple());
                let index = super::ElasticIndex::connect(&server.url, &prefix, &super::ElasticOptions::default())
                    .await
                    .expect("alias and index created");
                super::$suite(index).await;
            }
        }
    )+ };
}

on_both_backends!(
    stale_and_duplicate_writes_never_regress_a_document,
    an_agent_finds_an_order_by_each_field,
    filters_narrow_and_facets_count,
    cursor_pages_cover_every_match_once_in_order,
    rebuild_replays_the_log_over_whatever_the_index_held,
    identifiers_match_whole_or_by_prefix_never_by_fragments,
    free_text_ranks_by_relevance_and_pages_by_offset,
);

/// Order `n` of the fixture set: distinct names, emails, phones, refs, SKUs, channels, dates
/// and totals.
pub(super) fn document(
    n: i64,
    name: &str,
    email: &str,
    phone: Option<&str>,
    product: &str,
) -> OrderDocument {
    let order = OrderId::new_v7();
    let mut doc = apply(None, &placed_event(order, 1)).expect("placed applies");
    doc.customer.name = name.to_owned();
    doc.shipping_address.name = name.to_owned();
    doc.customer.email = email.to_owned();
    doc.customer.phone = phone.map(str::to_owned);
    doc.channel_order_ref = format!("REF-{n:04}");
    doc.lines[0].sku = format!("SKU-{n:04}");
    doc.lines[0].name = product.to_owned();
    doc.channel = match n % 3 {
        0 => Channel::Web,
        1 => Channel::App,
        _ => Channel::Marketplace,
    };
    doc.created_at = at(0) + Duration::minutes(n);
    doc.updated_at = doc.created_at;
    doc.grand_total_minor = 1_000 * n;
    doc
}

fn fixtures() -> Vec<OrderDocument> {
    let mut docs = vec![
        document(
            1,
            "Ada Lovelace",
            "ada@example.com",
            Some("+1 217 555 0142"),
            "Red tee",
        ),
        document(
            2,
            "Grace Hopper",
            "grace.hopper@navy.example",
            Some("+44 20 7946 0958"),
            "Blue hoodie",
        ),
        document(
            3,
            "Alan Turing",
            "alan@bletchley.example",
            None,
            "Enigma mug",
        ),
        document(
            4,
            "Katherine Johnson",
            "kj@nasa.example",
            Some("+1 757 555 0199"),
            "Orbit poster",
        ),
        document(5, "Margaret Hamilton", "mh@apollo.example", None, "Red tee"),
    ];
    docs[2].status = TrackingStatus::Cancelled;
    docs[2].tags = vec![
        "cancelled".into(),
        "payment_declined".into(),
        "exception".into(),
    ];
    docs[3].status = TrackingStatus::Confirmed;
    docs[3].rma_numbers = vec!["RMA-777".into()];
    docs[3].tags = vec!["return".into()];
    docs[3].tracking_numbers = vec!["1Z999AA10123456784".into()];
    docs
}

async fn indexed<I: SearchIndex>(index: &I) -> Vec<OrderDocument> {
    let docs = fixtures();
    let written = index.upsert(docs.clone()).await.expect("upsert");
    assert_eq!(written, vec![true; docs.len()]);
    docs
}

pub(super) fn query(text: &str) -> SearchQuery {
    SearchQuery {
        text: text.to_owned(),
        sort: Sort::newest_first(),
        limit: 20,
        ..SearchQuery::default()
    }
}

async fn ids<I: SearchIndex>(index: &I, q: &SearchQuery) -> Vec<String> {
    let page = index.search(q).await.expect("search");
    page.hits.into_iter().map(|h| h.document.order_id).collect()
}

async fn stale_and_duplicate_writes_never_regress_a_document<I: SearchIndex>(index: I) {
    let order = OrderId::new_v7();
    let v1 = apply(None, &placed_event(order, 1)).expect("v1");
    let v2 = apply(Some(&v1), &cancelled_event(order, 2)).expect("v2");
    assert_eq!(
        index.upsert(vec![v2.clone()]).await.expect("write v2"),
        [true]
    );

    // The older version arrives late, and the same version again: both refused, nothing moves.
    assert_eq!(
        index.upsert(vec![v1.clone()]).await.expect("write v1"),
        [false]
    );
    assert_eq!(
        index
            .upsert(vec![v2.clone()])
            .await
            .expect("write v2 again"),
        [false]
    );
    let stored = index
        .get(std::slice::from_ref(&v1.order_id))
        .await
        .expect("get");
    assert_eq!(stored, vec![Some(v2.clone())]);

    // Still one document for the order, and it is the cancelled one.
    let page = index
        .search(&query(&v1.order_id))
        .await
        .expect("search by id");
    assert_eq!(page.total, 1);
    assert_eq!(page.hits[0].document.status, TrackingStatus::Cancelled);

    // A newer version goes in; in a mixed batch only the newer documents are written.
    let mut v3 = v2.clone();
    v3.version = 3;
    v3.tags.push("exception".into());
    let other = apply(None, &placed_event(OrderId::new_v7(), 1)).expect("other");
    let results = index
        .upsert(vec![v1.clone(), v3.clone(), other.clone()])
        .await
        .expect("mixed batch");
    assert_eq!(results, [false, true, true]);
    let stored = index
        .get(&[
            v1.order_id.clone(),
            other.order_id.clone(),
            OrderId::new_v7().to_string(),
        ])
        .await
        .expect("get");
    assert_eq!(stored, vec![Some(v3), Some(other), None]);
}

async fn an_agent_finds_an_order_by_each_field<I: SearchIndex>(index: I) {
    let docs = indexed(&index).await;
    let (ada, grace, kj) = (&docs[0].order_id, &docs[1].order_id, &docs[3].order_id);
    let cases: Vec<(&str, Vec<&String>)> = vec![
        ("Lovelace", vec![ada]),
        ("lovlace", vec![ada]),       // a letter missing
        ("Lovelcae", vec![ada]),      // two letters swapped
        ("Grace Hoper", vec![grace]), // every term must match, each with its typo allowance
        ("ada@exa", vec![ada]),       // email prefix
        ("GRACE.HOPPER@NAVY.EXAMPLE", vec![grace]),
        ("+1 217 555 0142", vec![ada]), // phone as written
        ("2175550142", vec![ada]),      // digits only
        ("555-0142", vec![ada]),        // local number
        ("ref-0002", vec![grace]),      // channel order ref
        ("SKU-0004", vec![kj]),         // SKU
        ("orbit", vec![kj]),            // product name
        ("hoodie", vec![grace]),
        ("RMA-777", vec![kj]),
        ("1Z999AA10123456784", vec![kj]),
        ("nobody-at-all", vec![]),
    ];
    for (text, expected) in cases {
        let found = ids(&index, &query(text)).await;
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(found, expected, "query {text:?} on {}", index.backend());
    }
    let by_id = ids(&index, &query(&ada.to_uppercase())).await;
    assert_eq!(by_id, vec![ada.clone()], "order id in capitals");

    // Both "Red tee" orders, newest first, with the matching words highlighted.
    let page = index.search(&query("red tee")).await.expect("search");
    assert_eq!(
        page.hits
            .iter()
            .map(|h| &h.document.order_id)
            .collect::<Vec<_>>(),
        vec![&docs[4].order_id, &docs[0].order_id]
    );
    assert!(page.hits[0]
        .highlights
        .iter()
        .any(|h| h.field == "lines.name" && h.fragment == "<em>Red</em> <em>tee</em>"));
    let page = index.search(&query("lovlace")).await.expect("search");
    assert!(page.hits[0]
        .highlights
        .iter()
        .any(|h| h.field == "customer.name" && h.fragment == "Ada <em>Lovelace</em>"));
}

async fn filters_narrow_and_facets_count<I: SearchIndex>(index: I) {
    let docs = indexed(&index).await;
    let all = index.search(&query("")).await.expect("all");
    assert_eq!(all.total, 5);
    let count = |facets: &[waybill_schemas::views::FacetCount], value: &str| {
        facets
            .iter()
            .find(|f| f.value == value)
            .map_or(0, |f| f.count)
    };
    assert_eq!(count(&all.facets.status, "placed"), 3);
    assert_eq!(count(&all.facets.status, "cancelled"), 1);
    assert_eq!(count(&all.facets.status, "confirmed"), 1);
    assert_eq!(count(&all.facets.channel, "app"), 2);
    assert_eq!(count(&all.facets.channel, "marketplace"), 2);
    assert_eq!(count(&all.facets.channel, "web"), 1);

    let mut q = query("red tee");
    q.channel = vec![Channel::Marketplace];
    assert_eq!(ids(&index, &q).await, vec![docs[4].order_id.clone()]);

    let mut q = query("");
    q.status = vec![TrackingStatus::Cancelled, TrackingStatus::Confirmed];
    assert_eq!(
        ids(&index, &q).await,
        vec![docs[3].order_id.clone(), docs[2].order_id.clone()]
    );

    let mut q = query("");
    q.created_from = Some(docs[1].created_at);
    q.created_to = Some(docs[3].created_at);
    assert_eq!(
        ids(&index, &q).await,
        vec![docs[2].order_id.clone(), docs[1].order_id.clone()]
    );

    let mut q = query("");
    q.total_min = Some(2_000);
    q.total_max = Some(3_000);
    q.sort = Sort::parse("total").expect("sort");
    let page = index.search(&q).await.expect("search");
    assert_eq!(page.total, 2);
    assert_eq!(
        page.hits
            .iter()
            .map(|h| h.document.grand_total_minor)
            .collect::<Vec<_>>(),
        vec![2_000, 3_000]
    );
    assert_eq!(count(&page.facets.status, "placed"), 1);

    let mut q = query("");
    q.has_exception = Some(true);
    assert_eq!(ids(&index, &q).await, vec![docs[2].order_id.clone()]);
    q.has_exception = Some(false);
    assert_eq!(index.search(&q).await.expect("search").total, 4);

    let mut q = query("");
    q.has_return = Some(true);
    assert_eq!(ids(&index, &q).await, vec![docs[3].order_id.clone()]);
}

async fn cursor_pages_cover_every_match_once_in_order<I: SearchIndex>(index: I) {
    let mut docs = indexed(&index).await;
    // Two more orders with the same total as another: ties are broken by order id.
    let mut twin = document(6, "Hedy Lamarr", "hedy@example.com", None, "Radio");
    twin.grand_total_minor = 3_000;
    let mut twin2 = document(7, "Hedy Lamarr", "hedy2@example.com", None, "Radio");
    twin2.grand_total_minor = 3_000;
    let written = index
        .upsert(vec![twin.clone(), twin2.clone()])
        .await
        .expect("upsert");
    assert_eq!(written, [true, true]);
    docs.push(twin);
    docs.push(twin2);

    for sort in [
        "-created_at",
        "created_at",
        "-total",
        "total",
        "-updated_at",
    ] {
        let mut q = query("");
        q.sort = Sort::parse(sort).expect("sort");
        q.limit = 2;
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = index.search(&q).await.expect("page");
            assert_eq!(page.total, 7, "total counts all matches, not the page");
            pages += 1;
            seen.extend(page.hits.into_iter().map(|h| h.document));
            match page.next {
                Some(next) => q.after = Some(Cursor::decode(&next.encode()).expect("cursor")),
                None => break,
            }
            assert!(pages <= 5, "pagination does not end ({sort})");
        }
        let mut expected = docs.clone();
        let key = |d: &OrderDocument| match q.sort.field {
            SortField::CreatedAt => d.created_at.timestamp_micros(),
            SortField::UpdatedAt => d.updated_at.timestamp_micros(),
            SortField::Total => d.grand_total_minor,
            SortField::Relevance => 0,
        };
        expected.sort_by(|a, b| (key(a), &a.order_id).cmp(&(key(b), &b.order_id)));
        if q.sort.descending {
            expected.reverse();
        }
        let seen: Vec<&String> = seen.iter().map(|d| &d.order_id).collect();
        let expected: Vec<&String> = expected.iter().map(|d| &d.order_id).collect();
        assert_eq!(seen, expected, "sort {sort} on {}", index.backend());
    }
}

async fn identifiers_match_whole_or_by_prefix_never_by_fragments<I: SearchIndex>(index: I) {
    // Two orders of red tees in sizes M and L; the L one ships to "Flat M", so every word of
    // the M SKU is somewhere in it. A third customer is called Ted Redman.
    let mut medium = document(1, "Ada Lovelace", "ada@example.com", None, "Red tee");
    medium.lines[0].sku = "TEE-RED-M".into();
    let mut large = document(2, "Grace Hopper", "grace@example.com", None, "Red tee");
    large.lines[0].sku = "TEE-RED-L".into();
    large.shipping_address.line2 = Some("Flat M".into());
    let mut mug = document(3, "Ted Redman", "ted@example.com", None, "Mug");
    mug.lines[0].sku = "MUG-1".into();
    mug.tracking_numbers = vec!["1Z999AA10123456784".into()];
    let docs = vec![medium, large, mug];
    index.upsert(docs.clone()).await.expect("upsert");
    let (m, l, t) = (&docs[0].order_id, &docs[1].order_id, &docs[2].order_id);

    let cases: Vec<(&str, Vec<&String>)> = vec![
        ("TEE-RED-M", vec![m]),  // the SKU: only the order that holds it
        ("tee-red-m", vec![m]),  // in any case
        ("TEE-RED", vec![l, m]), // a prefix of SKUs, newest first
        ("TEE-RED-N", vec![]),   // no typo tolerance for identifiers
        ("1Z999AA", vec![t]),    // tracking number prefix
        ("1Z999AA1012345678", vec![t]),
        ("1Z999AB10123456784", vec![]),
        ("grace@exampel.com", vec![]),  // nor for emails
        ("REF-000", vec![t, l, m]),     // channel order refs by prefix, newest first
        ("Springfield", vec![t, l, m]), // address words match exactly…
        ("Springfeld", vec![]),         // …and without typos
        ("Redmann", vec![t]),           // names keep theirs
        ("Lovelace red", vec![m]),
    ];
    for (text, expected) in cases {
        let found = ids(&index, &query(text)).await;
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(found, expected, "query {text:?} on {}", index.backend());
    }
    let page = index.search(&query("TEE-RED")).await.expect("search");
    let hit = page
        .hits
        .iter()
        .find(|h| &h.document.order_id == m)
        .expect("the medium order");
    assert!(hit
        .highlights
        .iter()
        .any(|h| h.field == "lines.sku" && h.fragment == "<em>TEE-RED</em>-M"));
    assert!(
        !hit.highlights.iter().any(|h| h.field == "lines.name"),
        "a SKU's fragments do not highlight the product name"
    );
}

async fn free_text_ranks_by_relevance_and_pages_by_offset<I: SearchIndex>(index: I) {
    // The exact spelling is the older order; the newer one is only a typo away.
    let exact = document(1, "Hedy Lamarr", "hedy@example.com", None, "Radio");
    let typo = document(2, "Hedy Lamar", "h.lamar@example.com", None, "Radio");
    // An order whose SKU is the word searched beats one where it is only in a product name.
    let mut in_name = document(3, "Ada Lovelace", "ada@example.com", None, "Radio clock");
    in_name.lines[0].sku = "CLOCK-9".into();
    let mut by_sku = document(4, "Alan Turing", "alan@example.com", None, "Bedside alarm");
    by_sku.lines[0].sku = "CLOCK".into();
    let docs = vec![exact, typo, in_name, by_sku];
    index.upsert(docs.clone()).await.expect("upsert");
    let id = |n: usize| docs[n].order_id.clone();

    let mut q = query("lamarr");
    assert_eq!(
        ids(&index, &q).await,
        [id(1), id(0)],
        "newest first by date"
    );
    q.sort = Sort::relevance();
    assert_eq!(ids(&index, &q).await, [id(0), id(1)], "{}", index.backend());
    let mut q = query("lamar");
    q.sort = Sort::relevance();
    assert_eq!(ids(&index, &q).await, [id(1), id(0)], "{}", index.backend());
    let mut q = query("clock");
    q.sort = Sort::relevance();
    assert_eq!(ids(&index, &q).await, [id(3), id(2)], "{}", index.backend());

    // Ties (here: no text at all) go newest first; pages of one cover every order once.
    let mut q = query("");
    q.sort = Sort::relevance();
    q.limit = 1;
    let mut seen = Vec::new();
    loop {
        let page = index.search(&q).await.expect("page");
        assert_eq!(page.total, 4);
        seen.extend(page.hits.into_iter().map(|h| h.document.order_id));
        match page.next {
            Some(next) => q.after = Some(Cursor::decode(&next.encode()).expect("cursor")),
            None => break,
        }
        assert!(seen.len() <= 4, "pagination does not end");
    }
    assert_eq!(seen, [id(3), id(2), id(1), id(0)], "{}", index.backend());
}

#[test]
fn apply_builds_the_document_and_tags_what_went_wrong() {
    let order = OrderId::new_v7();
    let placed = apply(None, &placed_event_with_phone(order, 1)).expect("placed");
    assert_eq!(placed.order_id, order.to_string());
    assert_eq!(placed.customer.name, "Ada Lovelace");
    assert_eq!(placed.customer.email, "ada@example.com");
    assert_eq!(placed.customer.phone.as_deref(), Some("+1 217 555 0142"));
    assert_eq!(placed.lines[0].sku, "TEE-RED-M");
    assert_eq!(placed.grand_total_minor, 3240);
    assert_eq!(placed.stage, "checkout");
    assert!(placed.tags.is_empty());
    assert!(placed.tracking_numbers.is_empty() && placed.rma_numbers.is_empty());

    let review = apply(
        Some(&placed),
        &risk_assessed(order, 2, RiskDecision::Review),
    )
    .expect("review");
    assert_eq!(review.status, TrackingStatus::InReview);
    assert_eq!(review.stage, "fraud_review");
    assert_eq!(review.tags, ["fraud_review"]);

    let declined = apply(
        Some(&review),
        &declined_event(order, 3, "insufficient_funds"),
    )
    .expect("declined");
    assert_eq!(declined.payment_state, PaymentState::Declined);
    assert!(declined.has_tag("payment_declined") && declined.has_tag("exception"));

    let cancelled = apply(
        Some(&declined),
        &cancelled_for(order, 4, CancelReason::PaymentFailed),
    )
    .expect("cancelled");
    assert_eq!(cancelled.status, TrackingStatus::Cancelled);
    assert_eq!(cancelled.stage, "cancelled");
    assert_eq!(cancelled.version, 4);
    assert_eq!(
        cancelled.tags,
        ["fraud_review", "payment_declined", "exception", "cancelled"]
    );
}

#[test]
fn a_capture_refused_for_good_flags_the_order_for_agents() {
    let order = OrderId::new_v7();
    let placed = apply(None, &placed_event(order, 1)).expect("placed");
    let authorized = apply(Some(&placed), &authorized_event(order, 2)).expect("authorized");
    let confirmed = apply(Some(&authorized), &confirmed_event(order, 3)).expect("confirmed");
    assert!(!confirmed.has_tag("exception"));
    let failed = apply(Some(&confirmed), &capture_failed_event(order, 4)).expect("failed");
    assert_eq!(failed.payment_state, PaymentState::CaptureFailed);
    assert!(failed.has_tag("capture_failed") && failed.has_tag("exception"));
}

#[test]
fn a_confirmed_and_captured_order_has_no_exception() {
    let order = OrderId::new_v7();
    let mut doc = apply(None, &placed_event(order, 1)).expect("placed");
    for event in [
        risk_assessed(order, 2, RiskDecision::Accept),
        reserved_event(order, 3),
        authorized_event(order, 4),
        allocated_event(order, 5),
        confirmed_event(order, 6),
        captured_event(order, 7, 3240),
    ] {
        doc = apply(Some(&doc), &event).expect("applies");
    }
    assert_eq!(doc.status, TrackingStatus::Confirmed);
    assert_eq!(doc.stage, "captured");
    assert_eq!(doc.payment_state, PaymentState::Captured);
    assert!(doc.tags.is_empty());
}

#[test]
fn events_before_placement_are_refused() {
    let order = OrderId::new_v7();
    assert!(matches!(
        apply(None, &cancelled_event(order, 1)),
        Err(SearchError::NotPlaced { .. })
    ));
}

async fn rebuild_replays_the_log_over_whatever_the_index_held<I>(index: I)
where
    I: SearchIndex + Into<SearchBackend>,
{
    let pool = fresh_database().await;
    let (a, b, c) = (OrderId::new_v7(), OrderId::new_v7(), OrderId::new_v7());
    seed(
        &pool,
        &[
            placed_event(a, 1),
            placed_event_with_phone(b, 1),
            cancelled_event(b, 2),
            placed_event(c, 1),
            risk_assessed(c, 2, RiskDecision::Review),
            declined_event(c, 3, "insufficient_funds"),
        ],
    )
    .await;
    // What the index held before: a document with a wrong name at the current version (say an
    // earlier apply rule), and an order that is not in the log at all.
    let mut wrong = apply(None, &placed_event(a, 1)).expect("a");
    wrong.customer.name = "Wrong Name".into();
    let stray = apply(None, &placed_event(OrderId::new_v7(), 1)).expect("stray");
    index
        .upsert(vec![wrong, stray.clone()])
        .await
        .expect("seed index");

    let backend: SearchBackend = index.into();
    let mut pages = Vec::new();
    let report = rebuild_search(
        &waybill_write_side::event_store::EventStore::new(pool),
        backend.clone(),
        2,
        |done| pages.push(done),
    )
    .await
    .expect("rebuild");
    assert!(report.events >= 6, "{report:?}");
    assert_eq!(report.documents, 3, "{report:?}");
    assert_eq!(report.unappliable, 0);
    assert!(
        pages.len() >= 3 && pages.windows(2).all(|w| w[0] <= w[1]),
        "{pages:?}"
    );

    let ids = [
        a.to_string(),
        b.to_string(),
        c.to_string(),
        stray.order_id.clone(),
    ];
    let docs = backend.get(&ids).await.expect("get");
    let a_doc = docs[0].as_ref().expect("a rebuilt");
    assert_eq!(a_doc.customer.name, "Ada Lovelace");
    let b_doc = docs[1].as_ref().expect("b rebuilt");
    assert_eq!(
        (b_doc.version, b_doc.status),
        (2, TrackingStatus::Cancelled)
    );
    let c_doc = docs[2].as_ref().expect("c rebuilt");
    assert_eq!(c_doc.version, 3);
    assert!(c_doc.has_tag("fraud_review") && c_doc.has_tag("exception"));
    assert_eq!(
        docs[3], None,
        "the rebuilt index holds only what the log says"
    );
    let page = backend.search(&query("lovelace")).await.expect("search");
    assert_eq!(page.total, 3);
    if let SearchBackend::Elastic(alias) = &backend {
        assert_eq!(
            alias.alias_indices().await.expect("alias"),
            [report.target.as_str()]
        );
    }
}

#[test]
fn alias_names_are_valid_index_names() {
    assert_eq!(alias_name("waybill"), "waybill-orders");
    assert_eq!(alias_name("bench:01AB"), "bench-01ab-orders");
    assert_eq!(alias_name("_x y"), "x-y-orders");
}

/// The search projector commits on a time policy: a staged document is invisible to other
/// readers and its event stays unacknowledged until the commit that contains it; after the
/// commit both change together. A kill before the commit therefore loses nothing (the event
/// is redelivered).
#[tokio::test]
async fn search_commits_on_a_time_policy_and_acks_only_after_the_commit() {
    use async_nats::jetstream;
    use waybill_write_side::outbox::relay::ensure_stream;

    let dir = TempDir::new();
    let writer = TantivyIndex::open_writer(&dir.0).expect("writer");
    let reader = TantivyIndex::open_reader(&dir.0).expect("reader");
    let config = isolated_config();
    let js = jetstream::new(
        async_nats::connect("nats://127.0.0.1:4222")
            .await
            .expect("nats up"),
    );
    ensure_stream(&js, &config.stream_name, &config.subject_root)
        .await
        .expect("event stream");
    let pool = fresh_database().await;
    let order = OrderId::new_v7();
    let placed = placed_event(order, 1);
    seed(&pool, std::slice::from_ref(&placed)).await;

    let interval = std::time::Duration::from_secs(3);
    let projection = SearchProjection::new(writer.clone()).with_commit_interval(interval);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(crate::run_projector(
        config.clone(),
        pool,
        js.clone(),
        projection,
        async {
            let _ = stopped.await;
        },
    ));
    let subject = waybill_schemas::subject::subject_for(
        &config.subject_root,
        &placed.stream_id,
        &placed.event_type,
        8,
    );
    let published = std::time::Instant::now();
    js.publish(subject, serde_json::to_vec(&placed).expect("json").into())
        .await
        .expect("publish")
        .await
        .expect("stream ack");

    let ack_pending = || {
        let js = js.clone();
        let stream = config.stream_name.clone();
        async move {
            let stream = js.get_stream(&stream).await.expect("stream");
            let mut consumer: jetstream::consumer::PullConsumer =
                stream.get_consumer(VIEW_NAME).await.expect("consumer");
            let info = consumer.info().await.expect("consumer info");
            (info.num_pending, info.num_ack_pending)
        }
    };
    // Staged: the writer's process reads it back, nobody else sees it, nothing is acked.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let staged = writer.get(&[order.to_string()]).await.expect("get");
        if staged[0].is_some() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "document staged");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    if published.elapsed() < interval {
        reader.reload().expect("reload");
        assert_eq!(
            reader.get(&[order.to_string()]).await.expect("get")[0],
            None
        );
        assert_eq!(ack_pending().await, (0, 1), "acked before its commit");
    }

    // Committed within the interval: visible to other readers, then acknowledged.
    loop {
        reader.reload().expect("reload");
        let committed = reader.get(&[order.to_string()]).await.expect("get")[0].is_some();
        if committed && ack_pending().await == (0, 0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "committed and acknowledged"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let _ = stop.send(());
    task.await.expect("task").expect("projector");
    let _ = js.delete_stream(&config.stream_name).await;
    let _ = js
        .delete_stream(crate::runtime::dead_letter_stream_name(&config.stream_name))
        .await;
}

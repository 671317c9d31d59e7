//! The compliance suite every view passes, written once and run per view against its real
//! store, the real NATS and the real Postgres (like Vector's component compliance tests):
//!
//! - duplicates, gaps and out-of-order delivery end in the fold of the event log;
//! - a poison message goes to the dead-letter stream and the rest applies;
//! - a batch abandoned after its store write but before its ack (the in-process equivalent of
//!   kill -9 mid-batch: the task is aborted, nothing is acknowledged) is redelivered to a
//!   restarted projector and applied once;
//! - a rebuild from the log into a new generation equals the live view, and sends nothing.
//!
//! A view joins by implementing [`Subject`] (how to open its store, a second generation of it,
//! and what its store keeps of a state) and invoking [`compliance_suite!`] in its file here.

mod analytics;
mod notifications;
mod search;
mod tracking;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use waybill_schemas::events::RiskDecision;
use waybill_schemas::subject::subject_for;
use waybill_schemas::{EventEnvelope, OrderId};
use waybill_write_side::event_store::EventStore;
use waybill_write_side::outbox::relay::{ensure_stream, HEADER_STREAM_VERSION};
use waybill_write_side::trace_context::TRACEPARENT;

use crate::runtime::{
    dead_letter_stream_name, replay_log, run_projector, ProjectorConfig, View, ViewWrite,
};
use crate::testing::*;

const DEADLINE: Duration = Duration::from_secs(40);

/// The state type of a subject's view.
type StateOf<S> = <<S as Subject>::View as View>::State;

/// A view under test: its store, opened for one test, and what the suite needs to know of it.
pub(crate) trait Subject: Sized + Send + Sync + 'static {
    type View: View + Clone;

    /// Opens a fresh, empty store for this test (own prefix, directory or database).
    fn open(config: &ProjectorConfig) -> impl Future<Output = Self>;
    /// The view as the live projector runs it, on the test's store.
    fn live(&self) -> Self::View;
    /// A new, empty generation of the store, as a rebuild writes it (notifications: replaying,
    /// so nothing is sent).
    fn green(&self) -> impl Future<Output = Self::View>;
    /// What the store keeps of a state (drops what lives only in memory while a batch is
    /// applied: rows a batch adds, messages about to be sent).
    fn settled(state: StateOf<Self>) -> StateOf<Self>;
    /// The messages a folded state decided to send, by id (views that send nothing: none).
    fn messages(_state: &StateOf<Self>) -> Vec<String> {
        Vec::new()
    }
    /// Ids of the messages handed to the outside world so far, repeats included.
    fn deliveries(&self) -> Vec<String> {
        Vec::new()
    }
    /// Removes what [`Subject::open`] and [`Subject::green`] created.
    fn cleanup(self) -> impl Future<Output = ()>;
}

/// Declares the suite's tests for one subject.
macro_rules! compliance_suite {
    ($subject:ty) => {
        #[tokio::test]
        async fn duplicates_gaps_and_reordering_end_in_the_fold() {
            crate::compliance::duplicates_gaps_and_reordering_end_in_the_fold::<$subject>().await;
        }

        #[tokio::test]
        async fn poison_is_dead_lettered_and_the_rest_applies() {
            crate::compliance::poison_is_dead_lettered_and_the_rest_applies::<$subject>().await;
        }

        #[tokio::test]
        async fn a_batch_abandoned_before_its_ack_is_applied_once_after_a_restart() {
            crate::compliance::a_batch_abandoned_before_its_ack_is_applied_once_after_a_restart::<
                $subject,
            >()
            .await;
        }

        #[tokio::test]
        async fn messages_handed_back_more_often_than_max_deliver_are_still_applied() {
            crate::compliance::messages_handed_back_more_often_than_max_deliver_are_still_applied::<
                $subject,
            >()
            .await;
        }

        #[tokio::test]
        async fn a_rebuild_into_a_new_generation_equals_the_live_fold_and_sends_nothing() {
            crate::compliance::a_rebuild_into_a_new_generation_equals_the_live_fold_and_sends_nothing::<
                $subject,
            >()
            .await;
        }
    };
}
use compliance_suite;

/// A running projector.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("projector task")
            .expect("projector result");
    }
}

/// One test's isolated world: stream, subject root, database, and the subject's store.
struct Harness<S: Subject> {
    config: ProjectorConfig,
    js: jetstream::Context,
    events: EventStore,
    subject: S,
}

impl<S: Subject> Harness<S> {
    async fn new() -> Self {
        let config = ProjectorConfig {
            // A batch abandoned without an ack comes back this soon.
            ack_wait: Duration::from_secs(2),
            ..isolated_config()
        };
        let client = async_nats::connect("nats://127.0.0.1:4222")
            .await
            .expect("nats up");
        let js = jetstream::new(client);
        ensure_stream(&js, &config.stream_name, &config.subject_root)
            .await
            .expect("event stream");
        let subject = S::open(&config).await;
        Self {
            events: EventStore::new(fresh_database().await),
            config,
            js,
            subject,
        }
    }

    fn start<V: View>(&self, view: V) -> Running {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_projector(
            self.config.clone(),
            self.events.pool().clone(),
            self.js.clone(),
            view,
            async {
                let _ = stopped.await;
            },
        ));
        Running { stop, task }
    }

    /// Publishes like the relay but without `Nats-Msg-Id`, so repeats reach the consumer.
    async fn publish(&self, event: &EventEnvelope) {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, event.traceparent.clone().unwrap_or_default());
        headers.insert(HEADER_STREAM_VERSION, event.stream_version.to_string());
        let subject = subject_for(
            &self.config.subject_root,
            &event.stream_id,
            &event.event_type,
            8,
        );
        self.publish_raw(subject, headers, serde_json::to_vec(event).expect("encode"))
            .await;
    }

    async fn publish_raw(&self, subject: String, headers: HeaderMap, body: Vec<u8>) {
        self.js
            .publish_with_headers(subject, headers, body.into())
            .await
            .expect("publish")
            .await
            .expect("stream ack");
    }

    /// Waits until the view's consumer has nothing pending and nothing unacknowledged.
    async fn wait_until_all_acked(&self) {
        let durable = self.subject.live().name().to_owned();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let stream = self
                .js
                .get_stream(&self.config.stream_name)
                .await
                .expect("stream");
            if let Ok(mut consumer) = stream
                .get_consumer::<jetstream::consumer::pull::Config>(&durable)
                .await
            {
                let info = consumer.info().await.expect("consumer info");
                if info.num_pending == 0 && info.num_ack_pending == 0 {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{durable}: messages left unacknowledged"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Each order's state folded from the event log with the view's own `apply` (`None`: the
    /// order has no events or they do not apply), and the messages the fold decided.
    async fn fold(&self, orders: &[OrderId]) -> (Vec<Option<StateOf<S>>>, BTreeSet<String>) {
        let view = self.subject.live();
        let mut states = Vec::new();
        let mut messages = BTreeSet::new();
        for order in orders {
            let log = self
                .events
                .read_stream(&order.stream_id(), 1, None)
                .await
                .expect("read stream");
            let mut state: Option<StateOf<S>> = None;
            for event in &log {
                match view.apply(state.as_ref(), event) {
                    Ok(next) => state = Some(next),
                    Err(err) => panic!("{} does not fold: {err}", order),
                }
            }
            if let Some(state) = &state {
                messages.extend(S::messages(state));
            }
            states.push(state.map(S::settled));
        }
        (states, messages)
    }

    /// What `view`'s store holds for each order.
    async fn stored(&self, view: &S::View, orders: &[OrderId]) -> Vec<Option<StateOf<S>>> {
        let ids: Vec<String> = orders.iter().map(OrderId::stream_id).collect();
        view.load(&ids)
            .await
            .expect("load states")
            .into_iter()
            .map(|s| s.map(S::settled))
            .collect()
    }

    async fn cleanup(self) {
        let _ = self.js.delete_stream(&self.config.stream_name).await;
        let _ = self
            .js
            .delete_stream(dead_letter_stream_name(&self.config.stream_name))
            .await;
        self.subject.cleanup().await;
    }
}

/// An order's lifecycle as the log holds it: `placed → risk accepted → reserved → authorized
/// → confirmed → captured` for even `n`, `placed → risk accepted → reservation failed →
/// cancelled` for odd `n`.
fn lifecycle(order: OrderId, n: usize) -> Vec<EventEnvelope> {
    if n.is_multiple_of(2) {
        vec![
            placed_event_with_phone(order, 1),
            risk_assessed(order, 2, RiskDecision::Accept),
            reserved_event(order, 3),
            authorized_event(order, 4),
            confirmed_event(order, 5),
            captured_event(order, 6, 3240),
        ]
    } else {
        vec![
            placed_event(order, 1),
            risk_assessed(order, 2, RiskDecision::Accept),
            reservation_failed(order, 3),
            cancelled_event(order, 4),
        ]
    }
}

/// What the broker delivers of an order's `log`: per `n`, reversed with a repeat of the first
/// event, only every other version (the rest must come from the event store) and the last one
/// twice, or everything twice. The last version is always delivered.
fn delivered(log: &[EventEnvelope], n: usize) -> Vec<EventEnvelope> {
    match n % 3 {
        0 => {
            let mut out: Vec<EventEnvelope> = log.iter().rev().cloned().collect();
            out.push(log[0].clone());
            out
        }
        1 => {
            let last = log.len() - 1;
            let mut out: Vec<EventEnvelope> = log
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == 1 || *i == last)
                .map(|(_, e)| e.clone())
                .collect();
            out.push(log[last].clone());
            out
        }
        _ => log.iter().flat_map(|e| [e.clone(), e.clone()]).collect(),
    }
}

/// `count` orders seeded into the log; returns them and what the broker delivers of them,
/// interleaved across orders.
async fn scenario<S: Subject>(h: &Harness<S>, count: usize) -> (Vec<OrderId>, Vec<EventEnvelope>) {
    let orders: Vec<OrderId> = (0..count).map(|_| OrderId::new_v7()).collect();
    let mut per_order = Vec::new();
    let mut log = Vec::new();
    for (n, order) in orders.iter().enumerate() {
        let events = lifecycle(*order, n);
        per_order.push(delivered(&events, n));
        log.extend(events);
    }
    seed(h.events.pool(), &log).await;
    let mut interleaved = Vec::new();
    let longest = per_order.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for events in &per_order {
            if let Some(event) = events.get(i) {
                interleaved.push(event.clone());
            }
        }
    }
    (orders, interleaved)
}

/// Duplicates, gaps (versions never delivered) and out-of-order delivery end in exactly the
/// fold of the log, and every message the fold decides is handed out.
pub(crate) async fn duplicates_gaps_and_reordering_end_in_the_fold<S: Subject>()
where
    StateOf<S>: PartialEq + Debug,
{
    let h = Harness::<S>::new().await;
    let (orders, delivered) = scenario(&h, 6).await;
    for event in &delivered {
        h.publish(event).await;
    }
    let running = h.start(h.subject.live());
    h.wait_until_all_acked().await;

    let (folded, messages) = h.fold(&orders).await;
    assert!(folded.iter().all(Option::is_some));
    assert_eq!(h.stored(&h.subject.live(), &orders).await, folded);
    let sent: BTreeSet<String> = h.subject.deliveries().into_iter().collect();
    assert_eq!(sent, messages, "every decided message handed out");

    // A late redelivery of an old event changes nothing.
    h.publish(&delivered[0]).await;
    h.wait_until_all_acked().await;
    assert_eq!(h.stored(&h.subject.live(), &orders).await, folded);

    running.stop().await;
    h.cleanup().await;
}

/// A message that does not decode, and an event that does not apply, are dead-lettered on the
/// view's subject after their deliveries; the healthy order behind them applies.
pub(crate) async fn poison_is_dead_lettered_and_the_rest_applies<S: Subject>()
where
    StateOf<S>: PartialEq + Debug,
{
    let h = Harness::<S>::new().await;
    let poisoned = OrderId::new_v7();
    let healthy = OrderId::new_v7();
    let mut bad = placed_event(poisoned, 1);
    bad.payload =
        serde_json::json!({"order_id": poisoned.to_string(), "lines": "not a list"}).into();
    let good = lifecycle(healthy, 1);
    seed(h.events.pool(), &good).await;

    h.publish(&bad).await;
    h.publish_raw(
        format!("{}.v1.0.OrderPlaced", h.config.subject_root),
        HeaderMap::new(),
        b"{not json".to_vec(),
    )
    .await;
    h.publish(&good[0]).await;
    let running = h.start(h.subject.live());
    h.publish(good.last().expect("events")).await;
    h.wait_until_all_acked().await;

    let dead_letters = dead_letter_stream_name(&h.config.stream_name);
    let mut dlq = h.js.get_stream(&dead_letters).await.expect("dead letters");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while dlq.info().await.expect("dlq info").state.messages < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "poison not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let view = h.subject.live();
    let subject =
        waybill_schemas::subject::dead_letter_subject(&h.config.subject_root, view.name());
    for seq in 1..=2 {
        let message = dlq.get_raw_message(seq).await.expect("dead letter");
        assert_eq!(message.subject.as_str(), subject);
        assert!(message.headers.get(crate::runtime::HEADER_ERROR).is_some());
    }
    let (folded, _) = h.fold(&[healthy]).await;
    assert_eq!(h.stored(&view, &[healthy]).await, folded);
    assert_eq!(h.stored(&view, &[poisoned]).await, vec![None]);

    running.stop().await;
    h.cleanup().await;
}

/// A view whose `store` writes and then never returns: the projector dies (is aborted) after
/// its write and before any ack, as under kill -9 mid-batch.
#[derive(Clone)]
struct AbandonAfterStore<V> {
    inner: V,
    stored: Arc<Notify>,
}

impl<V: View + Clone> View for AbandonAfterStore<V> {
    type State = V::State;
    type Error = V::Error;

    fn name(&self) -> &str {
        self.inner.name()
    }
    fn handles(&self, stream_id: &str) -> bool {
        self.inner.handles(stream_id)
    }
    fn version_of(state: &Self::State) -> i64 {
        V::version_of(state)
    }
    fn load(
        &self,
        stream_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Self::State>>, Self::Error>> + Send {
        self.inner.load(stream_ids)
    }
    fn apply(
        &self,
        state: Option<&Self::State>,
        event: &EventEnvelope,
    ) -> Result<Self::State, Self::Error> {
        self.inner.apply(state, event)
    }
    async fn store(&self, writes: Vec<ViewWrite<Self::State>>) -> Result<Vec<bool>, Self::Error> {
        let written = self.inner.store(writes).await;
        self.stored.notify_one();
        let () = std::future::pending().await;
        written
    }
    fn scrubs_on_erasure(&self) -> bool {
        self.inner.scrubs_on_erasure()
    }

    fn forget(
        &self,
        stream_ids: &[String],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.forget(stream_ids)
    }

    fn purge(&self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.purge()
    }

    fn commit_interval(&self) -> Option<Duration> {
        self.inner.commit_interval()
    }
    fn confirm_stored(&self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.confirm_stored()
    }
    fn commit(&self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.commit()
    }
}

/// The projector is killed after a batch's store write and before its ack; a restarted
/// projector gets the batch again and ends in the fold, every message handed out.
pub(crate) async fn a_batch_abandoned_before_its_ack_is_applied_once_after_a_restart<S: Subject>()
where
    StateOf<S>: PartialEq + Debug,
{
    let h = Harness::<S>::new().await;
    let (orders, delivered) = scenario(&h, 4).await;
    let (first, rest) = delivered.split_at(delivered.len() / 2);
    for event in first {
        h.publish(event).await;
    }
    let stored = Arc::new(Notify::new());
    let doomed = h.start(AbandonAfterStore {
        inner: h.subject.live(),
        stored: stored.clone(),
    });
    tokio::time::timeout(DEADLINE, stored.notified())
        .await
        .expect("the doomed projector stored a batch");
    doomed.task.abort();
    let _ = doomed.task.await;

    for event in rest {
        h.publish(event).await;
    }
    let running = h.start(h.subject.live());
    h.wait_until_all_acked().await;

    let (folded, messages) = h.fold(&orders).await;
    assert_eq!(h.stored(&h.subject.live(), &orders).await, folded);
    let sent: BTreeSet<String> = h.subject.deliveries().into_iter().collect();
    assert_eq!(sent, messages, "no message lost to the kill");

    running.stop().await;
    h.cleanup().await;
}

/// Every message is delivered and handed back unprocessed more often than `max_deliver` (what
/// partition moves, killed instances and batches slower than `ack_wait` do to messages in
/// hand) before the projector sees it; the view still ends in the fold, nothing
/// dead-lettered. A consumer made by an earlier version with a server-side limit gets it lifted.
pub(crate) async fn messages_handed_back_more_often_than_max_deliver_are_still_applied<S: Subject>()
where
    StateOf<S>: PartialEq + Debug,
{
    use futures::StreamExt;

    let h = Harness::<S>::new().await;
    let (orders, delivered) = scenario(&h, 3).await;
    let durable = h.subject.live().name().to_owned();
    let stream =
        h.js.get_stream(&h.config.stream_name)
            .await
            .expect("stream");
    // As an earlier version made it: the server gives up after `max_deliver` deliveries.
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some(durable.clone()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_deliver: h.config.max_deliver,
            filter_subject: format!("{}.v1.>", h.config.subject_root),
            ..Default::default()
        })
        .await
        .expect("a limited consumer");
    for event in &delivered {
        h.publish(event).await;
    }
    let consumer = crate::runtime::consumer::ensure_consumer(
        &h.js,
        &h.config,
        &durable,
        &format!("{}.v1.>", h.config.subject_root),
    )
    .await
    .expect("the consumer, its limit lifted");
    assert_eq!(consumer.cached_info().config.max_deliver, -1);
    // Each message handed back unprocessed on more deliveries than `max_deliver`.
    let mut handed_back: std::collections::HashMap<u64, i64> = Default::default();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while handed_back.len() < delivered.len()
        || handed_back.values().any(|&n| n <= h.config.max_deliver)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "messages stopped coming back: {handed_back:?}"
        );
        let mut batch = consumer
            .fetch()
            .max_messages(delivered.len())
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .expect("fetch");
        while let Some(message) = batch.next().await {
            let message = message.expect("message");
            let sequence = message.info().expect("a JetStream message").stream_sequence;
            message
                .ack_with(jetstream::AckKind::Nak(None))
                .await
                .expect("hand back");
            *handed_back.entry(sequence).or_default() += 1;
        }
    }

    let running = h.start(h.subject.live());
    h.wait_until_all_acked().await;
    let (folded, _) = h.fold(&orders).await;
    assert_eq!(h.stored(&h.subject.live(), &orders).await, folded);
    let dead =
        h.js.get_stream(crate::runtime::consumer::dead_letter_stream_name(
            &h.config.stream_name,
        ))
        .await
        .expect("dead-letter stream")
        .info()
        .await
        .expect("dead-letter info")
        .state
        .messages;
    assert_eq!(dead, 0, "nothing dead-lettered");
    running.stop().await;
    h.cleanup().await;
}

/// After the live projector caught up, replaying the log into a new generation gives the same
/// states as the live view and the fold, and hands nothing to the outside world.
pub(crate) async fn a_rebuild_into_a_new_generation_equals_the_live_fold_and_sends_nothing<
    S: Subject,
>()
where
    StateOf<S>: PartialEq + Debug,
{
    let h = Harness::<S>::new().await;
    let (orders, delivered) = scenario(&h, 6).await;
    for event in &delivered {
        h.publish(event).await;
    }
    let running = h.start(h.subject.live());
    h.wait_until_all_acked().await;
    running.stop().await;

    let sent_before = h.subject.deliveries().len();
    let green = h.subject.green().await;
    let mut pages = 0;
    let report = replay_log(&h.events, &green, None, h.config.rebuild_page, |_| {
        pages += 1
    })
    .await
    .expect("replay");
    assert_eq!(report.streams, orders.len() as u64);
    assert_eq!(report.unappliable, 0);
    assert!(pages > 1, "the log is read in pages");

    let (folded, _) = h.fold(&orders).await;
    let live = h.stored(&h.subject.live(), &orders).await;
    assert_eq!(live, folded);
    assert_eq!(h.stored(&green, &orders).await, live);
    assert_eq!(
        h.subject.deliveries().len(),
        sent_before,
        "a rebuild sends nothing"
    );

    h.cleanup().await;
}

//! The customer tracking page, server-rendered:
//! - `GET /track/{id}?token=` the page of one order (the link in the confirmation email);
//!   `consistency_token` (or `min_version`) from a command response waits, bounded, for the view
//!   to show that change (read-your-writes) and says so on the page when it is still on its way;
//! - `GET /track/{id}/events?token=&after=` server-sent events: a `view` event carrying the new
//!   `<main>` HTML (event id = view version) whenever the order moves past `after` (or the
//!   `Last-Event-ID` a reconnecting browser sends);
//! - `GET /track` a form, `POST /track` order number + email or postcode → 303 to the signed link.
//!
//! A wrong token, an unknown order and a failed lookup all get the same friendly 404 page. Every
//! route is rate limited per client address; the lookup form has its own, stricter bucket.

pub mod render;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use utoipa::IntoParams;
use waybill_schemas::access::{lookup_digest, LookupProof};
use waybill_schemas::OrderId;
use waybill_write_side::command_api::problem::Path;

use crate::http::AppState;
use crate::problem::Problem;
use crate::rate_limit::retry_after_secs;
use crate::tracking::{
    check_rate, read_tracking, read_view, requested_version, ClientIp, TrackingParams,
};

/// How long one event stream stays open; the browser then reconnects with `Last-Event-ID`.
const STREAM_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Query string of the live-update stream.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// The order's tracking token.
    pub token: Option<String>,
    /// The view version the page shows; events start after it.
    pub after: Option<i64>,
}

/// The lookup form's fields.
#[derive(Debug, Deserialize)]
pub struct LookupForm {
    pub order_number: String,
    /// An email address (contains `@`) or a postcode.
    pub contact: String,
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The token is in the URL: never hand it to another site.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// The pages' policy: their own stylesheet, script and event stream, nothing inline, nothing
/// from elsewhere, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
     script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(get, path = "/track/assets/page.css", tag = "tracking page",
    responses((status = 200, description = "The pages' stylesheet", content_type = "text/css")))]
pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", render::STYLESHEET)
}

#[utoipa::path(get, path = "/track/assets/page.js", tag = "tracking page",
    responses((status = 200, description = "The tracking page's live-update script", content_type = "text/javascript")))]
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", render::SCRIPT)
}

fn not_found() -> Response {
    html(StatusCode::NOT_FOUND, render::not_found_page())
}

/// What failed lookups of one order number are counted under: a digest of the number,
/// normalised as the lookup index normalises it (never the number itself in a Redis key).
fn order_number_subject(order_number: &str) -> Option<String> {
    use sha2::{Digest, Sha256};
    let number = order_number.trim().to_uppercase();
    (!number.is_empty()).then(|| hex::encode(&Sha256::digest(number.as_bytes())[..16]))
}

fn rate_limited(problem: Problem) -> Response {
    let retry = match problem {
        Problem::RateLimited { retry_after_secs } => retry_after_secs,
        _ => 1,
    };
    let mut response = html(
        StatusCode::TOO_MANY_REQUESTS,
        render::rate_limited_page(retry),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry));
    response
}

/// The order `raw_id` names if `token` is its tracking token; `None` for anything else.
fn authorized_order(state: &AppState, raw_id: &str, token: Option<&str>) -> Option<OrderId> {
    let order = OrderId::parse(raw_id).ok()?;
    state
        .config
        .tracking
        .verify(order, token?, chrono::Utc::now())
        .then_some(order)
}

#[utoipa::path(get, path = "/track/{id}", tag = "tracking page",
    params(("id" = String, Path, description = "Order id (UUID)"), TrackingParams),
    responses(
        (status = 200, description = "The tracking page (HTML)", content_type = "text/html"),
        (status = 404, description = "Friendly page: no such order, or the token does not belong to it (indistinguishable)", content_type = "text/html"),
        (status = 429, description = "Rate limited", content_type = "text/html"),
        (status = 503, description = "Redis (the order views) cannot be read right now (`unavailable`), or they lost their data and are being filled again from the event log (`view-catching-up`); retry after the `Retry-After` seconds", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(name = "query.tracking_page", skip_all, fields(order_id = %raw_id))]
pub async fn tracking_page(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    params: Result<Query<TrackingParams>, QueryRejection>,
    ClientIp(client_ip): ClientIp,
) -> Response {
    if let Err(problem) = check_rate(&state, client_ip).await {
        return rate_limited(problem);
    }
    let Ok(Query(params)) = params else {
        return not_found();
    };
    let Some(order) = authorized_order(&state, &raw_id, params.token.as_deref()) else {
        return not_found();
    };
    // A malformed consistency token is ignored here: the page still shows the order.
    let requested = requested_version(order, &params).unwrap_or(None);
    let mut redis = state.redis.clone();
    let view = match read_tracking(&state, &mut redis, order, requested).await {
        Ok(Some(view)) => view,
        Ok(None) => return not_found(),
        Err(problem) => return problem.into_response(),
    };
    let stale = requested.is_some_and(|wanted| view.version < wanted);
    metrics::counter!("waybill_query_tracking_page_total").increment(1);
    // The stream opens with the token the visitor came with: it expires with their link.
    let events_url = format!(
        "/track/{order}/events?token={}",
        params.token.as_deref().unwrap_or_default()
    );
    html(
        StatusCode::OK,
        render::tracking_page(&view, &events_url, stale),
    )
}

#[utoipa::path(get, path = "/track/{id}/events", tag = "tracking page",
    params(("id" = String, Path, description = "Order id (UUID)"), EventsParams),
    responses(
        (status = 200, description = "text/event-stream: `view` events (id = view version, data = the page's `<main>` HTML) whenever the order moves", content_type = "text/event-stream"),
        (status = 404, description = "No such order, or the token does not belong to it", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Redis (the order views) cannot be read right now (`unavailable`), or they lost their data and are being filled again from the event log (`view-catching-up`); retry after the `Retry-After` seconds", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(name = "query.tracking_events", skip_all, fields(order_id = %raw_id))]
pub async fn tracking_events(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    params: Result<Query<EventsParams>, QueryRejection>,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    check_rate(&state, client_ip).await?;
    let Query(params) = params.map_err(|_| Problem::BadParameter {
        field: "after",
        detail: "must be a view version (an integer)".into(),
    })?;
    let order =
        authorized_order(&state, &raw_id, params.token.as_deref()).ok_or(Problem::OrderNotFound)?;
    let mut redis = state.redis.clone();
    let key = state.config.tracking_key(order.as_uuid());
    if read_view(&mut redis, &key).await?.is_none()
        && crate::catching_up::missing_view(&state, &key, order)
            .await?
            .is_none()
    {
        return Err(Problem::OrderNotFound);
    }
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let after = resume.or(params.after).unwrap_or(0);
    let poll = state.config.live_poll_interval;
    let opened = Instant::now();
    let ends = tokio::time::Instant::now() + STREAM_LIFETIME;
    metrics::gauge!("waybill_query_tracking_streams").increment(1.0);
    // Pushed: the stream sleeps until the change feed announces this order (one Redis
    // subscription per instance), then re-reads. Without a feed it polls.
    let watch = state
        .config
        .changes
        .as_ref()
        .map(|feed| feed.watch(&order.to_string()));
    let stream = futures::stream::unfold(
        (redis, key, after, watch, StreamGuard),
        move |(mut redis, key, mut after, mut watch, guard)| async move {
            loop {
                if opened.elapsed() >= STREAM_LIFETIME {
                    return None;
                }
                match read_view(&mut redis, &key).await {
                    Ok(Some(view)) if view.version > after => {
                        after = view.version;
                        let event = Event::default()
                            .event("view")
                            .id(view.version.to_string())
                            .data(render::tracking_main(&view, false));
                        return Some((Ok(event), (redis, key, after, watch, guard)));
                    }
                    // Errors are logged by read_view; try again after a pause.
                    Err(_) => tokio::time::sleep(poll).await,
                    Ok(_) => match &mut watch {
                        Some(watch) => {
                            let _ = tokio::time::timeout_at(ends, watch.changed()).await;
                        }
                        None => tokio::time::sleep(poll).await,
                    },
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Counts open streams down when one ends.
struct StreamGuard;

impl Drop for StreamGuard {
    fn drop(&mut self) {
        metrics::gauge!("waybill_query_tracking_streams").decrement(1.0);
    }
}

#[utoipa::path(get, path = "/track", tag = "tracking page",
    responses((status = 200, description = "The lookup form (HTML)", content_type = "text/html")))]
pub async fn lookup_form(State(state): State<AppState>, ClientIp(client_ip): ClientIp) -> Response {
    if let Err(problem) = check_rate(&state, client_ip).await {
        return rate_limited(problem);
    }
    html(StatusCode::OK, render::lookup_page(None, ""))
}

#[utoipa::path(post, path = "/track", tag = "tracking page",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "`order_number` and `contact` (email address or delivery/billing postcode)"),
    responses(
        (status = 303, description = "Found: redirect to the order's signed tracking link"),
        (status = 404, description = "No order matches (the form again, with a message)", content_type = "text/html"),
        (status = 429, description = "Too many lookups from this client, or too many failed lookups of this order number from any client", content_type = "text/html"),
        (status = 503, description = "Redis (the order views) cannot be read right now (`unavailable`), or they lost their data and are being filled again from the event log (`view-catching-up`); retry after the `Retry-After` seconds", body = waybill_write_side::command_api::Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(name = "query.tracking_lookup", skip_all)]
pub async fn lookup(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    form: Result<Form<LookupForm>, FormRejection>,
) -> Response {
    if let (Some(limiter), Some(ip)) = (&state.lookup_limiter, client_ip) {
        if let Err(wait) = limiter.take(&ip.to_string()).await {
            return rate_limited(Problem::RateLimited {
                retry_after_secs: retry_after_secs(wait),
            });
        }
    }
    let failed = |number: &str| {
        metrics::counter!("waybill_query_tracking_lookup_total", "outcome" => "not_found")
            .increment(1);
        html(
            StatusCode::NOT_FOUND,
            render::lookup_page(
                Some("We couldn't find an order with those details. Check the order number and use the email address or postcode you ordered with."),
                number,
            ),
        )
    };
    let Ok(Form(form)) = form else {
        return failed("");
    };
    // Failed guesses are counted per order number too, whoever makes them: spread over many
    // addresses they would escape the per-client limit.
    let order_limit = state
        .lookup_order_limiter
        .as_ref()
        .zip(order_number_subject(&form.order_number));
    if let Some((limiter, subject)) = &order_limit {
        if let Err(wait) = limiter.check(subject).await {
            metrics::counter!("waybill_query_tracking_lookup_total", "outcome" => "order_closed")
                .increment(1);
            return rate_limited(Problem::RateLimited {
                retry_after_secs: retry_after_secs(wait),
            });
        }
    }
    let contact = form.contact.trim();
    let proof = if contact.contains('@') {
        LookupProof::Email(contact)
    } else {
        LookupProof::Postcode(contact)
    };
    let Some(digest) = lookup_digest(&form.order_number, proof) else {
        return failed(&form.order_number);
    };
    let key = state.config.lookup_key(&digest);
    let mut redis = state.redis.clone();
    let found: Result<Option<String>, _> =
        redis::cmd("GET").arg(&key).query_async(&mut redis).await;
    let order = match found {
        Ok(Some(raw)) => OrderId::parse(&raw).ok(),
        Ok(None) => None,
        Err(error) => {
            return Problem::view_store(&error, "the tracking lookup index").into_response()
        }
    };
    let Some(order) = order else {
        // While the views are filled again after a loss, the index may not hold this order yet.
        if let Err(problem) = crate::catching_up::lists_complete(&state).await {
            return problem.into_response();
        }
        if let Some((limiter, subject)) = &order_limit {
            // Over the limit or not, this answer is the same 404; the next lookup is refused.
            let _ = limiter.take(subject).await;
        }
        return failed(&form.order_number);
    };
    metrics::counter!("waybill_query_tracking_lookup_total", "outcome" => "found").increment(1);
    let location = format!(
        "/track/{order}?token={}",
        state.config.tracking.token(order, chrono::Utc::now())
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

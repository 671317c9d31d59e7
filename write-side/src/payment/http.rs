//! The HTTP adapter of [`PaymentGateway`]: Waybill's gateway protocol over one keep-alive
//! `reqwest` client. It decides nothing; it turns the gateway's answers into outcomes and its
//! failures into [`GatewayError`]s the process manager can retry with the same key.

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::wire::{self, AmountBody, AuthorizationStatus, AuthorizeBody, Problem, IDEMPOTENCY_KEY};
use super::{
    AuthorizeOutcome, AuthorizeRequest, CaptureOutcome, CaptureRequest, GatewayError,
    PaymentGateway, RefundOutcome, RefundRequest, VoidOutcome, VoidRequest,
};

/// Idle connections kept per gateway host: enough for the process manager's concurrency.
const IDLE_CONNECTIONS: usize = 256;

/// A gateway reached over HTTP (the sandbox, or any server speaking the same protocol).
#[derive(Debug, Clone)]
pub struct HttpGateway {
    client: reqwest::Client,
    authorizations_url: String,
    captures_url: String,
    base_url: String,
    api_key: HeaderValue,
}

/// The adapter could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum HttpGatewayConfigError {
    #[error("the API key cannot be sent as an HTTP header")]
    BadApiKey,
    #[error("the HTTP client could not be built: {0}")]
    Client(#[from] reqwest::Error),
}

impl HttpGateway {
    /// `base_url` without a trailing slash (e.g. `http://127.0.0.1:7300`); every call gives up
    /// after `request_timeout` with [`GatewayError::Timeout`].
    pub fn new(
        base_url: &str,
        api_key: &str,
        request_timeout: Duration,
    ) -> Result<Self, HttpGatewayConfigError> {
        let base = base_url.trim_end_matches('/');
        let mut api_key = HeaderValue::try_from(format!("Bearer {api_key}"))
            .map_err(|_| HttpGatewayConfigError::BadApiKey)?;
        api_key.set_sensitive(true);
        let client = reqwest::Client::builder()
            .timeout(request_timeout)
            .pool_max_idle_per_host(IDLE_CONNECTIONS)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            client,
            authorizations_url: format!("{base}/v1/authorizations"),
            captures_url: format!("{base}/v1/captures"),
            base_url: base.to_owned(),
            api_key,
        })
    }

    /// Sends evidence for a dispute, once per `idempotency_key`. `Ok(Err((code, message)))` when
    /// the gateway refuses it (dispute decided, deadline passed, unknown dispute).
    pub async fn submit_dispute_evidence(
        &self,
        dispute_id: &str,
        idempotency_key: &str,
        text: &str,
    ) -> Result<Result<(), (String, String)>, GatewayError> {
        let url = format!("{}/v1/disputes/{dispute_id}/evidence", self.base_url);
        let body = encode(&serde_json::json!({ "text": text }))?;
        let (status, answer) = self.post(&url, idempotency_key, body).await?;
        if status.is_success() {
            return Ok(Ok(()));
        }
        refusal(status, &answer).map(Err)
    }

    /// The gateway's settlement report for `date` (CSV bytes, as sent).
    pub async fn settlement_report(&self, date: chrono::NaiveDate) -> Result<Bytes, GatewayError> {
        let url = format!("{}/v1/settlement-reports?date={date}", self.base_url);
        let response = self
            .client
            .get(url)
            .header(AUTHORIZATION, self.api_key.clone())
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport_error)?;
        if status.is_success() {
            return Ok(body);
        }
        let (code, message) = refusal(status, &body)?;
        Err(GatewayError::Protocol(format!(
            "{status} {code}: {message}"
        )))
    }

    /// The authorization as the gateway sees it now: for reconciling after a lost webhook or a
    /// restart (not part of [`PaymentGateway`], which only moves money).
    pub async fn authorization(
        &self,
        authorization_id: &str,
    ) -> Result<wire::Authorization, GatewayError> {
        let url = format!("{}/{authorization_id}", self.authorizations_url);
        let response = self
            .client
            .get(url)
            .header(AUTHORIZATION, self.api_key.clone())
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport_error)?;
        if status.is_success() {
            return decode(&body);
        }
        let (code, message) = refusal(status, &body)?;
        Err(GatewayError::Protocol(format!(
            "{status} {code}: {message}"
        )))
    }

    /// POSTs `body` with the key and the idempotency key; returns the status and raw body.
    async fn post(
        &self,
        url: &str,
        idempotency_key: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), GatewayError> {
        let key = HeaderValue::from_str(idempotency_key).map_err(|_| {
            GatewayError::Protocol("the idempotency key is not a valid header value".into())
        })?;
        let response = self
            .client
            .post(url)
            .header(AUTHORIZATION, self.api_key.clone())
            .header(IDEMPOTENCY_KEY, key)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport_error)?;
        Ok((status, bytes))
    }
}

fn transport_error(error: reqwest::Error) -> GatewayError {
    if error.is_timeout() {
        GatewayError::Timeout
    } else {
        GatewayError::Unavailable(error.to_string())
    }
}

fn encode<T: serde::Serialize>(body: &T) -> Result<Vec<u8>, GatewayError> {
    serde_json::to_vec(body).map_err(|e| GatewayError::Protocol(e.to_string()))
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, GatewayError> {
    serde_json::from_slice(body)
        .map_err(|e| GatewayError::Protocol(format!("unexpected answer body: {e}")))
}

/// A non-2xx answer: a refusal `(code, message)` the caller turns into its outcome, or an error.
fn refusal(status: StatusCode, body: &[u8]) -> Result<(String, String), GatewayError> {
    let problem: Option<Problem> = serde_json::from_slice(body).ok();
    let (code, detail) = problem
        .map(|p| (p.code, p.detail))
        .unwrap_or_else(|| (String::new(), String::from_utf8_lossy(body).into_owned()));
    match status {
        StatusCode::CONFLICT if code == "request_in_progress" => Err(GatewayError::InProgress),
        StatusCode::PAYMENT_REQUIRED | StatusCode::NOT_FOUND | StatusCode::CONFLICT => {
            Ok((code, detail))
        }
        status if status.is_server_error() => Err(GatewayError::Unavailable(format!(
            "{status} {code}: {detail}"
        ))),
        status => Err(GatewayError::Protocol(format!("{status} {code}: {detail}"))),
    }
}

fn authorize_outcome(body: &[u8]) -> Result<AuthorizeOutcome, GatewayError> {
    let authorization: wire::Authorization = decode(body)?;
    let missing = |what: &str| {
        GatewayError::Protocol(format!(
            "authorization {} is {:?} without {what}",
            authorization.id, authorization.status
        ))
    };
    match authorization.status {
        AuthorizationStatus::Authorized => Ok(AuthorizeOutcome::Authorized {
            expires_at: authorization
                .expires_at
                .ok_or_else(|| missing("expires_at"))?,
            authorization_id: authorization.id,
            amount: authorization.amount,
        }),
        AuthorizationStatus::ChallengeRequired => Ok(AuthorizeOutcome::ChallengeRequired {
            expires_at: authorization
                .expires_at
                .ok_or_else(|| missing("expires_at"))?,
            challenge_url: authorization
                .challenge_url
                .clone()
                .ok_or_else(|| missing("challenge_url"))?,
            authorization_id: authorization.id,
        }),
        AuthorizationStatus::Declined => Ok(AuthorizeOutcome::Declined {
            authorization_id: Some(authorization.id),
            code: authorization.decline_code.unwrap_or_default(),
            message: authorization.decline_message.unwrap_or_default(),
        }),
        AuthorizationStatus::Voided | AuthorizationStatus::Expired => Err(GatewayError::Protocol(
            format!("a new authorization answered {:?}", authorization.status),
        )),
    }
}

impl PaymentGateway for HttpGateway {
    fn authorize(
        &self,
        request: AuthorizeRequest,
    ) -> BoxFuture<'_, Result<AuthorizeOutcome, GatewayError>> {
        let span = tracing::debug_span!("gateway_authorize", order_id = %request.order_id);
        async move {
            let body = encode(&AuthorizeBody {
                order_id: request.order_id,
                amount: request.amount,
                token: &request.token,
            })?;
            let (status, answer) = self
                .post(&self.authorizations_url, &request.idempotency_key, body)
                .await?;
            if status.is_success() {
                return authorize_outcome(&answer);
            }
            let (code, message) = refusal(status, &answer)?;
            Ok(AuthorizeOutcome::Declined {
                authorization_id: None,
                code,
                message,
            })
        }
        .instrument(span)
        .boxed()
    }

    fn capture(
        &self,
        request: CaptureRequest,
    ) -> BoxFuture<'_, Result<CaptureOutcome, GatewayError>> {
        let span = tracing::debug_span!(
            "gateway_capture",
            authorization_id = %request.authorization_id
        );
        async move {
            let url = format!(
                "{}/{}/capture",
                self.authorizations_url, request.authorization_id
            );
            let body = encode(&AmountBody {
                amount: request.amount,
            })?;
            let (status, answer) = self.post(&url, &request.idempotency_key, body).await?;
            if status.is_success() {
                let capture: wire::Capture = decode(&answer)?;
                return Ok(CaptureOutcome::Captured {
                    capture_id: capture.id,
                    amount: capture.amount,
                });
            }
            let (code, message) = refusal(status, &answer)?;
            Ok(CaptureOutcome::Refused { code, message })
        }
        .instrument(span)
        .boxed()
    }

    fn void(&self, request: VoidRequest) -> BoxFuture<'_, Result<VoidOutcome, GatewayError>> {
        let span = tracing::debug_span!(
            "gateway_void",
            authorization_id = %request.authorization_id
        );
        async move {
            let url = format!(
                "{}/{}/void",
                self.authorizations_url, request.authorization_id
            );
            let (status, answer) = self
                .post(&url, &request.idempotency_key, b"{}".to_vec())
                .await?;
            if status.is_success() {
                return Ok(VoidOutcome::Voided);
            }
            let (code, message) = refusal(status, &answer)?;
            Ok(VoidOutcome::Refused { code, message })
        }
        .instrument(span)
        .boxed()
    }

    fn refund(&self, request: RefundRequest) -> BoxFuture<'_, Result<RefundOutcome, GatewayError>> {
        let span = tracing::debug_span!("gateway_refund", capture_id = %request.capture_id);
        async move {
            let url = format!("{}/{}/refunds", self.captures_url, request.capture_id);
            let body = encode(&AmountBody {
                amount: request.amount,
            })?;
            let (status, answer) = self.post(&url, &request.idempotency_key, body).await?;
            if status.is_success() {
                let refund: wire::Refund = decode(&answer)?;
                return Ok(RefundOutcome::Refunded {
                    refund_id: refund.id,
                    amount: refund.amount,
                });
            }
            let (code, message) = refusal(status, &answer)?;
            Ok(RefundOutcome::Refused { code, message })
        }
        .instrument(span)
        .boxed()
    }
}

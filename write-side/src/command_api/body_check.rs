//! The layer in front of every endpoint of the command API that refuses a JSON body Waybill
//! must never read (the rules are [`waybill_schemas::json_body`]'s):
//! - an object naming the same key twice (`{"currency":"USD","currency":"EUR"}`): 400
//!   `duplicate-key`, the key's path (`lines[0].sku`) in `field`;
//! - a string holding a control character other than tab, LF and CR (a NUL byte cannot even
//!   be stored in Postgres): 422 `validation-failed` naming the field.
//!
//! Commands, webhooks and inventory requests all pass through it, so an endpoint added later
//! is covered without a line of its own. Every body is looked at whatever its `Content-Type`
//! says (webhook senders are not asked for one, so a label is no reason to skip the check);
//! what does not parse as JSON at all is left to the endpoint, which answers in its own words
//! (malformed JSON, a bad signature, an unsupported media type).

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use waybill_schemas::json_body::{check, JsonBodyError};

use super::problem::{Problem, ProblemType};

/// Reads the body (at most `limit` bytes, the router's body limit), refuses it when it breaks
/// a rule, and otherwise hands the same bytes on.
pub(super) async fn refuse_unreadable_json(
    State(limit): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    // The only way reading fails, short of the client going away, is a body over the limit.
    let Ok(bytes) = to_bytes(body, limit).await else {
        return Problem::payload_too_large(limit).into_response();
    };
    match check(&bytes) {
        Ok(()) | Err(JsonBodyError::Syntax(_)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(refused) => Problem::from(refused).into_response(),
    }
}

impl From<JsonBodyError> for Problem {
    fn from(error: JsonBodyError) -> Self {
        match &error {
            JsonBodyError::DuplicateKey { path } => {
                Problem::new(ProblemType::DuplicateKey, error.to_string()).with_field(path)
            }
            JsonBodyError::ControlCharacter { path, code } => Problem::field(
                path,
                format!("must not contain control characters (U+{code:04X})"),
            ),
            JsonBodyError::Syntax(_) => Problem::malformed_json(error.to_string()),
        }
    }
}

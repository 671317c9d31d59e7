//! The 3-D Secure challenge page: what the customer is redirected to. Two buttons, Pass and
//! Fail, post a plain HTML form back to the same URL, so a person in the demo can click through
//! without any script.

use axum::http::StatusCode;
use axum::response::Html;

use crate::payment::wire::{Authorization, AuthorizationStatus};

const STYLE: &str = "body{font-family:sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}\
    .banner{background:#fff3cd;border:1px solid #e0c36a;padding:.5rem;font-size:.9rem}\
    button{font-size:1.1rem;padding:.5rem 1.5rem;margin-right:1rem}.note{color:#a33}";

/// The page for `authorization`, with `note` (e.g. why a click was refused) when given.
pub fn page(authorization: &Authorization, note: Option<&str>) -> (StatusCode, Html<String>) {
    let body = match authorization.status {
        AuthorizationStatus::ChallengeRequired => format!(
            "<p>Your bank asks you to confirm this payment.</p>\
             <form method=\"post\">\
             <button name=\"result\" value=\"pass\">Pass</button>\
             <button name=\"result\" value=\"fail\">Fail</button>\
             </form>\
             <p>This challenge expires at {}.</p>",
            authorization
                .expires_at
                .map(|at| at.to_rfc3339())
                .unwrap_or_default()
        ),
        AuthorizationStatus::Authorized | AuthorizationStatus::Expired => {
            "<p>Authentication passed. You can close this page.</p>".to_owned()
        }
        AuthorizationStatus::Declined => format!(
            "<p>Authentication failed ({}). You can close this page.</p>",
            escape(authorization.decline_code.as_deref().unwrap_or("declined"))
        ),
        AuthorizationStatus::Voided => "<p>This payment was cancelled.</p>".to_owned(),
    };
    let note = note
        .map(|note| format!("<p class=\"note\">{}</p>", escape(note)))
        .unwrap_or_default();
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>3-D Secure</title>\
         <style>{STYLE}</style></head><body>\
         <p class=\"banner\">Waybill sandbox gateway: a simulation. No money moves.</p>\
         <h1>Confirm your payment</h1>\
         <p>Order {} &middot; {}</p>{note}{body}</body></html>",
        authorization.order_id, authorization.amount
    );
    (StatusCode::OK, Html(html))
}

/// The page for an id the sandbox does not know.
pub fn not_found() -> (StatusCode, Html<String>) {
    (
        StatusCode::NOT_FOUND,
        Html("<!doctype html><p>No such challenge.</p>".to_owned()),
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

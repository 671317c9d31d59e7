//! The frame every screen shares: one HTML document with a skip link, a header with the
//! navigation for the signed-in role, the signed-in person and a sign-out button, then `<main>`.
//! Templates are maud (escaping by default, checked at compile time); the stylesheet is a served
//! file so the Content-Security-Policy allows `'self'` only and nothing inline.
//!
//! A new screen adds one [`NavItem`] to [`NAV`] and builds its page with [`page`].

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use waybill_schemas::api_keys::Role;

use super::session::Session;

/// The screens' stylesheet (responsive: laptop and phone), served at [`STYLESHEET_PATH`].
pub const STYLESHEET: &str = include_str!("assets/screens.css");
pub const STYLESHEET_PATH: &str = "/console/assets/screens.css";

/// The screens' policy: own stylesheet only, no script, forms only to this site, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
     img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// One entry of the navigation, shown to the roles that may open it.
pub struct NavItem {
    pub path: &'static str,
    pub label: &'static str,
    pub roles: &'static [Role],
}

/// Every screen, in navigation order.
pub const NAV: &[NavItem] = &[
    NavItem {
        path: "/console",
        label: "Orders",
        roles: super::console::ROLES,
    },
    NavItem {
        path: super::desk::PATH,
        label: "Desk",
        roles: super::desk::ROLES,
    },
    NavItem {
        path: "/finance",
        label: "Finance",
        roles: super::finance::ROLES,
    },
    NavItem {
        path: super::ops::PATH,
        label: "Operations",
        roles: super::ops::ROLES,
    },
];

/// Where a role lands after signing in: the first screen it may open.
pub fn home_for(role: Role) -> &'static str {
    NAV.iter()
        .find(|item| item.roles.contains(&role))
        .map_or("/console", |item| item.path)
}

/// An HTML response with the screens' security headers; never cached (staff data).
pub fn html_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn document(title: &str, header_content: Markup, main: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) " · Waybill" }
                link rel="stylesheet" href=(STYLESHEET_PATH);
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" { (header_content) }
                main id="main" tabindex="-1" { (main) }
            }
        }
    }
    .into_string()
}

/// A page for someone not signed in (sign-in, errors).
pub fn bare_page(title: &str, main: Markup) -> String {
    document(title, html! { span class="brand" { "Waybill" } }, main)
}

/// A hidden field carrying the session's CSRF token: every form of a screen includes it.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A screen for a signed-in person: navigation for their role, `active` marks the current one.
pub fn page(session: &Session, title: &str, active: &str, main: Markup) -> Response {
    let role = session.role();
    let header_content = html! {
        span class="brand" { "Waybill" }
        nav aria-label="Screens" {
            ul {
                @for item in NAV.iter().filter(|i| i.roles.contains(&role)) {
                    li {
                        a href=(item.path) aria-current=[(item.path == active).then_some("page")] {
                            (item.label)
                        }
                    }
                }
            }
        }
        div class="who" {
            span { (session.principal.client_id) " · " (role) }
            form method="post" action="/console/sign-out" {
                (csrf_field(session))
                button type="submit" class="link" { "Sign out" }
            }
        }
    };
    html_response(StatusCode::OK, document(title, header_content, main))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_lands_on_a_screen_it_may_open() {
        assert_eq!(home_for(Role::Agent), "/console");
        assert_eq!(home_for(Role::Finance), "/finance");

        assert_eq!(home_for(Role::Admin), "/console");
    }

    #[test]
    fn markup_in_a_title_is_escaped() {
        let page = bare_page("<script>x</script>", html! { p { "<b>" } });
        assert!(!page.contains("<script>x"));
        assert!(page.contains("&lt;script&gt;x"));
        assert!(page.contains("&lt;b&gt;"));
    }
}

//! A staff member's browser without the browser: signs in to the staff screens over HTTP,
//! keeps the session cookie, reads pages and posts their forms with the CSRF token the page
//! carries. The access-control tests use it to try every page and action as every kind of
//! caller; the Chromium tests ([`crate::browser`]) do the same things with a real browser.

use reqwest::header::{HeaderMap, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::redirect::Policy;

/// One `Set-Cookie` of a response, taken apart.
#[derive(Debug, Clone)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    /// Attributes as written (`HttpOnly`, `SameSite=Strict`, `Max-Age=28800`, ...).
    pub attributes: Vec<String>,
}

impl SetCookie {
    pub fn has(&self, attribute: &str) -> bool {
        self.attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attribute))
    }

    /// The value of attribute `name` (`Max-Age`, `SameSite`, `Path`).
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find_map(|a| {
            let (n, v) = a.split_once('=')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
}

/// Every `Set-Cookie` of `headers`.
pub fn set_cookies(headers: &HeaderMap) -> Vec<SetCookie> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|raw| {
            let mut parts = raw.split(';').map(str::trim);
            let (name, value) = parts.next()?.split_once('=')?;
            Some(SetCookie {
                name: name.to_owned(),
                value: value.to_owned(),
                attributes: parts.map(str::to_owned).collect(),
            })
        })
        .collect()
}

/// One answer of a screen: status, `Location`, body, cookies set.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub cookies: Vec<SetCookie>,
    pub headers: HeaderMap,
}

impl Page {
    /// The value of the first hidden/visible input named `name` in the page.
    pub fn input(&self, name: &str) -> Option<String> {
        input_value(&self.body, name)
    }
}

/// The `value` of the first `<input ... name="NAME" ... value="...">` of `html`.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\"");
    let at = html.find(&needle)?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let value_at = tag.find("value=\"")? + 7;
    let value_end = value_at + tag[value_at..].find('"')?;
    Some(
        tag[value_at..value_end]
            .replace("&quot;", "\"")
            .replace("&amp;", "&"),
    )
}

/// A cookie jar of one (the screens set few cookies) plus the base URL and the origin the
/// browser would send.
pub struct StaffClient {
    pub base: String,
    pub origin: String,
    client: reqwest::Client,
    cookies: Vec<(String, String)>,
}

impl StaffClient {
    /// A client for the query API at `base` (sends `Origin: base` on POSTs, like a browser).
    pub fn new(base: &str) -> StaffClient {
        StaffClient {
            base: base.trim_end_matches('/').to_owned(),
            origin: base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("http client"),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn remember(&mut self, cookies: &[SetCookie]) {
        for cookie in cookies {
            self.cookies.retain(|(n, _)| *n != cookie.name);
            let cleared = cookie.value.is_empty() || cookie.attribute("Max-Age") == Some("0");
            if !cleared {
                self.cookies
                    .push((cookie.name.clone(), cookie.value.clone()));
            }
        }
    }

    /// The session cookie's value, if signed in.
    pub fn session_cookie(&self) -> Option<String> {
        self.cookies
            .iter()
            .find(|(n, _)| n == "waybill_console")
            .map(|(_, v)| v.clone())
    }

    /// Replaces the cookie jar (to replay a stolen or stale cookie).
    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.retain(|(n, _)| n != name);
        self.cookies.push((name.to_owned(), value.to_owned()));
    }

    async fn read(&mut self, response: reqwest::Response) -> Page {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let location = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let cookies = set_cookies(&headers);
        self.remember(&cookies);
        let body = response.text().await.unwrap_or_default();
        Page {
            status,
            location,
            body,
            cookies,
            headers,
        }
    }

    /// `GET path` with the jar's cookies (redirects are returned, not followed).
    pub async fn get(&mut self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        self.read(response).await
    }

    /// `POST path` with `form` fields, sending `origin` as `Origin` (`None`: no Origin).
    pub async fn post_from(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> Page {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .form(form);
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        self.read(response).await
    }

    /// `POST path` as this site's own page would (our Origin).
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let origin = self.origin.clone();
        self.post_from(path, form, Some(&origin)).await
    }

    /// Signs in with `credential` through the form, as a person would; returns the POST's answer.
    pub async fn sign_in(&mut self, credential: &str) -> Page {
        let form = self.get("/console/sign-in").await;
        assert_eq!(form.status, 200, "the sign-in form: {}", form.body);
        let token = form
            .input("csrf")
            .expect("the sign-in form carries a token");
        self.post(
            "/console/sign-in",
            &[("credential", credential), ("csrf", &token), ("next", "")],
        )
        .await
    }
}

//! The staff screens in the demo: signs in to the agent console and the finance page the way a
//! browser does (form token, session cookie, same-origin POST), checks that each page opens
//! with the demo's data, and prints where to open them and how to sign in.

use anyhow::Context;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};

/// Signs in at `base` with `credential`; returns the session cookie (`name=value`).
async fn sign_in(http: &reqwest::Client, base: &str, credential: &str) -> anyhow::Result<String> {
    let form = http
        .get(format!("{base}/console/sign-in"))
        .send()
        .await
        .context("GET /console/sign-in")?;
    let form_cookie = cookie_of(&form, "waybill_console_sign_in")
        .context("the sign-in form set no token cookie")?;
    let page = form.text().await?;
    let token = input_value(&page, "csrf").context("the sign-in form has no token")?;
    let answer = http
        .post(format!("{base}/console/sign-in"))
        .header(COOKIE, &form_cookie)
        .header(ORIGIN, base)
        .form(&[("credential", credential), ("csrf", &token), ("next", "")])
        .send()
        .await
        .context("POST /console/sign-in")?;
    anyhow::ensure!(
        answer.status() == reqwest::StatusCode::SEE_OTHER,
        "signing in answered {}",
        answer.status()
    );
    let session = cookie_of(&answer, "waybill_console").context("no session cookie")?;
    let _ = answer.headers().get(LOCATION);
    Ok(session)
}

fn cookie_of(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[html[..at].rfind('<')?..tag_end];
    let value = tag.find("value=\"")? + 7;
    Some(tag[value..value + tag[value..].find('"')?].to_owned())
}

async fn open(
    http: &reqwest::Client,
    base: &str,
    session: &str,
    path: &str,
) -> anyhow::Result<String> {
    let response = http
        .get(format!("{base}{path}"))
        .header(COOKIE, session)
        .send()
        .await
        .with_context(|| format!("GET {path}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "{path} answered {}",
        response.status()
    );
    Ok(response.text().await?)
}

/// Opens the console (search and one order) as `agent_key` and the finance page as
/// `finance_key`, then prints their addresses.
pub async fn show(
    query_base: &str,
    agent_key: &str,
    finance_key: Option<&str>,
    key_file: &std::path::Path,
    order_ids: &[String],
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let session = sign_in(&http, query_base, agent_key).await?;
    let search = open(&http, query_base, &session, "/console").await?;
    let found = search
        .split("<h2 id=\"results-heading\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap_or("?")
        .to_owned();
    println!("\nStaff screens (open in a browser; sign in by pasting an API key or your identity provider's JWT):");
    println!(
        "  Sign in:        {query_base}/console/sign-in   (development key: {})",
        key_file.display()
    );
    println!("  Agent console:  {query_base}/console   ({found} to search, filter and page)");
    if let Some(order) = order_ids.first() {
        open(
            &http,
            query_base,
            &session,
            &format!("/console/orders/{order}"),
        )
        .await?;
        println!(
            "  An order:       {query_base}/console/orders/{order}   (timeline, refunds, actions)"
        );
    }
    if let Some(finance_key) = finance_key {
        let session = sign_in(&http, query_base, finance_key).await?;
        let page = open(&http, query_base, &session, "/finance").await?;
        let discrepancies = page
            .split("Reconciliation discrepancies (")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or("?")
            .to_owned();
        println!(
            "  Finance page:   {query_base}/finance   (charts, {discrepancies} reconciliation discrepancies, CSV)"
        );
    }
    Ok(())
}

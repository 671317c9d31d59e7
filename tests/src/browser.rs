//! Headless Chromium driven over the DevTools protocol (CDP), for the tracking page and the staff
//! screens: launch Debian's `chromium` (installed by `infra/scripts/ensure-browser.sh`), open the
//! page target's websocket and send commands (navigate, evaluate JavaScript, screenshot, read
//! cookies, change the viewport). On top of those, what a person does: fill a field, click and
//! wait for the next page, wait for a text. A few dozen lines of protocol instead of a CDP crate.
//!
//! A missing browser fails the test (with the command that installs it) instead of skipping it,
//! so CI cannot go green without having run it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::poll::eventually;

/// The Chromium binary: `WAYBILL_CHROMIUM`, else `chromium` or `chromium-browser` on PATH.
pub fn chromium_binary() -> PathBuf {
    let candidates = std::env::var("WAYBILL_CHROMIUM")
        .ok()
        .filter(|v| !v.is_empty())
        .into_iter()
        .chain(["chromium".to_owned(), "chromium-browser".to_owned()]);
    let path = std::env::var_os("PATH").unwrap_or_default();
    for candidate in candidates {
        let candidate = PathBuf::from(candidate);
        if candidate.is_absolute() && candidate.exists() {
            return candidate;
        }
        for dir in std::env::split_paths(&path) {
            let full = dir.join(&candidate);
            if full.is_file() {
                return full;
            }
        }
    }
    panic!(
        "no chromium binary (CI={}): run infra/scripts/ensure-browser.sh (apt-get install chromium) \
         or set WAYBILL_CHROMIUM; the tracking-page browser test does not skip",
        std::env::var("CI").unwrap_or_default()
    );
}

/// One headless browser with one page, killed on drop.
pub struct Browser {
    child: tokio::process::Child,
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    _profile: TempDir,
}

/// A directory removed on drop (the browser profile).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Browser {
    /// Starts headless Chromium and attaches to its first page. Its stderr goes to
    /// `log_dir/chromium.log` once the DevTools address has been read from it.
    pub async fn launch(log_dir: &Path) -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "waybill-chromium-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&profile).expect("create the browser profile directory");
        let mut child = tokio::process::Command::new(chromium_binary())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=412,915",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        let stderr = child.stderr.take().expect("chromium stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = String::new();
        let browser_ws = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                seen.push_str(&line);
                seen.push('\n');
                if let Some(at) = line.find("ws://") {
                    return Some(line[at..].trim().to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("chromium printed no DevTools address:\n{seen}"));
        // Keep draining stderr into a log so the browser never blocks on a full pipe.
        let log_path = log_dir.join("chromium.log");
        tokio::spawn(async move {
            let mut log = seen;
            while let Ok(Some(line)) = lines.next_line().await {
                log.push_str(&line);
                log.push('\n');
                let _ = std::fs::write(&log_path, &log);
            }
        });
        let http_base = browser_ws
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .expect("host:port")
            .to_owned();
        let page_ws = eventually("chromium lists its page", Duration::from_secs(20), || {
            let url = format!("http://{http_base}/json/list");
            async move {
                let targets: Value = reqwest::get(&url)
                    .await
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                targets
                    .as_array()
                    .and_then(|list| {
                        list.iter()
                            .find(|t| t["type"] == "page")
                            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                            .map(str::to_owned)
                    })
                    .ok_or_else(|| format!("no page target yet: {targets}"))
            }
        })
        .await;
        let (socket, _) = tokio_tungstenite::connect_async(page_ws.as_str())
            .await
            .expect("connect to the page's DevTools websocket");
        Browser {
            child,
            socket,
            next_id: 0,
            _profile: TempDir(profile),
        }
    }

    /// Sends one CDP command and returns its `result` (events in between are ignored).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        match self.try_call(method, &params).await {
            Ok(result) => result,
            Err(error) => panic!("{method} failed: {error}"),
        }
    }

    /// Sends one CDP command: its `result`, or the `error` DevTools answered with.
    async fn try_call(&mut self, method: &str, params: &Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params});
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .expect("send a DevTools command");
        let answer = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(frame) = self.socket.next().await {
                let Ok(Message::Text(text)) = frame else {
                    continue;
                };
                let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                if value["id"] == json!(id) {
                    return Some(value);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no answer to {method}"));
        match answer.get("error") {
            Some(error) => Err(error.clone()),
            None => Ok(answer["result"].clone()),
        }
    }

    /// Opens `url` in the page and waits until the new document has loaded: the old one is
    /// marked first, so the wait cannot end on the page being left.
    pub async fn navigate(&mut self, url: &str) {
        let _ = self.eval_settled("window.__waybillOldPage = true").await;
        self.call("Page.navigate", json!({"url": url})).await;
        self.wait_for(
            &format!("{url} to load"),
            "window.__waybillOldPage !== true && document.readyState === 'complete'",
        )
        .await;
    }

    /// Evaluates `expression` in the page and returns its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression} threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` unless the page is between documents (a navigation replaced the
    /// context it would run in): `None` then, and the caller asks again.
    async fn eval_settled(&mut self, expression: &str) -> Option<Value> {
        let params = json!({"expression": expression, "returnByValue": true, "awaitPromise": true});
        match self.try_call("Runtime.evaluate", &params).await {
            Ok(result) if result.get("exceptionDetails").is_none() => {
                Some(result["result"]["value"].clone())
            }
            Ok(result) => panic!("{expression} threw: {}", result["exceptionDetails"]),
            Err(error) if between_documents(&error) => None,
            Err(error) => panic!("Runtime.evaluate failed: {error}"),
        }
    }

    /// Polls `expression` until it is `true` (or the deadline panics with `what`); a poll that
    /// lands while the page navigates counts as not yet.
    pub async fn wait_for(&mut self, what: &str, expression: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if self.eval_settled(expression).await == Some(json!(true)) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let body = self
                    .eval("document.body ? document.body.innerText : ''")
                    .await;
                panic!("gave up waiting for {what}; page text:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG screenshot of the page to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        let result = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let data = result["data"].as_str().expect("screenshot data");
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("screenshot is base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the artifacts directory");
        }
        std::fs::write(path, png).expect("write the screenshot");
    }
}

/// Whether a DevTools error says the page was between documents when the command ran.
fn between_documents(error: &Value) -> bool {
    let message = error["message"].as_str().unwrap_or_default();
    [
        "Inspected target navigated or closed",
        "Execution context was destroyed",
        "Cannot find context with specified id",
    ]
    .iter()
    .any(|known| message.contains(known))
}

/// A JavaScript string literal of `text` (JSON strings are JavaScript strings).
fn js(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

impl Browser {
    /// Sets the value of the form field `selector` as typing would (fires `input`/`change`).
    pub async fn fill(&mut self, selector: &str, value: &str) {
        let done = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return false; \
                 e.focus(); e.value = {val}; \
                 e.dispatchEvent(new Event('input', {{bubbles: true}})); \
                 e.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()",
                sel = js(selector),
                val = js(value)
            ))
            .await;
        assert_eq!(done, json!(true), "no field {selector} to fill");
    }

    /// Clicks `selector` and waits until the page it leads to has loaded (a form submit or a
    /// link): the old document is marked first, so a click that goes nowhere fails the wait.
    pub async fn click_and_wait(&mut self, selector: &str) {
        self.eval("window.__waybillOldPage = true").await;
        let clicked = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return false; \
                 e.click(); return true; }})()",
                sel = js(selector)
            ))
            .await;
        assert_eq!(clicked, json!(true), "nothing to click at {selector}");
        self.wait_for(
            &format!("the page after clicking {selector}"),
            "window.__waybillOldPage !== true && document.readyState === 'complete'",
        )
        .await;
    }

    /// Opens the staff screen `start` (a path under `base`), is sent to the sign-in form,
    /// pastes `credential` and presses the button, as a person would; ends back on `start`.
    pub async fn sign_in(&mut self, base: &str, credential: &str, start: &str) {
        self.navigate(&format!("{base}{start}")).await;
        self.wait_for_text("Sign in to Waybill").await;
        self.fill("#credential", credential).await;
        self.click_and_wait("form.card button[type=submit]").await;
        let path = self.eval("location.pathname").await;
        assert_eq!(path, json!(start), "back on {start} after signing in");
    }

    /// Waits until a console page after an action says `done` and that it shows the order
    /// with it. While it says the views have not caught up yet (a loaded machine), reloads the
    /// page as the notice asks, until the deadline.
    pub async fn wait_for_result(&mut self, done: &str) {
        let shown = format!("{done} The page shows the order with it.");
        let stale = format!("{done} The views have not caught up yet");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.text().await;
            if text.contains(&shown) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("gave up waiting for {shown:?}; page text:\n{text}");
            }
            if text.contains(&stale) {
                tokio::time::sleep(Duration::from_millis(500)).await;
                self.eval("location.reload()").await;
                self.wait_for("document loaded", "document.readyState === 'complete'")
                    .await;
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Waits until the page's visible text contains `text`.
    pub async fn wait_for_text(&mut self, text: &str) {
        self.wait_for(
            &format!("the text {text:?}"),
            &format!(
                "document.body !== null && document.body.innerText.includes({})",
                js(text)
            ),
        )
        .await;
    }

    /// The page's visible text.
    pub async fn text(&mut self) -> String {
        self.eval("document.body ? document.body.innerText : ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Makes the viewport `width`×`height` CSS pixels (`mobile`: a phone's touch viewport).
    /// Scrollbars are hidden, so a full-page screenshot is laid out at exactly `width`.
    pub async fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
        self.call("Emulation.setScrollbarsHidden", json!({"hidden": true}))
            .await;
    }

    /// Every cookie the browser holds, as CDP reports them (`name`, `value`, `httpOnly`,
    /// `secure`, `sameSite`, `expires`, ...).
    pub async fn cookies(&mut self) -> Vec<Value> {
        self.call("Network.enable", json!({})).await;
        let result = self.call("Network.getAllCookies", json!({})).await;
        result["cookies"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// `target/e2e-artifacts/<name>`: where tests keep what a person may want to look at.
pub fn artifact_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("e2e-artifacts")
        .join(name)
}

/// `target/screens/<name>.png`: the screens' screenshots, for a person to look at.
pub fn screen_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("screens")
        .join(format!("{name}.png"))
}

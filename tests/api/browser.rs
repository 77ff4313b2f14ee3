//! Real-browser tests: headless Chromium driven over WebDriver (`fantoccini` → `chromedriver`).
//!
//! Each test gets its own chromedriver on a free loopback port and its own Chromium with a
//! throw-away profile, so browser tests run in parallel like the rest of the suite. The driver is
//! found through `LATCHKEY_CHROMEDRIVER`, then `/usr/bin/chromedriver` (Debian's
//! `chromium-driver`), then `chromedriver` on `PATH`. Without one, a browser test prints why and
//! passes, unless `LATCHKEY_REQUIRE_BROWSER` is set (as `.ci/run` does): then it fails.
//!
//! Screenshots go to `target/screenshots/<backend>/<name>.png` (the root can be moved with
//! `LATCHKEY_SCREENSHOTS_DIR`), so a run on each backend leaves a picture of every page a test
//! stopped to look at.
//!
//! Every page a test stops to look at ([`Browser::screenshot`]) is also looked at on a phone:
//! at 390×844 nothing may stick out of the viewport (the page is no wider than the screen, and
//! every link, button, field and table cell of `main` lies inside the screen and inside any
//! scrolling box around it), and a second screenshot `<name>-phone.png` is saved. No page a
//! test visited may have broken the Content Security Policy (Chromium's console log, read at
//! each look).
//!
//! The flows: `authorization` (login, consent, redirect, code exchange), `portal` (register an
//! application, read its secret from the page, use it with the client-credentials grant),
//! `authorized_apps` (authorize an application, revoke it from `/o/authorized_tokens/`, its
//! tokens stop working), `admin` (a staff user deactivates a user, who then cannot sign in),
//! `upstream` (sign in with Discord — a fake — on the way to an application, then see the link).

mod admin;
mod authorization;
mod authorized_apps;
mod portal;
mod upstream;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::helpers::TestApp;

/// Where Debian's `chromium-driver` puts the driver.
const DEBIAN_CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Where Debian's `chromium` puts the browser.
const DEBIAN_CHROMIUM: &str = "/usr/bin/chromium";
/// How long a helper waits for an element, a URL or the driver before failing the test.
const WAIT: Duration = Duration::from_secs(10);
/// The desktop window the tests browse in.
const DESKTOP: (u32, u32) = (1200, 900);
/// A phone's screen in CSS pixels (an iPhone 12 to 15).
pub const PHONE: (u32, u32) = (390, 844);
/// What a phone must show whole: everything one can use or read in the page's main part (the
/// column headers of tables are hidden there, kept for screen readers).
const PHONE_CHECKED: &str = "main a, main button, main input, main select, main textarea, \
                             table.list td";

/// The elements matching `arguments[0]` (CSS) that are laid out (not hidden) but lie outside
/// the viewport horizontally or outside the visible box of a scrolling ancestor, described;
/// and the page itself when it is wider than the viewport.
const OUTSIDE_SCRIPT: &str = r#"
const [selector] = arguments;
const width = window.innerWidth;
const out = [];
const root = document.documentElement.scrollWidth;
if (root > width) out.push(`the page is ${root} px wide in a ${width} px viewport`);
for (const el of document.querySelectorAll(selector)) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  let left = 0, right = width;
  for (let a = el.parentElement; a; a = a.parentElement) {
    if (getComputedStyle(a).overflowX !== 'visible') {
      const b = a.getBoundingClientRect();
      left = Math.max(left, b.left);
      right = Math.min(right, b.right);
    }
  }
  if (r.left < left - 1 || r.right > right + 1) {
    const text = el.textContent.trim().replace(/\s+/g, ' ').slice(0, 50);
    out.push(`<${el.tagName.toLowerCase()}> "${text}" spans ${Math.round(r.left)}–${Math.round(r.right)} px, visible ${Math.round(left)}–${Math.round(right)} px`);
  }
}
return out;
"#;

/// A headless Chromium in a WebDriver session, pointed at one [`TestApp`].
///
/// Dropping it (a failed test) ends the session and kills the driver; a passing test calls
/// [`Browser::close`].
pub struct Browser {
    client: Client,
    address: String,
    screenshots: PathBuf,
    // Fields drop in order: the driver ends Chromium before its profile directory is removed.
    driver: Driver,
    _profile: tempfile::TempDir,
}

/// Starts a chromedriver and a headless Chromium for `app`, or `None` (with a message on stderr)
/// when there is no chromedriver on this machine and `LATCHKEY_REQUIRE_BROWSER` is not set.
pub async fn browser(app: &TestApp) -> Option<Browser> {
    let Some(chromedriver) = find_chromedriver() else {
        assert!(
            std::env::var_os("LATCHKEY_REQUIRE_BROWSER").is_none_or(|v| v.is_empty()),
            "LATCHKEY_REQUIRE_BROWSER is set but no chromedriver was found: install Debian's \
             chromium and chromium-driver, or set LATCHKEY_CHROMEDRIVER to the driver"
        );
        eprintln!(
            "skipping browser test: no chromedriver found (install Debian's chromium and \
             chromium-driver, or set LATCHKEY_CHROMEDRIVER)"
        );
        return None;
    };
    let mut driver = Driver::start(&chromedriver).await;
    let profile = tempfile::tempdir().expect("temporary Chromium profile");
    let mut chrome_options = json!({
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            // Only loopback: no page a test opens reaches the network (a linked account's
            // avatar at Discord's CDN, say), whatever it links to.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
            format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
            format!("--user-data-dir={}", profile.path().display()),
        ],
    });
    if Path::new(DEBIAN_CHROMIUM).is_file() {
        chrome_options["binary"] = json!(DEBIAN_CHROMIUM);
    }
    // The console log carries Chromium's Content Security Policy violations.
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": chrome_options,
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities.as_object().expect("a JSON object").clone())
        .connect(&driver.url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{} could not start headless Chromium (is Debian's chromium installed?): {e}",
                chromedriver.display()
            )
        });
    driver.session = client.session_id().await.expect("session id");
    let root = std::env::var_os("LATCHKEY_SCREENSHOTS_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots"),
            PathBuf::from,
        );
    Some(Browser {
        client,
        address: app.address.clone(),
        screenshots: root.join(app.backend),
        driver,
        _profile: profile,
    })
}

impl Browser {
    /// Opens `url`: a full URL, or a path on the test server.
    pub async fn goto(&self, url: &str) {
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", self.address)
        };
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Types `value` into the field matching `css`, replacing what was there.
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.wait_for(css).await;
        field
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Clicks the element matching `css` (a link, a button).
    pub async fn click(&self, css: &str) {
        self.wait_for(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The visible text of the element matching `css`.
    pub async fn text_of(&self, css: &str) -> String {
        // Retried like `wait_for`: the element may go stale when a navigation replaces it.
        let deadline = Instant::now() + WAIT;
        loop {
            match self.wait_for(css).await.text().await {
                Ok(text) => return text,
                Err(e) if Instant::now() >= deadline => panic!("text of {css}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Waits (at most ten seconds) until an element matches `css`, and returns it.
    pub async fn wait_for(&self, css: &str) -> Element {
        // A manual loop rather than fantoccini's `wait`: a lookup that races a navigation
        // fails with "aborted by navigation" instead of "not found", and must be retried too.
        let deadline = Instant::now() + WAIT;
        loop {
            match self.client.find(Locator::Css(css)).await {
                Ok(element) => return element,
                Err(e) if Instant::now() >= deadline => {
                    panic!("no {css} on {}: {e}", self.current_url().await)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Waits (at most ten seconds) until the address bar starts with `prefix`, and returns it.
    pub async fn wait_for_url(&self, prefix: &str) -> url::Url {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = self.current_url().await;
            if url.as_str().starts_with(prefix) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "still on {url} after {WAIT:?}, expected {prefix}…"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the address bar shows.
    pub async fn current_url(&self) -> url::Url {
        self.client.current_url().await.expect("current URL")
    }

    /// Looks at the page: saves the viewport as `<screenshots>/<backend>/<name>.png` (returned),
    /// fails the test if a page visited since the last look broke the Content Security Policy,
    /// then looks at the same page on a phone ([`PHONE`]): nothing may stick out of the screen
    /// (see [`Browser::outside`]), and `<name>-phone.png` is saved. The window is desktop-sized
    /// again afterwards.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let path = self.save_screenshot(name).await;
        let violations = self.csp_violations().await;
        assert!(
            violations.is_empty(),
            "Content Security Policy violations up to {name}: {violations:#?}"
        );
        self.resize(PHONE).await;
        let width = self.inner_width().await;
        assert!(
            width <= i64::from(PHONE.0),
            "a {width} px wide phone viewport"
        );
        let outside = self.outside(PHONE_CHECKED).await;
        self.save_screenshot(&format!("{name}-phone")).await;
        self.resize(DESKTOP).await;
        assert!(
            outside.is_empty(),
            "{name} on a {} px phone: {outside:#?}",
            PHONE.0
        );
        path
    }

    /// Saves the viewport as `<screenshots>/<backend>/<name>.png`.
    async fn save_screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(&self.screenshots)
            .unwrap_or_else(|e| panic!("create {}: {e}", self.screenshots.display()));
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Runs `script` in the page.
    pub async fn execute(&self, script: &str) {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("run {script}: {e}"));
    }

    /// Sets the window to `(width, height)` CSS pixels (headless: the viewport).
    pub async fn resize(&self, (width, height): (u32, u32)) {
        self.client
            .set_window_size(width, height)
            .await
            .unwrap_or_else(|e| panic!("resize the window to {width}×{height}: {e}"));
    }

    /// The viewport's width in CSS pixels.
    pub async fn inner_width(&self) -> i64 {
        self.client
            .execute("return window.innerWidth;", vec![])
            .await
            .expect("window.innerWidth")
            .as_i64()
            .expect("a number")
    }

    /// The elements matching `css` that stick out of the viewport horizontally or out of the
    /// visible box of a scrolling ancestor (hidden ones aside), described; first the page
    /// itself when it is wider than the viewport. Empty when everything is in view.
    pub async fn outside(&self, css: &str) -> Vec<String> {
        let found = self
            .client
            .execute(OUTSIDE_SCRIPT, vec![json!(css)])
            .await
            .unwrap_or_else(|e| panic!("measure {css}: {e}"));
        serde_json::from_value(found).expect("a list of strings")
    }

    /// The Content Security Policy violations Chromium logged since the last call (reading the
    /// log empties it): chromedriver's `POST /session/{id}/se/log` for the `browser` log.
    pub async fn csp_violations(&self) -> Vec<String> {
        let session = self.driver.session.as_deref().expect("a WebDriver session");
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.driver.url()))
            .json(&json!({ "type": "browser" }))
            .send()
            .await
            .expect("chromedriver's log")
            .json()
            .await
            .expect("a JSON log");
        answer["value"]
            .as_array()
            .unwrap_or_else(|| panic!("log entries: {answer}"))
            .iter()
            .filter_map(|entry| entry["message"].as_str())
            .filter(|message| message.contains("Content Security Policy"))
            .map(str::to_owned)
            .collect()
    }

    /// Ends the WebDriver session, which closes Chromium, then stops the driver.
    pub async fn close(self) {
        let Browser {
            client, mut driver, ..
        } = self;
        client.close().await.expect("end the WebDriver session");
        driver.session = None;
    }
}

/// The chromedriver to use, if this machine has one.
fn find_chromedriver() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("LATCHKEY_CHROMEDRIVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let debian = PathBuf::from(DEBIAN_CHROMEDRIVER);
    if debian.is_file() {
        return Some(debian);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("chromedriver"))
        .find(|path| path.is_file())
}

/// A chromedriver process listening on a loopback port.
struct Driver {
    child: Child,
    port: u16,
    /// The WebDriver session still open, which dropping the driver ends first.
    session: Option<String>,
}

impl Driver {
    /// Starts `chromedriver` on a free port and waits until it accepts connections.
    async fn start(chromedriver: &Path) -> Driver {
        // Another test may take the port between our probe and chromedriver's bind; try again.
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            let child = Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", chromedriver.display()));
            let mut driver = Driver {
                child,
                port,
                session: None,
            };
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return driver;
                }
                if driver.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!(
            "{} did not start listening on a loopback port",
            chromedriver.display()
        );
    }

    /// The WebDriver endpoint.
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // A test that panicked never called `close`: end its session here so that chromedriver
        // quits Chromium, which would otherwise outlive a killed driver. Blocking, best effort.
        if let Some(session) = self.session.take() {
            end_session(self.port, &session);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `DELETE /session/{id}` (W3C WebDriver §8.2) over a plain socket, waiting for the answer.
fn end_session(port: u16, session: &str) {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(WAIT));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        // chromedriver answers once Chromium has quit; the first bytes of the answer are enough.
        let _ = stream.read(&mut [0; 512]);
    }
}

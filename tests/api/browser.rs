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
//! The flows: `authorization` (login, consent, redirect, code exchange), `portal` (register an
//! application, read its secret from the page, use it with the client-credentials grant),
//! `authorized_apps` (authorize an application, revoke it from `/o/authorized_tokens/`, its
//! tokens stop working), `admin` (a staff user deactivates a user, who then cannot sign in).

mod admin;
mod authorization;
mod authorized_apps;
mod portal;

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
            "--window-size=1200,900",
            format!("--user-data-dir={}", profile.path().display()),
        ],
    });
    if Path::new(DEBIAN_CHROMIUM).is_file() {
        chrome_options["binary"] = json!(DEBIAN_CHROMIUM);
    }
    let capabilities = json!({ "browserName": "chrome", "goog:chromeOptions": chrome_options });
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

    /// Saves the viewport as `<screenshots>/<backend>/<name>.png` and returns the path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(&self.screenshots)
            .unwrap_or_else(|e| panic!("create {}: {e}", self.screenshots.display()));
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
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

//! `spawn_app` and a `TestApp` whose methods are named after what users and clients do.

use std::sync::Once;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use diesel::{Connection, RunQueryDsl};
use latchkey::accounts::Account;
use latchkey::clients::{Client, ClientSpec};
use latchkey::config::Settings;
use latchkey::db::users::UserRow;
use latchkey::startup::{Application, Services};
use reqwest::header::LOCATION;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A 64-byte key, base64 — tests only.
pub const TEST_KEY: &str = "dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXk=";

/// The password every test user gets.
pub const PASSWORD: &str = "correct horse battery staple";

static TRACING: Once = Once::new();

/// A running server and the clients that talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The services, for setting up fixtures directly.
    pub services: Services,
    /// A browser: cookie store, no automatic redirects.
    pub browser: reqwest::Client,
    /// An API client: no cookies, no redirects.
    pub api: reqwest::Client,
    /// Which backend this test runs on.
    pub backend: &'static str,
    /// The database URL (for running the CLI against the same database).
    pub db_url: String,
    /// `http://127.0.0.1:PORT` of the metrics listener, when `metrics.listen` gives one.
    pub metrics_address: Option<String>,
    server: actix_web::dev::ServerHandle,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    /// Stops this test's server (its worker threads and their database pools) when the test
    /// ends, instead of leaving it running until the process exits: libpq must not be in use
    /// by a leftover worker while the process runs its exit handlers.
    fn drop(&mut self) {
        // The stop command is sent at once; the returned future only waits for completion.
        drop(self.server.stop(false));
    }
}

/// The database for one test: a SQLite file, or a fresh PostgreSQL database.
pub async fn test_database(dir: &std::path::Path) -> (String, &'static str) {
    match std::env::var("LATCHKEY_TEST_POSTGRES_URL") {
        Ok(base) if !base.is_empty() => {
            let name = format!("latchkey_test_{}", uuid::Uuid::new_v4().simple());
            let admin = base.clone();
            let create = name.clone();
            tokio::task::spawn_blocking(move || {
                let mut conn = diesel::PgConnection::establish(&admin)
                    .expect("connect to LATCHKEY_TEST_POSTGRES_URL");
                diesel::sql_query(format!("CREATE DATABASE {create}"))
                    .execute(&mut conn)
                    .expect("create test database");
            })
            .await
            .expect("create database task");
            let mut url = url::Url::parse(&base).expect("LATCHKEY_TEST_POSTGRES_URL is a URL");
            url.set_path(&name);
            (url.to_string(), "postgres")
        }
        _ => (format!("sqlite://{}/latchkey.db", dir.display()), "sqlite"),
    }
}

/// Spawns the server with the test defaults.
pub async fn spawn_app() -> TestApp {
    spawn_app_with("").await
}

/// Spawns the server with `overrides` (TOML) merged over the test defaults.
pub async fn spawn_app_with(overrides: &str) -> TestApp {
    spawn_node(None, overrides).await
}

impl TestApp {
    /// Another node of this server's cluster: its own server, services and caches over the
    /// same database (and secret key), with `overrides` (TOML) over the test defaults. It must
    /// not outlive `self`, whose directory holds a SQLite database.
    pub async fn second_node(&self, overrides: &str) -> TestApp {
        spawn_node(Some((self.db_url.clone(), self.backend)), overrides).await
    }
}

/// Spawns a server over `database` (URL and backend), or a fresh test database.
async fn spawn_node(database: Option<(String, &'static str)>, overrides: &str) -> TestApp {
    TRACING.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            latchkey::telemetry::init("debug", latchkey::config::LogFormat::Text);
        }
    });
    let dir = tempfile::tempdir().expect("temporary directory");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local address").port();
    let (db_url, backend) = match database {
        Some(database) => database,
        None => test_database(dir.path()).await,
    };
    let base = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
issuer = "http://127.0.0.1:{port}"
workers = 1
data_dir = "{data}"
[database]
url = "{db_url}"
max_connections = 4
[secrets]
secret_key = "{TEST_KEY}"
[argon2]
memory_kib = 1024
iterations = 1
[oidc]
key_cache_seconds = 0
"#,
        data = dir.path().display()
    );
    let settings = Settings::from_toml_layers(&[&base, overrides]).expect("valid test settings");
    let db_url = db_url.clone();
    let services = Services::build(&settings).await.expect("services");
    let app =
        Application::from_listener(listener, &settings, services.clone()).expect("application");
    let server = app.handle();
    let metrics_address = app
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    tokio::spawn(app.run_until_stopped());
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("browser client");
    let api = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("api client");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        services,
        browser,
        api,
        backend,
        db_url,
        metrics_address,
        server,
        _dir: dir,
    }
}

/// The `Location` header of `response` (a redirect); fails the test, naming the status, when
/// there is none.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .unwrap_or_else(|| panic!("a Location header (status {})", response.status()))
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// A client spec with sensible defaults for tests.
pub fn spec(client_type: &str, grants: &[&str]) -> ClientSpec {
    ClientSpec {
        name: format!("Test {client_type} app"),
        client_type: client_type.to_owned(),
        grant_types: grants.iter().map(|g| (*g).to_owned()).collect(),
        redirect_uris: vec!["http://127.0.0.1:9999/callback".to_owned()],
        ..ClientSpec::default()
    }
}

/// The redirect URI `spec` registers.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9999/callback";

/// A PKCE pair: (verifier, S256 challenge).
pub fn pkce_pair() -> (String, String) {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The value of `csrf_token` in a page.
pub fn csrf_from(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("page has a CSRF field") + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    html[start..end].to_owned()
}

/// A query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl TestApp {
    /// A full URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Creates an active user with [`PASSWORD`].
    pub async fn create_user(&self, username: &str) -> Account {
        self.services
            .accounts
            .create_user(
                &latchkey::audit::Actor::system(),
                latchkey::accounts::NewUser {
                    username: latchkey::domain::Username::parse(username).expect("valid username"),
                    email: latchkey::domain::Email::parse(&format!("{username}@example.com"))
                        .expect("valid email"),
                    password: Some(secrecy::SecretString::from(PASSWORD)),
                    first_name: "Test".into(),
                    last_name: "User".into(),
                    superuser: false,
                    email_verified: true,
                },
            )
            .await
            .expect("create user")
    }

    /// The user's row as stored, with what the services' [`Account`] leaves out (the password
    /// hash, the session cut-off), read directly from the database.
    pub async fn stored_user(&self, user_id: &str) -> UserRow {
        let id = user_id.to_owned();
        self.services
            .db
            .read(move |conn| {
                latchkey::db::users::find(conn, &id).map_err(latchkey::db::DbError::from)
            })
            .await
            .expect("db")
            .expect("user")
    }

    /// Deactivates a user directly in the database (the admin pages come later).
    pub async fn deactivate(&self, user_id: &str) {
        let id = user_id.to_owned();
        self.services
            .db
            .write(move |conn| {
                use diesel::prelude::*;
                use latchkey::db::schema::users;
                diesel::update(users::table.find(&id))
                    .set(users::is_active.eq(false))
                    .execute(conn)
                    .map_err(latchkey::db::DbError::from)
            })
            .await
            .expect("deactivate");
    }

    /// Registers a client; returns it with its secret.
    pub async fn register(&self, spec: &ClientSpec) -> (Client, Option<String>) {
        let (client, secret) = self
            .services
            .clients
            .register(&latchkey::audit::Actor::system(), spec)
            .await
            .expect("register client");
        (client, secret.map(|s| s.0))
    }

    /// GETs `path` with `Authorization: Bearer token` (RFC 6750 §2.1).
    pub async fn get_with_bearer(&self, path: &str, token: &str) -> reqwest::Response {
        self.api
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("bearer request")
    }

    /// POSTs a form to the token endpoint, with HTTP Basic when `basic` is given.
    pub async fn post_token(
        &self,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (StatusCode, Value) {
        self.post_oauth("/o/token/", form, basic).await
    }

    /// POSTs a form to an OAuth endpoint and reads the JSON answer.
    pub async fn post_oauth(
        &self,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (StatusCode, Value) {
        let mut request = self.api.post(self.url(path)).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    /// Signs the browser in through the hosted login page.
    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        let page = self
            .browser
            .get(self.url("/accounts/login/"))
            .send()
            .await
            .expect("login page");
        assert_eq!(page.status(), StatusCode::OK);
        let csrf = csrf_from(&page.text().await.expect("html"));
        self.browser
            .post(self.url("/accounts/login/"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("username", username),
                ("password", password),
                ("next", "/"),
            ])
            .send()
            .await
            .expect("login")
    }

    /// Whether the browser is signed in: `/account/` answers 200, or 303 to the sign-in page
    /// (any other answer fails the test).
    pub async fn signed_in(&self) -> bool {
        let response = self.browse("/account/").await;
        match response.status() {
            StatusCode::OK => true,
            StatusCode::SEE_OTHER => {
                assert!(location(&response).starts_with("/accounts/login/"));
                false
            }
            other => panic!("unexpected answer from /account/: {other}"),
        }
    }

    /// GETs a URL with the browser.
    pub async fn browse(&self, url: &str) -> reqwest::Response {
        let url = if url.starts_with("http") {
            url.to_owned()
        } else {
            self.url(url)
        };
        self.browser.get(url).send().await.expect("request")
    }

    /// Follows an authorization request the way a browser and a person do: authorize → login
    /// page (when not signed in) → POST with CSRF → back to authorize → consent (when shown) →
    /// `decision`. Returns the final redirect's `Location`.
    pub async fn authorize_as(
        &self,
        authorize_url: &str,
        username: &str,
        decision: &str,
    ) -> String {
        let mut response = self.browse(authorize_url).await;
        if response.status() == StatusCode::SEE_OTHER
            && response.headers()[LOCATION]
                .to_str()
                .expect("ascii")
                .starts_with("/accounts/login/")
        {
            let login_url = response.headers()[LOCATION]
                .to_str()
                .expect("ascii")
                .to_owned();
            let page = self.browse(&login_url).await;
            let html = page.text().await.expect("html");
            let csrf = csrf_from(&html);
            let next = query_param(&self.url(&login_url), "next").expect("next");
            let posted = self
                .browser
                .post(self.url("/accounts/login/"))
                .form(&[
                    ("csrf_token", csrf.as_str()),
                    ("username", username),
                    ("password", PASSWORD),
                    ("next", next.as_str()),
                ])
                .send()
                .await
                .expect("login");
            assert_eq!(posted.status(), StatusCode::SEE_OTHER, "login succeeds");
            let back = posted.headers()[LOCATION]
                .to_str()
                .expect("ascii")
                .to_owned();
            assert!(
                back.starts_with("/o/authorize/"),
                "login returns to the authorization request: {back}"
            );
            response = self.browse(&back).await;
        }
        if response.status() == StatusCode::OK {
            let html = response.text().await.expect("consent html");
            assert!(
                html.contains("wants to access your account"),
                "consent page: {html}"
            );
            let csrf = csrf_from(&html);
            let action = html
                .split("action=\"")
                .filter_map(|s| s.split('"').next())
                .find(|a| a.starts_with("/o/authorize/"))
                .expect("consent form action")
                .replace("&#38;", "&");
            response = self
                .browser
                .post(self.url(&action))
                .form(&[("csrf_token", csrf.as_str()), ("decision", decision)])
                .send()
                .await
                .expect("consent");
        }
        assert!(
            response.status().is_redirection(),
            "authorization ends in a redirect, got {}",
            response.status()
        );
        response.headers()[LOCATION]
            .to_str()
            .expect("ascii")
            .to_owned()
    }

    /// Runs the whole code flow for a public client (PKCE) and returns (code, verifier).
    pub async fn code_for(&self, client_id: &str, username: &str, scope: &str) -> (String, String) {
        let (verifier, challenge) = pkce_pair();
        let url = self.authorize_url(client_id, scope, &challenge, "st4te");
        let location = self.authorize_as(&url, username, "allow").await;
        let code = query_param(&location, "code").unwrap_or_else(|| panic!("a code in {location}"));
        (code, verifier)
    }

    /// An authorization URL with PKCE S256.
    pub fn authorize_url(
        &self,
        client_id: &str,
        scope: &str,
        challenge: &str,
        state: &str,
    ) -> String {
        let mut url = url::Url::parse(&self.url("/o/authorize/")).expect("url");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("scope", scope)
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        url.to_string()
    }
}

/// A second browser (its own cookie store, no automatic redirects), for tests with several
/// people signed in at once.
pub struct Visitor {
    /// The HTTP client with the cookie store.
    pub client: reqwest::Client,
    address: String,
}

impl Visitor {
    /// A full URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// GETs `path`; returns the status and the body.
    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        let status = response.status();
        (status, response.text().await.expect("body"))
    }

    /// GETs `path` and returns the raw response (headers, redirects).
    pub async fn get_response(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// Opens the page at `form_page`, takes its CSRF token, and POSTs `fields` to `action`
    /// like the page's form would. Returns the response (not followed).
    pub async fn submit(
        &self,
        form_page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let (status, html) = self.get(form_page).await;
        assert_eq!(status, StatusCode::OK, "form page {form_page}: {html}");
        let csrf = csrf_from(&html);
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
        all.extend_from_slice(fields);
        self.client
            .post(self.url(action))
            .form(&all)
            .send()
            .await
            .expect("POST")
    }

    /// Whether this browser is signed in: `/account/` answers 200, or 303 to the sign-in page
    /// (any other answer fails the test).
    pub async fn signed_in(&self) -> bool {
        let response = self.get_response("/account/").await;
        match response.status() {
            StatusCode::OK => true,
            StatusCode::SEE_OTHER => {
                assert!(location(&response).starts_with("/accounts/login/"));
                false
            }
            other => panic!("unexpected answer from /account/: {other}"),
        }
    }

    /// POSTs `fields` to `action` with the CSRF token found in `html` (a page already loaded).
    pub async fn post_with_csrf_of(
        &self,
        html: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let csrf = csrf_from(html);
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
        all.extend_from_slice(fields);
        self.client
            .post(self.url(action))
            .form(&all)
            .send()
            .await
            .expect("POST")
    }
}

impl TestApp {
    /// A new browser, signed in as `username` (password [`PASSWORD`]).
    pub async fn visitor(&self, username: &str) -> Visitor {
        let visitor = self.anonymous_visitor();
        let response = visitor
            .submit(
                "/accounts/login/",
                "/accounts/login/",
                &[
                    ("username", username),
                    ("password", PASSWORD),
                    ("next", "/"),
                ],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "login as {username} failed"
        );
        visitor
    }

    /// Signs in as `username` with `password` on the hosted login page, from a new browser;
    /// the answer's status: 303 when signed in, 200 (the form again) when refused, 429 when a
    /// limit refused.
    pub async fn try_login(&self, username: &str, password: &str) -> StatusCode {
        self.anonymous_visitor()
            .submit(
                "/accounts/login/",
                "/accounts/login/",
                &[
                    ("username", username),
                    ("password", password),
                    ("next", "/"),
                ],
            )
            .await
            .status()
    }

    /// Registers a confidential client with the password grant, the grants in `more` (e.g.
    /// `refresh_token`) and the default scopes: (client id, secret).
    pub async fn password_client(&self, more: &[&str]) -> (String, String) {
        let mut grants = vec!["password"];
        grants.extend_from_slice(more);
        let (client, secret) = self.register(&spec("confidential", &grants)).await;
        (client.id().to_owned(), secret.expect("secret"))
    }

    /// A new browser that is not signed in.
    pub fn anonymous_visitor(&self) -> Visitor {
        Visitor {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("visitor client"),
            address: self.address.clone(),
        }
    }

    /// Makes a new user `username` a staff member who is not a superuser.
    pub async fn create_plain_staff(&self, username: &str) -> Account {
        let user = self.create_user(username).await;
        self.services
            .accounts
            .set_flags(
                &latchkey::audit::Actor::system(),
                &user.id,
                latchkey::accounts::AccountFlags {
                    is_active: true,
                    is_staff: true,
                    is_superuser: false,
                },
            )
            .await
            .expect("make staff")
    }

    /// Creates an active staff user (staff and superuser) with [`PASSWORD`].
    pub async fn create_staff(&self, username: &str) -> Account {
        let user = self.create_user(username).await;
        self.services
            .accounts
            .set_flags(
                &latchkey::audit::Actor::system(),
                &user.id,
                latchkey::accounts::AccountFlags {
                    is_active: true,
                    is_staff: true,
                    is_superuser: true,
                },
            )
            .await
            .expect("make staff")
    }

    /// Audit events named `event`, newest first.
    pub async fn audit_events(&self, event: &str) -> Vec<latchkey::db::audit_events::AuditRow> {
        self.services
            .audit
            .list(
                latchkey::db::audit_events::AuditFilter {
                    event: Some(event.to_owned()),
                    ..Default::default()
                },
                latchkey::domain::PageRequest::new(None, 200),
            )
            .await
            .expect("audit log")
            .items
    }
}

/// An email read back from the outbox.
#[derive(Clone, Debug)]
pub struct ReceivedEmail {
    /// `To` header.
    pub to: String,
    /// `Subject` header.
    pub subject: String,
    /// The text/plain part, decoded.
    pub text: String,
    /// The text/html part, decoded.
    pub html: String,
}

impl ReceivedEmail {
    /// Parses one RFC 5322 message with a text and an HTML alternative.
    pub fn parse(raw: &[u8]) -> Self {
        let mail = mailparse::parse_mail(raw).expect("a MIME message");
        let header = |name: &str| {
            mailparse::MailHeaderMap::get_first_value(mail.headers.as_slice(), name)
                .unwrap_or_default()
        };
        let mut text = String::new();
        let mut html = String::new();
        for part in mail.parts() {
            match part.ctype.mimetype.as_str() {
                "text/plain" => text = part.get_body().expect("text body"),
                "text/html" => html = part.get_body().expect("html body"),
                _ => {}
            }
        }
        Self {
            to: header("To"),
            subject: header("Subject"),
            text,
            html,
        }
    }

    /// The first URL in the text body that starts with `prefix`.
    pub fn link_starting_with(&self, prefix: &str) -> Option<String> {
        self.text
            .split_whitespace()
            .find(|w| w.starts_with(prefix))
            .map(str::to_owned)
    }

    /// The first run of six digits in the text body (a one-time code).
    pub fn code(&self) -> Option<String> {
        self.text
            .split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .map(str::to_owned)
    }
}

impl TestApp {
    /// Every email in the development outbox addressed to `address`, oldest first.
    pub fn emails_to(&self, address: &str) -> Vec<ReceivedEmail> {
        let dir = self._dir.path().join("outbox");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut found: Vec<(std::time::SystemTime, ReceivedEmail)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .map(|e| {
                let modified = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                let raw = std::fs::read(e.path()).expect("read .eml");
                (modified, ReceivedEmail::parse(&raw))
            })
            .filter(|(_, m)| m.to.contains(address))
            .collect();
        found.sort_by_key(|(t, _)| *t);
        found.into_iter().map(|(_, m)| m).collect()
    }

    /// The newest email to `address`; panics when there is none.
    pub fn last_email_to(&self, address: &str) -> ReceivedEmail {
        self.emails_to(address)
            .pop()
            .unwrap_or_else(|| panic!("no email to {address} in the outbox"))
    }
}

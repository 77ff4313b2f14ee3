//! Request ids (issue 13, Operations): every answer says its request's id in `X-Request-Id`,
//! whichever layer made it; a trusted proxy's id is kept, anyone else's ignored; and the log
//! lines written while the request was handled carry it, in both log formats.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{spawn_app, spawn_app_with, spec, TestApp, TEST_KEY};

/// The `X-Request-Id` of `response` (fails the test without one).
fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("no X-Request-Id on a {}", response.status()))
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// A fresh id: a UUID.
fn assert_fresh(id: &str) {
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id:?} is not a UUID");
}

/// GET `path` with the extra `headers`.
async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.api.get(app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("get")
}

#[tokio::test]
async fn every_answer_carries_its_request_id() {
    let app = spawn_app_with(
        "[rate_limits]\nfailed_logins_per_ip = 1\nfailed_logins_per_account = 1000\n",
    )
    .await;
    let (client, secret) = app.register(&spec("confidential", &["password"])).await;
    let secret = secret.expect("secret");
    let mut seen = Vec::new();

    let ok = get(&app, "/healthz", &[]).await;
    assert_eq!(ok.status(), StatusCode::OK);
    seen.push(request_id(&ok));
    for path in ["/nowhere", "/o/nowhere/"] {
        let missing = get(&app, path, &[]).await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        seen.push(request_id(&missing));
    }
    // An OAuth error (RFC 6749 §5.2).
    let invalid = app
        .api
        .post(app.url("/o/token/"))
        .form(&[("client_id", client.id())])
        .send()
        .await
        .expect("token");
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    seen.push(request_id(&invalid));
    // A form posted without its CSRF token, refused before the handler.
    let forged = app
        .api
        .post(app.url("/accounts/login/"))
        .form(&[("username", "x"), ("password", "y")])
        .send()
        .await
        .expect("login");
    assert!(forged.status().is_client_error(), "{}", forged.status());
    seen.push(request_id(&forged));
    // A limit's refusal: the second failed password grant from this address.
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let response = app
            .api
            .post(app.url("/o/token/"))
            .basic_auth(client.id(), Some(&secret))
            .form(&[
                ("grant_type", "password"),
                ("username", "nobody"),
                ("password", "wrong"),
            ])
            .send()
            .await
            .expect("token");
        statuses.push(response.status());
        seen.push(request_id(&response));
    }
    assert_eq!(
        statuses,
        [StatusCode::BAD_REQUEST, StatusCode::TOO_MANY_REQUESTS]
    );
    // Wrong method on a page.
    let wrong_method = app
        .api
        .delete(app.url("/accounts/login/"))
        .send()
        .await
        .expect("delete");
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    seen.push(request_id(&wrong_method));

    for id in &seen {
        assert_fresh(id);
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "ids repeat: {seen:?}");
}

#[tokio::test]
async fn a_trusted_proxys_id_is_kept_and_nobody_elses() {
    // The tests' peer is 127.0.0.1: not a proxy here…
    let direct = spawn_app().await;
    let ignored = request_id(&get(&direct, "/healthz", &[("x-request-id", "lb-1234")]).await);
    assert_fresh(&ignored);

    // …and a trusted one here.
    let proxied = spawn_app_with("[server]\ntrusted_proxies = [\"127.0.0.1\"]\n").await;
    for kept in ["lb-1234", "0d3c1f6e5a0b4c6e.9a7d_2f1e", &"x".repeat(64)] {
        let response = get(&proxied, "/healthz", &[("x-request-id", kept)]).await;
        assert_eq!(request_id(&response), kept);
    }
    let missing = get(&proxied, "/nowhere", &[("x-request-id", "lb-404")]).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(request_id(&missing), "lb-404");
    // Not a sane token: a fresh id instead.
    for refused in ["a/b", "a b", "a\"b", "a=b", &"x".repeat(65)] {
        let response = get(&proxied, "/healthz", &[("x-request-id", refused)]).await;
        assert_fresh(&request_id(&response));
    }
    // Two of them: neither.
    let twice = proxied
        .api
        .get(proxied.url("/healthz"))
        .header("x-request-id", "one")
        .header("x-request-id", "two")
        .send()
        .await
        .expect("get");
    assert_fresh(&request_id(&twice));
}

/// Runs `latchkey serve` over `app`'s database with `format` logs, makes a failed password
/// grant (which writes a `login.failure` audit line while the request is handled) and answers
/// that request's id with the server's log.
async fn failed_login_logged(app: &TestApp, format: &str) -> (String, String) {
    let (client, secret) = app.register(&spec("confidential", &["password"])).await;
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let log = dir.path().join("serve.log");
    let mut server = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("serve")
        .env("LATCHKEY_DATABASE__URL", &app.db_url)
        .env("LATCHKEY_SECRETS__SECRET_KEY", TEST_KEY)
        .env("LATCHKEY_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("LATCHKEY_SERVER__WORKERS", "1")
        .env("LATCHKEY_SERVER__DATA_DIR", dir.path())
        .env("LATCHKEY_SCHEDULER__ENABLED", "false")
        .env("LATCHKEY_ARGON2__MEMORY_KIB", "1024")
        .env("LATCHKEY_ARGON2__ITERATIONS", "1")
        .env("LATCHKEY_LOG__LEVEL", "info")
        .env("LATCHKEY_LOG__FORMAT", format)
        .env_remove("RUST_LOG")
        .env_remove("LATCHKEY_TEST_POSTGRES_URL")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start latchkey serve");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.api.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = app
        .api
        .post(format!("{base}/o/token/"))
        .basic_auth(client.id(), secret.as_deref())
        .form(&[
            ("grant_type", "password"),
            ("username", "nobody"),
            ("password", "wrong"),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let id = request_id(&response);
    let _ = server.kill();
    let _ = server.wait();
    (id, std::fs::read_to_string(&log).expect("log"))
}

#[tokio::test]
async fn log_lines_written_for_a_request_carry_its_id() {
    let app = spawn_app().await;

    let (id, log) = failed_login_logged(&app, "text").await;
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("login.failure"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains(&format!("request_id={id}")), "{log}");

    let (id, log) = failed_login_logged(&app, "json").await;
    let line: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["event"] == "login.failure")
        .unwrap_or_else(|| panic!("no login.failure line: {log}"));
    let request = line["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .find(|s| s["name"] == "http_request")
        .unwrap_or_else(|| panic!("no request span: {line}"));
    assert_eq!(request["request_id"], id.as_str(), "{line}");
}

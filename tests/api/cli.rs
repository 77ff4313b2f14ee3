//! The command line, run as the real binary against the test's database, and `serve --demo`
//! walked through as the README does.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::helpers::{csrf_from, query_param, spawn_app, test_database, TEST_KEY};

fn latchkey(db_url: &str, args: &[&str]) -> Output {
    latchkey_with(db_url, args, ("LATCHKEY_LOG__FORMAT", "text"))
}

fn latchkey_with(db_url: &str, args: &[&str], extra: (&str, &str)) -> Output {
    let dir = tempfile::tempdir().expect("dir");
    Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .env(extra.0, extra.1)
        .env("LATCHKEY_DATABASE__URL", db_url)
        .env("LATCHKEY_SECRETS__SECRET_KEY", TEST_KEY)
        .env("LATCHKEY_SERVER__DATA_DIR", dir.path())
        .env("LATCHKEY_ARGON2__MEMORY_KIB", "1024")
        .env("LATCHKEY_ARGON2__ITERATIONS", "1")
        .env("LATCHKEY_LOG__LEVEL", "info")
        .env_remove("LATCHKEY_TEST_POSTGRES_URL")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run latchkey")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn client_commands_manage_clients_that_work_over_http() {
    let app = spawn_app().await;
    let db = app.db_url.clone();
    let created = tokio::task::spawn_blocking(move || {
        latchkey(
            &db,
            &[
                "client",
                "create",
                "--name",
                "CLI app",
                "--type",
                "confidential",
                "--grant-types",
                "client_credentials,password",
                "--redirect-uri",
                "https://app.example.com/cb",
                "--scopes",
                "read,write",
                "--json",
            ],
        )
    })
    .await
    .expect("task");
    assert!(created.status.success(), "{}", stderr(&created));
    let json: serde_json::Value = serde_json::from_str(&stdout(&created)).expect("json");
    let id = json["client_id"].as_str().expect("id").to_owned();
    let secret = json["client_secret"].as_str().expect("secret").to_owned();
    assert!(secret.len() >= 43, "256-bit secret");
    assert_eq!(json["scopes"], serde_json::json!(["read", "write"]));

    let (status, _) = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let db = app.db_url.clone();
    let id2 = id.clone();
    let (list, show, rotated, bad) = tokio::task::spawn_blocking(move || {
        (
            latchkey(&db, &["client", "list", "--json"]),
            latchkey(&db, &["client", "show", &id2, "--json"]),
            latchkey(&db, &["client", "rotate-secret", &id2, "--json"]),
            latchkey(
                &db,
                &[
                    "client",
                    "create",
                    "--name",
                    "Bad",
                    "--type",
                    "confidential",
                    "--grant-types",
                    "authorization_code",
                    "--redirect-uri",
                    "http://evil.example/cb",
                ],
            ),
        )
    })
    .await
    .expect("task");
    assert!(stdout(&list).contains(&id));
    let shown: serde_json::Value = serde_json::from_str(&stdout(&show)).expect("json");
    assert!(shown.get("client_secret").is_none(), "never shown again");
    assert!(shown["secret_hint"]
        .as_str()
        .expect("hint")
        .starts_with(&secret[..6]));
    assert_eq!(shown["active_tokens"], 1);
    let new_secret = serde_json::from_str::<serde_json::Value>(&stdout(&rotated)).expect("json")
        ["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert_ne!(new_secret, secret);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("redirect_uris"), "{}", stderr(&bad));

    // The command line is another process: the server authenticated this client a moment ago
    // and may keep its row for up to CLIENT_CACHE_SECONDS (the staleness bound across nodes).
    tokio::time::sleep(std::time::Duration::from_millis(
        latchkey::clients::CLIENT_CACHE_SECONDS * 1000 + 200,
    ))
    .await;
    let (status, _) = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&id, &secret)),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old secret stops working"
    );
    let (status, fresh) = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&id, &new_secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // One revoked token for cleartokens to remove (the other one is still active).
    let (status, _) = app
        .post_oauth(
            "/o/revoke_token/",
            &[("token", fresh["access_token"].as_str().expect("token"))],
            Some((&id, &new_secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let db = app.db_url.clone();
    let id3 = id.clone();
    let (cleared, deleted, missing) = tokio::task::spawn_blocking(move || {
        (
            latchkey(&db, &["cleartokens"]),
            latchkey(&db, &["client", "delete", &id3]),
            latchkey(&db, &["client", "show", &id3]),
        )
    })
    .await
    .expect("task");
    assert!(cleared.status.success(), "{}", stderr(&cleared));
    assert!(
        stdout(&cleared).contains("deleted 1 expired or revoked tokens"),
        "{}",
        stdout(&cleared)
    );
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert!(!missing.status.success());
    let (status, _) = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&id, &new_secret)),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn user_create_check_and_configuration_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let (db, _) = test_database(dir.path()).await;
    let outputs = tokio::task::spawn_blocking(move || {
        vec![
            latchkey(&db, &["migrate"]),
            latchkey(&db, &["check"]),
            latchkey(
                &db,
                &[
                    "user",
                    "create",
                    "--username",
                    "cli",
                    "--email",
                    "cli@example.com",
                    "--password",
                    "long enough pw",
                ],
            ),
            latchkey(
                &db,
                &[
                    "user",
                    "create",
                    "--username",
                    "cli",
                    "--email",
                    "other@example.com",
                    "--password",
                    "long enough pw",
                ],
            ),
            latchkey(
                &db,
                &[
                    "user",
                    "create",
                    "--username",
                    "short",
                    "--email",
                    "s@example.com",
                    "--password",
                    "short",
                ],
            ),
            latchkey("mysql://root@localhost/x", &["check"]),
            latchkey(&db, &["client", "create", "--help"]),
            latchkey_with(&db, &["check"], ("LATCHKEY_SERVER__LISTN", "127.0.0.1:1")),
        ]
    })
    .await
    .expect("task");
    assert!(outputs[0].status.success(), "{}", stderr(&outputs[0]));
    assert!(stdout(&outputs[1]).contains("configuration OK"));
    assert!(outputs[2].status.success(), "{}", stderr(&outputs[2]));
    assert!(!outputs[3].status.success());
    assert!(stderr(&outputs[3]).contains("already exists"));
    assert!(!outputs[4].status.success());
    assert!(stderr(&outputs[4]).contains("at least 12"));
    assert_eq!(outputs[5].status.code(), Some(2));
    assert!(
        stderr(&outputs[5]).contains("unsupported database URL scheme"),
        "{}",
        stderr(&outputs[5])
    );
    assert!(stdout(&outputs[6]).contains("--grant-types"));
    assert!(outputs[7].status.success(), "{}", stderr(&outputs[7]));
    assert!(
        stderr(&outputs[7]).contains("unknown setting `server.listn`"),
        "{}",
        stderr(&outputs[7])
    );
}

/// Kills the demo server when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_demo(dir: &std::path::Path, db: &str, port: u16) -> Child {
    let issuer = format!("http://127.0.0.1:{port}");
    Child(
        Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(["serve", "--demo"])
            .env("LATCHKEY_DATABASE__URL", db)
            .env("LATCHKEY_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("LATCHKEY_SERVER__ISSUER", &issuer)
            .env("LATCHKEY_SERVER__WORKERS", "1")
            .env("LATCHKEY_SERVER__DATA_DIR", dir.join("data"))
            .env("LATCHKEY_LOG__LEVEL", "info")
            .env_remove("LATCHKEY_SECRETS__SECRET_KEY")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.join(format!("server-{port}.log"))).expect("log file"),
            )
            .spawn()
            .expect("start latchkey serve --demo"),
    )
}

async fn wait_ready(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
            if r.status() == StatusCode::OK {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the demo server did not become ready");
}

#[tokio::test]
async fn serve_demo_walkthrough_works_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("dir");
    let (db, _) = test_database(dir.path()).await;
    for _round in 0..2 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let _server = start_demo(dir.path(), &db, port);
        wait_ready(&base).await;
        let api = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let token = |form: Vec<(&'static str, &'static str)>| {
            api.post(format!("{base}/o/token/"))
                .basic_auth(
                    latchkey::demo::CONFIDENTIAL_ID,
                    Some(latchkey::demo::CONFIDENTIAL_SECRET),
                )
                .form(&form)
                .send()
        };
        let password = token(vec![
            ("grant_type", "password"),
            ("username", latchkey::demo::USERNAME),
            ("password", latchkey::demo::PASSWORD),
            ("scope", "profile"),
        ])
        .await
        .expect("password grant");
        assert_eq!(password.status(), StatusCode::OK);
        let access = password.json::<serde_json::Value>().await.expect("json")["access_token"]
            .as_str()
            .expect("token")
            .to_owned();
        let me = api
            .get(format!("{base}/api/me"))
            .bearer_auth(&access)
            .send()
            .await
            .expect("me");
        assert_eq!(me.status(), StatusCode::OK);
        let cc = token(vec![
            ("grant_type", "client_credentials"),
            ("scope", "read"),
        ])
        .await
        .expect("cc");
        // Secrets never reach the log: not in the query string of a request that logs an audit
        // event, not as tokens, codes or passwords.
        let leaky = api
            .post(format!("{base}/o/token/?client_secret=QUERYSECRETMARKER"))
            .basic_auth(
                latchkey::demo::CONFIDENTIAL_ID,
                Some(latchkey::demo::CONFIDENTIAL_SECRET),
            )
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .expect("token");
        assert_eq!(leaky.status(), StatusCode::OK);
        assert_eq!(cc.status(), StatusCode::OK);

        // The printed authorize URL, followed by a browser, lands on the demo callback page.
        let browser = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("browser");
        let login = browser
            .get(format!("{base}/accounts/login/"))
            .send()
            .await
            .expect("login page");
        let csrf = csrf_from(&login.text().await.expect("html"));
        browser
            .post(format!("{base}/accounts/login/"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("username", "demo"),
                ("password", "demo-password"),
                ("next", "/"),
            ])
            .send()
            .await
            .expect("login");
        let callback = format!("{base}/demo/callback");
        let authorize = format!(
            "{base}/o/authorize/?response_type=code&client_id=demo-public&redirect_uri={}&scope=profile&state=xyz&code_challenge={}&code_challenge_method=S256",
            form_urlencoded_encode(&callback),
            latchkey::demo::code_challenge()
        );
        let consent = browser.get(&authorize).send().await.expect("authorize");
        let location = if consent.status() == StatusCode::OK {
            let csrf = csrf_from(&consent.text().await.expect("html"));
            let done = browser
                .post(&authorize)
                .form(&[("csrf_token", csrf.as_str()), ("decision", "allow")])
                .send()
                .await
                .expect("allow");
            done.headers()["location"]
                .to_str()
                .expect("ascii")
                .to_owned()
        } else {
            // Second round: the consent from the first round is remembered.
            assert_eq!(consent.status(), StatusCode::FOUND);
            consent.headers()["location"]
                .to_str()
                .expect("ascii")
                .to_owned()
        };
        assert!(location.starts_with(&callback), "{location}");
        let code = query_param(&location, "code").expect("code");
        let page = browser
            .get(&location)
            .send()
            .await
            .expect("callback page")
            .text()
            .await
            .expect("html");
        assert!(
            page.contains(&code) && page.contains("code_verifier="),
            "the callback page shows the exchange command"
        );
        let exchanged = api
            .post(format!("{base}/o/token/"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", "demo-public"),
                ("code", code.as_str()),
                ("redirect_uri", callback.as_str()),
                ("code_verifier", latchkey::demo::CODE_VERIFIER),
            ])
            .send()
            .await
            .expect("exchange");
        assert_eq!(exchanged.status(), StatusCode::OK);
        let issued = exchanged.json::<serde_json::Value>().await.expect("json");
        let log =
            std::fs::read_to_string(dir.path().join(format!("server-{port}.log"))).expect("log");
        assert!(log.contains("token.issued"), "audit events are logged");
        for secret in [
            "QUERYSECRETMARKER",
            code.as_str(),
            access.as_str(),
            issued["access_token"].as_str().expect("token"),
            latchkey::demo::CONFIDENTIAL_SECRET,
            latchkey::demo::PASSWORD,
            latchkey::demo::CODE_VERIFIER,
        ] {
            assert!(!log.contains(secret), "{secret} leaked into the log");
        }
    }
}

fn form_urlencoded_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn client_update_changes_only_what_it_is_given() {
    let app = spawn_app().await;
    let (client, secret) = app
        .register(&crate::helpers::spec(
            "confidential",
            &["authorization_code", "refresh_token"],
        ))
        .await;
    let db = app.db_url.clone();
    let id = client.id().to_owned();
    let (updated, bad, missing) = tokio::task::spawn_blocking(move || {
        (
            latchkey(
                &db,
                &[
                    "client",
                    "update",
                    &id,
                    "--id-token-alg",
                    "ES256",
                    "--access-token-format",
                    "jwt",
                    "--always-issue-refresh-token",
                    "true",
                    "--post-logout-redirect-uri",
                    "https://app.example.com/bye",
                    "--json",
                ],
            ),
            latchkey(&db, &["client", "update", &id, "--id-token-alg", "HS256"]),
            latchkey(&db, &["client", "update", "nope", "--name", "x"]),
        )
    })
    .await
    .expect("task");
    assert!(updated.status.success(), "{}", stderr(&updated));
    let json: serde_json::Value = serde_json::from_str(&stdout(&updated)).expect("json");
    assert_eq!(json["id_token_signed_response_alg"], "ES256");
    assert_eq!(json["access_token_format"], "jwt");
    assert_eq!(json["always_issue_refresh_token"], true);
    assert_eq!(
        json["post_logout_redirect_uris"],
        serde_json::json!(["https://app.example.com/bye"])
    );
    // Untouched fields keep their values.
    assert_eq!(json["name"], client.name());
    assert_eq!(
        json["redirect_uris"],
        serde_json::json!([crate::helpers::REDIRECT_URI])
    );
    assert_eq!(
        json["grant_types"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("id_token_signed_response_alg"),
        "{}",
        stderr(&bad)
    );
    assert!(!missing.status.success());
    let stored = app
        .services
        .clients
        .find(client.id())
        .await
        .expect("find")
        .expect("client");
    assert!(stored.jwt_access_tokens());
    assert_eq!(stored.signing_alg().as_str(), "ES256");
    assert!(
        stored.secret_matches(&secret.expect("a confidential client's secret")),
        "secret kept"
    );
}

#[tokio::test]
async fn clients_serve_resources_set_from_the_command_line() {
    let app = spawn_app().await;
    let db = app.db_url.clone();
    let (created, public) = tokio::task::spawn_blocking(move || {
        (
            latchkey(
                &db,
                &[
                    "client",
                    "create",
                    "--name",
                    "Orders API",
                    "--type",
                    "confidential",
                    "--grant-types",
                    "client_credentials",
                    "--resource-uri",
                    "https://orders.example.com",
                    "--resource-uri",
                    "urn:example:orders",
                    "--json",
                ],
            ),
            latchkey(
                &db,
                &[
                    "client",
                    "create",
                    "--name",
                    "SPA",
                    "--type",
                    "public",
                    "--grant-types",
                    "authorization_code",
                    "--redirect-uri",
                    "https://spa.example.com/cb",
                    "--resource-uri",
                    "https://orders.example.com",
                ],
            ),
        )
    })
    .await
    .expect("task");
    assert!(created.status.success(), "{}", stderr(&created));
    let json: serde_json::Value = serde_json::from_str(&stdout(&created)).expect("json");
    assert_eq!(
        json["resource_uris"],
        serde_json::json!(["https://orders.example.com", "urn:example:orders"])
    );
    assert!(!public.status.success(), "a public client cannot serve one");
    assert!(
        stderr(&public).contains("resource_uris"),
        "{}",
        stderr(&public)
    );
    let id = json["client_id"].as_str().expect("id").to_owned();
    let secret = json["client_secret"].as_str().expect("secret").to_owned();

    // Another client gets a token for the resource; the API introspects it.
    let (other, other_secret) = app
        .register(&crate::helpers::spec(
            "confidential",
            &["client_credentials"],
        ))
        .await;
    let other_secret = other_secret.expect("secret");
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("resource", "urn:example:orders"),
            ],
            Some((other.id(), &other_secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().expect("token").to_owned();
    let (_, answer) = app
        .post_oauth("/o/introspect/", &[("token", &token)], Some((&id, &secret)))
        .await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["aud"], "urn:example:orders");

    // `client update --resource-uri ""` clears the list: the API sees nothing any more.
    let db = app.db_url.clone();
    let cleared = tokio::task::spawn_blocking(move || {
        latchkey(
            &db,
            &["client", "update", &id, "--resource-uri", "", "--json"],
        )
    })
    .await
    .expect("task");
    assert!(cleared.status.success(), "{}", stderr(&cleared));
    let json: serde_json::Value = serde_json::from_str(&stdout(&cleared)).expect("json");
    assert_eq!(json["resource_uris"], serde_json::json!([]));
    let id = json["client_id"].as_str().expect("id").to_owned();
    // The command line is another process: the server keeps the client's row for up to
    // CLIENT_CACHE_SECONDS after it last read it (the staleness bound across nodes).
    tokio::time::sleep(std::time::Duration::from_millis(
        latchkey::clients::CLIENT_CACHE_SECONDS * 1000 + 200,
    ))
    .await;
    let (_, answer) = app
        .post_oauth("/o/introspect/", &[("token", &token)], Some((&id, &secret)))
        .await;
    assert_eq!(answer, serde_json::json!({"active": false}));
}

/// The consent page's metadata URLs (OpenID Connect Dynamic Client Registration 1.0 §2) from
/// the command line: set on create, one cleared with "" and one changed on update, the others
/// kept; a refused value names its option's field and changes nothing.
#[tokio::test]
async fn client_metadata_urls_are_set_and_cleared_from_the_command_line() {
    let app = spawn_app().await;
    let db = app.db_url.clone();
    let created = tokio::task::spawn_blocking(move || {
        latchkey(
            &db,
            &[
                "client",
                "create",
                "--name",
                "Ops dashboard",
                "--type",
                "public",
                "--grant-types",
                "authorization_code",
                "--redirect-uri",
                "https://ops.example.com/cb",
                "--logo-uri",
                "https://ops.example.com/logo.svg",
                "--client-uri",
                "https://ops.example.com",
                "--policy-uri",
                "https://ops.example.com/privacy",
                "--tos-uri",
                "http://localhost:8080/tos",
                "--json",
            ],
        )
    })
    .await
    .expect("task");
    assert!(created.status.success(), "{}", stderr(&created));
    let json: serde_json::Value = serde_json::from_str(&stdout(&created)).expect("json");
    assert_eq!(json["logo_uri"], "https://ops.example.com/logo.svg");
    assert_eq!(json["client_uri"], "https://ops.example.com/");
    assert_eq!(json["policy_uri"], "https://ops.example.com/privacy");
    assert_eq!(json["tos_uri"], "http://localhost:8080/tos");
    let id = json["client_id"].as_str().expect("id").to_owned();

    let db = app.db_url.clone();
    let (updated, refused) = tokio::task::spawn_blocking(move || {
        (
            latchkey(
                &db,
                &[
                    "client",
                    "update",
                    &id,
                    "--policy-uri",
                    "",
                    "--tos-uri",
                    "https://ops.example.com/terms",
                    "--json",
                ],
            ),
            latchkey(
                &db,
                &[
                    "client",
                    "update",
                    &id,
                    "--logo-uri",
                    "http://evil.example/x.png",
                ],
            ),
        )
    })
    .await
    .expect("task");
    assert!(updated.status.success(), "{}", stderr(&updated));
    let json: serde_json::Value = serde_json::from_str(&stdout(&updated)).expect("json");
    assert_eq!(json["policy_uri"], serde_json::Value::Null, "cleared");
    assert_eq!(json["tos_uri"], "https://ops.example.com/terms");
    assert_eq!(json["logo_uri"], "https://ops.example.com/logo.svg", "kept");
    assert_eq!(json["client_uri"], "https://ops.example.com/", "kept");
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("logo_uri") && stderr(&refused).contains("plain http"),
        "{}",
        stderr(&refused)
    );
    let stored = app
        .services
        .clients
        .list()
        .await
        .expect("list")
        .pop()
        .expect("client");
    assert_eq!(
        latchkey::clients::ClientSpec::from_client(&stored)
            .logo_uri
            .as_deref(),
        Some("https://ops.example.com/logo.svg")
    );
}

/// `latchkey serve` with `server.environment = "production"` on `port`, its log in
/// `dir/server-PORT.log`.
fn start_production(dir: &std::path::Path, db: &str, port: u16) -> Child {
    Child(
        Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(["serve"])
            .env("LATCHKEY_SERVER__ENVIRONMENT", "production")
            .env("LATCHKEY_SECRETS__SECRET_KEY", TEST_KEY)
            .env("LATCHKEY_DATABASE__URL", db)
            .env("LATCHKEY_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "LATCHKEY_SERVER__ISSUER",
                format!("http://127.0.0.1:{port}"),
            )
            .env("LATCHKEY_SERVER__WORKERS", "1")
            .env("LATCHKEY_SERVER__DATA_DIR", dir.join("data"))
            .env("LATCHKEY_LOG__LEVEL", "info")
            .env_remove("LATCHKEY_TEST_POSTGRES_URL")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.join(format!("server-{port}.log"))).expect("log file"),
            )
            .spawn()
            .expect("start latchkey serve"),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

#[tokio::test]
async fn production_refuses_the_demo_leftovers_until_demo_remove_deletes_them() {
    let app = spawn_app().await;
    // What `serve --demo` leaves behind, in use: a token and a browser session of the demo
    // user, and a client the demo user registered in the portal.
    latchkey::demo::ensure(&app.services, &app.address)
        .await
        .expect("demo");
    let demo = app
        .services
        .accounts
        .find_by_login(latchkey::demo::USERNAME)
        .await
        .expect("db")
        .expect("demo user");
    let mut owned = crate::helpers::spec("confidential", &["client_credentials"]);
    owned.owner_id = Some(demo.id.clone());
    let (owned, _) = app.register(&owned).await;
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", latchkey::demo::USERNAME),
                ("password", latchkey::demo::PASSWORD),
                ("scope", "profile"),
            ],
            Some((
                latchkey::demo::CONFIDENTIAL_ID,
                latchkey::demo::CONFIDENTIAL_SECRET,
            )),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let demo_token = body["access_token"].as_str().expect("token").to_owned();
    // Real people stay: a staff member, and someone who picked the name "admin" (with a
    // password of their own) is not the demo's admin.
    let ann = app.create_user("ann").await;
    let (mine, _) = app
        .register(&crate::helpers::spec(
            "confidential",
            &["client_credentials"],
        ))
        .await;

    let dir = tempfile::tempdir().expect("dir");
    let refused_port = free_port();
    let mut server = start_production(dir.path(), &app.db_url, refused_port);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve in production started with the demo accounts in the database"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success());
    let log = std::fs::read_to_string(dir.path().join(format!("server-{refused_port}.log")))
        .expect("log");
    assert!(
        log.contains("users demo, admin; clients ") && log.contains("`latchkey demo remove`"),
        "{log}"
    );
    let db = app.db_url.clone();
    let (removed, again) = tokio::task::spawn_blocking(move || {
        (
            latchkey(&db, &["demo", "remove"]),
            latchkey(&db, &["demo", "remove"]),
        )
    })
    .await
    .expect("task");
    assert!(removed.status.success(), "{}", stderr(&removed));
    let mut expected_clients = vec![
        latchkey::demo::CONFIDENTIAL_ID.to_owned(),
        latchkey::demo::PUBLIC_ID.to_owned(),
        owned.id().to_owned(),
    ];
    expected_clients.sort();
    assert_eq!(
        stdout(&removed).trim(),
        format!(
            "removed users demo, admin; clients {}",
            expected_clients.join(", ")
        )
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stdout(&again).trim(), "no demo accounts or clients found");

    // Gone with their tokens; everyone and everything else stays.
    for name in [latchkey::demo::USERNAME, latchkey::demo::ADMIN_USERNAME] {
        assert!(app
            .services
            .accounts
            .find_by_login(name)
            .await
            .expect("db")
            .is_none());
    }
    for id in &expected_clients {
        assert!(app.services.clients.find(id).await.expect("db").is_none());
    }
    let me = app.get_with_bearer("/api/me", &demo_token).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    assert!(app
        .services
        .accounts
        .find(ann.id.clone())
        .await
        .expect("db")
        .is_some());
    assert!(app
        .services
        .clients
        .find(mine.id())
        .await
        .expect("db")
        .is_some());
    let events = app.audit_events("demo.removed").await;
    assert_eq!(
        events.len(),
        1,
        "one event, for the run that removed something"
    );
    assert!(
        events[0].details.contains(r#""users":["demo","admin"]"#),
        "{}",
        events[0].details
    );

    // A real account called "admin" (a password of its own) is neither removed nor stops
    // production.
    let admin = app.create_user("admin").await;
    let db = app.db_url.clone();
    let kept = tokio::task::spawn_blocking(move || latchkey(&db, &["demo", "remove"]))
        .await
        .expect("task");
    assert_eq!(stdout(&kept).trim(), "no demo accounts or clients found");
    assert!(app
        .services
        .accounts
        .find(admin.id.clone())
        .await
        .expect("db")
        .is_some());
    let port = free_port();
    let _server = start_production(dir.path(), &app.db_url, port);
    wait_ready(&format!("http://127.0.0.1:{port}")).await;
}

/// `demo remove` reads what to delete inside its transaction: a client the demo user registers
/// while it runs is deleted with the user, never left behind without an owner (which would make
/// it an operator's client, trusted by the endpoints).
#[tokio::test]
async fn demo_remove_takes_the_clients_a_demo_user_registers_meanwhile() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let app = spawn_app().await;
    latchkey::demo::ensure(&app.services, &app.address)
        .await
        .expect("demo rows");
    let demo = app
        .services
        .accounts
        .find_by_login(latchkey::demo::USERNAME)
        .await
        .expect("db")
        .expect("demo user");
    let stop = Arc::new(AtomicBool::new(false));
    let registering = {
        let services = app.services.clone();
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut n = 0_u32;
            while !stop.load(Ordering::SeqCst) {
                let spec = latchkey::clients::ClientSpec {
                    name: format!("Race {n}"),
                    owner_id: Some(demo.id.clone()),
                    require_pkce: true,
                    ..crate::helpers::spec("confidential", &["authorization_code"])
                };
                if services
                    .clients
                    .register(&latchkey::audit::Actor::system(), &spec)
                    .await
                    .is_err()
                {
                    break; // the owner is gone
                }
                n += 1;
                tokio::task::yield_now().await;
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    latchkey::demo::remove(&app.services, &latchkey::audit::Actor::system())
        .await
        .expect("demo remove");
    stop.store(true, Ordering::SeqCst);
    let registered = registering.await.expect("registering task");
    assert!(registered > 0, "the race never started");
    let orphans: Vec<String> = app
        .services
        .clients
        .list()
        .await
        .expect("clients")
        .into_iter()
        .filter(|c| c.name().starts_with("Race "))
        .map(|c| format!("{} (owner {:?})", c.name(), c.owner_id()))
        .collect();
    assert!(orphans.is_empty(), "left behind: {orphans:?}");
}

/// The help names the real password minimum (`accounts.min_password_length`), not a stale one.
#[tokio::test]
async fn user_create_help_gives_the_real_password_minimum() {
    let output = tokio::task::spawn_blocking(|| {
        latchkey("sqlite://unused.db", &["user", "create", "--help"])
    })
    .await
    .expect("task");
    let help = stdout(&output);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!help.contains("8 characters"), "{help}");
    assert!(help.contains("min_password_length"), "{help}");
    assert!(help.contains("12 by default"), "{help}");
}

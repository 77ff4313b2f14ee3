//! Durability of answered tokens (issue 13): a token answered 200 is committed — on SQLite
//! through the writer's group commit — so it survives the server being killed with SIGKILL the
//! moment after.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::sync::Mutex;

use crate::helpers::{spawn_app, spec, TEST_KEY};

/// A `latchkey serve` process (killed if the test fails before killing it).
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn tokens_answered_before_a_sigkill_are_all_stored() {
    let app = spawn_app().await;
    let (client, secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let secret = secret.expect("secret");
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .arg("serve")
            .env("LATCHKEY_DATABASE__URL", &app.db_url)
            .env("LATCHKEY_SECRETS__SECRET_KEY", TEST_KEY)
            .env("LATCHKEY_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("LATCHKEY_SERVER__DATA_DIR", dir.path())
            .env("LATCHKEY_LOG__LEVEL", "warn")
            .env_remove("LATCHKEY_TEST_POSTGRES_URL")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start latchkey serve"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map_or(true, |r| r.status() != StatusCode::OK)
    {
        assert!(Instant::now() < deadline, "serve did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 32 connections issue tokens without pause; the server is killed once 300 have been
    // answered, with more in flight.
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (http, url, id, secret, answered) = (
            http.clone(),
            format!("{base}/o/token/"),
            client.id().to_owned(),
            secret.clone(),
            answered.clone(),
        );
        clients.spawn(async move {
            loop {
                let Ok(response) = http
                    .post(&url)
                    .basic_auth(&id, Some(&secret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                else {
                    return;
                };
                if response.status() != StatusCode::OK {
                    return;
                }
                let Ok(body) = response.json::<serde_json::Value>().await else {
                    return;
                };
                let token = body["access_token"].as_str().expect("token").to_owned();
                answered.lock().await.push(token);
            }
        });
    }
    while answered.lock().await.len() < 300 {
        assert!(Instant::now() < deadline, "too few tokens issued");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.0.kill().expect("SIGKILL");
    let _ = server.0.wait();
    while clients.join_next().await.is_some() {}
    let answered = answered.lock().await.clone();
    assert!(answered.len() >= 300);
    // Every answered token is in the database (read by the in-process node).
    for token in &answered {
        let (status, body) = app
            .post_oauth(
                "/o/introspect/",
                &[("token", token)],
                Some((client.id(), &secret)),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["active"], true, "a token answered 200 was lost");
    }
}

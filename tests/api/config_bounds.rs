//! Duration settings are bounded (issue 9, item 16): a `rate_limits.window_seconds` too large
//! for the calendar once started a server on which every login panicked; now the binary
//! refuses it before anything starts, and the largest accepted window works.

use std::process::{Command, Stdio};

use reqwest::StatusCode;

use crate::helpers::{spawn_app_with, spec, test_database, TEST_KEY};

/// Runs `latchkey check` against a fresh database with one extra environment variable.
async fn check_with(name: &str, value: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("dir");
    let (db_url, _) = test_database(dir.path()).await;
    let (name, value) = (name.to_owned(), value.to_owned());
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .arg("check")
            .env(name, value)
            .env("LATCHKEY_DATABASE__URL", db_url)
            .env("LATCHKEY_SECRETS__SECRET_KEY", TEST_KEY)
            .env("LATCHKEY_SERVER__DATA_DIR", dir.path())
            .env_remove("LATCHKEY_TEST_POSTGRES_URL")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run latchkey")
    })
    .await
    .expect("latchkey task")
}

#[tokio::test]
async fn latchkey_check_refuses_an_out_of_range_window_and_names_the_range() {
    let out = check_with("LATCHKEY_RATE_LIMITS__WINDOW_SECONDS", "10000000000000").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "rate_limits.window_seconds must be between 1 and 604800 seconds (got 10000000000000)"
        ),
        "{stderr}"
    );
    for (name, value, message) in [
        (
            "LATCHKEY_RATE_LIMITS__WINDOW_SECONDS",
            "0",
            "rate_limits.window_seconds",
        ),
        (
            "LATCHKEY_TOKENS__AUTHORIZATION_CODE_SECONDS",
            "601",
            "tokens.authorization_code_seconds must be between 1 and 600",
        ),
        (
            "LATCHKEY_EMAIL__SMTP_TIMEOUT_SECONDS",
            "0",
            "email.smtp_timeout_seconds must be between 1 and 300",
        ),
    ] {
        let out = check_with(name, value).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {stderr}");
        assert!(stderr.contains(message), "{name}={value}: {stderr}");
    }
    // In range, the check passes.
    let out = check_with("LATCHKEY_RATE_LIMITS__WINDOW_SECONDS", "604800").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_largest_window_counts_failed_logins_without_failing() {
    let app = spawn_app_with(
        "[rate_limits]\nwindow_seconds = 604800\nfailed_logins_per_account = 2\nfailed_logins_per_ip = 2\n",
    )
    .await;
    app.create_user("wes").await;
    let (client, secret) = app.register(&spec("confidential", &["password"])).await;
    let secret = secret.expect("secret");
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let response = app
            .api
            .post(app.url("/o/token/"))
            .basic_auth(client.id(), Some(&secret))
            .form(&[
                ("grant_type", "password"),
                ("username", "wes"),
                ("password", "not the password"),
            ])
            .send()
            .await
            .expect("token request");
        statuses.push(response.status());
        if let Some(v) = response.headers().get("retry-after") {
            retry_after = Some(v.to_str().expect("ascii").parse::<u64>().expect("seconds"));
        }
    }
    // Refused attempts answer 400, then 429 once a limit is reached; never a server error.
    assert_eq!(statuses[0], StatusCode::BAD_REQUEST, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::BAD_REQUEST || *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    if let Some(retry_after) = retry_after {
        assert!(
            (1..=604_800).contains(&retry_after),
            "Retry-After {retry_after}"
        );
    }
}

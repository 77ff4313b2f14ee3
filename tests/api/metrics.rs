//! Prometheus metrics at `/metrics` (issue 13, Operations): the counters move with what
//! happens, routes are labelled by pattern, and `[metrics]` decides where it is served and who
//! may read it.
//!
//! The recorder is global to the test process, so tests compare values before and after what
//! they do (other tests running at the same time only ever add to them).

use reqwest::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::StatusCode;

use crate::helpers::{spawn_app, spawn_app_with, spec, TestApp};

const OPEN: &str = "[metrics]\nenabled = true\nallow_unauthenticated = true\n";
const TOKEN: &str = "metrics-token-0123456789abcdef";

/// `/metrics` of `app` (served without a token).
async fn scrape(app: &TestApp) -> String {
    let response = app
        .api
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().await.expect("text")
}

/// The value of the series `name` whose labels include every one of `labels` (the first such
/// line), if there is one.
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(series, _)| {
            let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
            series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v.parse().expect("a number"))
}

/// [`series`], 0 when there is none yet.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    series(text, name, labels).unwrap_or(0.0)
}

#[tokio::test]
async fn counters_move_with_tokens_failed_logins_and_tripped_limits() {
    let app = spawn_app_with(&format!(
        "{OPEN}[rate_limits]\nfailed_logins_per_ip = 2\nfailed_logins_per_account = 1000\n"
    ))
    .await;
    app.create_user("mia").await;
    let (client, secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let before = scrape(&app).await;

    let (status, body) = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((client.id(), secret.as_deref().expect("secret"))),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.try_login("mia", "wrong password").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.try_login("mia", "wrong again").await,
        StatusCode::UNAUTHORIZED
    );
    // The per-address limit (2) refuses the third.
    assert_eq!(
        app.try_login("mia", "and again").await,
        StatusCode::TOO_MANY_REQUESTS
    );

    let after = scrape(&app).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert!(
        moved(
            "latchkey_tokens_issued_total",
            &[("grant_type", "client_credentials")]
        ) >= 1.0,
        "{after}"
    );
    let page = |outcome| [("via", "login_page"), ("outcome", outcome)];
    assert!(moved("latchkey_logins_total", &page("failure")) >= 2.0);
    assert!(moved("latchkey_logins_total", &page("locked")) >= 1.0);
    assert!(moved("latchkey_limits_tripped_total", &[("limit", "login:ip")]) >= 1.0);
    // Requests by route pattern, method and status, with buckets from 0.5 ms to 10 s.
    let token = [
        ("route", "/o/token/"),
        ("method", "POST"),
        ("status", "200"),
    ];
    assert!(moved("latchkey_http_request_duration_seconds_count", &token) >= 1.0);
    let buckets = ["0.0005", "0.001", "0.01", "0.1", "1", "10", "+Inf"];
    for le in buckets {
        let bucket = [token[0], token[1], token[2], ("le", le)];
        let count = series(
            &after,
            "latchkey_http_request_duration_seconds_bucket",
            &bucket,
        );
        assert!(
            count.is_some_and(|c| c >= 0.0),
            "no le={le} bucket: {after}"
        );
    }
    let all = [token[0], token[1], token[2], ("le", "+Inf")];
    assert!(
        value(
            &after,
            "latchkey_http_request_duration_seconds_bucket",
            &all
        ) >= 1.0
    );
    let refused = [
        ("route", "/accounts/login/"),
        ("method", "POST"),
        ("status", "429"),
    ];
    assert!(moved("latchkey_http_request_duration_seconds_count", &refused) >= 1.0);
    // The database pools (test servers have 4 connections) and the time waited for them.
    let pools: &[&str] = if app.backend == "sqlite" {
        // Writes go through the writer thread's one connection, which is not a pool.
        &["reader"]
    } else {
        &["shared"]
    };
    for pool in pools {
        let max = value(
            &after,
            "latchkey_db_pool_max_connections",
            &[("pool", pool)],
        );
        assert_eq!(max, if *pool == "writer" { 1.0 } else { 4.0 }, "{after}");
        for state in ["in_use", "idle"] {
            assert!(after.contains(&format!(
                "latchkey_db_pool_connections{{pool=\"{pool}\",state=\"{state}\"}}"
            )));
        }
        assert!(
            value(
                &after,
                "latchkey_db_pool_wait_seconds_count",
                &[("pool", pool)]
            ) >= 1.0
        );
    }
    // On SQLite the writes queue for the writer thread: their wait is recorded too.
    if app.backend == "sqlite" {
        assert!(
            value(
                &after,
                "latchkey_db_pool_wait_seconds_count",
                &[("pool", "writer")]
            ) >= 1.0,
            "{after}"
        );
    }
    // The argon2 slots (one per core here) and their queue, sampled at the scrape.
    assert!(
        value(&after, "latchkey_argon2_slots", &[]) >= 1.0,
        "{after}"
    );
    for gauge in [
        "latchkey_argon2_in_flight",
        "latchkey_argon2_queue_length",
        "latchkey_password_policy_queue_length",
    ] {
        assert!(after.contains(&format!("\n{gauge} ")), "{gauge}: {after}");
    }
    assert!(after.contains("latchkey_build_info{version=\""));
    assert!(after.contains("# TYPE latchkey_http_request_duration_seconds histogram"));
}

#[tokio::test]
async fn routes_are_labelled_by_pattern_never_by_path() {
    let app = spawn_app_with(OPEN).await;
    for path in [
        "/o/applications/Zq7secretish/",
        "/accounts/password-reset-confirm/dXNlcg/k2-resettoken/",
        "/no/such/page/xq9unrouted",
    ] {
        let response = app.api.get(app.url(path)).send().await.expect("get");
        assert!(response.status().as_u16() < 500, "{path}");
    }
    let text = scrape(&app).await;
    for pattern in [
        "/o/applications/{client_id}/",
        "/accounts/password-reset-confirm/{uidb64}/{token}/",
    ] {
        assert!(
            text.contains(&format!("route=\"{pattern}\"")),
            "{pattern}: {text}"
        );
    }
    assert!(text.contains(r#"route="unmatched",method="GET",status="404""#));
    for raw in ["Zq7secretish", "k2-resettoken", "xq9unrouted", "dXNlcg"] {
        assert!(!text.contains(raw), "{raw} leaked into the metrics");
    }
}

#[tokio::test]
async fn metrics_are_off_by_default() {
    let app = spawn_app().await;
    let response = app.api.get(app.url("/metrics")).send().await.expect("get");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_separate_listener_serves_metrics_and_nothing_else() {
    let app = spawn_app_with("[metrics]\nenabled = true\nlisten = \"127.0.0.1:0\"\n").await;
    let metrics = app.metrics_address.clone().expect("a metrics listener");
    // Not on the main listener any more.
    let main = app.api.get(app.url("/metrics")).send().await.expect("get");
    assert_eq!(main.status(), StatusCode::NOT_FOUND);
    // On its own, without a token (none is set).
    let scraped = app
        .api
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(scraped.status(), StatusCode::OK);
    assert!(scraped.headers().contains_key("x-request-id"));
    assert!(scraped
        .text()
        .await
        .expect("text")
        .contains("latchkey_build_info"));
    // Nothing of the application is served there.
    for path in [
        "/",
        "/o/token/",
        "/healthz",
        "/.well-known/openid-configuration",
    ] {
        let response = app
            .api
            .get(format!("{metrics}{path}"))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let posted = app
        .api
        .post(format!("{metrics}/metrics"))
        .send()
        .await
        .expect("post");
    assert_eq!(posted.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_bearer_token_is_required_when_set() {
    for listen in ["", "127.0.0.1:0"] {
        let app = spawn_app_with(&format!(
            "[metrics]\nenabled = true\nlisten = \"{listen}\"\nbearer_token = \"{TOKEN}\"\n"
        ))
        .await;
        let url = format!(
            "{}/metrics",
            app.metrics_address.clone().unwrap_or(app.address.clone())
        );
        // RFC 6750 §3.1: no credentials, a bare challenge.
        let bare = app.api.get(&url).send().await.expect("get");
        assert_eq!(bare.status(), StatusCode::UNAUTHORIZED, "{listen:?}");
        assert_eq!(
            bare.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"latchkey\""
        );
        assert!(bare.headers().contains_key("x-request-id"));
        let wrong = app
            .api
            .get(&url)
            .bearer_auth("metrics-token-0123456789abcdeX")
            .send()
            .await
            .expect("get");
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert!(wrong.headers()[WWW_AUTHENTICATE]
            .to_str()
            .expect("ascii")
            .contains("error=\"invalid_token\""));
        let body: serde_json::Value = wrong.json().await.expect("json");
        assert_eq!(body["error"], "invalid_token");
        let basic = app
            .api
            .get(&url)
            .basic_auth("prometheus", Some(TOKEN))
            .send()
            .await
            .expect("get");
        assert_eq!(basic.status(), StatusCode::BAD_REQUEST);
        let right = app
            .api
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("get");
        assert_eq!(right.status(), StatusCode::OK);
        assert!(right
            .text()
            .await
            .expect("text")
            .contains("latchkey_http_request_duration_seconds"));
    }
}

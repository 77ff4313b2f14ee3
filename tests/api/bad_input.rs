//! Hostile and malformed input: always a 4xx with an RFC-shaped body, never a 5xx.

use reqwest::StatusCode;

use crate::helpers::{spawn_app, spec};

const ENDPOINTS: [&str; 3] = ["/o/token/", "/o/introspect/", "/o/revoke_token/"];

#[tokio::test]
async fn malformed_bodies_get_invalid_request() {
    let app = spawn_app().await;
    let (client, secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let secret = secret.expect("secret");
    let form = "application/x-www-form-urlencoded";
    let cases: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
        (
            "json body",
            Some("application/json"),
            br#"{"grant_type":"client_credentials"}"#.to_vec(),
        ),
        (
            "no content type",
            None,
            b"grant_type=client_credentials".to_vec(),
        ),
        (
            "repeated parameter",
            Some(form),
            b"grant_type=client_credentials&grant_type=client_credentials".to_vec(),
        ),
        (
            "invalid utf-8",
            Some(form),
            b"grant_type=client_credentials&scope=\xff\xfe".to_vec(),
        ),
        (
            "invalid percent utf-8",
            Some(form),
            b"grant_type=client_credentials&scope=%C3%28".to_vec(),
        ),
        (
            "multipart",
            Some("multipart/form-data; boundary=x"),
            b"--x--".to_vec(),
        ),
    ];
    for path in ENDPOINTS {
        for (name, content_type, body) in &cases {
            let mut request = app
                .api
                .post(app.url(path))
                .basic_auth(client.id(), Some(&secret))
                .body(body.clone());
            if let Some(ct) = content_type {
                request = request.header("content-type", *ct);
            }
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path} {name}");
            assert_eq!(
                response.headers()["content-type"],
                "application/json",
                "{path} {name}"
            );
            let body: serde_json::Value = response.json().await.expect("json");
            assert_eq!(body["error"], "invalid_request", "{path} {name}");
            assert!(body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()));
        }
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = spawn_app().await;
    let big = format!("grant_type=client_credentials&pad={}", "a".repeat(70_000));
    for path in ENDPOINTS {
        let response = app
            .api
            .post(app.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(big.clone())
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error"], "invalid_request");
    }
}

#[tokio::test]
async fn garbage_credentials_and_tokens_never_cause_a_server_error() {
    let app = spawn_app().await;
    let (client, secret) = app
        .register(&spec(
            "confidential",
            &["client_credentials", "refresh_token", "authorization_code"],
        ))
        .await;
    let secret = secret.expect("secret");
    let headers = [
        "Basic",
        "Basic ",
        "Basic ====",
        "Basic AAAA",
        "Basic \u{0}",
        "Bearer x",
        "basic Og==",
        "Digest username=x",
    ];
    for header in headers {
        for path in ENDPOINTS {
            let response = app
                .api
                .post(app.url(path))
                .header("authorization", header)
                .form(&[("grant_type", "client_credentials"), ("token", "x")])
                .send()
                .await;
            let Ok(response) = response else { continue }; // the client library refused to send it
            assert!(
                response.status().is_client_error(),
                "{path} {header:?}: {}",
                response.status()
            );
        }
    }
    // Very long identifiers never reach storage (PostgreSQL would refuse them as index keys).
    let long = "x".repeat(3000);
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &long),
                ("client_secret", "x"),
            ],
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", &long),
                ("password", "x"),
            ],
            Some((client.id(), &secret)),
        )
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    let nasty = [
        "",
        "\u{0}",
        "' OR 1=1 --",
        "%00",
        &"x".repeat(4000),
        "ünïcödé",
        "<script>",
        "a b",
        "\t",
    ];
    for value in nasty {
        for (grant, key) in [
            ("refresh_token", "refresh_token"),
            ("authorization_code", "code"),
        ] {
            let (status, body) = app
                .post_token(
                    &[
                        ("grant_type", grant),
                        (key, value),
                        ("code_verifier", value),
                        ("redirect_uri", value),
                    ],
                    Some((client.id(), &secret)),
                )
                .await;
            assert!(
                status.is_client_error(),
                "{grant} {value:?}: {status} {body}"
            );
            assert!(body["error"].is_string());
        }
        for path in ["/o/introspect/", "/o/revoke_token/"] {
            let (status, _) = app
                .post_oauth(path, &[("token", value)], Some((client.id(), &secret)))
                .await;
            assert!(
                status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
                "{path} {value:?}: {status}"
            );
        }
        let response = app
            .api
            .get(app.url("/api/me"))
            .header("authorization", format!("Bearer {value}").trim())
            .send()
            .await;
        if let Ok(response) = response {
            assert!(response.status().is_client_error());
        }
    }
}

#[tokio::test]
async fn hostile_authorization_requests_get_pages_not_errors() {
    let app = spawn_app().await;
    let queries = [
        "%",
        "client_id=%ff",
        "client_id=a&client_id=b",
        "response_type=code&client_id=%00",
        "response_type=code&client_id=x&redirect_uri=javascript:alert(1)",
        "response_type=code&client_id=<script>alert(1)</script>",
    ];
    for query in queries {
        let response = app.browse(&format!("/o/authorize/?{query}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let html = response.text().await.expect("html");
        assert!(!html.contains("<script>alert"), "output is escaped");
    }
}

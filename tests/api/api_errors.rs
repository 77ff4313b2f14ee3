//! Every JSON API (`/api/…`) answers a refusal in one shape (issue 10, item 5): a JSON body
//! with `error` — one of the codes the README's "Errors of the JSON APIs" table lists, sent
//! with its status — and a non-empty `error_description`, `fields` (field → messages) when named
//! fields are wrong, `Cache-Control: no-store`, `Retry-After` on 429, and an RFC 6750 §3
//! challenge on 401.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, spec, TestApp, PASSWORD};

/// The README's table: code → status.
fn documented_codes() -> BTreeMap<String, u16> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("### Errors of the JSON APIs")
        .nth(1)
        .expect("the README documents the JSON API errors");
    section
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| {
            let mut cells = l.split('|').map(str::trim);
            let code = cells.next().expect("code").trim_end_matches('`').to_owned();
            let status = cells.next().expect("status").parse().expect("a status");
            (code, status)
        })
        .collect()
}

/// One request to a JSON API.
struct Case {
    method: Method,
    path: String,
    token: Option<String>,
    /// A JSON body; `None` sends no body (and no content type).
    body: Option<Value>,
}

impl Case {
    fn get(path: &str, token: Option<&str>) -> Self {
        Self {
            method: Method::GET,
            path: path.to_owned(),
            token: token.map(str::to_owned),
            body: None,
        }
    }

    fn post(path: &str, token: Option<&str>, body: Option<Value>) -> Self {
        Self {
            method: Method::POST,
            path: path.to_owned(),
            token: token.map(str::to_owned),
            body,
        }
    }
}

/// Sends `case` and checks that the answer is `status` with `code`, in the one shape; returns
/// the body.
async fn refused(app: &TestApp, case: &Case, status: StatusCode, code: &str) -> Value {
    let what = format!("{} {}", case.method, case.path);
    let mut request = app.api.request(case.method.clone(), app.url(&case.path));
    if let Some(token) = &case.token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = &case.body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request");
    assert_eq!(response.status(), status, "{what}");
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json", "{what}");
    assert!(
        headers["cache-control"]
            .to_str()
            .expect("ascii")
            .contains("no-store"),
        "{what}"
    );
    if status == StatusCode::TOO_MANY_REQUESTS {
        let seconds: u64 = headers["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("Retry-After in seconds");
        assert!(seconds >= 1, "{what}");
    }
    if status == StatusCode::UNAUTHORIZED {
        assert!(
            headers["www-authenticate"]
                .to_str()
                .expect("ascii")
                .starts_with("Bearer realm=\"latchkey\""),
            "{what}"
        );
    }
    let body: Value = response.json().await.expect("a JSON body");
    let object = body.as_object().expect("an object");
    for key in object.keys() {
        assert!(
            ["error", "error_description", "fields"].contains(&key.as_str()),
            "{what}: unexpected key {key} in {body}"
        );
    }
    assert_eq!(body["error"], code, "{what}: {body}");
    assert!(
        documented_codes().contains_key(code),
        "{what}: {code} is not in the README's table"
    );
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{what}: {body}"
    );
    if let Some(fields) = body.get("fields") {
        assert_eq!(code, "invalid_request", "{what}");
        for (field, messages) in fields.as_object().expect("fields is an object") {
            let messages = messages.as_array().expect("a list of messages");
            assert!(!messages.is_empty(), "{what}: {field}");
            assert!(messages.iter().all(Value::is_string), "{what}: {field}");
        }
    }
    body
}

/// An access token for `username` with `scope`, from a password-grant client allowed `admin`.
async fn token_for(app: &TestApp, username: &str, scope: &str) -> String {
    let mut client_spec = spec("confidential", &["password"]);
    client_spec.scopes = ["admin", "profile", "email"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let (client, secret) = app.register(&client_spec).await;
    let secret = secret.expect("secret");
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", PASSWORD),
                ("scope", scope),
            ],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn every_json_api_refusal_has_one_shape_and_a_documented_code() {
    let app = spawn_app().await;
    app.create_staff("root").await;
    app.create_user("ann").await;
    let staff = token_for(&app, "root", "admin").await;
    let user_admin = token_for(&app, "ann", "admin").await;
    let email_only = token_for(&app, "ann", "email").await;

    let cases = [
        // Tokens (RFC 6750 §3).
        (Case::get("/api/me", None), 401, "invalid_request"),
        (Case::get("/api/me", Some("garbage")), 401, "invalid_token"),
        (Case::get("/api/me", Some("a b")), 400, "invalid_request"),
        (
            Case::get("/api/me", Some(&email_only)),
            403,
            "insufficient_scope",
        ),
        (Case::get("/api/users/", None), 401, "invalid_request"),
        (
            Case::get("/api/users/", Some(&email_only)),
            403,
            "insufficient_scope",
        ),
        (
            Case::get("/api/users/", Some(&user_admin)),
            403,
            "forbidden",
        ),
        (
            Case::get("/api/users/?page=0", Some(&staff)),
            400,
            "invalid_request",
        ),
        (
            Case::get("/api/users/no-such-user/", Some(&staff)),
            404,
            "not_found",
        ),
        (
            Case::post("/api/logout/", None, Some(json!({"refresh_token": "x"}))),
            401,
            "invalid_request",
        ),
        (
            Case::post("/api/logout/", Some(&staff), None),
            415,
            "invalid_request",
        ),
        (
            Case::post("/api/logout/", Some(&staff), Some(json!({}))),
            400,
            "invalid_request",
        ),
        (
            Case::post(
                "/api/logout/",
                Some(&staff),
                Some(json!({"refresh_token": "not-a-token"})),
            ),
            400,
            "invalid_token",
        ),
        (
            Case::post("/api/logout_all/", Some("garbage"), None),
            401,
            "invalid_token",
        ),
        // Routing: a method a route does not answer, a path nothing answers.
        (Case::get("/api/register/", None), 405, "invalid_request"),
        (
            Case::post("/api/users/", Some(&staff), Some(json!({}))),
            405,
            "invalid_request",
        ),
        (Case::get("/api/no-such-thing/", None), 404, "not_found"),
        // The account API.
        (
            Case::post("/api/register/", None, Some(json!({}))),
            400,
            "invalid_request",
        ),
        (
            Case::post(
                "/api/register/",
                None,
                Some(json!({"email": "a\u{0}b@example.com"})),
            ),
            400,
            "invalid_request",
        ),
        (
            Case::post(
                "/api/verify-otp/",
                None,
                Some(json!({"email": "nobody@example.com", "otp": "000000"})),
            ),
            400,
            "invalid_otp",
        ),
        (
            Case::post("/api/verify-otp/", None, Some(json!({"email": ""}))),
            400,
            "invalid_request",
        ),
        (
            Case::get("/api/activate/AAAA/nope/", None),
            400,
            "invalid_link",
        ),
        (
            Case::post("/api/resend-otp/", None, Some(json!({}))),
            400,
            "invalid_request",
        ),
        (
            Case::post(
                "/api/password-reset/",
                None,
                Some(json!({"email": "not an address"})),
            ),
            400,
            "invalid_request",
        ),
        (
            Case::post(
                "/api/password-reset-confirm/AAAA/nope/",
                None,
                Some(json!({"password": "x", "confirm_password": "x"})),
            ),
            400,
            "invalid_link",
        ),
    ];
    for (case, status, code) in &cases {
        refused(
            &app,
            case,
            StatusCode::from_u16(*status).expect("status"),
            code,
        )
        .await;
    }

    // Field errors name every wrong field, as lists of messages.
    let body = refused(
        &app,
        &Case::post("/api/register/", None, Some(json!({}))),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert!(body["fields"]["email"][0].is_string(), "{body}");
    assert!(body["fields"]["password"][0].is_string(), "{body}");
    let body = refused(
        &app,
        &Case::post(
            "/api/password-reset/",
            None,
            Some(json!({"email": "not an address"})),
        ),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert!(body["fields"]["email"][0].is_string(), "{body}");

    // Limits: 429 with Retry-After, whichever limit.
    let again = Case::post(
        "/api/password-reset/",
        None,
        Some(json!({"email": "ann@example.com"})),
    );
    let first = app
        .api
        .post(app.url("/api/password-reset/"))
        .json(&json!({"email": "ann@example.com"}))
        .send()
        .await
        .expect("request");
    assert_eq!(first.status(), StatusCode::OK);
    refused(
        &app,
        &again,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
    )
    .await;
    let resend = Case::post(
        "/api/resend-otp/",
        None,
        Some(json!({"email": "someone@example.com"})),
    );
    let first = app
        .api
        .post(app.url("/api/resend-otp/"))
        .json(&json!({"email": "someone@example.com"}))
        .send()
        .await
        .expect("request");
    assert_eq!(first.status(), StatusCode::OK);
    refused(
        &app,
        &resend,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
    )
    .await;
}

#[tokio::test]
async fn switched_off_features_answer_their_documented_codes() {
    let app =
        spawn_app_with("[accounts]\nregistration = \"closed\"\nemail_verification = \"off\"").await;
    let cases = [
        (
            Case::post(
                "/api/register/",
                None,
                Some(json!({
                    "email": "ada@example.com",
                    "password": PASSWORD,
                    "confirm_password": PASSWORD,
                })),
            ),
            "registration_closed",
        ),
        (
            Case::post(
                "/api/resend-otp/",
                None,
                Some(json!({"email": "ada@example.com"})),
            ),
            "verification_disabled",
        ),
        (
            Case::post(
                "/api/verify-otp/",
                None,
                Some(json!({"email": "ada@example.com", "otp": "123456"})),
            ),
            "verification_disabled",
        ),
        (
            Case::get("/api/activate/AAAA/nope/", None),
            "verification_disabled",
        ),
    ];
    for (case, code) in &cases {
        refused(&app, case, StatusCode::FORBIDDEN, code).await;
    }
}

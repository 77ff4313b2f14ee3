//! `GET /api/openapi.json`: an OpenAPI 3.1 document listing the JSON APIs, and real answers of
//! the server in the shapes it names. (The thorough check, schemathesis against a live server,
//! is `tests/schemathesis.sh`, run by `.ci/run`.)

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app, spec};

/// Every documented path with its methods.
const OPERATIONS: &[(&str, &[&str])] = &[
    ("/api/me", &["get"]),
    ("/api/logout/", &["post"]),
    ("/api/logout_all/", &["post"]),
    ("/api/register/", &["post"]),
    ("/api/verify-otp/", &["post"]),
    ("/api/activate/{uidb64}/{token}/", &["get"]),
    ("/api/resend-otp/", &["post"]),
    ("/api/resend-activation-email/", &["post"]),
    ("/api/password-reset/", &["post"]),
    ("/api/password-reset-confirm/{uidb64}/{token}/", &["post"]),
    ("/api/users/", &["get"]),
    ("/api/users/{id}/", &["get"]),
    ("/api/google/", &["post"]),
    ("/accounts/api/google/", &["post"]),
    ("/o/token/", &["post"]),
    ("/o/introspect/", &["post"]),
    ("/o/revoke_token/", &["post"]),
    ("/o/userinfo/", &["get", "post"]),
];

async fn document(app: &crate::helpers::TestApp) -> Value {
    let response = app
        .api
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    response.json().await.expect("the document is JSON")
}

/// The component schema `name`.
fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    schema
}

/// `body` has only properties of `schema` and every required one; `error` is one of the
/// documented codes when the schema names them.
fn conforms(doc: &Value, body: &Value, name: &str) {
    let schema = schema(doc, name);
    let properties = schema["properties"].as_object().expect("properties");
    let object = body.as_object().unwrap_or_else(|| panic!("{name}: {body}"));
    for key in object.keys() {
        assert!(properties.contains_key(key), "{name} has no {key}: {body}");
    }
    for required in schema["required"].as_array().into_iter().flatten() {
        let key = required.as_str().expect("a name");
        assert!(object.contains_key(key), "{name} requires {key}: {body}");
    }
    if let Some(reference) = properties
        .get("error")
        .and_then(|e| e["$ref"].as_str())
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
    {
        let codes = schema_codes(doc, reference);
        let code = body["error"].as_str().expect("an error code");
        assert!(
            codes.iter().any(|c| c == code),
            "{code} is not in {reference}"
        );
    }
}

fn schema_codes(doc: &Value, name: &str) -> Vec<String> {
    schema(doc, name)["enum"]
        .as_array()
        .expect("an enum")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_openapi_document_is_openapi_3_1_and_lists_the_json_apis() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Latchkey");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["servers"][0]["url"], app.address.as_str());
    let paths = doc["paths"].as_object().expect("paths");
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = OPERATIONS.iter().map(|(path, _)| *path).collect();
    assert_eq!(documented, expected);
    for (path, methods) in OPERATIONS {
        let item = paths[*path].as_object().expect("a path item");
        let documented: Vec<&str> = item.keys().map(String::as_str).collect();
        assert_eq!(&documented, methods, "{path}");
        for method in *methods {
            let operation = &item[*method];
            assert!(operation["operationId"].is_string(), "{method} {path}");
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} has no success"
            );
            // Every refusal is documented with a JSON body.
            for (status, response) in responses.iter().filter(|(s, _)| !s.starts_with('2')) {
                let response = match response["$ref"].as_str() {
                    Some(r) => {
                        &doc["components"]["responses"]
                            [r.trim_start_matches("#/components/responses/")]
                    }
                    None => response,
                };
                assert!(
                    response["content"]["application/json"]["schema"].is_object(),
                    "{method} {path} {status}"
                );
            }
        }
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["client_secret_basic"]["scheme"], "basic");
    assert_eq!(
        doc["paths"]["/api/users/"]["get"]["security"],
        serde_json::json!([{"bearer": ["admin"]}])
    );

    // Served like the discovery document, and only to GET.
    let post = app
        .api
        .post(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("request");
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
}

/// Real answers — success and refusal, JSON API and protocol endpoint — have the documented
/// shapes.
#[tokio::test]
async fn the_server_answers_in_the_documented_shapes() {
    let app = spawn_app().await;
    let doc = document(&app).await;

    let (client, secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let secret = secret.expect("a secret");
    let (status, tokens) = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    conforms(&doc, &tokens, "TokenResponse");
    let token = tokens["access_token"].as_str().expect("a token");

    let (status, refused) = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((client.id(), "wrong")),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    conforms(&doc, &refused, "OAuthError");

    let (status, introspection) = app
        .post_oauth(
            "/o/introspect/",
            &[("token", token)],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(introspection["active"], true);
    conforms(&doc, &introspection, "Introspection");

    // A client-credentials token has no user: /api/me refuses it as the document says.
    let me = app.get_with_bearer("/api/me", token).await;
    assert_eq!(me.status(), StatusCode::FORBIDDEN);
    conforms(&doc, &me.json().await.expect("json"), "ApiError");

    let register = app
        .api
        .post(app.url("/api/register/"))
        .json(&serde_json::json!({"email": "not an address", "password": "short"}))
        .send()
        .await
        .expect("request");
    assert_eq!(register.status(), StatusCode::BAD_REQUEST);
    let body: Value = register.json().await.expect("json");
    conforms(&doc, &body, "ApiError");
    assert!(body["fields"]["email"].is_array(), "{body}");
}

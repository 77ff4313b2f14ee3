//! A method a resource does not answer: `405` with `Allow` listing the methods it does
//! (RFC 9110 §15.5.6), and the body of its area (RFC 6749 §5.2 JSON on the OAuth endpoints, the
//! API's JSON error, a page on the hosted pages).

use reqwest::header::{ALLOW, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{spawn_app, TestApp};

/// Sends `method` to `path` from the API client (no cookies, no body).
async fn send(app: &TestApp, method: Method, path: &str) -> reqwest::Response {
    app.api
        .request(method.clone(), app.url(path))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// `response`'s `Allow` header; fails the test when there is none.
fn allow(what: &str, response: &reqwest::Response) -> String {
    response
        .headers()
        .get(ALLOW)
        .unwrap_or_else(|| panic!("{what}: 405 without Allow"))
        .to_str()
        .expect("Allow is text")
        .to_owned()
}

#[tokio::test]
async fn a_wrong_method_is_answered_with_the_allowed_ones() {
    let app = spawn_app().await;
    // (method, path, Allow, a JSON error body rather than a page)
    let cases = [
        (Method::GET, "/o/token/", "POST, OPTIONS", true),
        (Method::DELETE, "/o/token", "POST, OPTIONS", true),
        (Method::GET, "/o/introspect/", "POST", true),
        (
            Method::POST,
            "/.well-known/openid-configuration",
            "GET",
            true,
        ),
        (Method::PUT, "/o/userinfo/", "GET, POST, OPTIONS", true),
        (Method::POST, "/api/users/", "GET", true),
        (Method::GET, "/api/register/", "POST", true),
        (Method::GET, "/api/google/", "POST", true),
        (Method::DELETE, "/accounts/login/", "GET, POST", false),
        (Method::POST, "/admin/users/", "GET", false),
        (Method::PUT, "/o/applications/register/", "GET, POST", false),
    ];
    for (method, path, allowed, json) in cases {
        let what = format!("{method} {path}");
        let response = send(&app, method, path).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{what}");
        assert_eq!(allow(&what, &response), allowed, "{what}");
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await.expect("body");
        if json {
            assert!(
                content_type.starts_with("application/json"),
                "{what}: {content_type}"
            );
            let body: Value = serde_json::from_str(&body).expect("JSON body");
            assert_eq!(body["error"], "invalid_request", "{what}: {body}");
            assert!(body["error_description"].is_string(), "{what}: {body}");
        } else {
            assert!(
                content_type.starts_with("text/html"),
                "{what}: {content_type}"
            );
            assert!(body.contains("Method not allowed"), "{what}: {body}");
        }
    }
}

/// Every path of the route table (`src/routes/mod.rs`, path parameters filled with `x`):
/// `DELETE`, which no resource answers, is a 405 with `Allow`, and no method that `Allow`
/// lists is a 405.
#[tokio::test]
async fn every_resource_lists_the_methods_it_answers() {
    let app = spawn_app().await;
    let table = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes/mod.rs"))
        .expect("the route table");
    let mut refused = 0;
    for path in route_paths(&table) {
        for path in [path.clone(), path.trim_end_matches('/').to_owned()] {
            if path.is_empty() {
                continue;
            }
            let response = send(&app, Method::DELETE, &path).await;
            if response.status() != StatusCode::METHOD_NOT_ALLOWED {
                continue;
            }
            refused += 1;
            let allowed = allow(&format!("DELETE {path}"), &response);
            for method in allowed.split(", ") {
                let method = Method::from_bytes(method.as_bytes()).expect("a method");
                assert_ne!(method, Method::DELETE, "{path}: {allowed}");
                let status = send(&app, method.clone(), &path).await.status();
                assert_ne!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is listed in Allow: {allowed}"
                );
            }
        }
    }
    // About 90 resources, each with and without its trailing slash.
    assert!(refused >= 150, "only {refused} answers were 405");
}

/// The string literals that start with `/` in the route table, with every `{parameter}`
/// replaced by `x`.
fn route_paths(table: &str) -> Vec<String> {
    let mut paths: Vec<String> = table
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| literal.starts_with('/') && !literal.contains(' '))
        .map(|literal| {
            let mut path = String::new();
            let mut in_parameter = false;
            for c in literal.chars() {
                match c {
                    '{' => in_parameter = true,
                    '}' => {
                        in_parameter = false;
                        path.push('x');
                    }
                    _ if !in_parameter => path.push(c),
                    _ => {}
                }
            }
            path
        })
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

//! Health probes, RFC 8414 metadata, security headers, fallbacks.

use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let health = app
        .api
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("request");
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app
        .api
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("request");
    assert_eq!(ready.status(), StatusCode::OK);
}

#[tokio::test]
async fn metadata_advertises_only_what_exists() {
    let app = spawn_app().await;
    let response = app
        .api
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let meta: serde_json::Value = response.json().await.expect("json");
    assert_eq!(meta["issuer"], app.address.as_str());
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
    ] {
        let url = meta[key].as_str().expect("endpoint");
        assert!(url.starts_with(&app.address), "{key}");
        // Every endpoint exists: GET on a POST endpoint is 405, on authorize an error page.
        let status = app.api.get(url).send().await.expect("request").status();
        assert!(
            status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::BAD_REQUEST,
            "{key}: {status}"
        );
    }
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        meta["response_types_supported"],
        serde_json::json!(["code"])
    );
}

#[tokio::test]
async fn pages_carry_security_headers() {
    let app = spawn_app().await;
    let response = app.browse("/accounts/login/").await;
    assert_eq!(response.status(), StatusCode::OK);
    let h = response.headers();
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h["content-security-policy"]
        .to_str()
        .expect("ascii")
        .contains("frame-ancestors 'none'"));
    assert!(!h["content-security-policy"]
        .to_str()
        .expect("ascii")
        .contains("unsafe-inline"));
    assert_eq!(h["referrer-policy"], "no-referrer");
    let cookie = h["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(
        cookie.contains("httponly") && cookie.contains("samesite=lax"),
        "{cookie}"
    );
    let css = app.browse("/static/style.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    let css = css.text().await.expect("css");
    // Dark mode follows the system (issue 10, item 14); words break only where they must.
    assert!(css.contains("@media (prefers-color-scheme: dark)"));
    assert!(!css.contains("break-all"));
    // The favicon, linked from every page and where browsers look without a link.
    let home = app.browse("/").await.text().await.expect("html");
    assert!(
        home.contains(r#"<link rel="icon" href="/static/favicon.svg""#),
        "{home}"
    );
    for path in ["/static/favicon.svg", "/favicon.ico"] {
        let icon = app.browse(path).await;
        assert_eq!(icon.status(), StatusCode::OK, "{path}");
        assert_eq!(icon.headers()["content-type"], "image/svg+xml", "{path}");
        assert!(icon.text().await.expect("svg").starts_with("<svg"));
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_are_4xx() {
    let app = spawn_app().await;
    let api = app
        .api
        .get(app.url("/o/nothing"))
        .send()
        .await
        .expect("request");
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = api.json().await.expect("json");
    assert_eq!(body["error"], "not_found");
    let page = app
        .api
        .get(app.url("/nothing"))
        .send()
        .await
        .expect("request");
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    let wrong = app
        .api
        .get(app.url("/o/token/"))
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: serde_json::Value = wrong.json().await.expect("json");
    assert_eq!(body["error"], "invalid_request");
}

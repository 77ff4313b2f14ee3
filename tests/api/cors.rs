//! CORS for browser-based clients: only registered origins, checked per client.

use reqwest::StatusCode;

use crate::helpers::{spawn_app, spec};

#[tokio::test]
async fn registered_origins_get_cors_headers_and_others_do_not() {
    let app = spawn_app().await;
    let mut s = spec("confidential", &["client_credentials"]);
    s.allowed_origins = vec!["http://localhost:3000".into()];
    let (client, secret) = app.register(&s).await;
    let (other, other_secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;

    let preflight = app
        .api
        .request(reqwest::Method::OPTIONS, app.url("/o/token/"))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );

    let stranger = app
        .api
        .request(reqwest::Method::OPTIONS, app.url("/o/token/"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("preflight");
    assert!(stranger
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let allowed = app
        .api
        .post(app.url("/o/token/"))
        .header("origin", "http://localhost:3000")
        .basic_auth(client.id(), secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );

    // The origin belongs to another client: no CORS headers for this one.
    let refused = app
        .api
        .post(app.url("/o/token/"))
        .header("origin", "http://localhost:3000")
        .basic_auth(other.id(), other_secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("token");
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let meta = app
        .api
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("metadata");
    assert_eq!(meta.headers()["access-control-allow-origin"], "*");
}

/// An access token with `openid` for `client_id` (a public client), issued to alice.
async fn openid_token(app: &crate::helpers::TestApp, client_id: &str) -> String {
    let (code, verifier) = app.code_for(client_id, "alice", "openid profile").await;
    let (status, tokens) = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", crate::helpers::REDIRECT_URI),
                ("client_id", client_id),
                ("code_verifier", &verifier),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens["access_token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn userinfo_answers_preflights_and_its_answers_carry_cors_headers_like_the_token_endpoint() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    let mut s = spec("public", &["authorization_code"]);
    s.allowed_origins = vec!["http://localhost:3000".into()];
    let (spa, _) = app.register(&s).await;
    let (other, _) = app.register(&spec("public", &["authorization_code"])).await;
    let spa_token = openid_token(&app, spa.id()).await;
    let other_token = openid_token(&app, other.id()).await;

    for path in ["/o/userinfo/", "/o/userinfo"] {
        let preflight = app
            .api
            .request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", "http://localhost:3000")
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .expect("preflight");
        assert_eq!(preflight.status(), StatusCode::NO_CONTENT, "{path}");
        let headers = preflight.headers();
        assert_eq!(
            headers["access-control-allow-origin"],
            "http://localhost:3000"
        );
        let methods = headers["access-control-allow-methods"]
            .to_str()
            .expect("ascii");
        assert!(
            methods.contains("GET") && methods.contains("POST"),
            "{methods}"
        );
        assert!(headers["access-control-allow-headers"]
            .to_str()
            .expect("ascii")
            .contains("authorization"));
    }
    let stranger = app
        .api
        .request(reqwest::Method::OPTIONS, app.url("/o/userinfo/"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("preflight");
    assert_eq!(stranger.status(), StatusCode::NO_CONTENT);
    assert!(stranger
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let userinfo = |token: String, origin: &'static str| {
        app.api
            .get(app.url("/o/userinfo/"))
            .bearer_auth(token)
            .header("origin", origin)
            .send()
    };
    // The token's client registered the origin: the browser may read the answer.
    let allowed = userinfo(spa_token.clone(), "http://localhost:3000")
        .await
        .expect("userinfo");
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    assert_eq!(allowed.headers()["vary"], "Origin");
    // Another client's token from that origin, or the right token from another origin: no.
    for (token, origin) in [
        (other_token, "http://localhost:3000"),
        (spa_token.clone(), "https://evil.example"),
    ] {
        let refused = userinfo(token, origin).await.expect("userinfo");
        assert_eq!(refused.status(), StatusCode::OK);
        assert!(
            refused
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{origin}"
        );
    }
    // POST with the token in the body (RFC 6750 §2.2) is treated alike.
    let posted = app
        .api
        .post(app.url("/o/userinfo/"))
        .header("origin", "http://localhost:3000")
        .form(&[("access_token", spa_token.as_str())])
        .send()
        .await
        .expect("userinfo");
    assert_eq!(posted.status(), StatusCode::OK);
    assert_eq!(
        posted.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    // An invalid token names no client: a registered origin may read the error (as its
    // preflight was allowed), others not.
    let error = userinfo("nope".into(), "http://localhost:3000")
        .await
        .expect("userinfo");
    assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        error.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let error = userinfo("nope".into(), "https://evil.example")
        .await
        .expect("userinfo");
    assert!(error.headers().get("access-control-allow-origin").is_none());
}

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

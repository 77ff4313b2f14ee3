//! The protected resource `/api/me` and RFC 6750 errors.

use reqwest::StatusCode;

use crate::helpers::{spawn_app, spec, PASSWORD};

#[tokio::test]
async fn api_me_follows_rfc_6750() {
    let app = spawn_app().await;
    app.create_user("quinn").await;
    let (client, secret) = app
        .register(&spec("confidential", &["password", "client_credentials"]))
        .await;
    let secret = secret.expect("secret");
    let basic = Some((client.id(), secret.as_str()));

    let missing = app
        .api
        .get(app.url("/api/me"))
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"latchkey\""
    );

    let garbage = app.get_with_bearer("/api/me", "garbage").await;
    assert_eq!(garbage.status(), StatusCode::UNAUTHORIZED);
    assert!(garbage.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .contains("error=\"invalid_token\""));

    let malformed = app
        .api
        .get(app.url("/api/me"))
        .header("authorization", "Bearer a b")
        .send()
        .await
        .expect("request");
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let other_scheme = app
        .api
        .get(app.url("/api/me"))
        .header("authorization", "Basic eDp5")
        .send()
        .await
        .expect("request");
    assert_eq!(other_scheme.status(), StatusCode::BAD_REQUEST);

    let (_, read_only) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "quinn"),
                ("password", PASSWORD),
                ("scope", "read"),
            ],
            basic,
        )
        .await;
    let insufficient = app
        .api
        .get(app.url("/api/me"))
        .bearer_auth(read_only["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("request");
    assert_eq!(insufficient.status(), StatusCode::FORBIDDEN);
    let challenge = insufficient.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"profile\""),
        "{challenge}"
    );
    // RFC 6750 §3: quoted values carry no inner quotes.
    assert_eq!(challenge.matches('"').count(), 8, "{challenge}");

    let (_, machine) = app
        .post_token(
            &[("grant_type", "client_credentials"), ("scope", "profile")],
            basic,
        )
        .await;
    let no_user = app
        .api
        .get(app.url("/api/me"))
        .bearer_auth(machine["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("request");
    assert_eq!(no_user.status(), StatusCode::FORBIDDEN);
    let challenge = no_user.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        !challenge.contains("scope=\""),
        "no scope hint when a user is what is missing: {challenge}"
    );

    let (_, profile) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "quinn"),
                ("password", PASSWORD),
                ("scope", "profile"),
            ],
            basic,
        )
        .await;
    let ok = app
        .api
        .get(app.url("/api/me"))
        .bearer_auth(profile["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("request");
    assert_eq!(ok.status(), StatusCode::OK);
    let me: serde_json::Value = ok.json().await.expect("json");
    assert_eq!(me["username"], "quinn");
    assert!(me.get("email").is_none(), "email only with the email scope");
}

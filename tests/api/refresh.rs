//! Refresh-token rotation and reuse detection.

use reqwest::StatusCode;

use crate::helpers::{spawn_app, spec, PASSWORD};

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let app = spawn_app().await;
    app.create_user("nia").await;
    let (client, secret) = app
        .register(&spec("confidential", &["password", "refresh_token"]))
        .await;
    let secret = secret.expect("secret");
    let basic = Some((client.id(), secret.as_str()));
    let (_, first) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "nia"),
                ("password", PASSWORD),
                ("scope", "profile email"),
            ],
            basic,
        )
        .await;
    let r1 = first["refresh_token"].as_str().expect("refresh").to_owned();

    // Narrowing the scope is allowed, widening is not (RFC 6749 §6).
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &r1),
                ("scope", "read"),
            ],
            basic,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );

    let (status, second) = app
        .post_token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &r1),
                ("scope", "profile"),
            ],
            basic,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["scope"], "profile");
    let r2 = second["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_owned();
    assert_ne!(r1, r2);
    let a2 = second["access_token"].as_str().expect("access").to_owned();

    // Reusing r1 is theft: the whole family dies (RFC 9700 §4.14.2).
    let (status, body) = app
        .post_token(
            &[("grant_type", "refresh_token"), ("refresh_token", &r1)],
            basic,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, body) = app
        .post_token(
            &[("grant_type", "refresh_token"), ("refresh_token", &r2)],
            basic,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let me = app.get_with_bearer("/api/me", &a2).await;
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_tokens_are_bound_to_their_client() {
    let app = spawn_app().await;
    app.create_user("oli").await;
    let (a, a_secret) = app
        .register(&spec("confidential", &["password", "refresh_token"]))
        .await;
    let (b, b_secret) = app
        .register(&spec("confidential", &["refresh_token"]))
        .await;
    let (_, tokens) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "oli"),
                ("password", PASSWORD),
            ],
            Some((a.id(), a_secret.as_deref().expect("s"))),
        )
        .await;
    let refresh = tokens["refresh_token"].as_str().expect("refresh");
    let (status, body) = app
        .post_token(
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            Some((b.id(), b_secret.as_deref().expect("s"))),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "garbage"),
            ],
            Some((a.id(), a_secret.as_deref().expect("s"))),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // client_secret_post works for refresh too.
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", a.id()),
                ("client_secret", a_secret.as_deref().expect("s")),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_narrower_refresh_keeps_the_grant_scope() {
    let app = spawn_app().await;
    app.create_user("pia").await;
    let (client, secret) = app
        .register(&spec("confidential", &["password", "refresh_token"]))
        .await;
    let secret = secret.expect("secret");
    let basic = Some((client.id(), secret.as_str()));
    let (_, first) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "pia"),
                ("password", PASSWORD),
                ("scope", "profile email"),
            ],
            basic,
        )
        .await;
    let (_, narrow) = app
        .post_token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", first["refresh_token"].as_str().expect("r")),
                ("scope", "profile"),
            ],
            basic,
        )
        .await;
    assert_eq!(narrow["scope"], "profile");
    // The next refresh, without scope, gets the whole grant back; a blank scope counts as none.
    let (status, wide) = app
        .post_token(
            &[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    narrow["refresh_token"].as_str().expect("r"),
                ),
                ("scope", " "),
            ],
            basic,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{wide}");
    assert_eq!(wide["scope"], "email profile");
}

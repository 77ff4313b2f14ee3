//! Introspection (RFC 7662) and revocation (RFC 7009).

use reqwest::StatusCode;

use crate::helpers::{spawn_app, spec, TestApp, PASSWORD};

struct Fixture {
    app: TestApp,
    id: String,
    secret: String,
    access: String,
    refresh: String,
}

async fn fixture() -> Fixture {
    let app = spawn_app().await;
    app.create_user("pat").await;
    let (client, secret) = app
        .register(&spec("confidential", &["password", "refresh_token"]))
        .await;
    let secret = secret.expect("secret");
    let (_, tokens) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "pat"),
                ("password", PASSWORD),
                ("scope", "profile"),
            ],
            Some((client.id(), &secret)),
        )
        .await;
    Fixture {
        access: tokens["access_token"].as_str().expect("access").to_owned(),
        refresh: tokens["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned(),
        id: client.id().to_owned(),
        secret,
        app,
    }
}

#[tokio::test]
async fn introspection_describes_active_tokens_to_their_client() {
    let f = fixture().await;
    let (status, body) = f
        .app
        .post_oauth(
            "/o/introspect/",
            &[("token", &f.access)],
            Some((&f.id, &f.secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["active"], true);
    assert_eq!(body["scope"], "profile");
    assert_eq!(body["client_id"], f.id.as_str());
    assert_eq!(body["username"], "pat");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["iss"], f.app.address.as_str());
    assert!(body["exp"].as_i64().expect("exp") > body["iat"].as_i64().expect("iat"));
    let (_, body) = f
        .app
        .post_oauth(
            "/o/introspect",
            &[("token", &f.refresh), ("token_type_hint", "refresh_token")],
            Some((&f.id, &f.secret)),
        )
        .await;
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "refresh_token");
    let (status, body) = f
        .app
        .post_oauth(
            "/o/introspect/",
            &[("token", "garbage")],
            Some((&f.id, &f.secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::json!({ "active": false }));
}

#[tokio::test]
async fn introspection_needs_client_authentication_and_hides_other_clients_tokens() {
    let f = fixture().await;
    let (status, body) = f
        .app
        .post_oauth("/o/introspect/", &[("token", &f.access)], None)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, body) = f
        .app
        .post_oauth("/o/introspect/", &[], Some((&f.id, &f.secret)))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    let (other, other_secret) = f
        .app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let other_secret = other_secret.expect("secret");
    let (_, body) = f
        .app
        .post_oauth(
            "/o/introspect/",
            &[("token", &f.access)],
            Some((other.id(), &other_secret)),
        )
        .await;
    assert_eq!(body, serde_json::json!({ "active": false }));

    let mut rs = spec("confidential", &["client_credentials"]);
    rs.introspect_all = true;
    let (resource_server, rs_secret) = f.app.register(&rs).await;
    let (_, body) = f
        .app
        .post_oauth(
            "/o/introspect/",
            &[("token", &f.access)],
            Some((resource_server.id(), rs_secret.as_deref().expect("s"))),
        )
        .await;
    assert_eq!(body["active"], true);
}

#[tokio::test]
async fn revoking_an_access_token() {
    let f = fixture().await;
    let (status, body) = f
        .app
        .post_oauth(
            "/o/revoke_token/",
            &[("token", &f.access)],
            Some((&f.id, &f.secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::Value::Null, "empty body");
    let (_, body) = f
        .app
        .post_oauth(
            "/o/introspect/",
            &[("token", &f.access)],
            Some((&f.id, &f.secret)),
        )
        .await;
    assert_eq!(body["active"], false);
    // The refresh token still works.
    let (_, body) = f
        .app
        .post_oauth(
            "/o/introspect/",
            &[("token", &f.refresh)],
            Some((&f.id, &f.secret)),
        )
        .await;
    assert_eq!(body["active"], true);
    // Revoking again, or garbage: still 200 (RFC 7009 §2.2).
    let (status, _) = f
        .app
        .post_oauth(
            "/o/revoke_token",
            &[("token", &f.access)],
            Some((&f.id, &f.secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = f
        .app
        .post_oauth(
            "/o/revoke_token/",
            &[("token", "garbage")],
            Some((&f.id, &f.secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_access_tokens() {
    let f = fixture().await;
    let (status, _) = f
        .app
        .post_oauth(
            "/o/revoke_token/",
            &[("token", &f.refresh), ("token_type_hint", "refresh_token")],
            Some((&f.id, &f.secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let me = f
        .app
        .api
        .get(f.app.url("/api/me"))
        .bearer_auth(&f.access)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = f
        .app
        .post_token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &f.refresh),
            ],
            Some((&f.id, &f.secret)),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn a_client_cannot_revoke_another_clients_token() {
    let f = fixture().await;
    let (other, other_secret) = f
        .app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let (status, _) = f
        .app
        .post_oauth(
            "/o/revoke_token/",
            &[("token", &f.access)],
            Some((other.id(), other_secret.as_deref().expect("s"))),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the answer reveals nothing");
    let (_, body) = f
        .app
        .post_oauth(
            "/o/introspect/",
            &[("token", &f.access)],
            Some((&f.id, &f.secret)),
        )
        .await;
    assert_eq!(body["active"], true, "and the token stays valid");
    let (status, body) = f
        .app
        .post_oauth(
            "/o/revoke_token/",
            &[("token", &f.access)],
            Some((&f.id, "wrong")),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

#[tokio::test]
async fn a_public_client_never_introspects_every_token() {
    let f = fixture().await;
    // Registration refuses it: a public client proves nothing but its client_id.
    let mut public = spec("public", &["authorization_code"]);
    public.introspect_all = true;
    let refused = f
        .app
        .services
        .clients
        .register(&latchkey::audit::Actor::system(), &public)
        .await;
    assert!(refused.is_err(), "introspect_all on a public client");

    // A row stored before that rule (or written by hand) gains nothing either.
    public.introspect_all = false;
    let (client, _) = f.app.register(&public).await;
    let id = client.id().to_owned();
    f.app
        .services
        .db
        .write(move |conn| {
            use diesel::RunQueryDsl;
            diesel::sql_query("UPDATE clients SET introspect_all = TRUE WHERE client_id = $1")
                .bind::<diesel::sql_types::Text, _>(id)
                .execute(conn)
                .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("update");
    let (status, body) = f
        .app
        .post_oauth(
            "/o/introspect/",
            &[("token", f.access.as_str()), ("client_id", client.id())],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::json!({ "active": false }));
}

/// Introspections at once (on PostgreSQL they are looked up in groups, one query for every
/// lookup waiting: issue 13) each get their own token's answer: active tokens of an active user
/// and user-less ones, a revoked token, an unknown one, and a deactivated user's token.
#[tokio::test]
async fn concurrent_introspections_each_get_their_own_answer() {
    let f = fixture().await;
    let gone = f.app.create_user("gone").await;
    let password = |user: &'static str| {
        [
            ("grant_type", "password"),
            ("username", user),
            ("password", PASSWORD),
        ]
    };
    let (_, of_gone) = f
        .app
        .post_token(&password("gone"), Some((&f.id, &f.secret)))
        .await;
    let of_gone = of_gone["access_token"].as_str().expect("token").to_owned();
    f.app.deactivate(&gone.id).await;
    let (_, revoked) = f
        .app
        .post_token(&password("pat"), Some((&f.id, &f.secret)))
        .await;
    let revoked = revoked["access_token"].as_str().expect("token").to_owned();
    let (status, _) = f
        .app
        .post_oauth(
            "/o/revoke_token/",
            &[("token", &revoked)],
            Some((&f.id, &f.secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let cases = [
        (f.access.clone(), true),
        (f.refresh.clone(), true),
        (revoked, false),
        ("no-such-token".to_owned(), false),
        (of_gone, false),
    ];
    let mut requests = tokio::task::JoinSet::new();
    for round in 0..20 {
        for (i, (token, active)) in cases.iter().enumerate() {
            let (http, url) = (f.app.api.clone(), f.app.url("/o/introspect/"));
            let (id, secret, token, active) =
                (f.id.clone(), f.secret.clone(), token.clone(), *active);
            requests.spawn(async move {
                let response = http
                    .post(url)
                    .basic_auth(id, Some(secret))
                    .form(&[("token", token)])
                    .send()
                    .await
                    .expect("request");
                assert_eq!(response.status(), StatusCode::OK);
                let body: serde_json::Value = response.json().await.expect("json");
                (round, i, active, body)
            });
        }
    }
    while let Some(answer) = requests.join_next().await {
        let (round, i, active, body) = answer.expect("task");
        assert_eq!(body["active"], active, "case {i} of round {round}: {body}");
        if active {
            assert_eq!(body["username"], "pat", "{body}");
        }
    }
}

//! The resource owner password credentials grant, driven by the `oauth2` crate.

use oauth2::basic::BasicClient;
use oauth2::{
    ClientId, ClientSecret, ResourceOwnerPassword, ResourceOwnerUsername, Scope, TokenResponse,
    TokenUrl,
};
use reqwest::StatusCode;

use crate::helpers::{spawn_app, spec, PASSWORD};

#[tokio::test]
async fn password_grant_issues_tokens_via_the_oauth2_crate() {
    let app = spawn_app().await;
    app.create_user("kim").await;
    let (client, secret) = app
        .register(&spec("confidential", &["password", "refresh_token"]))
        .await;
    let oauth = BasicClient::new(ClientId::new(client.id().to_owned()))
        .set_client_secret(ClientSecret::new(secret.expect("secret")))
        .set_token_uri(TokenUrl::new(app.url("/o/token/")).expect("url"));
    let http = oauth2::reqwest::Client::new();
    let tokens = oauth
        .exchange_password(
            &ResourceOwnerUsername::new("kim".into()),
            &ResourceOwnerPassword::new(PASSWORD.into()),
        )
        .add_scope(Scope::new("profile".into()))
        .request_async(&http)
        .await
        .expect("password grant");
    assert!(tokens.refresh_token().is_some());
    assert!(tokens.expires_in().is_some());
    let refreshed = oauth
        .exchange_refresh_token(tokens.refresh_token().expect("refresh"))
        .request_async(&http)
        .await
        .expect("refresh");
    assert_eq!(refreshed.scopes().expect("scope")[0].as_str(), "profile");
}

#[tokio::test]
async fn password_grant_refuses_bad_credentials_inactive_users_and_unlisted_clients() {
    let app = spawn_app().await;
    let user = app.create_user("lee").await;
    let (client, secret) = app.register(&spec("confidential", &["password"])).await;
    let secret = secret.expect("secret");
    let basic = Some((client.id(), secret.as_str()));

    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "lee"),
                ("password", "nope"),
            ],
            basic,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "nobody"),
                ("password", "nope"),
            ],
            basic,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, body) = app
        .post_token(&[("grant_type", "password"), ("username", "lee")], basic)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "lee"),
                ("password", PASSWORD),
                ("scope", "admin"),
            ],
            basic,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    // No refresh_token grant → no refresh token.
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "lee"),
                ("password", PASSWORD),
            ],
            basic,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("refresh_token").is_none());
    assert_eq!(body["token_type"], "Bearer");

    app.deactivate(&user.id).await;
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "lee"),
                ("password", PASSWORD),
            ],
            basic,
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    let (other, other_secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "lee"),
                ("password", PASSWORD),
            ],
            Some((other.id(), other_secret.as_deref().expect("secret"))),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
}

#[tokio::test]
async fn repeated_login_failures_are_rate_limited() {
    let app = spawn_app_limited().await;
    app.create_user("mia").await;
    let (client, secret) = app.register(&spec("confidential", &["password"])).await;
    let secret = secret.expect("secret");
    let basic = Some((client.id(), secret.as_str()));
    for _ in 0..3 {
        let (status, _) = app
            .post_token(
                &[
                    ("grant_type", "password"),
                    ("username", "mia"),
                    ("password", "wrong"),
                ],
                basic,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    // This address is locked for this account: even the right password is refused until the
    // window passes (other addresses are not: see login_limits.rs).
    let response = app
        .api
        .post(app.url("/o/token/"))
        .basic_auth(client.id(), Some(&secret))
        .form(&[
            ("grant_type", "password"),
            ("username", "mia"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_some());
    // The hosted login page is locked too.
    let page = app.login("mia", PASSWORD).await;
    assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
}

async fn spawn_app_limited() -> crate::helpers::TestApp {
    crate::helpers::spawn_app_with("[rate_limits]\nfailed_logins_per_account = 3\n").await
}

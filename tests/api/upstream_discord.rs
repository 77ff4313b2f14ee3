//! Signing in with Discord (issue 11) against a wiremock fake that speaks Discord's OAuth2 and
//! API v10: the authorization redirect, the code exchange (with the PKCE verifier and HTTP
//! Basic client authentication), `GET /users/@me` with the `User-Agent` Discord requires, and
//! Discord failing.

use reqwest::StatusCode;
use wiremock::matchers::{body_string_contains, header, header_exists, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{location, query_param, spawn_app_with, TestApp};

async fn discord_rp(discord: &MockServer) -> TestApp {
    discord_rp_with(discord, "").await
}

/// [`discord_rp`] with more settings (`extra`, TOML placed before the provider's table).
pub(crate) async fn discord_rp_with(discord: &MockServer, extra: &str) -> TestApp {
    spawn_app_with(&format!(
        r#"
{1}
[upstream.discord]
kind = "discord"
client_id = "1234567890"
client_secret = "discord-secret"
authorization_endpoint = "{0}/oauth2/authorize"
token_endpoint = "{0}/api/oauth2/token"
api_base = "{0}/api/v10"
"#,
        discord.uri(),
        extra
    ))
    .await
}

/// Starts a Discord sign-in in `visitor` and comes back to the callback with `code` and the
/// sign-in's own state, as Discord would.
pub(crate) async fn round_trip(visitor: &crate::helpers::Visitor, code: &str) -> reqwest::Response {
    let start = visitor
        .get_response("/accounts/upstream/discord/login/")
        .await;
    let state = query_param(&location(&start), "state").expect("state");
    visitor
        .get_response(&format!(
            "/accounts/upstream/discord/callback/?code={code}&state={state}"
        ))
        .await
}

pub(crate) fn token_response() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "access_token": "discord-access-token",
        "token_type": "Bearer",
        "expires_in": 604800,
        "refresh_token": "discord-refresh-token",
        "scope": "identify email"
    }))
}

pub(crate) fn me() -> serde_json::Value {
    serde_json::json!({
        "id": "80351110224678912",
        "username": "nelly",
        "discriminator": "0",
        "global_name": "Nelly Furtado",
        "avatar": "8342729096ea3675442027381ff50dfe",
        "public_flags": 64,
        "flags": 64,
        "locale": "en-US",
        "mfa_enabled": true,
        "email": "Nelly@Discord.example",
        "verified": true
    })
}

#[tokio::test]
async fn a_discord_user_signs_in_and_gets_an_account_named_after_them() {
    let discord = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .and(header_exists("authorization"))
        .and(body_string_contains("grant_type=authorization_code"))
        .and(body_string_contains("code=the-code"))
        .and(body_string_contains("code_verifier="))
        .respond_with(token_response())
        .expect(1)
        .mount(&discord)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v10/users/@me"))
        .and(header("authorization", "Bearer discord-access-token"))
        .and(header_exists("user-agent"))
        .respond_with(ResponseTemplate::new(200).set_body_json(me()))
        .expect(1)
        .mount(&discord)
        .await;
    let rp = discord_rp(&discord).await;
    let visitor = rp.anonymous_visitor();
    let (_, page) = visitor.get("/accounts/login/").await;
    assert!(page.contains("Sign in with Discord"), "{page}");

    let start = visitor
        .get_response("/accounts/upstream/discord/login/?next=/account/")
        .await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let authorize = location(&start);
    assert!(authorize.starts_with(&format!("{}/oauth2/authorize?", discord.uri())));
    assert_eq!(
        query_param(&authorize, "client_id").as_deref(),
        Some("1234567890")
    );
    assert_eq!(
        query_param(&authorize, "scope").as_deref(),
        Some("identify email")
    );
    assert_eq!(
        query_param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(&authorize, "redirect_uri"),
        Some(format!(
            "{}/accounts/upstream/discord/callback/",
            rp.address
        ))
    );
    let state = query_param(&authorize, "state").expect("state");

    let callback = visitor
        .get_response(&format!(
            "/accounts/upstream/discord/callback/?code=the-code&state={state}"
        ))
        .await;
    assert_eq!(callback.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&callback), "/account/");
    let user = rp
        .services
        .accounts
        .find_by_login("nelly")
        .await
        .expect("db")
        .expect("an account named after the Discord username");
    assert_eq!(user.email, "nelly@discord.example");
    assert!(user.email_verified);
    assert_eq!(
        (user.first_name.as_str(), user.last_name.as_str()),
        ("Nelly", "Furtado")
    );
    let links = rp.services.upstream.links_of(&user.id).await.expect("db");
    assert_eq!(links[0].subject, "80351110224678912");
    assert_eq!(links[0].display_name, "Nelly Furtado");
}

#[tokio::test]
async fn discord_failing_is_a_page_with_a_way_back_and_no_account() {
    let discord = MockServer::start().await;
    // The token endpoint rate-limits, then (second attempt) the profile fails.
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "5")
                .set_body_json(serde_json::json!({"message": "You are being rate limited.", "retry_after": 5.0, "global": false})),
        )
        .up_to_n_times(1)
        .mount(&discord)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .respond_with(token_response())
        .mount(&discord)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v10/users/@me"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&discord)
        .await;
    let rp = discord_rp(&discord).await;
    for _ in 0..2 {
        let response = round_trip(&rp.anonymous_visitor(), "c").await;
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        let html = response.text().await.expect("page");
        assert!(html.contains("Sign-in failed"), "{html}");
        assert!(html.contains("sign in with your password"), "{html}");
    }
    assert!(rp
        .services
        .accounts
        .find_by_login("nelly")
        .await
        .expect("db")
        .is_none());
}

#[tokio::test]
async fn no_account_is_made_from_an_address_discord_has_not_verified() {
    let discord = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .respond_with(token_response())
        .mount(&discord)
        .await;
    let mut unverified = me();
    unverified["verified"] = serde_json::json!(false);
    Mock::given(method("GET"))
        .and(path("/api/v10/users/@me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(unverified))
        .mount(&discord)
        .await;
    let rp = discord_rp(&discord).await;
    let response = round_trip(&rp.anonymous_visitor(), "c").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let html = response.text().await.expect("page");
    assert!(
        html.contains("has not verified your email address"),
        "{html}"
    );
    assert!(rp
        .services
        .accounts
        .find_by_login("nelly")
        .await
        .expect("db")
        .is_none());
}

#[tokio::test]
async fn upstream_registration_keeps_to_the_allowed_email_domains() {
    let discord = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .respond_with(token_response())
        .mount(&discord)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v10/users/@me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(me()))
        .mount(&discord)
        .await;
    // Discord verified nelly@discord.example, but this server registers only corp.example.
    let rp = discord_rp_with(
        &discord,
        "[accounts]\nallowed_email_domains = [\"corp.example\"]",
    )
    .await;
    let response = round_trip(&rp.anonymous_visitor(), "c").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let html = response.text().await.expect("page");
    assert!(html.contains("does not accept the email address"), "{html}");
    assert!(rp
        .services
        .accounts
        .find_by_login("nelly")
        .await
        .expect("db")
        .is_none());
}

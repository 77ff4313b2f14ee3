//! The seeds' Discord paths (issue 11) for applications moving over: `/oauth2/login/` starts a
//! Discord sign-in whose redirect URI is `/oauth2/login/redirect/` (seed 000) unless the
//! provider's `callback_path` names another, `/oauth2/login/redirect/` and
//! `/discord/sso/callback` (seed 003) finish one, and the code exchange sends the redirect URI
//! the authorization request did (RFC 6749 §4.1.3).

use reqwest::StatusCode;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer};

use crate::helpers::{location, query_param, spawn_app_with, TestApp};
use crate::upstream_discord::{me, token_response};
use crate::upstream_discord_profile::{auth, discord_rp_with_provider, profile_once};

/// Discord's token endpoint, answering only an exchange that sends `redirect_uri`.
async fn exchange_expecting(discord: &MockServer, redirect_uri: &str, times: u64) {
    let encoded: String = url::form_urlencoded::byte_serialize(redirect_uri.as_bytes()).collect();
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .and(body_string_contains(format!("redirect_uri={encoded}")))
        .respond_with(token_response())
        .expect(times)
        .mount(discord)
        .await;
}

/// Starts at `start` in a new browser; returns the browser, the redirect URI sent to Discord
/// and the state.
async fn start_at(app: &TestApp, start: &str) -> (crate::helpers::Visitor, String, String) {
    let visitor = app.anonymous_visitor();
    let response = visitor.get_response(start).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{start}");
    let authorize = location(&response);
    (
        visitor,
        query_param(&authorize, "redirect_uri").expect("redirect_uri"),
        query_param(&authorize, "state").expect("state"),
    )
}

#[tokio::test]
async fn oauth2_login_round_trips_through_the_seeds_redirect_path() {
    let discord = MockServer::start().await;
    profile_once(&discord, me(), 1).await;
    let app = discord_rp_with_provider(&discord, "").await;
    let redirect = format!("{}/oauth2/login/redirect/", app.address);
    exchange_expecting(&discord, &redirect, 1).await;

    let (visitor, sent, state) = start_at(&app, "/oauth2/login/?next=/account/").await;
    assert_eq!(sent, redirect);
    let back = visitor
        .get_response(&format!("/oauth2/login/redirect/?code=c&state={state}"))
        .await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&back), "/account/");
    assert!(visitor.signed_in().await);
    let (status, body) = auth(&visitor).await;
    assert_eq!(
        (status, body["tag"].clone()),
        (StatusCode::OK, "nelly".into())
    );
}

#[tokio::test]
async fn a_callback_path_setting_is_the_redirect_uri_of_every_start_and_discord_sso_callback_finishes(
) {
    let discord = MockServer::start().await;
    profile_once(&discord, me(), 2).await;
    let app =
        discord_rp_with_provider(&discord, r#"callback_path = "/discord/sso/callback""#).await;
    let redirect = format!("{}/discord/sso/callback", app.address);
    exchange_expecting(&discord, &redirect, 2).await;

    for start in ["/oauth2/login/", "/accounts/upstream/discord/login/"] {
        let (visitor, sent, state) = start_at(&app, start).await;
        assert_eq!(sent, redirect, "{start}");
        let back = visitor
            .get_response(&format!("/discord/sso/callback?code=c&state={state}"))
            .await;
        assert_eq!(back.status(), StatusCode::SEE_OTHER, "{start}");
        assert_eq!(location(&back), "/");
        assert!(visitor.signed_in().await, "{start}");
    }
}

#[tokio::test]
async fn a_sign_in_finishes_only_at_the_callback_its_redirect_uri_named() {
    let discord = MockServer::start().await;
    profile_once(&discord, me(), 1).await;
    let app = discord_rp_with_provider(&discord, "").await;
    // The code is never exchanged.
    exchange_expecting(&discord, "", 0).await;
    let (visitor, _, state) = start_at(&app, "/oauth2/login/").await;
    for elsewhere in [
        "/accounts/upstream/discord/callback/",
        "/discord/sso/callback",
    ] {
        let back = visitor
            .get_response(&format!("{elsewhere}?code=c&state={state}"))
            .await;
        assert_eq!(back.status(), StatusCode::BAD_REQUEST, "{elsewhere}");
        let html = back.text().await.expect("page");
        assert!(html.contains("Sign-in not finished"), "{html}");
        // Single use: the refused callback used the pending sign-in up.
        let (visitor_again, _, state_again) = start_at(&app, "/oauth2/login/").await;
        let refused = visitor_again
            .get_response(&format!("{elsewhere}?code=c&state={state_again}"))
            .await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    }
    assert!(!visitor.signed_in().await);
    // A default sign-in does not finish at a seed's path either.
    let (visitor, sent, state) = start_at(&app, "/accounts/upstream/discord/login/").await;
    assert!(sent.ends_with("/accounts/upstream/discord/callback/"));
    let back = visitor
        .get_response(&format!("/oauth2/login/redirect/?code=c&state={state}"))
        .await;
    assert_eq!(back.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_seeds_paths_are_not_found_without_a_single_discord_provider() {
    let none = spawn_app_with("").await;
    let visitor = none.anonymous_visitor();
    for path in [
        "/oauth2/login/",
        "/oauth2/login",
        "/oauth2/login/redirect/?code=c&state=s",
        "/discord/sso/callback?code=c&state=s",
    ] {
        let (status, html) = visitor.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(html.contains("<html"), "{path}: a page");
    }
    let two = spawn_app_with(
        r#"
[upstream.one]
kind = "discord"
client_id = "1"
client_secret = "s"
[upstream.two]
kind = "discord"
client_id = "2"
client_secret = "s"
"#,
    )
    .await;
    let (status, html) = two.anonymous_visitor().get("/oauth2/login/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("No Discord sign-in"), "{html}");
}

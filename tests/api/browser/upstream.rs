//! Upstream login (issue 11) as a person does it in a real browser: an application's
//! authorization request, the sign-in page's "Sign in with Discord" button, Discord (a wiremock
//! fake whose authorization endpoint approves at once, as Discord does for a user who allowed
//! the application before), back to Latchkey signed in to a new account, the consent page, and
//! the application's redirect URI with a code; then Account → Linked accounts.

use reqwest::StatusCode;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::browser::browser;
use crate::helpers::{pkce_pair, query_param, spec};
use crate::upstream_discord::{discord_rp_with, me, token_response};

/// Discord's authorization endpoint for a user who already allowed the application: straight
/// back to `redirect_uri` with a code and the request's `state` (RFC 6749 §4.1.2).
struct Approve;

impl Respond for Approve {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let param = |name: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let mut back = url::Url::parse(&param("redirect_uri")).expect("redirect_uri");
        back.query_pairs_mut()
            .append_pair("code", "browser-code")
            .append_pair("state", &param("state"));
        ResponseTemplate::new(302).insert_header("location", back.as_str())
    }
}

#[tokio::test]
async fn browser_signs_in_with_discord_and_authorizes_an_application() {
    let discord = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/oauth2/authorize"))
        .respond_with(Approve)
        .mount(&discord)
        .await;
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
    let app = discord_rp_with(&discord, "").await;
    let Some(browser) = browser(&app).await else {
        return;
    };
    let redirect_uri = app.url("/cb");
    let mut client_spec = spec("confidential", &["authorization_code"]);
    client_spec.name = "Guild Calendar".to_owned();
    client_spec.redirect_uris = vec![redirect_uri.clone()];
    client_spec.scopes = vec!["openid profile".to_owned()];
    let (client, secret) = app.register(&client_spec).await;
    let secret = secret.expect("a confidential client has a secret");
    let (verifier, challenge) = pkce_pair();
    let mut authorize = url::Url::parse(&app.url("/o/authorize/")).expect("url");
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client.id())
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", "openid profile")
        .append_pair("state", "up-st4te")
        .append_pair("nonce", "up-n0nce")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");

    // Not signed in: the sign-in page offers Discord.
    browser.goto(authorize.as_str()).await;
    let button = "a.button.upstream[href^='/accounts/upstream/discord/login/']";
    browser.wait_for(button).await;
    assert_eq!(browser.text_of(button).await, "Sign in with Discord");
    browser.screenshot("upstream-login").await;
    browser.click(button).await;

    // Discord approves, Latchkey makes nelly's account and returns to the authorization
    // request: the consent page for the application.
    browser.wait_for("form.decision").await;
    assert_eq!(browser.text_of("h1 .app-name").await, "Guild Calendar");
    browser.screenshot("upstream-consent").await;
    browser
        .click("form.decision button[name=decision][value=allow]")
        .await;
    let back = browser.wait_for_url(&redirect_uri).await;
    assert_eq!(
        query_param(back.as_str(), "state").as_deref(),
        Some("up-st4te")
    );
    let code = query_param(back.as_str(), "code").expect("a code");
    let (status, tokens) = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect_uri),
                ("code_verifier", &verifier),
            ],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let (status, userinfo) = {
        let response = app
            .get_with_bearer(
                "/o/userinfo/",
                tokens["access_token"].as_str().expect("access token"),
            )
            .await;
        let status = response.status();
        (
            status,
            response.json::<serde_json::Value>().await.expect("json"),
        )
    };
    assert_eq!(status, StatusCode::OK, "{userinfo}");
    assert_eq!(userinfo["preferred_username"], "nelly");

    // The account page's linked accounts show Discord.
    browser.goto("/account/linked/").await;
    browser.wait_for("table.list").await;
    let rows = browser.text_of("table.list tbody").await;
    assert!(
        rows.contains("Discord") && rows.contains("Nelly Furtado (nelly)"),
        "{rows}"
    );
    // Nelly's Discord avatar, from Discord's CDN (not loaded here: the test has no network).
    let avatar = browser
        .wait_for("table.list img.avatar")
        .await
        .attr("src")
        .await
        .expect("src")
        .expect("an avatar");
    assert_eq!(
        avatar,
        "https://cdn.discordapp.com/avatars/80351110224678912/8342729096ea3675442027381ff50dfe.png"
    );
    browser.screenshot("upstream-linked").await;
    assert!(browser.csp_violations().await.is_empty());
    browser.close().await;
}

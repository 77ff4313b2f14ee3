//! Upstream login (issue 11) against what a hostile client can do with the flow itself: replay
//! the cookie that carried a finished sign-in, and make accounts past
//! `accounts.registrations_per_ip` through a provider instead of the registration form.

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::StatusCode;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{location, query_param};
use crate::upstream_discord::{discord_rp_with, me, round_trip, token_response};

#[tokio::test]
async fn a_replayed_cookie_cannot_finish_a_sign_in_twice() {
    let discord = MockServer::start().await;
    // One code exchange only: the replay must be refused before it reaches Discord.
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .respond_with(token_response())
        .expect(1)
        .mount(&discord)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v10/users/@me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(me()))
        .mount(&discord)
        .await;
    let rp = discord_rp_with(&discord, "").await;
    // A client that keeps cookies by hand, as an attacker who copied them would.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let start = client
        .get(rp.url("/accounts/upstream/discord/login/"))
        .send()
        .await
        .expect("start");
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let cookie = start
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| {
            let v = v.to_str().expect("cookie");
            v.split(';').next().unwrap_or(v).to_owned()
        })
        .collect::<Vec<_>>()
        .join("; ");
    let state = query_param(&location(&start), "state").expect("state");
    let callback = rp.url(&format!(
        "/accounts/upstream/discord/callback/?code=c&state={state}"
    ));
    let first = client
        .get(&callback)
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("callback");
    assert_eq!(
        first.status(),
        StatusCode::SEE_OTHER,
        "the first one signs in"
    );
    // The same cookie, holding the same pending sign-in, sent again: refused on the server's
    // record, not only because this browser's cookie changed.
    let replay = client
        .get(&callback)
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("replay");
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    let html = replay.text().await.expect("page");
    assert!(html.contains("already finished"), "{html}");
}

#[tokio::test]
async fn accounts_made_through_a_provider_count_against_registrations_per_ip() {
    let discord = MockServer::start().await;
    for (who, id) in [("ann", "1001"), ("bob", "1002")] {
        Mock::given(method("POST"))
            .and(path("/api/oauth2/token"))
            .and(body_string_contains(format!("code={who}&")))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "access_token": format!("token-{who}"),
                "token_type": "Bearer",
                "expires_in": 604800,
                "scope": "identify email"
            })))
            .mount(&discord)
            .await;
        let mut profile = me();
        profile["id"] = serde_json::json!(id);
        profile["username"] = serde_json::json!(who);
        profile["email"] = serde_json::json!(format!("{who}@discord.example"));
        Mock::given(method("GET"))
            .and(path("/api/v10/users/@me"))
            .and(header(
                "authorization",
                format!("Bearer token-{who}").as_str(),
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(profile))
            .mount(&discord)
            .await;
    }
    let rp = discord_rp_with(&discord, "[accounts]\nregistrations_per_ip = 1").await;
    let first = round_trip(&rp.anonymous_visitor(), "ann").await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    // The second account from the same network is refused, says when to come back, and
    // nothing of it is kept.
    let second = round_trip(&rp.anonymous_visitor(), "bob").await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(second.headers().get("retry-after").is_some());
    let html = second.text().await.expect("page");
    assert!(html.contains("Too many accounts"), "{html}");
    assert!(rp
        .services
        .accounts
        .find_by_login("bob")
        .await
        .expect("db")
        .is_none());
    // The password form counts in the same bucket.
    let form = rp
        .anonymous_visitor()
        .submit(
            "/accounts/register/",
            "/accounts/register/",
            &[
                ("username", "cyd"),
                ("email", "cyd@example.com"),
                ("password", "a long enough passphrase 1"),
                ("confirm_password", "a long enough passphrase 1"),
            ],
        )
        .await;
    assert_eq!(form.status(), StatusCode::TOO_MANY_REQUESTS);
    // A returning user (an existing link) is not a registration and is never limited.
    let again = round_trip(&rp.anonymous_visitor(), "ann").await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
}

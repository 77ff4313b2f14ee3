//! Upstream login's security review (issue 11): linking by email only to addresses Latchkey
//! verified (no pre-account-takeover through a lax provider), Google's word counted only for the
//! addresses it hosts, and the other findings' regressions.

use latchkey::clients::ClientSpec;
use latchkey::oauth::token_exchange::{ACCESS_TOKEN_TYPE, GRANT_TYPE};
use reqwest::StatusCode;
use serde_json::json;

use crate::google_fake::{
    now, userinfo_of, FakeGoogle, ANDROID_CLIENT_ID, CLIENT_ID, CLIENT_SECRET, FOREIGN_CLIENT_ID,
};
use crate::helpers::{spawn_app_with, spec, TestApp};
use crate::upstream_google::{rp_of, sign_in};

/// A Latchkey with two OpenID Connect providers: `lax` (any fake) and `corp`, which links by
/// email.
async fn lax_and_corp(lax: &FakeGoogle, corp: &FakeGoogle) -> TestApp {
    spawn_app_with(&format!(
        r#"
[upstream.lax]
kind = "oidc"
issuer = "{}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"

[upstream.corp]
kind = "oidc"
issuer = "{}"
client_id = "{CLIENT_ID}"
client_secret = "{CLIENT_SECRET}"
link_by_email = true
"#,
        lax.issuer(),
        corp.issuer()
    ))
    .await
}

/// Claims for `sub` with `email` (verified), signed by `fake` for the sign-in's nonce.
fn person<'a>(
    fake: &'a FakeGoogle,
    sub: &'a str,
    email: &'a str,
    hd: Option<&'a str>,
) -> impl FnOnce(&str) -> (String, serde_json::Value) + 'a {
    move |nonce| {
        let mut claims = fake.claims(Some(nonce));
        claims["sub"] = json!(sub);
        claims["email"] = json!(email);
        if let Some(hd) = hd {
            claims["hd"] = json!(hd);
        }
        (fake.sign(&claims), userinfo_of(&claims))
    }
}

#[tokio::test]
async fn an_address_only_another_provider_vouched_for_is_not_linked_by_email() {
    let lax = FakeGoogle::start().await;
    let corp = FakeGoogle::start().await;
    let rp = lax_and_corp(&lax, &corp).await;
    // The attacker signs in first through the lax provider, claiming the victim's address: an
    // account is made with it, verified on the lax provider's word.
    let attacker = rp.anonymous_visitor();
    let made = sign_in(
        &lax,
        &attacker,
        "lax",
        person(&lax, "attacker-1", "victim@corp.example", None),
    )
    .await;
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let squatted = rp
        .services
        .accounts
        .find_by_login("victim@corp.example")
        .await
        .expect("db")
        .expect("an account from the lax provider");
    // The victim later signs in through the provider that links by email: never into the
    // attacker's account.
    let victim = rp.anonymous_visitor();
    let refused = sign_in(
        &corp,
        &victim,
        "corp",
        person(&corp, "victim-1", "victim@corp.example", None),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(!victim.signed_in().await);
    let links = rp
        .services
        .upstream
        .links_of(&squatted.id)
        .await
        .expect("db");
    assert_eq!(links.len(), 1, "only the lax provider's link");
    assert_eq!(links[0].provider_id, "lax");
}

#[tokio::test]
async fn google_links_by_email_only_the_addresses_it_hosts() {
    let google = FakeGoogle::start().await;
    let rp = rp_of(&google, "google", "google", "link_by_email = true").await;
    let ann = rp.create_user("ann").await;
    // A Google account made on someone's work address, outside any Workspace (no `hd`).
    let outsider = rp.anonymous_visitor();
    let response = sign_in(
        &google,
        &outsider,
        "google",
        person(&google, "g-1", "ann@example.com", None),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(rp
        .services
        .upstream
        .links_of(&ann.id)
        .await
        .expect("db")
        .is_empty());
    // The address's Workspace domain (`hd`): Google administers it, its word links.
    let member = rp.anonymous_visitor();
    let response = sign_in(
        &google,
        &member,
        "google",
        person(&google, "g-2", "ann@example.com", Some("example.com")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        rp.services
            .upstream
            .links_of(&ann.id)
            .await
            .expect("db")
            .len(),
        1
    );
}

/// Makes `token` a Google access token for Ann issued to `aud` with authorized party `azp`.
fn google_access_token(google: &FakeGoogle, token: &str, aud: &str, azp: Option<&str>) {
    let claims = google.claims(None);
    let mut info = json!({
        "aud": aud,
        "sub": claims["sub"],
        "exp": (now() + 3000).to_string(),
        "email": claims["email"],
        "email_verified": "true",
    });
    if let Some(azp) = azp {
        info["azp"] = json!(azp);
    }
    google.accept_access_token(token, &info, &userinfo_of(&claims));
}

/// Exchanges Google access token `token` at `/o/token/` as the public client `client_id`.
async fn exchange_access_token(
    rp: &TestApp,
    client_id: &str,
    token: &str,
) -> (StatusCode, serde_json::Value) {
    rp.post_token(
        &[
            ("grant_type", GRANT_TYPE),
            ("client_id", client_id),
            ("subject_token", token),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("subject_issuer", "google"),
        ],
        None,
    )
    .await
}

#[tokio::test]
async fn google_access_tokens_are_refused_unless_accepted_and_then_exchanged_once() {
    for accept in [false, true] {
        let google = FakeGoogle::start().await;
        let extra = if accept {
            "accept_access_tokens = true"
        } else {
            ""
        };
        let rp = rp_of(&google, "google", "google", extra).await;
        let (client, _) = rp
            .register(&ClientSpec {
                scopes: ["openid", "profile", "email"].map(str::to_owned).to_vec(),
                ..spec("public", &[GRANT_TYPE])
            })
            .await;
        google_access_token(&google, "ya29.good", ANDROID_CLIENT_ID, None);
        let (status, body) = exchange_access_token(&rp, client.id(), "ya29.good").await;
        if !accept {
            // The default: ID tokens only; Google is not even asked.
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(body["error"], "invalid_grant");
            assert_eq!(google.requests_to("/tokeninfo").await, 0);
            continue;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        // Replayed (by whoever saw it): refused.
        let (status, body) = exchange_access_token(&rp, client.id(), "ya29.good").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("already exchanged")),
            "{body}"
        );
        // Our audience but another app as the authorized party, or only `azp` ours: refused.
        google_access_token(
            &google,
            "ya29.azp",
            ANDROID_CLIENT_ID,
            Some(FOREIGN_CLIENT_ID),
        );
        google_access_token(
            &google,
            "ya29.aud",
            FOREIGN_CLIENT_ID,
            Some(ANDROID_CLIENT_ID),
        );
        for token in ["ya29.azp", "ya29.aud"] {
            let (status, body) = exchange_access_token(&rp, client.id(), token).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{token}: {body}");
            assert!(
                body["error_description"]
                    .as_str()
                    .is_some_and(|d| d.contains("issued to an application")),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn the_guarded_client_does_not_connect_to_names_of_this_machine() {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let url = format!("http://localhost:{}/", server.address().port());
    let plain = latchkey::upstream::client::http_client()
        .get(&url)
        .send()
        .await
        .expect("the plain client connects");
    assert_eq!(plain.status(), StatusCode::OK);
    let guarded = latchkey::upstream::client::guarded_http_client()
        .get(&url)
        .send()
        .await
        .expect_err("localhost resolves to no public address");
    assert!(guarded.is_connect(), "{guarded:?}");
    assert_eq!(server.received_requests().await.map_or(0, |r| r.len()), 1);
}

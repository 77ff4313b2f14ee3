//! What a session begun through an upstream provider (issue 11) says and asks: ID tokens name
//! the provider (`idp`) — refreshed ones too — and carry no RFC 8176 `amr` value for the
//! federated step alone; an account with emailed sign-in codes enters its code after the
//! provider, and the session then says `amr` = `otp`.

use base64::Engine;
use latchkey::clients::ClientSpec;
use reqwest::StatusCode;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::helpers::{location, pkce_pair, query_param, spec, TestApp, Visitor, REDIRECT_URI};
use crate::upstream_discord::{discord_rp_with, me, round_trip, token_response};

/// A Discord fake that signs in `me()` (nelly) as often as asked.
async fn discord() -> MockServer {
    let discord = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .respond_with(token_response())
        .mount(&discord)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v10/users/@me"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(me()))
        .mount(&discord)
        .await;
    discord
}

/// The claims of a JWT the server just issued (its signature is the OIDC tests' subject).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}

/// Runs an authorization request for a first-party client in `visitor`'s browser (already
/// signed in) and exchanges the code: the token response.
async fn tokens_for(rp: &TestApp, visitor: &Visitor) -> Value {
    let (client, secret) = rp
        .register(&ClientSpec {
            scopes: vec!["openid profile offline_access".into()],
            skip_authorization: true,
            ..spec("confidential", &["authorization_code", "refresh_token"])
        })
        .await;
    let secret = secret.expect("secret");
    let (verifier, challenge) = pkce_pair();
    let url = rp.authorize_url(client.id(), "openid offline_access", &challenge, "st");
    let response = visitor.client.get(&url).send().await.expect("authorize");
    assert!(response.status().is_redirection(), "{}", response.status());
    let code = query_param(&location(&response), "code").expect("a code");
    let (status, body) = rp
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refresh = body["refresh_token"].as_str().expect("refresh token");
    let (status, refreshed) = rp
        .post_token(
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    serde_json::json!({ "first": body, "refreshed": refreshed })
}

#[tokio::test]
async fn id_tokens_of_an_upstream_session_name_the_provider_and_keep_it_on_refresh() {
    let discord = discord().await;
    let rp = discord_rp_with(&discord, "").await;
    let visitor = rp.anonymous_visitor();
    let signed_in = round_trip(&visitor, "c").await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let tokens = tokens_for(&rp, &visitor).await;
    for which in ["first", "refreshed"] {
        let id_token = claims(tokens[which]["id_token"].as_str().expect("id token"));
        assert_eq!(id_token["idp"], "discord", "{which}: {id_token}");
        assert!(
            id_token.get("amr").is_none(),
            "no RFC 8176 value describes the federated step alone: {id_token}"
        );
    }
    // A password login says no idp.
    let local = rp.create_user("ann").await;
    let ann = rp.visitor(&local.username).await;
    let tokens = tokens_for(&rp, &ann).await;
    let id_token = claims(tokens["first"]["id_token"].as_str().expect("id token"));
    assert!(id_token.get("idp").is_none(), "{id_token}");
    assert_eq!(id_token["amr"], serde_json::json!(["pwd"]));
}

/// Enters the emailed code sent to `address` in `visitor`, who is on the code step.
async fn enter_code(rp: &TestApp, visitor: &Visitor, address: &str) {
    assert!(!visitor.signed_in().await, "no session before the code");
    let code = rp.last_email_to(address).code().expect("a code");
    let response = visitor
        .submit(
            "/accounts/login/code/",
            "/accounts/login/code/",
            &[("otp", code.as_str())],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(visitor.signed_in().await);
}

#[tokio::test]
async fn a_new_account_enters_its_code_after_the_provider_when_every_account_must() {
    let discord = discord().await;
    // Every account asks for a code: the one Discord sign-in makes too, at the address
    // Discord verified.
    let rp = discord_rp_with(&discord, "[accounts]\nlogin_otp = \"all\"").await;
    let visitor = rp.anonymous_visitor();
    let response = round_trip(&visitor, "c").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/accounts/login/code/");
    enter_code(&rp, &visitor, "nelly@discord.example").await;
    let tokens = tokens_for(&rp, &visitor).await;
    let id_token = claims(tokens["first"]["id_token"].as_str().expect("id token"));
    assert_eq!(id_token["amr"], serde_json::json!(["otp"]));
    assert_eq!(id_token["idp"], "discord");
    let logins = rp.audit_events("login.success").await;
    assert_eq!(logins.len(), 1);
    assert!(
        logins[0].details.contains("\"provider\":\"discord\""),
        "{}",
        logins[0].details
    );
    assert!(
        logins[0].details.contains("\"amr\":\"otp\""),
        "{}",
        logins[0].details
    );
    // The sign-in waiting for its code made no upstream.login event.
    assert!(rp.audit_events("upstream.login").await.is_empty());
}

#[tokio::test]
async fn a_linked_account_with_codes_on_enters_its_code_after_the_provider() {
    let discord = discord().await;
    let rp = discord_rp_with(&discord, "").await;
    let ann = rp.create_user("ann").await;
    rp.services
        .accounts
        .set_login_code(&latchkey::audit::Actor::system(), &ann.id, true)
        .await
        .expect("codes on");
    let mut row = crate::upstream_links::link("l-ann", &ann.id, "discord", "80351110224678912");
    // The fake's API host is not Discord's: links through it carry its origin.
    row.issuer = format!("discord:{}", discord.uri());
    rp.services
        .db
        .write(move |conn| {
            latchkey::db::upstream_links::insert(conn, &row).map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("link");
    let visitor = rp.anonymous_visitor();
    let response = round_trip(&visitor, "c").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/accounts/login/code/");
    enter_code(&rp, &visitor, &ann.email).await;
    let (_, page) = visitor.get("/account/").await;
    assert!(page.contains("ann"), "{page}");
    let tokens = tokens_for(&rp, &visitor).await;
    let id_token = claims(tokens["refreshed"]["id_token"].as_str().expect("id token"));
    assert_eq!(id_token["amr"], serde_json::json!(["otp"]));
    assert_eq!(id_token["idp"], "discord");
}

/// Links `user_id` to the Discord account of `me()` directly (the sign-in that makes links is
/// tested elsewhere).
async fn link_to_discord(rp: &TestApp, discord: &MockServer, user_id: &str) {
    let mut row = crate::upstream_links::link("l-1", user_id, "discord", "80351110224678912");
    // The fake's API host is not Discord's: links through it carry its origin.
    row.issuer = format!("discord:{}", discord.uri());
    rp.services
        .db
        .write(move |conn| {
            latchkey::db::upstream_links::insert(conn, &row).map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("link");
}

#[tokio::test]
async fn a_deactivated_or_unverified_account_is_not_signed_in_through_its_link() {
    let discord = discord().await;
    let rp = discord_rp_with(&discord, "[accounts]\nemail_verification = \"mandatory\"").await;
    let ann = rp.create_user("ann").await;
    link_to_discord(&rp, &discord, &ann.id).await;
    // Deactivated: a page saying so, no session.
    rp.deactivate(&ann.id).await;
    let visitor = rp.anonymous_visitor();
    let response = round_trip(&visitor, "c").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let html = response.text().await.expect("page");
    assert!(html.contains("This account is disabled"), "{html}");
    assert!(!visitor.signed_in().await);
    // Active again, but the address is unverified where verification is mandatory: the
    // password sign-in verifies it first.
    rp.services
        .accounts
        .set_flags(
            &latchkey::audit::Actor::system(),
            &ann.id,
            latchkey::accounts::AccountFlags {
                is_active: true,
                is_staff: false,
                is_superuser: false,
            },
        )
        .await
        .expect("reactivate");
    let id = ann.id.clone();
    rp.services
        .db
        .write(move |conn| {
            latchkey::db::users::mark_email_unverified(conn, &id)
                .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("unverify");
    let visitor = rp.anonymous_visitor();
    let response = round_trip(&visitor, "c").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let html = response.text().await.expect("page");
    assert!(html.contains("not verified"), "{html}");
    assert!(!visitor.signed_in().await);
    assert!(rp.audit_events("upstream.login").await.is_empty());
}

/// Whether `access_token` still opens UserInfo.
async fn token_works(rp: &TestApp, access_token: &str) -> bool {
    rp.get_with_bearer("/o/userinfo/", access_token)
        .await
        .status()
        == StatusCode::OK
}

#[tokio::test]
async fn removing_a_link_ends_the_sessions_and_tokens_of_logins_through_it() {
    let discord = discord().await;
    let rp = discord_rp_with(&discord, "").await;
    let root = rp.create_staff("root").await;
    for by_admin in [false, true] {
        let name = if by_admin { "bea" } else { "ann" };
        let user = rp.create_user(name).await;
        link_to_discord(&rp, &discord, &user.id).await;
        // A browser signed in through Discord, with an application's token from that login …
        let through_discord = rp.anonymous_visitor();
        assert_eq!(
            round_trip(&through_discord, "c").await.status(),
            StatusCode::SEE_OTHER
        );
        let discord_tokens = tokens_for(&rp, &through_discord).await;
        let discord_access = discord_tokens["first"]["access_token"]
            .as_str()
            .expect("token")
            .to_owned();
        // … and one signed in with the password, with its own token.
        let with_password = rp.visitor(name).await;
        let password_tokens = tokens_for(&rp, &with_password).await;
        let password_access = password_tokens["first"]["access_token"]
            .as_str()
            .expect("token")
            .to_owned();
        assert!(token_works(&rp, &discord_access).await);

        let response = if by_admin {
            let admin = rp.visitor("root").await;
            let (_, page) = admin.get(&format!("/admin/users/{}/", user.id)).await;
            admin
                .post_with_csrf_of(
                    &page,
                    &format!("/admin/users/{}/links/discord/remove/", user.id),
                    &[],
                )
                .await
        } else {
            let (_, page) = with_password.get("/account/linked/").await;
            with_password
                .post_with_csrf_of(&page, "/account/linked/discord/unlink/", &[])
                .await
        };
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{name}");
        // What the Discord login gave is gone; what the password gave stays.
        assert!(!through_discord.signed_in().await, "{name}");
        assert!(!token_works(&rp, &discord_access).await, "{name}");
        assert!(with_password.signed_in().await, "{name}");
        assert!(token_works(&rp, &password_access).await, "{name}");
    }
    let removals = rp.audit_events("upstream.unlinked").await;
    assert_eq!(removals.len(), 2);
    assert!(removals
        .iter()
        .any(|e| e.actor_id.as_deref() == Some(root.id.as_str())));
}

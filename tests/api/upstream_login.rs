//! Signing in through an upstream OpenID Connect provider (issue 11), end to end: a second
//! Latchkey server is the provider. The relying party discovers it from its issuer, sends the
//! browser there with state, PKCE and a nonce, exchanges the code, verifies the ID token, and
//! signs the user in under the linking rules.

use latchkey::clients::ClientSpec;
use reqwest::StatusCode;

use crate::helpers::{location, spawn_app, spawn_app_with, spec, TestApp, Visitor};

const SECRET: &str = "a-client-secret-the-provider-issued-for-the-rp";

/// A provider Latchkey with user `olivia`, and a relying-party Latchkey configured with it as
/// `[upstream.corp]` (plus `extra` settings).
async fn provider_and_rp(extra: &str) -> (TestApp, TestApp) {
    let provider = spawn_app().await;
    provider.create_user("olivia").await;
    let rp = spawn_app_with(&format!(
        r#"
[upstream.corp]
kind = "oidc"
label = "Corp SSO"
issuer = "{}"
client_id = "latchkey-rp"
client_secret = "{SECRET}"
{extra}
"#,
        provider.address
    ))
    .await;
    provider
        .services
        .clients
        .ensure_fixed(
            "latchkey-rp",
            Some(SECRET),
            &ClientSpec {
                redirect_uris: vec![format!("{}/accounts/upstream/corp/callback/", rp.address)],
                scopes: ["openid", "email", "profile"].map(str::to_owned).to_vec(),
                skip_authorization: true,
                ..spec("confidential", &["authorization_code"])
            },
        )
        .await
        .expect("the RP's client at the provider");
    (provider, rp)
}

/// Starts a sign-in at the RP, signs in as `username` at the provider, and returns the
/// callback path the provider sent the browser back to.
async fn through_provider(
    provider: &TestApp,
    rp: &TestApp,
    visitor: &Visitor,
    next: &str,
) -> String {
    let start = visitor
        .get_response(&format!("/accounts/upstream/corp/login/?next={next}"))
        .await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let authorize = location(&start);
    assert!(authorize.starts_with(&provider.address), "{authorize}");
    for part in [
        "code_challenge_method=S256",
        "nonce=",
        "state=",
        "scope=openid",
    ] {
        assert!(authorize.contains(part), "{part} in {authorize}");
    }
    let back = provider.authorize_as(&authorize, "olivia", "allow").await;
    let callback = format!("{}/accounts/upstream/corp/callback/", rp.address);
    assert!(back.starts_with(&callback), "{back}");
    back.strip_prefix(&rp.address)
        .expect("on the RP")
        .to_owned()
}

#[tokio::test]
async fn a_new_user_signs_in_through_another_latchkey_and_a_link_brings_them_back() {
    let (provider, rp) = provider_and_rp("").await;
    let visitor = rp.anonymous_visitor();
    let (_, page) = visitor.get("/accounts/login/?next=/account/").await;
    assert!(
        page.contains(
            r#"href="/accounts/upstream/corp/login/?next=%2Faccount%2F">Sign in with Corp SSO</a>"#
        ),
        "{page}"
    );

    let callback = through_provider(&provider, &rp, &visitor, "/account/").await;
    let response = visitor.get_response(&callback).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/account/");
    let (status, account) = visitor.get("/account/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(account.contains("olivia@example.com"), "{account}");
    let users = rp
        .services
        .accounts
        .find_by_login("olivia")
        .await
        .expect("db");
    let user = users.expect("an account was made, named after the provider's username");
    assert!(user.email_verified, "the provider verified the address");
    assert!(!user.has_password, "no password");
    let links = rp.services.upstream.links_of(&user.id).await.expect("db");
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].provider_id, "corp");
    assert!(!rp.audit_events("upstream.linked").await.is_empty());

    // The callback is single use.
    let replay = visitor.get_response(&callback).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);

    // Another browser, another sign-in: the link signs in the same account.
    let again = rp.anonymous_visitor();
    let callback = through_provider(&provider, &rp, &again, "/account/").await;
    let response = again.get_response(&callback).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let links = rp.services.upstream.links_of(&user.id).await.expect("db");
    assert_eq!(links.len(), 1, "no second link");
    assert_eq!(rp.audit_events("upstream.login").await.len(), 2);

    // The link is this passwordless account's only way in: it cannot be unlinked.
    let (_, page) = again.get("/account/linked/").await;
    let refused = again
        .post_with_csrf_of(&page, "/account/linked/corp/unlink/", &[])
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused
        .text()
        .await
        .expect("page")
        .contains("This is your only way to sign in"));
    assert_eq!(
        rp.services
            .upstream
            .links_of(&user.id)
            .await
            .expect("db")
            .len(),
        1
    );
}

#[tokio::test]
async fn a_callback_from_another_browser_or_with_an_error_signs_nobody_in() {
    let (provider, rp) = provider_and_rp("").await;
    let starter = rp.anonymous_visitor();
    let callback = through_provider(&provider, &rp, &starter, "/account/").await;
    // The code arrives in another browser (a login-CSRF attempt): no pending sign-in there.
    let attacker = rp.anonymous_visitor();
    let response = attacker.get_response(&callback).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.expect("page");
    assert!(html.contains("was not started in this browser"), "{html}");
    // A tampered state in the right browser (a forged callback, a link from another site):
    // refused, without cancelling the sign-in under way …
    let tampered = callback.replace("state=", "state=x");
    assert_eq!(
        starter.get_response(&tampered).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        starter.get_response(&callback).await.status(),
        StatusCode::SEE_OTHER,
        "the genuine callback still finishes it"
    );
    // … which is then spent.
    assert_eq!(
        starter.get_response(&callback).await.status(),
        StatusCode::BAD_REQUEST
    );
    starter.get_response("/accounts/logout/").await;
    // An error answer without this browser's state is a callback nobody here started …
    starter
        .get_response("/accounts/upstream/corp/login/?next=/")
        .await;
    let foreign = starter
        .get_response("/accounts/upstream/corp/callback/?error=access_denied&state=x")
        .await;
    assert_eq!(foreign.status(), StatusCode::BAD_REQUEST);
    // … with it, the provider says the user refused (naming itself, RFC 9207, as it announces).
    let start = starter
        .get_response("/accounts/upstream/corp/login/?next=/")
        .await;
    let state = crate::helpers::query_param(&location(&start), "state").expect("state");
    let iss: String = url::form_urlencoded::byte_serialize(provider.address.as_bytes()).collect();
    let denied = starter
        .get_response(&format!(
            "/accounts/upstream/corp/callback/?error=access_denied&state={state}&iss={iss}"
        ))
        .await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    assert!(denied
        .text()
        .await
        .expect("page")
        .contains("You did not allow the sign-in at Corp SSO"));
    // An unknown provider.
    assert_eq!(
        starter
            .get_response("/accounts/upstream/nope/login/")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // Only the genuine callback, in the browser that started it, signed anyone in.
    assert!(!attacker.signed_in().await);
    assert_eq!(rp.audit_events("upstream.login").await.len(), 1);
}

#[tokio::test]
async fn an_unverified_local_address_is_never_linked_by_email() {
    // Linking by email is on, the provider verified its address, but the local account with
    // that address never proved it owns it (a squatter may have registered it): no link.
    let (provider, rp) = provider_and_rp("link_by_email = true").await;
    let local = rp.create_user("olivia").await;
    let id = local.id.clone();
    rp.services
        .db
        .write(move |conn| {
            latchkey::db::users::mark_email_unverified(conn, &id)
                .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("db");
    let visitor = rp.anonymous_visitor();
    let callback = through_provider(&provider, &rp, &visitor, "/").await;
    let response = visitor.get_response(&callback).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(rp
        .services
        .upstream
        .links_of(&local.id)
        .await
        .expect("db")
        .is_empty());
    assert!(rp.audit_events("upstream.login").await.is_empty());
}

#[tokio::test]
async fn a_taken_address_asks_for_the_password_unless_linking_by_email_is_on() {
    for (setting, linked) in [("", false), ("link_by_email = true", true)] {
        let (provider, rp) = provider_and_rp(setting).await;
        // The RP already has an account with the provider's user's address (verified).
        let local = rp.create_user("olivia").await;
        let visitor = rp.anonymous_visitor();
        let callback = through_provider(&provider, &rp, &visitor, "/account/").await;
        let response = visitor.get_response(&callback).await;
        let links = rp.services.upstream.links_of(&local.id).await.expect("db");
        if linked {
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "{setting}");
            assert_eq!(links.len(), 1, "linked by the verified address");
            // A new way in is told to the account's owner.
            let notice = rp.last_email_to(&local.email);
            assert_eq!(
                notice.subject,
                "A Corp SSO account was linked to your account"
            );
            assert!(notice.text.contains("/account/linked/"), "{}", notice.text);
            assert!(notice.text.contains("olivia"), "{}", notice.text);
        } else {
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{setting}");
            let html = response.text().await.expect("page");
            assert!(html.contains("Sign in with your password"), "{html}");
            assert!(links.is_empty());
            // Signed in with the password, a plain sign-in through the provider still links
            // nothing (it never links to whoever is signed in) …
            let signed_in = rp.visitor("olivia").await;
            let callback = through_provider(&provider, &rp, &signed_in, "/account/").await;
            let response = signed_in.get_response(&callback).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
            assert!(rp
                .services
                .upstream
                .links_of(&local.id)
                .await
                .expect("db")
                .is_empty());
            // … but "Link Corp SSO" on the linked-accounts page does.
            let (status, page) = signed_in.get("/account/linked/").await;
            assert_eq!(status, StatusCode::OK);
            assert!(page.contains("Link Corp SSO"), "{page}");
            let start = signed_in
                .post_with_csrf_of(&page, "/accounts/upstream/corp/link/", &[])
                .await;
            assert_eq!(start.status(), StatusCode::SEE_OTHER);
            let back = provider
                .authorize_as(&location(&start), "olivia", "allow")
                .await;
            let callback = back
                .strip_prefix(&rp.address)
                .expect("on the RP")
                .to_owned();
            let response = signed_in.get_response(&callback).await;
            assert_eq!(response.status(), StatusCode::SEE_OTHER);
            assert_eq!(location(&response), "/account/linked/");
            let links = rp.services.upstream.links_of(&local.id).await.expect("db");
            assert_eq!(links.len(), 1, "linked on request");
            let notices: Vec<_> = rp
                .emails_to(&local.email)
                .into_iter()
                .filter(|m| m.subject.contains("was linked"))
                .collect();
            assert_eq!(notices.len(), 1, "one notice for the one new link");
            let (_, page) = signed_in.get("/account/linked/").await;
            assert!(page.contains("Your Corp SSO account is linked."), "{page}");
            assert!(page.contains(">Unlink</button>"), "{page}");
            // olivia has a password, so the link may go.
            let response = signed_in
                .post_with_csrf_of(&page, "/account/linked/corp/unlink/", &[])
                .await;
            assert_eq!(response.status(), StatusCode::SEE_OTHER);
            assert!(rp
                .services
                .upstream
                .links_of(&local.id)
                .await
                .expect("db")
                .is_empty());
            assert_eq!(rp.audit_events("upstream.unlinked").await.len(), 1);
        }
    }
}

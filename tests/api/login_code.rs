//! Emailed one-time codes at login (email 2FA): the hosted login's code step, the password
//! grant's `mfa_required` answer and the mfa-otp grant, the `accounts.login_otp` policy and
//! the account page's switch. Codes are read from the development outbox.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use latchkey::clients::ClientSpec;
use reqwest::header::{CACHE_CONTROL, COOKIE, RETRY_AFTER, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    csrf_from, location, pkce_pair, query_param, spawn_app, spawn_app_with, spec, TestApp, Visitor,
    PASSWORD, REDIRECT_URI,
};

const MFA_OTP: &str = "urn:latchkey:params:oauth:grant-type:mfa-otp";

/// Switches login codes on for `user_id` through the service.
async fn switch_on(app: &TestApp, user_id: &str) {
    app.services
        .accounts
        .set_login_code(&latchkey::audit::Actor::system(), user_id, true)
        .await
        .expect("switch login codes on");
}

/// Posts the login form with the password; returns the response (not followed).
async fn post_password(visitor: &Visitor, username: &str, next: &str) -> reqwest::Response {
    visitor
        .submit(
            "/accounts/login/",
            "/accounts/login/",
            &[
                ("username", username),
                ("password", PASSWORD),
                ("next", next),
            ],
        )
        .await
}

/// The newest code emailed to `username`.
fn code_for(app: &TestApp, username: &str) -> String {
    app.last_email_to(&format!("{username}@example.com"))
        .code()
        .expect("a code in the email")
}

/// A six-digit code that is not `code`.
fn wrong(code: &str) -> &'static str {
    if code == "000000" {
        "111111"
    } else {
        "000000"
    }
}

/// Opens the code page and posts `otp` with its CSRF token.
async fn enter_code(visitor: &Visitor, otp: &str) -> reqwest::Response {
    visitor
        .submit(
            "/accounts/login/code/",
            "/accounts/login/code/",
            &[("otp", otp)],
        )
        .await
}

fn claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

fn details(row: &latchkey::db::audit_events::AuditRow) -> Value {
    serde_json::from_str(&row.details).expect("details are JSON")
}

#[tokio::test]
async fn hosted_login_asks_for_the_emailed_code_and_the_id_token_says_otp() {
    let app = spawn_app().await;
    let user = app.create_user("ada").await;
    switch_on(&app, &user.id).await;
    let (client, _) = app
        .register(&ClientSpec {
            scopes: vec!["openid profile".into()],
            ..spec("public", &["authorization_code"])
        })
        .await;

    // An authorization request sends the browser to the login page…
    let visitor = app.anonymous_visitor();
    let (verifier, challenge) = pkce_pair();
    let authorize = app
        .authorize_url(client.id(), "openid profile", &challenge, "st4te")
        .replace(&app.address, "");
    let to_login = visitor.get_response(&authorize).await;
    assert_eq!(to_login.status(), StatusCode::SEE_OTHER);
    let login_url = location(&to_login);
    let next = query_param(&app.url(&login_url), "next").expect("next");

    // …the right password leads to the code step, not into the account.
    let response = post_password(&visitor, "ada", &next).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/accounts/login/code/");
    assert!(
        !visitor.signed_in().await,
        "the password alone signs nobody in"
    );
    let (status, page) = visitor.get("/accounts/login/code/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Enter your sign-in code"), "{page}");
    assert!(
        page.contains("a••@example.com"),
        "the address is masked: {page}"
    );
    assert!(!page.contains("ada@example.com"));

    // The email has the code and where the login came from.
    let emails = app.emails_to("ada@example.com");
    assert_eq!(emails.len(), 1);
    let email = &emails[0];
    assert!(
        email.subject.starts_with("Your sign-in code"),
        "{}",
        email.subject
    );
    assert!(
        email.text.contains("127.0.0.1"),
        "the email names the IP: {}",
        email.text
    );
    let code = email.code().expect("code");

    // The code completes the login and continues to the authorization request.
    let response = enter_code(&visitor, &code).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), next);
    assert!(visitor.signed_in().await);

    // Consent, then the ID token carries amr ["pwd", "otp"].
    let (status, consent) = visitor.get(&next).await;
    assert_eq!(status, StatusCode::OK, "{consent}");
    let action = consent
        .split("action=\"")
        .filter_map(|s| s.split('"').next())
        .find(|a| a.starts_with("/o/authorize/"))
        .expect("consent form action")
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let redirect = visitor
        .post_with_csrf_of(&consent, &action, &[("decision", "allow")])
        .await;
    let callback = location(&redirect);
    assert!(callback.starts_with(REDIRECT_URI), "{callback}");
    let auth_code = query_param(&callback, "code").expect("code");
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", auth_code.as_str()),
                ("redirect_uri", REDIRECT_URI),
                ("client_id", client.id()),
                ("code_verifier", verifier.as_str()),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id_token = claims(body["id_token"].as_str().expect("id_token"));
    assert_eq!(id_token["amr"], serde_json::json!(["pwd", "otp"]));

    // The audit log: password accepted, code sent, then the login with both methods.
    assert_eq!(app.audit_events("login.password_ok").await.len(), 1);
    let sent = app.audit_events("login.otp_sent").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].user_id.as_deref(), Some(user.id.as_str()));
    let success = app.audit_events("login.success").await;
    assert_eq!(success.len(), 1, "one login, counted once");
    assert_eq!(details(&success[0])["amr"], "pwd otp");
    for row in app.audit_events("login.").await {
        assert!(!row.details.contains(&code), "no code in the audit log");
    }
}

#[tokio::test]
async fn a_wrong_code_shows_the_attempts_left_and_five_end_the_login() {
    let app = spawn_app().await;
    let user = app.create_user("bea").await;
    switch_on(&app, &user.id).await;
    let visitor = app.anonymous_visitor();
    assert_eq!(
        post_password(&visitor, "bea", "/account/").await.status(),
        StatusCode::SEE_OTHER
    );
    let code = code_for(&app, "bea");

    // An empty form does not count as a guess.
    let response = enter_code(&visitor, "").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response
        .text()
        .await
        .expect("html")
        .contains("Enter the 6-digit code"));

    for left in (1..=4).rev() {
        let response = enter_code(&visitor, wrong(&code)).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = response.text().await.expect("html");
        let expected = if left == 1 {
            "1 attempt left".to_owned()
        } else {
            format!("{left} attempts left")
        };
        assert!(html.contains(&expected), "{expected}: {html}");
        assert!(html.contains("aria-invalid=\"true\""));
    }
    // The fifth wrong code ends the login: back to the login page.
    let response = enter_code(&visitor, wrong(&code)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.expect("html");
    assert!(html.contains("Too many wrong codes"), "{html}");
    assert!(
        html.contains("action=\"/accounts/login/\""),
        "the login page: {html}"
    );
    // The right code no longer helps: the pending login is gone.
    assert_eq!(
        visitor.get_response("/accounts/login/code/").await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(!visitor.signed_in().await);
    let failed = app.audit_events("login.otp_failed").await;
    assert_eq!(failed.len(), 5);
    assert_eq!(details(&failed[0])["reason"], "exhausted");
    assert_eq!(details(&failed[4])["reason"], "wrong");
    assert_eq!(details(&failed[4])["attempts_left"], 4);
    assert!(app.audit_events("login.success").await.is_empty());
}

#[tokio::test]
async fn an_expired_code_sends_the_user_back_to_the_login_page() {
    let app = spawn_app_with("[accounts]\notp_expiration_seconds = 1\n").await;
    let user = app.create_user("cy").await;
    switch_on(&app, &user.id).await;
    let visitor = app.anonymous_visitor();
    post_password(&visitor, "cy", "/account/").await;
    let code = code_for(&app, "cy");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let response = enter_code(&visitor, &code).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.expect("html");
    assert!(html.contains("expired"), "{html}");
    assert!(html.contains("value=\"/account/\""), "next is kept: {html}");
    assert!(!visitor.signed_in().await);
    let failed = app.audit_events("login.otp_failed").await;
    assert_eq!(details(&failed[0])["reason"], "expired");
}

/// The `name=value` of the session cookie a response sets.
fn session_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("latchkey_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

#[tokio::test]
async fn a_code_works_once_even_when_the_old_session_cookie_is_replayed() {
    let app = spawn_app().await;
    let user = app.create_user("dee").await;
    switch_on(&app, &user.id).await;
    // A browser by hand, so that the cookie holding the pending login can be kept.
    let page = app
        .api
        .get(app.url("/accounts/login/"))
        .send()
        .await
        .expect("login page");
    let cookie = session_cookie(&page);
    let csrf = csrf_from(&page.text().await.expect("html"));
    let response = app
        .api
        .post(app.url("/accounts/login/"))
        .header(COOKIE, &cookie)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("username", "dee"),
            ("password", PASSWORD),
            ("next", "/account/"),
        ])
        .send()
        .await
        .expect("login");
    assert_eq!(location(&response), "/accounts/login/code/");
    let pending = session_cookie(&response);
    let code = code_for(&app, "dee");
    let submit = || {
        app.api
            .post(app.url("/accounts/login/code/"))
            .header(COOKIE, &pending)
            .form(&[("csrf_token", csrf.as_str()), ("otp", code.as_str())])
            .send()
    };
    let first = submit().await.expect("code");
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&first), "/account/");
    let again = submit().await.expect("replay");
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let html = again.text().await.expect("html");
    assert!(html.contains("no longer works"), "{html}");
    assert_eq!(app.audit_events("login.success").await.len(), 1);
}

#[tokio::test]
async fn a_new_code_waits_for_the_growing_cooldown_and_replaces_the_old_one() {
    let app = spawn_app_with("[accounts]\nresend_cooldown_seconds = 2\n").await;
    let user = app.create_user("eve").await;
    switch_on(&app, &user.id).await;
    let visitor = app.anonymous_visitor();
    post_password(&visitor, "eve", "/account/").await;
    let first = code_for(&app, "eve");
    let resend = || visitor.submit("/accounts/login/code/", "/accounts/login/code/resend/", &[]);

    // Too soon: 429 with Retry-After, and the code page says how long to wait.
    let response = resend().await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()[RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&wait), "{wait}");
    assert!(response
        .text()
        .await
        .expect("html")
        .contains("You can ask for a new code in"));
    assert_eq!(app.emails_to("eve@example.com").len(), 1);

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let response = resend().await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, page) = visitor.get("/accounts/login/code/").await;
    assert!(page.contains("We emailed you a new code"), "{page}");
    let emails = app.emails_to("eve@example.com");
    assert_eq!(emails.len(), 2);
    let second = emails[1].code().expect("code");
    // The wait doubles with each code sent within the hour.
    let response = resend().await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()[RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((3..=4).contains(&wait), "doubled: {wait}");

    // Only the newest code works.
    if first != second {
        let response = enter_code(&visitor, &first).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let response = enter_code(&visitor, &second).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(visitor.signed_in().await);
}

#[tokio::test]
async fn policy_staff_asks_staff_for_a_code_and_locks_their_switch() {
    let app = spawn_app_with("[accounts]\nlogin_otp = \"staff\"\n").await;
    app.create_staff("boss").await;
    app.create_user("worker").await;

    // A user without the switch signs in with the password alone.
    let worker = app.anonymous_visitor();
    let response = post_password(&worker, "worker", "/").await;
    assert_eq!(location(&response), "/");
    assert!(worker.signed_in().await);
    assert!(app.emails_to("worker@example.com").is_empty());
    let (_, page) = worker.get("/account/").await;
    assert!(page.contains("name=\"enabled\""));
    assert!(!page.contains("asks staff accounts"), "{page}");

    // Staff must enter a code.
    let boss = app.anonymous_visitor();
    let response = post_password(&boss, "boss", "/").await;
    assert_eq!(location(&response), "/accounts/login/code/");
    let response = enter_code(&boss, &code_for(&app, "boss")).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, page) = boss.get("/account/").await;
    assert!(page.contains("This server asks staff accounts for a code at sign-in."));
    assert!(
        page.contains(" checked disabled"),
        "on and disabled: {page}"
    );
    // Switching it off anyway is refused.
    let response = boss
        .post_with_csrf_of(&page, "/account/login_code/", &[])
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(app.audit_events("mfa.").await.is_empty());
}

#[tokio::test]
async fn policy_all_asks_everyone_for_a_code() {
    let app = spawn_app_with("[accounts]\nlogin_otp = \"all\"\n").await;
    app.create_user("fay").await;
    let visitor = app.anonymous_visitor();
    let response = post_password(&visitor, "fay", "/").await;
    assert_eq!(location(&response), "/accounts/login/code/");
    let response = enter_code(&visitor, &code_for(&app, "fay")).await;
    assert_eq!(location(&response), "/");
    let (_, page) = visitor.get("/account/").await;
    assert!(page.contains("This server asks every account for a code at sign-in."));
    assert!(page.contains(" checked disabled"), "{page}");
}

/// Sends the password grant for `username`; returns the raw response.
async fn password_grant(app: &TestApp, username: &str, basic: (&str, &str)) -> reqwest::Response {
    app.api
        .post(app.url("/o/token/"))
        .basic_auth(basic.0, Some(basic.1))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", PASSWORD),
            ("scope", "openid profile"),
        ])
        .send()
        .await
        .expect("password grant")
}

#[tokio::test]
async fn the_password_grant_asks_for_the_code_and_the_mfa_otp_grant_issues_tokens() {
    let app = spawn_app().await;
    let user = app.create_user("gus").await;
    switch_on(&app, &user.id).await;
    let (id, secret) = app.password_client(&["refresh_token"]).await;
    let basic = (id.as_str(), secret.as_str());

    let response = password_grant(&app, "gus", basic).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "mfa_required", "{body}");
    assert!(body["error_description"].is_string());
    assert!(body.get("access_token").is_none());
    let mfa_token = body["mfa_token"].as_str().expect("mfa_token").to_owned();
    let code = code_for(&app, "gus");

    // Asking again at once: the cooldown (the first code still works).
    let response = password_grant(&app, "gus", basic).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key(RETRY_AFTER));
    assert_eq!(app.emails_to("gus@example.com").len(), 1);

    // A `scope` here is ignored: the login's scope was settled by the password grant.
    let (status, tokens) = app
        .post_token(
            &[
                ("grant_type", MFA_OTP),
                ("mfa_token", mfa_token.as_str()),
                ("otp", code.as_str()),
                ("scope", "profile"),
            ],
            Some(basic),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid profile");
    assert!(tokens["refresh_token"].is_string());
    let id_token = claims(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(id_token["amr"], serde_json::json!(["pwd", "otp"]));
    assert_eq!(id_token["sub"], user.id.as_str());
    let me = app
        .get_with_bearer("/o/userinfo/", tokens["access_token"].as_str().expect("at"))
        .await;
    assert_eq!(me.status(), StatusCode::OK);

    // The token is single-use.
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", MFA_OTP),
                ("mfa_token", mfa_token.as_str()),
                ("otp", code.as_str()),
            ],
            Some(basic),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );

    let success = app.audit_events("login.success").await;
    assert_eq!(success.len(), 1);
    assert_eq!(details(&success[0])["amr"], "pwd otp");
    assert_eq!(success[0].client_id.as_deref(), Some(id.as_str()));
    let sent = app.audit_events("login.otp_sent").await;
    assert_eq!(sent[0].client_id.as_deref(), Some(id.as_str()));
}

#[tokio::test]
async fn the_mfa_otp_grant_refuses_wrong_codes_other_clients_and_spent_tokens() {
    let app = spawn_app().await;
    let user = app.create_user("hal").await;
    switch_on(&app, &user.id).await;
    let (id, secret) = app.password_client(&["refresh_token"]).await;
    let basic = (id.as_str(), secret.as_str());
    let (other_id, other_secret) = app.password_client(&["refresh_token"]).await;
    let response = password_grant(&app, "hal", basic).await;
    let body: Value = response.json().await.expect("json");
    let mfa_token = body["mfa_token"].as_str().expect("mfa_token").to_owned();
    let code = code_for(&app, "hal");
    let finish = |otp: String, client: (String, String)| {
        let mfa_token = mfa_token.clone();
        let app = &app;
        async move {
            app.post_token(
                &[
                    ("grant_type", MFA_OTP),
                    ("mfa_token", mfa_token.as_str()),
                    ("otp", otp.as_str()),
                ],
                Some((client.0.as_str(), client.1.as_str())),
            )
            .await
        }
    };
    let ours = (id.clone(), secret.clone());
    let theirs = (other_id.clone(), other_secret.clone());

    // Missing fields.
    let (status, body) = app
        .post_token(&[("grant_type", MFA_OTP), ("otp", "123456")], Some(basic))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    // Another client cannot use the token, even with the right code (and spends no guess).
    let (status, body) = finish(code.clone(), theirs.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );

    // A client without the password grant may not use mfa-otp at all.
    let (plain, plain_secret) = app
        .register(&spec("confidential", &["client_credentials"]))
        .await;
    let (status, body) = finish(
        code.clone(),
        (plain.id().to_owned(), plain_secret.expect("secret")),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client")),
        "{body}"
    );

    // Wrong codes say how many attempts are left; the fifth kills the token.
    for left in (1..=4).rev() {
        let (status, body) = finish(wrong(&code).to_owned(), ours.clone()).await;
        assert_eq!(body["error"], "invalid_grant", "{body}");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let description = body["error_description"].as_str().expect("description");
        let expected = if left == 1 {
            "1 attempt left".to_owned()
        } else {
            format!("{left} attempts left")
        };
        assert!(description.contains(&expected), "{description}");
    }
    let (_, body) = finish(wrong(&code).to_owned(), ours.clone()).await;
    assert!(body["error_description"]
        .as_str()
        .expect("description")
        .contains("too many wrong codes"));
    let (status, body) = finish(code.clone(), ours.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // An unknown token.
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", MFA_OTP),
                ("mfa_token", "not-a-token"),
                ("otp", code.as_str()),
            ],
            Some(basic),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert!(app.audit_events("login.success").await.is_empty());
    assert!(app.audit_events("token.issued").await.is_empty());
}

#[tokio::test]
async fn an_expired_mfa_token_is_invalid_grant() {
    let app = spawn_app_with("[accounts]\notp_expiration_seconds = 1\n").await;
    let user = app.create_user("ida").await;
    switch_on(&app, &user.id).await;
    let (id, secret) = app.password_client(&["refresh_token"]).await;
    let response = password_grant(&app, "ida", (id.as_str(), secret.as_str())).await;
    let body: Value = response.json().await.expect("json");
    let mfa_token = body["mfa_token"].as_str().expect("mfa_token").to_owned();
    let code = code_for(&app, "ida");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", MFA_OTP),
                ("mfa_token", mfa_token.as_str()),
                ("otp", code.as_str()),
            ],
            Some((id.as_str(), secret.as_str())),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert!(body["error_description"]
        .as_str()
        .expect("description")
        .contains("expired"));
}

#[tokio::test]
async fn users_without_codes_still_get_tokens_from_the_password_grant_and_metadata_lists_mfa_otp() {
    let app = spawn_app().await;
    app.create_user("jo").await;
    let (id, secret) = app.password_client(&["refresh_token"]).await;
    let response = password_grant(&app, "jo", (id.as_str(), secret.as_str())).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.expect("json");
    let id_token = claims(tokens["id_token"].as_str().expect("id_token"));
    assert_eq!(id_token["amr"], serde_json::json!(["pwd"]));
    assert!(app.emails_to("jo@example.com").is_empty());

    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let metadata: Value = app
            .api
            .get(app.url(path))
            .send()
            .await
            .expect("metadata")
            .json()
            .await
            .expect("json");
        let grants = metadata["grant_types_supported"]
            .as_array()
            .expect("grant types");
        assert!(grants.iter().any(|g| g == MFA_OTP), "{path}: {grants:?}");
        assert!(grants.iter().any(|g| g == "password"));
    }
}

/// Whether the account page's sign-in code checkbox is ticked.
fn switch_checked(page: &str) -> bool {
    let start = page.find("name=\"enabled\"").expect("the switch");
    let end = start + page[start..].find('>').expect("end of the tag");
    page[start..end].contains(" checked")
}

#[tokio::test]
async fn the_account_page_switch_turns_codes_on_and_off() {
    let app = spawn_app().await;
    let user = app.create_user("kit").await;
    let visitor = app.visitor("kit").await;
    let (_, page) = visitor.get("/account/").await;
    assert!(page.contains("Sign-in codes"));
    assert!(page.contains("name=\"enabled\" value=\"on\""));
    assert!(!switch_checked(&page), "off at first: {page}");

    // Without the CSRF token: refused.
    let response = visitor
        .client
        .post(visitor.url("/account/login_code/"))
        .form(&[("enabled", "on")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let stored = app
        .services
        .accounts
        .find(user.id.clone())
        .await
        .expect("db");
    assert!(!stored.expect("user").mfa_enabled);

    let response = visitor
        .post_with_csrf_of(&page, "/account/login_code/", &[("enabled", "on")])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/account/");
    let stored = app
        .services
        .accounts
        .find(user.id.clone())
        .await
        .expect("db");
    assert!(stored.expect("user").mfa_enabled);
    let (_, page) = visitor.get("/account/").await;
    assert!(page.contains("From your next sign-in"), "notice: {page}");
    assert!(switch_checked(&page), "on: {page}");
    assert!(
        app.emails_to("kit@example.com").is_empty(),
        "switching on sends nothing"
    );
    let enabled = app.audit_events("mfa.enabled").await;
    assert_eq!(enabled.len(), 1);
    assert_eq!(enabled[0].actor_id.as_deref(), Some(user.id.as_str()));

    // The next sign-in asks for a code.
    let other = app.anonymous_visitor();
    let response = post_password(&other, "kit", "/").await;
    assert_eq!(location(&response), "/accounts/login/code/");

    // Off again (the checkbox is left out of the form) takes the current password.
    for wrong in [&[][..], &[("current_password", "not it")][..]] {
        let response = visitor
            .post_with_csrf_of(&page, "/account/login_code/", wrong)
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    assert!(
        app.services
            .accounts
            .find(user.id.clone())
            .await
            .expect("db")
            .expect("user")
            .mfa_enabled
    );
    let response = visitor
        .post_with_csrf_of(
            &page,
            "/account/login_code/",
            &[("current_password", PASSWORD)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let stored = app
        .services
        .accounts
        .find(user.id.clone())
        .await
        .expect("db");
    assert!(!stored.expect("user").mfa_enabled);
    assert_eq!(app.audit_events("mfa.disabled").await.len(), 1);
    // The owner hears of it (someone with their session and password may have done it).
    let notice = app.last_email_to("kit@example.com");
    assert_eq!(notice.subject, "Sign-in codes were switched off");
    assert!(
        notice.text.contains("your password alone signs you in"),
        "{}",
        notice.text
    );
    assert!(notice
        .link_starting_with(&app.url("/accounts/password-reset/"))
        .is_some());
    let third = app.anonymous_visitor();
    let response = post_password(&third, "kit", "/").await;
    assert_eq!(location(&response), "/");
}

#[tokio::test]
async fn an_unverified_address_cannot_switch_codes_on() {
    let app = spawn_app().await;
    let user = app.create_user("lou").await;
    let id = user.id.clone();
    app.services
        .db
        .write(move |conn| {
            use diesel::prelude::*;
            use latchkey::db::schema::users;
            diesel::update(users::table.find(&id))
                .set(users::email_verified.eq(false))
                .execute(conn)
                .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("unverify");
    let visitor = app.visitor("lou").await;
    let (_, page) = visitor.get("/account/").await;
    assert!(page.contains("Verify your email address first"), "{page}");
    let response = visitor
        .post_with_csrf_of(&page, "/account/login_code/", &[("enabled", "on")])
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let stored = app
        .services
        .accounts
        .find(user.id.clone())
        .await
        .expect("db");
    assert!(!stored.expect("user").mfa_enabled);
}

#[tokio::test]
async fn code_guesses_at_the_mfa_otp_grant_and_the_code_page_count_per_client_address() {
    let app = spawn_app_with("[rate_limits]\ncode_guesses_per_ip = 3").await;
    let user = app.create_user("ivy").await;
    switch_on(&app, &user.id).await;
    let (id, secret) = app.password_client(&["refresh_token"]).await;
    let basic = (id.as_str(), secret.as_str());
    let response = password_grant(&app, "ivy", basic).await;
    let body: Value = response.json().await.expect("json");
    let mfa_token = body["mfa_token"].as_str().expect("mfa_token").to_owned();
    let code = code_for(&app, "ivy");
    // Guesses with invented mfa_tokens count too: the limit is the address's, not the code's.
    for token in ["invented-1", "invented-2", mfa_token.as_str()] {
        let (status, body) = app
            .post_token(
                &[
                    ("grant_type", MFA_OTP),
                    ("mfa_token", token),
                    ("otp", wrong(&code)),
                ],
                Some(basic),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    // Past the limit even the right code is not checked (and not spent).
    let response = app
        .api
        .post(app.url("/o/token/"))
        .basic_auth(basic.0, Some(basic.1))
        .form(&[
            ("grant_type", MFA_OTP),
            ("mfa_token", mfa_token.as_str()),
            ("otp", code.as_str()),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key(RETRY_AFTER));
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");
    // The hosted code page shares the counter.
    let visitor = app.anonymous_visitor();
    let other = app.create_user("jay").await;
    switch_on(&app, &other.id).await;
    assert_eq!(
        post_password(&visitor, "jay", "/").await.status(),
        StatusCode::SEE_OTHER
    );
    let response = enter_code(&visitor, &code_for(&app, "jay")).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key(RETRY_AFTER));
    assert!(!visitor.signed_in().await);
}

//! Pages every signed-in user has: `/o/authorized_tokens/` (the applications they authorized,
//! and revoking them) and `/account/` (profile, password, sign out everywhere).

use reqwest::StatusCode;

use crate::helpers::{
    location, pkce_pair, spawn_app, spawn_app_with, spec, TestApp, PASSWORD, REDIRECT_URI,
};

const NEW_PASSWORD: &str = "a brand new passphrase";

/// An application `username` authorized through the consent page, with the tokens it got.
struct Authorized {
    client_id: String,
    secret: String,
    access: String,
    refresh: String,
}

impl Authorized {
    fn basic(&self) -> Option<(&str, &str)> {
        Some((self.client_id.as_str(), self.secret.as_str()))
    }
}

/// Registers a confidential client named `name`; `username` allows it (profile, email,
/// `offline_access`) in the test app's own browser, and the code is exchanged for tokens.
async fn authorize_app(app: &TestApp, username: &str, name: &str) -> Authorized {
    let mut client_spec = spec("confidential", &["authorization_code", "refresh_token"]);
    client_spec.name = name.to_owned();
    let (client, secret) = app.register(&client_spec).await;
    let secret = secret.expect("a confidential client has a secret");
    let (code, verifier) = app
        .code_for(client.id(), username, "profile email offline_access")
        .await;
    let (status, body) = app
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
    Authorized {
        client_id: client.id().to_owned(),
        access: body["access_token"].as_str().expect("access").to_owned(),
        refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
        secret,
    }
}

/// Whether introspection (RFC 7662) calls `token` active, asked by its own client.
async fn is_active(app: &TestApp, auth: &Authorized, token: &str) -> bool {
    let (status, body) = app
        .post_oauth("/o/introspect/", &[("token", token)], auth.basic())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["active"].as_bool().expect("active is a boolean")
}

/// The result of the refresh grant with `auth`'s refresh token.
async fn refresh(app: &TestApp, auth: &Authorized) -> (StatusCode, serde_json::Value) {
    app.post_token(
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &auth.refresh),
        ],
        auth.basic(),
    )
    .await
}

/// Whether the test app's browser, asking `client_id` for `scope` again, sees the consent page
/// (rather than going straight back to the client with a code).
async fn consent_page_shown(app: &TestApp, client_id: &str, scope: &str) -> bool {
    let (_, challenge) = pkce_pair();
    let response = app
        .browse(&app.authorize_url(client_id, scope, &challenge, "again"))
        .await;
    match response.status() {
        StatusCode::OK => {
            let html = response.text().await.expect("html");
            assert!(html.contains("wants to access your account"), "{html}");
            true
        }
        StatusCode::FOUND => {
            assert!(location(&response).starts_with(REDIRECT_URI));
            false
        }
        other => panic!("unexpected answer to an authorization request: {other}"),
    }
}

#[tokio::test]
async fn signed_out_visitors_are_sent_to_login() {
    let app = spawn_app().await;
    let visitor = app.anonymous_visitor();
    for (path, next) in [
        ("/o/authorized_tokens/", "%2Fo%2Fauthorized_tokens%2F"),
        ("/o/authorized_tokens", "%2Fo%2Fauthorized_tokens"),
        (
            "/o/authorized_tokens/abc/revoke/",
            "%2Fo%2Fauthorized_tokens%2Fabc%2Frevoke%2F",
        ),
        ("/account/", "%2Faccount%2F"),
        ("/account", "%2Faccount"),
        ("/account/sessions/end/", "%2Faccount%2Fsessions%2Fend%2F"),
    ] {
        let response = visitor.get_response(path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(
            location(&response),
            format!("/accounts/login/?next={next}"),
            "{path}"
        );
    }
    // The forms' targets too, before anything is read.
    for path in [
        "/o/authorized_tokens/abc/revoke/",
        "/account/profile/",
        "/account/password/",
        "/account/sessions/end/",
    ] {
        let response = visitor
            .client
            .post(visitor.url(path))
            .form(&[("csrf_token", "x")])
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(location(&response).starts_with("/accounts/login/?next="));
    }
}

#[tokio::test]
async fn the_list_shows_each_authorized_app_with_its_scopes_and_tokens() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    app.create_user("bob").await;
    let visitor = app.visitor("ann").await;

    let (status, html) = visitor.get("/o/authorized_tokens/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("You have not authorized any application"),
        "{html}"
    );
    assert!(
        html.contains(r#"<a href="/o/authorized_tokens/" aria-current="page">"#),
        "the navigation marks the section: {html}"
    );

    let auth = authorize_app(&app, "ann", "Photo printer").await;
    let (status, html) = visitor.get("/o/authorized_tokens").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("You have not authorized any application"));
    assert!(
        html.contains("<td data-label=\"Application\">Photo printer</td>"),
        "{html}"
    );
    // The scopes by their consent-page words (config/default.toml) and names.
    for (name, words) in [
        ("profile", "See your name and username"),
        ("email", "See your email address"),
        ("offline_access", "Stay connected when you are not using it"),
    ] {
        assert!(
            html.contains(&format!(
                r#"<span class="scope-description">{words}</span> <code class="scope-name">{name}</code>"#
            )),
            "{name}: {html}"
        );
    }
    // An access and a refresh token.
    assert!(
        html.contains(r#"<td data-label="Active tokens" class="num">2</td>"#),
        "{html}"
    );
    let stored = app
        .services
        .oauth
        .authorized_apps(&ann.id)
        .await
        .expect("db");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].active_tokens, 2);
    let authorized_at = stored[0].authorized_at.expect("a consent");
    assert!(
        html.contains(&authorized_at.format("%Y-%m-%d %H:%M UTC").to_string()),
        "the date of the consent: {html}"
    );
    assert!(html.contains(&format!(
        r#"href="/o/authorized_tokens/{}/revoke/""#,
        auth.client_id
    )));

    // Someone else's list stays empty.
    let (_, html) = app.visitor("bob").await.get("/o/authorized_tokens/").await;
    assert!(html.contains("You have not authorized any application"));
    assert!(!html.contains("Photo printer"));
}

#[tokio::test]
async fn revoking_an_app_forgets_the_consent_and_revokes_its_tokens() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    let auth = authorize_app(&app, "ann", "Photo printer").await;
    let other = authorize_app(&app, "ann", "Calendar").await;
    let scope = "profile email offline_access";
    assert!(
        !consent_page_shown(&app, &auth.client_id, scope).await,
        "consent is remembered before the revocation"
    );
    // A code issued before the revocation, not yet exchanged.
    let (in_flight, verifier) = app.code_for(&auth.client_id, "ann", scope).await;

    let visitor = app.visitor("ann").await;
    let revoke = format!("/o/authorized_tokens/{}/revoke/", auth.client_id);
    let (status, html) = visitor.get(&revoke).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Revoke access?"), "{html}");
    assert!(html.contains("“Photo printer” will no longer be able to access your account"));
    assert!(
        html.contains("Its 2 active tokens are revoked at once."),
        "{html}"
    );
    assert!(html.contains(&format!(r#"action="{revoke}""#)), "{html}");
    // The confirmation page itself changes nothing.
    assert!(is_active(&app, &auth, &auth.access).await);

    let response = visitor.post_with_csrf_of(&html, &revoke, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/o/authorized_tokens/");
    let (_, html) = visitor.get("/o/authorized_tokens/").await;
    assert!(
        html.contains(
            r#"<p class="notice" role="status">“Photo printer” no longer has access to your account.</p>"#
        ),
        "{html}"
    );
    assert!(
        !html.contains("<td data-label=\"Application\">Photo printer</td>"),
        "{html}"
    );
    assert!(
        html.contains("<td data-label=\"Application\">Calendar</td>"),
        "other apps stay: {html}"
    );
    let (_, html) = visitor.get("/o/authorized_tokens/").await;
    assert!(
        !html.contains("no longer has access"),
        "the notice is shown once"
    );

    // The tokens are dead, and the application's refresh token cannot make new ones.
    assert!(!is_active(&app, &auth, &auth.access).await);
    assert!(!is_active(&app, &auth, &auth.refresh).await);
    let (status, body) = refresh(&app, &auth).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // Nor can the code it was holding.
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &in_flight),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
            auth.basic(),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    // The other application keeps its tokens.
    assert!(is_active(&app, &other, &other.access).await);
    let apps = app
        .services
        .oauth
        .authorized_apps(&ann.id)
        .await
        .expect("db");
    assert_eq!(
        apps.iter()
            .map(|a| a.client_id.as_str())
            .collect::<Vec<_>>(),
        [other.client_id.as_str()]
    );
    // The next authorization asks again.
    assert!(consent_page_shown(&app, &auth.client_id, scope).await);

    let events = app.audit_events("consent.revoked").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_id.as_deref(), Some(ann.id.as_str()));
    assert_eq!(events[0].user_id.as_deref(), Some(ann.id.as_str()));
    assert_eq!(
        events[0].client_id.as_deref(),
        Some(auth.client_id.as_str())
    );
}

#[tokio::test]
async fn another_users_authorization_cannot_be_revoked() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    app.create_user("bob").await;
    let auth = authorize_app(&app, "ann", "Photo printer").await;
    let bob = app.visitor("bob").await;
    let revoke = format!("/o/authorized_tokens/{}/revoke/", auth.client_id);

    let (status, html) = bob.get(&revoke).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Application not found"), "{html}");
    assert!(!html.contains("Photo printer"));
    // Posting with bob's own valid CSRF token.
    let (_, list) = bob.get("/o/authorized_tokens/").await;
    let response = bob.post_with_csrf_of(&list, &revoke, &[]).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // An application nobody authorized, and one that does not exist.
    let (unused, _) = app
        .register(&spec("confidential", &["authorization_code"]))
        .await;
    let ann_browser = app.visitor("ann").await;
    for client_id in [unused.id(), "no-such-client"] {
        let path = format!("/o/authorized_tokens/{client_id}/revoke/");
        assert_eq!(
            ann_browser.get(&path).await.0,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }

    assert!(is_active(&app, &auth, &auth.access).await);
    assert!(is_active(&app, &auth, &auth.refresh).await);
    let apps = app
        .services
        .oauth
        .authorized_apps(&ann.id)
        .await
        .expect("db");
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].active_tokens, 2);
    assert!(app.audit_events("consent.revoked").await.is_empty());
}

#[tokio::test]
async fn forms_without_the_csrf_token_change_nothing() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    let ann_row = app.stored_user(&ann.id).await;
    let auth = authorize_app(&app, "ann", "Photo printer").await;
    let visitor = app.visitor("ann").await;
    // The session has a CSRF token (the page was opened); the forms below leave it out or
    // send a wrong one.
    let (status, _) = visitor.get("/account/").await;
    assert_eq!(status, StatusCode::OK);
    let revoke = format!("/o/authorized_tokens/{}/revoke/", auth.client_id);
    for token in [None, Some("wrong")] {
        for (path, fields) in [
            (revoke.as_str(), vec![]),
            (
                "/account/profile/",
                vec![
                    ("email", "evil@example.com"),
                    ("first_name", "Mallory"),
                    ("last_name", ""),
                ],
            ),
            (
                "/account/password/",
                vec![
                    ("current_password", PASSWORD),
                    ("new_password", NEW_PASSWORD),
                    ("confirm_password", NEW_PASSWORD),
                ],
            ),
            ("/account/sessions/end/", vec![]),
        ] {
            let mut form = fields.clone();
            if let Some(token) = token {
                form.push(("csrf_token", token));
            }
            let response = visitor
                .client
                .post(visitor.url(path))
                .form(&form)
                .send()
                .await
                .expect("POST");
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path} {token:?}");
        }
    }

    assert!(visitor.signed_in().await);
    assert!(is_active(&app, &auth, &auth.access).await);
    assert!(!consent_page_shown(&app, &auth.client_id, "profile").await);
    let user = app.stored_user(&ann.id).await;
    assert_eq!(user.email, "ann@example.com");
    assert_eq!(user.first_name, "Test");
    assert_eq!(
        user.password_hash, ann_row.password_hash,
        "password unchanged"
    );
    assert_eq!(user.sessions_valid_after, None);
    assert_eq!(app.try_login("ann", PASSWORD).await, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_profile_form_saves_and_shows_errors_at_the_email_field() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    app.create_user("bob").await;
    let visitor = app.visitor("ann").await;

    let (status, html) = visitor.get("/account/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"<a href="/account/" aria-current="page">"#));
    assert!(html.contains(r#"value="ann@example.com""#), "{html}");
    assert!(html.contains(r#"<input id="username" type="text" value="ann" readonly"#));
    assert!(html.contains(r#"<a href="/o/authorized_tokens/">"#));
    assert!(html.contains(r#"Email address verified</dt><dd><span class="badge ok">yes</span>"#));
    assert!(html.contains(&format!(
        "Account created</dt><dd><time datetime=\"{}\" title=\"{}\">",
        ann.date_joined.format("%Y-%m-%dT%H:%M:%SZ"),
        ann.date_joined.format("%Y-%m-%d %H:%M UTC")
    )));

    // Bob's address.
    let response = visitor
        .submit(
            "/account/",
            "/account/profile/",
            &[
                ("email", "BOB@example.com"),
                ("first_name", "Ann"),
                ("last_name", "Example"),
                ("current_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(
        html.contains(r#"<p class="field-error" id="email-error">Another account already uses this email address.</p>"#),
        "{html}"
    );
    assert!(html.contains(
        r#"<div class="field has-error">
      <label for="email">"#
    ));
    assert!(
        html.contains(r#"value="BOB@example.com""#),
        "what was typed is kept"
    );
    assert!(html.contains(r#"value="Ann""#));

    // Not an address.
    let response = visitor
        .submit(
            "/account/",
            "/account/profile/",
            &[("email", "ann.example.com"), ("first_name", "Ann")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(
        html.contains(r#"<p class="field-error" id="email-error">"#),
        "{html}"
    );
    assert!(html.contains("is not an email address"), "{html}");

    // A name over the limit: the message is shown above the form.
    let long = "x".repeat(151);
    let response = visitor
        .submit(
            "/account/",
            "/account/profile/",
            &[("email", "ann@example.com"), ("first_name", &long)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(
        html.contains("first name may have at most 150 characters"),
        "{html}"
    );

    let unchanged = app
        .services
        .accounts
        .find(ann.id.clone())
        .await
        .expect("db")
        .expect("user");
    assert_eq!(
        (unchanged.email.as_str(), unchanged.first_name.as_str()),
        ("ann@example.com", "Test")
    );
    assert!(app.audit_events("user.profile_changed").await.is_empty());

    // A new address needs the current password (reset links and login codes go there).
    for password in ["", "not my password"] {
        let response = visitor
            .submit(
                "/account/",
                "/account/profile/",
                &[
                    ("email", "ann.new@example.com"),
                    ("first_name", "Ann"),
                    ("current_password", password),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = response.text().await.expect("html");
        assert!(
            html.contains("id=\"profile_password-error\">Enter your current password"),
            "{html}"
        );
    }
    let unchanged = app
        .services
        .accounts
        .find(ann.id.clone())
        .await
        .expect("db")
        .expect("user");
    assert_eq!(unchanged.email, "ann@example.com");

    let response = visitor
        .submit(
            "/account/",
            "/account/profile/",
            &[
                ("email", " Ann.New@Example.com "),
                ("first_name", "Ann"),
                ("last_name", "Lovelace"),
                ("current_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/account/");
    let (status, html) = visitor.get("/account/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(r#"<p class="notice" role="status">Your profile was saved.</p>"#),
        "{html}"
    );
    assert!(html.contains(r#"value="ann.new@example.com""#));
    let saved = app
        .services
        .accounts
        .find(ann.id.clone())
        .await
        .expect("db")
        .expect("user");
    assert_eq!(saved.email, "ann.new@example.com");
    assert_eq!(
        (saved.first_name.as_str(), saved.last_name.as_str()),
        ("Ann", "Lovelace")
    );
    // Nobody has confirmed the new address.
    assert!(!saved.email_verified);
    assert!(html.contains(r#"Email address verified</dt><dd><span class="badge warn">no</span>"#));
    let events = app.audit_events("user.profile_changed").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_id.as_deref(), Some(ann.id.as_str()));
    // The previous address is told, once, where the account's mail goes now.
    let notices = app.emails_to("ann@example.com");
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].subject, "Your email address was changed");
    assert!(
        notices[0]
            .text
            .contains("by you, from ann@example.com to ann.new@example.com"),
        "{}",
        notices[0].text
    );
    let (_, html) = visitor.get("/account/").await;
    assert!(
        !html.contains("Your profile was saved."),
        "the notice is shown once"
    );
    // A change of name only tells nobody.
    let response = visitor
        .submit(
            "/account/",
            "/account/profile/",
            &[("email", "ann.new@example.com"), ("first_name", "Annie")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.emails_to("ann@example.com").len(), 1);
    assert!(app.emails_to("ann.new@example.com").is_empty());
}

#[tokio::test]
async fn a_password_change_is_refused_with_the_reason_at_its_field() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    let ann_row = app.stored_user(&ann.id).await;
    let visitor = app.visitor("ann").await;
    let cases = [
        (
            "not my password",
            NEW_PASSWORD,
            NEW_PASSWORD,
            "current_password",
            "This is not your current password.",
        ),
        (
            PASSWORD,
            NEW_PASSWORD,
            "a different passphrase",
            "confirm_password",
            "The two new passwords are not the same.",
        ),
        (
            PASSWORD,
            "short",
            "short",
            "new_password",
            "The password must have at least 12 characters",
        ),
        (
            PASSWORD,
            "          ",
            "          ",
            "new_password",
            "The password must not be only spaces",
        ),
    ];
    for (current, new, confirm, field, message) in cases {
        let response = visitor
            .submit(
                "/account/",
                "/account/password/",
                &[
                    ("current_password", current),
                    ("new_password", new),
                    ("confirm_password", confirm),
                ],
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}"
        );
        let html = response.text().await.expect("html");
        assert!(
            html.contains(&format!(
                r#"<p class="field-error" id="{field}-error">{message}</p>"#
            )),
            "{field}: {html}"
        );
        // Passwords are never written back into the page.
        for typed in [current, new, confirm] {
            assert!(!html.contains(&format!("value=\"{typed}\"")), "{typed}");
        }
    }
    let user = app.stored_user(&ann.id).await;
    assert_eq!(user.password_hash, ann_row.password_hash);
    assert_eq!(user.sessions_valid_after, None);
    assert!(app.audit_events("password.changed").await.is_empty());
    assert_eq!(app.audit_events("password.confirm_failed").await.len(), 1);
    assert!(visitor.signed_in().await);
    assert_eq!(app.try_login("ann", PASSWORD).await, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn wrong_current_passwords_count_as_failed_logins() {
    let app = spawn_app_with("[rate_limits]\nfailed_logins_per_account = 2").await;
    let ann = app.create_user("ann").await;
    let ann_row = app.stored_user(&ann.id).await;
    let visitor = app.visitor("ann").await;
    let change = |current: &'static str| {
        let visitor = &visitor;
        async move {
            let response = visitor
                .submit(
                    "/account/",
                    "/account/password/",
                    &[
                        ("current_password", current),
                        ("new_password", NEW_PASSWORD),
                        ("confirm_password", NEW_PASSWORD),
                    ],
                )
                .await;
            response.text().await.expect("html")
        }
    };
    assert!(change("guess one")
        .await
        .contains("This is not your current password."));
    assert!(change("guess two")
        .await
        .contains("This is not your current password."));
    // Past the limit even the right password is refused, and the hash stays as it was.
    let html = change(PASSWORD).await;
    assert!(
        html.contains("Too many wrong passwords. Try again in"),
        "{html}"
    );
    let user = app.stored_user(&ann.id).await;
    assert_eq!(user.password_hash, ann_row.password_hash);
    // The same account counter guards the login page.
    assert_eq!(
        app.try_login("ann", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let locked = app.audit_events("login.locked").await;
    assert_eq!(
        locked[locked.len() - 1].user_id.as_deref(),
        Some(ann.id.as_str())
    );
}

#[tokio::test]
async fn a_new_password_works_and_signs_out_the_other_browsers() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    let here = app.visitor("ann").await;
    let elsewhere = app.visitor("ann").await;
    assert!(elsewhere.signed_in().await);

    let response = here
        .submit(
            "/account/",
            "/account/password/",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/account/");
    let (status, html) = here.get("/account/").await;
    assert_eq!(status, StatusCode::OK, "this browser stays signed in");
    assert!(
        html.contains(r#"<p class="notice" role="status">Your password was changed."#),
        "{html}"
    );
    assert!(
        !elsewhere.signed_in().await,
        "the other browser is signed out"
    );
    assert!(here.signed_in().await);

    assert_eq!(
        app.try_login("ann", NEW_PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.try_login("ann", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    let events = app.audit_events("password.changed").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_id.as_deref(), Some(ann.id.as_str()));
}

/// An access and a refresh token of `username` from the password grant of `auth`'s client.
async fn password_tokens(
    app: &TestApp,
    auth: &Authorized,
    username: &str,
    password: &str,
) -> Authorized {
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ],
            auth.basic(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    Authorized {
        client_id: auth.client_id.clone(),
        secret: auth.secret.clone(),
        access: body["access_token"].as_str().expect("access").to_owned(),
        refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
    }
}

#[tokio::test]
async fn a_password_change_signs_out_of_applications_unless_the_box_is_unticked() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    // A first-party app with the password grant (to get tokens after each change), authorized
    // once through the consent page; and a code on its way to the app, not exchanged yet.
    let mut client_spec = spec(
        "confidential",
        &["authorization_code", "refresh_token", "password"],
    );
    client_spec.name = "Photo printer".to_owned();
    let (client, secret) = app.register(&client_spec).await;
    let client = Authorized {
        client_id: client.id().to_owned(),
        secret: secret.expect("secret"),
        access: String::new(),
        refresh: String::new(),
    };
    let (in_flight, verifier) = app.code_for(&client.client_id, "ann", "profile").await;
    let first = password_tokens(&app, &client, "ann", PASSWORD).await;
    let visitor = app.visitor("ann").await;
    let (_, page) = visitor.get("/account/").await;
    assert!(
        page.contains(r#"name="sign_out_applications" value="on" checked"#),
        "ticked by default: {page}"
    );
    assert!(page.contains(r#"name="sign_out_applications_offered" value="yes""#));

    // Ticked, as the page offers it: every token of the user is revoked, the code is gone.
    let change = |current: &'static str, new: &'static str, tick: bool| {
        let mut fields = vec![
            ("current_password", current),
            ("new_password", new),
            ("confirm_password", new),
            ("sign_out_applications_offered", "yes"),
        ];
        if tick {
            fields.push(("sign_out_applications", "on"));
        }
        let visitor = &visitor;
        async move {
            visitor
                .submit("/account/", "/account/password/", &fields)
                .await
        }
    };
    let response = change(PASSWORD, NEW_PASSWORD, true).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(!is_active(&app, &first, &first.access).await);
    assert!(!is_active(&app, &first, &first.refresh).await);
    let (status, body) = refresh(&app, &first).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &in_flight),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
            client.basic(),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (_, html) = visitor.get("/account/").await;
    assert!(
        html.contains("every application you authorized has to ask you to sign in again"),
        "{html}"
    );
    let events = app.audit_events("password.changed").await;
    assert!(
        events[0]
            .details
            .contains(r#""applications_signed_out":true"#)
            && events[0].details.contains(r#""tokens_revoked":2"#),
        "{}",
        events[0].details
    );
    let email = app.last_email_to(&ann.email);
    assert!(
        email.text.contains("in every application"),
        "{}",
        email.text
    );

    // Unticked: the applications keep their access.
    const THIRD: &str = "yet another fresh passphrase";
    let second = password_tokens(&app, &client, "ann", NEW_PASSWORD).await;
    let response = change(NEW_PASSWORD, THIRD, false).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(is_active(&app, &second, &second.access).await);
    let (status, body) = refresh(&app, &second).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, html) = visitor.get("/account/").await;
    assert!(html.contains("Applications you authorized keep their access"));
    let events = app.audit_events("password.changed").await;
    assert!(events[0]
        .details
        .contains(r#""applications_signed_out":false"#));
    let email = app.last_email_to(&ann.email);
    assert!(email
        .text
        .contains("applications you authorized keep their access"));

    // A form that never offered the box (a page from before it existed) signs out too.
    let third = password_tokens(&app, &client, "ann", THIRD).await;
    let response = visitor
        .submit(
            "/account/",
            "/account/password/",
            &[
                ("current_password", THIRD),
                ("new_password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(!is_active(&app, &third, &third.access).await);
}

#[tokio::test]
async fn signing_out_everywhere_ends_every_session_and_token() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    app.create_user("bob").await;
    let auth = authorize_app(&app, "ann", "Photo printer").await;
    let (in_flight, verifier) = app
        .code_for(&auth.client_id, "ann", "profile email offline_access")
        .await;
    let here = app.visitor("ann").await;
    let elsewhere = app.visitor("ann").await;
    let bob = app.visitor("bob").await;

    let (status, html) = here.get("/account/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"href="/account/sessions/end/""#));
    let (status, html) = here.get("/account/sessions/end/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Sign out everywhere?"), "{html}");
    assert!(
        elsewhere.signed_in().await,
        "the confirmation changes nothing"
    );

    let response = here
        .post_with_csrf_of(&html, "/account/sessions/end/", &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/accounts/login/");

    assert!(!here.signed_in().await);
    assert!(!elsewhere.signed_in().await);
    let response = app.browse("/account/").await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "the browser that authorized the app is signed out too"
    );
    assert!(bob.signed_in().await, "other users are not affected");
    assert!(!is_active(&app, &auth, &auth.access).await);
    assert!(!is_active(&app, &auth, &auth.refresh).await);
    let (status, _) = refresh(&app, &auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &in_flight),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ],
            auth.basic(),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "a code issued before cannot be exchanged: {body}"
    );
    let apps = app
        .services
        .oauth
        .authorized_apps(&ann.id)
        .await
        .expect("db");
    assert_eq!(apps.iter().map(|a| a.active_tokens).sum::<i64>(), 0);
    let events = app.audit_events("user.signed_out_everywhere").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_id.as_deref(), Some(ann.id.as_str()));
    // The password still works.
    assert_eq!(app.try_login("ann", PASSWORD).await, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_start_page_links_to_the_signed_in_pages() {
    let app = spawn_app().await;
    app.create_user("ann").await;
    app.create_staff("root").await;

    let (status, html) = app.anonymous_visitor().get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("You are not signed in."));
    assert!(!html.contains(r#"class="main-nav""#));

    let (_, html) = app.visitor("ann").await.get("/").await;
    assert!(html.contains("You are signed in as <strong>ann</strong>."));
    assert!(
        html.contains(r#"<nav class="main-nav" aria-label="Main">"#),
        "{html}"
    );
    assert!(
        !html.contains("aria-current"),
        "no section is current on the start page"
    );
    for link in ["/o/applications/", "/o/authorized_tokens/", "/account/"] {
        assert!(
            html.contains(&format!(r#"<a href="{link}">"#)),
            "{link}: {html}"
        );
    }
    assert!(!html.contains(r#"href="/admin/""#), "not staff: {html}");

    let (_, html) = app.visitor("root").await.get("/").await;
    assert!(
        html.contains(r#"<a href="/admin/">Admin console</a>"#),
        "{html}"
    );
}

/// Registering on the page signs the browser in (verification optional or off), and that is a
/// sign-in: `/account/` shows it as the last one, as a relative time with the exact UTC time,
/// not "never".
#[tokio::test]
async fn the_sign_in_of_a_registration_is_the_last_sign_in() {
    for verification in ["optional", "off"] {
        let app = spawn_app_with(&format!(
            "[accounts]\nemail_verification = \"{verification}\""
        ))
        .await;
        let visitor = app.anonymous_visitor();
        let password = "a long enough passphrase";
        let response = visitor
            .submit(
                "/accounts/register/",
                "/accounts/register/",
                &[
                    ("email", "kim@example.com"),
                    ("username", "kim"),
                    ("password", password),
                    ("confirm_password", password),
                    ("next", "/account/"),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{verification}");
        let (status, html) = visitor.get("/account/").await;
        assert_eq!(status, StatusCode::OK, "{verification}");
        let last = html
            .split("<dt>Last sign-in</dt>")
            .nth(1)
            .and_then(|rest| rest.split("</dd>").next())
            .unwrap_or_else(|| panic!("a Last sign-in line: {html}"));
        assert!(!last.contains("never"), "{verification}: {last}");
        assert!(last.contains("just now"), "{verification}: {last}");
        assert!(
            last.contains("<time datetime=\"") && last.contains(" UTC\""),
            "{verification}: {last}"
        );
        let kim = app
            .services
            .accounts
            .find_by_login("kim")
            .await
            .expect("storage")
            .expect("kim");
        assert!(kim.last_login.is_some(), "{verification}");
    }
}

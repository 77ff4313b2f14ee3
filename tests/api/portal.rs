//! The developer portal `/o/applications/`: registering, showing the secret once, editing,
//! rotating, deleting, and who may see what.

use reqwest::StatusCode;

use crate::helpers::{location, spawn_app, spawn_app_with, TestApp, Visitor};

/// The text of `<code id="ID">…</code>` in a page.
fn code_by_id(html: &str, id: &str) -> Option<String> {
    let marker = format!("<code id=\"{id}\">");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find("</code>")? + start;
    Some(html[start..end].to_owned())
}

/// Registers a confidential client-credentials application through the form; returns its
/// detail path, client_id and the secret read from the page.
async fn register_service(visitor: &Visitor, name: &str) -> (String, String, String) {
    let response = visitor
        .submit(
            "/o/applications/register/",
            "/o/applications/register/",
            &[
                ("name", name),
                ("client_type", "confidential"),
                ("token_endpoint_auth_method", "client_secret_basic"),
                ("grant:client_credentials", "on"),
                ("scope:read", "on"),
                ("scope:write", "on"),
            ],
        )
        .await;
    // Post/redirect/get: the answer to the POST is a redirect to the secret's one view.
    let html = follow_to_secret(visitor, &response).await;
    let client_id = code_by_id(&html, "client-id").expect("client_id on the page");
    let secret = code_by_id(&html, "client-secret").expect("the secret, shown once");
    (format!("/o/applications/{client_id}/"), client_id, secret)
}

/// Follows the 303 answering a registration or rotation to the page showing the new secret
/// (`/o/applications/{client_id}/secret/`) and returns that page.
async fn follow_to_secret(visitor: &Visitor, response: &reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let view = location(response);
    assert!(
        view.starts_with("/o/applications/") && view.ends_with("/secret/"),
        "{view}"
    );
    let response = visitor.get_response(&view).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.text().await.expect("html")
}

/// Portal clients get client-credentials tokens only for `tokens.scopes_without_user`; the
/// tests that prove a secret works with that grant allow `read`.
const SCOPES_WITHOUT_USER: &str = "[tokens]\nscopes_without_user = [\"read\"]";

async fn client_credentials(app: &TestApp, id: &str, secret: &str) -> StatusCode {
    app.post_token(&[("grant_type", "client_credentials")], Some((id, secret)))
        .await
        .0
}

#[tokio::test]
async fn signed_out_visitors_are_sent_to_login() {
    let app = spawn_app().await;
    let visitor = app.anonymous_visitor();
    for path in [
        "/o/applications/",
        "/o/applications/register/",
        "/o/applications/x/",
        "/o/applications/x/update/",
        "/o/applications/x/delete/",
    ] {
        let response = visitor.get_response(path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        let next = location(&response);
        assert!(
            next.starts_with("/accounts/login/?next=%2Fo%2Fapplications%2F"),
            "{path} → {next}"
        );
    }
}

#[tokio::test]
async fn a_registered_secret_is_shown_once_and_works() {
    let app = spawn_app_with(SCOPES_WITHOUT_USER).await;
    let owner = app.create_user("dev").await;
    let visitor = app.visitor("dev").await;
    let (detail, client_id, secret) = register_service(&visitor, "Billing service").await;
    assert_eq!(
        client_credentials(&app, &client_id, &secret).await,
        StatusCode::OK
    );

    // The second view shows only the first characters, never the secret or its hash.
    let response = visitor.get_response(&detail).await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let html = response.text().await.expect("html");
    assert!(code_by_id(&html, "client-secret").is_none());
    assert!(!html.contains(&secret));
    assert!(html.contains(&format!("Begins with <code>{}</code>", &secret[..6])));
    let stored = app
        .services
        .clients
        .find(&client_id)
        .await
        .expect("db")
        .expect("client");
    let id = client_id.clone();
    let hash = app
        .services
        .db
        .read(move |conn| {
            latchkey::db::clients::find(conn, &id).map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("db")
        .and_then(|row| row.secret_hash)
        .expect("hash");
    assert!(!html.contains(&hash), "the hash is never shown");
    assert_eq!(stored.owner_id(), Some(owner.id.as_str()));
    assert!(
        latchkey::clients::ClientSpec::from_client(&stored).require_pkce,
        "portal clients always require PKCE"
    );

    // The page gives what a developer pastes into a client.
    for needle in [
        format!("{}/o/token/", app.address),
        format!("{}/o/authorize/", app.address),
        format!("{}/.well-known/jwks.json", app.address),
        "grant_type=client_credentials".to_owned(),
        "Active tokens</dt><dd>1</dd>".to_owned(),
    ] {
        assert!(html.contains(&needle), "detail page lacks {needle}");
    }

    // The list shows it; the audit log names the user who registered it.
    let (_, list) = visitor.get("/o/applications/").await;
    assert!(list.contains("Billing service") && list.contains(&client_id));
    let events = app.audit_events("client.created").await;
    assert_eq!(events[0].client_id.as_deref(), Some(client_id.as_str()));
    assert_eq!(events[0].actor_id.as_deref(), Some(owner.id.as_str()));
}

/// Form fields, the field whose error is expected, and words of the message.
type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);

#[tokio::test]
async fn invalid_fields_are_reported_next_to_the_field_and_nothing_is_saved() {
    let app = spawn_app().await;
    app.create_user("dev").await;
    let visitor = app.visitor("dev").await;
    let cases: [Case; 5] = [
        (
            &[
                ("name", "Web"),
                ("client_type", "confidential"),
                ("grant:authorization_code", "on"),
                ("redirect_uris", "https://app.example/cb#fragment"),
                ("scope:read", "on"),
            ],
            "redirect_uris",
            "fragment",
        ),
        (
            &[
                ("name", "Web"),
                ("client_type", "confidential"),
                ("grant:authorization_code", "on"),
                ("scope:read", "on"),
            ],
            "redirect_uris",
            "needs at least one redirect URI",
        ),
        (
            &[
                ("name", ""),
                ("client_type", "public"),
                ("grant:authorization_code", "on"),
                ("redirect_uris", "https://app.example/cb"),
                ("scope:read", "on"),
            ],
            "name",
            "1 to 200 characters",
        ),
        (
            &[
                ("name", "Web"),
                ("client_type", "public"),
                ("grant:client_credentials", "on"),
                ("scope:read", "on"),
            ],
            "grant_types",
            "confidential",
        ),
        (
            &[
                ("name", "Web"),
                ("client_type", "confidential"),
                ("grant:client_credentials", "on"),
            ],
            "scopes",
            "at least one scope",
        ),
    ];
    for (fields, field, message) in cases {
        let response = visitor
            .submit(
                "/o/applications/register/",
                "/o/applications/register/",
                fields,
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}"
        );
        let html = response.text().await.expect("html");
        let error_at = html
            .find("class=\"field-error\"")
            .unwrap_or_else(|| panic!("no inline error for {field}: {html}"));
        // The error sits inside the field's own block (after its input, before the next field).
        let field_at = html
            .find(&format!(
                "name=\"{}",
                if field == "grant_types" {
                    "grant:"
                } else if field == "scopes" {
                    "scope:"
                } else {
                    field
                }
            ))
            .unwrap_or_else(|| panic!("field {field} on the page"));
        assert!(error_at > field_at, "{field}: error before its field");
        assert!(html[error_at..].contains(message), "{field}: {message}");
        // What was typed is kept.
        if let Some((_, v)) = fields.iter().find(|(k, _)| *k == "redirect_uris") {
            assert!(html.contains(v), "the form keeps the typed redirect URIs");
        }
    }
    let clients = app.services.clients.list().await.expect("list");
    assert!(clients.is_empty(), "nothing was registered");
}

#[tokio::test]
async fn users_cannot_see_or_change_other_users_applications() {
    let app = spawn_app_with(SCOPES_WITHOUT_USER).await;
    app.create_user("alice").await;
    app.create_user("mallory").await;
    let alice = app.visitor("alice").await;
    let mallory = app.visitor("mallory").await;
    let (detail, client_id, secret) = register_service(&alice, "Alice's service").await;

    let (_, list) = mallory.get("/o/applications/").await;
    assert!(!list.contains(&client_id) && !list.contains("Alice's service"));
    for suffix in ["", "update/", "delete/", "rotate_secret/"] {
        let (status, _) = mallory.get(&format!("{detail}{suffix}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET {detail}{suffix}");
    }
    // Mallory's own CSRF token is valid; the answer is still 404 and nothing changes.
    let (_, own_page) = mallory.get("/o/applications/register/").await;
    for (suffix, fields) in [
        (
            "update/",
            vec![
                ("name", "Pwned"),
                ("scope:read", "on"),
                ("grant:client_credentials", "on"),
            ],
        ),
        ("delete/", vec![]),
        ("rotate_secret/", vec![]),
    ] {
        let response = mallory
            .post_with_csrf_of(&own_page, &format!("{detail}{suffix}"), &fields)
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "POST {suffix}");
    }
    let client = app
        .services
        .clients
        .find(&client_id)
        .await
        .expect("db")
        .expect("still there");
    assert_eq!(client.name(), "Alice's service");
    assert_eq!(
        client_credentials(&app, &client_id, &secret).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn staff_see_every_application_with_owners_and_can_search() {
    let app = spawn_app_with("[console]\npage_size = 2").await;
    app.create_user("alice").await;
    app.create_staff("root").await;
    let alice = app.visitor("alice").await;
    for name in ["Alpha", "Beta", "Gamma"] {
        register_service(&alice, name).await;
    }
    let root = app.visitor("root").await;
    let (status, page1) = root.get("/o/applications/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page1.contains("All applications") && page1.contains(">alice<"));
    assert!(page1.contains("Page 1 of 2"), "{page1}");
    assert!(page1.contains("href=\"/o/applications/?page=2\""));
    let (_, found) = root.get("/o/applications/?q=GAM").await;
    assert!(found.contains("Gamma") && !found.contains("Alpha"));
    // Alice, not staff, gets no search and only her own list (all three, paginated).
    let (_, own) = alice.get("/o/applications/?page=2").await;
    assert!(own.contains("Page 2 of 2") && !own.contains("role=\"search\""));
}

#[tokio::test]
async fn updating_keeps_what_the_form_does_not_own() {
    let app = spawn_app_with(SCOPES_WITHOUT_USER).await;
    app.create_user("dev").await;
    let visitor = app.visitor("dev").await;
    let (detail, client_id, secret) = register_service(&visitor, "Before").await;
    let form = format!("{detail}update/");
    let (status, html) = visitor.get(&form).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("value=\"Before\""), "the form is filled in");
    assert!(
        !html.contains("skip_authorization"),
        "staff-only setting hidden"
    );
    let response = visitor
        .submit(
            &form,
            &form,
            &[
                ("name", "After"),
                ("token_endpoint_auth_method", "client_secret_post"),
                ("grant:client_credentials", "on"),
                ("grant:authorization_code", "on"),
                (
                    "redirect_uris",
                    "https://app.example/cb\n\nhttp://127.0.0.1:8000/cb",
                ),
                ("scope:read", "on"),
                ("access_token_format", "jwt"),
                ("id_token_signed_response_alg", "ES256"),
                // Not staff: first-party powers are ignored.
                ("access_token_lifetime", "315360000"),
                ("skip_authorization", "on"),
                ("introspect_all", "on"),
                ("always_issue_refresh_token", "on"),
                ("allow_plain_pkce", "on"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let client = app
        .services
        .clients
        .find(&client_id)
        .await
        .expect("db")
        .expect("client");
    assert_eq!(client.name(), "After");
    assert_eq!(client.auth_method(), "client_secret_post");
    let spec = latchkey::clients::ClientSpec::from_client(&client);
    assert_eq!(
        client.redirect_uris,
        ["https://app.example/cb", "http://127.0.0.1:8000/cb"]
    );
    assert_eq!(spec.scopes, ["read"]);
    assert_eq!(spec.access_token_lifetime, None);
    assert_eq!(spec.access_token_format.as_deref(), Some("jwt"));
    assert_eq!(spec.id_token_alg.as_deref(), Some("ES256"));
    assert!(!spec.skip_authorization && !spec.introspect_all);
    assert!(!spec.always_issue_refresh_token && !spec.allow_plain_pkce);
    assert_eq!(spec.client_type, "confidential");
    // The secret is untouched (now sent in the body).
    let (status, _) = app
        .post_token(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client_id),
                ("client_secret", &secret),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Staff may set lifetimes; a bad one is an inline error and changes nothing.
    app.create_staff("root").await;
    let visitor = app.visitor("root").await;
    let response = visitor
        .submit(
            &form,
            &form,
            &[
                ("name", "Again"),
                ("grant:client_credentials", "on"),
                ("scope:read", "on"),
                ("access_token_lifetime", "soon"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response
        .text()
        .await
        .expect("html")
        .contains("whole number of seconds"));
    let name = app
        .services
        .clients
        .find(&client_id)
        .await
        .expect("db")
        .expect("client")
        .name()
        .to_owned();
    assert_eq!(name, "After");
}

#[tokio::test]
async fn rotating_the_secret_shows_the_new_one_once_and_kills_the_old() {
    let app = spawn_app_with(SCOPES_WITHOUT_USER).await;
    app.create_user("dev").await;
    let visitor = app.visitor("dev").await;
    let (detail, client_id, old) = register_service(&visitor, "Rotor").await;
    let confirm = format!("{detail}rotate_secret/");
    let (status, page) = visitor.get(&confirm).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("stops working"));
    let response = visitor.submit(&confirm, &confirm, &[]).await;
    let html = follow_to_secret(&visitor, &response).await;
    assert!(html.contains("A new secret was generated"), "{html}");
    let new = code_by_id(&html, "client-secret").expect("new secret shown");
    assert_ne!(new, old);
    let (_, again) = visitor.get(&detail).await;
    assert!(code_by_id(&again, "client-secret").is_none(), "shown once");
    // A reload of the secret's page shows it no more, and rotates nothing.
    let (status, reloaded) = visitor.get(&format!("{detail}secret/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        code_by_id(&reloaded, "client-secret").is_none(),
        "shown once"
    );
    assert!(!reloaded.contains(&new));
    assert!(reloaded.contains("The secret was shown once"), "{reloaded}");
    assert_eq!(
        client_credentials(&app, &client_id, &old).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client_credentials(&app, &client_id, &new).await,
        StatusCode::OK
    );
    assert_eq!(app.audit_events("client.secret_rotated").await.len(), 1);
}

#[tokio::test]
async fn deleting_needs_confirmation_and_a_csrf_token() {
    let app = spawn_app_with(SCOPES_WITHOUT_USER).await;
    app.create_user("dev").await;
    let visitor = app.visitor("dev").await;
    let (detail, client_id, secret) = register_service(&visitor, "Doomed").await;
    let token = app
        .post_token(
            &[("grant_type", "client_credentials")],
            Some((&client_id, &secret)),
        )
        .await
        .1["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let confirm = format!("{detail}delete/");
    let (status, page) = visitor.get(&confirm).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Delete this application?") && page.contains("Doomed"));
    // Without the CSRF token: refused, nothing deleted.
    let forged = visitor
        .client
        .post(visitor.url(&confirm))
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(app
        .services
        .clients
        .find(&client_id)
        .await
        .expect("db")
        .is_some());
    let response = visitor.submit(&confirm, &confirm, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/o/applications/");
    assert!(app
        .services
        .clients
        .find(&client_id)
        .await
        .expect("db")
        .is_none());
    assert_eq!(
        client_credentials(&app, &client_id, &secret).await,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = visitor.get(&detail).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = app.get_with_bearer("/o/userinfo/", &token).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "its tokens are gone"
    );
}

#[tokio::test]
async fn public_clients_get_no_secret() {
    let app = spawn_app().await;
    app.create_user("dev").await;
    let visitor = app.visitor("dev").await;
    let response = visitor
        .submit(
            "/o/applications/register/",
            "/o/applications/register/",
            &[
                ("name", "Phone app"),
                ("client_type", "public"),
                // A public client cannot pick a secret method; the form's value is ignored.
                ("token_endpoint_auth_method", "client_secret_basic"),
                ("grant:authorization_code", "on"),
                ("grant:refresh_token", "on"),
                ("redirect_uris", "com.example.app:/callback"),
                ("scope:openid", "on"),
            ],
        )
        .await;
    // No secret to show: the redirect goes to the application itself.
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (status, html) = visitor.get(&location(&response)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("“Phone app” was registered."), "{html}");
    assert!(code_by_id(&html, "client-secret").is_none());
    assert!(html.contains("PKCE instead"));
    let client_id = code_by_id(&html, "client-id").expect("client_id");
    let (status, _) = visitor
        .get(&format!("/o/applications/{client_id}/rotate_secret/"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pages_carry_security_headers() {
    let app = spawn_app().await;
    app.create_user("dev").await;
    let visitor = app.visitor("dev").await;
    let response = visitor.get_response("/o/applications/register/").await;
    let headers = response.headers();
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    let html = response.text().await.expect("html");
    assert!(!html.contains("<script>") && !html.contains("style=\""));
    let script = app.browse("/static/copy.js").await;
    assert_eq!(script.status(), StatusCode::OK);
}

#[tokio::test]
async fn only_staff_allow_the_password_grant() {
    let app = spawn_app().await;
    app.create_user("dev").await;
    app.create_staff("root").await;
    let fields: &[(&str, &str)] = &[
        ("name", "Phisher"),
        ("client_type", "public"),
        ("grant:password", "on"),
        ("scope:read", "on"),
    ];
    let dev = app.visitor("dev").await;
    let response = dev
        .submit(
            "/o/applications/register/",
            "/o/applications/register/",
            fields,
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response
        .text()
        .await
        .expect("html")
        .contains("only administrators can allow it"));
    assert!(app.services.clients.list().await.expect("list").is_empty());
    let root = app.visitor("root").await;
    let response = root
        .submit(
            "/o/applications/register/",
            "/o/applications/register/",
            fields,
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn only_staff_allow_the_logout_all_scope_and_a_new_form_leaves_it_unticked() {
    let app = spawn_app().await;
    app.create_user("dev").await;
    app.create_staff("root").await;
    let dev = app.visitor("dev").await;
    // Restricted scopes are not offered to those who may not give them (issue 10 item 13);
    // a superuser sees them, unticked.
    let (_, form) = dev.get("/o/applications/register/").await;
    for scope in ["logout_all", "admin"] {
        assert!(
            !form.contains(&format!("name=\"scope:{scope}\"")),
            "{scope} is not offered to a user"
        );
    }
    let (_, form) = app
        .visitor("root")
        .await
        .get("/o/applications/register/")
        .await;
    for scope in ["logout_all", "admin"] {
        let start = form
            .find(&format!("name=\"scope:{scope}\""))
            .unwrap_or_else(|| panic!("a box for {scope}"));
        let tag = &form[start..start + form[start..].find('>').expect("tag end")];
        assert!(!tag.contains("checked"), "{scope} is not ticked: {tag}");
    }
    let fields: &[(&str, &str)] = &[
        ("name", "Signer-outer"),
        ("client_type", "confidential"),
        ("token_endpoint_auth_method", "client_secret_basic"),
        ("grant:authorization_code", "on"),
        ("redirect_uris", "https://app.example.com/cb"),
        ("scope:profile", "on"),
        ("scope:logout_all", "on"),
    ];
    let response = dev
        .submit(
            "/o/applications/register/",
            "/o/applications/register/",
            fields,
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response
        .text()
        .await
        .expect("html")
        .contains("the logout_all scope is only for applications administrators set up"));
    assert!(app.services.clients.list().await.expect("list").is_empty());
    let root = app.visitor("root").await;
    let response = root
        .submit(
            "/o/applications/register/",
            "/o/applications/register/",
            fields,
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let clients = app.services.clients.list().await.expect("list");
    assert!(clients[0].allowed_scopes.contains("logout_all"));
}

#[tokio::test]
async fn the_curl_example_quotes_what_the_owner_typed() {
    let app = spawn_app().await;
    app.create_user("dev").await;
    let visitor = app.visitor("dev").await;
    let response = visitor
        .submit(
            "/o/applications/register/",
            "/o/applications/register/",
            &[
                ("name", "Sneaky"),
                ("client_type", "confidential"),
                ("grant:authorization_code", "on"),
                ("redirect_uris", "https://x.example/cb?a=$(id)"),
                ("scope:read", "on"),
            ],
        )
        .await;
    let html = follow_to_secret(&visitor, &response).await;
    assert!(
        html.contains("--data-urlencode &#39;redirect_uri=https://x.example/cb?a=$(id)&#39;"),
        "{html}"
    );
}

#[tokio::test]
async fn only_staff_set_the_resources_an_application_serves() {
    let app = spawn_app().await;
    app.create_user("dev").await;
    let visitor = app.visitor("dev").await;
    let (detail, client_id, _) = register_service(&visitor, "An API").await;
    let form = format!("{detail}update/");
    let (_, html) = visitor.get(&form).await;
    assert!(!html.contains("resource_uris"), "staff-only field hidden");
    // A non-staff owner cannot make their client a resource server (it could then introspect
    // other applications' tokens meant for that URI).
    let response = visitor
        .submit(
            &form,
            &form,
            &[
                ("name", "An API"),
                ("grant:client_credentials", "on"),
                ("scope:read", "on"),
                ("resource_uris", "https://api.example.com"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let stored = |app: &TestApp| {
        let id = client_id.clone();
        let clients = app.services.clients.clone();
        async move {
            clients
                .find(&id)
                .await
                .expect("db")
                .expect("client")
                .resource_uris
                .to_string()
        }
    };
    assert_eq!(stored(&app).await, "");

    app.create_staff("root").await;
    let staff = app.visitor("root").await;
    let (_, html) = staff.get(&form).await;
    assert!(
        html.contains("name=\"resource_uris\""),
        "staff see the field"
    );
    let bad = staff
        .submit(
            &form,
            &form,
            &[
                ("name", "An API"),
                ("grant:client_credentials", "on"),
                ("scope:read", "on"),
                ("resource_uris", "https://api.example.com/#top"),
            ],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text().await.expect("html").contains("RFC 8707"));
    let response = staff
        .submit(
            &form,
            &form,
            &[
                ("name", "An API"),
                ("grant:client_credentials", "on"),
                ("scope:read", "on"),
                (
                    "resource_uris",
                    "https://api.example.com\nurn:example:reports",
                ),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        stored(&app).await,
        "https://api.example.com urn:example:reports"
    );
    let (_, page) = visitor.get(&detail).await;
    assert!(
        page.contains("urn:example:reports"),
        "the detail page lists them"
    );
    // The owner saving the form again keeps what staff set.
    let response = visitor
        .submit(
            &form,
            &form,
            &[
                ("name", "Renamed API"),
                ("grant:client_credentials", "on"),
                ("scope:read", "on"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        stored(&app).await,
        "https://api.example.com urn:example:reports"
    );
}

/// The portal's rules are the service's: whoever calls `Clients` as a user who is not staff
/// (the portal's form, or any future page or API) registers only clients of their own, without
/// first-party powers, and manages only their own clients; staff and the command line are not
/// limited.
#[tokio::test]
async fn the_clients_service_keeps_first_party_powers_for_staff_whoever_calls_it() {
    use latchkey::audit::Actor;
    use latchkey::clients::ClientError;

    let app = spawn_app().await;
    let dev = app.create_user("dev").await;
    let other = app.create_user("other").await;
    let staff = app.create_staff("root").await;
    let clients = &app.services.clients;
    let as_dev = Actor::user(dev.id.clone(), None);
    let base = latchkey::clients::ClientSpec {
        owner_id: Some(dev.id.clone()),
        require_pkce: true,
        scopes: vec!["profile".into()],
        ..crate::helpers::spec("confidential", &["authorization_code"])
    };
    macro_rules! forbidden {
        ($r:expr) => {
            matches!($r, Err(ClientError::Forbidden { .. }))
        };
    }
    macro_rules! not_found {
        ($r:expr) => {
            matches!($r, Err(ClientError::NotFound))
        };
    }

    let powers: Vec<latchkey::clients::ClientSpec> = vec![
        latchkey::clients::ClientSpec {
            grant_types: vec!["authorization_code".into(), "password".into()],
            ..base.clone()
        },
        latchkey::clients::ClientSpec {
            scopes: vec!["profile".into(), "admin".into()],
            ..base.clone()
        },
        latchkey::clients::ClientSpec {
            scopes: vec!["profile".into(), "logout_all".into()],
            ..base.clone()
        },
        latchkey::clients::ClientSpec {
            skip_authorization: true,
            ..base.clone()
        },
        latchkey::clients::ClientSpec {
            introspect_all: true,
            ..base.clone()
        },
        latchkey::clients::ClientSpec {
            require_pkce: false,
            ..base.clone()
        },
        latchkey::clients::ClientSpec {
            allow_plain_pkce: true,
            ..base.clone()
        },
        latchkey::clients::ClientSpec {
            always_issue_refresh_token: true,
            ..base.clone()
        },
        latchkey::clients::ClientSpec {
            access_token_lifetime: Some(86_400),
            ..base.clone()
        },
        latchkey::clients::ClientSpec {
            resource_uris: vec!["https://api.example.com".into()],
            ..base.clone()
        },
        // Without an owner it would pass for an operator's client.
        latchkey::clients::ClientSpec {
            owner_id: None,
            ..base.clone()
        },
        latchkey::clients::ClientSpec {
            owner_id: Some(other.id.clone()),
            ..base.clone()
        },
    ];
    for power in &powers {
        let refused = clients.register(&as_dev, power).await;
        assert!(forbidden!(&refused), "{power:?}: {:?}", refused.map(|_| ()));
    }
    let (mine, _) = clients
        .register(&as_dev, &base)
        .await
        .expect("plain client");
    for power in powers.iter().take(10) {
        let refused = clients.update(&as_dev, mine.id(), power).await;
        assert!(forbidden!(&refused), "{power:?}: {:?}", refused.map(|_| ()));
    }
    let stored = clients.find(mine.id()).await.expect("db").expect("client");
    assert!(
        !stored.skip_authorization()
            && latchkey::clients::ClientSpec::from_client(&stored).require_pkce
    );

    // Someone else's client is not found, whatever is asked.
    let (theirs, _) = app
        .register(&latchkey::clients::ClientSpec {
            owner_id: Some(other.id.clone()),
            ..base.clone()
        })
        .await;
    assert!(not_found!(
        clients.update(&as_dev, theirs.id(), &base).await
    ));
    assert!(not_found!(
        clients.rotate_secret(&as_dev, theirs.id()).await
    ));
    assert!(not_found!(clients.delete(&as_dev, theirs.id()).await));
    assert!(clients.find(theirs.id()).await.expect("db").is_some());

    // Staff (and the command line, acting as the system) give the powers.
    let as_staff = Actor::user(staff.id.clone(), None);
    for power in powers.iter().take(10) {
        clients
            .update(&as_staff, mine.id(), power)
            .await
            .expect("staff may");
    }
    // What staff set, the owner keeps when saving (the portal's form sends the stored values).
    let kept = latchkey::clients::ClientSpec::from_client(
        &clients.find(mine.id()).await.expect("db").expect("client"),
    );
    clients
        .update(&as_dev, mine.id(), &kept)
        .await
        .expect("the owner keeps what staff set");
    clients
        .delete(&as_dev, mine.id())
        .await
        .expect("the owner deletes their own");
}

/// Issue 10 item 9: after "Register application" the browser is redirected to a GET page that
/// shows the secret once; a reload shows it no more and registers nothing; the secret is for
/// the browser that registered, not for another session of the same user.
#[tokio::test]
async fn registering_redirects_and_a_reload_repeats_nothing() {
    let app = spawn_app_with(SCOPES_WITHOUT_USER).await;
    app.create_user("dev").await;
    let visitor = app.visitor("dev").await;
    let other_browser = app.visitor("dev").await;
    let response = visitor
        .submit(
            "/o/applications/register/",
            "/o/applications/register/",
            &[
                ("name", "Reloaded"),
                ("client_type", "confidential"),
                ("grant:client_credentials", "on"),
                ("scope:read", "on"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let view = location(&response);
    // Another session of the same user gets nothing from the same address.
    let (status, elsewhere) = other_browser.get(&view).await;
    assert_eq!(status, StatusCode::OK);
    assert!(code_by_id(&elsewhere, "client-secret").is_none());
    let (status, html) = visitor.get(&view).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("“Reloaded” was registered."), "{html}");
    let secret = code_by_id(&html, "client-secret").expect("the secret, this once");
    let client_id = code_by_id(&html, "client-id").expect("client_id");
    assert_eq!(
        client_credentials(&app, &client_id, &secret).await,
        StatusCode::OK
    );
    // The reload.
    let (status, again) = visitor.get(&view).await;
    assert_eq!(status, StatusCode::OK);
    assert!(code_by_id(&again, "client-secret").is_none());
    assert!(!again.contains(&secret));
    assert!(
        !again.contains("was registered"),
        "the notice is shown once"
    );
    assert!(
        again.contains("generate a new one if you lost it")
            || again.contains("Generate a new one if you lost it"),
        "{again}"
    );
    assert_eq!(app.services.clients.list().await.expect("list").len(), 1);
    assert_eq!(app.audit_events("client.created").await.len(), 1);
}

/// The held secret is sealed in storage (never the plain secret), opens only for its ticket,
/// client and user, and only once.
#[tokio::test]
async fn a_held_secret_is_sealed_and_taken_once() {
    use latchkey::clients::PlainSecret;
    use latchkey::db::schema::held_secrets;

    let app = spawn_app_with(SCOPES_WITHOUT_USER).await;
    let dev = app.create_user("dev").await;
    let visitor = app.visitor("dev").await;
    let (_, client_id, _) = register_service(&visitor, "Held").await;
    let clients = &app.services.clients;
    let plain = "a-very-secret-value-for-this-test".to_owned();
    let ticket = clients
        .hold_secret(&dev.id, &client_id, PlainSecret(plain.clone()))
        .await
        .expect("db")
        .expect("sealed");
    let sealed: Vec<String> = app
        .services
        .db
        .read(|conn| {
            use diesel::prelude::*;
            held_secrets::table
                .select(held_secrets::sealed)
                .load(conn)
                .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("rows");
    assert_eq!(sealed.len(), 1, "one held secret per client");
    assert!(!sealed[0].contains(&plain));
    // Wrong user or client: nothing, and the row is used up all the same.
    assert!(clients
        .take_held_secret(&ticket, "someone-else", &client_id)
        .await
        .expect("db")
        .is_none());
    assert!(clients
        .take_held_secret(&ticket, &dev.id, &client_id)
        .await
        .expect("db")
        .is_none());
    let ticket = clients
        .hold_secret(&dev.id, &client_id, PlainSecret(plain.clone()))
        .await
        .expect("db")
        .expect("sealed");
    let taken = clients
        .take_held_secret(&ticket, &dev.id, &client_id)
        .await
        .expect("db")
        .expect("the secret");
    assert_eq!(taken.0, plain);
    assert!(clients
        .take_held_secret(&ticket, &dev.id, &client_id)
        .await
        .expect("db")
        .is_none());
}

/// Issue 10 item 13: one submit reports every field's problem, each next to its field and all
/// listed at the top.
#[tokio::test]
async fn the_form_reports_every_field_at_once() {
    let app = spawn_app().await;
    app.create_user("dev").await;
    let visitor = app.visitor("dev").await;
    let response = visitor
        .submit(
            "/o/applications/register/",
            "/o/applications/register/",
            &[
                ("name", ""),
                ("client_type", "confidential"),
                ("grant:authorization_code", "on"),
                ("redirect_uris", "https://app.example/cb#fragment"),
                ("allowed_origins", "ftp://files.example"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    for (id, words) in [
        ("name-error", "1 to 200 characters"),
        ("redirect-error", "fragment"),
    ] {
        let at = html
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} in {html}"));
        assert!(html[at..].contains(words), "{id}: {words}");
    }
    for words in [
        "choose at least one scope",
        "is not an http(s) origin",
        "4 fields need a change",
    ] {
        assert!(html.contains(words), "{words} in {html}");
    }
    assert!(app.services.clients.list().await.expect("list").is_empty());
}

/// Issue 10 item 13: a new form grants least privilege (sign-in scopes, the code grant;
/// nothing that writes or stays connected) and its redirect-URI help names private-use
/// schemes (RFC 8252 §7.1).
#[tokio::test]
async fn a_new_form_offers_least_privilege() {
    let app = spawn_app().await;
    app.create_user("dev").await;
    let visitor = app.visitor("dev").await;
    let (status, form) = visitor.get("/o/applications/register/").await;
    assert_eq!(status, StatusCode::OK);
    let ticked = |name: &str| {
        let start = form
            .find(&format!("name=\"{name}\""))
            .unwrap_or_else(|| panic!("a box for {name}"));
        form[start..start + form[start..].find('>').expect("tag end")].contains("checked")
    };
    for name in [
        "scope:openid",
        "scope:profile",
        "scope:email",
        "grant:authorization_code",
    ] {
        assert!(ticked(name), "{name} is ticked");
    }
    for name in [
        "scope:write",
        "scope:offline_access",
        "scope:read",
        "grant:refresh_token",
        "grant:client_credentials",
    ] {
        assert!(!ticked(name), "{name} is not ticked");
    }
    assert!(form.contains("com.example.app:/callback"));
    assert!(form.contains("RFC 8252 §7.1"));
    // The password grant is a superuser's: not offered to a user, offered (unticked) to one.
    assert!(!form.contains("name=\"grant:password\""));
    app.create_staff("root").await;
    let (_, form) = app
        .visitor("root")
        .await
        .get("/o/applications/register/")
        .await;
    assert!(form.contains("name=\"grant:password\""));
}

/// A held secret past its five minutes is not shown; of concurrent views, exactly one gets it.
#[tokio::test]
async fn a_held_secret_expires_and_is_shown_to_one_view_only() {
    use latchkey::clients::PlainSecret;
    use latchkey::db::schema::held_secrets;

    let app = spawn_app_with(SCOPES_WITHOUT_USER).await;
    let dev = app.create_user("dev").await;
    let visitor = app.visitor("dev").await;
    let (_, client_id, _) = register_service(&visitor, "Racy").await;
    let clients = app.services.clients.clone();
    let hold = || async {
        clients
            .hold_secret(&dev.id, &client_id, PlainSecret("s3cret".to_owned()))
            .await
            .expect("db")
            .expect("sealed")
    };
    let ticket = hold().await;
    app.services
        .db
        .write(|conn| {
            use diesel::prelude::*;
            diesel::update(held_secrets::table)
                .set(
                    held_secrets::expires_at
                        .eq(latchkey::db::now() - chrono::TimeDelta::seconds(1)),
                )
                .execute(conn)
                .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("expire");
    assert!(clients
        .take_held_secret(&ticket, &dev.id, &client_id)
        .await
        .expect("db")
        .is_none());
    for _ in 0..10 {
        let ticket = hold().await;
        let views: Vec<_> = (0..4)
            .map(|_| {
                let (clients, ticket, user, client) = (
                    clients.clone(),
                    ticket.clone(),
                    dev.id.clone(),
                    client_id.clone(),
                );
                tokio::spawn(async move {
                    clients
                        .take_held_secret(&ticket, &user, &client)
                        .await
                        .expect("db")
                })
            })
            .collect();
        let mut shown = 0;
        for view in views {
            if view.await.expect("task").is_some() {
                shown += 1;
            }
        }
        assert_eq!(shown, 1, "one view of four");
    }
}

/// A held secret nobody came to view is deleted by the housekeeping job once it expires;
/// one still within its view window stays.
#[tokio::test]
async fn housekeeping_deletes_held_secrets_past_their_view_window() {
    use latchkey::clients::PlainSecret;
    use latchkey::db::schema::held_secrets;

    let app = spawn_app_with(SCOPES_WITHOUT_USER).await;
    let dev = app.create_user("dev").await;
    let visitor = app.visitor("dev").await;
    let (_, stale_client, _) = register_service(&visitor, "Stale").await;
    let (_, fresh_client, _) = register_service(&visitor, "Fresh").await;
    let clients = &app.services.clients;
    for client_id in [&stale_client, &fresh_client] {
        clients
            .hold_secret(&dev.id, client_id, PlainSecret("s".repeat(40)))
            .await
            .expect("db")
            .expect("sealed");
    }
    let held = |db: latchkey::db::Db| async move {
        db.read(|conn| {
            use diesel::prelude::*;
            held_secrets::table
                .select(held_secrets::client_id)
                .order(held_secrets::client_id)
                .load::<String>(conn)
                .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("rows")
    };
    // Registering leaves a held secret of its own for each client: count from here.
    let before = held(app.services.db.clone()).await;
    assert!(before.contains(&stale_client) && before.contains(&fresh_client));
    let stale = stale_client.clone();
    app.services
        .db
        .write(move |conn| {
            use diesel::prelude::*;
            diesel::update(held_secrets::table.filter(held_secrets::client_id.eq(&stale)))
                .set(
                    held_secrets::expires_at
                        .eq(latchkey::db::now() - chrono::TimeDelta::minutes(1)),
                )
                .execute(conn)
                .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("expire");
    app.services.oauth.clear_expired().await.expect("cleanup");
    let after = held(app.services.db.clone()).await;
    assert!(!after.contains(&stale_client), "the expired one is gone");
    assert!(
        after.contains(&fresh_client),
        "the one still viewable stays"
    );
}

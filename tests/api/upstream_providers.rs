//! Sign-in providers managed in the admin console (issue 11): added by a superuser, stored with
//! the client secret sealed, used at once for sign-in (the Discord fake of
//! `upstream_discord.rs`, the Google fake of `google_fake.rs`), disabled, changed and deleted
//! with effect, read-only when they come from the configuration file, refused to staff who are
//! not superusers, every form problem at once, and seen by another node after its reload.

use base64::Engine;
use latchkey::audit::Actor;
use latchkey::config::RawUpstream;
use latchkey::upstream::providers::ProviderSecrets;
use latchkey::upstream::ProviderChangeError;
use reqwest::StatusCode;
use secrecy::SecretString;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::google_fake::{userinfo_of, FakeGoogle, CLIENT_ID, CLIENT_SECRET};
use crate::helpers::{location, query_param, spawn_app, TestApp, Visitor};
use crate::upstream_discord::{discord_rp_with, me, token_response};
use crate::upstream_google::sign_in;

/// The client secret the console is given for the Discord fake.
const SECRET: &str = "console-discord-secret-5f2a";

/// The Discord fake: the token endpoint answers only Latchkey's client id with [`SECRET`]
/// (HTTP Basic, RFC 6749 §2.3.1), and `/users/@me` is Nelly.
async fn discord_fake() -> MockServer {
    let discord = MockServer::start().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("1234567890:{SECRET}"));
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .and(header("authorization", format!("Basic {basic}").as_str()))
        .respond_with(token_response())
        .mount(&discord)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(serde_json::json!({"error": "invalid_client"})),
        )
        .mount(&discord)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v10/users/@me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(me()))
        .mount(&discord)
        .await;
    discord
}

/// The console form's fields for a Discord provider `id` at the fake, with `secret`.
fn discord_fields<'a>(
    discord: &'a MockServer,
    id: &'a str,
    secret: &'a str,
) -> Vec<(&'static str, String)> {
    let uri = discord.uri();
    vec![
        ("kind", "discord".to_owned()),
        ("id", id.to_owned()),
        ("label", "Chat".to_owned()),
        ("client_id", "1234567890".to_owned()),
        ("client_secret", secret.to_owned()),
        ("enabled", "on".to_owned()),
        ("authorization_endpoint", format!("{uri}/oauth2/authorize")),
        ("token_endpoint", format!("{uri}/api/oauth2/token")),
        ("api_base", format!("{uri}/api/v10")),
    ]
}

/// Posts `fields` to `action` from the form on `page` in `admin`'s browser.
async fn post_form(
    admin: &Visitor,
    page: &str,
    action: &str,
    fields: &[(&'static str, String)],
) -> reqwest::Response {
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    admin.submit(page, action, &fields).await
}

/// A superuser's browser.
async fn superuser(app: &TestApp) -> Visitor {
    app.create_staff("root").await;
    app.visitor("root").await
}

/// Starts a sign-in at provider `id` and comes back with `code` and the sign-in's state.
async fn round_trip(visitor: &Visitor, id: &str, code: &str) -> reqwest::Response {
    let start = visitor
        .get_response(&format!("/accounts/upstream/{id}/login/"))
        .await;
    assert_eq!(
        start.status(),
        StatusCode::SEE_OTHER,
        "the sign-in at {id} starts"
    );
    let state = query_param(&location(&start), "state").expect("state");
    visitor
        .get_response(&format!(
            "/accounts/upstream/{id}/callback/?code={code}&state={state}"
        ))
        .await
}

/// Whether the sign-in page offers "Sign in with `label`".
async fn offers(visitor: &Visitor, label: &str) -> bool {
    let (status, page) = visitor.get("/accounts/login/").await;
    assert_eq!(status, StatusCode::OK);
    page.contains(&format!("Sign in with {label}"))
}

/// The stored row of provider `id`.
async fn stored_row(
    app: &TestApp,
    id: &str,
) -> Option<latchkey::db::upstream_providers::ProviderRow> {
    let id = id.to_owned();
    app.services
        .db
        .read(move |conn| {
            latchkey::db::upstream_providers::find(conn, &id).map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("db")
}

#[tokio::test]
async fn a_provider_added_in_the_console_signs_users_in_with_its_sealed_secret() {
    let discord = discord_fake().await;
    let app = spawn_app().await;
    let admin = superuser(&app).await;
    let visitor = app.anonymous_visitor();
    assert!(!offers(&visitor, "Chat").await);

    let added = post_form(
        &admin,
        "/admin/providers/",
        "/admin/providers/",
        &discord_fields(&discord, "chat", SECRET),
    )
    .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&added), "/admin/providers/chat/");

    // Sealed: the secret is in neither column.
    let row = stored_row(&app, "chat").await.expect("stored");
    assert!(!row.client_secret_sealed.contains(SECRET) && !row.settings.contains(SECRET));
    let settings: RawUpstream =
        serde_json::from_str(&row.settings).expect("the configuration's shape");
    assert_eq!(
        (settings.kind.as_str(), settings.label.as_str()),
        ("discord", "Chat")
    );

    // In use at once: the button, and a sign-in whose code exchange sends the opened secret.
    assert!(offers(&visitor, "Chat").await);
    let callback = round_trip(&visitor, "chat", "the-code").await;
    assert_eq!(callback.status(), StatusCode::SEE_OTHER);
    let user = app
        .services
        .accounts
        .find_by_login("nelly")
        .await
        .expect("db")
        .expect("an account from the console's provider");
    let links = app.services.upstream.links_of(&user.id).await.expect("db");
    assert_eq!(links[0].provider_id, "chat");
    assert!(visitor.signed_in().await);

    // The list: kind, label, enabled, where it is defined, its linked account.
    let (status, list) = admin.get("/admin/providers/").await;
    assert_eq!(status, StatusCode::OK);
    for words in [
        "Sign-in providers",
        "chat",
        "Chat",
        "discord",
        "enabled",
        "console",
        ">1<",
    ] {
        assert!(list.contains(words), "{words}: {list}");
    }
    let (_, page) = admin.get("/admin/providers/chat/").await;
    assert!(page.contains("/accounts/upstream/chat/callback/"), "{page}");
    assert!(page.contains("Leave blank to keep the current secret"));
    for html in [&list, &page] {
        assert!(!html.contains(SECRET), "the secret is never shown again");
    }
    let created = app.audit_events("upstream.provider_created").await;
    let root = app
        .services
        .accounts
        .find_by_login("root")
        .await
        .expect("db")
        .expect("root");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].actor_id.as_deref(), Some(root.id.as_str()));
    assert!(!created[0].details.contains(SECRET));
}

#[tokio::test]
async fn a_provider_disabled_or_deleted_in_the_console_stops_and_its_links_come_back_with_it() {
    let discord = discord_fake().await;
    let app = spawn_app().await;
    let admin = superuser(&app).await;
    let fields = discord_fields(&discord, "chat", SECRET);
    post_form(&admin, "/admin/providers/", "/admin/providers/", &fields).await;
    let nelly = app.anonymous_visitor();
    assert_eq!(
        round_trip(&nelly, "chat", "c1").await.status(),
        StatusCode::SEE_OTHER
    );
    let user_id = app
        .services
        .accounts
        .find_by_login("nelly")
        .await
        .expect("db")
        .expect("nelly")
        .id;

    // Disabled, the secret left blank (kept): no button, no start, no callback.
    let pending = app.anonymous_visitor();
    let start = pending.get_response("/accounts/upstream/chat/login/").await;
    let state = query_param(&location(&start), "state").expect("state");
    let mut disabled: Vec<(&'static str, String)> = fields
        .iter()
        .filter(|(k, _)| !matches!(*k, "enabled" | "client_secret" | "id" | "kind"))
        .cloned()
        .collect();
    disabled.push(("client_secret", String::new()));
    let saved = post_form(
        &admin,
        "/admin/providers/chat/",
        "/admin/providers/chat/",
        &disabled,
    )
    .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    assert!(!offers(&app.anonymous_visitor(), "Chat").await);
    let refused = app
        .anonymous_visitor()
        .get_response("/accounts/upstream/chat/login/")
        .await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    let late = pending
        .get_response(&format!(
            "/accounts/upstream/chat/callback/?code=c2&state={state}"
        ))
        .await;
    assert_eq!(late.status(), StatusCode::NOT_FOUND);
    let updated = app.audit_events("upstream.provider_updated").await;
    assert!(
        updated[0].details.contains("\"secret_changed\":false"),
        "{}",
        updated[0].details
    );

    // Enabled again with the secret still blank: the kept secret still opens at Discord.
    disabled.push(("enabled", "on".to_owned()));
    post_form(
        &admin,
        "/admin/providers/chat/",
        "/admin/providers/chat/",
        &disabled,
    )
    .await;
    assert_eq!(
        round_trip(&app.anonymous_visitor(), "chat", "c3")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );

    // Deleted after a confirmation that counts the links and says they stay.
    let (status, confirm) = admin.get("/admin/providers/chat/delete/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(confirm.contains("1 linked account"), "{confirm}");
    assert!(confirm.contains("work again"), "{confirm}");
    let deleted = admin
        .post_with_csrf_of(&confirm, "/admin/providers/chat/delete/", &[])
        .await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert!(stored_row(&app, "chat").await.is_none());
    assert_eq!(
        app.anonymous_visitor()
            .get_response("/accounts/upstream/chat/login/")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.services
            .upstream
            .links_of(&user_id)
            .await
            .expect("db")
            .len(),
        1
    );
    let deleted = app.audit_events("upstream.provider_deleted").await;
    assert!(
        deleted[0].details.contains("\"links\":1"),
        "{}",
        deleted[0].details
    );

    // The same id and issuer back: the link signs Nelly in again, no second account.
    post_form(&admin, "/admin/providers/", "/admin/providers/", &fields).await;
    let again = app.anonymous_visitor();
    assert_eq!(
        round_trip(&again, "chat", "c4").await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(again.signed_in().await);
    assert!(app
        .services
        .accounts
        .find_by_login("nelly2")
        .await
        .expect("db")
        .is_none());
}

#[tokio::test]
async fn a_provider_of_the_configuration_file_is_read_only_in_the_console() {
    let discord = MockServer::start().await;
    let app = discord_rp_with(&discord, "").await;
    let admin = superuser(&app).await;
    let (status, list) = admin.get("/admin/providers/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(list.contains("configuration file"), "{list}");
    let (status, page) = admin.get("/admin/providers/discord/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Read-only"), "{page}");
    assert!(
        !page.contains("action=\"/admin/providers/discord/\""),
        "no form"
    );
    assert!(
        !page.contains("/admin/providers/discord/delete/"),
        "no delete button"
    );
    for html in [&list, &page] {
        assert!(
            !html.contains("discord-secret"),
            "the file's secret is never shown"
        );
    }

    // Forged changes are refused and change nothing.
    let update = admin
        .post_with_csrf_of(
            &list,
            "/admin/providers/discord/",
            &[("label", "Hijacked"), ("client_id", "x"), ("enabled", "on")],
        )
        .await;
    assert_eq!(update.status(), StatusCode::FORBIDDEN);
    assert!(update
        .text()
        .await
        .expect("page")
        .contains("configuration file"));
    let delete = admin
        .post_with_csrf_of(&list, "/admin/providers/discord/delete/", &[])
        .await;
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        admin.get("/admin/providers/discord/delete/").await.0,
        StatusCode::FORBIDDEN
    );
    assert!(offers(&app.anonymous_visitor(), "Discord").await);

    // Its id cannot be taken by a console provider.
    let taken = post_form(
        &admin,
        "/admin/providers/",
        "/admin/providers/",
        &discord_fields(&discord, "discord", SECRET),
    )
    .await;
    assert_eq!(taken.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = taken.text().await.expect("page");
    assert!(
        html.contains("id is the id of a provider of the configuration file"),
        "{html}"
    );
    assert!(stored_row(&app, "discord").await.is_none());
    assert!(app
        .audit_events("upstream.provider_created")
        .await
        .is_empty());
}

#[tokio::test]
async fn only_a_superuser_changes_providers() {
    let discord = discord_fake().await;
    let app = spawn_app().await;
    let admin = superuser(&app).await;
    let fields = discord_fields(&discord, "chat", SECRET);
    post_form(&admin, "/admin/providers/", "/admin/providers/", &fields).await;
    let staff_account = app.create_plain_staff("staffer").await;
    let staff = app.visitor("staffer").await;

    // No page: providers are a superuser's (403 pages, nothing of the settings shown).
    for page in [
        "/admin/providers/",
        "/admin/providers/chat/",
        "/admin/providers/chat/delete/",
    ] {
        let (status, html) = staff.get(page).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
        assert!(!html.contains("1234567890"), "{page}: {html}");
    }
    // A page of the console the staff member may see, for its CSRF token.
    let (_, list) = staff.get("/admin/").await;

    // Every POST refused by the service, nothing changed.
    let other = discord_fields(&discord, "other", SECRET);
    let other: Vec<(&str, &str)> = other.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let create = staff
        .post_with_csrf_of(&list, "/admin/providers/", &other)
        .await;
    assert_eq!(create.status(), StatusCode::FORBIDDEN);
    let update = staff
        .post_with_csrf_of(
            &list,
            "/admin/providers/chat/",
            &[("label", "Renamed"), ("client_id", "1234567890")],
        )
        .await;
    assert_eq!(update.status(), StatusCode::FORBIDDEN);
    let delete = staff
        .post_with_csrf_of(&list, "/admin/providers/chat/delete/", &[])
        .await;
    assert_eq!(delete.status(), StatusCode::FORBIDDEN);
    assert!(stored_row(&app, "other").await.is_none());
    let row = stored_row(&app, "chat").await.expect("still there");
    assert!(
        row.settings.contains("\"label\":\"Chat\""),
        "{}",
        row.settings
    );
    assert_eq!(app.audit_events("upstream.provider_updated").await.len(), 0);

    // The service refuses whoever calls it: staff, an ordinary user.
    let ordinary = app.create_user("ordinary").await;
    for actor in [
        Actor::user(staff_account.id.clone(), None),
        Actor::user(ordinary.id.clone(), None),
    ] {
        let created = app
            .services
            .upstream
            .create_provider(
                &actor,
                "direct",
                RawUpstream {
                    kind: "discord".to_owned(),
                    client_id: "x".to_owned(),
                    ..RawUpstream::default()
                },
                SecretString::from("s"),
            )
            .await;
        assert!(
            matches!(created, Err(ProviderChangeError::Forbidden(_))),
            "{created:?}"
        );
        let deleted = app
            .services
            .upstream
            .delete_provider(&actor, "chat", true)
            .await;
        assert!(
            matches!(deleted, Err(ProviderChangeError::Forbidden(_))),
            "{deleted:?}"
        );
    }
    assert!(stored_row(&app, "chat").await.is_some());

    // Someone who is not staff gets no page at all.
    let user = app.visitor("ordinary").await;
    assert_eq!(user.get("/admin/providers/").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn every_problem_of_the_form_is_shown_at_once_and_nothing_is_saved() {
    let app = spawn_app().await;
    let admin = superuser(&app).await;
    let refused = post_form(
        &admin,
        "/admin/providers/",
        "/admin/providers/",
        &[
            ("kind", "oidc".to_owned()),
            ("id", "Not An Id".to_owned()),
            ("client_id", String::new()),
            ("client_secret", "typed-secret-7c1".to_owned()),
            ("issuer", "http://idp.example.com".to_owned()),
            ("api_base", "https://discord.example/api".to_owned()),
            ("required_claims", "groups".to_owned()),
            ("scopes", "email profile".to_owned()),
        ],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = refused.text().await.expect("page");
    for (field, words) in [
        ("id", "id must be 1 to 32 lower-case letters"),
        ("client_id", "client_id is required"),
        ("issuer", "issuer must be an https URL"),
        ("api_base", "api_base is for Discord only"),
        ("required_claims", "required_claims must pair claim names"),
        ("scopes", "scopes must contain"),
    ] {
        assert!(html.contains(words), "{words}: {html}");
        assert!(
            html.contains(&format!("id=\"{field}-error\"")),
            "{field} has its error"
        );
    }
    assert!(html.contains("6 problems"), "{html}");
    assert!(
        !html.contains("typed-secret-7c1"),
        "the secret is not sent back"
    );
    assert!(
        html.contains("value=\"http://idp.example.com\""),
        "the form keeps what was typed"
    );
    let unknown_kind = post_form(
        &admin,
        "/admin/providers/",
        "/admin/providers/",
        &[
            ("kind", "github".to_owned()),
            ("id", "gh".to_owned()),
            ("client_id", "x".to_owned()),
        ],
    )
    .await;
    assert_eq!(unknown_kind.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = unknown_kind.text().await.expect("page");
    assert!(
        html.contains("kind must be") && html.contains("client_secret is required"),
        "{html}"
    );
    assert!(app
        .services
        .upstream
        .list_providers()
        .await
        .expect("db")
        .is_empty());
    assert!(app
        .audit_events("upstream.provider_created")
        .await
        .is_empty());

    // An edit with problems changes nothing either.
    let discord = discord_fake().await;
    post_form(
        &admin,
        "/admin/providers/",
        "/admin/providers/",
        &discord_fields(&discord, "chat", SECRET),
    )
    .await;
    let before = stored_row(&app, "chat").await.expect("stored");
    let edit = post_form(
        &admin,
        "/admin/providers/chat/",
        "/admin/providers/chat/",
        &[
            ("label", "Renamed".to_owned()),
            ("client_id", "1234567890".to_owned()),
            ("callback_path", "/elsewhere/".to_owned()),
            ("api_base", "ftp://discord.example".to_owned()),
        ],
    )
    .await;
    assert_eq!(edit.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = edit.text().await.expect("page");
    assert!(
        html.contains("callback_path must be") && html.contains("api_base must be an https URL"),
        "{html}"
    );
    assert!(!html.contains(SECRET));
    assert_eq!(stored_row(&app, "chat").await.expect("stored"), before);
}

#[tokio::test]
async fn another_node_sees_a_change_after_its_reload() {
    let discord = discord_fake().await;
    let first = spawn_app().await;
    let second = first.second_node("").await;
    let admin = superuser(&first).await;
    post_form(
        &admin,
        "/admin/providers/",
        "/admin/providers/",
        &discord_fields(&discord, "chat", SECRET),
    )
    .await;
    let elsewhere = second.anonymous_visitor();
    // The other node has not reloaded yet (it does every PROVIDER_RELOAD_SECONDS).
    assert!(!offers(&elsewhere, "Chat").await);
    second.services.upstream.reload().await.expect("reload");
    assert!(offers(&elsewhere, "Chat").await);
    assert_eq!(
        round_trip(&elsewhere, "chat", "c").await.status(),
        StatusCode::SEE_OTHER,
        "the second node opens the secret the first sealed"
    );

    // Deleted on the first node: gone on the second after its reload.
    let (_, confirm) = admin.get("/admin/providers/chat/delete/").await;
    admin
        .post_with_csrf_of(&confirm, "/admin/providers/chat/delete/", &[])
        .await;
    assert!(offers(&elsewhere, "Chat").await, "until the reload");
    second.services.upstream.reload().await.expect("reload");
    assert!(!offers(&elsewhere, "Chat").await);
    assert_eq!(
        elsewhere
            .get_response("/accounts/upstream/chat/login/")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_stored_provider_that_does_not_load_is_left_out_and_can_be_repaired() {
    let discord = discord_fake().await;
    let app = spawn_app().await;
    let admin = superuser(&app).await;
    // A row sealed under another secrets.secret_key (a restored backup, a rotated key).
    let other_key = ProviderSecrets::new(&[7u8; 64]).expect("sealer");
    let uri = discord.uri();
    let settings = serde_json::json!({
        "kind": "discord",
        "label": "Chat",
        "client_id": "1234567890",
        "authorization_endpoint": format!("{uri}/oauth2/authorize"),
        "token_endpoint": format!("{uri}/api/oauth2/token"),
        "api_base": format!("{uri}/api/v10"),
    })
    .to_string();
    let row = latchkey::db::upstream_providers::ProviderRow {
        id: "chat".to_owned(),
        settings,
        client_secret_sealed: other_key
            .seal(
                "chat",
                std::slice::from_ref(&uri),
                &SecretString::from(SECRET),
            )
            .expect("seal"),
        created_at: latchkey::db::now(),
        updated_at: latchkey::db::now(),
    };
    app.services
        .db
        .write(move |conn| {
            latchkey::db::upstream_providers::insert(conn, &row)
                .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("insert");
    app.services
        .upstream
        .reload()
        .await
        .expect("a bad row does not fail the reload");
    let visitor = app.anonymous_visitor();
    assert!(!offers(&visitor, "Chat").await);
    assert_eq!(
        visitor
            .get_response("/accounts/upstream/chat/login/")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let (status, list) = admin.get("/admin/providers/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        list.contains("not in use") && list.contains("cannot be opened"),
        "{list}"
    );

    // Saving without a secret asks for it; with one, the provider is in use again.
    let fields: Vec<(&'static str, String)> = vec![
        ("label", "Chat".to_owned()),
        ("client_id", "1234567890".to_owned()),
        ("enabled", "on".to_owned()),
        ("authorization_endpoint", format!("{uri}/oauth2/authorize")),
        ("token_endpoint", format!("{uri}/api/oauth2/token")),
        ("api_base", format!("{uri}/api/v10")),
    ];
    let blank = post_form(
        &admin,
        "/admin/providers/chat/",
        "/admin/providers/chat/",
        &fields,
    )
    .await;
    assert_eq!(blank.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(blank
        .text()
        .await
        .expect("page")
        .contains("client_secret must be entered again"));
    let mut with_secret = fields.clone();
    with_secret.push(("client_secret", SECRET.to_owned()));
    let saved = post_form(
        &admin,
        "/admin/providers/chat/",
        "/admin/providers/chat/",
        &with_secret,
    )
    .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    assert!(offers(&visitor, "Chat").await);
    let updated = app.audit_events("upstream.provider_updated").await;
    assert!(updated[0].details.contains("\"secret_changed\":true"));
}

#[tokio::test]
async fn a_changed_provider_is_discovered_again() {
    let first = FakeGoogle::start().await;
    let second = FakeGoogle::start().await;
    let app = spawn_app().await;
    let admin = superuser(&app).await;
    let oidc = |issuer: String| -> Vec<(&'static str, String)> {
        vec![
            ("kind", "oidc".to_owned()),
            ("id", "corp".to_owned()),
            ("label", "Corp".to_owned()),
            ("client_id", CLIENT_ID.to_owned()),
            ("client_secret", CLIENT_SECRET.to_owned()),
            ("issuer", issuer),
            ("enabled", "on".to_owned()),
        ]
    };
    // An issuer that is down: the failure is remembered (30 s) …
    let down = oidc("http://127.0.0.1:9".to_owned());
    assert_eq!(
        post_form(&admin, "/admin/providers/", "/admin/providers/", &down)
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let visitor = app.anonymous_visitor();
    assert_eq!(
        visitor
            .get_response("/accounts/upstream/corp/login/")
            .await
            .status(),
        StatusCode::BAD_GATEWAY
    );
    // … but not for the corrected provider, which is discovered at once.
    let edit = |fields: Vec<(&'static str, String)>| {
        fields
            .into_iter()
            .filter(|(k, _)| !matches!(*k, "kind" | "id"))
            .collect::<Vec<_>>()
    };
    post_form(
        &admin,
        "/admin/providers/corp/",
        "/admin/providers/corp/",
        &edit(oidc(first.issuer())),
    )
    .await;
    let start = visitor.get_response("/accounts/upstream/corp/login/").await;
    assert!(
        location(&start).starts_with(&first.issuer()),
        "{}",
        location(&start)
    );
    // Moved to another issuer: its discovery, not the cached one.
    post_form(
        &admin,
        "/admin/providers/corp/",
        "/admin/providers/corp/",
        &edit(oidc(second.issuer())),
    )
    .await;
    let signed = sign_in(&second, &visitor, "corp", |nonce| {
        let claims = second.claims(Some(nonce));
        (second.sign(&claims), userinfo_of(&claims))
    })
    .await;
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    assert!(visitor.signed_in().await);
    assert_eq!(first.requests_to("/token").await, 0);
}

#[tokio::test]
async fn two_admins_adding_the_same_id_at_once_make_one_provider() {
    let app = spawn_app().await;
    let root = app.create_staff("root").await;
    let actor = Actor::user(root.id.clone(), None);
    let settings = |label: &str| RawUpstream {
        kind: "discord".to_owned(),
        label: label.to_owned(),
        client_id: "1234567890".to_owned(),
        ..RawUpstream::default()
    };
    // Reloads run all along (the timer of every node): none may put back an older set.
    let reloading = {
        let upstream = app.services.upstream.clone();
        tokio::spawn(async move {
            for _ in 0..50 {
                upstream.reload().await.expect("reload");
            }
        })
    };
    let upstream = &app.services.upstream;
    let (a, b) = tokio::join!(
        upstream.create_provider(&actor, "chat", settings("A"), SecretString::from("s1")),
        upstream.create_provider(&actor, "chat", settings("B"), SecretString::from("s2")),
    );
    reloading.await.expect("reloads");
    let refused = match (a, b) {
        (Ok(()), Err(e)) | (Err(e), Ok(())) => e,
        other => panic!("exactly one is added: {other:?}"),
    };
    match refused {
        ProviderChangeError::Invalid(problems) => assert!(
            problems
                .to_string()
                .contains("is the id of another provider"),
            "{problems}"
        ),
        other => panic!("the other is told the id is taken: {other:?}"),
    }
    assert_eq!(
        app.services
            .upstream
            .list_providers()
            .await
            .expect("db")
            .len(),
        1
    );
    assert_eq!(app.audit_events("upstream.provider_created").await.len(), 1);
    assert!(
        app.services
            .upstream
            .buttons()
            .iter()
            .any(|b| b.id == "chat"),
        "the set in place has it"
    );
}

#[tokio::test]
async fn a_stored_provider_with_unreadable_settings_is_left_out_and_can_be_set_again() {
    let discord = discord_fake().await;
    let app = spawn_app().await;
    let admin = superuser(&app).await;
    let sealed = ProviderSecrets::new(&[0u8; 64]).expect("sealer");
    // Settings a newer version wrote (an unknown key), under the right key or not: unreadable.
    let row = latchkey::db::upstream_providers::ProviderRow {
        id: "chat".to_owned(),
        settings: r#"{"kind":"discord","client_id":"x","a_later_setting":true}"#.to_owned(),
        client_secret_sealed: sealed
            .seal("chat", &[], &SecretString::from("s"))
            .expect("seal"),
        created_at: latchkey::db::now(),
        updated_at: latchkey::db::now(),
    };
    app.services
        .db
        .write(move |conn| {
            latchkey::db::upstream_providers::insert(conn, &row)
                .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("insert");
    app.services.upstream.reload().await.expect("reload");
    assert!(app.services.upstream.buttons().is_empty());
    let (status, page) = admin.get("/admin/providers/chat/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("stored settings cannot be read"), "{page}");
    assert!(
        page.contains("name=\"kind\""),
        "the kind is asked again: {page}"
    );
    let mut fields = discord_fields(&discord, "chat", SECRET);
    fields.retain(|(k, _)| *k != "id");
    let saved = post_form(
        &admin,
        "/admin/providers/chat/",
        "/admin/providers/chat/",
        &fields,
    )
    .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    assert!(offers(&app.anonymous_visitor(), "Chat").await);
}

#[tokio::test]
async fn moving_the_token_endpoint_or_api_host_needs_the_secret_again_and_drops_kept_tokens() {
    let discord = discord_fake().await;
    let elsewhere = MockServer::start().await;
    let app = spawn_app().await;
    let admin = superuser(&app).await;
    let fields = discord_fields(&discord, "chat", SECRET);
    post_form(&admin, "/admin/providers/", "/admin/providers/", &fields).await;
    let row = stored_row(&app, "chat").await.expect("stored");
    assert!(
        row.client_secret_sealed.starts_with("v2."),
        "bound to its origins"
    );
    let nelly = app.anonymous_visitor();
    assert_eq!(
        round_trip(&nelly, "chat", "c1").await.status(),
        StatusCode::SEE_OTHER
    );
    let user_id = app
        .services
        .accounts
        .find_by_login("nelly")
        .await
        .expect("db")
        .expect("nelly")
        .id;
    let links = app.services.upstream.links_of(&user_id).await.expect("db");
    assert_eq!(
        links[0].issuer,
        format!("discord:{}", discord.uri()),
        "a link through another API host than Discord's names it"
    );
    // Another host, the secret left blank: refused, nothing saved, nothing sent there.
    let other = elsewhere.uri();
    let moved = |secret: &str| -> Vec<(&'static str, String)> {
        vec![
            ("label", "Chat".to_owned()),
            ("client_id", "1234567890".to_owned()),
            ("client_secret", secret.to_owned()),
            ("enabled", "on".to_owned()),
            (
                "authorization_endpoint",
                format!("{}/oauth2/authorize", discord.uri()),
            ),
            ("token_endpoint", format!("{other}/api/oauth2/token")),
            ("api_base", format!("{other}/api/v10")),
        ]
    };
    let refused = post_form(
        &admin,
        "/admin/providers/chat/",
        "/admin/providers/chat/",
        &moved(""),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused
        .text()
        .await
        .expect("page")
        .contains("client_secret must be entered again"));
    assert_eq!(
        stored_row(&app, "chat").await.expect("stored").settings,
        row.settings
    );
    round_trip(&app.anonymous_visitor(), "chat", "c2").await;
    assert!(
        elsewhere
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "the stored secret never went to the new host"
    );

    // The user's kept tokens (as the connector keeps them).
    let link_id = links[0].id.clone();
    app.services
        .db
        .write(move |conn| {
            latchkey::db::upstream_links::set_tokens(
                conn,
                &link_id,
                Some(("sealed-a", Some("sealed-r"), None)),
            )
            .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("tokens");

    // With the secret entered again: saved, the kept tokens dropped, the audit event says what
    // moved (never the secret).
    let saved = post_form(
        &admin,
        "/admin/providers/chat/",
        "/admin/providers/chat/",
        &moved("another-secret"),
    )
    .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let links = app.services.upstream.links_of(&user_id).await.expect("db");
    assert!(
        links[0].access_token_sealed.is_none() && links[0].refresh_token_sealed.is_none(),
        "kept tokens dropped"
    );
    let updated = app.audit_events("upstream.provider_updated").await;
    let details = &updated[0].details;
    for words in [
        "api_base",
        "token_endpoint",
        &format!("\"old_origins\":\"{}\"", discord.uri()),
        &format!("\"new_origins\":\"{other}\""),
        "\"tokens_dropped\":1",
    ] {
        assert!(details.contains(words), "{words}: {details}");
    }
    assert!(!details.contains("another-secret") && !details.contains(SECRET));

    // A change that keeps the origins keeps the secret without asking.
    let mut relabelled = moved("");
    relabelled[0].1 = "Chat again".to_owned();
    let kept = post_form(
        &admin,
        "/admin/providers/chat/",
        "/admin/providers/chat/",
        &relabelled,
    )
    .await;
    assert_eq!(kept.status(), StatusCode::SEE_OTHER);
}

/// The form of the stored provider `chat` at `discord`, secret blank (kept), with `more`.
fn chat_edit(discord: &MockServer, more: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut fields: Vec<(&'static str, String)> = discord_fields(discord, "chat", "")
        .into_iter()
        .filter(|(k, _)| !matches!(*k, "enabled" | "id" | "kind"))
        .collect();
    fields.extend(more.iter().map(|(k, v)| (*k, (*v).to_owned())));
    fields
}

#[tokio::test]
async fn disabling_with_end_logins_or_deleting_ends_the_logins_through_the_provider() {
    let discord = discord_fake().await;
    let app = spawn_app().await;
    let admin = superuser(&app).await;
    post_form(
        &admin,
        "/admin/providers/",
        "/admin/providers/",
        &discord_fields(&discord, "chat", SECRET),
    )
    .await;
    let nelly = app.anonymous_visitor();
    round_trip(&nelly, "chat", "c1").await;
    assert!(nelly.signed_in().await);
    // Disabled without the box: her session stays.
    let saved = post_form(
        &admin,
        "/admin/providers/chat/",
        "/admin/providers/chat/",
        &chat_edit(&discord, &[]),
    )
    .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    assert!(nelly.signed_in().await);
    // Enabled, she signs in again elsewhere; disabled with the box: every login through it ends.
    post_form(
        &admin,
        "/admin/providers/chat/",
        "/admin/providers/chat/",
        &chat_edit(&discord, &[("enabled", "on")]),
    )
    .await;
    let again = app.anonymous_visitor();
    round_trip(&again, "chat", "c2").await;
    assert!(again.signed_in().await);
    let saved = post_form(
        &admin,
        "/admin/providers/chat/",
        "/admin/providers/chat/",
        &chat_edit(&discord, &[("end_logins", "on")]),
    )
    .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    assert!(!nelly.signed_in().await && !again.signed_in().await);
    assert!(admin.signed_in().await, "a password login is not touched");
    let updated = app.audit_events("upstream.provider_updated").await;
    assert!(
        updated[0].details.contains("\"logins_ended_for_users\":1"),
        "{}",
        updated[0].details
    );
    // Deleting ends them by default.
    post_form(
        &admin,
        "/admin/providers/chat/",
        "/admin/providers/chat/",
        &chat_edit(&discord, &[("enabled", "on")]),
    )
    .await;
    let third = app.anonymous_visitor();
    round_trip(&third, "chat", "c3").await;
    assert!(third.signed_in().await);
    let (_, confirm) = admin.get("/admin/providers/chat/delete/").await;
    assert!(confirm.contains("Every session and token"), "{confirm}");
    let deleted = admin
        .post_with_csrf_of(&confirm, "/admin/providers/chat/delete/", &[])
        .await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert!(!third.signed_in().await);
    assert!(admin.signed_in().await);
}

#[tokio::test]
async fn a_provider_disabled_during_the_round_trip_signs_nobody_in() {
    let discord = MockServer::start().await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("1234567890:{SECRET}"));
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .and(header("authorization", format!("Basic {basic}").as_str()))
        .respond_with(token_response().set_delay(std::time::Duration::from_secs(2)))
        .mount(&discord)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v10/users/@me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(me()))
        .mount(&discord)
        .await;
    let app = spawn_app().await;
    let admin = superuser(&app).await;
    post_form(
        &admin,
        "/admin/providers/",
        "/admin/providers/",
        &discord_fields(&discord, "chat", SECRET),
    )
    .await;
    let nelly = app.anonymous_visitor();
    let callback = round_trip(&nelly, "chat", "slow");
    let disable = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        post_form(
            &admin,
            "/admin/providers/chat/",
            "/admin/providers/chat/",
            &chat_edit(&discord, &[]),
        )
        .await
    };
    let (callback, disabled) = tokio::join!(callback, disable);
    assert_eq!(disabled.status(), StatusCode::SEE_OTHER);
    assert_ne!(callback.status(), StatusCode::SEE_OTHER);
    assert!(!nelly.signed_in().await);
    assert!(app
        .services
        .accounts
        .find_by_login("nelly")
        .await
        .expect("db")
        .is_none());
}

#[tokio::test]
async fn a_node_that_cannot_reread_the_providers_stops_serving_the_stored_ones() {
    let discord = discord_fake().await;
    let app = spawn_app().await;
    let admin = superuser(&app).await;
    post_form(
        &admin,
        "/admin/providers/",
        "/admin/providers/",
        &discord_fields(&discord, "chat", SECRET),
    )
    .await;
    assert!(offers(&app.anonymous_visitor(), "Chat").await);
    // What the reloader does after `MAX_RELOAD_FAILURES` failed reloads in a row.
    app.services.upstream.drop_stored().await;
    assert!(!offers(&app.anonymous_visitor(), "Chat").await);
    assert_eq!(
        app.anonymous_visitor()
            .get_response("/accounts/upstream/chat/login/")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    // Back with the next successful reload.
    app.services.upstream.reload().await.expect("reload");
    assert!(offers(&app.anonymous_visitor(), "Chat").await);
}

#[tokio::test]
async fn the_console_links_the_providers_for_superusers_only() {
    let app = spawn_app().await;
    let admin = superuser(&app).await;
    app.create_plain_staff("staffer").await;
    let staff = app.visitor("staffer").await;
    let link = r#"href="/admin/providers/""#;

    let (status, dashboard) = admin.get("/admin/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(dashboard.contains(link), "{dashboard}");
    // Staff who are not superusers would get the 403 page there: no link, on any console page.
    for page in [
        "/admin/",
        "/admin/users/",
        "/admin/groups/",
        "/admin/audit/",
    ] {
        let (status, html) = staff.get(page).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(html.contains(r#"href="/admin/users/""#), "{page}: {html}");
        assert!(!html.contains(link), "{page}: {html}");
    }
}

//! The admin console `/admin/`: who may enter, the dashboard, users (search, paging, profile,
//! flags, sign-out-everywhere), groups, tokens and the audit log.

use latchkey::accounts::Account;
use latchkey::db::users::UserRow;
use reqwest::StatusCode;

use crate::helpers::{location, spawn_app, spawn_app_with, TestApp, Visitor, PASSWORD};

/// The number on the dashboard tile labelled `label`.
fn stat(html: &str, label: &str) -> i64 {
    let marker = format!("</span><span class=\"label\">{label}</span>");
    let end = html
        .find(&marker)
        .unwrap_or_else(|| panic!("a tile {label}"));
    let start = html[..end].rfind('>').expect("value span") + 1;
    html[start..end].parse().expect("a number")
}

/// The `href` of the `rel="next"` pagination link, unescaped.
fn next_href(html: &str) -> Option<String> {
    let end = html.find("\" rel=\"next\"")?;
    let start = html[..end].rfind("href=\"")? + "href=\"".len();
    Some(html[start..end].replace("&#38;", "&").replace("&amp;", "&"))
}

/// The row ids of the token checkboxes (`name="token:ID"`) on a page.
fn token_ids(html: &str) -> Vec<String> {
    html.split("name=\"token:")
        .skip(1)
        .map(|s| s.split('"').next().expect("closing quote").to_owned())
        .collect()
}

/// Audit event names listed on a page: the first `<code>` after each time cell (`<td
/// data-label="Time">`, on the dashboard and in the audit log).
fn listed_events(html: &str) -> Vec<String> {
    html.split("<td data-label=\"Time\">")
        .skip(1)
        .filter_map(|s| {
            let start = s.find("<code>")? + "<code>".len();
            Some(s[start..].split('<').next()?.to_owned())
        })
        .collect()
}

/// A staff member signed in, and their browser.
async fn admin(app: &TestApp) -> (Account, Visitor) {
    let staff = app.create_staff("root").await;
    let visitor = app.visitor("root").await;
    (staff, visitor)
}

/// An access token for `username` through the password grant.
async fn access_token(app: &TestApp, client: &(String, String), username: &str) -> String {
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", PASSWORD),
                ("scope", "profile"),
            ],
            Some((&client.0, &client.1)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// Whether introspection (by the token's own client) calls the token active.
async fn is_active(app: &TestApp, client: &(String, String), token: &str) -> bool {
    let (status, body) = app
        .post_oauth(
            "/o/introspect/",
            &[("token", token)],
            Some((&client.0, &client.1)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["active"].as_bool().expect("active")
}

async fn user(app: &TestApp, id: &str) -> UserRow {
    app.stored_user(id).await
}

async fn group_id(app: &TestApp, name: &str) -> Option<String> {
    app.services
        .groups
        .all()
        .await
        .expect("db")
        .into_iter()
        .find(|g| g.name == name)
        .map(|g| g.id)
}

#[tokio::test]
async fn signed_out_visitors_are_sent_to_login() {
    let app = spawn_app().await;
    let visitor = app.anonymous_visitor();
    for path in [
        "/admin/",
        "/admin",
        "/admin/users/",
        "/admin/users/x/",
        "/admin/users/x/end_sessions/",
        "/admin/groups/",
        "/admin/groups/x/",
        "/admin/groups/x/delete/",
        "/admin/tokens/?user_id=x",
        "/admin/audit/",
    ] {
        let response = visitor.get_response(path).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        let next = location(&response);
        assert!(
            next.starts_with("/accounts/login/?next=%2Fadmin"),
            "{path} → {next}"
        );
    }
    let response = visitor
        .client
        .post(visitor.url("/admin/groups/"))
        .form(&[("name", "Sneaky")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(app.services.groups.all().await.expect("db").is_empty());
}

#[tokio::test]
async fn people_who_are_not_staff_are_refused_everywhere() {
    let app = spawn_app().await;
    let staff = app.create_staff("root").await;
    let pat = app.create_user("pat").await;
    let group = app
        .services
        .groups
        .create(&latchkey::audit::Actor::system(), "Editors", "")
        .await
        .expect("group");
    let visitor = app.visitor("pat").await;
    let gets = [
        "/admin/".to_owned(),
        "/admin/users/".to_owned(),
        format!("/admin/users/{}/", staff.id),
        format!("/admin/users/{}/end_sessions/", staff.id),
        "/admin/groups/".to_owned(),
        format!("/admin/groups/{}/", group.id),
        format!("/admin/groups/{}/delete/", group.id),
        "/admin/tokens/".to_owned(),
        "/admin/audit/".to_owned(),
    ];
    for path in &gets {
        let (status, html) = visitor.get(path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert!(html.contains("Staff only"), "{path}: {html}");
    }
    // With a valid CSRF token (from a page the user may see), every POST is still refused.
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            format!("/admin/users/{}/profile/", staff.id),
            vec![("email", "pwned@example.com")],
        ),
        (format!("/admin/users/{}/flags/", staff.id), vec![]),
        (
            format!("/admin/users/{}/flags/", pat.id),
            vec![
                ("is_active", "on"),
                ("is_staff", "on"),
                ("is_superuser", "on"),
            ],
        ),
        (
            format!("/admin/users/{}/groups/", pat.id),
            vec![("group_id", group.id.as_str())],
        ),
        (format!("/admin/users/{}/end_sessions/", staff.id), vec![]),
        ("/admin/groups/".to_owned(), vec![("name", "Mine")]),
        (
            format!("/admin/groups/{}/", group.id),
            vec![("name", "Renamed")],
        ),
        (
            format!("/admin/groups/{}/members/add/", group.id),
            vec![("login", "pat")],
        ),
        (format!("/admin/groups/{}/delete/", group.id), vec![]),
        ("/admin/tokens/revoke/".to_owned(), vec![("confirm", "yes")]),
    ];
    for (action, fields) in &posts {
        let response = visitor.submit("/o/applications/", action, fields).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{action}");
    }
    let pat = user(&app, &pat.id).await;
    assert!(!pat.is_staff && !pat.is_superuser && pat.is_active);
    let staff_now = user(&app, &staff.id).await;
    assert_eq!(staff_now.email, staff.email);
    assert!(staff_now.is_active && staff_now.sessions_valid_after.is_none());
    let (stored, members) = app
        .services
        .groups
        .find(&group.id)
        .await
        .expect("db")
        .expect("group kept");
    assert_eq!(stored.name, "Editors");
    assert!(members.is_empty());
    assert_eq!(app.services.groups.all().await.expect("db").len(), 1);
}

#[tokio::test]
async fn the_dashboard_counts_users_applications_tokens_and_logins() {
    let app = spawn_app().await;
    let (_, visitor) = admin(&app).await;
    let (status, before) = visitor.get("/admin/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(before.contains("aria-current=\"page\">Dashboard</a>"));
    assert!(before.contains("href=\"/admin/\" aria-current=\"page\">Admin</a>"));
    assert_eq!(stat(&before, "Users"), 1);
    assert_eq!(stat(&before, "Applications"), 0);
    assert_eq!(stat(&before, "Active tokens"), 0);
    assert_eq!(stat(&before, "Logins in the last 24&nbsp;h"), 1);
    assert!(before.contains("<td data-label=\"Event\"><code>login.success</code></td>"));

    app.create_user("kim").await;
    app.visitor("kim").await;
    let client = app.password_client(&[]).await;
    access_token(&app, &client, "kim").await;
    access_token(&app, &client, "kim").await;

    let (_, after) = visitor.get("/admin/").await;
    assert_eq!(stat(&after, "Users"), 2);
    assert_eq!(stat(&after, "Applications"), 1);
    assert_eq!(stat(&after, "Active tokens"), 2);
    // Two browser logins and two password grants.
    assert_eq!(stat(&after, "Logins in the last 24&nbsp;h"), 4);
    // The latest events come first and name the people involved.
    let events = listed_events(&after);
    assert!(events.len() <= 10, "{events:?}");
    assert_eq!(events[0], "token.issued", "{events:?}");
    assert!(after.contains(">kim</a>"));
}

#[tokio::test]
async fn users_are_searched_filtered_and_paged_keeping_the_filters() {
    let app = spawn_app_with("[console]\npage_size = 2").await;
    let (_, visitor) = admin(&app).await;
    for name in ["alice1", "alice2", "alice3", "bob"] {
        app.create_user(name).await;
    }
    let gone = app.create_user("alice4").await;
    app.deactivate(&gone.id).await;

    let (status, page1) = visitor.get("/admin/users/?q=ALICE&active=yes").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page1.contains(">alice1</a>") && page1.contains(">alice2</a>"));
    assert!(!page1.contains(">alice3</a>") && !page1.contains(">bob</a>"));
    assert!(page1.contains("Page 1 of 2 · 3 items"), "{page1}");
    assert!(page1.contains("value=\"ALICE\""));
    let next = next_href(&page1).expect("a next link");
    assert!(
        next.contains("q=ALICE") && next.contains("active=yes"),
        "{next}"
    );
    assert!(next.contains("page=2"), "{next}");

    let (_, page2) = visitor.get(&next).await;
    assert!(page2.contains(">alice3</a>"));
    assert!(!page2.contains(">alice1</a>") && !page2.contains(">alice4</a>"));
    assert!(next_href(&page2).is_none());
    assert!(page2.contains("rel=\"prev\""));

    let (_, deactivated) = visitor.get("/admin/users/?active=no").await;
    assert!(deactivated.contains(">alice4</a>"));
    assert!(deactivated.contains("Page 1 of 1 · 1 item"));
    assert!(deactivated.contains("badge off\">deactivated"));
    let (_, staff) = visitor.get("/admin/users/?staff=yes").await;
    assert!(staff.contains(">root</a>") && !staff.contains(">bob</a>"));
    assert!(staff.contains("1 item"));
    let (_, none) = visitor.get("/admin/users/?q=zz%25").await;
    assert!(none.contains("No user matches"));
}

#[tokio::test]
async fn an_admin_edits_a_profile_with_errors_shown_next_to_fields() {
    let app = spawn_app().await;
    let (_, visitor) = admin(&app).await;
    let lee = app.create_user("lee").await;
    app.create_user("max").await;
    let page = format!("/admin/users/{}/", lee.id);
    let action = format!("/admin/users/{}/profile/", lee.id);

    let response = visitor
        .submit(
            &page,
            &action,
            &[
                ("email", "max@example.com"),
                ("first_name", "Lee"),
                ("last_name", "Park"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(html.contains("id=\"email-error\">another user already has this email"));
    assert!(
        html.contains("value=\"Park\""),
        "the form keeps what was typed"
    );
    // Every field's message at once, not one per submit.
    let response = visitor
        .submit(
            &page,
            &action,
            &[("email", "not-an-email"), ("first_name", "Lee\u{7}")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(html.contains("id=\"email-error\""), "{html}");
    assert!(html.contains("id=\"first_name-error\""), "{html}");
    assert_eq!(user(&app, &lee.id).await.email, "lee@example.com");

    let response = visitor
        .submit(
            &page,
            &action,
            &[
                ("email", "Lee.Park@Example.com"),
                ("first_name", "Lee"),
                ("last_name", "Park"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let back = location(&response);
    assert_eq!(back, page, "post/redirect/get to the user's page");
    let (_, html) = visitor.get(&back).await;
    assert!(html.contains("<p class=\"notice\" role=\"status\">The profile was saved.</p>"));
    let stored = user(&app, &lee.id).await;
    assert_eq!(
        (stored.email.as_str(), stored.last_name.as_str()),
        ("lee.park@example.com", "Park")
    );
    assert_eq!(app.audit_events("user.profile_changed").await.len(), 1);
}

#[tokio::test]
async fn deactivating_a_user_ends_their_sessions_logins_and_tokens() {
    let app = spawn_app().await;
    let (root, visitor) = admin(&app).await;
    let dana = app.create_user("dana").await;
    let danas_browser = app.visitor("dana").await;
    let client = app.password_client(&[]).await;
    let token = access_token(&app, &client, "dana").await;
    assert!(is_active(&app, &client, &token).await);

    // Unticking "Active" asks first, and changes nothing until confirmed.
    let page = format!("/admin/users/{}/", dana.id);
    let action = format!("/admin/users/{}/flags/", dana.id);
    let response = visitor.submit(&page, &action, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let confirm = response.text().await.expect("html");
    assert!(confirm.contains("Deactivate dana?"), "{confirm}");
    assert!(confirm.contains("name=\"confirm\" value=\"yes\""));
    assert!(user(&app, &dana.id).await.is_active);
    assert!(is_active(&app, &client, &token).await);

    let response = visitor
        .post_with_csrf_of(&confirm, &action, &[("confirm", "yes")])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), page);
    let (_, html) = visitor.get(&location(&response)).await;
    assert!(html.contains("The account flags were saved."));
    assert!(html.contains("badge off\">deactivated"));
    assert!(!user(&app, &dana.id).await.is_active);

    // Her open browser session is over, she cannot sign in again, her token is dead.
    let response = danas_browser.get_response("/o/applications/").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with("/accounts/login/"));
    let response = app
        .anonymous_visitor()
        .submit(
            "/accounts/login/",
            "/accounts/login/",
            &[("username", "dana"), ("password", PASSWORD), ("next", "/")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(!is_active(&app, &client, &token).await);
    let response = app.get_with_bearer("/o/userinfo/", &token).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let events = app.audit_events("user.deactivated").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_id.as_deref(), Some(root.id.as_str()));
    assert_eq!(events[0].user_id.as_deref(), Some(dana.id.as_str()));

    // Reactivating needs no confirmation.
    let response = visitor.submit(&page, &action, &[("is_active", "on")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(user(&app, &dana.id).await.is_active);
    assert_eq!(app.audit_events("user.activated").await.len(), 1);
}

#[tokio::test]
async fn staff_and_superuser_flags_are_granted_and_admins_cannot_demote_themselves() {
    let app = spawn_app().await;
    let (root, visitor) = admin(&app).await;
    let ned = app.create_user("ned").await;
    let response = visitor
        .submit(
            &format!("/admin/users/{}/", ned.id),
            &format!("/admin/users/{}/flags/", ned.id),
            &[("is_active", "on"), ("is_staff", "on")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let stored = user(&app, &ned.id).await;
    assert!(stored.is_staff && !stored.is_superuser && stored.is_active);
    let (status, _) = app.visitor("ned").await.get("/admin/").await;
    assert_eq!(status, StatusCode::OK, "a new staff member may enter");

    let page = format!("/admin/users/{}/", root.id);
    let action = format!("/admin/users/{}/flags/", root.id);
    for fields in [
        vec![("is_staff", "on"), ("is_superuser", "on")],
        vec![("is_active", "on"), ("is_superuser", "on")],
    ] {
        let response = visitor.submit(&page, &action, &fields).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = response.text().await.expect("html");
        assert!(
            html.contains("id=\"flags-error\">you cannot deactivate yourself"),
            "{html}"
        );
    }
    let stored = user(&app, &root.id).await;
    assert!(stored.is_active && stored.is_staff);
    assert!(app.audit_events("user.deactivated").await.is_empty());
    let (status, _) = visitor.get("/admin/").await;
    assert_eq!(status, StatusCode::OK, "still signed in and staff");
}

#[tokio::test]
async fn only_superusers_change_staff_status_or_superusers() {
    let app = spawn_app().await;
    let (root, _) = admin(&app).await;
    // ned is staff, not superuser.
    let ned = app.create_user("ned").await;
    app.services
        .accounts
        .set_flags(
            &latchkey::audit::Actor::system(),
            &ned.id,
            latchkey::accounts::AccountFlags {
                is_active: true,
                is_staff: true,
                is_superuser: false,
            },
        )
        .await
        .expect("make staff");
    let pat = app.create_user("pat").await;
    let neds = app.visitor("ned").await;
    for (target, fields) in [
        // Promote someone, promote himself, touch a superuser.
        (&pat, vec![("is_active", "on"), ("is_staff", "on")]),
        (
            &ned,
            vec![
                ("is_active", "on"),
                ("is_staff", "on"),
                ("is_superuser", "on"),
            ],
        ),
        (&root, vec![("is_active", "on"), ("is_staff", "on")]),
    ] {
        let response = neds
            .submit(
                &format!("/admin/users/{}/", target.id),
                &format!("/admin/users/{}/flags/", target.id),
                &fields,
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{}",
            target.username
        );
        assert!(response
            .text()
            .await
            .expect("html")
            .contains("Only a superuser can"));
    }
    assert!(!user(&app, &pat.id).await.is_staff);
    assert!(!user(&app, &ned.id).await.is_superuser);
    assert!(user(&app, &root.id).await.is_superuser);
    // Plain staff work still works: ned deactivates pat (after the confirmation step).
    let page = format!("/admin/users/{}/", pat.id);
    let action = format!("/admin/users/{}/flags/", pat.id);
    let response = neds.submit(&page, &action, &[]).await;
    let confirm = response.text().await.expect("html");
    let response = neds
        .post_with_csrf_of(&confirm, &action, &[("confirm", "yes")])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(!user(&app, &pat.id).await.is_active);
}

#[tokio::test]
async fn sign_out_everywhere_revokes_tokens_and_ends_sessions() {
    let app = spawn_app().await;
    let (root, visitor) = admin(&app).await;
    let eve = app.create_user("eve").await;
    let eves_browser = app.visitor("eve").await;
    let client = app.password_client(&[]).await;
    let token = access_token(&app, &client, "eve").await;

    let (_, page) = visitor.get(&format!("/admin/users/{}/", eve.id)).await;
    assert!(page.contains(&format!("/admin/tokens/?user_id={}", eve.id)));
    assert!(page.contains(&format!("/admin/audit/?user_id={}", eve.id)));
    let confirm_path = format!("/admin/users/{}/end_sessions/", eve.id);
    assert!(page.contains(&format!("href=\"{confirm_path}\"")));
    let (status, confirm) = visitor.get(&confirm_path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(confirm.contains("Sign eve out everywhere?"));
    assert!(confirm.contains(&format!("action=\"{confirm_path}\"")));
    assert!(
        is_active(&app, &client, &token).await,
        "asking changes nothing"
    );

    let response = visitor
        .post_with_csrf_of(&confirm, &confirm_path, &[])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let back = location(&response);
    assert_eq!(back, format!("/admin/users/{}/", eve.id));
    let (_, html) = visitor.get(&back).await;
    assert!(html.contains("every session ended and 1 token revoked."));

    assert!(!is_active(&app, &client, &token).await);
    let response = eves_browser.get_response("/o/applications/").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let stored = user(&app, &eve.id).await;
    assert!(stored.is_active, "the account stays active");
    app.visitor("eve").await;
    let events = app.audit_events("user.signed_out_everywhere").await;
    assert_eq!(events[0].actor_id.as_deref(), Some(root.id.as_str()));
    let (status, _) = visitor.get("/admin/").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the admin's own session is untouched"
    );
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, visitor) = admin(&app).await;
    let fay = app.create_user("fay").await;
    let group = app
        .services
        .groups
        .create(&latchkey::audit::Actor::system(), "Editors", "")
        .await
        .expect("group");
    let client = app.password_client(&[]).await;
    let token = access_token(&app, &client, "fay").await;
    let (_, tokens_page) = visitor.get("/admin/tokens/").await;
    let ids = token_ids(&tokens_page);
    assert_eq!(ids.len(), 1);
    let tick = format!("token:{}", ids[0]);
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            format!("/admin/users/{}/flags/", fay.id),
            vec![("confirm", "yes")],
        ),
        (
            format!("/admin/users/{}/profile/", fay.id),
            vec![("email", "x@example.com")],
        ),
        (format!("/admin/users/{}/end_sessions/", fay.id), vec![]),
        ("/admin/groups/".to_owned(), vec![("name", "New")]),
        (
            format!("/admin/groups/{}/", group.id),
            vec![("name", "Renamed")],
        ),
        (
            format!("/admin/groups/{}/members/add/", group.id),
            vec![("login", "fay")],
        ),
        (format!("/admin/groups/{}/delete/", group.id), vec![]),
        (
            "/admin/tokens/revoke/".to_owned(),
            vec![(tick.as_str(), "on"), ("confirm", "yes")],
        ),
    ];
    for (action, fields) in &posts {
        let response = visitor
            .client
            .post(visitor.url(action))
            .form(fields)
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{action}");
        let mut wrong = fields.clone();
        wrong.push(("csrf_token", "forged"));
        let response = visitor
            .client
            .post(visitor.url(action))
            .form(&wrong)
            .send()
            .await
            .expect("POST");
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{action} (forged)"
        );
    }
    let stored = user(&app, &fay.id).await;
    assert!(stored.is_active && stored.sessions_valid_after.is_none());
    assert_eq!(stored.email, "fay@example.com");
    let groups = app.services.groups.all().await.expect("db");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].name, "Editors");
    assert!(app
        .services
        .groups
        .of_user(&fay.id)
        .await
        .expect("db")
        .is_empty());
    assert!(is_active(&app, &client, &token).await);
}

#[tokio::test]
async fn groups_are_created_renamed_filled_emptied_and_deleted() {
    let app = spawn_app().await;
    let (root, visitor) = admin(&app).await;
    let fay = app.create_user("fay").await;
    let gus = app.create_user("gus").await;

    let response = visitor
        .submit(
            "/admin/groups/",
            "/admin/groups/",
            &[("name", "  Editors "), ("description", "Write the news")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let id = group_id(&app, "Editors").await.expect("created, trimmed");
    let page = format!("/admin/groups/{id}/");
    assert_eq!(location(&response), page);
    let (_, html) = visitor.get(&location(&response)).await;
    assert!(html.contains("The group was created."));
    assert!(html.contains("Write the news"));

    // Names are unique regardless of case.
    let response = visitor
        .submit("/admin/groups/", "/admin/groups/", &[("name", "EDITORS")])
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(html.contains("id=\"name-error\">another group already has this name"));
    assert!(html.contains("value=\"EDITORS\""));
    let response = visitor
        .submit("/admin/groups/", "/admin/groups/", &[("name", "")])
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.expect("html").contains("name-error"));
    assert_eq!(app.services.groups.all().await.expect("db").len(), 1);

    let response = visitor
        .submit(
            &page,
            &page,
            &[("name", "Writers"), ("description", "Words")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), page);
    let readers = app
        .services
        .groups
        .create(&latchkey::audit::Actor::system(), "Readers", "")
        .await
        .expect("group");
    let readers_page = format!("/admin/groups/{}/", readers.id);
    let response = visitor
        .submit(&readers_page, &readers_page, &[("name", "wRITERS")])
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response
        .text()
        .await
        .expect("html")
        .contains("another group already has this name"));

    // Members by username or email; an unknown name is an error next to the field.
    let add = format!("{page}members/add/");
    for login in ["fay", "GUS@example.com"] {
        let response = visitor.submit(&page, &add, &[("login", login)]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{login}");
        assert_eq!(location(&response), page);
        let (_, html) = visitor.get(&page).await;
        assert!(html.contains("The member was added."), "{login}");
    }
    let response = visitor.submit(&page, &add, &[("login", "fay")]).await;
    assert_eq!(location(&response), page);
    let (_, html) = visitor.get(&page).await;
    assert!(html.contains("That user is already a member."));
    let response = visitor.submit(&page, &add, &[("login", "nobody")]).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("html");
    assert!(html.contains("id=\"login-error\">no user has this username or email"));
    assert!(html.contains("value=\"nobody\""));
    let (_, list) = visitor.get("/admin/groups/").await;
    assert!(list.contains(">Writers</a>"));
    assert!(
        list.contains("<td data-label=\"Members\" class=\"num\">2</td>"),
        "{list}"
    );
    let (_, list) = visitor.get("/admin/groups/?q=READ").await;
    assert!(list.contains(">Readers</a>") && !list.contains(">Writers</a>"));

    let remove = format!("{page}members/{}/remove/", fay.id);
    let (_, html) = visitor.get(&page).await;
    assert!(html.contains(&format!("action=\"{remove}\"")));
    let response = visitor.post_with_csrf_of(&html, &remove, &[]).await;
    assert_eq!(location(&response), page);
    let (_, html) = visitor.get(&page).await;
    assert!(html.contains("The member was removed."));
    let (group, members) = app
        .services
        .groups
        .find(&id)
        .await
        .expect("db")
        .expect("group");
    assert_eq!(
        (group.name.as_str(), group.description.as_str()),
        ("Writers", "Words")
    );
    assert_eq!(
        members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [gus.id.as_str()]
    );

    // Deleting asks first.
    let delete = format!("{page}delete/");
    let (status, confirm) = visitor.get(&delete).await;
    assert_eq!(status, StatusCode::OK);
    assert!(confirm.contains("Delete the group “Writers”?"));
    assert!(confirm.contains("together with its 1 membership;"));
    assert!(group_id(&app, "Writers").await.is_some());
    let response = visitor.post_with_csrf_of(&confirm, &delete, &[]).await;
    assert_eq!(location(&response), "/admin/groups/");
    let (_, html) = visitor.get("/admin/groups/").await;
    assert!(html.contains("The group was deleted."));
    assert!(group_id(&app, "Writers").await.is_none());
    let (status, _) = visitor.get(&page).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    for (event, count) in [
        ("group.created", 2),
        ("group.updated", 1),
        ("group.member_added", 2),
        ("group.member_removed", 1),
        ("group.deleted", 1),
    ] {
        let events = app.audit_events(event).await;
        assert_eq!(events.len(), count, "{event}");
        let by_admin = events
            .iter()
            .filter(|e| e.actor_id.as_deref() == Some(root.id.as_str()))
            .count();
        let expected = if event == "group.created" { 1 } else { count };
        assert_eq!(by_admin, expected, "{event}");
    }
}

#[tokio::test]
async fn a_users_page_adds_them_to_groups_and_removes_them() {
    let app = spawn_app().await;
    let (_, visitor) = admin(&app).await;
    let ida = app.create_user("ida").await;
    let actor = latchkey::audit::Actor::system();
    let ops = app
        .services
        .groups
        .create(&actor, "Ops", "")
        .await
        .expect("group");
    app.services
        .groups
        .create(&actor, "Sales", "")
        .await
        .expect("group");
    let page = format!("/admin/users/{}/", ida.id);
    let (_, html) = visitor.get(&page).await;
    assert!(html.contains("belongs to no group"));
    assert!(html.contains(&format!("<option value=\"{}\">Ops</option>", ops.id)));

    let response = visitor
        .post_with_csrf_of(
            &html,
            &format!("{page}groups/"),
            &[("group_id", ops.id.as_str())],
        )
        .await;
    assert_eq!(location(&response), page);
    let (_, html) = visitor.get(&location(&response)).await;
    assert!(html.contains("The user was added to the group."));
    assert!(html.contains(&format!("href=\"/admin/groups/{}/\">Ops</a>", ops.id)));
    assert!(!html.contains(&format!("<option value=\"{}\">", ops.id)));
    let mine = app.services.groups.of_user(&ida.id).await.expect("db");
    assert_eq!(mine.len(), 1);

    let remove = format!("{page}groups/{}/remove/", ops.id);
    let response = visitor.post_with_csrf_of(&html, &remove, &[]).await;
    assert_eq!(location(&response), page);
    assert!(app
        .services
        .groups
        .of_user(&ida.id)
        .await
        .expect("db")
        .is_empty());

    let response = visitor
        .post_with_csrf_of(
            &html,
            &format!("{page}groups/"),
            &[("group_id", "no-such-group")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (status, _) = visitor.get("/admin/users/no-such-user/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tokens_are_filtered_by_user_and_client_and_revoked_after_confirmation() {
    let app = spawn_app().await;
    let (_, visitor) = admin(&app).await;
    let amy = app.create_user("amy").await;
    app.create_user("ben").await;
    let first = app.password_client(&[]).await;
    let second = app.password_client(&[]).await;
    let amy_first = access_token(&app, &first, "amy").await;
    let amy_second = access_token(&app, &second, "amy").await;
    let ben_first = access_token(&app, &first, "ben").await;

    let (_, all) = visitor.get("/admin/tokens/").await;
    assert_eq!(token_ids(&all).len(), 3);
    assert!(all.contains("Page 1 of 1 · 3 items"));

    // The form takes a username and the list is then addressed by id.
    let response = visitor
        .get_response("/admin/tokens/?user=amy&client_id=")
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&response),
        format!("/admin/tokens/?user_id={}", amy.id)
    );
    let (_, amys) = visitor.get(&location(&response)).await;
    assert_eq!(token_ids(&amys).len(), 2);
    assert!(
        amys.contains("value=\"amy\""),
        "the field shows the username"
    );
    assert!(!amys.contains(">ben</a>"));
    let (_, unknown) = visitor.get("/admin/tokens/?user=nobody").await;
    assert!(unknown.contains("id=\"user-error\">no user has this username or email"));
    assert!(token_ids(&unknown).is_empty());

    let filtered = format!("/admin/tokens/?user_id={}&client_id={}", amy.id, first.0);
    let (_, html) = visitor.get(&filtered).await;
    let ids = token_ids(&html);
    assert_eq!(ids.len(), 1);
    let (_, by_client) = visitor
        .get(&format!("/admin/tokens/?client_id={}", first.0))
        .await;
    assert_eq!(token_ids(&by_client).len(), 2);
    assert!(by_client.contains(">amy</a>") && by_client.contains(">ben</a>"));
    assert!(
        by_client.contains(">Test confidential app</a>"),
        "client names"
    );

    // Nothing ticked: back with a notice. Ticked: a confirmation first.
    let response = visitor
        .post_with_csrf_of(&html, "/admin/tokens/revoke/", &[])
        .await;
    assert_eq!(location(&response), "/admin/tokens/");
    let (_, listed) = visitor.get("/admin/tokens/").await;
    assert!(listed.contains("No token was selected"));
    let tick = format!("token:{}", ids[0]);
    let response = visitor
        .post_with_csrf_of(
            &html,
            "/admin/tokens/revoke/",
            &[
                (tick.as_str(), "on"),
                ("user_id", amy.id.as_str()),
                ("client_id", first.0.as_str()),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let confirm = response.text().await.expect("html");
    assert!(confirm.contains("Revoke 1 token?"), "{confirm}");
    assert!(
        is_active(&app, &first, &amy_first).await,
        "asking changes nothing"
    );
    let response = visitor
        .post_with_csrf_of(
            &confirm,
            "/admin/tokens/revoke/",
            &[
                (tick.as_str(), "on"),
                ("user_id", amy.id.as_str()),
                ("client_id", first.0.as_str()),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let back = location(&response);
    assert_eq!(
        back,
        format!("/admin/tokens/?user_id={}&client_id={}", amy.id, first.0)
    );
    let (_, html) = visitor.get(&back).await;
    assert!(html.contains("1 token revoked."));
    assert!(token_ids(&html).is_empty());

    assert!(!is_active(&app, &first, &amy_first).await);
    assert!(is_active(&app, &second, &amy_second).await);
    assert!(is_active(&app, &first, &ben_first).await);
    let events = app.audit_events("token.revoked").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].user_id.as_deref(), Some(amy.id.as_str()));
}

#[tokio::test]
async fn the_audit_log_filters_by_event_prefix_user_client_and_ip() {
    let app = spawn_app_with("[console]\npage_size = 3").await;
    let (root, visitor) = admin(&app).await;
    let cy = app.create_user("cy").await;
    app.visitor("cy").await;
    let response = app
        .anonymous_visitor()
        .submit(
            "/accounts/login/",
            "/accounts/login/",
            &[("username", "cy"), ("password", "wrong"), ("next", "/")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let (status, html) = visitor.get("/admin/audit/?event=login.").await;
    assert_eq!(status, StatusCode::OK);
    let events = listed_events(&html);
    assert_eq!(events, ["login.failure", "login.success", "login.success"]);
    assert!(
        html.contains("<td data-label=\"IP address\"><span class=\"mono\">127.0.0.1</span></td>")
    );
    assert!(html.contains("class=\"muted\">anonymous</span>"));

    let (_, exact) = visitor.get("/admin/audit/?event=login").await;
    assert!(
        listed_events(&exact).is_empty(),
        "without a dot it is a name"
    );
    assert!(exact.contains("No events match these filters."));

    // By user: events they caused or that were about them, paged with the filter kept.
    let response = visitor.get_response("/admin/audit/?event=&user=cy").await;
    assert_eq!(
        location(&response),
        format!("/admin/audit/?user_id={}", cy.id)
    );
    let (_, mine) = visitor.get(&location(&response)).await;
    assert_eq!(
        listed_events(&mine),
        ["login.failure", "login.success", "user.created"]
    );
    assert!(mine.contains(">cy</a>") && !mine.contains(">root</a>"));
    assert!(
        mine.contains("class=\"muted\">system</span>"),
        "the CLI-like creator"
    );
    let (_, only) = visitor
        .get(&format!("/admin/audit/?event=login.&user_id={}", cy.id))
        .await;
    assert_eq!(listed_events(&only), ["login.failure", "login.success"]);
    assert!(
        !only.contains("login: cy"),
        "what was typed at the login is not kept, even for a known account"
    );

    let (_, rooted) = visitor
        .get(&format!("/admin/audit/?user_id={}", root.id))
        .await;
    assert!(rooted.contains("Page 1 of 2"), "{rooted}");
    let next = next_href(&rooted).expect("a next page");
    assert!(next.contains(&format!("user_id={}", root.id)), "{next}");
    let (_, page2) = visitor.get(&next).await;
    assert_eq!(
        listed_events(&page2).len(),
        1,
        "four events about root, three a page"
    );

    let (_, by_ip) = visitor.get("/admin/audit/?ip=192.0.2.1").await;
    assert!(listed_events(&by_ip).is_empty());
    let (_, by_client) = visitor.get("/admin/audit/?client_id=nope").await;
    assert!(listed_events(&by_client).is_empty());
}

//! Storage of linked upstream accounts (issue 11): one link per (provider, subject) and per
//! (user, provider), found by subject and never by email, gone with the user.

use latchkey::db::upstream_links::{self, LinkRow};
use latchkey::db::{self, DbError};

use crate::helpers::spawn_app;

pub(crate) fn link(id: &str, user_id: &str, provider: &str, subject: &str) -> LinkRow {
    LinkRow {
        id: id.to_owned(),
        user_id: user_id.to_owned(),
        provider_id: provider.to_owned(),
        issuer: format!("https://{provider}.example"),
        subject: subject.to_owned(),
        username: "ann#0".to_owned(),
        display_name: "Ann".to_owned(),
        email: Some("ann@example.com".to_owned()),
        email_verified: true,
        access_token_sealed: None,
        refresh_token_sealed: None,
        token_expires_at: None,
        created_at: db::now(),
        last_login_at: None,
        picture: Some(format!("https://{provider}.example/{id}.png")),
    }
}

#[tokio::test]
async fn a_link_is_unique_per_subject_and_per_provider_and_goes_with_its_user() {
    let app = spawn_app().await;
    let ann = app.create_user("ann").await;
    let bob = app.create_user("bob").await;
    let (a, b) = (ann.id.clone(), bob.id.clone());
    let outcome = app
        .services
        .db
        .write(move |conn| -> Result<_, DbError> {
            upstream_links::insert(conn, &link("l1", &a, "discord", "80351110224678912"))?;
            upstream_links::insert(conn, &link("l2", &a, "google", "1234567890"))?;
            // The same Discord account for another user, and a second Discord link for ann.
            let same_subject =
                upstream_links::insert(conn, &link("l3", &b, "discord", "80351110224678912"))
                    .is_err();
            let second_for_user =
                upstream_links::insert(conn, &link("l4", &a, "discord", "1")).is_err();
            let found = upstream_links::find(
                conn,
                "discord",
                "https://discord.example",
                "80351110224678912",
            )?;
            let other_provider = upstream_links::find(
                conn,
                "google",
                "https://google.example",
                "80351110224678912",
            )?;
            // The same subject under another issuer (the provider's issuer changed): no match.
            let other_issuer = upstream_links::find(
                conn,
                "discord",
                "https://elsewhere.example",
                "80351110224678912",
            )?;
            assert!(other_issuer.is_none());
            upstream_links::touch(
                conn,
                "l1",
                db::now(),
                ("ann", "Ann B", Some("new@example.com"), false, None),
            )?;
            let touched = upstream_links::find(
                conn,
                "discord",
                "https://discord.example",
                "80351110224678912",
            )?;
            let mine = upstream_links::for_user(conn, &a)?;
            let removed = upstream_links::delete(conn, &a, "google")?;
            let removed_again = upstream_links::delete(conn, &a, "google")?;
            Ok((
                same_subject,
                second_for_user,
                found,
                other_provider,
                touched,
                mine,
                removed,
                removed_again,
            ))
        })
        .await
        .expect("storage");
    let (same_subject, second_for_user, found, other_provider, touched, mine, removed, again) =
        outcome;
    assert!(same_subject, "one user per upstream account");
    assert!(second_for_user, "one link per provider per user");
    assert_eq!(found.expect("found by subject").user_id, ann.id);
    assert!(
        other_provider.is_none(),
        "a subject belongs to its provider"
    );
    let touched = touched.expect("still there");
    assert_eq!(
        (
            touched.username.as_str(),
            touched.email.as_deref(),
            touched.email_verified
        ),
        ("ann", Some("new@example.com"), false)
    );
    assert!(touched.last_login_at.is_some());
    assert_eq!(
        mine.iter()
            .map(|l| l.provider_id.as_str())
            .collect::<Vec<_>>(),
        ["discord", "google"]
    );
    assert!(removed && !again);

    // Deleting the user deletes the link.
    app.services
        .accounts
        .delete_user(&latchkey::audit::Actor::system(), &ann.id)
        .await
        .expect("deleted");
    let left = app
        .services
        .db
        .read(|conn| {
            upstream_links::find(
                conn,
                "discord",
                "https://discord.example",
                "80351110224678912",
            )
            .map_err(DbError::from)
        })
        .await
        .expect("db");
    assert!(left.is_none());
}

/// Stores a Discord link for `user_id` directly (the sign-in that makes one is tested in
/// upstream_discord.rs).
async fn linked(app: &crate::helpers::TestApp, id: &str, user_id: &str) {
    let row = link(
        id,
        user_id,
        "discord",
        &format!("8035111022467891{}", id.len()),
    );
    app.services
        .db
        .write(move |conn| upstream_links::insert(conn, &row).map_err(DbError::from))
        .await
        .expect("link");
}

#[tokio::test]
async fn the_console_shows_a_users_links_and_an_admin_who_may_change_the_account_removes_one() {
    let app = crate::helpers::spawn_app_with(
        "[upstream.discord]\nkind = \"discord\"\nclient_id = \"1\"\nclient_secret = \"s\"",
    )
    .await;
    let root = app.create_staff("root").await;
    let staff = app.create_plain_staff("sam").await;
    let ann = app.create_user("ann").await;
    linked(&app, "l-ann", &ann.id).await;
    linked(&app, "l-sam-x", &staff.id).await;

    // A superuser sees the link with the provider's label and removes it.
    let admin = app.visitor("root").await;
    let page_path = format!("/admin/users/{}/", ann.id);
    let (status, page) = admin.get(&page_path).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(page.contains("Linked accounts"), "{page}");
    assert!(
        page.contains("<td data-label=\"Provider\">Discord</td>"),
        "{page}"
    );
    assert!(page.contains("Ann (ann#0)"), "{page}");
    assert!(
        page.contains(r#"<img class="avatar" src="https://discord.example/l-ann.png""#),
        "the picture at the provider: {page}"
    );
    let remove = format!("/admin/users/{}/links/discord/remove/", ann.id);
    let response = admin.post_with_csrf_of(&page, &remove, &[]).await;
    assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER);
    let links = app.services.upstream.links_of(&ann.id).await.expect("db");
    assert!(links.is_empty());
    let events = app.audit_events("upstream.unlinked").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_id.as_deref(), Some(root.id.as_str()));
    assert_eq!(events[0].user_id.as_deref(), Some(ann.id.as_str()));

    // A staff member who is not a superuser may not touch another staff member's links: the
    // page offers no button, and the request itself is refused by the service.
    let sam_page = format!("/admin/users/{}/", staff.id);
    let other = app.create_plain_staff("tia").await;
    let tia = app.visitor("tia").await;
    let (_, page) = tia.get(&sam_page).await;
    assert!(!page.contains("/links/discord/remove/"), "{page}");
    let (_, own) = tia.get(&format!("/admin/users/{}/", other.id)).await;
    let response = tia
        .post_with_csrf_of(
            &own,
            &format!("/admin/users/{}/links/discord/remove/", staff.id),
            &[],
        )
        .await;
    assert_eq!(response.status(), reqwest::StatusCode::FORBIDDEN);
    assert_eq!(
        app.services
            .upstream
            .links_of(&staff.id)
            .await
            .expect("db")
            .len(),
        1
    );
    // Nor may an ordinary user, whatever they post.
    let mallory = app.create_user("mallory").await;
    linked(&app, "l-mal", &mallory.id).await;
    let user = app.visitor("mallory").await;
    let (_, account) = user.get("/account/").await;
    let response = user
        .post_with_csrf_of(
            &account,
            &format!("/admin/users/{}/links/discord/remove/", staff.id),
            &[],
        )
        .await;
    assert!(
        response.status() == reqwest::StatusCode::FORBIDDEN
            || response.status() == reqwest::StatusCode::SEE_OTHER
                && !crate::helpers::location(&response).contains("/admin/"),
        "{}",
        response.status()
    );
    assert_eq!(
        app.services
            .upstream
            .links_of(&staff.id)
            .await
            .expect("db")
            .len(),
        1
    );
}

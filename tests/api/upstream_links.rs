//! Storage of linked upstream accounts (issue 11): one link per (provider, subject) and per
//! (user, provider), found by subject and never by email, gone with the user.

use latchkey::db::upstream_links::{self, LinkRow};
use latchkey::db::{self, DbError};

use crate::helpers::spawn_app;

fn link(id: &str, user_id: &str, provider: &str, subject: &str) -> LinkRow {
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
                ("ann", "Ann B", Some("new@example.com"), false),
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

//! The admin console's user actions (issue 10 item 16): a password-reset email, the
//! verification email again, deleting a user — each over HTTP, and the deletion rule (a staff
//! member deletes neither an admin nor themselves) refused by the page and by the service.

use std::time::Duration;

use latchkey::accounts::admin::UserActionError;
use latchkey::accounts::privileges::NotAllowed;
use latchkey::audit::Actor;
use reqwest::StatusCode;

use crate::helpers::{location, spawn_app, spawn_app_with, spec, TestApp};

async fn mark_unverified(app: &TestApp, user_id: &str) {
    let id = user_id.to_owned();
    app.services
        .db
        .write(move |conn| {
            latchkey::db::users::mark_email_unverified(conn, &id)
                .map_err(latchkey::db::DbError::from)
        })
        .await
        .expect("unverify");
}

#[tokio::test]
async fn an_admin_emails_a_password_reset_link_that_works() {
    let app = spawn_app().await;
    app.create_staff("root").await;
    let visitor = app.visitor("root").await;
    let pat = app.create_user("pat").await;
    let page = format!("/admin/users/{}/", pat.id);
    let (status, html) = visitor.get(&page).await;
    assert_eq!(status, StatusCode::OK);
    let action = format!("{page}send_password_reset/");
    assert!(html.contains(&format!("action=\"{action}\"")), "{html}");
    assert!(html.contains("Send password-reset email"));

    let response = visitor.post_with_csrf_of(&html, &action, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), page);
    let (_, html) = visitor.get(&page).await;
    assert!(
        html.contains("A password-reset link was emailed to pat@example.com."),
        "{html}"
    );
    let email = app.last_email_to("pat@example.com");
    assert_eq!(email.subject, "Reset your password");
    let link = email
        .link_starting_with(&app.url("/accounts/password-reset-confirm/"))
        .expect("a reset link");
    let path = link
        .strip_prefix(&app.url(""))
        .expect("a link to this server");
    let (status, _) = app.anonymous_visitor().get(path).await;
    assert!(status.is_success() || status.is_redirection(), "{status}");
    let events = app.audit_events("password_reset.requested").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].user_id.as_deref(), Some(pat.id.as_str()));

    // A second request at once waits out the address's cooldown: no flood of emails.
    let (_, html) = visitor.get(&page).await;
    let response = visitor.post_with_csrf_of(&html, &action, &[]).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.emails_to("pat@example.com").len(), 1);
}

#[tokio::test]
async fn an_admin_resends_the_verification_email_of_an_unverified_address_only() {
    let app = spawn_app_with("[accounts]\nemail_verification = \"mandatory\"").await;
    app.create_staff("root").await;
    let visitor = app.visitor("root").await;
    let pat = app.create_user("pat").await;
    let page = format!("/admin/users/{}/", pat.id);
    let action = format!("{page}resend_verification/");
    let (_, html) = visitor.get(&page).await;
    assert!(
        !html.contains("Resend verification email"),
        "verified already"
    );
    let response = visitor.post_with_csrf_of(&html, &action, &[]).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(app.emails_to("pat@example.com").is_empty());

    mark_unverified(&app, &pat.id).await;
    let (_, html) = visitor.get(&page).await;
    assert!(html.contains("Resend verification email"));
    let response = visitor.post_with_csrf_of(&html, &action, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (_, html) = visitor.get(&location(&response)).await;
    assert!(html.contains("A new verification email was sent to pat@example.com."));
    let email = app.last_email_to("pat@example.com");
    assert!(email.code().is_some(), "a code");
    assert!(email
        .link_starting_with(&app.url("/accounts/activate/"))
        .is_some());
    assert_eq!(app.audit_events("email.verification_sent").await.len(), 1);
}

#[tokio::test]
async fn deleting_a_user_takes_their_tokens_sessions_and_memberships_in_one_go() {
    let app = spawn_app().await;
    let root = app.create_staff("root").await;
    let visitor = app.visitor("root").await;
    let pat = app.create_user("pat").await;
    let pats_browser = app.visitor("pat").await;
    let (client, secret) = app.register(&spec("confidential", &["password"])).await;
    let secret = secret.expect("secret");
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", "pat"),
                ("password", crate::helpers::PASSWORD),
                ("scope", "profile"),
            ],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // An application pat registered in the portal goes with pat.
    let (owned, _) = app
        .register(&latchkey::clients::ClientSpec {
            owner_id: Some(pat.id.clone()),
            ..spec("public", &["authorization_code"])
        })
        .await;
    let group = app
        .services
        .groups
        .create(&Actor::system(), "Ops", "")
        .await
        .expect("group");
    app.services
        .groups
        .add_member(&Actor::system(), &group.id, "pat")
        .await
        .expect("member");

    let page = format!("/admin/users/{}/", pat.id);
    let delete = format!("{page}delete/");
    let (_, html) = visitor.get(&page).await;
    assert!(html.contains(&format!("href=\"{delete}\"")));
    let (status, confirm) = visitor.get(&delete).await;
    assert_eq!(status, StatusCode::OK);
    assert!(confirm.contains("Delete pat?"));
    assert!(
        confirm.contains("The 1 application they registered is deleted too"),
        "{confirm}"
    );
    // The one confirmation page: the action first, then Cancel.
    let button = confirm.find(">Delete user</button>").expect("button");
    let cancel = confirm.find(">Cancel</a>").expect("cancel");
    assert!(button < cancel);
    assert!(app
        .services
        .accounts
        .find(pat.id.clone())
        .await
        .expect("db")
        .is_some());

    let response = visitor.post_with_csrf_of(&confirm, &delete, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/admin/users/");
    let (_, list) = visitor.get("/admin/users/").await;
    assert!(list.contains("The user pat was deleted."));
    assert!(app
        .services
        .accounts
        .find(pat.id.clone())
        .await
        .expect("db")
        .is_none());
    let (_, members) = app
        .services
        .groups
        .find(&group.id)
        .await
        .expect("db")
        .expect("group");
    assert!(members.is_empty());
    let events = app.audit_events("user.deleted").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_id.as_deref(), Some(root.id.as_str()));
    assert!(
        events[0].details.contains("\"username\":\"pat\""),
        "{}",
        events[0].details
    );
    let tokens = app
        .services
        .oauth
        .list_tokens(
            latchkey::db::tokens::TokenFilter {
                user_id: Some(pat.id.clone()),
                client_id: None,
            },
            latchkey::domain::PageRequest::new(None, 10),
        )
        .await
        .expect("db");
    assert_eq!(tokens.total, 0, "the tokens went with the account");
    assert!(app
        .services
        .clients
        .find(owned.id())
        .await
        .expect("db")
        .is_none());
    assert!(app
        .services
        .clients
        .find(client.id())
        .await
        .expect("db")
        .is_some());
    let deleted = app.audit_events("client.deleted").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].client_id.as_deref(), Some(owned.id()));
    // Pat's browser is signed out; the user's page is gone.
    let response = pats_browser.get_response("/account/").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (status, _) = visitor.get(&page).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn staff_delete_neither_an_admin_nor_themselves_on_the_page_or_through_the_service() {
    let app = spawn_app().await;
    let ned = app.create_plain_staff("ned").await;
    let other = app.create_staff("olga").await;
    let visitor = app.visitor("ned").await;

    // The page offers neither deletion.
    for target in [&ned, &other] {
        let (_, html) = visitor.get(&format!("/admin/users/{}/", target.id)).await;
        assert!(!html.contains("/delete/\""), "{}", target.username);
    }
    // The POSTs are refused, whatever the page showed.
    let (_, html) = visitor.get("/admin/").await;
    for target in [&ned, &other] {
        let response = visitor
            .post_with_csrf_of(&html, &format!("/admin/users/{}/delete/", target.id), &[])
            .await;
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{}",
            target.username
        );
    }
    // And the service refuses them to any caller.
    let accounts = &app.services.accounts;
    let as_ned = Actor::user(ned.id.clone(), None);
    assert!(matches!(
        accounts.delete_user(&as_ned, &other.id).await,
        Err(UserActionError::Forbidden(NotAllowed::AdminAccount))
    ));
    assert!(matches!(
        accounts.delete_user(&as_ned, &ned.id).await,
        Err(UserActionError::Forbidden(NotAllowed::OwnAccount))
    ));
    assert!(matches!(
        accounts.send_password_reset_for(&as_ned, &other.id).await,
        Err(UserActionError::Forbidden(NotAllowed::AdminAccount))
    ));
    // An ordinary user has no admin powers through the service either.
    let pat = app.create_user("pat").await;
    let quinn = app.create_user("quinn").await;
    assert!(matches!(
        accounts
            .delete_user(&Actor::user(pat.id.clone(), None), &quinn.id)
            .await,
        Err(UserActionError::Forbidden(NotAllowed::NotStaff))
    ));
    for user in [&ned, &other, &pat, &quinn] {
        assert!(accounts.find(user.id.clone()).await.expect("db").is_some());
    }
    // Staff delete an ordinary account.
    accounts
        .delete_user(&as_ned, &quinn.id)
        .await
        .expect("deleted");
    assert!(accounts.find(quinn.id.clone()).await.expect("db").is_none());
}

/// Deleting a user while a refresh of theirs is in flight (the race of `races.rs`, with the
/// deletion as the revoking operation): round after round, with the two requests' start times
/// swept against each other, neither fails with a 5xx and no token of the user is left active.
/// The deletion locks the user's row as minting does, so on PostgreSQL one waits for the other;
/// on SQLite (one writer) the test passes without exercising anything new.
#[tokio::test]
async fn a_refresh_racing_a_deletion_leaves_no_live_token() {
    let app = spawn_app().await;
    app.create_staff("root").await;
    let admin = app.visitor("root").await;
    let (client, secret) = app
        .register(&spec("confidential", &["password", "refresh_token"]))
        .await;
    let basic = (client.id().to_owned(), secret.expect("secret"));
    for round in 0..12u64 {
        let name = format!("rae{round}");
        let user = app.create_user(&name).await;
        let (status, body) = app
            .post_token(
                &[
                    ("grant_type", "password"),
                    ("username", name.as_str()),
                    ("password", crate::helpers::PASSWORD),
                    ("scope", "profile offline_access"),
                ],
                Some((&basic.0, &basic.1)),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let access = body["access_token"].as_str().expect("access").to_owned();
        let refresh = body["refresh_token"].as_str().expect("refresh").to_owned();
        let page = format!("/admin/users/{}/delete/", user.id);
        let (_, confirm) = admin.get(&page).await;
        let delay = Duration::from_millis(round % 4);
        let refreshing = async {
            if round % 2 == 0 {
                tokio::time::sleep(delay).await;
            }
            app.post_token(
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                ],
                Some((&basic.0, &basic.1)),
            )
            .await
        };
        let deleting = async {
            if round % 2 == 1 {
                tokio::time::sleep(delay).await;
            }
            admin.post_with_csrf_of(&confirm, &page, &[]).await.status()
        };
        let ((status, body), deleted) = tokio::join!(refreshing, deleting);
        assert_eq!(deleted, StatusCode::SEE_OTHER, "round {round}");
        let mut tokens = vec![access, refresh];
        match status {
            StatusCode::OK => {
                for name in ["access_token", "refresh_token"] {
                    tokens.push(body[name].as_str().expect("token").to_owned());
                }
            }
            StatusCode::BAD_REQUEST => assert_eq!(body["error"], "invalid_grant", "{body}"),
            other => panic!("round {round}: the refresh failed with {other}: {body}"),
        }
        for token in tokens {
            let (status, body) = app
                .post_oauth(
                    "/o/introspect/",
                    &[("token", token.as_str())],
                    Some((&basic.0, &basic.1)),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(
                body["active"], false,
                "round {round}: a token outlived its user"
            );
        }
    }
}

/// Registering an application while its owner is being deleted (the portal's register form
/// against the console's delete): round after round, with the two start times swept against
/// each other, the registration is refused or its application goes with the owner — never
/// left behind without an owner (which would make it an operator's application, trusted by
/// the endpoints), and never a 5xx. On SQLite (one writer) it passes without exercising
/// anything new.
#[tokio::test]
async fn an_application_registered_during_its_owners_deletion_does_not_outlive_them() {
    let app = spawn_app().await;
    app.create_staff("root").await;
    let admin = app.visitor("root").await;
    for round in 0..12u64 {
        let name = format!("reg{round}");
        let user = app.create_user(&name).await;
        let page = format!("/admin/users/{}/delete/", user.id);
        let (_, confirm) = admin.get(&page).await;
        let delay = Duration::from_millis(round % 4);
        let owner = user.id.clone();
        let registering = async {
            if round % 2 == 0 {
                tokio::time::sleep(delay).await;
            }
            app.services
                .clients
                .register(
                    &Actor::user(owner.clone(), None),
                    &latchkey::clients::ClientSpec {
                        owner_id: Some(owner.clone()),
                        name: format!("Racing {round}"),
                        ..spec("public", &["authorization_code"])
                    },
                )
                .await
        };
        let deleting = async {
            if round % 2 == 1 {
                tokio::time::sleep(delay).await;
            }
            admin.post_with_csrf_of(&confirm, &page, &[]).await.status()
        };
        let (registered, deleted) = tokio::join!(registering, deleting);
        assert_eq!(deleted, StatusCode::SEE_OTHER, "round {round}");
        match registered {
            Ok(_) | Err(latchkey::clients::ClientError::Forbidden { field: "owner", .. }) => {}
            Err(other) => panic!("round {round}: the registration failed with {other}"),
        }
        let left: Vec<_> = app
            .services
            .clients
            .list()
            .await
            .expect("list")
            .into_iter()
            .filter(|c| c.name() == format!("Racing {round}"))
            .collect();
        assert!(
            left.is_empty(),
            "round {round}: an application outlived its owner"
        );
    }
}

//! Who may change whose account (issue 9, item 1): staff manage ordinary users only; the
//! accounts of staff members and superusers — profile, email, active flag, sessions, "sign out
//! everywhere", groups — and the staff and superuser flags are a superuser's. Tried through
//! every way in: the console's user and group pages, and the services themselves (what the
//! JSON API and the command line call). Email changes notify the previous address.

use latchkey::accounts::Account;
use latchkey::accounts::{AccountError, AccountFlags, Profile};
use latchkey::audit::Actor;
use latchkey::db::users::UserRow;
use latchkey::groups::GroupError;
use reqwest::StatusCode;

use crate::helpers::{spawn_app, spec, TestApp, Visitor, PASSWORD};

async fn stored(app: &TestApp, id: &str) -> UserRow {
    app.stored_user(id).await
}

/// What an admin could change of an account (not the login times its owner moves).
fn account_fields(u: &UserRow) -> impl PartialEq + std::fmt::Debug {
    (
        u.email.clone(),
        u.first_name.clone(),
        u.last_name.clone(),
        (
            u.is_active,
            u.is_staff,
            u.is_superuser,
            u.email_verified,
            u.mfa_enabled,
        ),
        u.sessions_valid_after,
    )
}

async fn group_names(app: &TestApp, user_id: &str) -> Vec<String> {
    app.services
        .groups
        .of_user(user_id)
        .await
        .expect("db")
        .into_iter()
        .map(|g| g.name)
        .collect()
}

/// A password-grant access token of `username`, and whether introspection calls it active.
struct Tokens {
    client: (String, String),
}

impl Tokens {
    async fn new(app: &TestApp) -> Self {
        let (client, secret) = app.register(&spec("confidential", &["password"])).await;
        Self {
            client: (client.id().to_owned(), secret.expect("secret")),
        }
    }

    async fn issue(&self, app: &TestApp, username: &str) -> String {
        let (status, body) = app
            .post_token(
                &[
                    ("grant_type", "password"),
                    ("username", username),
                    ("password", PASSWORD),
                ],
                Some((&self.client.0, &self.client.1)),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().expect("token").to_owned()
    }

    async fn active(&self, app: &TestApp, token: &str) -> bool {
        let (status, body) = app
            .post_oauth(
                "/o/introspect/",
                &[("token", token)],
                Some((&self.client.0, &self.client.1)),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["active"].as_bool().expect("active")
    }
}

/// Asserts a refused console POST: 403, a page naming the rule, not a 500.
async fn assert_refused(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
    let html = response.text().await.expect("html");
    assert!(html.contains("Only a superuser can"), "{what}: {html}");
    assert!(html.contains("Nothing was changed."), "{what}: {html}");
}

/// Every change a staff member could try on `target` through the console, all refused, and
/// nothing changed.
async fn staff_tries_everything(app: &TestApp, neds: &Visitor, target: &Account, tokens: &Tokens) {
    let name = &target.username;
    let page = format!("/admin/users/{}/", target.id);
    let before = stored(app, &target.id).await;
    let token = tokens.issue(app, name).await;
    let targets_browser = app.visitor(name).await;
    let ops = app
        .services
        .groups
        .create(&Actor::system(), &format!("Ops {name}"), "")
        .await
        .expect("group");
    let infra = app
        .services
        .groups
        .create(&Actor::system(), &format!("Infra {name}"), "")
        .await
        .expect("group");
    app.services
        .groups
        .add_member(&Actor::system(), &infra.id, name)
        .await
        .expect("member");

    // The page shows the account without its forms.
    let (status, html) = neds.get(&page).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("only a superuser can change this account"),
        "{html}"
    );
    assert!(
        !html.contains(&format!("action=\"{page}profile/\"")),
        "{html}"
    );
    assert!(
        !html.contains(&format!("action=\"{page}flags/\"")),
        "{html}"
    );
    let (_, group_page) = neds.get(&format!("/admin/groups/{}/", infra.id)).await;
    assert!(group_page.contains(&format!("/admin/users/{}/", target.id)));
    assert!(
        !group_page.contains(&format!("/members/{}/remove/", target.id)),
        "no remove button: {group_page}"
    );
    let csrf = crate::helpers::csrf_from(&html);
    let post = |path: String, fields: Vec<(&'static str, String)>| {
        let mut all = vec![("csrf_token", csrf.clone())];
        all.extend(fields);
        neds.client.post(neds.url(&path)).form(&all).send()
    };

    // The takeover of the review: the email address set to one the staff member reads.
    let response = post(
        format!("{page}profile/"),
        vec![
            ("email", "ned.owns.this@example.com".to_owned()),
            ("first_name", "Pwned".to_owned()),
            ("last_name", String::new()),
        ],
    )
    .await
    .expect("POST");
    assert_refused(response, "profile").await;
    // Deactivation (confirmed), and the flags form unchanged.
    let response = post(format!("{page}flags/"), vec![("confirm", "yes".to_owned())])
        .await
        .expect("POST");
    assert_refused(response, "deactivate").await;
    let mut flags = vec![("is_active", "on".to_owned())];
    if target.is_staff {
        flags.push(("is_staff", "on".to_owned()));
    }
    if target.is_superuser {
        flags.push(("is_superuser", "on".to_owned()));
    }
    let response = post(format!("{page}flags/"), flags).await.expect("POST");
    assert_refused(response, "flags unchanged").await;
    // Sign out everywhere.
    let response = post(format!("{page}end_sessions/"), Vec::new())
        .await
        .expect("POST");
    assert_refused(response, "sign out everywhere").await;
    // Groups, from the user's page and from the group's page.
    let response = post(format!("{page}groups/"), vec![("group_id", ops.id.clone())])
        .await
        .expect("POST");
    assert_refused(response, "add from the user page").await;
    let response = post(
        format!("/admin/groups/{}/members/add/", ops.id),
        vec![("login", name.clone())],
    )
    .await
    .expect("POST");
    assert_refused(response, "add from the group page").await;
    let response = post(format!("{page}groups/{}/remove/", infra.id), Vec::new())
        .await
        .expect("POST");
    assert_refused(response, "remove from the user page").await;
    let response = post(
        format!("/admin/groups/{}/members/{}/remove/", infra.id, target.id),
        Vec::new(),
    )
    .await
    .expect("POST");
    assert_refused(response, "remove from the group page").await;
    // Deleting the group would take the member out of it as well.
    let response = post(format!("/admin/groups/{}/delete/", infra.id), Vec::new())
        .await
        .expect("POST");
    assert_refused(response, "delete a group with an admin in it").await;

    // Nothing changed.
    let now = stored(app, &target.id).await;
    assert_eq!(
        account_fields(&now),
        account_fields(&before),
        "{name} is as before"
    );
    assert!(tokens.active(app, &token).await, "{name}'s token lives");
    assert_eq!(
        targets_browser.get_response("/account/").await.status(),
        StatusCode::OK,
        "{name}'s browser is still signed in"
    );
    assert_eq!(group_names(app, &target.id).await, vec![infra.name]);
    assert!(app.emails_to("ned.owns.this@example.com").is_empty());
    assert!(app.emails_to(&target.email).is_empty());
}

#[tokio::test]
async fn staff_cannot_change_a_superuser_or_another_staff_member_through_any_page() {
    let app = spawn_app().await;
    let root = app.create_staff("root").await;
    let _ned = app.create_plain_staff("ned").await;
    let sam = app.create_plain_staff("sam").await;
    let pat = app.create_user("pat").await;
    let tokens = Tokens::new(&app).await;
    let neds = app.visitor("ned").await;

    for target in [&root, &sam] {
        staff_tries_everything(&app, &neds, target, &tokens).await;
    }
    for event in [
        "user.profile_changed",
        "user.deactivated",
        "user.signed_out_everywhere",
        "group.member_added",
        "group.member_removed",
        "group.deleted",
    ] {
        assert!(
            app.audit_events(event)
                .await
                .iter()
                .all(|e| e.actor_id.is_none()),
            "no {event} by ned"
        );
    }

    // Ordinary users remain ned's to manage, and the previous address hears of the change.
    let (status, html) = neds.get(&format!("/admin/users/{}/", pat.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("only a superuser can change this account"));
    let response = neds
        .post_with_csrf_of(
            &html,
            &format!("/admin/users/{}/profile/", pat.id),
            &[
                ("email", "pat.new@example.com"),
                ("first_name", "Pat"),
                ("last_name", ""),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(stored(&app, &pat.id).await.email, "pat.new@example.com");
    let notice = app.last_email_to("pat@example.com");
    assert_eq!(notice.subject, "Your email address was changed");
    assert!(
        notice.text.contains("by an administrator"),
        "{}",
        notice.text
    );
    assert!(
        notice.text.contains("pat.new@example.com"),
        "{}",
        notice.text
    );
    assert!(notice.html.contains("pat.new@example.com"));
    let response = neds
        .post_with_csrf_of(
            &html,
            &format!("/admin/users/{}/end_sessions/", pat.id),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.audit_events("user.signed_out_everywhere").await.len(),
        1
    );
}

#[tokio::test]
async fn a_superuser_changes_staff_and_superuser_accounts() {
    let app = spawn_app().await;
    app.create_staff("root").await;
    let other_root = app.create_staff("ada").await;
    let sam = app.create_plain_staff("sam").await;
    let tokens = Tokens::new(&app).await;
    let roots = app.visitor("root").await;
    let group = app
        .services
        .groups
        .create(&Actor::system(), "Ops", "")
        .await
        .expect("group");

    for target in [&other_root, &sam] {
        let page = format!("/admin/users/{}/", target.id);
        let token = tokens.issue(&app, &target.username).await;
        let (status, html) = roots.get(&page).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(&format!("action=\"{page}profile/\"")));
        let new_email = format!("{}.new@example.com", target.username);
        let response = roots
            .post_with_csrf_of(
                &html,
                &format!("{page}profile/"),
                &[("email", &new_email), ("first_name", "New")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(stored(&app, &target.id).await.email, new_email);
        assert_eq!(
            app.last_email_to(&target.email).subject,
            "Your email address was changed"
        );
        for (path, fields) in [
            (
                format!("{page}groups/"),
                vec![("group_id", group.id.as_str())],
            ),
            (format!("{page}groups/{}/remove/", group.id), vec![]),
            (
                format!("/admin/groups/{}/members/add/", group.id),
                vec![("login", target.username.as_str())],
            ),
            (format!("{page}end_sessions/"), vec![]),
        ] {
            let response = roots.post_with_csrf_of(&html, &path, &fields).await;
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        }
        assert_eq!(group_names(&app, &target.id).await, ["Ops"]);
        assert!(!tokens.active(&app, &token).await, "signed out everywhere");
    }
    // And grants or removes staff status.
    let (_, html) = roots.get(&format!("/admin/users/{}/", sam.id)).await;
    let response = roots
        .post_with_csrf_of(
            &html,
            &format!("/admin/users/{}/flags/", sam.id),
            &[("is_active", "on")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(!stored(&app, &sam.id).await.is_staff);
    let response = roots
        .post_with_csrf_of(&html, &format!("/admin/groups/{}/delete/", group.id), &[])
        .await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "a superuser deletes the group"
    );
}

#[tokio::test]
async fn the_services_refuse_staff_whoever_calls_them() {
    // The JSON API and the command line call these same services; the console is not the
    // only guard.
    let app = spawn_app().await;
    let root = app.create_staff("root").await;
    let ned = app.create_plain_staff("ned").await;
    let sam = app.create_plain_staff("sam").await;
    let pat = app.create_user("pat").await;
    let zoe = app.create_user("zoe").await;
    let mut before = Vec::new();
    for user in [&root, &ned, &sam, &pat, &zoe] {
        before.push(stored(&app, &user.id).await);
    }
    let group = app
        .services
        .groups
        .create(&Actor::system(), "Ops", "")
        .await
        .expect("group");
    let accounts = &app.services.accounts;
    let groups = &app.services.groups;
    let as_ned = Actor::user(ned.id.clone(), None);
    let as_pat = Actor::user(pat.id.clone(), None);
    let profile = |email: &str| Profile {
        email: email.to_owned(),
        first_name: String::new(),
        last_name: String::new(),
        current_password: None,
    };
    let forbidden = |r: Result<_, AccountError>| matches!(r, Err(AccountError::Forbidden(_)));
    let group_forbidden = |r: Result<_, GroupError>| matches!(r, Err(GroupError::Forbidden(_)));
    for (target, actor) in [
        (&root, &as_ned),
        (&sam, &as_ned),
        (&ned, &as_pat),
        (&root, &as_pat),
    ] {
        assert!(forbidden(
            accounts
                .update_profile(actor, &target.id, profile("taken@example.com"))
                .await
                .map(|_| ())
        ));
        let flags = AccountFlags {
            is_active: false,
            is_staff: target.is_staff,
            is_superuser: target.is_superuser,
        };
        assert!(forbidden(
            accounts
                .set_flags(actor, &target.id, flags)
                .await
                .map(|_| ())
        ));
        assert!(forbidden(
            accounts
                .end_sessions_and_tokens(actor, &target.id)
                .await
                .map(|_| ())
        ));
        assert!(forbidden(
            accounts
                .set_login_code(actor, &target.id, true)
                .await
                .map(|_| ())
        ));
        assert!(group_forbidden(
            groups.add_member(actor, &group.id, &target.username).await
        ));
        assert!(group_forbidden(
            groups.remove_member(actor, &group.id, &target.id).await
        ));
    }
    // An ordinary user cannot touch another ordinary user either.
    assert!(forbidden(
        accounts
            .update_profile(&as_pat, &zoe.id, profile("zoe.x@example.com"))
            .await
            .map(|_| ())
    ));
    // Nobody but a superuser promotes, not even a staff member promoting themselves.
    for (target, flags) in [
        (&pat, (true, true, false)),
        (&ned, (true, true, true)),
        (&sam, (true, false, false)),
    ] {
        let flags = AccountFlags {
            is_active: flags.0,
            is_staff: flags.1,
            is_superuser: flags.2,
        };
        assert!(forbidden(
            accounts
                .set_flags(&as_ned, &target.id, flags)
                .await
                .map(|_| ())
        ));
    }
    for user in &before {
        assert_eq!(
            account_fields(&stored(&app, &user.id).await),
            account_fields(user),
            "{}",
            user.username
        );
    }
    // A staff member whose staff status is gone has no powers left.
    accounts
        .set_flags(
            &Actor::user(root.id.clone(), None),
            &ned.id,
            AccountFlags {
                is_active: true,
                is_staff: false,
                is_superuser: false,
            },
        )
        .await
        .expect("root demotes ned");
    assert!(forbidden(
        accounts
            .update_profile(&as_ned, &pat.id, profile("pat.x@example.com"))
            .await
            .map(|_| ())
    ));
    // The system (command line) and a superuser may.
    accounts
        .update_profile(&Actor::system(), &sam.id, profile("sam.cli@example.com"))
        .await
        .expect("the CLI may");
    accounts
        .set_flags(
            &Actor::user(root.id.clone(), None),
            &sam.id,
            AccountFlags {
                is_active: true,
                is_staff: true,
                is_superuser: true,
            },
        )
        .await
        .expect("a superuser promotes");
}

#[tokio::test]
async fn a_promotion_racing_a_staff_edit_never_lets_the_edit_land_on_an_admin() {
    // Staff ned edits pat while root promotes pat, many times over. Whatever the order, ned's
    // edit either commits before the promotion or is refused: the target's row is locked before
    // the rule is read (on PostgreSQL; SQLite has one writer).
    let app = spawn_app().await;
    let root = app.create_staff("root").await;
    let ned = app.create_plain_staff("ned").await;
    let as_ned = Actor::user(ned.id.clone(), None);
    let as_root = Actor::user(root.id.clone(), None);
    for round in 0..20 {
        let pat = app.create_user(&format!("pat{round}")).await;
        let accounts = app.services.accounts.clone();
        let (edit, promotion) = tokio::join!(
            accounts.update_profile(
                &as_ned,
                &pat.id,
                Profile {
                    email: format!("ned{round}@example.com"),
                    first_name: String::new(),
                    last_name: String::new(),
                    current_password: None,
                },
            ),
            accounts.set_flags(
                &as_root,
                &pat.id,
                AccountFlags {
                    is_active: true,
                    is_staff: true,
                    is_superuser: false,
                },
            ),
        );
        promotion.expect("the promotion always succeeds");
        match edit {
            Ok(_) => {
                let at = |events: Vec<latchkey::db::audit_events::AuditRow>| {
                    events
                        .into_iter()
                        .find(|e| e.user_id.as_deref() == Some(pat.id.as_str()))
                        .expect("event")
                        .occurred_at
                };
                let edited = at(app.audit_events("user.profile_changed").await);
                let promoted = at(app.audit_events("user.staff_granted").await);
                assert!(edited < promoted, "round {round}: the edit landed on staff");
            }
            Err(AccountError::Forbidden(_)) => {
                assert_eq!(stored(&app, &pat.id).await.email, pat.email);
            }
            Err(e) => panic!("round {round}: {e}"),
        }
    }
}

/// A stolen staff or superuser session must not change its own account's email address through
/// the console (the account page asks for the current password; the console has no such field):
/// the service refuses an own email change without the password, whichever page calls it.
#[tokio::test]
async fn admins_change_their_own_email_only_with_their_password() {
    let app = spawn_app().await;
    let root = app.create_staff("root").await;
    let sam = app.create_plain_staff("sam").await;
    for admin in [&root, &sam] {
        let visitor = app.visitor(&admin.username).await;
        let page = format!("/admin/users/{}/", admin.id);
        let (status, html) = visitor.get(&page).await;
        assert_eq!(status, StatusCode::OK);
        let theirs = format!("{}.thief@example.com", admin.username);
        let response = visitor
            .post_with_csrf_of(
                &html,
                &format!("{page}profile/"),
                &[("email", &theirs), ("first_name", "Renamed")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = response.text().await.expect("page");
        assert!(body.contains("account page"), "{body}");
        let after = stored(&app, &admin.id).await;
        assert_eq!(after.email, admin.email, "unchanged");
        assert_eq!(after.first_name, admin.first_name, "nothing saved");

        // Names alone need no password; the service says the same to every caller.
        let as_admin = Actor::user(admin.id.clone(), None);
        let names = Profile {
            email: admin.email.clone(),
            first_name: "Renamed".into(),
            last_name: String::new(),
            current_password: None,
        };
        app.services
            .accounts
            .update_profile(&as_admin, &admin.id, names)
            .await
            .expect("names");
        for password in [None, Some("wrong password here")] {
            let change = Profile {
                email: theirs.clone(),
                first_name: "Renamed".into(),
                last_name: String::new(),
                current_password: password.map(secrecy::SecretString::from),
            };
            let refused = app
                .services
                .accounts
                .update_profile(&as_admin, &admin.id, change)
                .await;
            assert!(
                matches!(refused, Err(AccountError::WrongPassword)),
                "{refused:?}"
            );
        }
        assert_eq!(stored(&app, &admin.id).await.email, admin.email);
        let change = Profile {
            email: theirs.clone(),
            first_name: "Renamed".into(),
            last_name: String::new(),
            current_password: Some(secrecy::SecretString::from(PASSWORD)),
        };
        app.services
            .accounts
            .update_profile(&as_admin, &admin.id, change)
            .await
            .expect("with the password");
        assert_eq!(stored(&app, &admin.id).await.email, theirs);
    }
}

/// The row ids of `user_id`'s active tokens, as the console's token list has them.
async fn token_ids(app: &TestApp, user_id: &str) -> Vec<String> {
    app.services
        .oauth
        .list_tokens(
            latchkey::db::tokens::TokenFilter {
                user_id: Some(user_id.to_owned()),
                client_id: None,
            },
            latchkey::domain::PageRequest::new(None, 50),
        )
        .await
        .expect("db")
        .items
        .into_iter()
        .map(|t| t.row.id)
        .collect()
}

/// Review finding 4: the console's token list let a staff member revoke a superuser's (or
/// another staff member's) tokens, a change to their account that is a superuser's. Refused on
/// the page and in the service, for one protected token among others too; an ordinary user
/// cannot use the service at all; a superuser can.
#[tokio::test]
async fn staff_cannot_revoke_an_admins_tokens_from_the_token_list() {
    let app = spawn_app().await;
    let tokens = Tokens::new(&app).await;
    let root = app.create_staff("root").await;
    let ned = app.create_plain_staff("ned").await;
    let sam = app.create_plain_staff("sam").await;
    let pat = app.create_user("pat").await;
    let root_token = tokens.issue(&app, "root").await;
    let sam_token = tokens.issue(&app, "sam").await;
    let pat_token = tokens.issue(&app, "pat").await;
    let neds = app.visitor("ned").await;

    // The list shows the admins' tokens without a checkbox.
    let (status, html) = neds.get("/admin/tokens/").await;
    assert_eq!(status, StatusCode::OK);
    for admin in [&root, &sam] {
        for id in token_ids(&app, &admin.id).await {
            assert!(!html.contains(&format!("name=\"token:{id}\"")), "{html}");
        }
    }
    for id in token_ids(&app, &pat.id).await {
        assert!(html.contains(&format!("name=\"token:{id}\"")), "{html}");
    }

    // Posting the ids anyway (with an ordinary user's token among them) is refused whole.
    let csrf = crate::helpers::csrf_from(&html);
    for admin in [&root, &sam] {
        let mut form = vec![
            ("csrf_token".to_owned(), csrf.clone()),
            ("confirm".to_owned(), "yes".to_owned()),
        ];
        for id in token_ids(&app, &admin.id)
            .await
            .into_iter()
            .chain(token_ids(&app, &pat.id).await)
        {
            form.push((format!("token:{id}"), "on".to_owned()));
        }
        let response = neds
            .client
            .post(neds.url("/admin/tokens/revoke/"))
            .form(&form)
            .send()
            .await
            .expect("POST");
        assert_refused(response, "revoke an admin's tokens").await;
    }
    for token in [&root_token, &sam_token, &pat_token] {
        assert!(tokens.active(&app, token).await, "nothing was revoked");
    }

    // The service refuses whoever calls it.
    let oauth = &app.services.oauth;
    let refused = |r: Result<usize, latchkey::oauth::authorizations::RevokeError>| {
        matches!(
            r,
            Err(latchkey::oauth::authorizations::RevokeError::Forbidden(_))
        )
    };
    assert!(refused(
        oauth
            .revoke_tokens(
                &Actor::user(ned.id.clone(), None),
                token_ids(&app, &root.id).await
            )
            .await
    ));
    // An ordinary user may not revoke even another ordinary user's tokens (nor their own)
    // through the admin power.
    let other = app.create_user("other").await;
    tokens.issue(&app, "other").await;
    for ids in [
        token_ids(&app, &other.id).await,
        token_ids(&app, &pat.id).await,
    ] {
        assert!(refused(
            oauth
                .revoke_tokens(&Actor::user(pat.id.clone(), None), ids)
                .await
        ));
    }
    assert!(tokens.active(&app, &pat_token).await);

    // Staff revoke an ordinary user's tokens; a superuser an admin's.
    let n = oauth
        .revoke_tokens(
            &Actor::user(ned.id.clone(), None),
            token_ids(&app, &pat.id).await,
        )
        .await
        .expect("staff revoke an ordinary user's token");
    assert!(n >= 1);
    assert!(!tokens.active(&app, &pat_token).await);
    let n = oauth
        .revoke_tokens(
            &Actor::user(root.id.clone(), None),
            token_ids(&app, &sam.id).await,
        )
        .await
        .expect("a superuser revokes a staff member's token");
    assert!(n >= 1);
    assert!(!tokens.active(&app, &sam_token).await);
}

/// Review finding 6: the groups service took any actor — a user who is not staff could create,
/// rename or delete groups and change memberships if a page let them call it — and staff could
/// rename a group of admins (whose names connectors turn into outside roles) or put themselves
/// into any group. Staff change ordinary users' memberships and groups without admins only.
#[tokio::test]
async fn groups_are_staffs_and_admin_groups_and_own_memberships_a_superusers() {
    let app = spawn_app().await;
    let root = app.create_staff("root").await;
    let ned = app.create_plain_staff("ned").await;
    let pat = app.create_user("pat").await;
    let groups = &app.services.groups;
    let (as_root, as_ned, as_pat) = (
        Actor::user(root.id.clone(), None),
        Actor::user(ned.id.clone(), None),
        Actor::user(pat.id.clone(), None),
    );
    let forbidden = |r: Result<(), GroupError>| matches!(r, Err(GroupError::Forbidden(_)));
    let plain = groups
        .create(&Actor::system(), "Readers", "")
        .await
        .expect("group");
    let admins = groups
        .create(&Actor::system(), "Admins", "")
        .await
        .expect("group");
    groups
        .add_member(&Actor::system(), &admins.id, "root")
        .await
        .expect("member");

    // A user who is not staff can do nothing, not even to their own memberships.
    assert!(forbidden(
        groups.create(&as_pat, "Mine", "").await.map(|_| ())
    ));
    assert!(forbidden(
        groups
            .update(&as_pat, &plain.id, "Renamed", "")
            .await
            .map(|_| ())
    ));
    assert!(forbidden(
        groups
            .add_member(&as_pat, &plain.id, "pat")
            .await
            .map(|_| ())
    ));
    assert!(forbidden(
        groups
            .remove_member(&as_pat, &admins.id, &root.id)
            .await
            .map(|_| ())
    ));
    assert!(forbidden(groups.delete(&as_pat, &plain.id).await));

    // Staff do not change their own memberships, nor rename a group with an admin in it.
    assert!(forbidden(
        groups
            .add_member(&as_ned, &admins.id, "ned")
            .await
            .map(|_| ())
    ));
    assert!(forbidden(
        groups
            .update(&as_ned, &admins.id, "Everyone", "")
            .await
            .map(|_| ())
    ));
    // …but describe it, and manage ordinary users and a group without admins.
    groups
        .update(&as_ned, &admins.id, "Admins", "the operators")
        .await
        .expect("staff describe a group");
    groups
        .add_member(&as_ned, &plain.id, "pat")
        .await
        .expect("staff add an ordinary user");
    groups
        .update(&as_ned, &plain.id, "Readers 2", "")
        .await
        .expect("staff rename a group of ordinary users");
    assert_eq!(group_names(&app, &ned.id).await, Vec::<String>::new());
    assert_eq!(group_names(&app, &pat.id).await, vec!["Readers 2"]);
    assert_eq!(group_names(&app, &root.id).await, vec!["Admins"]);

    // The console page does not offer them either.
    let neds = app.visitor("ned").await;
    let (_, html) = neds.get(&format!("/admin/users/{}/", ned.id)).await;
    assert!(
        html.contains("Only a superuser can change your own groups"),
        "{html}"
    );
    let (_, html) = neds.get(&format!("/admin/groups/{}/", admins.id)).await;
    assert!(
        html.contains("only a superuser can rename or delete it"),
        "{html}"
    );
    let csrf = crate::helpers::csrf_from(&html);
    let response = neds
        .client
        .post(neds.url(&format!("/admin/users/{}/groups/", ned.id)))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("group_id", plain.id.as_str()),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(group_names(&app, &ned.id).await, Vec::<String>::new());

    // A superuser does all of it.
    groups
        .add_member(&as_root, &admins.id, "root")
        .await
        .expect("own membership");
    groups
        .update(&as_root, &admins.id, "Operators", "")
        .await
        .expect("rename");
    groups.delete(&as_root, &admins.id).await.expect("delete");
}

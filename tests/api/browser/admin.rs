//! The admin console as an administrator uses it in a real browser: sign in, look around,
//! find a user and deactivate them; the user can no longer sign in and their tokens are dead.

use reqwest::StatusCode;

use crate::browser::browser;
use crate::helpers::{spawn_app, spec, PASSWORD, REDIRECT_URI};

#[tokio::test]
async fn admin_deactivates_user() {
    let app = spawn_app().await;
    let Some(browser) = browser(&app).await else {
        return;
    };
    let staff = app.create_staff("root").await;
    let dana = app.create_user("dana").await;
    app.create_user("erin").await;
    // Dana uses an application (so the tokens page has something to show, and deactivation
    // has something to revoke) and belongs to a group.
    let mut client_spec = spec("confidential", &["authorization_code"]);
    client_spec.name = "Photo Printer".to_owned();
    let (client, secret) = app.register(&client_spec).await;
    let secret = secret.expect("a confidential client has a secret");
    let (code, verifier) = app.code_for(client.id(), "dana", "profile").await;
    let (status, tokens) = app
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
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().expect("an access token");
    let support = app
        .services
        .groups
        .create(
            &latchkey::audit::Actor::system(),
            "Support",
            "First-line helpdesk",
        )
        .await
        .expect("create a group");
    app.services
        .groups
        .add_member(&latchkey::audit::Actor::system(), &support.id, "dana")
        .await
        .expect("add dana to the group");

    // Signed out, /admin/ sends the administrator to the login page, then back.
    browser.goto("/admin/").await;
    browser.wait_for("#password").await;
    let login = browser.current_url().await;
    assert_eq!(login.path(), "/accounts/login/");
    assert_eq!(
        login
            .query_pairs()
            .find(|(k, _)| k == "next")
            .map(|(_, v)| v.into_owned())
            .as_deref(),
        Some("/admin/")
    );
    browser.fill("#username", "root").await;
    browser.fill("#password", PASSWORD).await;
    browser
        .click("form[action='/accounts/login/'] button[type=submit]")
        .await;

    // The dashboard.
    browser.wait_for(".stats .stat").await;
    assert_eq!(browser.current_url().await.path(), "/admin/");
    assert_eq!(browser.text_of("h1").await, "Dashboard");
    let stats = browser.text_of(".stats").await;
    assert!(stats.contains("Users"), "{stats}");
    browser.screenshot("admin-dashboard").await;

    // Tokens: Dana's are there.
    browser.click("nav.side-nav a[href='/admin/tokens/']").await;
    browser
        .wait_for("form[action='/admin/tokens/revoke/'] table.list")
        .await;
    assert_eq!(browser.text_of("h1").await, "Active tokens");
    let rows = browser.text_of("table.list tbody").await;
    assert!(
        rows.contains("dana") && rows.contains("Photo Printer"),
        "{rows}"
    );
    browser.screenshot("admin-tokens").await;

    // Groups.
    browser.click("nav.side-nav a[href='/admin/groups/']").await;
    browser
        .wait_for(&format!(
            "table.list a[href='/admin/groups/{}/']",
            support.id
        ))
        .await;
    assert_eq!(browser.text_of("h1").await, "Groups");
    browser.screenshot("admin-groups").await;

    // Users: search for Dana and open her page.
    browser.click("nav.side-nav a[href='/admin/users/']").await;
    browser.wait_for("#q").await;
    let everyone = browser.text_of("table.list tbody").await;
    assert!(
        everyone.contains("root") && everyone.contains("dana") && everyone.contains("erin"),
        "{everyone}"
    );
    browser.screenshot("admin-users").await;
    browser.fill("#q", "dana").await;
    browser
        .click("form[action='/admin/users/'] button[type=submit]")
        .await;
    browser.wait_for_url(&app.url("/admin/users/?q=dana")).await;
    let found = browser.text_of("table.list tbody").await;
    assert!(
        found.contains("dana") && !found.contains("erin") && !found.contains("root"),
        "{found}"
    );
    let dana_page = format!("/admin/users/{}/", dana.id);
    browser
        .click(&format!("table.list a[href='{dana_page}']"))
        .await;

    let flags = format!("form[action='{dana_page}flags/']");
    let active = format!("{flags} input[type=checkbox][name=is_active]");
    browser.wait_for(&active).await;
    assert_eq!(browser.current_url().await.path(), dana_page);
    let heading = browser.text_of("h1").await;
    assert!(
        heading.starts_with("dana") && heading.contains("active"),
        "{heading}"
    );
    let facts = browser.text_of("dl.facts").await;
    assert!(facts.contains(&dana.id), "{facts}");
    let groups = browser
        .text_of("div[aria-label='Groups of dana'] table.list tbody")
        .await;
    assert!(groups.contains("Support"), "{groups}");
    browser.screenshot("admin-user-detail").await;

    // Untick "Active", save, confirm.
    let checkbox = browser.wait_for(&active).await;
    assert!(checkbox.is_selected().await.expect("checkbox state"));
    checkbox.click().await.expect("untick Active");
    assert!(!checkbox.is_selected().await.expect("checkbox state"));
    browser.click(&format!("{flags} button[type=submit]")).await;
    browser
        .wait_for("section.confirm button[type=submit]")
        .await;
    assert_eq!(
        browser.text_of("section.confirm h1").await,
        "Deactivate dana?"
    );
    browser.screenshot("admin-deactivate-confirm").await;
    browser.click("section.confirm button[type=submit]").await;

    // Back on her page, with the notice.
    let notice = browser.text_of("p.notice[role=status]").await;
    assert_eq!(notice, "The account flags were saved.");
    assert_eq!(browser.current_url().await.path(), dana_page);
    let heading = browser.text_of("h1").await;
    assert!(heading.contains("deactivated"), "{heading}");
    assert!(!browser
        .wait_for(&active)
        .await
        .is_selected()
        .await
        .expect("checkbox state"));
    browser.screenshot("admin-user-deactivated").await;

    // Dana cannot sign in: the same answer as a wrong password, which tells nobody whether the
    // account exists or is deactivated.
    let visitor = app.anonymous_visitor();
    let refused = visitor
        .submit(
            "/accounts/login/",
            "/accounts/login/",
            &[("username", "dana"), ("password", PASSWORD), ("next", "/")],
        )
        .await;
    let refused_status = refused.status();
    let refused_page = refused.text().await.expect("html");
    let wrong = app
        .anonymous_visitor()
        .submit(
            "/accounts/login/",
            "/accounts/login/",
            &[
                ("username", "erin"),
                ("password", "not her password"),
                ("next", "/"),
            ],
        )
        .await;
    assert_eq!(refused_status, wrong.status());
    assert_eq!(refused_status, StatusCode::UNAUTHORIZED);
    assert!(
        refused_page.contains("Invalid username or password."),
        "{refused_page}"
    );
    // Her tokens died with the account.
    let (status, introspected) = app
        .post_oauth(
            "/o/introspect/",
            &[("token", access)],
            Some((client.id(), &secret)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{introspected}");
    assert_eq!(introspected["active"], false, "{introspected}");

    // The audit log shows who did it.
    browser.click("nav.side-nav a[href='/admin/audit/']").await;
    browser.wait_for("#event").await;
    assert_eq!(browser.text_of("h1").await, "Audit log");
    let events = browser.text_of("table.list tbody").await;
    let deactivated = events
        .lines()
        .find(|line| line.contains("user.deactivated"))
        .unwrap_or_else(|| panic!("a user.deactivated event: {events}"));
    assert!(
        deactivated.contains("root") && deactivated.contains("dana"),
        "by root, about dana: {deactivated}"
    );
    browser.screenshot("admin-audit").await;
    // At 1280 px every column of the audit log is in view without scrolling, the IP address
    // column too.
    browser.resize((1280, 900)).await;
    let ips = browser
        .text_of("table.list.audit td[data-label='IP address']")
        .await;
    assert!(ips.contains("127.0.0.1"), "{ips}");
    let clipped = browser
        .outside("table.list.audit th, table.list.audit td")
        .await;
    assert!(clipped.is_empty(), "the audit log at 1280 px: {clipped:#?}");
    browser.screenshot("admin-audit-1280").await;
    let recorded = app.audit_events("user.deactivated").await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].user_id.as_deref(), Some(dana.id.as_str()));
    assert_eq!(recorded[0].actor_id.as_deref(), Some(staff.id.as_str()));
    browser.close().await;
}

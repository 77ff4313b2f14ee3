//! The Discord connector (issue 12) against the Discord fake (`discord_fake`): syncing and
//! mapping roles, role changes queued with membership changes and applied once, joining a user
//! with their kept `guilds.join` token (refreshed when expired), rate limits and outages
//! waited out, and the verify job in both priority directions.

use latchkey::audit::Actor;
use latchkey::db::discord_connector;
use latchkey::db::DbError;
use latchkey::discord::{DiscordConnector, DiscordError};
use reqwest::StatusCode;
use wiremock::ResponseTemplate;

use crate::discord_fake::{
    DiscordFake, ADMINS, BOOSTER, BOT_TOKEN, GUILD, HANDMADE, OWNER, RAIDERS, SCOUTS,
};
use crate::helpers::{location, query_param, spawn_app_with, TestApp};

/// The secret key the test servers run with, decoded (another node seals with it too).
fn test_secret() -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(crate::helpers::TEST_KEY)
        .expect("base64")
}

/// A server whose Discord provider and connector talk to `fake`.
pub(crate) async fn connector_app(fake: &DiscordFake, remote_priority: bool) -> TestApp {
    spawn_app_with(&connector_config(fake, remote_priority)).await
}

/// The settings of [`connector_app`].
fn connector_config(fake: &DiscordFake, remote_priority: bool) -> String {
    format!(
        r#"
[upstream.discord]
kind = "discord"
client_id = "1234567890"
client_secret = "discord-secret"
authorization_endpoint = "{0}/oauth2/authorize"
token_endpoint = "{0}/api/oauth2/token"
api_base = "{0}/api/v10"
scopes = ["identify", "email", "guilds.join"]
[discord]
enabled = true
provider = "discord"
bot_token = "{BOT_TOKEN}"
guild_id = "{GUILD}"
invite_link = "https://discord.gg/latchkey"
remote_priority = {remote_priority}
"#,
        fake.uri
    )
}

/// Creates local user `username`, and links Discord user `discord_id` to it through the Linked
/// accounts page, as their browser would; returns the user's id.
pub(crate) async fn linked_user(
    app: &TestApp,
    fake: &DiscordFake,
    username: &str,
    discord_id: u64,
) -> String {
    let user = app.create_user(username).await;
    fake.add_user(discord_id, username);
    link_discord(app, username, discord_id).await;
    user.id
}

/// Signs `username` in with their password and (re)links Discord user `discord_id` through
/// the Linked accounts page; returns the signed-in browser.
pub(crate) async fn link_discord(
    app: &TestApp,
    username: &str,
    discord_id: u64,
) -> crate::helpers::Visitor {
    let visitor = app.visitor(username).await;
    let (status, page) = visitor.get("/account/linked/").await;
    assert_eq!(status, StatusCode::OK);
    let start = visitor
        .post_with_csrf_of(&page, "/accounts/upstream/discord/link/", &[])
        .await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let state = query_param(&location(&start), "state").expect("state");
    let back = visitor
        .get_response(&format!(
            "/accounts/upstream/discord/callback/?code=code-{discord_id}&state={state}"
        ))
        .await;
    assert_eq!(location(&back), "/account/linked/", "the link is made");
    visitor
}

/// Syncs the roles and makes a group `name` mapped to `role`; returns its id.
pub(crate) async fn mapped_group(app: &TestApp, name: &str, role: u64) -> String {
    let system = Actor::system();
    app.services
        .discord
        .sync_roles(&system)
        .await
        .expect("roles synced");
    let group = app
        .services
        .groups
        .create(&system, name, "")
        .await
        .expect("group");
    assert!(app
        .services
        .discord
        .map_role(&system, &group.id, i64::try_from(role).expect("i64"))
        .await
        .expect("mapped"));
    group.id
}

/// Queued changes (waiting, failed).
async fn queue_counts(app: &TestApp) -> (i64, i64) {
    app.services
        .db
        .read(|conn| discord_connector::change_counts(conn).map_err(DbError::from))
        .await
        .expect("counts")
}

#[tokio::test]
async fn roles_sync_and_managed_or_too_high_roles_are_refused_with_the_reason() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    let admin = app.create_staff("root").await;
    let staff = app.create_plain_staff("helper").await;
    let root = Actor::user(admin.id.clone(), None);
    let discord = &app.services.discord;

    let report = discord.test_connection(&root).await.expect("tested");
    assert_eq!(report.bot.as_deref(), Some("latchkey-bot"));
    assert!(report.in_guild);
    assert!(
        report.permissions.iter().all(|(_, has, _)| *has),
        "{report:?}"
    );
    assert!(report.problems.is_empty(), "{report:?}");

    assert_eq!(discord.sync_roles(&root).await.expect("synced"), 7);
    let status = discord.status(&root).await.expect("status");
    let reason = |id: u64| {
        status
            .roles
            .iter()
            .find(|r| r.id == i64::try_from(id).expect("i64"))
            .expect("listed")
            .unmappable
            .clone()
    };
    assert_eq!(reason(RAIDERS), None);
    assert!(reason(BOOSTER).expect("refused").contains("managed"));
    assert!(reason(ADMINS)
        .expect("refused")
        .contains("above the bot's highest role"));
    assert!(reason(GUILD).expect("refused").contains("@everyone"));
    assert_eq!(status.roles[0].name, "Admins", "highest first");

    let group = app
        .services
        .groups
        .create(&root, "Raiders", "")
        .await
        .expect("group");
    for (role, words) in [(BOOSTER, "managed"), (ADMINS, "above"), (999, "sync roles")] {
        match discord
            .map_role(&root, &group.id, i64::try_from(role).expect("i64"))
            .await
        {
            Err(DiscordError::Invalid(why)) => assert!(why.contains(words), "{why}"),
            other => panic!("{role}: {other:?}"),
        }
    }
    assert!(discord
        .map_role(&root, &group.id, i64::try_from(RAIDERS).expect("i64"))
        .await
        .expect("mapped"));
    assert!(!discord
        .map_role(&root, &group.id, i64::try_from(RAIDERS).expect("i64"))
        .await
        .expect("already mapped"));
    assert_eq!(app.audit_events("discord.role_mapped").await.len(), 1);

    // Staff who are not superusers may do none of it, whoever calls.
    let helper = Actor::user(staff.id.clone(), None);
    assert!(matches!(
        discord.sync_roles(&helper).await,
        Err(DiscordError::Forbidden(_))
    ));
    assert!(matches!(
        discord
            .map_role(&helper, &group.id, i64::try_from(SCOUTS).expect("i64"))
            .await,
        Err(DiscordError::Forbidden(_))
    ));
    assert!(matches!(
        discord.status(&helper).await,
        Err(DiscordError::Forbidden(_))
    ));
}

#[tokio::test]
async fn the_connection_test_says_what_is_wrong_in_words() {
    let fake = DiscordFake::start().await;
    let app = spawn_app_with(&format!(
        r#"
[upstream.discord]
kind = "discord"
client_id = "1234567890"
client_secret = "discord-secret"
api_base = "{0}/api/v10"
[discord]
enabled = true
provider = "discord"
bot_token = "not-the-bot-token"
guild_id = "{GUILD}"
"#,
        fake.uri
    ))
    .await;
    let report = app
        .services
        .discord
        .test_connection(&Actor::system())
        .await
        .expect("a report");
    assert_eq!(report.bot, None);
    assert!(
        report.problems[0].contains("refused the bot token"),
        "{report:?}"
    );
    assert_eq!(report.problems.len(), 1, "nothing else is known yet");
    // twilight remembers the 401 and sends nothing more with that token.
    let calls = fake.seen().len();
    assert!(app
        .services
        .discord
        .sync_roles(&Actor::system())
        .await
        .is_err());
    assert_eq!(fake.seen().len(), calls, "no request after a 401");
}

#[tokio::test]
async fn group_changes_give_and_take_the_mapped_role_and_leave_hand_given_roles_alone() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    let ann = linked_user(&app, &fake, "ann", 1001).await;
    fake.add_member(1001, &[HANDMADE]);
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    let staff = app.create_plain_staff("helper").await;
    let helper = Actor::user(staff.id, None);

    assert!(app
        .services
        .groups
        .add_member(&helper, &group, "ann")
        .await
        .expect("added"));
    assert_eq!(
        queue_counts(&app).await,
        (1, 0),
        "queued with the membership"
    );
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(report.added, 1, "{report}");
    assert_eq!(fake.roles_of(1001), Some([RAIDERS, HANDMADE].into()));
    let calls = fake.role_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0],
        (
            "PUT".to_owned(),
            1001,
            RAIDERS,
            Some("Latchkey: member of Raiders".to_owned())
        )
    );
    assert_eq!(queue_counts(&app).await, (0, 0));
    let events = app.audit_events("discord.role_added").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].user_id.as_deref(), Some(ann.as_str()));

    // Nothing queued: the worker calls nobody.
    let before = fake.seen().len();
    app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(fake.seen().len(), before);

    assert!(app
        .services
        .groups
        .remove_member(&helper, &group, &ann)
        .await
        .expect("removed"));
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(report.removed, 1, "{report}");
    assert_eq!(
        fake.roles_of(1001),
        Some([HANDMADE].into()),
        "hand-given role kept"
    );
    assert_eq!(app.audit_events("discord.role_removed").await.len(), 1);
    assert!(
        fake.role_calls()
            .iter()
            .all(|(_, _, role, _)| *role == RAIDERS),
        "only the mapped role is touched"
    );
}

#[tokio::test]
async fn a_role_two_groups_give_stays_until_the_last_one_goes_and_quick_changes_end_in_the_last_state(
) {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    let bob = linked_user(&app, &fake, "bob", 1002).await;
    fake.add_member(1002, &[]);
    let raiders = mapped_group(&app, "Raiders", RAIDERS).await;
    let veterans = mapped_group(&app, "Veterans", RAIDERS).await;
    let groups = &app.services.groups;
    let system = Actor::system();
    groups
        .add_member(&system, &raiders, "bob")
        .await
        .expect("added");
    groups
        .add_member(&system, &veterans, "bob")
        .await
        .expect("added");
    groups
        .remove_member(&system, &raiders, &bob)
        .await
        .expect("removed");
    assert_eq!(
        queue_counts(&app).await,
        (1, 0),
        "one row per user and role"
    );
    app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(
        fake.roles_of(1002),
        Some([RAIDERS].into()),
        "Veterans still gives it"
    );
    groups.delete(&system, &veterans).await.expect("deleted");
    app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(
        fake.roles_of(1002),
        Some([].into()),
        "its last group is gone"
    );
}

#[tokio::test]
async fn a_user_not_in_the_server_is_added_with_their_guilds_join_token() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    linked_user(&app, &fake, "cleo", 1003).await;
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    let scouts = mapped_group(&app, "Scouts", SCOUTS).await;
    let system = Actor::system();
    app.services
        .groups
        .add_member(&system, &group, "cleo")
        .await
        .expect("added");
    app.services
        .groups
        .add_member(&system, &scouts, "cleo")
        .await
        .expect("added");
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(report.joined, 1, "{report}");
    assert_eq!(
        (report.added, report.unchanged),
        (1, 1),
        "the join brought both roles: {report}"
    );
    assert_eq!(fake.joins(), [1003], "joined once, with both roles");
    assert_eq!(fake.roles_of(1003), Some([RAIDERS, SCOUTS].into()));
    assert!(fake.role_calls().is_empty(), "no role call after the join");
    assert_eq!(app.audit_events("discord.member_joined").await.len(), 1);
    assert_eq!(fake.refreshes(), 0, "a fresh token is used as it is");
}

#[tokio::test]
async fn an_expired_token_is_refreshed_before_joining_and_a_dead_one_asks_for_a_new_sign_in() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    // Tokens that expired a minute after they were issued, long ago.
    fake.set_token_lifetime(1);
    let dana = linked_user(&app, &fake, "dana", 1004).await;
    fake.set_token_lifetime(604_800);
    fake.expire_access_tokens();
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    app.services
        .groups
        .add_member(&Actor::system(), &group, "dana")
        .await
        .expect("added");
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!((report.joined, report.failed), (1, 0), "{report}");
    assert_eq!(fake.refreshes(), 1);
    assert_eq!(fake.roles_of(1004), Some([RAIDERS].into()));
    let kept = app
        .services
        .upstream
        .kept_tokens(&dana, "discord")
        .await
        .expect("readable")
        .expect("kept");
    assert!(
        kept.expires_at.expect("expiry") > latchkey::db::now(),
        "the new tokens are kept"
    );

    // Eve's refresh token is dead too: the change fails, and says what to do.
    fake.set_token_lifetime(1);
    let eve = linked_user(&app, &fake, "eve", 1005).await;
    fake.revoke_refresh_tokens();
    app.services
        .groups
        .add_member(&Actor::system(), &group, "eve")
        .await
        .expect("added");
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(report.failed, 1, "{report}");
    assert_eq!(fake.roles_of(1005), None, "not joined");
    assert_eq!(queue_counts(&app).await, (0, 1));
    let failed = app.audit_events("discord.role_change_failed").await;
    assert_eq!(failed[0].user_id.as_deref(), Some(eve.as_str()));
    assert!(
        failed[0].details.contains("sign in with Discord again"),
        "{}",
        failed[0].details
    );
    assert!(
        app.services
            .upstream
            .kept_tokens(&eve, "discord")
            .await
            .expect("readable")
            .is_none(),
        "refused tokens are dropped"
    );
    assert_eq!(app.audit_events("upstream.tokens_refused").await.len(), 1);

    // Her account page asks her to sign in with Discord again; Dana's shows the invite link.
    let (_, page) = app.visitor("eve").await.get("/account/").await;
    assert!(page.contains("Sign in with Discord again"), "{page}");
    assert!(page.contains("https://discord.gg/latchkey"));
    let (_, page) = app.visitor("dana").await.get("/account/").await;
    assert!(!page.contains("Sign in with Discord again"));
    assert!(
        page.contains("Join the server: <a href=\"https://discord.gg/latchkey\""),
        "{page}"
    );
    // She does: the sign-in queues the change again, the worker adds her to the server with
    // the new token, and the page stops asking.
    fake.set_token_lifetime(604_800);
    let eve_browser = link_discord(&app, "eve", 1005).await;
    let (_, page) = eve_browser.get("/account/").await;
    assert!(!page.contains("Sign in with Discord again"), "{page}");
    assert_eq!(
        queue_counts(&app).await,
        (1, 0),
        "queued again by the sign-in"
    );
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(report.joined, 1, "{report}");
    assert_eq!(fake.roles_of(1005), Some([RAIDERS].into()));
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_waited_out() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    linked_user(&app, &fake, "finn", 1006).await;
    fake.add_member(1006, &[]);
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    app.services
        .groups
        .add_member(&Actor::system(), &group, "finn")
        .await
        .expect("added");
    fake.fail_next(
        "GET",
        "/members/1006",
        ResponseTemplate::new(502)
            .set_body_json(serde_json::json!({"code": 0, "message": "502: Bad Gateway"})),
    );
    fake.fail_next(
        "PUT",
        &format!("/roles/{RAIDERS}"),
        ResponseTemplate::new(429)
            .insert_header("retry-after", "1")
            .set_body_json(serde_json::json!({
                "message": "You are being rate limited.",
                "retry_after": 0.25,
                "global": false
            })),
    );
    let started = std::time::Instant::now();
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(report.added, 1, "{report}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(700),
        "waited"
    );
    assert_eq!(fake.roles_of(1006), Some([RAIDERS].into()));
    let puts = fake.role_calls().len();
    assert_eq!(puts, 2, "the rate-limited call, then the one that worked");
    let member_reads = fake
        .seen()
        .iter()
        .filter(|s| s.method == "GET" && s.path.ends_with("/members/1006"))
        .count();
    assert_eq!(member_reads, 2, "the 502, then the answer");
}

#[tokio::test]
async fn refusals_are_not_retried_and_outages_are_retried_later() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    linked_user(&app, &fake, "gus", 1007).await;
    fake.add_member(1007, &[]);
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    app.services
        .groups
        .add_member(&Actor::system(), &group, "gus")
        .await
        .expect("added");
    fake.fail_next(
        "PUT",
        &format!("/roles/{RAIDERS}"),
        ResponseTemplate::new(403)
            .set_body_json(serde_json::json!({"code": 50013, "message": "Missing Permissions"})),
    );
    // A missing permission gives the change up and stops the run.
    match app.services.discord.apply_queued().await {
        Err(DiscordError::Stopped(why)) => assert!(why.contains("Missing Permissions"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.role_calls().len(), 1, "a 403 is not sent again");
    assert_eq!(queue_counts(&app).await, (0, 1));
    // Queued again (an admin re-adds the user): it goes through.
    app.services
        .groups
        .remove_member(
            &Actor::system(),
            &group,
            &app.services
                .accounts
                .find_by_login("gus")
                .await
                .expect("db")
                .expect("gus")
                .id,
        )
        .await
        .expect("removed");
    app.services
        .groups
        .add_member(&Actor::system(), &group, "gus")
        .await
        .expect("added");
    app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(fake.roles_of(1007), Some([RAIDERS].into()));

    // Four 503s in a row: the change waits for a later run.
    for _ in 0..4 {
        fake.fail_next(
            "GET",
            "/members/1007",
            ResponseTemplate::new(503).set_body_string("upstream connect error"),
        );
    }
    let gus = app
        .services
        .accounts
        .find_by_login("gus")
        .await
        .expect("db")
        .expect("gus")
        .id;
    app.services
        .groups
        .remove_member(&Actor::system(), &group, &gus)
        .await
        .expect("removed");
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(report.retrying, 1, "{report}");
    let (waiting, failed) = queue_counts(&app).await;
    assert_eq!((waiting, failed), (1, 0));
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(report, Default::default(), "not due yet");
}

#[tokio::test]
async fn a_queued_change_is_applied_once_when_two_nodes_run_the_worker() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    for (i, name) in ["h1", "h2", "h3", "h4"].iter().enumerate() {
        let id = 2000 + u64::try_from(i).expect("small");
        linked_user(&app, &fake, name, id).await;
        fake.add_member(id, &[]);
    }
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    for name in ["h1", "h2", "h3", "h4"] {
        app.services
            .groups
            .add_member(&Actor::system(), &group, name)
            .await
            .expect("added");
    }
    let other_node = DiscordConnector::new(
        app.services.db.clone(),
        app.services.discord.settings().cloned(),
        app.services.upstream.clone(),
        app.services.groups.clone(),
        &test_secret(),
    )
    .expect("another node");
    let (a, b) = tokio::join!(
        app.services.discord.apply_queued(),
        other_node.apply_queued()
    );
    let (a, b) = (a.expect("node a"), b.expect("node b"));
    assert_eq!(a.added + b.added, 4, "{a} / {b}");
    assert_eq!(
        a.added + a.unchanged + b.added + b.unchanged,
        4,
        "each change handled by one node: {a} / {b}"
    );
    assert_eq!(fake.role_calls().len(), 4, "each change sent once");
    assert_eq!(queue_counts(&app).await, (0, 0));
}

#[tokio::test]
async fn verify_makes_discord_follow_the_groups_when_latchkey_wins() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    // Ivy is in the group but Discord lost her role; Jack has it by hand but is in no group;
    // Kim has only an unmapped role; Liam should have it and is not in the server (verify
    // leaves him alone: he joins with the invite link, or at his next membership change).
    linked_user(&app, &fake, "ivy", 3001).await;
    linked_user(&app, &fake, "jack", 3002).await;
    linked_user(&app, &fake, "kim", 3003).await;
    linked_user(&app, &fake, "liam", 3004).await;
    for name in ["ivy", "liam"] {
        app.services
            .groups
            .add_member(&Actor::system(), &group, name)
            .await
            .expect("added");
    }
    // The queue is emptied without Discord: these memberships predate the connector.
    app.services
        .db
        .write(|conn| {
            diesel::RunQueryDsl::execute(
                diesel::delete(latchkey::db::schema::discord_role_changes::table),
                conn,
            )
            .map_err(DbError::from)
        })
        .await
        .expect("cleared");
    fake.add_member(3001, &[]);
    fake.add_member(3002, &[RAIDERS, HANDMADE]);
    fake.add_member(3003, &[HANDMADE]);
    // Enough members for two pages of 1,000.
    for id in 10_000..11_200 {
        fake.add_member(id, &[RAIDERS]);
    }
    let report = app.services.discord.verify_all().await.expect("verified");
    assert_eq!(report.linked, 4, "{report}");
    assert_eq!(report.members, 1_204, "{report}");
    assert_eq!(report.queued, 2, "{report}");
    assert_eq!(fake.roles_of(3001), Some([RAIDERS].into()));
    assert_eq!(fake.roles_of(3002), Some([HANDMADE].into()));
    assert_eq!(fake.roles_of(3003), Some([HANDMADE].into()));
    assert_eq!(
        fake.roles_of(3004),
        None,
        "verify never adds anyone to the server"
    );
    assert!(fake.joins().is_empty());
    assert_eq!(
        fake.roles_of(10_500),
        Some([RAIDERS].into()),
        "unlinked members untouched"
    );
    let pages: Vec<String> = fake
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path.ends_with(&format!("/guilds/{GUILD}/members")))
        .map(|s| s.path)
        .collect();
    assert_eq!(pages.len(), 2, "a page of 1,000 at a time");
    // A second run finds nothing to do.
    let again = app.services.discord.verify_all().await.expect("verified");
    assert_eq!(again.queued, 0, "{again}");
}

#[tokio::test]
async fn verify_makes_the_groups_follow_discord_when_discord_wins() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, true).await;
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    let ivy = linked_user(&app, &fake, "ivy", 3001).await;
    let jack = linked_user(&app, &fake, "jack", 3002).await;
    let liam = linked_user(&app, &fake, "liam", 3004).await;
    for name in ["ivy", "liam"] {
        app.services
            .groups
            .add_member(&Actor::system(), &group, name)
            .await
            .expect("added");
    }
    app.services.discord.apply_queued().await.expect("applied");
    let calls_before = fake.role_calls().len();
    // Ivy and Liam were joined with the role; then Ivy lost it in Discord, and Jack, in no
    // group, was given it there.
    assert_eq!(fake.roles_of(3004), Some([RAIDERS].into()));
    fake.add_member(3001, &[HANDMADE]);
    fake.add_member(3002, &[RAIDERS]);
    let report = app.services.discord.verify_all().await.expect("verified");
    assert_eq!(
        (report.groups_added, report.groups_removed),
        (1, 1),
        "{report}"
    );
    let members: Vec<String> = app
        .services
        .groups
        .find(&group)
        .await
        .expect("db")
        .expect("group")
        .1
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert!(members.contains(&jack));
    assert!(!members.contains(&ivy));
    assert!(members.contains(&liam));
    assert_eq!(
        fake.role_calls().len(),
        calls_before,
        "nothing pushed back to Discord"
    );
    assert_eq!(fake.roles_of(3001), Some([HANDMADE].into()));
    let added = app.audit_events("group.member_added").await;
    assert!(added.iter().any(|e| e.details.contains("discord")));
}

#[tokio::test]
async fn the_console_page_tests_syncs_and_maps_for_superusers_only() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    app.create_staff("root").await;
    app.create_plain_staff("helper").await;
    let group = app
        .services
        .groups
        .create(&Actor::system(), "Raiders", "")
        .await
        .expect("group");
    let root = app.visitor("root").await;

    let (status, page) = root.get("/admin/discord/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("No roles yet"), "{page}");
    assert!(page.contains("https://discord.gg/latchkey"));

    let tested = root
        .post_with_csrf_of(&page, "/admin/discord/test/", &[])
        .await;
    assert_eq!(tested.status(), StatusCode::OK);
    let tested = tested.text().await.expect("page");
    assert!(tested.contains("the bot is latchkey-bot"), "{tested}");
    assert!(tested.contains("The bot can do everything the connector needs."));

    let synced = root
        .post_with_csrf_of(&page, "/admin/discord/roles/sync/", &[])
        .await;
    assert_eq!(location(&synced), "/admin/discord/");
    let (_, page) = root.get("/admin/discord/").await;
    assert!(page.contains("7 roles were read from Discord."), "{page}");
    assert!(page.contains("Cannot be mapped: managed by an integration"));
    assert!(
        page.contains("Cannot be mapped: gives Administrator"),
        "{page}"
    );
    assert!(
        page.contains("at or above the bot&#39;s highest role"),
        "{page}"
    );

    let refused = root
        .post_with_csrf_of(
            &page,
            "/admin/discord/mappings/",
            &[("group_id", &group.id), ("role_id", &BOOSTER.to_string())],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused
        .text()
        .await
        .expect("page")
        .contains("cannot be mapped: managed"));
    let mapped = root
        .post_with_csrf_of(
            &page,
            "/admin/discord/mappings/",
            &[("group_id", &group.id), ("role_id", &RAIDERS.to_string())],
        )
        .await;
    assert_eq!(location(&mapped), "/admin/discord/");
    let (_, page) = root.get("/admin/discord/").await;
    assert!(
        page.contains(&format!("href=\"/admin/groups/{}/\">Raiders</a>", group.id)),
        "{page}"
    );

    let created = root
        .post_with_csrf_of(&page, "/admin/discord/groups/", &[])
        .await;
    assert_eq!(location(&created), "/admin/discord/");
    let (_, page) = root.get("/admin/discord/").await;
    assert!(
        page.contains("2 groups were created and mapped to roles of the same name."),
        "{page}"
    );
    assert!(app
        .services
        .groups
        .all()
        .await
        .expect("groups")
        .iter()
        .any(|g| g.name == "Scouts"));

    let unmapped = root
        .post_with_csrf_of(
            &page,
            "/admin/discord/mappings/remove/",
            &[("group_id", &group.id), ("role_id", &RAIDERS.to_string())],
        )
        .await;
    assert_eq!(location(&unmapped), "/admin/discord/");
    assert_eq!(app.audit_events("discord.role_unmapped").await.len(), 1);

    // A staff member who is not a superuser sees a 403 page and changes nothing.
    let helper = app.visitor("helper").await;
    let (status, _) = helper.get("/admin/discord/").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, groups_page) = helper.get("/admin/groups/").await;
    let refused = helper
        .post_with_csrf_of(&groups_page, "/admin/discord/roles/sync/", &[])
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.audit_events("discord.roles_synced").await.len(), 1);
}

#[tokio::test]
async fn the_console_says_when_the_connector_is_off_and_bad_input_is_a_page() {
    let app = crate::helpers::spawn_app().await;
    app.create_staff("root").await;
    let root = app.visitor("root").await;
    let (status, page) = root.get("/admin/discord/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("The Discord connector is off."), "{page}");
    let answer = root
        .post_with_csrf_of(
            &page,
            "/admin/discord/mappings/",
            &[("group_id", "nope"), ("role_id", "x\u{0}")],
        )
        .await;
    assert!(answer.status().is_client_error(), "{}", answer.status());
    let answer = root
        .post_with_csrf_of(&page, "/admin/discord/roles/sync/", &[])
        .await;
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_command_line_runs_the_connectors_jobs() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    linked_user(&app, &fake, "mona", 4001).await;
    fake.add_member(4001, &[]);
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    app.services
        .groups
        .add_member(&Actor::system(), &group, "mona")
        .await
        .expect("added");
    let (db, uri) = (app.db_url.clone(), fake.uri.clone());
    let run = move |args: &'static [&'static str]| {
        let (db, uri) = (db.clone(), uri.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let dir = tempfile::tempdir().expect("dir");
                std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
                    .args(args)
                    .env("LATCHKEY_DATABASE__URL", &db)
                    .env("LATCHKEY_SECRETS__SECRET_KEY", crate::helpers::TEST_KEY)
                    .env("LATCHKEY_SERVER__DATA_DIR", dir.path())
                    .env("LATCHKEY_LOG__LEVEL", "warn")
                    .env("LATCHKEY_UPSTREAM__DISCORD__KIND", "discord")
                    .env("LATCHKEY_UPSTREAM__DISCORD__CLIENT_ID", "the-app")
                    .env(
                        "LATCHKEY_UPSTREAM__DISCORD__CLIENT_SECRET",
                        "discord-secret",
                    )
                    .env(
                        "LATCHKEY_UPSTREAM__DISCORD__API_BASE",
                        format!("{uri}/api/v10"),
                    )
                    .env(
                        "LATCHKEY_UPSTREAM__DISCORD__SCOPES",
                        r#"["identify", "email", "guilds.join"]"#,
                    )
                    .env("LATCHKEY_DISCORD__ENABLED", "true")
                    .env("LATCHKEY_DISCORD__PROVIDER", "discord")
                    .env("LATCHKEY_DISCORD__BOT_TOKEN", BOT_TOKEN)
                    .env("LATCHKEY_DISCORD__GUILD_ID", GUILD.to_string())
                    .env_remove("LATCHKEY_TEST_POSTGRES_URL")
                    .current_dir(dir.path())
                    .stdin(std::process::Stdio::null())
                    .output()
                    .expect("run latchkey")
            })
            .await
            .expect("task")
        }
    };
    let test = run(&["discord", "test"]).await;
    let out = String::from_utf8_lossy(&test.stdout).into_owned();
    assert!(
        test.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(out.contains("Manage Roles: yes"), "{out}");
    let apply = run(&["discord", "apply"]).await;
    let out = String::from_utf8_lossy(&apply.stdout).into_owned();
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    assert!(out.contains("1 roles added"), "{out}");
    assert_eq!(fake.roles_of(4001), Some([RAIDERS].into()));
    let verify = run(&["discord", "verify"]).await;
    let out = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(out.contains("0 role changes queued"), "{out}");
    let refused = run(&["discord", "remote-sync"]).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("only when Discord's roles win"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let off = tokio::task::spawn_blocking({
        let db = app.db_url.clone();
        move || {
            let dir = tempfile::tempdir().expect("dir");
            std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
                .args(["discord", "verify"])
                .env("LATCHKEY_DATABASE__URL", &db)
                .env("LATCHKEY_SECRETS__SECRET_KEY", crate::helpers::TEST_KEY)
                .env("LATCHKEY_SERVER__DATA_DIR", dir.path())
                .env_remove("LATCHKEY_TEST_POSTGRES_URL")
                .current_dir(dir.path())
                .stdin(std::process::Stdio::null())
                .output()
                .expect("run latchkey")
        }
    })
    .await
    .expect("task");
    assert!(!off.status.success());
    assert!(String::from_utf8_lossy(&off.stderr).contains("connector is off"));
}

#[tokio::test]
async fn the_connectors_jobs_run_on_the_scheduler_one_node_per_slot() {
    use latchkey::discord::jobs::{
        self, APPLY_ROLE_CHANGES, ENFORCE_NICKNAMES, REMOTE_SYNC_ALL, SYNC_ACCOUNTS, VERIFY_ALL,
    };
    use latchkey::scheduler::Scheduler;
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    linked_user(&app, &fake, "nina", 5001).await;
    fake.add_member(5001, &[]);
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    app.services
        .groups
        .add_member(&Actor::system(), &group, "nina")
        .await
        .expect("added");
    let settings = app.services.discord.settings().cloned().expect("on");
    let scheduler_settings = latchkey::config::SchedulerSettings {
        enabled: true,
        cleanup_interval: None,
        retry: std::time::Duration::from_secs(30),
        lease: std::time::Duration::from_secs(60),
    };
    let nodes: Vec<Scheduler> = (0..2)
        .map(|_| {
            let mut node = Scheduler::new(app.services.db.clone(), &scheduler_settings);
            let connector = DiscordConnector::new(
                app.services.db.clone(),
                Some(settings.clone()),
                app.services.upstream.clone(),
                app.services.groups.clone(),
                &test_secret(),
            )
            .expect("a node");
            jobs::register(&mut node, &connector, &settings).expect("registered");
            node
        })
        .collect();
    // Every job is registered; the nickname job is off without a template (it never runs on
    // its own).
    assert_eq!(
        nodes[0].job_names(),
        [
            APPLY_ROLE_CHANGES,
            VERIFY_ALL,
            REMOTE_SYNC_ALL,
            SYNC_ACCOUNTS,
            ENFORCE_NICKNAMES
        ]
    );
    let (a, b) = tokio::join!(nodes[0].run_due(), nodes[1].run_due());
    let mut runs: Vec<String> = a
        .expect("pass")
        .into_iter()
        .chain(b.expect("pass"))
        .map(|r| {
            assert!(r.outcome.is_ok(), "{r:?}");
            r.name
        })
        .collect();
    runs.sort();
    // The remote sync is off by default (it runs only when Discord's roles win).
    let mut all = [APPLY_ROLE_CHANGES, VERIFY_ALL, SYNC_ACCOUNTS];
    all.sort_unstable();
    assert_eq!(runs, all, "each slot ran once");
    assert_eq!(fake.roles_of(5001), Some([RAIDERS].into()));
    assert_eq!(fake.role_calls().len(), 1);

    // The Discord page lists the jobs and starts one now: it is due at the next pass.
    app.create_staff("root").await;
    let root = app.visitor("root").await;
    let (_, page) = root.get("/admin/discord/").await;
    assert!(
        page.contains("<code>verify_all_discord_users_groups</code>"),
        "{page}"
    );
    assert!(page.contains("expensive"));
    let started = root
        .post_with_csrf_of(
            &page,
            &format!("/admin/discord/jobs/{VERIFY_ALL}/run/"),
            &[],
        )
        .await;
    assert_eq!(location(&started), "/admin/discord/");
    let (_, page) = root.get("/admin/discord/").await;
    assert!(page.contains("runs within a minute"), "{page}");
    let (a, b) = tokio::join!(nodes[0].run_due(), nodes[1].run_due());
    let again: Vec<String> = a
        .expect("pass")
        .into_iter()
        .chain(b.expect("pass"))
        .map(|r| r.name)
        .collect();
    assert_eq!(again, [VERIFY_ALL], "run once, on one node");
    assert_eq!(app.audit_events("job.run_requested").await.len(), 1);
    let refused = root
        .post_with_csrf_of(&page, "/admin/discord/jobs/cleanup/run/", &[])
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_change_held_by_a_node_that_died_is_applied_by_another_once_its_claim_lapses() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    linked_user(&app, &fake, "olga", 6001).await;
    fake.add_member(6001, &[]);
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    app.services
        .groups
        .add_member(&Actor::system(), &group, "olga")
        .await
        .expect("added");
    // A node claims the change, then dies before applying it.
    let claimed = app
        .services
        .db
        .write(|conn| {
            let now = latchkey::db::now();
            let change = discord_connector::due(conn, now, 10)?.remove(0);
            let won = discord_connector::claim(
                conn,
                &change.id,
                "dead-node",
                now,
                now + chrono::TimeDelta::seconds(120),
            )?;
            Ok::<_, DbError>((change, won))
        })
        .await
        .expect("claimed");
    assert!(claimed.1);
    let report = app.services.discord.apply_queued().await.expect("ran");
    assert_eq!(report, Default::default(), "held by the other node");
    assert!(fake.role_calls().is_empty());
    // Its claim lapses (as two minutes later).
    let id = claimed.0.id.clone();
    app.services
        .db
        .write(move |conn| {
            use diesel::prelude::*;
            use latchkey::db::schema::discord_role_changes as c;
            diesel::update(c::table.find(id))
                .set(c::claimed_until.eq(Some(latchkey::db::now() - chrono::TimeDelta::seconds(1))))
                .execute(conn)
                .map_err(DbError::from)
        })
        .await
        .expect("lapsed");
    let report = app.services.discord.apply_queued().await.expect("ran");
    assert_eq!(report.added, 1, "{report}");
    assert_eq!(fake.roles_of(6001), Some([RAIDERS].into()));
    // The dead node coming back cannot finish what is no longer its.
    let (id, generation) = (claimed.0.id.clone(), claimed.0.generation);
    let finished = app
        .services
        .db
        .write(move |conn| {
            discord_connector::finish(conn, &id, "dead-node", generation).map_err(DbError::from)
        })
        .await
        .expect("db");
    assert!(!finished);
    assert_eq!(fake.role_calls().len(), 1, "applied once");
}

#[tokio::test]
async fn remote_sync_runs_only_when_discord_wins_and_then_makes_the_groups_follow_discord() {
    use latchkey::discord::jobs::{self, REMOTE_SYNC_ALL};
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    let settings = app.services.discord.settings().cloned().expect("on");
    assert_eq!(settings.remote_sync_interval, None, "off by default");
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    let pia = linked_user(&app, &fake, "pia", 7001).await;
    fake.add_member(7001, &[RAIDERS]);
    // Latchkey wins: the remote sync refuses, and says why; nothing changes.
    match app.services.discord.remote_sync_all().await {
        Err(DiscordError::Invalid(why)) => {
            assert!(why.contains("only when Discord's roles win"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    let (_, members) = app
        .services
        .groups
        .find(&group)
        .await
        .expect("db")
        .expect("group");
    assert!(members.is_empty());
    // On the scheduler (Run now) the job fails visibly.
    let mut node = latchkey::scheduler::Scheduler::new(
        app.services.db.clone(),
        &latchkey::config::SchedulerSettings {
            enabled: true,
            cleanup_interval: None,
            retry: std::time::Duration::from_secs(30),
            lease: std::time::Duration::from_secs(60),
        },
    );
    jobs::register(&mut node, &app.services.discord, &settings).expect("registered");
    node.run_due().await.expect("pass");
    app.services
        .db
        .write(|conn| {
            latchkey::db::jobs::pull_forward(conn, REMOTE_SYNC_ALL, latchkey::db::now())
                .map_err(DbError::from)
        })
        .await
        .expect("due");
    let runs = node.run_due().await.expect("pass");
    let run = runs
        .iter()
        .find(|r| r.name == REMOTE_SYNC_ALL)
        .expect("ran");
    assert!(run.outcome.is_err(), "{run:?}");
    let row = app
        .services
        .db
        .read(|conn| latchkey::db::jobs::all(conn).map_err(DbError::from))
        .await
        .expect("rows")
        .into_iter()
        .find(|r| r.name == REMOTE_SYNC_ALL)
        .expect("row");
    assert!(row
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("only when Discord's roles win")));

    // Discord wins: the member's mapped role puts them in the group. (The scheduler's verify
    // took the role Latchkey's groups do not give; a moderator gives it again.)
    fake.add_member(7001, &[RAIDERS]);
    let calls = fake.role_calls().len();
    app.create_staff("root").await;
    let root = app.visitor("root").await;
    let (_, page) = root.get("/admin/discord/").await;
    let saved = root
        .post_with_csrf_of(
            &page,
            "/admin/discord/settings/",
            &[
                ("provider", "discord"),
                ("guild_id", &GUILD.to_string()),
                ("remote_priority", "on"),
            ],
        )
        .await;
    assert_eq!(location(&saved), "/admin/discord/");
    let report = app
        .services
        .discord
        .remote_sync_all()
        .await
        .expect("synced");
    assert_eq!(
        (report.groups_added, report.groups_removed),
        (1, 0),
        "{report}"
    );
    let (_, members) = app
        .services
        .groups
        .find(&group)
        .await
        .expect("db")
        .expect("group");
    assert!(members.iter().any(|m| m.id == pia));
    assert_eq!(fake.role_calls().len(), calls, "nothing pushed to Discord");
    assert_eq!(queue_counts(&app).await, (0, 0), "nothing queued back");
}

#[tokio::test]
async fn discord_wins_only_with_every_role_of_a_group_and_never_for_admins_or_deactivated_accounts()
{
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, true).await;
    // Officers give Raiders and Scouts; Scouting gives Scouts.
    let officers = mapped_group(&app, "Officers", RAIDERS).await;
    assert!(app
        .services
        .discord
        .map_role(
            &Actor::system(),
            &officers,
            i64::try_from(SCOUTS).expect("i64")
        )
        .await
        .expect("mapped"));
    let scouting = mapped_group(&app, "Scouting", SCOUTS).await;
    // Olaf is an officer whose Discord account has lost Scouts.
    let olaf = linked_user(&app, &fake, "olaf", 1306).await;
    fake.add_member(1306, &[]);
    app.services
        .groups
        .add_member(&Actor::system(), &officers, "olaf")
        .await
        .expect("added");
    app.services.discord.apply_queued().await.expect("applied");
    fake.add_member(1306, &[RAIDERS]);
    // Mo was given Raiders by a Discord moderator (maybe himself): one role of two.
    let mo = linked_user(&app, &fake, "mo", 1301).await;
    fake.add_member(1301, &[RAIDERS, HANDMADE]);
    // Nia holds both.
    let nia = linked_user(&app, &fake, "nia", 1302).await;
    fake.add_member(1302, &[RAIDERS, SCOUTS]);
    // A staff member, a superuser and a deactivated account hold both too.
    let sid = app.create_plain_staff("sid").await.id;
    let sue = app.create_staff("sue").await.id;
    let ina = app.create_user("ina").await.id;
    for (name, id) in [("sid", 1303), ("sue", 1304), ("ina", 1305)] {
        fake.add_user(id, name);
        link_discord(&app, name, id).await;
        fake.add_member(id, &[RAIDERS, SCOUTS]);
    }
    app.deactivate(&ina).await;

    let report = app.services.discord.verify_all().await.expect("verified");
    assert_eq!(
        (report.groups_added, report.groups_removed, report.skipped),
        (2, 1, 3),
        "{report}"
    );
    let members = |group: String| {
        let app = &app;
        async move {
            let (_, members) = app
                .services
                .groups
                .find(&group)
                .await
                .expect("db")
                .expect("group");
            members.into_iter().map(|m| m.id).collect::<Vec<_>>()
        }
    };
    let officers_now = members(officers.clone()).await;
    assert_eq!(officers_now, [nia.as_str()], "only Nia holds every role");
    assert!(!officers_now.contains(&mo), "one role of two is not enough");
    assert!(
        !officers_now.contains(&olaf),
        "lacking one role takes him out"
    );
    let scouting_now = members(scouting).await;
    assert_eq!(scouting_now, [nia.as_str()]);
    for id in [&sid, &sue, &ina] {
        assert!(!officers_now.contains(id));
    }
    // Nothing was pushed to Discord: Mo keeps his hand-given role and gets no Scouts.
    assert_eq!(fake.roles_of(1301), Some([RAIDERS, HANDMADE].into()));
    let again = app.services.discord.verify_all().await.expect("verified");
    assert_eq!(
        (again.groups_added, again.groups_removed),
        (0, 0),
        "{again}"
    );
}

#[tokio::test]
async fn discord_wins_does_not_undo_a_membership_change_waiting_to_be_applied() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, true).await;
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    let pia = linked_user(&app, &fake, "pia", 1401).await;
    fake.add_member(1401, &[]);
    app.services
        .groups
        .add_member(&Actor::system(), &group, "pia")
        .await
        .expect("added");
    app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(fake.roles_of(1401), Some([RAIDERS].into()));
    // An admin takes Pia out; verify runs before the worker has taken the role.
    app.services
        .groups
        .remove_member(&Actor::system(), &group, &pia)
        .await
        .expect("removed");
    let report = app.services.discord.verify_all().await.expect("verified");
    assert_eq!(
        (report.groups_added, report.deferred),
        (0, 1),
        "not put back: {report}"
    );
    // (verify applies the queue after the comparison when Latchkey wins only; Discord wins
    // here, so the worker takes the role on its own run.)
    app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(fake.roles_of(1401), Some([].into()));
    let report = app.services.discord.verify_all().await.expect("verified");
    assert_eq!((report.groups_added, report.deferred), (0, 0), "{report}");
    let (_, members) = app
        .services
        .groups
        .find(&group)
        .await
        .expect("db")
        .expect("group");
    assert!(members.is_empty());
}

#[tokio::test]
async fn sync_accounts_refreshes_linked_members_profiles_and_nicknames() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    linked_user(&app, &fake, "quinn", 7002).await;
    fake.add_member(7002, &[]);
    fake.add_member(7003, &[]); // not linked
    fake.set_profile(
        7002,
        "quinn_renamed",
        Some("Quinn \u{202e}Q"),
        Some("a_0123456789abcdef0123456789abcdef"),
        Some("Q the raider"),
    );
    let (read, changed) = app.services.discord.sync_accounts().await.expect("synced");
    assert_eq!((read, changed), (3, 1));
    let (row, nick) = app
        .services
        .db
        .read(|conn| {
            use diesel::prelude::*;
            use latchkey::db::schema::discord_accounts as a;
            let row = latchkey::db::discord_accounts::find(conn, 7002)?.expect("stored");
            let nick: Option<String> = a::table.find(7002_i64).select(a::nick).first(conn)?;
            Ok::<_, DbError>((row, nick))
        })
        .await
        .expect("db");
    assert_eq!(row.username, "quinn_renamed");
    assert_eq!(row.tag, "quinn_renamed");
    assert_eq!(
        row.global_name.as_deref(),
        Some("Quinn Q"),
        "cleaned as a sign-in cleans"
    );
    assert_eq!(
        row.avatar.as_deref(),
        Some("a_0123456789abcdef0123456789abcdef")
    );
    assert_eq!(nick.as_deref(), Some("Q the raider"));
    let (_, changed) = app.services.discord.sync_accounts().await.expect("synced");
    assert_eq!(changed, 0, "nothing new the second time");
}

#[tokio::test]
async fn nicknames_follow_the_template_except_for_the_owner_and_members_above_the_bot() {
    let fake = DiscordFake::start().await;
    let app = spawn_app_with(&format!(
        r#"
[upstream.discord]
kind = "discord"
client_id = "1234567890"
client_secret = "discord-secret"
authorization_endpoint = "{0}/oauth2/authorize"
token_endpoint = "{0}/api/oauth2/token"
api_base = "{0}/api/v10"
[discord]
enabled = true
provider = "discord"
bot_token = "{BOT_TOKEN}"
guild_id = "{GUILD}"
nickname_template = "{{first_name}} {{last_name}} ({{discord_username}})"
"#,
        fake.uri
    ))
    .await;
    let names = [
        ("rita", 8001),
        ("sam", 8002),
        ("tess", 8003),
        ("boss", OWNER),
    ];
    for (name, id) in names {
        let user = linked_user(&app, &fake, name, id).await;
        app.services
            .accounts
            .update_profile(
                &Actor::system(),
                &user,
                latchkey::accounts::Profile {
                    first_name: name.to_uppercase(),
                    last_name: "Lee".into(),
                    email: format!("{name}@example.com"),
                    current_password: None,
                },
            )
            .await
            .expect("named");
    }
    fake.add_member(8001, &[]);
    fake.add_member(8002, &[ADMINS]); // above the bot
    fake.add_member(8003, &[]);
    fake.set_profile(8003, "tess", None, None, Some("TESS Lee (tess)"));
    fake.add_member(OWNER, &[]);
    fake.add_member(9999, &[]); // not linked
    let report = app
        .services
        .discord
        .enforce_nicknames()
        .await
        .expect("enforced");
    assert_eq!(
        (
            report.changed,
            report.unchanged,
            report.skipped,
            report.refused
        ),
        (1, 1, 2, 0),
        "{report}"
    );
    assert_eq!(fake.nick_of(8001).as_deref(), Some("RITA Lee (rita)"));
    assert_eq!(fake.nick_of(8002), None);
    assert_eq!(fake.nick_of(OWNER), None);
    assert_eq!(
        fake.nick_calls(),
        [(8001, Some("Latchkey: nickname strategy".to_owned()))]
    );
}

#[tokio::test]
async fn a_membership_change_in_the_console_queues_the_role_change_too() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    linked_user(&app, &fake, "uma", 9001).await;
    fake.add_member(9001, &[]);
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    app.create_plain_staff("helper").await;
    let helper = app.visitor("helper").await;
    let (_, page) = helper.get(&format!("/admin/groups/{group}/")).await;
    let added = helper
        .post_with_csrf_of(
            &page,
            &format!("/admin/groups/{group}/members/add/"),
            &[("login", "uma")],
        )
        .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    assert_eq!(queue_counts(&app).await, (1, 0));
    app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(fake.roles_of(9001), Some([RAIDERS].into()));
    // A change the groups service refuses (another staff member's groups are a superuser's)
    // queues nothing: the queue is written in the refused transaction.
    let other = linked_user(&app, &fake, "other", 9002).await;
    app.services
        .accounts
        .set_flags(
            &Actor::system(),
            &other,
            latchkey::accounts::AccountFlags {
                is_active: true,
                is_staff: true,
                is_superuser: false,
            },
        )
        .await
        .expect("staff");
    let (_, page) = helper.get(&format!("/admin/groups/{group}/")).await;
    let refused = helper
        .post_with_csrf_of(
            &page,
            &format!("/admin/groups/{group}/members/add/"),
            &[("login", "other")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(queue_counts(&app).await, (0, 0));
}

#[tokio::test]
async fn the_connection_test_says_when_users_cannot_be_added_to_the_server() {
    let fake = DiscordFake::start().await;
    let app = spawn_app_with(&format!(
        r#"
[upstream.discord]
kind = "discord"
client_id = "1234567890"
client_secret = "discord-secret"
api_base = "{0}/api/v10"
[discord]
enabled = true
provider = "discord"
bot_token = "{BOT_TOKEN}"
guild_id = "{GUILD}"
"#,
        fake.uri
    ))
    .await;
    let report = app
        .services
        .discord
        .test_connection(&Actor::system())
        .await
        .expect("a report");
    assert!(report.in_guild);
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(report.problems[0].contains("guilds.join"), "{report:?}");
}

/// A `latchkey serve` child process, killed if the test ends early.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_runs_the_connectors_worker_even_without_maintenance_jobs() {
    use std::time::{Duration, Instant};
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    linked_user(&app, &fake, "vera", 9101).await;
    fake.add_member(9101, &[]);
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    app.services
        .groups
        .add_member(&Actor::system(), &group, "vera")
        .await
        .expect("added");
    let dir = tempfile::tempdir().expect("dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let log = dir.path().join("serve.log");
    let mut server = Serving(
        std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .arg("serve")
            .env("LATCHKEY_DATABASE__URL", &app.db_url)
            .env("LATCHKEY_SECRETS__SECRET_KEY", crate::helpers::TEST_KEY)
            .env("LATCHKEY_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("LATCHKEY_SERVER__WORKERS", "1")
            .env("LATCHKEY_SERVER__DATA_DIR", dir.path())
            .env("LATCHKEY_SCHEDULER__CLEANUP_INTERVAL_SECONDS", "0")
            .env("LATCHKEY_LOG__LEVEL", "info")
            .env("LATCHKEY_LOG__FORMAT", "text")
            .env("LATCHKEY_UPSTREAM__DISCORD__KIND", "discord")
            .env("LATCHKEY_UPSTREAM__DISCORD__CLIENT_ID", "the-app")
            .env(
                "LATCHKEY_UPSTREAM__DISCORD__CLIENT_SECRET",
                "discord-secret",
            )
            .env(
                "LATCHKEY_UPSTREAM__DISCORD__API_BASE",
                format!("{}/api/v10", fake.uri),
            )
            .env("LATCHKEY_DISCORD__ENABLED", "true")
            .env("LATCHKEY_DISCORD__PROVIDER", "discord")
            .env("LATCHKEY_DISCORD__BOT_TOKEN", BOT_TOKEN)
            .env("LATCHKEY_DISCORD__GUILD_ID", GUILD.to_string())
            .env_remove("LATCHKEY_TEST_POSTGRES_URL")
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start latchkey serve"),
    );
    // The worker's first run is due at once.
    let deadline = Instant::now() + Duration::from_secs(60);
    while fake.roles_of(9101) != Some([RAIDERS].into()) {
        assert!(
            Instant::now() < deadline,
            "the worker did not run: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = server.0.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = std::fs::read_to_string(&log).expect("log");
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains("discord_apply_role_changes"), "{log}");
    assert!(!log.contains(BOT_TOKEN), "the bot token is never logged");
}

#[tokio::test]
async fn settings_saved_in_the_console_are_sealed_win_and_reach_every_node() {
    let fake = DiscordFake::start().await;
    let app = spawn_app_with(&format!(
        r#"
[upstream.discord]
kind = "discord"
client_id = "1234567890"
client_secret = "discord-secret"
api_base = "{0}/api/v10"
scopes = ["identify", "email", "guilds.join"]
[discord]
enabled = true
"#,
        fake.uri
    ))
    .await;
    app.create_staff("root").await;
    app.create_plain_staff("helper").await;
    let other_node = DiscordConnector::new(
        app.services.db.clone(),
        app.services.discord.settings().cloned(),
        app.services.upstream.clone(),
        app.services.groups.clone(),
        &test_secret(),
    )
    .expect("another node");
    assert!(matches!(
        other_node.sync_roles(&Actor::system()).await,
        Err(DiscordError::Misconfigured(_))
    ));
    let root = app.visitor("root").await;
    let (status, page) = root.get("/admin/discord/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("choose the Discord sign-in provider"),
        "{page}"
    );
    assert!(page.contains("No token yet"));

    let save = |fields: Vec<(&'static str, String)>| {
        let root = &root;
        async move {
            let (_, page) = root.get("/admin/discord/").await;
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            root.post_with_csrf_of(&page, "/admin/discord/settings/", &fields)
                .await
        }
    };
    let saved = save(vec![
        ("provider", "discord".into()),
        ("guild_id", GUILD.to_string()),
        ("invite_link", "https://discord.gg/saved".into()),
        ("bot_token", BOT_TOKEN.into()),
    ])
    .await;
    assert_eq!(location(&saved), "/admin/discord/");
    let (_, page) = root.get("/admin/discord/").await;
    assert!(page.contains("The settings were saved."), "{page}");
    assert!(page.contains("A token is set; it is never shown again."));
    assert!(!page.contains(BOT_TOKEN), "the token is never shown");
    assert!(page.contains("https://discord.gg/saved"));
    let sealed = app
        .services
        .db
        .read(|conn| discord_connector::settings(conn).map_err(DbError::from))
        .await
        .expect("db")
        .expect("saved")
        .bot_token_sealed
        .expect("sealed");
    assert!(!sealed.contains(BOT_TOKEN), "stored sealed");
    let events = app.audit_events("discord.settings_changed").await;
    assert_eq!(events.len(), 1);
    assert!(events[0].details.contains("\"bot_token_changed\":true"));
    assert!(!events[0].details.contains(BOT_TOKEN));

    // Both nodes work with the saved settings from their next call.
    let report = app
        .services
        .discord
        .test_connection(&Actor::system())
        .await
        .expect("tested");
    assert_eq!(report.bot.as_deref(), Some("latchkey-bot"));
    assert_eq!(
        other_node
            .sync_roles(&Actor::system())
            .await
            .expect("synced"),
        7
    );

    // Saving without a token keeps it; refused values come back with the reason.
    let kept = save(vec![
        ("provider", "discord".into()),
        ("guild_id", GUILD.to_string()),
        ("remote_priority", "on".into()),
    ])
    .await;
    assert_eq!(location(&kept), "/admin/discord/");
    assert!(other_node.sync_roles(&Actor::system()).await.is_ok());
    for (field, value, words) in [
        ("guild_id", "abc", "server id"),
        ("provider", "google", "not an enabled sign-in provider"),
        ("invite_link", "http://discord.gg/x", "https"),
        ("bot_token", "has space", "developer portal"),
    ] {
        let mut fields = vec![
            ("provider", "discord".to_owned()),
            ("guild_id", GUILD.to_string()),
        ];
        fields.retain(|(k, _)| *k != field);
        fields.push((field, value.to_owned()));
        let refused = save(fields).await;
        assert_eq!(
            refused.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}"
        );
        let page = refused.text().await.expect("page");
        assert!(page.contains(words), "{field}: {page}");
    }
    // A wrong token saved is used at once (a new client), and so is the right one again.
    save(vec![
        ("provider", "discord".into()),
        ("guild_id", GUILD.to_string()),
        ("bot_token", "wrong.token".into()),
    ])
    .await;
    let report = other_node
        .test_connection(&Actor::system())
        .await
        .expect("a report");
    assert_eq!(report.bot, None, "{report:?}");
    save(vec![
        ("provider", "discord".into()),
        ("guild_id", GUILD.to_string()),
        ("bot_token", BOT_TOKEN.into()),
    ])
    .await;
    let report = other_node
        .test_connection(&Actor::system())
        .await
        .expect("a report");
    assert_eq!(report.bot.as_deref(), Some("latchkey-bot"));

    // Staff who are not superusers cannot change them.
    let helper = app.visitor("helper").await;
    let (_, groups_page) = helper.get("/admin/groups/").await;
    let refused = helper
        .post_with_csrf_of(
            &groups_page,
            "/admin/discord/settings/",
            &[("provider", "discord"), ("guild_id", "1")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn job_schedules_and_the_nickname_template_are_set_on_the_discord_page_for_every_node() {
    use latchkey::db::jobs as job_rows;
    use latchkey::discord::jobs::{self, ENFORCE_NICKNAMES, SYNC_ACCOUNTS, VERIFY_ALL};
    use latchkey::scheduler::Scheduler;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    let user = linked_user(&app, &fake, "uma", 6001).await;
    app.services
        .accounts
        .update_profile(
            &Actor::system(),
            &user,
            latchkey::accounts::Profile {
                first_name: "Uma".into(),
                last_name: "Stone".into(),
                email: "uma@example.com".into(),
                current_password: None,
            },
        )
        .await
        .expect("named");
    fake.add_member(6001, &[]);
    // One node whose clock the test moves (minutes ahead of the real one).
    let ahead = Arc::new(AtomicI64::new(0));
    let clock_ahead = ahead.clone();
    let settings = app.services.discord.settings().cloned().expect("on");
    let mut node = Scheduler::new(
        app.services.db.clone(),
        &latchkey::config::SchedulerSettings {
            enabled: true,
            cleanup_interval: None,
            retry: std::time::Duration::from_secs(30),
            lease: std::time::Duration::from_secs(60),
        },
    )
    .with_clock(Arc::new(move || {
        latchkey::db::now() + chrono::TimeDelta::minutes(clock_ahead.load(Ordering::SeqCst))
    }));
    jobs::register(&mut node, &app.services.discord, &settings).expect("registered");
    let ran = |runs: Vec<latchkey::scheduler::JobRun>| -> Vec<String> {
        let mut names: Vec<String> = runs
            .into_iter()
            .map(|r| {
                assert!(r.outcome.is_ok(), "{r:?}");
                r.name
            })
            .collect();
        names.sort();
        names
    };
    let first = ran(node.run_due().await.expect("pass"));
    assert!(first.contains(&VERIFY_ALL.to_owned()), "{first:?}");
    assert!(
        !first.contains(&ENFORCE_NICKNAMES.to_owned()),
        "off: {first:?}"
    );

    app.create_staff("root").await;
    let root = app.visitor("root").await;
    let (_, page) = root.get("/admin/discord/").await;
    // The form shows the intervals in effect, in minutes (the configuration's defaults).
    assert!(
        page.contains(r#"name="verify_minutes" type="text" inputmode="numeric" value="5""#),
        "{page}"
    );
    assert!(page
        .contains(r#"name="enforce_nicknames_minutes" type="text" inputmode="numeric" value="0""#));
    let save = |fields: Vec<(&'static str, &'static str)>| {
        let root = &root;
        async move {
            let (_, page) = root.get("/admin/discord/").await;
            let mut all = vec![("provider", "discord"), ("guild_id", "81384788765712384")];
            all.extend(fields);
            root.post_with_csrf_of(&page, "/admin/discord/settings/", &all)
                .await
        }
    };
    // Refused: a job without a template, out of range, a bad template; nothing changes.
    for (fields, words) in [
        (
            vec![("enforce_nicknames_minutes", "60")],
            "needs a nickname template",
        ),
        (vec![("verify_minutes", "10081")], "1 to 10080 minutes"),
        (vec![("sync_accounts_minutes", "-1")], "1 to 43200 minutes"),
        (
            vec![("sync_accounts_minutes", "soon")],
            "1 to 43200 minutes",
        ),
        (vec![("nickname_template", "{nope}")], "nickname template"),
    ] {
        let refused = save(fields).await;
        assert_eq!(
            refused.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{words}"
        );
        let page = refused.text().await.expect("page");
        assert!(page.contains(words), "{words}: {page}");
    }
    let row = |name: &'static str| {
        let db = app.services.db.clone();
        async move {
            db.read(|conn| job_rows::all(conn).map_err(DbError::from))
                .await
                .expect("rows")
                .into_iter()
                .find(|r| r.name == name)
                .expect("row")
        }
    };
    assert_eq!(row(VERIFY_ALL).await.every_seconds, None);

    // Verify off, nicknames hourly from a template, the accounts job kept as it was (empty).
    let saved = save(vec![
        ("verify_minutes", "0"),
        ("enforce_nicknames_minutes", "60"),
        ("sync_accounts_minutes", ""),
        ("nickname_template", "{first_name} {last_name}"),
    ])
    .await;
    assert_eq!(location(&saved), "/admin/discord/");
    assert_eq!(row(VERIFY_ALL).await.every_seconds, Some(0));
    assert_eq!(row(ENFORCE_NICKNAMES).await.every_seconds, Some(3600));
    assert_eq!(row(SYNC_ACCOUNTS).await.every_seconds, None, "kept");
    let (_, page) = root.get("/admin/discord/").await;
    assert!(
        page.contains(r#"value="{first_name} {last_name}""#),
        "{page}"
    );
    assert!(page.contains(
        r#"name="enforce_nicknames_minutes" type="text" inputmode="numeric" value="60""#
    ));
    assert!(
        page.contains(r#"<span class="muted">off</span>"#),
        "verify is off"
    );
    let event = &app.audit_events("discord.settings_changed").await[0];
    assert!(
        event
            .details
            .contains("\"verify_all_discord_users_groups_every_seconds\":0"),
        "{}",
        event.details
    );

    // An hour on, the nickname job runs with the saved template; verify does not.
    ahead.store(61, Ordering::SeqCst);
    let later = ran(node.run_due().await.expect("pass"));
    assert!(later.contains(&ENFORCE_NICKNAMES.to_owned()), "{later:?}");
    assert!(!later.contains(&VERIFY_ALL.to_owned()), "{later:?}");
    assert_eq!(fake.nick_of(6001).as_deref(), Some("Uma Stone"));

    // "Run now" runs an off job once.
    let (_, page) = root.get("/admin/discord/").await;
    root.post_with_csrf_of(
        &page,
        &format!("/admin/discord/jobs/{VERIFY_ALL}/run/"),
        &[],
    )
    .await;
    assert_eq!(ran(node.run_due().await.expect("pass")), [VERIFY_ALL]);
    assert!(ran(node.run_due().await.expect("pass")).is_empty());

    // Clearing the template turns the nickname job off.
    save(vec![("nickname_template", "")]).await;
    assert_eq!(row(ENFORCE_NICKNAMES).await.every_seconds, Some(0));
    ahead.store(24 * 60, Ordering::SeqCst);
    let day_later = ran(node.run_due().await.expect("pass"));
    assert!(
        !day_later.contains(&ENFORCE_NICKNAMES.to_owned()),
        "{day_later:?}"
    );
}

/// Queued changes as stored, oldest due first.
async fn queued_rows(app: &TestApp) -> Vec<discord_connector::RoleChangeRow> {
    app.services
        .db
        .read(|conn| {
            use diesel::prelude::*;
            use latchkey::db::schema::discord_role_changes as c;
            c::table
                .order((c::next_attempt_at.asc(), c::id.asc()))
                .select(discord_connector::RoleChangeRow::as_select())
                .load(conn)
                .map_err(DbError::from)
        })
        .await
        .expect("rows")
}

#[tokio::test]
async fn unlinking_a_discord_account_takes_its_mapped_roles_and_a_new_link_does_not_keep_them() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    let ann = linked_user(&app, &fake, "ann", 1101).await;
    fake.add_member(1101, &[HANDMADE]);
    let raiders = mapped_group(&app, "Raiders", RAIDERS).await;
    mapped_group(&app, "Scouts", SCOUTS).await;
    app.services
        .groups
        .add_member(&Actor::system(), &raiders, "ann")
        .await
        .expect("added");
    app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(fake.roles_of(1101), Some([RAIDERS, HANDMADE].into()));

    // Ann unlinks account A on her Linked accounts page: a removal per mapped role is queued
    // in the unlink's transaction, carrying A's id.
    let visitor = app.visitor("ann").await;
    let (_, page) = visitor.get("/account/linked/").await;
    let unlinked = visitor
        .post_with_csrf_of(&page, "/account/linked/discord/unlink/", &[])
        .await;
    assert_eq!(unlinked.status(), StatusCode::SEE_OTHER);
    let rows = queued_rows(&app).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows
        .iter()
        .all(|r| r.is_removal() && r.discord_user_id == Some(1101)));
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!((report.removed, report.unchanged), (1, 1), "{report}");
    assert_eq!(
        fake.roles_of(1101),
        Some([HANDMADE].into()),
        "the mapped role is gone, the hand-given one stays"
    );
    let removed = app.audit_events("discord.role_removed").await;
    assert_eq!(removed[0].user_id.as_deref(), Some(ann.as_str()));
    assert!(fake
        .role_calls()
        .iter()
        .any(|(m, user, role, reason)| m == "DELETE"
            && *user == 1101
            && *role == RAIDERS
            && reason.as_deref().is_some_and(|r| r.contains("unlinked"))));

    // She links account B, a member: B gets the role her groups give, A does not get it back.
    fake.add_user(1102, "ann-b");
    fake.add_member(1102, &[]);
    link_discord(&app, "ann", 1102).await;
    app.services.discord.verify_all().await.expect("verified");
    assert_eq!(fake.roles_of(1102), Some([RAIDERS].into()));
    assert_eq!(fake.roles_of(1101), Some([HANDMADE].into()));
}

#[tokio::test]
async fn an_admin_removing_a_link_or_deleting_the_user_takes_the_mapped_roles_away() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    app.create_staff("root").await;
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    let mut ids = Vec::new();
    for (name, discord_id) in [("bob", 1201), ("cleo", 1202), ("dana", 1203)] {
        ids.push(linked_user(&app, &fake, name, discord_id).await);
        fake.add_member(discord_id, &[HANDMADE]);
        app.services
            .groups
            .add_member(&Actor::system(), &group, name)
            .await
            .expect("added");
    }
    app.services.discord.apply_queued().await.expect("applied");
    for id in [1201, 1202, 1203] {
        assert_eq!(fake.roles_of(id), Some([RAIDERS, HANDMADE].into()));
    }
    let root = app.visitor("root").await;

    // The console removes Bob's link (a compromised Discord account, say).
    let (_, page) = root.get(&format!("/admin/users/{}/", ids[0])).await;
    let removed = root
        .post_with_csrf_of(
            &page,
            &format!("/admin/users/{}/links/discord/remove/", ids[0]),
            &[],
        )
        .await;
    assert_eq!(removed.status(), StatusCode::SEE_OTHER);
    // Cleo leaves the company: her account is deleted; the removals outlive her.
    let delete = format!("/admin/users/{}/delete/", ids[1]);
    let (_, confirm) = root.get(&delete).await;
    let deleted = root.post_with_csrf_of(&confirm, &delete, &[]).await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    let rows = queued_rows(&app).await;
    let cleo: Vec<_> = rows
        .iter()
        .filter(|r| r.discord_user_id == Some(1202))
        .collect();
    assert_eq!(cleo.len(), 1, "{rows:?}");
    assert_eq!(cleo[0].user_id, None, "her user is gone, the removal stays");
    // Dana's link is removed, and she links the same account again before the worker runs:
    // her groups still give the role, so it stays.
    let (_, page) = root.get(&format!("/admin/users/{}/", ids[2])).await;
    root.post_with_csrf_of(
        &page,
        &format!("/admin/users/{}/links/discord/remove/", ids[2]),
        &[],
    )
    .await;
    link_discord(&app, "dana", 1203).await;

    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(report.removed, 2, "{report}");
    assert_eq!(fake.roles_of(1201), Some([HANDMADE].into()));
    assert_eq!(fake.roles_of(1202), Some([HANDMADE].into()));
    assert_eq!(fake.roles_of(1203), Some([RAIDERS, HANDMADE].into()));
    assert_eq!(queue_counts(&app).await, (0, 0));
    // The console lists what failed for a deleted user by its Discord id.
    let (status, _) = root.get("/admin/discord/").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn verify_never_pulls_back_a_member_who_left_and_deactivated_users_are_never_joined() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    let raiders = mapped_group(&app, "Raiders", RAIDERS).await;
    let scouts = mapped_group(&app, "Scouts", SCOUTS).await;
    linked_user(&app, &fake, "kai", 1501).await;
    fake.add_member(1501, &[]);
    app.services
        .groups
        .add_member(&Actor::system(), &raiders, "kai")
        .await
        .expect("added");
    app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(fake.roles_of(1501), Some([RAIDERS].into()));
    // Kai leaves the server (or is kicked): verify, run after run, leaves him out.
    fake.remove_member(1501);
    for _ in 0..2 {
        let report = app.services.discord.verify_all().await.expect("verified");
        assert_eq!(report.queued, 0, "{report}");
    }
    assert_eq!(fake.roles_of(1501), None);
    assert!(fake.joins().is_empty());
    // A membership change is what adds him again, with every role his groups give.
    app.services
        .groups
        .add_member(&Actor::system(), &scouts, "kai")
        .await
        .expect("added");
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(report.joined, 1, "{report}");
    assert_eq!(fake.roles_of(1501), Some([RAIDERS, SCOUTS].into()));

    // Lea's account is deactivated: a membership change neither joins her nor refreshes her
    // expired token.
    fake.set_token_lifetime(1);
    let lea = linked_user(&app, &fake, "lea", 1502).await;
    app.create_staff("root").await;
    let root = app.visitor("root").await;
    let (_, page) = root.get(&format!("/admin/users/{lea}/")).await;
    let off = root
        .post_with_csrf_of(
            &page,
            &format!("/admin/users/{lea}/flags/"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(off.status(), StatusCode::SEE_OTHER);
    assert!(!app.stored_user(&lea).await.is_active);
    app.services
        .groups
        .add_member(&Actor::system(), &raiders, "lea")
        .await
        .expect("added");
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!((report.joined, report.unchanged), (0, 1), "{report}");
    assert_eq!(fake.roles_of(1502), None);
    assert_eq!(fake.refreshes(), 0, "her token is not refreshed");
}

#[tokio::test]
async fn deactivation_takes_the_mapped_roles_and_reactivation_gives_them_back() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    let mia = linked_user(&app, &fake, "mia", 1601).await;
    fake.add_member(1601, &[HANDMADE]);
    app.services
        .groups
        .add_member(&Actor::system(), &group, "mia")
        .await
        .expect("added");
    app.services.discord.apply_queued().await.expect("applied");
    app.create_staff("root").await;
    let root = app.visitor("root").await;
    let flags = |fields: Vec<(&'static str, &'static str)>| {
        let (root, mia) = (&root, mia.clone());
        async move {
            let (_, page) = root.get(&format!("/admin/users/{mia}/")).await;
            let saved = root
                .post_with_csrf_of(&page, &format!("/admin/users/{mia}/flags/"), &fields)
                .await;
            assert_eq!(saved.status(), StatusCode::SEE_OTHER);
        }
    };
    flags(vec![("confirm", "yes")]).await;
    assert_eq!(
        queue_counts(&app).await,
        (1, 0),
        "queued with the deactivation"
    );
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(report.removed, 1, "{report}");
    assert_eq!(fake.roles_of(1601), Some([HANDMADE].into()));
    // Verify agrees: a deactivated account's groups give nothing.
    let report = app.services.discord.verify_all().await.expect("verified");
    assert_eq!(report.queued, 0, "{report}");
    // Her memberships stayed: reactivating gives the role back.
    flags(vec![("is_active", "on")]).await;
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(report.added, 1, "{report}");
    assert_eq!(fake.roles_of(1601), Some([RAIDERS, HANDMADE].into()));
}

#[tokio::test]
async fn a_missing_permission_stops_the_run_and_verify_does_not_repeat_a_refusal_for_a_day() {
    use latchkey::discord::jobs::APPLY_ROLE_CHANGES;
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    for (name, id) in [("nat", 1701), ("oli", 1702)] {
        linked_user(&app, &fake, name, id).await;
        fake.add_member(id, &[]);
        app.services
            .groups
            .add_member(&Actor::system(), &group, name)
            .await
            .expect("added");
    }
    // The bot lost Manage Roles: the first PUT is refused; the run stops there.
    let missing = || {
        ResponseTemplate::new(403)
            .set_body_json(serde_json::json!({"code": 50013, "message": "Missing Permissions"}))
    };
    fake.fail_next("PUT", &format!("/roles/{RAIDERS}"), missing());
    // A node that runs the worker's job alone (its verify would apply the rest at once).
    let mut node = latchkey::scheduler::Scheduler::new(
        app.services.db.clone(),
        &latchkey::config::SchedulerSettings {
            enabled: true,
            cleanup_interval: None,
            retry: std::time::Duration::from_secs(30),
            lease: std::time::Duration::from_secs(60),
        },
    );
    let connector = app.services.discord.clone();
    node.register(
        APPLY_ROLE_CHANGES,
        std::time::Duration::from_secs(15),
        move || {
            let connector = connector.clone();
            async move {
                Ok::<_, latchkey::scheduler::JobError>(connector.apply_queued().await?.to_string())
            }
        },
    )
    .expect("registered");
    let runs = node.run_due().await.expect("pass");
    let apply = runs
        .iter()
        .find(|r| r.name == APPLY_ROLE_CHANGES)
        .expect("ran");
    assert!(apply.outcome.is_err(), "{apply:?}");
    assert_eq!(
        fake.role_calls().len(),
        1,
        "one refused call, not one per change"
    );
    assert_eq!(
        queue_counts(&app).await,
        (1, 1),
        "the other change waits untouched"
    );
    // The Discord page's problem line says so.
    app.create_staff("root").await;
    let (_, page) = app.visitor("root").await.get("/admin/discord/").await;
    assert!(page.contains("The role worker"), "{page}");
    assert!(page.contains("Missing Permissions"), "{page}");

    // The next run applies what waited.
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(report.added, 1, "{report}");
    let refused: Vec<u64> = [1701, 1702]
        .into_iter()
        .filter(|id| fake.roles_of(*id) == Some([].into()))
        .collect();
    assert_eq!(refused.len(), 1);
    // Verify leaves the given-up change alone (no PUT every five minutes)…
    let calls = fake.role_calls().len();
    for _ in 0..2 {
        let report = app.services.discord.verify_all().await.expect("verified");
        assert_eq!(report.queued, 0, "{report}");
    }
    assert_eq!(fake.role_calls().len(), calls);
    // …until it was given up more than a day ago.
    app.services
        .db
        .write(|conn| {
            use diesel::prelude::*;
            use latchkey::db::schema::discord_role_changes as c;
            diesel::update(c::table.filter(c::failed.eq(true)))
                .set(c::next_attempt_at.eq(latchkey::db::now() - chrono::TimeDelta::hours(25)))
                .execute(conn)
                .map_err(DbError::from)
        })
        .await
        .expect("aged");
    let report = app.services.discord.verify_all().await.expect("verified");
    assert_eq!((report.queued, report.applied.added), (1, 1), "{report}");
    assert_eq!(fake.roles_of(refused[0]), Some([RAIDERS].into()));
}

#[tokio::test]
async fn a_join_refused_for_a_missing_permission_does_not_ask_the_user_to_sign_in_again() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    linked_user(&app, &fake, "pam", 1801).await;
    app.services
        .groups
        .add_member(&Actor::system(), &group, "pam")
        .await
        .expect("added");
    fake.fail_next(
        "PUT",
        "/members/1801",
        ResponseTemplate::new(403)
            .set_body_json(serde_json::json!({"code": 50013, "message": "Missing Permissions"})),
    );
    assert!(matches!(
        app.services.discord.apply_queued().await,
        Err(DiscordError::Stopped(_))
    ));
    let rows = queued_rows(&app).await;
    assert!(rows[0].failed);
    assert_ne!(
        rows[0].last_error.as_deref(),
        Some(latchkey::discord::service::SIGN_IN_AGAIN)
    );
    let (_, page) = app.visitor("pam").await.get("/account/").await;
    assert!(!page.contains("Sign in with Discord again"), "{page}");
    // A token Discord refuses (50025) does ask.
    app.services
        .groups
        .remove_member(
            &Actor::system(),
            &group,
            &app.services
                .accounts
                .find_by_login("pam")
                .await
                .expect("db")
                .expect("pam")
                .id,
        )
        .await
        .expect("removed");
    app.services
        .groups
        .add_member(&Actor::system(), &group, "pam")
        .await
        .expect("added");
    fake.expire_access_tokens();
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(report.failed, 1, "{report}");
    let (_, page) = app.visitor("pam").await.get("/account/").await;
    assert!(page.contains("Sign in with Discord again"), "{page}");
}

#[tokio::test]
async fn a_rejected_bot_token_stops_the_worker_and_loses_no_change() {
    use latchkey::discord::{JobSchedules, SettingsChange};
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    let mut users = Vec::new();
    for (name, id) in [("quin", 1901), ("rex", 1902), ("sol", 1903)] {
        users.push(linked_user(&app, &fake, name, id).await);
        fake.add_member(id, &[]);
        app.services
            .groups
            .add_member(&Actor::system(), &group, name)
            .await
            .expect("added");
    }
    app.services.discord.apply_queued().await.expect("applied");
    // Quin leaves the group, Rex unlinks: a check and a removal wait.
    app.services
        .groups
        .remove_member(&Actor::system(), &group, &users[0])
        .await
        .expect("removed");
    app.services
        .upstream
        .unlink(&users[1], "discord", None)
        .await
        .expect("db")
        .expect("unlinked");
    let waiting = queue_counts(&app).await;
    // The bot token is revoked at Discord: the first call of the run gets a 401 (and twilight
    // sends nothing more with that token).
    fake.fail_next(
        "GET",
        "/members/1901",
        ResponseTemplate::new(401)
            .set_body_json(serde_json::json!({"code": 0, "message": "401: Unauthorized"})),
    );
    for _ in 0..2 {
        match app.services.discord.apply_queued().await {
            Err(DiscordError::Stopped(why)) => assert!(why.contains("bot token"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(queue_counts(&app).await, waiting, "nothing given up");
    for row in queued_rows(&app).await {
        assert_eq!(
            (row.attempts, row.failed, row.last_error, row.claimed_by),
            (0, false, None, None),
            "untouched and released"
        );
    }
    assert!(fake.role_calls().iter().all(|(m, ..)| m == "PUT"));
    // The token is entered again on the Discord page: the changes go through.
    app.services
        .discord
        .save_settings(
            &Actor::system(),
            SettingsChange {
                provider: "discord".into(),
                guild_id: GUILD.to_string(),
                invite_link: String::new(),
                remote_priority: false,
                bot_token: Some(BOT_TOKEN.into()),
                nickname_template: None,
                schedules: JobSchedules::default(),
            },
        )
        .await
        .expect("saved");
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(report.removed, 2, "{report}");
    assert_eq!(fake.roles_of(1901), Some([].into()));
    assert_eq!(fake.roles_of(1902), Some([].into()));
    assert_eq!(fake.roles_of(1903), Some([RAIDERS].into()));
}

#[tokio::test]
async fn creating_a_group_per_role_never_adopts_an_existing_group_of_that_name() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    app.create_staff("root").await;
    let staff = app.create_plain_staff("helper").await;
    let helper = Actor::user(staff.id.clone(), None);
    app.services
        .discord
        .sync_roles(&Actor::system())
        .await
        .expect("synced");
    // A staff member makes "scouts" ahead of time and fills it with accounts of their own.
    let alts = app
        .services
        .groups
        .create(&helper, "scouts", "")
        .await
        .expect("group");
    for name in ["alt1", "alt2"] {
        linked_user(&app, &fake, name, if name == "alt1" { 2101 } else { 2102 }).await;
        app.services
            .groups
            .add_member(&helper, &alts.id, name)
            .await
            .expect("added");
    }
    // The superuser then clicks "Create a local group per role".
    let root = app.visitor("root").await;
    let (_, page) = root.get("/admin/discord/").await;
    let created = root
        .post_with_csrf_of(&page, "/admin/discord/groups/", &[])
        .await;
    assert_eq!(location(&created), "/admin/discord/");
    let (_, page) = root.get("/admin/discord/").await;
    assert!(
        page.contains("2 groups were created and mapped to roles of the same name. 1 roles have the name of an existing group"),
        "{page}"
    );
    assert!(page.contains("Roles whose name a group has"), "{page}");
    assert!(
        page.contains(&format!(
            "<a href=\"/admin/groups/{}/\">scouts</a></td>\n        <td data-label=\"Members\" class=\"num\">2</td>",
            alts.id
        )),
        "{page}"
    );
    let status = app
        .services
        .discord
        .status(&Actor::system())
        .await
        .expect("status");
    let scouts = status
        .roles
        .iter()
        .find(|r| r.id == i64::try_from(SCOUTS).expect("i64"))
        .expect("role");
    assert!(scouts.groups.is_empty(), "the existing group is not mapped");
    assert_eq!(status.clashes.len(), 1);
    assert_eq!(
        (status.clashes[0].group.as_str(), status.clashes[0].members),
        ("scouts", 2)
    );
    for role in [RAIDERS, HANDMADE] {
        let line = status
            .roles
            .iter()
            .find(|r| r.id == i64::try_from(role).expect("i64"))
            .expect("role");
        assert_eq!(line.groups.len(), 1, "a new group for {}", line.name);
    }
    assert_eq!(queue_counts(&app).await, (0, 0), "nothing for the alts");
}

#[tokio::test]
async fn a_role_that_gives_moderation_powers_cannot_be_mapped_and_an_old_mapping_is_not_applied() {
    const MODS: u64 = 506;
    const BAN_AND_KICK: u64 = (1 << 2) | (1 << 1);
    let fake = DiscordFake::start().await;
    fake.add_role(MODS, "Mods", 6, BAN_AND_KICK);
    let app = connector_app(&fake, false).await;
    let system = Actor::system();
    let raiders = mapped_group(&app, "Raiders", RAIDERS).await;
    let status = app.services.discord.status(&system).await.expect("status");
    let mods = status
        .roles
        .iter()
        .find(|r| r.id == i64::try_from(MODS).expect("i64"))
        .expect("role");
    assert_eq!(
        mods.unmappable
            .as_deref()
            .map(|w| w.starts_with("gives Ban Members, Kick Members")),
        Some(true),
        "{mods:?}"
    );
    match app
        .services
        .discord
        .map_role(&system, &raiders, i64::try_from(MODS).expect("i64"))
        .await
    {
        Err(DiscordError::Invalid(why)) => assert!(why.contains("gives Ban Members"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A mapping made before roles' permissions were checked: the worker refuses to give it.
    let moderators = app
        .services
        .groups
        .create(&system, "Moderators", "")
        .await
        .expect("group");
    let group = moderators.id.clone();
    app.services
        .db
        .write(move |conn| {
            discord_connector::map(
                conn,
                &group,
                i64::try_from(MODS).expect("i64"),
                latchkey::db::now(),
            )
            .map_err(DbError::from)
        })
        .await
        .expect("mapped");
    linked_user(&app, &fake, "tia", 2201).await;
    fake.add_member(2201, &[]);
    let staff = app.create_plain_staff("helper").await;
    app.services
        .groups
        .add_member(&Actor::user(staff.id, None), &moderators.id, "tia")
        .await
        .expect("added");
    let report = app.services.discord.apply_queued().await.expect("applied");
    assert_eq!(report.failed, 1, "{report}");
    assert_eq!(fake.roles_of(2201), Some([].into()), "not given");
    assert!(fake.role_calls().is_empty(), "Discord was not even asked");
    let rows = queued_rows(&app).await;
    assert!(
        rows[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("the role Mods is not given: gives Ban Members")),
        "{rows:?}"
    );
    // Verify does not queue it again, nor take the role from someone who holds it by hand.
    linked_user(&app, &fake, "uli", 2202).await;
    fake.add_member(2202, &[MODS]);
    let report = app.services.discord.verify_all().await.expect("verified");
    assert_eq!(report.queued, 0, "{report}");
    assert_eq!(fake.roles_of(2202), Some([MODS].into()));
    // The page says why, and offers to unmap it.
    app.create_staff("root").await;
    let (_, page) = app.visitor("root").await.get("/admin/discord/").await;
    assert!(page.contains("not given</span> still mapped"), "{page}");
    assert!(page.contains("<span class=\"visually-hidden\"> Moderators from Mods</span>"));
}

#[tokio::test]
async fn a_saved_bot_token_is_never_sent_to_another_api_host_than_the_one_it_was_saved_for() {
    use latchkey::config::RawUpstream;
    use secrecy::SecretString;
    let fake = DiscordFake::start().await;
    let attacker = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path_regex(".*"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&attacker)
        .await;
    let app = spawn_app_with("[discord]\nenabled = true\n").await;
    let root = app.create_staff("root").await;
    let superuser = Actor::user(root.id.clone(), None);
    let settings = |api: &str| RawUpstream {
        kind: "discord".to_owned(),
        client_id: "1234567890".to_owned(),
        api_base: format!("{api}/api/v10"),
        scopes: Some(vec![
            "identify".into(),
            "email".into(),
            "guilds.join".into(),
        ]),
        ..RawUpstream::default()
    };
    // The provider lives in the database, so a superuser can edit it on /admin/providers/.
    app.services
        .upstream
        .create_provider(
            &superuser,
            "chat",
            settings(&fake.uri),
            SecretString::from("discord-secret"),
        )
        .await
        .expect("provider");
    let root_browser = app.visitor("root").await;
    let save = |fields: Vec<(&'static str, String)>| {
        let root = &root_browser;
        async move {
            let (_, page) = root.get("/admin/discord/").await;
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            root.post_with_csrf_of(&page, "/admin/discord/settings/", &fields)
                .await
        }
    };
    let saved = save(vec![
        ("provider", "chat".into()),
        ("guild_id", GUILD.to_string()),
        ("bot_token", BOT_TOKEN.into()),
    ])
    .await;
    assert_eq!(location(&saved), "/admin/discord/");
    let discord = &app.services.discord;
    assert_eq!(discord.sync_roles(&superuser).await.expect("synced"), 7);

    // A superuser points the provider's API at their own host, keeping the token.
    app.services
        .upstream
        .update_provider(
            &superuser,
            "chat",
            settings(&attacker.uri()),
            // Moving the API host needs the client secret again (the bot token too, below).
            Some(secrecy::SecretString::from("discord-secret")),
            false,
        )
        .await
        .expect("updated");
    for _ in 0..2 {
        match discord.sync_roles(&superuser).await {
            Err(DiscordError::Misconfigured(why)) => {
                assert!(why.contains("API address changed"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(discord.apply_queued().await.is_err());
    assert!(discord.verify_all().await.is_err());
    let (status, page) = root_browser.get("/admin/discord/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("API address changed since the bot token was saved"),
        "{page}"
    );
    // Saving without the token keeps nothing that would open there: enter it again.
    let kept = save(vec![
        ("provider", "chat".into()),
        ("guild_id", GUILD.to_string()),
    ])
    .await;
    assert_eq!(kept.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(kept
        .text()
        .await
        .expect("page")
        .contains("enter the bot token again"));
    let received = attacker.received_requests().await.unwrap_or_default();
    assert!(received.is_empty(), "{received:?}");

    // Back at the real host, the saved token works again; a token sealed before the binding
    // (no prefix) opens only for Discord's own API, not for this one.
    app.services
        .upstream
        .update_provider(
            &superuser,
            "chat",
            settings(&fake.uri),
            // Moving the API host needs the client secret again (the bot token too, below).
            Some(secrecy::SecretString::from("discord-secret")),
            false,
        )
        .await
        .expect("updated");
    assert_eq!(discord.sync_roles(&superuser).await.expect("synced"), 7);
    let legacy = latchkey::secret::Sealer::new(&test_secret(), "discord-bot-token/v1")
        .expect("sealer")
        .seal(
            b"discord_connector_settings/bot_token",
            BOT_TOKEN.as_bytes(),
        )
        .expect("sealed");
    app.services
        .db
        .write(move |conn| {
            use diesel::prelude::*;
            use latchkey::db::schema::discord_connector_settings as s;
            diesel::update(s::table)
                .set((
                    s::bot_token_sealed.eq(Some(legacy)),
                    s::updated_at.eq(latchkey::db::now()),
                ))
                .execute(conn)
                .map_err(DbError::from)
        })
        .await
        .expect("legacy token");
    assert!(matches!(
        discord.sync_roles(&superuser).await,
        Err(DiscordError::Misconfigured(_))
    ));
}

#[tokio::test]
async fn a_change_that_takes_too_long_is_given_back_before_its_claim_could_lapse() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    let group = mapped_group(&app, "Raiders", RAIDERS).await;
    linked_user(&app, &fake, "vic", 2301).await;
    fake.add_member(2301, &[]);
    app.services
        .groups
        .add_member(&Actor::system(), &group, "vic")
        .await
        .expect("added");
    // A node whose bound is one second (100 s in production, inside the 120 s claim).
    let node = DiscordConnector::new(
        app.services.db.clone(),
        app.services.discord.settings().cloned(),
        app.services.upstream.clone(),
        app.services.groups.clone(),
        &test_secret(),
    )
    .expect("a node")
    .with_apply_timeout(std::time::Duration::from_secs(1));
    fake.fail_next(
        "GET",
        "/members/2301",
        ResponseTemplate::new(200)
            .set_delay(std::time::Duration::from_secs(3))
            .set_body_json(serde_json::json!({})),
    );
    let started = std::time::Instant::now();
    let report = node.apply_queued().await.expect("ran");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(report.retrying, 1, "{report}");
    let rows = queued_rows(&app).await;
    assert_eq!(rows[0].claimed_by, None, "released");
    assert_eq!(rows[0].attempts, 1);
    assert!(
        rows[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("took longer than 1 s")),
        "{rows:?}"
    );
    assert!(fake.role_calls().is_empty());
}

#[tokio::test]
async fn two_nodes_refreshing_the_same_kept_token_spend_it_once() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    fake.set_token_lifetime(1);
    let wes = linked_user(&app, &fake, "wes", 2401).await;
    fake.set_token_lifetime(604_800);
    let other = app.second_node(&connector_config(&fake, false)).await;
    let upstream = &app.services.upstream;
    let (a, b) = tokio::join!(
        upstream.fresh_kept_tokens(&wes, "discord"),
        other.services.upstream.fresh_kept_tokens(&wes, "discord")
    );
    assert_eq!(fake.refreshes(), 1, "one refresh: {a:?} / {b:?}");
    let fresh: Vec<_> = [a, b]
        .into_iter()
        .filter_map(|r| match r {
            Ok(Some(tokens)) => Some(tokens),
            Err(latchkey::upstream::FreshTokensError::Busy) => None,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(!fresh.is_empty());
    // The tokens stored are the refreshed ones, kept: nothing was dropped.
    let kept = upstream
        .kept_tokens(&wes, "discord")
        .await
        .expect("readable")
        .expect("kept");
    assert!(kept.expires_at.expect("expiry") > latchkey::db::now());
    assert!(app.audit_events("upstream.tokens_refused").await.is_empty());
    // Once done, a later call uses them as they are.
    upstream
        .fresh_kept_tokens(&wes, "discord")
        .await
        .expect("fresh")
        .expect("kept");
    assert_eq!(fake.refreshes(), 1);
}

#[tokio::test]
async fn a_member_list_that_does_not_move_forward_stops_the_job() {
    let fake = DiscordFake::start().await;
    let app = connector_app(&fake, false).await;
    mapped_group(&app, "Raiders", RAIDERS).await;
    for id in 30_000..31_000 {
        fake.add_member(id, &[]);
    }
    fake.loop_member_pages();
    match app.services.discord.verify_all().await {
        Err(DiscordError::Api(e)) => assert!(e.to_string().contains("did not move forward"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(app.services.discord.sync_accounts().await.is_err());
    let pages = fake
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path.ends_with(&format!("/guilds/{GUILD}/members")))
        .count();
    assert_eq!(pages, 4, "two pages per job, then it stopped");
}

#[tokio::test]
async fn nicknames_drop_invisible_characters_members_put_in_their_names() {
    let fake = DiscordFake::start().await;
    let app = spawn_app_with(&format!(
        r#"
[upstream.discord]
kind = "discord"
client_id = "1234567890"
client_secret = "discord-secret"
token_endpoint = "{0}/api/oauth2/token"
api_base = "{0}/api/v10"
[discord]
enabled = true
provider = "discord"
bot_token = "{BOT_TOKEN}"
guild_id = "{GUILD}"
nickname_template = "{{discord_global_name}}"
"#,
        fake.uri
    ))
    .await;
    linked_user(&app, &fake, "xia", 2501).await;
    fake.add_member(2501, &[]);
    // The member names themselves "Admin" with zero-width and bidi characters in between.
    fake.set_profile(
        2501,
        "xia",
        Some("Ad\u{200b}m\u{2060}i\u{feff}n\u{200f}"),
        None,
        None,
    );
    let report = app
        .services
        .discord
        .enforce_nicknames()
        .await
        .expect("enforced");
    assert_eq!(report.changed, 1, "{report}");
    assert_eq!(fake.nick_of(2501).as_deref(), Some("Admin"));
}

#[tokio::test]
async fn staff_learn_nothing_of_the_connectors_configuration() {
    let app = spawn_app_with("[discord]\nenabled = true\n").await;
    let staff = app.create_plain_staff("helper").await;
    let helper = Actor::user(staff.id, None);
    let discord = &app.services.discord;
    // Misconfigured (no provider, no token): staff are refused before that is looked at.
    assert!(matches!(
        discord.test_connection(&helper).await,
        Err(DiscordError::Forbidden(_))
    ));
    assert!(matches!(
        discord.create_groups_for_roles(&helper).await,
        Err(DiscordError::Forbidden(_))
    ));
    assert!(matches!(
        discord.sync_roles(&helper).await,
        Err(DiscordError::Forbidden(_))
    ));
    assert!(matches!(
        discord.test_connection(&Actor::system()).await,
        Err(DiscordError::Misconfigured(_))
    ));
}

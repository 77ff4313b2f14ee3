//! The Discord profile (issue 11, seed 000's `DiscordUser`) over HTTP against the wiremock
//! Discord: stored at the first sign-in and refreshed at each one after, keyed by the snowflake.

use latchkey::db::discord_accounts::{self, DiscordAccountRow};
use latchkey::db::DbError;
use reqwest::StatusCode;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{spawn_app_with, TestApp};
use crate::upstream_discord::{me, round_trip, token_response};

/// The snowflake of [`me`].
const NELLY: i64 = 80_351_110_224_678_912;

/// A server with the Discord fake as provider `discord`, `provider` (TOML) added to its table.
pub(crate) async fn discord_rp_with_provider(discord: &MockServer, provider: &str) -> TestApp {
    spawn_app_with(&format!(
        r#"
[upstream.discord]
kind = "discord"
client_id = "1234567890"
client_secret = "discord-secret"
authorization_endpoint = "{0}/oauth2/authorize"
token_endpoint = "{0}/api/oauth2/token"
api_base = "{0}/api/v10"
{1}
"#,
        discord.uri(),
        provider
    ))
    .await
}

/// Discord's token endpoint, answering every exchange.
pub(crate) async fn tokens(discord: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .respond_with(token_response())
        .mount(discord)
        .await;
}

/// `GET /users/@me` answering `profile`, for the next `times` calls.
pub(crate) async fn profile_once(discord: &MockServer, profile: serde_json::Value, times: u64) {
    Mock::given(method("GET"))
        .and(path("/api/v10/users/@me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(profile))
        .up_to_n_times(times)
        .mount(discord)
        .await;
}

/// The stored profile of snowflake `id`.
async fn stored(app: &TestApp, id: i64) -> Option<DiscordAccountRow> {
    app.services
        .db
        .read(move |conn| discord_accounts::find(conn, id).map_err(DbError::from))
        .await
        .expect("db")
}

#[tokio::test]
async fn the_profile_is_stored_at_sign_in_and_refreshed_at_the_next() {
    let discord = MockServer::start().await;
    tokens(&discord).await;
    profile_once(&discord, me(), 1).await;
    let mut changed = me();
    changed["username"] = "nelly.f".into();
    changed["global_name"] = serde_json::Value::Null;
    changed["avatar"] = "a_1269e74af4df7417b13759eae50c83dc".into();
    changed["locale"] = "pt-BR".into();
    changed["mfa_enabled"] = false.into();
    changed["public_flags"] = 0.into();
    profile_once(&discord, changed, 1).await;
    let rp = discord_rp_with_provider(&discord, "").await;

    let first = round_trip(&rp.anonymous_visitor(), "c1").await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let row = stored(&rp, NELLY).await.expect("a profile row");
    let user = rp
        .services
        .accounts
        .find_by_login("nelly")
        .await
        .expect("db")
        .expect("account");
    let links = rp.services.upstream.links_of(&user.id).await.expect("db");
    assert_eq!(row.link_id, links[0].id, "one-to-one with the link");
    assert_eq!(
        (
            row.username.as_str(),
            row.tag.as_str(),
            row.discriminator.as_str()
        ),
        ("nelly", "nelly", "0")
    );
    assert_eq!(row.global_name.as_deref(), Some("Nelly Furtado"));
    assert_eq!(
        row.avatar.as_deref(),
        Some("8342729096ea3675442027381ff50dfe")
    );
    assert_eq!((row.public_flags, row.flags), (64, 64));
    assert_eq!(row.locale.as_deref(), Some("en-US"));
    assert!(row.mfa_enabled && row.verified);
    assert_eq!(row.email.as_deref(), Some("nelly@discord.example"));
    let first_login = row.last_login;

    // The next sign-in (another browser) refreshes every field in place.
    let second = round_trip(&rp.anonymous_visitor(), "c2").await;
    assert_eq!(second.status(), StatusCode::SEE_OTHER);
    let row = stored(&rp, NELLY).await.expect("still one row");
    assert_eq!(
        (row.username.as_str(), row.tag.as_str()),
        ("nelly.f", "nelly.f")
    );
    assert_eq!(row.global_name, None);
    assert_eq!(
        row.avatar.as_deref(),
        Some("a_1269e74af4df7417b13759eae50c83dc")
    );
    assert_eq!(row.locale.as_deref(), Some("pt-BR"));
    assert!(!row.mfa_enabled);
    assert_eq!(row.public_flags, 0);
    assert!(row.last_login >= first_login);
    let account = rp
        .services
        .upstream
        .discord_account(&user.id)
        .await
        .expect("db")
        .expect("linked");
    assert_eq!(
        account.profile.avatar_url(),
        format!(
            "https://cdn.discordapp.com/avatars/{NELLY}/a_1269e74af4df7417b13759eae50c83dc.gif"
        )
    );
    // The link shows the new name too.
    let links = rp.services.upstream.links_of(&user.id).await.expect("db");
    assert_eq!(links[0].username, "nelly.f");
}

#[tokio::test]
async fn a_legacy_tag_and_the_default_avatar_are_kept_as_discord_shows_them() {
    let discord = MockServer::start().await;
    tokens(&discord).await;
    let mut legacy = me();
    legacy["discriminator"] = "1337".into();
    legacy["avatar"] = serde_json::Value::Null;
    profile_once(&discord, legacy, 1).await;
    let rp = discord_rp_with_provider(&discord, "").await;
    let response = round_trip(&rp.anonymous_visitor(), "c").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let row = stored(&rp, NELLY).await.expect("a profile row");
    assert_eq!(row.tag, "nelly#1337");
    assert_eq!(row.avatar, None);
    let user = rp
        .services
        .accounts
        .find_by_login("nelly@discord.example")
        .await
        .expect("db")
        .expect("account");
    let account = rp
        .services
        .upstream
        .discord_account(&user.id)
        .await
        .expect("db")
        .expect("linked");
    // A legacy account's default avatar: discriminator % 5.
    assert_eq!(
        account.profile.avatar_url(),
        "https://cdn.discordapp.com/embed/avatars/2.png"
    );
}

#[tokio::test]
async fn a_discord_id_that_is_not_a_snowflake_signs_nobody_in() {
    let discord = MockServer::start().await;
    tokens(&discord).await;
    let mut odd = me();
    odd["id"] = "not-a-number".into();
    profile_once(&discord, odd, 1).await;
    let rp = discord_rp_with_provider(&discord, "").await;
    let response = round_trip(&rp.anonymous_visitor(), "c").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let html = response.text().await.expect("page");
    assert!(html.contains("unusable account identifier"), "{html}");
    assert!(rp
        .services
        .accounts
        .find_by_login("nelly")
        .await
        .expect("db")
        .is_none());
}

/// Every text the database holds, to look for a plaintext secret in: on SQLite the database
/// file and its write-ahead log byte for byte; on PostgreSQL each row of every table as text.
async fn everything_stored(app: &TestApp) -> String {
    if app.backend == "sqlite" {
        let file = app.db_url.trim_start_matches("sqlite://").to_owned();
        let mut all = Vec::new();
        for path in [file.clone(), format!("{file}-wal")] {
            if let Ok(bytes) = std::fs::read(&path) {
                all.extend_from_slice(&bytes);
            }
        }
        return String::from_utf8_lossy(&all).into_owned();
    }
    #[derive(diesel::QueryableByName)]
    struct Line {
        #[diesel(sql_type = diesel::sql_types::Text)]
        line: String,
    }
    app.services
        .db
        .read(|conn| {
            use diesel::RunQueryDsl;
            #[derive(diesel::QueryableByName)]
            struct Table {
                #[diesel(sql_type = diesel::sql_types::Text)]
                table_name: String,
            }
            let tables: Vec<Table> = diesel::sql_query(
                "SELECT table_name::text AS table_name FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .load(conn)?;
            let mut all = String::new();
            for table in tables {
                let lines: Vec<Line> = diesel::sql_query(format!(
                    "SELECT CAST(t AS TEXT) AS line FROM \"{}\" t",
                    table.table_name
                ))
                .load(conn)?;
                for line in lines {
                    all.push_str(&line.line);
                    all.push('\n');
                }
            }
            Ok::<_, DbError>(all)
        })
        .await
        .expect("db")
}

#[tokio::test]
async fn discord_tokens_are_kept_sealed_when_guilds_join_is_asked_and_read_back_whole() {
    use secrecy::ExposeSecret;
    let discord = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .respond_with(token_response())
        .up_to_n_times(1)
        .mount(&discord)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "second-access-token",
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": "identify email guilds.join"
        })))
        .mount(&discord)
        .await;
    profile_once(&discord, me(), 2).await;
    // `guilds.join` among the scopes turns keep_tokens on by default.
    let rp = discord_rp_with_provider(&discord, r#"scopes = ["identify", "email", "guilds.join"]"#)
        .await;
    let before = chrono::Utc::now().naive_utc();
    let response = round_trip(&rp.anonymous_visitor(), "c1").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let user = rp
        .services
        .accounts
        .find_by_login("nelly")
        .await
        .expect("db")
        .expect("account");
    let link = rp.services.upstream.links_of(&user.id).await.expect("db")[0].clone();
    let (access, refresh) = (
        link.access_token_sealed
            .clone()
            .expect("sealed access token"),
        link.refresh_token_sealed
            .clone()
            .expect("sealed refresh token"),
    );
    assert!(!access.contains("discord-access-token") && !refresh.contains("discord-refresh-token"));
    let expires = link.token_expires_at.expect("expiry");
    let week = chrono::TimeDelta::seconds(604_800);
    assert!(
        expires >= before + week - chrono::TimeDelta::seconds(2)
            && expires <= chrono::Utc::now().naive_utc() + week
    );
    let stored_text = everything_stored(&rp).await;
    assert!(
        stored_text.contains("nelly@discord.example"),
        "the scan sees what is stored"
    );
    for secret in ["discord-access-token", "discord-refresh-token"] {
        assert!(
            !stored_text.contains(secret),
            "{secret} stored in plaintext ({})",
            rp.backend
        );
    }

    let kept = rp
        .services
        .upstream
        .kept_tokens(&user.id, "discord")
        .await
        .expect("readable")
        .expect("kept");
    assert_eq!(kept.access_token.expose_secret(), "discord-access-token");
    assert_eq!(
        kept.refresh_token.as_ref().map(ExposeSecret::expose_secret),
        Some("discord-refresh-token")
    );
    assert_eq!(kept.expires_at, Some(expires));
    assert!(!format!("{kept:?}").contains("discord-access-token"));

    // The next sign-in's tokens replace them (this answer has no refresh token).
    let response = round_trip(&rp.anonymous_visitor(), "c2").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let kept = rp
        .services
        .upstream
        .kept_tokens(&user.id, "discord")
        .await
        .expect("readable")
        .expect("kept");
    assert_eq!(kept.access_token.expose_secret(), "second-access-token");
    assert!(kept.refresh_token.is_none());
    assert!(!everything_stored(&rp).await.contains("second-access-token"));
    // No other provider, no tokens.
    assert!(rp
        .services
        .upstream
        .kept_tokens(&user.id, "google")
        .await
        .expect("db")
        .is_none());
}

#[tokio::test]
async fn without_keep_tokens_no_token_is_stored() {
    let discord = MockServer::start().await;
    tokens(&discord).await;
    profile_once(&discord, me(), 1).await;
    let rp = discord_rp_with_provider(&discord, "").await;
    let response = round_trip(&rp.anonymous_visitor(), "c").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let user = rp
        .services
        .accounts
        .find_by_login("nelly")
        .await
        .expect("db")
        .expect("account");
    let link = rp.services.upstream.links_of(&user.id).await.expect("db")[0].clone();
    assert_eq!(
        (
            link.access_token_sealed,
            link.refresh_token_sealed,
            link.token_expires_at
        ),
        (None, None, None)
    );
    assert!(rp
        .services
        .upstream
        .kept_tokens(&user.id, "discord")
        .await
        .expect("db")
        .is_none());
}

/// Links the Discord fake's account to `username` (signed in with a password) through the
/// Linked accounts page's button, as that user's browser would.
async fn link_discord(app: &TestApp, username: &str) -> crate::helpers::Visitor {
    let visitor = app.visitor(username).await;
    let (status, page) = visitor.get("/account/linked/").await;
    assert_eq!(status, StatusCode::OK);
    let start = visitor
        .post_with_csrf_of(&page, "/accounts/upstream/discord/link/", &[])
        .await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let state =
        crate::helpers::query_param(&crate::helpers::location(&start), "state").expect("state");
    let back = visitor
        .get_response(&format!(
            "/accounts/upstream/discord/callback/?code=link&state={state}"
        ))
        .await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    assert_eq!(crate::helpers::location(&back), "/account/linked/");
    visitor
}

/// The payload of a JWT.
fn payload(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// Password-grant tokens for `username` with `scope`: (access token, ID token claims).
async fn tokens_for(
    app: &TestApp,
    client: &(String, String),
    username: &str,
    scope: &str,
) -> (String, serde_json::Value) {
    let (status, body) = app
        .post_token(
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", crate::helpers::PASSWORD),
                ("scope", scope),
            ],
            Some((&client.0, &client.1)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["access_token"]
            .as_str()
            .expect("access token")
            .to_owned(),
        payload(body["id_token"].as_str().expect("an ID token")),
    )
}

async fn json_with_bearer(app: &TestApp, path: &str, token: &str) -> serde_json::Value {
    let response = app.get_with_bearer(path, token).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.expect("JSON")
}

#[tokio::test]
async fn the_discord_scope_shows_the_linked_profile_in_id_tokens_userinfo_and_api_me() {
    let discord = MockServer::start().await;
    tokens(&discord).await;
    profile_once(&discord, me(), 1).await;
    let app = discord_rp_with_provider(&discord, "").await;
    app.create_user("ann").await;
    app.create_user("bob").await;
    link_discord(&app, "ann").await;
    let client = app.password_client(&[]).await;

    let (access, id_token) = tokens_for(&app, &client, "ann", "openid profile discord").await;
    let expected = serde_json::json!({
        "id": "80351110224678912",
        "username": "nelly",
        "tag": "nelly",
        "global_name": "Nelly Furtado",
        "avatar": "8342729096ea3675442027381ff50dfe",
        "avatar_url": "https://cdn.discordapp.com/avatars/80351110224678912/8342729096ea3675442027381ff50dfe.png",
        "public_flags": 64,
        "flags": 64,
        "locale": "en-US",
        "mfa_enabled": true,
        "email": "nelly@discord.example",
        "verified": true
    });
    assert_eq!(id_token["discord"], expected);
    let userinfo = json_with_bearer(&app, "/o/userinfo/", &access).await;
    assert_eq!(userinfo["discord"], expected);
    assert_eq!(userinfo["preferred_username"], "ann");
    let api_me = json_with_bearer(&app, "/api/me", &access).await;
    assert_eq!(api_me["discord"], expected);

    // Without the scope: no profile anywhere.
    let (access, id_token) = tokens_for(&app, &client, "ann", "openid profile email").await;
    assert!(id_token.get("discord").is_none(), "{id_token}");
    let userinfo = json_with_bearer(&app, "/o/userinfo/", &access).await;
    assert!(userinfo.get("discord").is_none(), "{userinfo}");
    let api_me = json_with_bearer(&app, "/api/me", &access).await;
    assert!(api_me.get("discord").is_none(), "{api_me}");

    // With the scope but no Discord account linked: the claim is left out, not null.
    let (access, id_token) = tokens_for(&app, &client, "bob", "openid profile discord").await;
    assert!(id_token.get("discord").is_none(), "{id_token}");
    let userinfo = json_with_bearer(&app, "/o/userinfo/", &access).await;
    assert!(userinfo.get("discord").is_none(), "{userinfo}");
    let api_me = json_with_bearer(&app, "/api/me", &access).await;
    assert!(api_me.get("discord").is_none(), "{api_me}");

    // Discovery names the scope and the claim.
    let (_, discovery) = app
        .anonymous_visitor()
        .get("/.well-known/openid-configuration")
        .await;
    let discovery: serde_json::Value = serde_json::from_str(&discovery).expect("JSON");
    for (list, item) in [
        ("scopes_supported", "discord"),
        ("claims_supported", "discord"),
    ] {
        assert!(
            discovery[list]
                .as_array()
                .expect("a list")
                .contains(&item.into()),
            "{list}"
        );
    }
}

#[tokio::test]
async fn the_consent_page_says_what_the_discord_scope_shows() {
    let app = spawn_app_with("").await;
    app.create_user("ann").await;
    let (client, _) = app
        .register(&crate::helpers::spec("public", &["authorization_code"]))
        .await;
    let (_, challenge) = crate::helpers::pkce_pair();
    let url = app.authorize_url(client.id(), "openid discord", &challenge, "st");
    assert_eq!(
        app.login("ann", crate::helpers::PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let consent = app.browse(&url).await;
    assert_eq!(consent.status(), StatusCode::OK);
    let html = consent.text().await.expect("html");
    assert!(html.contains("See your linked Discord account"), "{html}");
}

/// `GET /auth/` in `visitor`: the status and the JSON body.
pub(crate) async fn auth(visitor: &crate::helpers::Visitor) -> (StatusCode, serde_json::Value) {
    let response = visitor.get_response("/auth/").await;
    let status = response.status();
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store"),
        "/auth/ answers {status} with no-store"
    );
    (status, response.json().await.expect("JSON"))
}

#[tokio::test]
async fn auth_answers_the_signed_in_users_discord_profile_or_401_or_404() {
    let discord = MockServer::start().await;
    tokens(&discord).await;
    profile_once(&discord, me(), 1).await;
    let mut second = me();
    second["id"] = "41771983423143937".into();
    second["username"] = "ann_d".into();
    profile_once(&discord, second, 1).await;
    let app = discord_rp_with_provider(&discord, "").await;

    let (status, body) = auth(&app.anonymous_visitor()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "login_required");

    // Signed in with a password, no Discord account linked.
    app.create_user("ann").await;
    let ann = app.visitor("ann").await;
    let (status, body) = auth(&ann).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");

    // Signed in with Discord.
    let nelly = app.anonymous_visitor();
    assert_eq!(
        round_trip(&nelly, "c").await.status(),
        StatusCode::SEE_OTHER
    );
    let (status, body) = auth(&nelly).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "80351110224678912");
    assert_eq!(body["tag"], "nelly");
    assert_eq!(body["global_name"], "Nelly Furtado");
    assert_eq!(
        body["avatar_url"],
        "https://cdn.discordapp.com/avatars/80351110224678912/8342729096ea3675442027381ff50dfe.png"
    );
    assert_eq!(body["email"], "nelly@discord.example");
    assert_eq!(
        (body["verified"].clone(), body["mfa_enabled"].clone()),
        (true.into(), true.into())
    );
    let last_login = body["last_login"].as_str().expect("last_login");
    assert!(
        chrono::DateTime::parse_from_rfc3339(last_login).is_ok(),
        "{last_login}"
    );

    // Only GET.
    let post = nelly
        .client
        .post(nelly.url("/auth/"))
        .send()
        .await
        .expect("POST");
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Unlinking Discord takes the profile with it.
    let ann_links = link_discord(&app, "ann").await;
    let (status, body) = auth(&ann_links).await;
    assert_eq!(
        (status, body["username"].clone()),
        (StatusCode::OK, "ann_d".into())
    );
    let (_, page) = ann_links.get("/account/linked/").await;
    let unlinked = ann_links
        .post_with_csrf_of(&page, "/account/linked/discord/unlink/", &[])
        .await;
    assert_eq!(unlinked.status(), StatusCode::SEE_OTHER);
    let (status, _) = auth(&ann_links).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(stored(&app, 41_771_983_423_143_937).await.is_none());
}

#[tokio::test]
async fn one_discord_user_through_two_discord_providers_has_one_profile_that_follows_the_latest_link(
) {
    let discord = MockServer::start().await;
    tokens(&discord).await;
    profile_once(&discord, me(), 3).await;
    let provider = |id: &str| {
        format!(
            r#"
[upstream.{id}]
kind = "discord"
client_id = "{id}-client"
client_secret = "s"
authorization_endpoint = "{0}/oauth2/authorize"
token_endpoint = "{0}/api/oauth2/token"
api_base = "{0}/api/v10"
"#,
            discord.uri()
        )
    };
    let app = spawn_app_with(&format!("{}{}", provider("one"), provider("two"))).await;
    // Signs in through "one" (a new account), then links "two" from the same browser.
    let visitor = app.anonymous_visitor();
    let start = visitor.get_response("/accounts/upstream/one/login/").await;
    let state =
        crate::helpers::query_param(&crate::helpers::location(&start), "state").expect("state");
    let back = visitor
        .get_response(&format!(
            "/accounts/upstream/one/callback/?code=c&state={state}"
        ))
        .await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    let link_of = |provider: &'static str| {
        let app = &app;
        async move {
            let user = app
                .services
                .accounts
                .find_by_login("nelly")
                .await
                .expect("db")
                .expect("account");
            app.services
                .upstream
                .links_of(&user.id)
                .await
                .expect("db")
                .into_iter()
                .find(|l| l.provider_id == provider)
                .expect("linked")
                .id
        }
    };
    assert_eq!(
        stored(&app, NELLY).await.expect("row").link_id,
        link_of("one").await
    );

    let (_, page) = visitor.get("/account/linked/").await;
    let start = visitor
        .post_with_csrf_of(&page, "/accounts/upstream/two/link/", &[])
        .await;
    let state =
        crate::helpers::query_param(&crate::helpers::location(&start), "state").expect("state");
    let back = visitor
        .get_response(&format!(
            "/accounts/upstream/two/callback/?code=c&state={state}"
        ))
        .await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        stored(&app, NELLY).await.expect("row").link_id,
        link_of("two").await
    );

    // Signing in through "one" again takes it back.
    let again = app.anonymous_visitor();
    let start = again.get_response("/accounts/upstream/one/login/").await;
    let state =
        crate::helpers::query_param(&crate::helpers::location(&start), "state").expect("state");
    let back = again
        .get_response(&format!(
            "/accounts/upstream/one/callback/?code=c&state={state}"
        ))
        .await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        stored(&app, NELLY).await.expect("row").link_id,
        link_of("one").await
    );
}

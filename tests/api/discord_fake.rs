//! A wiremock fake of Discord for the connector's tests (issue 12): one guild with roles,
//! members and the bot, speaking API v10 as Discord does — `GET /users/@me` for the bot (`Bot`
//! token) and for users (their `Bearer` token), the guild's roles, members one at a time and
//! in pages (`limit`, `after`), `PUT`/`DELETE` of a member's role (204, the `X-Audit-Log-Reason`
//! kept), `PUT /guilds/{guild}/members/{user}` with a user's `guilds.join` token (201 added,
//! 204 already a member, 403 for a token it did not issue), and the OAuth2 token endpoint
//! (codes and refresh tokens). Errors are Discord's JSON (`code`, `message`); answers to come
//! can be made to fail first ([`DiscordFake::fail_next`]). The state changes with the calls,
//! so a test reads the guild as Discord would have it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use wiremock::matchers::path_regex;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The guild's id.
pub const GUILD: u64 = 81_384_788_765_712_384;
/// The bot's user id.
pub const BOT: u64 = 41_771_983_423_143_937;
/// The guild owner's user id.
pub const OWNER: u64 = 7_777;
/// The bot token the fake accepts.
pub const BOT_TOKEN: &str = "bot-token.abc.def";

/// Roles of the guild: (id, name, position, managed, permissions).
pub const BOT_ROLE: u64 = 500;
/// A managed role (the booster role).
pub const BOOSTER: u64 = 501;
/// A role above the bot's.
pub const ADMINS: u64 = 502;
/// Mappable roles below the bot's.
pub const RAIDERS: u64 = 503;
/// Another mappable role.
pub const SCOUTS: u64 = 504;
/// A role someone gives by hand, never mapped.
pub const HANDMADE: u64 = 505;

/// Discord's permission bits.
const MANAGE_ROLES: u64 = 1 << 28;
const MANAGE_NICKNAMES: u64 = 1 << 27;
const CREATE_INVITE: u64 = 1;

/// A request the fake answered, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// `GET`, `PUT`, …
    pub method: String,
    /// The path, e.g. `/api/v10/guilds/1/members/2/roles/3`.
    pub path: String,
    /// `X-Audit-Log-Reason`, when sent.
    pub reason: Option<String>,
}

struct Role {
    id: u64,
    name: String,
    position: i64,
    managed: bool,
    permissions: u64,
    color: u32,
}

struct State {
    roles: Vec<Role>,
    /// Members: user id → (username, role ids).
    members: BTreeMap<u64, (String, BTreeSet<u64>)>,
    /// Users Discord knows: id → username.
    users: BTreeMap<u64, String>,
    /// What members show besides their username: id → (global name, avatar hash, nickname).
    profiles: BTreeMap<u64, Profile>,
    /// OAuth2 codes: code → user id.
    codes: BTreeMap<String, u64>,
    /// Live user access tokens → user id.
    access_tokens: BTreeMap<String, u64>,
    /// Live refresh tokens → user id.
    refresh_tokens: BTreeMap<String, u64>,
    /// `expires_in` of the tokens issued next.
    expires_in: i64,
    /// Answers to give first: (method, path suffix, status, body).
    failures: VecDeque<(String, String, ResponseTemplate)>,
    seen: Vec<Seen>,
    issued: u64,
    /// The member list ignores `after` (a broken or hostile API that pages forever).
    looping: bool,
}

/// The fake (cheap to clone: shared state).
#[derive(Clone)]
pub struct DiscordFake {
    state: Arc<Mutex<State>>,
    /// `http://127.0.0.1:PORT`.
    pub uri: String,
    _server: Arc<MockServer>,
}

impl DiscordFake {
    /// A guild whose bot holds its own managed role at position 10 with Manage Roles, Manage
    /// Nicknames and Create Instant Invite; the booster role (managed), Admins (position 20,
    /// above the bot), Raiders (5), Scouts (4) and Handmade (3).
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let roles = vec![
            Role {
                id: GUILD,
                name: "@everyone".into(),
                position: 0,
                managed: false,
                permissions: 0,
                color: 0,
            },
            Role {
                id: BOT_ROLE,
                name: "Latchkey bot".into(),
                position: 10,
                managed: true,
                permissions: MANAGE_ROLES | MANAGE_NICKNAMES | CREATE_INVITE,
                color: 0,
            },
            Role {
                id: BOOSTER,
                name: "Server Booster".into(),
                position: 2,
                managed: true,
                permissions: 0,
                color: 0x00f4_7fff,
            },
            Role {
                id: ADMINS,
                name: "Admins".into(),
                position: 20,
                managed: false,
                permissions: 8,
                color: 0x00e7_4c3c,
            },
            Role {
                id: RAIDERS,
                name: "Raiders".into(),
                position: 5,
                managed: false,
                permissions: 0,
                color: 0x0034_98db,
            },
            Role {
                id: SCOUTS,
                name: "Scouts".into(),
                position: 4,
                managed: false,
                permissions: 0,
                color: 0,
            },
            Role {
                id: HANDMADE,
                name: "Handmade".into(),
                position: 3,
                managed: false,
                permissions: 0,
                color: 0,
            },
        ];
        let mut members = BTreeMap::new();
        members.insert(BOT, ("latchkey-bot".to_owned(), BTreeSet::from([BOT_ROLE])));
        let fake = Self {
            state: Arc::new(Mutex::new(State {
                roles,
                members,
                users: BTreeMap::from([(BOT, "latchkey-bot".to_owned())]),
                profiles: BTreeMap::new(),
                codes: BTreeMap::new(),
                access_tokens: BTreeMap::new(),
                refresh_tokens: BTreeMap::new(),
                expires_in: 604_800,
                failures: VecDeque::new(),
                seen: Vec::new(),
                issued: 0,
                looping: false,
            })),
            uri: server.uri(),
            _server: Arc::new(server),
        };
        Mock::given(path_regex("^/api/"))
            .respond_with(fake.clone())
            .mount(&fake._server)
            .await;
        fake
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("the fake's state")
    }

    /// A Discord user `id` called `username`, who signs in with OAuth2 code `code-{id}`.
    pub fn add_user(&self, id: u64, username: &str) {
        let mut s = self.lock();
        s.users.insert(id, username.to_owned());
        s.codes.insert(format!("code-{id}"), id);
    }

    /// Makes `id` a member of the guild with `roles`.
    pub fn add_member(&self, id: u64, roles: &[u64]) {
        let mut s = self.lock();
        let name = s
            .users
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("user{id}"));
        s.users.insert(id, name.clone());
        s.members
            .insert(id, (name, roles.iter().copied().collect()));
    }

    /// Adds a role below the bot's (unless `position` says otherwise) with `permissions`
    /// (Discord's bits).
    pub fn add_role(&self, id: u64, name: &str, position: i64, permissions: u64) {
        self.lock().roles.push(Role {
            id,
            name: name.to_owned(),
            position,
            managed: false,
            permissions,
            color: 0,
        });
    }

    /// Makes the member list ignore `after`: every page is the first one again.
    pub fn loop_member_pages(&self) {
        self.lock().looping = true;
    }

    /// Takes `id` out of the guild (they left, or were kicked).
    pub fn remove_member(&self, id: u64) {
        self.lock().members.remove(&id);
    }

    /// Renames user `id` to `username` and sets their display name, avatar hash and nickname.
    pub fn set_profile(
        &self,
        id: u64,
        username: &str,
        global_name: Option<&str>,
        avatar: Option<&str>,
        nick: Option<&str>,
    ) {
        let mut s = self.lock();
        s.users.insert(id, username.to_owned());
        if let Some((name, _)) = s.members.get_mut(&id) {
            username.clone_into(name);
        }
        s.profiles.insert(
            id,
            (
                global_name.map(str::to_owned),
                avatar.map(str::to_owned),
                nick.map(str::to_owned),
            ),
        );
    }

    /// Member `id`'s roles, `None` when not a member.
    pub fn roles_of(&self, id: u64) -> Option<BTreeSet<u64>> {
        self.lock().members.get(&id).map(|(_, r)| r.clone())
    }

    /// The lifetime of the user tokens issued from now on (negative: already expired).
    pub fn set_token_lifetime(&self, seconds: i64) {
        self.lock().expires_in = seconds;
    }

    /// Forgets every user access token issued so far (as if each had expired at Discord).
    pub fn expire_access_tokens(&self) {
        self.lock().access_tokens.clear();
    }

    /// Forgets every refresh token (the user removed the application).
    pub fn revoke_refresh_tokens(&self) {
        self.lock().refresh_tokens.clear();
    }

    /// The next request `method` whose path ends with `suffix` gets `answer` instead.
    pub fn fail_next(&self, method: &str, suffix: &str, answer: ResponseTemplate) {
        self.lock()
            .failures
            .push_back((method.to_owned(), suffix.to_owned(), answer));
    }

    /// Requests answered so far (bot API calls and token requests).
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Member `id`'s nickname.
    pub fn nick_of(&self, id: u64) -> Option<String> {
        self.lock().profiles.get(&id).and_then(|p| p.2.clone())
    }

    /// The nickname changes made so far: (user, reason).
    pub fn nick_calls(&self) -> Vec<(u64, Option<String>)> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == "PATCH")
            .filter_map(|s| Some((s.path.rsplit('/').next()?.parse().ok()?, s.reason)))
            .collect()
    }

    /// The role changes made so far: (method, user, role, reason).
    pub fn role_calls(&self) -> Vec<(String, u64, u64, Option<String>)> {
        self.seen()
            .into_iter()
            .filter(|s| s.path.contains("/roles/") && s.method != "GET")
            .filter_map(|s| {
                let parts: Vec<&str> = s.path.split('/').collect();
                // /api/v10/guilds/{g}/members/{u}/roles/{r}
                let user = parts.get(6)?.parse().ok()?;
                let role = parts.get(8)?.parse().ok()?;
                Some((s.method, user, role, s.reason))
            })
            .collect()
    }

    /// The joins made so far (`PUT /guilds/{guild}/members/{user}`), by user.
    pub fn joins(&self) -> Vec<u64> {
        self.seen()
            .into_iter()
            .filter(|s| {
                s.method == "PUT" && s.path.contains("/members/") && !s.path.contains("/roles/")
            })
            .filter_map(|s| s.path.rsplit('/').next()?.parse().ok())
            .collect()
    }

    /// Refresh-token grants asked for so far.
    pub fn refreshes(&self) -> usize {
        self.seen()
            .iter()
            .filter(|s| {
                s.path == "/api/oauth2/token" && s.reason.as_deref() == Some("refresh_token")
            })
            .count()
    }
}

fn error(status: u16, code: u64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "code": code, "message": message }))
}

fn user_json(id: u64, name: &str, bot: bool) -> Value {
    json!({
        "id": id.to_string(),
        "username": name,
        "discriminator": "0",
        "global_name": null,
        "avatar": null,
        "bot": bot,
        "mfa_enabled": false,
        "locale": "en-US",
        "flags": 0,
        "public_flags": 0,
        "email": format!("{name}@discord.example"),
        "verified": true
    })
}

type Profile = (Option<String>, Option<String>, Option<String>);

fn member_json(id: u64, name: &str, roles: &BTreeSet<u64>, profile: Option<&Profile>) -> Value {
    let (global_name, avatar, nick) = profile.cloned().unwrap_or_default();
    let mut user = user_json(id, name, id == BOT);
    user["global_name"] = json!(global_name);
    user["avatar"] = json!(avatar);
    json!({
        "user": user,
        "nick": nick,
        "avatar": null,
        "roles": roles.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "joined_at": "2024-01-01T00:00:00.000000+00:00",
        "premium_since": null,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "pending": false,
        "communication_disabled_until": null
    })
}

impl State {
    fn tokens(&mut self, user: u64) -> ResponseTemplate {
        self.issued += 1;
        let access = format!("user-access-{user}-{}", self.issued);
        let refresh = format!("user-refresh-{user}-{}", self.issued);
        self.access_tokens.insert(access.clone(), user);
        self.refresh_tokens.insert(refresh.clone(), user);
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": refresh,
            "scope": "identify email guilds.join"
        }))
    }

    fn token_endpoint(&mut self, body: &str) -> ResponseTemplate {
        let form: BTreeMap<String, String> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let refused = ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": "Invalid \"code\" in request."
        }));
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                match form.get("code").and_then(|c| self.codes.get(c)).copied() {
                    Some(user) => self.tokens(user),
                    None => refused,
                }
            }
            Some("refresh_token") => {
                match form
                    .get("refresh_token")
                    .and_then(|r| self.refresh_tokens.remove(r))
                {
                    Some(user) => self.tokens(user),
                    None => refused,
                }
            }
            _ => refused,
        }
    }

    /// The guild object of `GET /guilds/{guild}`, as Discord's documentation shows it.
    fn guild_json(&self) -> Value {
        json!({
            "id": GUILD.to_string(),
            "name": "Latchkey Raiders",
            "icon": null,
            "splash": null,
            "discovery_splash": null,
            "owner_id": OWNER.to_string(),
            "afk_channel_id": null,
            "afk_timeout": 300,
            "verification_level": 1,
            "default_message_notifications": 1,
            "explicit_content_filter": 2,
            "roles": self.roles_json(),
            "emojis": [],
            "features": ["COMMUNITY"],
            "mfa_level": 0,
            "application_id": null,
            "system_channel_id": null,
            "system_channel_flags": 0,
            "rules_channel_id": null,
            "vanity_url_code": null,
            "description": null,
            "banner": null,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": null,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": false,
            "safety_alerts_channel_id": null,
            "stickers": []
        })
    }

    fn roles_json(&self) -> Value {
        Value::Array(
            self.roles
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id.to_string(),
                        "name": r.name,
                        "color": r.color,
                        "hoist": false,
                        "icon": null,
                        "unicode_emoji": null,
                        "position": r.position,
                        "permissions": r.permissions.to_string(),
                        "managed": r.managed,
                        "mentionable": false,
                        "flags": 0
                    })
                })
                .collect(),
        )
    }

    fn api(&mut self, request: &Request, parts: &[&str]) -> ResponseTemplate {
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let method = request.method.as_str();
        if let (Some(bearer), ["users", "@me"]) = (auth.strip_prefix("Bearer "), parts) {
            return match self.access_tokens.get(bearer).copied() {
                Some(user) => {
                    let name = self.users.get(&user).cloned().unwrap_or_default();
                    ResponseTemplate::new(200).set_body_json(user_json(user, &name, false))
                }
                None => error(401, 0, "401: Unauthorized"),
            };
        }
        if auth != format!("Bot {BOT_TOKEN}") {
            return error(401, 0, "401: Unauthorized");
        }
        let guild = GUILD.to_string();
        match (method, parts) {
            ("GET", ["users", "@me"]) => {
                ResponseTemplate::new(200).set_body_json(user_json(BOT, "latchkey-bot", true))
            }
            (_, ["guilds", g, ..]) if *g != guild => error(404, 10_004, "Unknown Guild"),
            ("GET", ["guilds", _]) => ResponseTemplate::new(200).set_body_json(self.guild_json()),
            ("PATCH", ["guilds", _, "members", user]) => {
                let Ok(user) = user.parse::<u64>() else {
                    return error(404, 10_007, "Unknown Member");
                };
                let Some((_, roles)) = self.members.get(&user) else {
                    return error(404, 10_007, "Unknown Member");
                };
                let top = self
                    .roles
                    .iter()
                    .filter(|r| roles.contains(&r.id))
                    .map(|r| r.position)
                    .max()
                    .unwrap_or(0);
                if user == OWNER || top >= 10 {
                    return error(403, 50_013, "Missing Permissions");
                }
                let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
                let nick = body["nick"].as_str().map(str::to_owned);
                if nick.as_ref().is_some_and(|n| n.chars().count() > 32) {
                    return error(400, 50_035, "Invalid Form Body");
                }
                self.profiles.entry(user).or_default().2 = nick;
                let (name, roles) = self.members[&user].clone();
                ResponseTemplate::new(200).set_body_json(member_json(
                    user,
                    &name,
                    &roles,
                    self.profiles.get(&user),
                ))
            }
            ("GET", ["guilds", _, "roles"]) => {
                ResponseTemplate::new(200).set_body_json(self.roles_json())
            }
            ("GET", ["guilds", _, "members"]) => {
                let query: BTreeMap<String, String> = request
                    .url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(1);
                if !(1..=1000).contains(&limit) {
                    return error(400, 50_035, "Invalid Form Body");
                }
                let after: u64 = query
                    .get("after")
                    .and_then(|a| a.parse().ok())
                    .filter(|_| !self.looping)
                    .unwrap_or(0);
                let page: Vec<Value> = self
                    .members
                    .range(after + 1..)
                    .take(limit)
                    .map(|(id, (name, roles))| member_json(*id, name, roles, self.profiles.get(id)))
                    .collect();
                ResponseTemplate::new(200).set_body_json(Value::Array(page))
            }
            ("GET", ["guilds", _, "members", user]) => {
                match user
                    .parse::<u64>()
                    .ok()
                    .and_then(|u| self.members.get(&u).map(|m| (u, m)))
                {
                    Some((id, (name, roles))) => ResponseTemplate::new(200)
                        .set_body_json(member_json(id, name, roles, self.profiles.get(&id))),
                    None => error(404, 10_007, "Unknown Member"),
                }
            }
            (m @ ("PUT" | "DELETE"), ["guilds", _, "members", user, "roles", role]) => {
                let (Ok(user), Ok(role)) = (user.parse::<u64>(), role.parse::<u64>()) else {
                    return error(404, 10_007, "Unknown Member");
                };
                let Some(the_role) = self.roles.iter().find(|r| r.id == role) else {
                    return error(404, 10_011, "Unknown Role");
                };
                if the_role.managed || the_role.position >= 10 {
                    return error(403, 50_013, "Missing Permissions");
                }
                match self.members.get_mut(&user) {
                    Some((_, roles)) => {
                        if m == "PUT" {
                            roles.insert(role);
                        } else {
                            roles.remove(&role);
                        }
                        ResponseTemplate::new(204)
                    }
                    None => error(404, 10_007, "Unknown Member"),
                }
            }
            ("PUT", ["guilds", _, "members", user]) => {
                let Ok(user) = user.parse::<u64>() else {
                    return error(404, 10_013, "Unknown User");
                };
                let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
                let token = body["access_token"].as_str().unwrap_or_default();
                if self.access_tokens.get(token) != Some(&user) {
                    return error(403, 50_025, "Invalid OAuth2 access token");
                }
                if self.members.contains_key(&user) {
                    return ResponseTemplate::new(204);
                }
                let roles: BTreeSet<u64> = body["roles"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str()?.parse().ok())
                    .collect();
                let name = self.users.get(&user).cloned().unwrap_or_default();
                let member = member_json(user, &name, &roles, self.profiles.get(&user));
                self.members.insert(user, (name, roles));
                ResponseTemplate::new(201).set_body_json(member)
            }
            _ => error(404, 0, "404: Not Found"),
        }
    }
}

impl Respond for DiscordFake {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.lock();
        let path = request.url.path().to_owned();
        let method = request.method.as_str().to_owned();
        let reason = if path == "/api/oauth2/token" {
            form_urlencoded::parse(&request.body)
                .find(|(k, _)| k == "grant_type")
                .map(|(_, v)| v.into_owned())
        } else {
            request
                .headers
                .get("x-audit-log-reason")
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned()
                })
        };
        s.seen.push(Seen {
            method: method.clone(),
            path: path.clone(),
            reason,
        });
        if let Some(i) = s
            .failures
            .iter()
            .position(|(m, suffix, _)| *m == method && path.ends_with(suffix.as_str()))
        {
            if let Some((_, _, answer)) = s.failures.remove(i) {
                return answer;
            }
        }
        if path == "/api/oauth2/token" {
            let body = String::from_utf8_lossy(&request.body).into_owned();
            return s.token_endpoint(&body);
        }
        let Some(rest) = path.strip_prefix("/api/v10/") else {
            return error(404, 0, "404: Not Found");
        };
        let parts: Vec<&str> = rest.split('/').collect();
        s.api(request, &parts)
    }
}

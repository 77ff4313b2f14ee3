//! The bot's calls to Discord's REST API (v10), over twilight's client, which keeps Discord's
//! per-route buckets and the global limit from the `X-RateLimit-*` headers before each request
//! and, after a 401, refuses every later call with the same bot token (Discord bans clients
//! that keep sending invalid requests). What twilight leaves to its caller is done here
//! ([`DiscordApi::send`]):
//!
//! * a 429 is tried again after the `retry_after` Discord sends with it (the body's copy of
//!   `Retry-After`), up to [`MAX_TRIES`] times, when that is at most [`MAX_WAIT`]; a longer
//!   wait is handed back ([`ApiError::RateLimited`]) for the caller to schedule;
//! * a 5xx, a timeout, a broken connection or an error answer that is not Discord's JSON (a
//!   proxy's HTML page) is tried again after [`DiscordApi::backoff`], doubling, up to
//!   [`MAX_TRIES`] tries;
//! * 401, 403, 404 and other 4xx are never tried again: they are Discord's answer;
//! * requests of one client are spaced [`MIN_INTERVAL`] apart, under Discord's global limit of
//!   50 per second (twilight's ratelimiter only waits after a global 429).
//!
//! Reference: Discord's developer documentation, "Rate Limits", "Guild" (roles, members,
//! `PUT /guilds/{guild}/members/{user}` with the user's `guilds.join` token) and "Audit Logs"
//! (`X-Audit-Log-Reason`).

use std::future::IntoFuture;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use twilight_http::error::ErrorType;
use twilight_http::request::AuditLogReason;
use twilight_http::response::Response;
use twilight_model::guild::{Member, Role};
use twilight_model::id::marker::{GuildMarker, RoleMarker, UserMarker};
use twilight_model::id::Id;
use url::Url;

/// Tries of one call, the first included.
pub const MAX_TRIES: u32 = 4;

/// The longest `retry_after` waited for inside one call; a longer one is handed back.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Discord's API root; [`DiscordApi::new`] accepts another host (a test fake) with the same
/// path.
pub const DISCORD_API: &str = "https://discord.com/api/v10";

/// The least time between two requests of one client: Discord's global limit is 50 requests
/// per second per bot (twilight only reacts to a global 429; this keeps us under it).
pub const MIN_INTERVAL: Duration = Duration::from_millis(20);

/// Discord's JSON error code for a user who is not a member of the guild.
pub const UNKNOWN_MEMBER: u64 = 10_007;

/// Why a call to Discord failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: the token is invalid (the bot's, or the user's for `guilds.join`). Not tried again.
    #[error("Discord refused the token (401 Unauthorized)")]
    Unauthorized,
    /// 403: the bot lacks a permission or access (Discord's code and message).
    #[error("Discord refused: {message} (403, code {code})")]
    Forbidden {
        /// Discord's JSON error code (50013: Missing Permissions, 50001: Missing Access).
        code: u64,
        /// Discord's message.
        message: String,
    },
    /// 404: no such guild, member, role or user (Discord's code).
    #[error("Discord does not know it: {message} (404, code {code})")]
    NotFound {
        /// Discord's JSON error code (10007: Unknown Member, 10011: Unknown Role, …).
        code: u64,
        /// Discord's message.
        message: String,
    },
    /// 429 with a `retry_after` longer than [`MAX_WAIT`], or still after [`MAX_TRIES`].
    #[error("Discord's rate limit: try again in {} s", retry_after.as_secs_f64())]
    RateLimited {
        /// How long Discord asked to wait.
        retry_after: Duration,
    },
    /// Discord could not be reached, timed out or failed (5xx) on every try.
    #[error("Discord is unavailable: {0}")]
    Unavailable(String),
    /// Another answer Discord gave (400, …) or one that could not be read.
    #[error("Discord answered: {0}")]
    Refused(String),
}

impl ApiError {
    /// Whether trying again later may succeed (rate limits and outages), as opposed to
    /// Discord's considered refusal.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable(_))
    }
}

/// A guild member as the connector reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuildMember {
    /// The user's snowflake.
    pub user_id: u64,
    /// Their username.
    pub username: String,
    /// Their legacy discriminator (0 for a unique username).
    pub discriminator: u16,
    /// Their display name.
    pub global_name: Option<String>,
    /// Their avatar's image hash (`a_…` when animated).
    pub avatar: Option<String>,
    /// Their nickname in the guild.
    pub nick: Option<String>,
    /// Their roles in the guild (`@everyone` not listed).
    pub roles: Vec<u64>,
}

impl From<Member> for GuildMember {
    fn from(m: Member) -> Self {
        Self {
            user_id: m.user.id.get(),
            username: m.user.name,
            discriminator: m.user.discriminator,
            global_name: m.user.global_name,
            avatar: m.user.avatar.map(|a| a.to_string()),
            nick: m.nick,
            roles: m.roles.iter().map(|r| r.get()).collect(),
        }
    }
}

/// What `PUT /guilds/{guild}/members/{user}` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Joined {
    /// 201: the user was added to the guild.
    Added,
    /// 204: the user was a member already.
    AlreadyMember,
}

/// The bot's client for one guild.
pub struct DiscordApi {
    client: twilight_http::Client,
    guild: Id<GuildMarker>,
    backoff: Duration,
    pacer: Pacer,
}

/// Spaces requests [`MIN_INTERVAL`] apart (Discord's global 50 requests per second).
#[derive(Debug)]
struct Pacer(tokio::sync::Mutex<Option<tokio::time::Instant>>);

impl Pacer {
    fn new() -> Self {
        Self(tokio::sync::Mutex::new(None))
    }

    /// Waits until [`MIN_INTERVAL`] has passed since the previous request, then lets this one
    /// go.
    async fn wait_turn(&self) {
        let mut last = self.0.lock().await;
        if let Some(at) = *last {
            tokio::time::sleep_until(at + MIN_INTERVAL).await;
        }
        *last = Some(tokio::time::Instant::now());
    }
}

impl std::fmt::Debug for DiscordApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // twilight's own Debug redacts the token; the guild is no secret.
        f.debug_struct("DiscordApi")
            .field("guild", &self.guild)
            .finish_non_exhaustive()
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ApiSetupError {
    /// The API root is not Discord's and not `http(s)://host[:port]/api/v10`.
    #[error("the Discord API root must end in /api/v10 (got {0})")]
    Base(String),
    /// The guild id is zero.
    #[error("the guild id must not be 0")]
    Guild,
}

fn snowflake<M>(id: u64) -> Option<Id<M>> {
    Id::new_checked(id)
}

impl DiscordApi {
    /// A client for `guild` with the bot's `token`, talking to `api_base` — Discord's
    /// ([`DISCORD_API`]) or another host serving the same paths under `/api/v10` (a test fake;
    /// twilight calls it a proxy). Server errors are retried after `backoff`, doubling.
    ///
    /// # Errors
    /// [`ApiSetupError`] for an API root of another shape, or guild 0.
    pub fn new(
        api_base: &Url,
        token: &SecretString,
        guild: u64,
        backoff: Duration,
    ) -> Result<Self, ApiSetupError> {
        let guild = snowflake(guild).ok_or(ApiSetupError::Guild)?;
        let mut builder = twilight_http::Client::builder()
            .token(format!("Bot {}", token.expose_secret()))
            .timeout(TIMEOUT);
        if api_base.as_str().trim_end_matches('/') != DISCORD_API {
            let path_ok = api_base.path().trim_end_matches('/') == "/api/v10";
            let host = api_base
                .host_str()
                .filter(|_| path_ok && api_base.query().is_none());
            let Some(host) = host else {
                return Err(ApiSetupError::Base(api_base.to_string()));
            };
            let authority = match api_base.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            };
            builder = builder.proxy(authority, api_base.scheme() == "http");
        }
        Ok(Self {
            client: builder.build(),
            guild,
            backoff,
            pacer: Pacer::new(),
        })
    }

    /// The guild's id.
    #[must_use]
    pub fn guild(&self) -> u64 {
        self.guild.get()
    }

    /// Sends the request `make` builds, trying again as the module says.
    async fn send<T, R, F>(&self, what: &str, make: F) -> Result<Response<T>, ApiError>
    where
        F: Fn() -> R,
        R: IntoFuture<Output = Result<Response<T>, twilight_http::Error>>,
    {
        let mut delay = self.backoff;
        let mut tries = 0;
        loop {
            tries += 1;
            self.pacer.wait_turn().await;
            let error = match make().into_future().await {
                Ok(response) => return Ok(response),
                Err(e) => e,
            };
            let (wait, failure) = classify(error);
            match wait {
                Some(Wait::RetryAfter(after)) if tries < MAX_TRIES && after <= MAX_WAIT => {
                    tracing::warn!(
                        call = what,
                        retry_after_ms = after.as_millis(),
                        "Discord rate-limited a call; waiting"
                    );
                    tokio::time::sleep(after).await;
                }
                Some(Wait::Backoff) if tries < MAX_TRIES => {
                    tracing::warn!(call = what, error = %failure, retry_in_ms = delay.as_millis(), "a Discord call failed; trying again");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
                _ => return Err(failure),
            }
        }
    }

    /// The bot's own user: (id, username). `GET /users/@me`.
    ///
    /// # Errors
    /// [`ApiError`]; [`ApiError::Unauthorized`] for an invalid bot token.
    pub async fn bot_user(&self) -> Result<(u64, String), ApiError> {
        let me = self
            .send("GET /users/@me", || self.client.current_user())
            .await?
            .model()
            .await
            .map_err(unreadable)?;
        Ok((me.id.get(), me.name))
    }

    /// The guild's roles. `GET /guilds/{guild}/roles`.
    ///
    /// # Errors
    /// [`ApiError`]; 403/404 when the bot is not in the guild.
    pub async fn roles(&self) -> Result<Vec<Role>, ApiError> {
        self.send("GET /guilds/{guild}/roles", || {
            self.client.roles(self.guild)
        })
        .await?
        .models()
        .await
        .map_err(unreadable)
    }

    /// The member `user` of the guild; `None` when they are not one (404 Unknown Member).
    /// `GET /guilds/{guild}/members/{user}`.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn member(&self, user: u64) -> Result<Option<GuildMember>, ApiError> {
        let Some(user) = snowflake::<UserMarker>(user) else {
            return Ok(None);
        };
        match self
            .send("GET /guilds/{guild}/members/{user}", || {
                self.client.guild_member(self.guild, user)
            })
            .await
        {
            Ok(response) => Ok(Some(response.model().await.map_err(unreadable)?.into())),
            Err(ApiError::NotFound { code, .. }) if code == UNKNOWN_MEMBER => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One page of the guild's members, by user id, after user `after` (0: from the start), at
    /// most `limit` (1 to 1000). `GET /guilds/{guild}/members?limit=…&after=…` (needs the bot's
    /// Server Members intent).
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn members_page(&self, after: u64, limit: u16) -> Result<Vec<GuildMember>, ApiError> {
        let limit = limit.clamp(1, 1000);
        let members = self
            .send("GET /guilds/{guild}/members", || {
                let request = self.client.guild_members(self.guild).limit(limit);
                match snowflake::<UserMarker>(after) {
                    Some(after) => request.after(after),
                    None => request,
                }
            })
            .await?
            .models()
            .await
            .map_err(unreadable)?;
        Ok(members.into_iter().map(GuildMember::from).collect())
    }

    /// The guild owner's user id (`GET /guilds/{guild}`).
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn owner(&self) -> Result<u64, ApiError> {
        let guild = self
            .send("GET /guilds/{guild}", || self.client.guild(self.guild))
            .await?
            .model()
            .await
            .map_err(unreadable)?;
        Ok(guild.owner_id.get())
    }

    /// Sets member `user`'s nickname (1 to 32 characters), with `reason`.
    /// `PATCH /guilds/{guild}/members/{user}`.
    ///
    /// # Errors
    /// [`ApiError`]; [`ApiError::Refused`] for a nickname Discord would not take.
    pub async fn set_nick(&self, user: u64, nick: &str, reason: &str) -> Result<(), ApiError> {
        let user = snowflake::<UserMarker>(user)
            .ok_or_else(|| ApiError::Refused("user id 0".to_owned()))?;
        self.send("PATCH /guilds/{guild}/members/{user}", || {
            self.client
                .update_guild_member(self.guild, user)
                .nick(Some(nick))
                .reason(reason)
        })
        .await
        .map(|_| ())
    }

    /// Gives member `user` role `role`, with `reason` for Discord's audit log (at most 512
    /// characters). `PUT /guilds/{guild}/members/{user}/roles/{role}` (204).
    ///
    /// # Errors
    /// [`ApiError`]; [`ApiError::NotFound`] with [`UNKNOWN_MEMBER`] when the user is not in the
    /// guild.
    pub async fn add_role(&self, user: u64, role: u64, reason: &str) -> Result<(), ApiError> {
        let (user, role) = ids(user, role)?;
        self.send("PUT /guilds/{guild}/members/{user}/roles/{role}", || {
            self.client
                .add_guild_member_role(self.guild, user, role)
                .reason(reason)
        })
        .await
        .map(|_| ())
    }

    /// Takes role `role` from member `user`, with `reason`.
    /// `DELETE /guilds/{guild}/members/{user}/roles/{role}` (204).
    ///
    /// # Errors
    /// [`ApiError`]; [`ApiError::NotFound`] with [`UNKNOWN_MEMBER`] when the user is not in the
    /// guild.
    pub async fn remove_role(&self, user: u64, role: u64, reason: &str) -> Result<(), ApiError> {
        let (user, role) = ids(user, role)?;
        self.send("DELETE /guilds/{guild}/members/{user}/roles/{role}", || {
            self.client
                .remove_guild_member_role(self.guild, user, role)
                .reason(reason)
        })
        .await
        .map(|_| ())
    }

    /// Adds `user` to the guild with their `OAuth2` `access_token` (granted the `guilds.join`
    /// scope to this application) and `roles`. `PUT /guilds/{guild}/members/{user}`: 201 when
    /// added, 204 when already a member (both success; Discord ignores `roles` then).
    ///
    /// # Errors
    /// [`ApiError`]; [`ApiError::Forbidden`] or [`ApiError::Unauthorized`] when the token is
    /// dead or lacks `guilds.join`.
    pub async fn join(
        &self,
        user: u64,
        access_token: &SecretString,
        roles: &[u64],
    ) -> Result<Joined, ApiError> {
        let user = snowflake::<UserMarker>(user)
            .ok_or_else(|| ApiError::Refused("user id 0".to_owned()))?;
        let roles: Vec<Id<RoleMarker>> = roles.iter().filter_map(|r| snowflake(*r)).collect();
        let response = self
            .send("PUT /guilds/{guild}/members/{user}", || {
                self.client
                    .add_guild_member(self.guild, user, access_token.expose_secret())
                    .roles(&roles)
            })
            .await?;
        Ok(if response.status().get() == 201 {
            Joined::Added
        } else {
            Joined::AlreadyMember
        })
    }
}

fn ids(user: u64, role: u64) -> Result<(Id<UserMarker>, Id<RoleMarker>), ApiError> {
    match (snowflake(user), snowflake(role)) {
        (Some(user), Some(role)) => Ok((user, role)),
        _ => Err(ApiError::Refused("a user or role id of 0".to_owned())),
    }
}

fn unreadable(e: twilight_http::response::DeserializeBodyError) -> ApiError {
    ApiError::Refused(format!("an answer that is not what Discord sends: {e}"))
}

/// What to do before trying again, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// Discord's `retry_after`.
    RetryAfter(Duration),
    /// The caller's doubling delay.
    Backoff,
}

/// Sorts a twilight error into the module's rules: whether (and how) to try again, and the
/// error to report when not.
fn classify(error: twilight_http::Error) -> (Option<Wait>, ApiError) {
    use twilight_http::api_error::ApiError as Body;
    match error.into_parts() {
        (ErrorType::Unauthorized, _) => (None, ApiError::Unauthorized),
        (ErrorType::Response { error, status, .. }, _) => {
            let (code, message) = match &error {
                Body::General(general) => (general.code, general.message.clone()),
                other => (0, other.to_string()),
            };
            match status.get() {
                401 => (None, ApiError::Unauthorized),
                403 => (None, ApiError::Forbidden { code, message }),
                404 => (None, ApiError::NotFound { code, message }),
                429 => {
                    let after = match &error {
                        Body::Ratelimited(limit) if limit.retry_after.is_finite() => {
                            Duration::from_secs_f64(limit.retry_after.clamp(0.0, 86_400.0))
                        }
                        _ => Duration::from_secs(1),
                    };
                    (
                        Some(Wait::RetryAfter(after)),
                        ApiError::RateLimited { retry_after: after },
                    )
                }
                s if s >= 500 => (
                    Some(Wait::Backoff),
                    ApiError::Unavailable(format!("HTTP {s}: {message}")),
                ),
                s => (None, ApiError::Refused(format!("HTTP {s}: {message}"))),
            }
        }
        (ErrorType::ServiceUnavailable { .. }, _) => (
            Some(Wait::Backoff),
            ApiError::Unavailable("HTTP 503".to_owned()),
        ),
        // An error answer whose body is not Discord's JSON: a proxy's page in front of a 5xx.
        (ErrorType::Parsing { .. }, _) => (
            Some(Wait::Backoff),
            ApiError::Unavailable("an error answer that is not Discord's".to_owned()),
        ),
        (
            ErrorType::RequestError | ErrorType::RequestTimedOut | ErrorType::ChunkingResponse,
            source,
        ) => (
            Some(Wait::Backoff),
            ApiError::Unavailable(source.map_or_else(|| "no answer".to_owned(), |s| s.to_string())),
        ),
        (ErrorType::Validation, source) => (
            None,
            ApiError::Refused(source.map_or_else(String::new, |s| s.to_string())),
        ),
        (other, _) => (None, ApiError::Refused(format!("{other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_spaced_under_the_global_limit() {
        let pacer = Pacer::new();
        let started = tokio::time::Instant::now();
        for _ in 0..11 {
            pacer.wait_turn().await;
        }
        assert!(started.elapsed() >= MIN_INTERVAL * 10);
    }

    #[test]
    fn the_api_root_is_discords_or_a_host_serving_api_v10() {
        let token = SecretString::from("t");
        let ok = |base: &str| {
            DiscordApi::new(&Url::parse(base).expect("url"), &token, 1, MIN_INTERVAL).is_ok()
        };
        assert!(ok(DISCORD_API));
        assert!(ok("http://127.0.0.1:9999/api/v10"));
        assert!(ok("https://discord-proxy.internal/api/v10/"));
        assert!(!ok("https://discord.com/api/v9"));
        assert!(!ok("http://127.0.0.1:9999/"));
        assert!(DiscordApi::new(
            &Url::parse(DISCORD_API).expect("url"),
            &token,
            0,
            MIN_INTERVAL
        )
        .is_err());
    }
}

//! Browser sessions recorded server-side: created at login, checked on every signed-in request,
//! listed on the account page and ended one by one, all at once, or at logout — on every node,
//! since the only state is the `user_sessions` row.
//!
//! The session cookie (encrypted) holds a random *handle*; the row's id is its SHA-256, so a
//! copy of the database cannot be turned into a cookie. A session is live while its row has not
//! ended, its user is active, and it began after the user's `sessions_valid_after` cut-off
//! (moved by a password change, "sign out everywhere" and deactivation). The row's
//! `last_seen_at` is refreshed at most once a minute ([`last_seen_due`]), so signed-in browsing
//! does not write on every request.

use std::net::IpAddr;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::Connection;

use super::{Account, Accounts, VerifiedHash};
use crate::audit::{self, Actor, AuditEvent};
use crate::db::user_sessions::{self, SessionRow};
use crate::db::users::{self, UserRow};
use crate::db::{self, DbError};
use crate::secret;

/// How stale `last_seen_at` may get before a request refreshes it.
pub const LAST_SEEN_RESOLUTION: TimeDelta = TimeDelta::seconds(60);

/// The longest stored `User-Agent`, in characters.
pub const USER_AGENT_MAX_CHARS: usize = 255;

/// The most sessions the account page lists (the most recently seen).
pub const LISTED_SESSIONS_MAX: i64 = 50;

/// A browser session to record at login.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// Who signed in.
    pub user_id: String,
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header as sent (cleaned and cut to [`USER_AGENT_MAX_CHARS`] here).
    pub user_agent: String,
    /// RFC 8176 authentication methods, space-separated (`pwd`, `pwd otp`).
    pub amr: String,
    /// When the login began: the moment its password check started
    /// ([`PasswordLogin::began`](super::PasswordLogin)), also through a login code step.
    /// The session counts as started then, so a cut-off set while the login was under way
    /// (password change or reset, "sign out everywhere") ends it. `None`: now (a login
    /// without a password check, e.g. just after registering).
    pub began: Option<NaiveDateTime>,
    /// The password hash the login verified, when it verified one just now
    /// ([`PasswordLogin::verified_hash`](super::PasswordLogin::verified_hash)): the session is
    /// refused if the stored hash is another by the time it is recorded.
    pub verified_hash: Option<VerifiedHash>,
    /// The upstream identity provider the login went through (`[upstream.<id>]`); `None` for
    /// a local login.
    pub idp: Option<String>,
}

/// The row id of the session whose cookie holds `handle`.
#[must_use]
pub fn session_id(handle: &str) -> String {
    secret::sha256_hex(handle)
}

/// Whether a request at `now` should refresh a `last_seen_at` of `last_seen`: once it is
/// [`LAST_SEEN_RESOLUTION`] old or more.
#[must_use]
pub fn last_seen_due(last_seen: NaiveDateTime, now: NaiveDateTime) -> bool {
    now - last_seen >= LAST_SEEN_RESOLUTION
}

/// A `User-Agent` as stored: control characters removed, trimmed, at most
/// [`USER_AGENT_MAX_CHARS`] characters.
#[must_use]
pub fn clean_user_agent(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_control())
        .take(USER_AGENT_MAX_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Whether the session `row` is live for `user` (the row's user, as read under its lock where
/// it matters): the row names the user and has not ended, the user is active, and the session
/// began after the user's `sessions_valid_after` cut-off.
#[must_use]
pub fn is_live(row: &SessionRow, user: &UserRow) -> bool {
    row.user_id == user.id
        && row.ended_at.is_none()
        && user.is_active
        && user
            .sessions_valid_after
            .is_none_or(|cut| row.created_at > cut)
}

impl Accounts {
    /// Records a new browser session (a completed sign-in: it moves the user's `last_login`)
    /// and returns its handle, for the cookie only. The session
    /// the browser had before (`replacing`, a handle), if any, ends: a new login replaces it.
    ///
    /// Under the user's row lock (the same lock a password change, reset, "sign out
    /// everywhere" and deactivation take), the login must still hold: the user is active, no
    /// session cut-off was set at or after `new.began`, and the stored password hash is still
    /// `new.verified_hash` when given. Otherwise nothing is recorded and the answer is `None`:
    /// a login that began before such a change never yields a live session after it.
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(skip_all, fields(user_id = %new.user_id))]
    pub async fn start_browser_session(
        &self,
        new: NewSession,
        replacing: Option<String>,
    ) -> Result<Option<String>, DbError> {
        let handle = secret::new_token();
        let now = db::now();
        let began = new.began.map_or(now, |began| began.min(now));
        let verified_hash = new.verified_hash;
        let row = SessionRow {
            id: session_id(&handle),
            user_id: new.user_id,
            created_at: began,
            last_seen_at: now,
            ip: new.ip.map(|ip| ip.to_string()),
            user_agent: clean_user_agent(&new.user_agent),
            amr: new.amr,
            ended_at: None,
            idp: new.idp,
        };
        let recorded = self
            .db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    // The user's row lock first (lock order: user row → session rows).
                    let holds = users::lock(conn, &row.user_id)?.is_some_and(|user| {
                        user.is_active
                            && user.sessions_valid_after.is_none_or(|cut| cut < began)
                            && verified_hash
                                .as_ref()
                                .is_none_or(|hash| hash.matches(user.password_hash.as_ref()))
                    });
                    if !holds {
                        return Ok(false);
                    }
                    if let Some(old) = replacing {
                        // Only the browser's own earlier session, whoever it belonged to.
                        if let Some(old) = user_sessions::find(conn, &session_id(&old))? {
                            user_sessions::end(conn, &old.id, &old.user_id, now)?;
                        }
                    }
                    user_sessions::insert(conn, &row)?;
                    // A browser session starts only at a completed sign-in (password, code,
                    // verification, or the registration that set the password), so it moves
                    // `last_login`: "Last sign-in" right after a registration is that one.
                    users::touch_last_login(conn, &row.user_id, now)?;
                    Ok(true)
                })
                .map_err(DbError::from)
            })
            .await?;
        Ok(recorded.then_some(handle))
    }

    /// The user of the live session whose cookie holds `handle` and names `user_id`; `None`
    /// when the session is unknown, ended, older than the user's cut-off, another user's, or
    /// the user is missing or inactive. Refreshes `last_seen_at` when [`last_seen_due`].
    ///
    /// # Errors
    /// Storage failures.
    pub async fn browser_session_user(
        &self,
        handle: &str,
        user_id: &str,
    ) -> Result<Option<Account>, DbError> {
        let id = session_id(handle);
        let uid = user_id.to_owned();
        let found = self
            .db
            .read(move |conn| session_and_user(conn, &id, &uid).map_err(DbError::from))
            .await?;
        let Some((row, user)) = found else {
            return Ok(None);
        };
        if !is_live(&row, &user) {
            return Ok(None);
        }
        let now = db::now();
        if last_seen_due(row.last_seen_at, now) {
            let not_before = now - LAST_SEEN_RESOLUTION;
            let touched = self
                .db
                .write(move |conn| {
                    user_sessions::touch(conn, &row.id, now, not_before).map_err(DbError::from)
                })
                .await;
            if let Err(e) = touched {
                // The request is still signed in: only the "last seen" time is late.
                tracing::warn!(error = %e, "could not refresh a session's last-seen time");
            }
        }
        Ok(Some(Account::from(user)))
    }

    /// The user's live browser sessions (not ended, begun after the user's cut-off and after
    /// `logins_since`, the oldest login that has not expired), most recently seen first, at
    /// most [`LISTED_SESSIONS_MAX`].
    ///
    /// # Errors
    /// Storage failures.
    pub async fn browser_sessions(
        &self,
        user_id: &str,
        logins_since: NaiveDateTime,
    ) -> Result<Vec<SessionRow>, DbError> {
        let id = user_id.to_owned();
        self.db
            .read(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    let cut = users::find(conn, &id)?.and_then(|u| u.sessions_valid_after);
                    let since = cut.map_or(logins_since, |cut| cut.max(logins_since));
                    user_sessions::list_live(conn, &id, since, LISTED_SESSIONS_MAX)
                })
                .map_err(DbError::from)
            })
            .await
    }

    /// Ends the user's session `session_id` (a row id, as listed); `false` when the user has no
    /// such live session. Recorded as `session.ended`.
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn end_browser_session(
        &self,
        actor: &Actor,
        user_id: &str,
        session_id: &str,
    ) -> Result<bool, DbError> {
        let (uid, sid) = (user_id.to_owned(), session_id.to_owned());
        let event = AuditEvent::new("session.ended")
            .by(actor)
            .user(user_id)
            .detail("sessions_ended", 1);
        self.db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    let ended = user_sessions::end(conn, &sid, &uid, db::now())?;
                    if ended {
                        audit::record(conn, event)?;
                    }
                    Ok(ended)
                })
                .map_err(DbError::from)
            })
            .await
    }

    /// Ends every session of the user except the one whose cookie holds `keep` (this
    /// browser); returns how many ended. Recorded as `session.ended` when any did.
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(skip_all, fields(user_id = %user_id))]
    pub async fn end_other_browser_sessions(
        &self,
        actor: &Actor,
        user_id: &str,
        keep: &str,
    ) -> Result<usize, DbError> {
        let (uid, keep) = (user_id.to_owned(), session_id(keep));
        let actor = actor.clone();
        self.db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    let ended =
                        user_sessions::end_all_for_user(conn, &uid, Some(&keep), db::now())?;
                    if ended > 0 {
                        audit::record(
                            conn,
                            AuditEvent::new("session.ended")
                                .by(&actor)
                                .user(uid.clone())
                                .detail("sessions_ended", ended)
                                .detail("others", true),
                        )?;
                    }
                    Ok(ended)
                })
                .map_err(DbError::from)
            })
            .await
    }

    /// Ends the session whose cookie holds `handle` (when there is one) because its user signed
    /// out, and records the `logout` event, in one transaction. `rp_initiated`: the logout came
    /// from an application (OIDC RP-Initiated Logout 1.0).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn log_out(
        &self,
        user_id: &str,
        handle: Option<&str>,
        ip: Option<IpAddr>,
        rp_initiated: bool,
    ) -> Result<(), DbError> {
        let uid = user_id.to_owned();
        let sid = handle.map(session_id);
        let event = AuditEvent::new("logout")
            .by(&Actor::user(user_id, ip))
            .user(user_id)
            .detail("rp_initiated", rp_initiated);
        self.db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    if let Some(sid) = sid {
                        user_sessions::end(conn, &sid, &uid, db::now())?;
                    }
                    audit::record(conn, event)
                })
                .map_err(DbError::from)
            })
            .await
    }

    /// Keeps the session whose cookie holds `handle` alive across the cut-off `cut` its own
    /// user just made (a password change ends the user's *other* sessions): its login time
    /// moves just past `cut`, so any later cut-off still ends it. `false` when the session is
    /// not live.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn keep_browser_session(
        &self,
        user_id: &str,
        handle: &str,
        cut: NaiveDateTime,
    ) -> Result<bool, DbError> {
        let (uid, sid) = (user_id.to_owned(), session_id(handle));
        let after_cut = cut + TimeDelta::microseconds(1);
        self.db
            .write(move |conn| {
                user_sessions::restamp(conn, &sid, &uid, after_cut).map_err(DbError::from)
            })
            .await
    }
}

/// The session row `id` and its user, when the row names `user_id` and has not ended.
fn session_and_user(
    conn: &mut db::DbConnection,
    id: &str,
    user_id: &str,
) -> diesel::QueryResult<Option<(SessionRow, UserRow)>> {
    let Some(row) = user_sessions::find(conn, id)? else {
        return Ok(None);
    };
    if row.user_id != user_id || row.ended_at.is_some() {
        return Ok(None);
    }
    Ok(users::find(conn, user_id)?.map(|user| (row, user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000 + seconds, 0)
            .expect("valid time")
            .naive_utc()
    }

    #[test]
    fn last_seen_is_refreshed_at_most_once_a_minute() {
        assert!(!last_seen_due(at(0), at(0)));
        assert!(!last_seen_due(at(0), at(59)));
        assert!(last_seen_due(at(0), at(60)));
        assert!(last_seen_due(at(0), at(3600)));
        // A clock that went backwards writes nothing.
        assert!(!last_seen_due(at(60), at(0)));
    }

    #[test]
    fn user_agents_are_cleaned_and_cut() {
        assert_eq!(
            clean_user_agent("  Mozilla/5.0\r\n(X11)  "),
            "Mozilla/5.0(X11)"
        );
        let long = "a".repeat(1000);
        assert_eq!(
            clean_user_agent(&long).chars().count(),
            USER_AGENT_MAX_CHARS
        );
        let wide = "é".repeat(300);
        assert_eq!(
            clean_user_agent(&wide).chars().count(),
            USER_AGENT_MAX_CHARS
        );
    }

    #[test]
    fn the_row_id_is_the_hash_of_the_handle() {
        assert_eq!(session_id("abc"), secret::sha256_hex("abc"));
        assert_ne!(session_id("abc"), "abc");
    }
}

//! The account page's browser sessions: the list (device, IP address, when signed in, when
//! last seen, "this browser"), ending one session (`POST /account/sessions/{id}/end/`), and
//! ending all the others (`POST /account/sessions/end_others/`).
//!
//! Only the user's own live sessions can be ended: any other id answers 404, as if it did not
//! exist. An ended session is signed out at its browser's next request, on whichever node
//! serves it (the row is the only state). Ending this browser's own session signs it out
//! at once, like "Sign out".

use actix_session::Session;
use actix_web::{web, HttpResponse};

use crate::accounts::sessions::session_id;
use crate::accounts::Accounts;
use crate::db::user_sessions::SessionRow;
use crate::db::DbError;
use crate::routes::browser::session_handle;
use crate::routes::chrome::{flash, Notice};
use crate::routes::errors::PageError;
use crate::routes::extract::{Form, SignedIn};
use crate::routes::format::Moment;
use crate::routes::http::see_other;
use crate::routes::WebConfig;

/// One row of the account page's session list.
pub struct SessionLine {
    /// The row id (SHA-256 hex of the cookie's handle), for the End form.
    pub id: String,
    /// "Firefox on Linux" and the like.
    pub device: String,
    /// The whole `User-Agent` (shown as a tooltip).
    pub user_agent: String,
    /// The address at login.
    pub ip: String,
    /// When the session signed in.
    pub created: Moment,
    /// When it was last seen (to the minute).
    pub last_seen: Moment,
    /// Whether this is the browser showing the page.
    pub this_browser: bool,
}

/// The user's live sessions for the account page, this browser first.
///
/// # Errors
/// Storage failures.
pub async fn session_lines(
    session: &Session,
    accounts: &Accounts,
    web: &WebConfig,
    user_id: &str,
) -> Result<Vec<SessionLine>, DbError> {
    // Logins older than the maximum session age have expired, whether or not they ended.
    let logins_since =
        crate::db::now() - chrono::TimeDelta::seconds(web.session_max_age_seconds.max(0));
    let current = session_handle(session).map(|h| session_id(&h));
    let rows = accounts.browser_sessions(user_id, logins_since).await?;
    let mut lines: Vec<SessionLine> = rows
        .into_iter()
        .map(|row| line(row, current.as_deref()))
        .collect();
    lines.sort_by_key(|l| !l.this_browser);
    Ok(lines)
}

fn line(row: SessionRow, current: Option<&str>) -> SessionLine {
    SessionLine {
        this_browser: current == Some(row.id.as_str()),
        device: device_summary(&row.user_agent),
        ip: row.ip.unwrap_or_else(|| "unknown".to_owned()),
        created: Moment::of(&row.created_at),
        last_seen: Moment::of(&row.last_seen_at),
        user_agent: row.user_agent,
        id: row.id,
    }
}

/// `POST /account/sessions/{id}/end/`: ends one of the user's sessions. Ending this browser's
/// own session signs it out at once, like "Sign out".
pub async fn end_session(
    user: SignedIn,
    _form: Form,
    path: web::Path<String>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, PageError> {
    let id = path.into_inner();
    // Row ids are SHA-256 hex; anything else cannot name a session.
    if id.len() != 64 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(session_not_found());
    }
    let this_browser = session_handle(user.session()).is_some_and(|h| session_id(&h) == id);
    if !accounts
        .end_browser_session(&user.actor(), &user.id, &id)
        .await?
    {
        return Err(session_not_found());
    }
    if this_browser {
        user.session().purge();
        return Ok(see_other("/accounts/login/"));
    }
    flash(
        user.session(),
        Notice::success("The session was ended. That browser is signed out."),
    );
    Ok(see_other("/account/#sessions"))
}

/// `POST /account/sessions/end_others/`: ends every session of the user but this one.
pub async fn end_other_sessions(
    user: SignedIn,
    _form: Form,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, PageError> {
    // The extractor passed, so the session has a live handle.
    let Some(handle) = session_handle(user.session()) else {
        return Ok(see_other("/accounts/login/"));
    };
    let ended = accounts
        .end_other_browser_sessions(&user.actor(), &user.id, &handle)
        .await?;
    let message = match ended {
        0 => "You had no other sessions.".to_owned(),
        1 => "1 other session was ended.".to_owned(),
        n => format!("{n} other sessions were ended."),
    };
    flash(user.session(), Notice::success(message));
    Ok(see_other("/account/#sessions"))
}

fn session_not_found() -> PageError {
    PageError::not_found(
        "Session not found",
        "You have no active session with this address. It may have ended already.",
    )
}

/// A short description of the device behind a `User-Agent`: "Firefox on Linux", "Safari on
/// iPhone", or the start of the string when it names no known browser.
#[must_use]
pub fn device_summary(user_agent: &str) -> String {
    let ua = user_agent.trim();
    if ua.is_empty() {
        return "Unknown device".to_owned();
    }
    let has = |needle: &str| ua.contains(needle);
    // Order matters: Edge and Opera say "Chrome", Chrome says "Safari".
    let browser = if has("Edg/") || has("Edge/") {
        Some("Edge")
    } else if has("OPR/") || has("Opera") {
        Some("Opera")
    } else if has("Firefox/") || has("FxiOS/") {
        Some("Firefox")
    } else if has("Chrome/") || has("Chromium/") || has("CriOS/") {
        Some("Chrome")
    } else if has("Safari/") && has("Version/") {
        Some("Safari")
    } else {
        None
    };
    let os = if has("iPhone") {
        Some("iPhone")
    } else if has("iPad") {
        Some("iPad")
    } else if has("Android") {
        Some("Android")
    } else if has("Windows") {
        Some("Windows")
    } else if has("Mac OS X") || has("Macintosh") {
        Some("macOS")
    } else if has("CrOS") {
        Some("ChromeOS")
    } else if has("Linux") || has("X11") {
        Some("Linux")
    } else {
        None
    };
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_owned(),
        (None, Some(o)) => format!("Browser on {o}"),
        (None, None) => {
            // A program such as `curl/8.5.0`: its product token.
            let product: String = ua
                .split_whitespace()
                .next()
                .unwrap_or(ua)
                .chars()
                .take(40)
                .collect();
            product
        }
    }
}

#[cfg(test)]
mod tests {
    use super::device_summary;

    #[test]
    fn devices_are_named_from_the_user_agent() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iPhone",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            ("curl/8.5.0", "curl/8.5.0"),
            ("", "Unknown device"),
        ];
        for (ua, expected) in cases {
            assert_eq!(device_summary(ua), expected, "{ua}");
        }
    }
}

//! What every hosted page shows around its content — the page chrome — and the one way pages
//! are rendered.
//!
//! Every page's template struct embeds one [`Chrome`] as its `chrome` field, and
//! `templates/base.html` reads it: who is signed in (and the sign-out form's CSRF token, which
//! the page's own forms use too), the main navigation with the current [`Section`], and the
//! one-time [`Notice`] left by the previous request (post/redirect/get: a handler that changed
//! something calls [`flash`] and redirects; the next page shows the notice once). A handler gets
//! its chrome from the extractor that signed the user in (`SignedIn::chrome`); pages for
//! visitors (sign-in, registration, password reset) from [`Chrome::visitor`] or
//! [`Chrome::for_browser`].

use actix_session::Session;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use askama::Template;
use serde::{Deserialize, Serialize};

use crate::db::users::UserRow;

/// Session key of the pending notice.
const SESSION_FLASH: &str = "flash";

/// The part of the site a page belongs to, for the navigation's "current page" marks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Section {
    /// Pages outside the signed-in navigation (sign-in, consent, errors).
    #[default]
    None,
    /// The developer portal (`/o/applications/`).
    Apps,
    /// Applications the user authorized (`/o/authorized_tokens/`).
    Authorized,
    /// The user's account (`/account/`).
    Account,
    /// The admin console, with the part of its side navigation.
    Admin(AdminArea),
}

/// The admin console's side navigation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminArea {
    /// `/admin/`.
    Dashboard,
    /// `/admin/users/…`.
    Users,
    /// `/admin/groups/…`.
    Groups,
    /// `/admin/tokens/`.
    Tokens,
    /// `/admin/audit/`.
    Audit,
}

impl Section {
    /// The section's name as the navigation templates compare it: `apps`, `authorized`,
    /// `account`, `admin` or the empty string.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::None => "",
            Self::Apps => "apps",
            Self::Authorized => "authorized",
            Self::Account => "account",
            Self::Admin(_) => "admin",
        }
    }

    /// The admin console's area (`dashboard`, `users`, `groups`, `tokens`, `audit`), or the
    /// empty string outside the console.
    #[must_use]
    pub fn area(&self) -> &'static str {
        match self {
            Self::Admin(AdminArea::Dashboard) => "dashboard",
            Self::Admin(AdminArea::Users) => "users",
            Self::Admin(AdminArea::Groups) => "groups",
            Self::Admin(AdminArea::Tokens) => "tokens",
            Self::Admin(AdminArea::Audit) => "audit",
            _ => "",
        }
    }
}

/// How a notice looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeKind {
    /// A change was made.
    Success,
    /// Something to know (nothing went wrong).
    Info,
    /// Something did not work as asked (an email could not be sent); the page still works.
    Problem,
}

/// A one-time message shown at the top of the next page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// How it looks.
    pub kind: NoticeKind,
    /// The sentence shown (escaped when rendered).
    pub text: String,
}

impl Notice {
    /// "It worked": a change was made.
    #[must_use]
    pub fn success(text: impl Into<String>) -> Self {
        Self {
            kind: NoticeKind::Success,
            text: text.into(),
        }
    }

    /// Information, nothing changed.
    #[must_use]
    pub fn info(text: impl Into<String>) -> Self {
        Self {
            kind: NoticeKind::Info,
            text: text.into(),
        }
    }

    /// Something did not work as asked.
    #[must_use]
    pub fn problem(text: impl Into<String>) -> Self {
        Self {
            kind: NoticeKind::Problem,
            text: text.into(),
        }
    }

    /// The stylesheet class.
    #[must_use]
    pub fn class(&self) -> &'static str {
        match self.kind {
            NoticeKind::Success => "notice",
            NoticeKind::Info => "notice info",
            NoticeKind::Problem => "alert",
        }
    }

    /// The ARIA role: `alert` for a problem, `status` otherwise.
    #[must_use]
    pub fn role(&self) -> &'static str {
        match self.kind {
            NoticeKind::Problem => "alert",
            NoticeKind::Success | NoticeKind::Info => "status",
        }
    }
}

/// Leaves `notice` for the next page this browser opens (post/redirect/get). A cookie that
/// cannot be written loses the notice, never the change: it is logged.
pub fn flash(session: &Session, notice: Notice) {
    if let Err(e) = session.insert(SESSION_FLASH, notice) {
        tracing::error!(error = %e, "could not keep a notice for the next page");
    }
}

/// The pending notice, removed: it is shown once.
fn take_flash(session: &Session) -> Option<Notice> {
    session
        .remove_as::<Notice>(SESSION_FLASH)
        .and_then(Result::ok)
}

/// The page chrome (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct Chrome {
    /// The signed-in user's username; `None` for visitors.
    pub who: Option<String>,
    /// Whether the signed-in user may open the admin console.
    pub is_staff: bool,
    /// Where the page belongs in the navigation.
    pub section: Section,
    /// This session's CSRF token, for every form on the page (empty on pages without one).
    pub csrf_token: String,
    /// The notice left by the previous request, shown once.
    pub notice: Option<Notice>,
}

impl Chrome {
    /// The chrome of a page for `user` in `section`: takes the pending notice.
    #[must_use]
    pub fn for_user(session: &Session, user: &UserRow, section: Section) -> Self {
        Self {
            who: Some(user.username.clone()),
            is_staff: user.has_staff_access(),
            section,
            csrf_token: super::browser::csrf_token(session),
            notice: take_flash(session),
        }
    }

    /// The chrome of a page for a visitor (sign-in, registration, password reset): nobody is
    /// signed in, the page's forms get this session's CSRF token; takes the pending notice.
    #[must_use]
    pub fn visitor(session: &Session) -> Self {
        Self {
            csrf_token: super::browser::csrf_token(session),
            notice: take_flash(session),
            ..Self::default()
        }
    }

    /// The chrome of a page open to visitors and signed-in users alike (verification, password
    /// reset): [`Chrome::for_user`] outside any section when `user` is signed in, else
    /// [`Chrome::visitor`].
    #[must_use]
    pub fn for_browser(session: &Session, user: Option<&UserRow>) -> Self {
        match user {
            Some(user) => Self::for_user(session, user, Section::None),
            None => Self::visitor(session),
        }
    }

    /// As [`Chrome::for_browser`], but a pending notice stays pending for the next page that
    /// has a notice area (the start page and the consent page have none: a notice belongs to
    /// the page the change ends on).
    #[must_use]
    pub fn without_notice(session: &Session, user: Option<&UserRow>) -> Self {
        Self {
            who: user.map(|u| u.username.clone()),
            is_staff: user.is_some_and(UserRow::has_staff_access),
            section: Section::None,
            csrf_token: super::browser::csrf_token(session),
            notice: None,
        }
    }

    /// The signed-in user's username, or the empty string for a visitor (for pages that name
    /// the user in their text, e.g. the consent page).
    #[must_use]
    pub fn username(&self) -> &str {
        self.who.as_deref().unwrap_or_default()
    }

    /// The chrome of a page rendered without a session (error pages): no forms, no notice.
    #[must_use]
    pub fn anonymous() -> Self {
        Self::default()
    }
}

/// Renders `template` with `status` as an HTML page (`Cache-Control: no-store`: pages may
/// show secrets and personal data). A template that fails to render is a bug: logged, and the
/// plain-text 500 answer says so.
pub fn render(status: StatusCode, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(body) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("The page could not be rendered.")
        }
    }
}

/// Renders `template` with 200.
pub fn page(template: &impl Template) -> HttpResponse {
    render(StatusCode::OK, template)
}

/// What a confirmation asks (see [`ConfirmPage`]).
#[derive(Clone, Debug)]
pub struct ConfirmText {
    /// The question, as the page's heading ("Delete My app?").
    pub title: String,
    /// What will happen, in a sentence or two.
    pub message: String,
    /// Where the form posts.
    pub action: String,
    /// Hidden fields sent along (name, value), e.g. `confirm=yes`.
    pub hidden: Vec<(String, String)>,
    /// The action button's label ("Delete application").
    pub button: String,
    /// Where Cancel goes.
    pub cancel: String,
}

/// The one confirmation page of every destructive action (delete, rotate, revoke, sign out
/// everywhere, deactivate): a GET shows it, its CSRF-checked POST does the action.
#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    /// The page chrome (its section decides the frame: the admin console's, or the plain one).
    pub chrome: Chrome,
    /// What to confirm.
    pub confirm: ConfirmText,
}

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
//!
//! The chrome also carries the [`Brand`] (`[branding]`: the product name in the title, header
//! and footer, the logo, the accent stylesheet), built once at start-up and kept in
//! [`super::WebConfig`]. Only the `response_mode=form_post` document has no chrome: it is an
//! answer for the client, submitted by a script before anyone reads it.

use std::sync::Arc;

use actix_session::Session;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::{Deserialize, Serialize};

use crate::accounts::Account;
use crate::config::Branding;

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
    /// `/admin/providers/…`.
    Providers,
    /// `/admin/tokens/`.
    Tokens,
    /// `/admin/audit/`.
    Audit,
    /// `/admin/discord/`.
    Discord,
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

    /// The admin console's area (`dashboard`, `users`, `groups`, `providers`, `tokens`,
    /// `audit`), or the empty string outside the console.
    #[must_use]
    pub fn area(&self) -> &'static str {
        match self {
            Self::Admin(AdminArea::Dashboard) => "dashboard",
            Self::Admin(AdminArea::Users) => "users",
            Self::Admin(AdminArea::Groups) => "groups",
            Self::Admin(AdminArea::Providers) => "providers",
            Self::Admin(AdminArea::Tokens) => "tokens",
            Self::Admin(AdminArea::Audit) => "audit",
            Self::Admin(AdminArea::Discord) => "discord",
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

/// The path of the branding stylesheet ([`Brand::stylesheet`]).
pub const BRANDING_STYLESHEET_PATH: &str = "/static/branding.css";

/// How the pages show the product (`[branding]`), built once at start-up and shared by every
/// page's [`Chrome`].
#[derive(Debug)]
pub struct Brand {
    /// The product name: page titles, the header, the footer, and texts that name the product.
    pub name: String,
    /// The header's logo (`<img src>`, a path on this host or an https URL); `None` draws
    /// Latchkey's mark.
    pub logo_url: Option<String>,
    /// Where pages load the branding stylesheet from, with the colour as a version
    /// (`/static/branding.css?v=0a7f3b`, so a new colour is never read from a cache); `None`
    /// without `branding.accent_color`: pages then link only `static/style.css`.
    pub stylesheet_href: Option<String>,
    /// The branding stylesheet served at [`BRANDING_STYLESHEET_PATH`]: it sets `--accent`, the
    /// one colour `static/style.css` derives its accent shades from (light and dark mode), and
    /// `--on-accent`, the text colour that contrasts with it. No inline style: the pages' CSP
    /// has `style-src 'self'`.
    pub stylesheet: String,
}

impl Brand {
    /// The brand `branding` describes.
    #[must_use]
    pub fn new(branding: &Branding) -> Self {
        let (stylesheet_href, stylesheet) = match branding.accent_color {
            Some(color) => {
                let hex = color.hex();
                (
                    Some(format!(
                        "{BRANDING_STYLESHEET_PATH}?v={}",
                        hex.trim_start_matches('#')
                    )),
                    format!(
                        "/* branding.accent_color: the accent of style.css, light and dark. */\n\
                         :root {{ --accent: {hex}; --on-accent: {}; }}\n",
                        color.on_accent()
                    ),
                )
            }
            None => (
                None,
                "/* No branding.accent_color: style.css keeps its own accent. */\n".to_owned(),
            ),
        };
        Self {
            name: branding.name.as_str().to_owned(),
            logo_url: branding
                .logo_url
                .as_ref()
                .map(|logo| logo.as_str().to_owned()),
            stylesheet_href,
            stylesheet,
        }
    }
}

/// The brand of the application serving `req` (Latchkey's own for an application without a
/// [`super::WebConfig`], which only a test would build).
#[must_use]
pub fn brand_of(req: &HttpRequest) -> Arc<Brand> {
    req.app_data::<web::Data<super::WebConfig>>()
        .map_or_else(|| Arc::new(Brand::default()), |web| Arc::clone(&web.brand))
}

impl Default for Brand {
    /// Latchkey's own: the defaults of `[branding]`.
    fn default() -> Self {
        Self::new(&Branding::default())
    }
}

/// The page chrome (see the module documentation).
#[derive(Clone, Debug)]
pub struct Chrome {
    /// The signed-in user's username; `None` for visitors.
    pub who: Option<String>,
    /// Whether the signed-in user may open the admin console.
    pub is_staff: bool,
    /// Whether the signed-in user is a superuser (the console's superuser-only pages, such as
    /// the sign-in providers, are linked for them alone).
    pub is_superuser: bool,
    /// Where the page belongs in the navigation.
    pub section: Section,
    /// This session's CSRF token, for every form on the page (empty on pages without one).
    pub csrf_token: String,
    /// The notice left by the previous request, shown once.
    pub notice: Option<Notice>,
    /// The product name, logo and accent stylesheet.
    pub brand: Arc<Brand>,
}

impl Chrome {
    /// The chrome of a page for `user` in `section`: takes the pending notice.
    #[must_use]
    pub fn for_user(
        session: &Session,
        user: &Account,
        section: Section,
        brand: &Arc<Brand>,
    ) -> Self {
        Self {
            who: Some(user.username.clone()),
            is_staff: user.has_staff_access(),
            is_superuser: user.is_superuser,
            section,
            csrf_token: super::browser::csrf_token(session),
            notice: take_flash(session),
            brand: Arc::clone(brand),
        }
    }

    /// The chrome of a page for a visitor (sign-in, registration, password reset): nobody is
    /// signed in, the page's forms get this session's CSRF token; takes the pending notice.
    #[must_use]
    pub fn visitor(session: &Session, brand: &Arc<Brand>) -> Self {
        Self {
            csrf_token: super::browser::csrf_token(session),
            notice: take_flash(session),
            ..Self::anonymous(brand)
        }
    }

    /// The chrome of a page open to visitors and signed-in users alike (verification, password
    /// reset): [`Chrome::for_user`] outside any section when `user` is signed in, else
    /// [`Chrome::visitor`].
    #[must_use]
    pub fn for_browser(session: &Session, user: Option<&Account>, brand: &Arc<Brand>) -> Self {
        match user {
            Some(user) => Self::for_user(session, user, Section::None, brand),
            None => Self::visitor(session, brand),
        }
    }

    /// As [`Chrome::for_browser`], but a pending notice stays pending for the next page that
    /// has a notice area (the start page, the consent page, the RP-initiated logout's
    /// confirmation and the authorization endpoint's untrusted-redirect error have none: a
    /// notice belongs to the page the change ends on).
    #[must_use]
    pub fn without_notice(session: &Session, user: Option<&Account>, brand: &Arc<Brand>) -> Self {
        Self {
            who: user.map(|u| u.username.clone()),
            is_staff: user.is_some_and(Account::has_staff_access),
            is_superuser: user.is_some_and(|u| u.is_superuser),
            section: Section::None,
            csrf_token: super::browser::csrf_token(session),
            notice: None,
            brand: Arc::clone(brand),
        }
    }

    /// The signed-in user's username, or the empty string for a visitor (for pages that name
    /// the user in their text, e.g. the consent page).
    #[must_use]
    pub fn username(&self) -> &str {
        self.who.as_deref().unwrap_or_default()
    }

    /// The chrome of a page rendered without a session — error pages (which may answer a
    /// request whose session could not be read) and the signed-out page (whose session was
    /// just purged: reading a CSRF token would start a new one): a visitor's, with no forms and
    /// no notice.
    #[must_use]
    pub fn anonymous(brand: &Arc<Brand>) -> Self {
        Self {
            who: None,
            is_staff: false,
            is_superuser: false,
            section: Section::None,
            csrf_token: String::new(),
            notice: None,
            brand: Arc::clone(brand),
        }
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

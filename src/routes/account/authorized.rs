//! The applications the user has authorized (django-oauth-toolkit's `/o/authorized_tokens/`):
//! the list with scopes and active tokens, and revoking one (consent forgotten, tokens and
//! unused codes revoked). Only the user's own authorizations are shown or revocable: any other
//! `client_id` answers 404, as if it did not exist.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::clients::{split_list, Clients};
use crate::domain::{Page, PageRequest};
use crate::oauth::authorizations::AuthorizedApp;
use crate::oauth::{OAuth, Params};
use crate::routes::chrome::Chrome;
use crate::routes::chrome::{flash, page, ConfirmPage, ConfirmText, Notice, Section};
use crate::routes::errors::PageError;
use crate::routes::extract::{Form, SignedIn};
use crate::routes::format::{page_number, Moment, PageNav};
use crate::routes::http::see_other;
use crate::routes::WebConfig;

/// A scope with the words the consent page used for it.
pub(super) struct ScopeLine {
    name: String,
    /// `None` for a scope no longer in the configuration.
    description: Option<String>,
}

/// One row of the authorized-apps list.
struct AuthorizedRow {
    client_id: String,
    client_name: String,
    scopes: Vec<ScopeLine>,
    /// The RFC 8707 resources (APIs) consented to.
    resources: Vec<String>,
    /// When the user first consented; `None` when the application only holds tokens.
    authorized: Option<Moment>,
    updated: Option<Moment>,
    active_tokens: i64,
}

impl AuthorizedRow {
    fn new(app: AuthorizedApp, known: &BTreeMap<String, String>) -> Self {
        Self {
            scopes: scope_lines(&app.scope, known),
            resources: split_list(&app.resources),
            authorized: app.authorized_at.as_ref().map(Moment::of),
            updated: app.updated_at.as_ref().map(Moment::of),
            active_tokens: app.active_tokens,
            client_id: app.client_id,
            client_name: app.client_name,
        }
    }
}

#[derive(Template)]
#[template(path = "account/authorized.html")]
struct AuthorizedPage {
    chrome: Chrome,
    apps: Vec<AuthorizedRow>,
    page: PageNav,
}

/// `GET /o/authorized_tokens/`: the applications the user has authorized, with their scopes
/// and active tokens.
pub async fn list_authorized_apps(
    user: SignedIn,
    req: HttpRequest,
    clients: web::Data<Clients>,
    oauth: web::Data<OAuth>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let apps = oauth.authorized_apps(&user.id).await?;
    let known = clients.known_scopes();
    // One row per application the user authorized: few enough to page through in memory.
    let params = Params::from_query(req.query_string()).unwrap_or_default();
    let request = PageRequest::new(page_number(&params), web.page_size);
    let total = i64::try_from(apps.len()).unwrap_or(i64::MAX);
    let on_page = apps
        .into_iter()
        .skip(usize::try_from(request.offset()).unwrap_or(usize::MAX))
        .take(usize::try_from(request.size).unwrap_or(usize::MAX))
        .map(|app| AuthorizedRow::new(app, known))
        .collect();
    let listed = Page::new(on_page, request, total);
    Ok(page(&AuthorizedPage {
        chrome: user.chrome(Section::Authorized),
        page: PageNav::new(&listed, "/o/authorized_tokens/", &[]),
        apps: listed.items,
    }))
}

/// `GET /o/authorized_tokens/{client_id}/revoke/`: asks for confirmation.
pub async fn confirm_revoke_authorization(
    user: SignedIn,
    path: web::Path<String>,
    oauth: web::Data<OAuth>,
) -> Result<HttpResponse, PageError> {
    let app = authorized_app(&user, &path, &oauth).await?;
    let tokens = match app.active_tokens {
        0 => "It holds no active tokens.".to_owned(),
        1 => "Its 1 active token is revoked at once.".to_owned(),
        n => format!("Its {n} active tokens are revoked at once."),
    };
    Ok(page(&ConfirmPage {
        chrome: user.chrome(Section::Authorized),
        confirm: ConfirmText {
            title: "Revoke access?".to_owned(),
            message: format!(
                "“{}” will no longer be able to access your account. {tokens} If you use it again, it will have to ask for your permission again.",
                app.client_name
            ),
            action: revoke_path(&app.client_id),
            hidden: Vec::new(),
            button: "Revoke access".to_owned(),
            cancel: "/o/authorized_tokens/".to_owned(),
        },
    }))
}

/// `POST /o/authorized_tokens/{client_id}/revoke/`: forgets the consent and revokes the
/// application's tokens and unused codes for this user.
pub async fn revoke_authorization(
    user: SignedIn,
    _form: Form,
    path: web::Path<String>,
    oauth: web::Data<OAuth>,
) -> Result<HttpResponse, PageError> {
    let app = authorized_app(&user, &path, &oauth).await?;
    // `false` means a concurrent request revoked it first: the outcome is the same.
    oauth
        .revoke_authorization(&user.actor(), &user.id, &app.client_id)
        .await?;
    flash(
        user.session(),
        Notice::success(format!(
            "“{}” no longer has access to your account.",
            app.client_name
        )),
    );
    Ok(see_other("/o/authorized_tokens/"))
}

fn revoke_path(client_id: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    format!("/o/authorized_tokens/{encoded}/revoke/")
}

/// The user's authorization of `client_id`; 404 when they have none.
async fn authorized_app(
    user: &SignedIn,
    client_id: &str,
    oauth: &OAuth,
) -> Result<AuthorizedApp, PageError> {
    oauth
        .authorized_apps(&user.id)
        .await?
        .into_iter()
        .find(|a| a.client_id == client_id)
        .ok_or_else(|| {
            PageError::not_found(
                "Application not found",
                "You have not authorized an application at this address.",
            )
        })
}

/// The scopes of a stored, space-separated scope string, with their descriptions.
fn scope_lines(scope: &str, known: &BTreeMap<String, String>) -> Vec<ScopeLine> {
    scope
        .split_whitespace()
        .map(|name| ScopeLine {
            name: name.to_owned(),
            description: known.get(name).cloned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::scope_lines;

    #[test]
    fn scopes_get_their_descriptions_and_unknown_ones_none() {
        let known = [("profile".to_owned(), "See your name".to_owned())].into();
        let lines = scope_lines("profile  gone", &known);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].description.as_deref(), Some("See your name"));
        assert_eq!(lines[1].name, "gone");
        assert!(lines[1].description.is_none());
    }
}

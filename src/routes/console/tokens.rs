//! The console's token list (`/admin/tokens/`) and revocation (`/admin/tokens/revoke/`, after a
//! confirmation).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::audit::client_names;
use super::{
    count_of, not_allowed, query, user_filter, with_query, ClientRef, Person, UserChoice,
    UserFilterField,
};
use crate::accounts::Accounts;
use crate::clients::Clients;
use crate::db::tokens::TokenFilter;
use crate::domain::{Page, PageRequest};
use crate::oauth::authorizations::RevokeError;
use crate::oauth::OAuth;
use crate::routes::chrome::{
    flash, page, AdminArea, Chrome, ConfirmPage, ConfirmText, Notice, Section,
};
use crate::routes::errors::PageError;
use crate::routes::extract::{Form, Staff};
use crate::routes::format::{page_number, ticked, Moment, PageNav};
use crate::routes::http::see_other;
use crate::routes::WebConfig;

/// The console's tokens area in the navigation.
const TOKENS: Section = Section::Admin(AdminArea::Tokens);

/// One row of the token list.
struct TokenLine {
    id: String,
    /// A token of a staff or superuser account shown to a staff member who is not a superuser:
    /// no checkbox (the service refuses to revoke it anyway).
    protected: bool,
    kind: String,
    client: ClientRef,
    user: Option<Person>,
    scope: String,
    grant_type: String,
    created: Moment,
    expires: Moment,
}

#[derive(Template)]
#[template(path = "admin/tokens.html")]
struct TokensPage<'a> {
    chrome: Chrome,
    tokens: Vec<TokenLine>,
    user_id: &'a str,
    /// What the user filter field shows: the username, or what was typed.
    user_login: String,
    user_error: String,
    client_id: &'a str,
    page: PageNav,
}

/// `GET /admin/tokens/[?user_id=ID&client_id=ID&page=N]`: active tokens, newest first. The
/// filter form sends `user` (a username or email), which is looked up and replaced by
/// `user_id` in a redirect, so links and pages always carry the id.
pub async fn list_tokens(
    admin: Staff,
    req: HttpRequest,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    oauth: web::Data<OAuth>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let params = query(&req);
    let client_id = params.get("client_id").unwrap_or_default().trim();
    let (user_id, user_login, user_error) = match user_filter(
        &accounts,
        &params,
        "/admin/tokens/",
        &[("client_id", client_id)],
    )
    .await?
    {
        UserChoice::Redirect(response) => return Ok(response),
        UserChoice::Show(UserFilterField { id, login, error }) => (id, login, error),
    };
    let request = PageRequest::new(page_number(&params), web.page_size);
    let found = if user_error.is_empty() {
        let filter = TokenFilter {
            user_id: Some(user_id.clone()).filter(|s| !s.is_empty()),
            client_id: Some(client_id.to_owned()).filter(|s| !s.is_empty()),
        };
        oauth.list_tokens(filter, request).await?
    } else {
        Page::new(Vec::new(), request, 0)
    };
    let nav = PageNav::new(
        &found,
        "/admin/tokens/",
        &[("user_id", &user_id), ("client_id", client_id)],
    );
    let names = client_names(
        &clients,
        found.items.iter().map(|t| t.row.client_id.as_str()),
    )
    .await?;
    let tokens = found
        .items
        .into_iter()
        .map(|listing| {
            let row = listing.row;
            TokenLine {
                protected: listing.owner_is_admin
                    && !admin.is_superuser
                    && row.user_id.as_deref() != Some(admin.id.as_str()),
                client: ClientRef {
                    name: names.get(&row.client_id).cloned().flatten(),
                    id: row.client_id,
                },
                user: row.user_id.map(|id| Person {
                    id,
                    name: listing.username,
                }),
                created: Moment::of(&row.created_at),
                expires: Moment::of(&row.expires_at),
                id: row.id,
                kind: row.kind,
                scope: row.scope,
                grant_type: row.grant_type,
            }
        })
        .collect();
    Ok(page(&TokensPage {
        chrome: admin.chrome(TOKENS),
        tokens,
        user_id: &user_id,
        user_login,
        user_error,
        client_id,
        page: nav,
    }))
}

/// `POST /admin/tokens/revoke/`: the tokens ticked as `token:<row id>`. Without `confirm=yes`
/// it shows a confirmation page that posts them again; with it, it revokes them and goes back
/// to the list (keeping its `user_id` and `client_id` filters).
pub async fn revoke_tokens(
    admin: Staff,
    Form(form): Form,
    oauth: web::Data<OAuth>,
) -> Result<HttpResponse, PageError> {
    let filters = [
        ("user_id", form.get("user_id").unwrap_or_default()),
        ("client_id", form.get("client_id").unwrap_or_default()),
    ];
    let back = with_query("/admin/tokens/", &filters);
    let ids = ticked(&form, "token:");
    if ids.is_empty() {
        flash(
            admin.session(),
            Notice::info("No token was selected: tick the tokens to revoke first."),
        );
        return Ok(see_other(&back));
    }
    if form.get("confirm") != Some("yes") {
        let mut hidden: Vec<(String, String)> = ids
            .iter()
            .map(|id| (format!("token:{id}"), "on".to_owned()))
            .collect();
        hidden.extend(
            filters
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        hidden.push(("confirm".to_owned(), "yes".to_owned()));
        let how_many = count_of(i64::try_from(ids.len()).unwrap_or(i64::MAX), "token");
        return Ok(page(&ConfirmPage {
            chrome: admin.chrome(TOKENS),
            confirm: ConfirmText {
                title: format!("Revoke {how_many}?"),
                message: format!(
                    "The {how_many} you selected stop working at once: resource servers see them as inactive, and the applications holding them must ask their users to sign in again. This cannot be undone."
                ),
                action: "/admin/tokens/revoke/".to_owned(),
                hidden,
                button: format!("Revoke {how_many}"),
                cancel: back,
            },
        }));
    }
    match oauth.revoke_tokens(&admin.actor(), ids).await {
        Ok(revoked) => {
            let n = i64::try_from(revoked).unwrap_or(i64::MAX);
            flash(
                admin.session(),
                Notice::success(format!("{} revoked.", count_of(n, "token"))),
            );
            Ok(see_other(&back))
        }
        Err(RevokeError::Forbidden(refusal)) => Err(not_allowed(&refusal.to_string())),
        Err(RevokeError::Db(e)) => Err(e.into()),
    }
}

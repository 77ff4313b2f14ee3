//! `GET /o/applications/`: the signed-in user's applications; staff see every application,
//! with owners, and can search.

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::owner_name;
use crate::accounts::Accounts;
use crate::clients::{Client, Clients};
use crate::domain::PageRequest;
use crate::oauth::Params;
use crate::routes::chrome::{page, Chrome, Section};
use crate::routes::errors::PageError;
use crate::routes::extract::SignedIn;
use crate::routes::format::{page_number, PageNav};
use crate::routes::WebConfig;

/// One row of the application list.
struct AppRow {
    client: Client,
    owner: Option<String>,
    /// The allowed grant types, space-separated.
    grants: String,
}

#[derive(Template)]
#[template(path = "apps/list.html")]
struct ListPage<'a> {
    chrome: Chrome,
    apps: Vec<AppRow>,
    search: &'a str,
    page: PageNav,
}

/// `GET /o/applications/[?q=TEXT&page=N]`: the user's applications; staff see every
/// application, with owners, and can search.
pub async fn list_applications(
    user: SignedIn,
    req: HttpRequest,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let params = Params::from_query(req.query_string()).unwrap_or_default();
    let search = params.get("q").unwrap_or_default().trim().to_owned();
    let staff = user.has_staff_access();
    let owner = (!staff).then(|| user.id.clone());
    let request = PageRequest::new(page_number(&params), web.page_size);
    let found = clients
        .list_page(
            owner,
            Some(search.clone()).filter(|s| !s.is_empty()),
            request,
        )
        .await?;
    let nav = PageNav::new(&found, "/o/applications/", &[("q", &search)]);
    let mut apps = Vec::with_capacity(found.items.len());
    for client in found.items {
        let owner = if staff {
            owner_name(&accounts, &client).await?
        } else {
            None
        };
        let grants = client
            .grant_types
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        apps.push(AppRow {
            client,
            owner,
            grants,
        });
    }
    Ok(page(&ListPage {
        chrome: user.chrome(Section::Apps),
        apps,
        search: &search,
        page: nav,
    }))
}

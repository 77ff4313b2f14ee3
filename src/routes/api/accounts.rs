//! The account JSON API for first-party apps: logging out of one grant (`POST /api/logout/`)
//! or everywhere (`POST /api/logout_all/`), and the admin users API (`GET /api/users/`,
//! `GET /api/users/{id}/`).
//!
//! Every endpoint is a protected resource (RFC 6750): the access token goes in
//! `Authorization: Bearer …`, and token problems get RFC 6750 §3 answers with a
//! `WWW-Authenticate` challenge. Other errors are `{"error", "error_description"}` JSON.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDateTime, SecondsFormat};
use serde::{Deserialize, Serialize};

use crate::accounts::{AccountError, Accounts};
use crate::config::ADMIN_SCOPE;
use crate::db::users::{UserFilter, UserRow};
use crate::db::DbError;
use crate::domain::{Page, PageRequest};
use crate::groups::Groups;
use crate::oauth::bearer::BearerError;
use crate::oauth::logout::{EverywhereLogoutError, GrantLogoutError};
use crate::oauth::{OAuth, Params};
use crate::routes::api::bearer_error;
use crate::routes::support::{
    api_error, authorization_header, no_store, peer_ip, read_api_body, WebConfig,
};

/// The largest `page_size` of the users API.
pub const MAX_API_PAGE_SIZE: i64 = 100;

/// The body of `POST /api/logout/`.
#[derive(Debug, Deserialize)]
struct LogoutBody {
    refresh_token: String,
}

/// `POST /api/logout/` with `Authorization: Bearer ACCESS_TOKEN` and `{"refresh_token": …}`
/// (JSON or form): revokes the refresh token and every access token of its grant. The refresh
/// token must belong to the access token's grant; any other (unknown, another user's or
/// client's, another grant's) is `400 invalid_token` and nothing is revoked.
pub async fn logout(
    req: HttpRequest,
    payload: web::Payload,
    oauth: web::Data<OAuth>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let authorization = authorization_header(&req);
    // A request without credentials learns nothing about its body.
    if let Err(e) = crate::oauth::bearer::bearer_token(authorization) {
        return bearer_error(&e);
    }
    let body: LogoutBody = match read_api_body(&req, payload, web.max_body_bytes).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    match oauth
        .log_out_grant(authorization, &body.refresh_token)
        .await
    {
        Ok(_) => {
            no_store(&mut HttpResponse::Ok()).json(serde_json::json!({"status": "logged_out"}))
        }
        Err(GrantLogoutError::Bearer(e)) => bearer_error(&e),
        Err(GrantLogoutError::InvalidRefreshToken) => api_error(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "the refresh token is invalid, or is not of this access token's grant",
            None,
        ),
        Err(GrantLogoutError::Db(e)) => storage_failure(&e),
    }
}

/// `POST /api/logout_all/` with `Authorization: Bearer ACCESS_TOKEN`: revokes every token of
/// the token's user (for every client) and ends every browser session they have. The token must
/// be a first-party client's (`skip_authorization`) or carry the `logout_all` scope; any other
/// gets `403 insufficient_scope` with `scope="logout_all"` in the challenge (RFC 6750 §3.1).
pub async fn logout_all(req: HttpRequest, oauth: web::Data<OAuth>) -> HttpResponse {
    match oauth
        .log_out_everywhere(authorization_header(&req), peer_ip(&req))
        .await
    {
        Ok(revoked) => no_store(&mut HttpResponse::Ok()).json(serde_json::json!({
            "status": "logged_out_everywhere",
            "tokens_revoked": revoked,
        })),
        Err(EverywhereLogoutError::Bearer(e)) => bearer_error(&e),
        // The user was deleted after the token was checked: their tokens went with them.
        Err(EverywhereLogoutError::Account(AccountError::NotFound)) => bearer_error(
            &BearerError::InvalidToken("the access token is invalid, expired or revoked"),
        ),
        Err(EverywhereLogoutError::Account(AccountError::Db(e))) => storage_failure(&e),
        Err(EverywhereLogoutError::Account(e)) => {
            tracing::error!(error = %e, "logout_all failed");
            api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the logout could not be completed",
                None,
            )
        }
    }
}

/// A user as the admin API shows it.
#[derive(Debug, Serialize)]
struct ApiUser {
    id: String,
    username: String,
    email: String,
    first_name: String,
    last_name: String,
    is_active: bool,
    is_staff: bool,
    is_superuser: bool,
    email_verified: bool,
    /// RFC 3339, UTC.
    date_joined: String,
    /// RFC 3339, UTC; `null` before the first login.
    last_login: Option<String>,
    /// Names of the user's groups, by name.
    groups: Vec<String>,
}

impl ApiUser {
    fn new(user: UserRow, groups: Vec<String>) -> Self {
        Self {
            date_joined: rfc3339(&user.date_joined),
            last_login: user.last_login.as_ref().map(rfc3339),
            id: user.id,
            username: user.username,
            email: user.email,
            first_name: user.first_name,
            last_name: user.last_name,
            is_active: user.is_active,
            is_staff: user.is_staff,
            is_superuser: user.is_superuser,
            email_verified: user.email_verified,
            groups,
        }
    }
}

/// One page of the users list.
#[derive(Debug, Serialize)]
struct UserList {
    /// Users matching the filters, on every page.
    count: i64,
    page: i64,
    page_size: i64,
    /// The next page's URL, or `null` on the last page.
    next: Option<String>,
    /// The previous page's URL, or `null` on the first page.
    previous: Option<String>,
    results: Vec<ApiUser>,
}

/// `GET /api/users/?search=&active=true|false&staff=true|false&page=N&page_size=N`: users by
/// username, `page_size` (default `console.page_size`) at most [`MAX_API_PAGE_SIZE`]. Needs a
/// token with the `admin` scope held by an active staff user.
pub async fn list_users(
    req: HttpRequest,
    oauth: web::Data<OAuth>,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    if let Err(response) = require_admin(&req, &oauth).await {
        return response;
    }
    let query = match UsersQuery::parse(req.query_string(), web.page_size) {
        Ok(q) => q,
        Err(message) => {
            return api_error(StatusCode::BAD_REQUEST, "invalid_request", &message, None)
        }
    };
    let page = match accounts
        .list(
            query.filter.clone(),
            PageRequest::new(Some(query.page), query.page_size),
        )
        .await
    {
        Ok(p) => p,
        Err(e) => return storage_failure(&e),
    };
    let (next, previous) = query.links(&web.issuer, &page);
    let mut results = Vec::with_capacity(page.items.len());
    for user in page.items {
        match group_names(&groups, &user.id).await {
            Ok(names) => results.push(ApiUser::new(user, names)),
            Err(e) => return storage_failure(&e),
        }
    }
    no_store(&mut HttpResponse::Ok()).json(UserList {
        count: page.total,
        page: page.number,
        page_size: page.size,
        next,
        previous,
        results,
    })
}

/// `GET /api/users/{id}/`: one user, or `404 {"error": "not_found"}`. Same access rule as the
/// list.
pub async fn show_user(
    req: HttpRequest,
    path: web::Path<String>,
    oauth: web::Data<OAuth>,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
) -> HttpResponse {
    if let Err(response) = require_admin(&req, &oauth).await {
        return response;
    }
    let user = match accounts.find(path.into_inner()).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            return api_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "there is no user with this id",
                None,
            )
        }
        Err(e) => return storage_failure(&e),
    };
    match group_names(&groups, &user.id).await {
        Ok(names) => no_store(&mut HttpResponse::Ok()).json(ApiUser::new(user, names)),
        Err(e) => storage_failure(&e),
    }
}

/// The query of the users list, parsed.
#[derive(Debug, PartialEq, Eq)]
struct UsersQuery {
    filter: UserFilter,
    page: i64,
    page_size: i64,
}

impl UsersQuery {
    /// Parses `search`, `active`, `staff` (`true` or `false`), `page` (≥ 1) and `page_size`
    /// (1 to [`MAX_API_PAGE_SIZE`], default `default_size`). Errors name the bad parameter.
    fn parse(query: &str, default_size: i64) -> Result<Self, String> {
        let params = Params::from_query(query).map_err(|e| e.description.into_string())?;
        let flag = |name: &str| -> Result<Option<bool>, String> {
            match params.get(name).map(str::trim) {
                None | Some("") => Ok(None),
                Some("true") => Ok(Some(true)),
                Some("false") => Ok(Some(false)),
                Some(_) => Err(format!("{name} must be true or false")),
            }
        };
        let number = |name: &str, default: i64, max: i64| -> Result<i64, String> {
            match params.get(name).map(str::trim) {
                None | Some("") => Ok(default),
                Some(v) => v
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| format!("{name} must be a whole number from 1 to {max}")),
            }
        };
        let search = params
            .get("search")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(200).collect());
        Ok(Self {
            filter: UserFilter {
                search,
                active: flag("active")?,
                staff: flag("staff")?,
            },
            // Beyond this a page could not be addressed (`PageRequest` clamps it).
            page: number("page", 1, i64::MAX / crate::domain::page::MAX_PAGE_SIZE)?,
            page_size: number(
                "page_size",
                default_size.clamp(1, MAX_API_PAGE_SIZE),
                MAX_API_PAGE_SIZE,
            )?,
        })
    }

    /// The URLs of the next and previous pages of `page`, keeping the filters.
    fn links<T>(&self, issuer: &str, page: &Page<T>) -> (Option<String>, Option<String>) {
        let url = |number: i64| {
            let mut query = form_urlencoded::Serializer::new(String::new());
            if let Some(s) = &self.filter.search {
                query.append_pair("search", s);
            }
            for (name, value) in [("active", self.filter.active), ("staff", self.filter.staff)] {
                if let Some(v) = value {
                    query.append_pair(name, if v { "true" } else { "false" });
                }
            }
            query.append_pair("page", &number.to_string());
            query.append_pair("page_size", &page.size.to_string());
            format!("{issuer}/api/users/?{}", query.finish())
        };
        let next = (page.number < page.pages()).then(|| url(page.number + 1));
        let previous = (page.number > 1).then(|| url((page.number - 1).min(page.pages())));
        (next, previous)
    }
}

/// Checks that the request's bearer token has the `admin` scope and belongs to an active staff
/// user (`validate_bearer` refuses tokens of inactive users).
async fn require_admin(req: &HttpRequest, oauth: &OAuth) -> Result<UserRow, HttpResponse> {
    let grant = oauth
        .validate_bearer(authorization_header(req), Some(ADMIN_SCOPE))
        .await
        .map_err(|e| bearer_error(&e))?;
    let Some(user) = grant.user else {
        return Err(bearer_error(&BearerError::UserRequired));
    };
    if user.has_staff_access() {
        Ok(user)
    } else {
        Err(api_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the users API is for staff members",
            None,
        ))
    }
}

async fn group_names(groups: &Groups, user_id: &str) -> Result<Vec<String>, DbError> {
    Ok(groups
        .of_user(user_id)
        .await?
        .into_iter()
        .map(|g| g.name)
        .collect())
}

fn rfc3339(t: &NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// As [`api_unavailable`](super::support::api_unavailable), with `Retry-After: 5`.
fn storage_failure(e: &DbError) -> HttpResponse {
    if e.is_refused_text() {
        return crate::routes::support::api_unavailable(e);
    }
    tracing::error!(error = %e, cause = ?std::error::Error::source(e), "storage failure");
    api_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "the server cannot reach its database; try again in a moment",
        Some(5),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_query_is_parsed_with_defaults_and_limits() {
        let q = UsersQuery::parse("", 25).expect("valid");
        assert_eq!(q.filter, UserFilter::default());
        assert_eq!((q.page, q.page_size), (1, 25));
        let q = UsersQuery::parse(
            "search=%20ann%20&active=false&staff=true&page=3&page_size=2",
            25,
        )
        .expect("valid");
        assert_eq!(q.filter.search.as_deref(), Some("ann"));
        assert_eq!((q.filter.active, q.filter.staff), (Some(false), Some(true)));
        assert_eq!((q.page, q.page_size), (3, 2));
        for bad in [
            "active=yes",
            "staff=1",
            "page=0",
            "page=-1",
            "page=x",
            "page_size=0",
            "page_size=101",
        ] {
            assert!(UsersQuery::parse(bad, 25).is_err(), "{bad}");
        }
    }

    #[test]
    fn page_links_keep_the_filters() {
        let q = UsersQuery::parse("search=a%26b&staff=false&page=2&page_size=1", 25).expect("ok");
        let page = Page::new(vec![()], PageRequest::new(Some(2), 1), 3);
        let (next, previous) = q.links("https://id.example", &page);
        assert_eq!(
            next.as_deref(),
            Some("https://id.example/api/users/?search=a%26b&staff=false&page=3&page_size=1")
        );
        assert_eq!(
            previous.as_deref(),
            Some("https://id.example/api/users/?search=a%26b&staff=false&page=1&page_size=1")
        );
        let last = Page::new(vec![()], PageRequest::new(Some(3), 1), 3);
        assert_eq!(q.links("https://id.example", &last).0, None);
    }
}

//! The admin users API: `GET /api/users/` (a page of users) and `GET /api/users/{id}/` (one
//! user). Both need an access token with the `admin` scope held by an active staff user
//! ([`StaffToken`]); token problems get RFC 6750 §3 answers.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{NaiveDateTime, SecondsFormat};
use serde::Serialize;

use crate::accounts::{Account, Accounts, UserFilter};
use crate::db::DbError;
use crate::domain::{Page, PageRequest};
use crate::groups::Groups;
use crate::oauth::Params;
use crate::routes::errors::responses::{BearerRequired, Unavailable};
use crate::routes::errors::{ApiError, ApiErrorBody, ApiErrorCode};
use crate::routes::extract::StaffToken;
use crate::routes::http::no_store;
use crate::routes::WebConfig;

/// The largest `page_size` of the users API.
pub const MAX_API_PAGE_SIZE: i64 = 100;

/// The largest `page`: beyond it a page could not be addressed (`PageRequest` clamps it). The
/// OpenAPI document spells it out (a unit test in `routes/openapi.rs` compares).
pub(in crate::routes) const MAX_PAGE: i64 = i64::MAX / crate::domain::page::MAX_PAGE_SIZE;

/// A user as the admin API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub(super) struct ApiUser {
    /// The user's stable id (the `sub` of their tokens).
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
    #[schema(required = true)]
    last_login: Option<String>,
    /// Names of the user's groups, by name.
    groups: Vec<String>,
}

impl ApiUser {
    fn new(user: Account, groups: Vec<String>) -> Self {
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct UserList {
    /// Users matching the filters, on every page.
    count: i64,
    /// This page's number, from 1.
    page: i64,
    /// Users per page.
    page_size: i64,
    /// The next page's URL, or `null` on the last page.
    #[schema(required = true)]
    next: Option<String>,
    /// The previous page's URL, or `null` on the first page.
    #[schema(required = true)]
    previous: Option<String>,
    /// This page's users, by username.
    results: Vec<ApiUser>,
}

/// `GET /api/users/?search=&active=true|false&staff=true|false&page=N&page_size=N`: users by
/// username, `page_size` (default `console.page_size`) at most [`MAX_API_PAGE_SIZE`]. The query
/// is read after the token is accepted, so a caller without one learns nothing from it.
#[utoipa::path(
    get,
    path = "/api/users/",
    tag = "admin",
    summary = "A page of users, by username.",
    security(("bearer" = ["admin"])),
    params(
        ("search" = Option<String>, Query, description = "Matches username, email and names \
            (the first 200 characters; blank: no filter)."),
        ("active" = Option<bool>, Query, description = "`true` or `false`; blank: no filter."),
        ("staff" = Option<bool>, Query, description = "`true` or `false`; blank: no filter."),
        ("page" = Option<i64>, Query, minimum = 1, maximum = 46_116_860_184_273_879_i64,
            description = "From 1 (default 1)."),
        ("page_size" = Option<i64>, Query, minimum = 1, maximum = 100,
            description = "1 to 100 (default `console.page_size`)."),
    ),
    responses(
        (status = 200, description = "A page of users.", body = UserList),
        (status = 400, description = "`invalid_request`: a query parameter is malformed or \
            out of range (checked after the token), or the `Authorization` header is not \
            `Bearer` with a well-formed token.", body = ApiErrorBody),
        (status = 401, response = BearerRequired),
        (status = 403, description = "`insufficient_scope`: the token lacks `admin` or has no \
            user (with a `WWW-Authenticate` challenge); `forbidden`: its user is not staff.",
            body = ApiErrorBody),
        (status = 503, response = Unavailable),
    )
)]
pub async fn list_users(
    _: StaffToken,
    req: HttpRequest,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, ApiError> {
    let query = UsersQuery::parse(req.query_string(), web.page_size)
        .map_err(|message| ApiError::invalid_request(&message))?;
    let page = accounts
        .list(
            query.filter.clone(),
            PageRequest::new(Some(query.page), query.page_size),
        )
        .await?;
    let (next, previous) = query.links(&web.issuer, &page);
    let mut results = Vec::with_capacity(page.items.len());
    for user in page.items {
        let names = group_names(&groups, &user.id).await?;
        results.push(ApiUser::new(user, names));
    }
    Ok(no_store(&mut HttpResponse::Ok()).json(UserList {
        count: page.total,
        page: page.number,
        page_size: page.size,
        next,
        previous,
        results,
    }))
}

/// `GET /api/users/{id}/`: one user, or `404 not_found`. Same access rule as the list.
#[utoipa::path(
    get,
    path = "/api/users/{id}/",
    tag = "admin",
    security(("bearer" = ["admin"])),
    params(("id" = String, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The user.", body = ApiUser),
        (status = 400, description = "`invalid_request`: the `Authorization` header is not \
            `Bearer` with a well-formed token.", body = ApiErrorBody),
        (status = 401, response = BearerRequired),
        (status = 403, description = "`insufficient_scope`: the token lacks `admin` or has no \
            user (with a `WWW-Authenticate` challenge); `forbidden`: its user is not staff.",
            body = ApiErrorBody),
        (status = 404, description = "`not_found`: no user has this id (or the path holds an \
            encoded NUL).", body = ApiErrorBody),
        (status = 503, response = Unavailable),
    )
)]
pub async fn show_user(
    _: StaffToken,
    path: web::Path<String>,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
) -> Result<HttpResponse, ApiError> {
    let user = accounts
        .find(path.into_inner())
        .await?
        .ok_or_else(|| ApiError::new(ApiErrorCode::NotFound, "there is no user with this id"))?;
    let names = group_names(&groups, &user.id).await?;
    Ok(no_store(&mut HttpResponse::Ok()).json(ApiUser::new(user, names)))
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
            page: number("page", 1, MAX_PAGE)?,
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

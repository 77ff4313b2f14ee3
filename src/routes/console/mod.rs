//! The admin console `/admin/`, for staff, one file per resource:
//!
//! * [`dashboard`] — `/admin/`: counts, the latest audit events, the scheduled jobs;
//! * [`users`] — the user list and a user's page (profile, account flags, groups, sign out
//!   everywhere), with [`user_actions`] — password-reset and verification emails, deleting a
//!   user;
//! * [`groups`] — groups and their members;
//! * [`providers`] — the sign-in providers: those of the configuration file (read-only) and
//!   those added here (a superuser's);
//! * [`tokens`] — active tokens, revoked after a confirmation;
//! * [`audit`] — the audit log (and the event lines the dashboard shows);
//! * [`discord`] — the Discord connector (superusers only): test connection, roles, mappings;
//! * this file — what they share: links, names in tables, the user filter of the lists, and the
//!   pages for refused changes.
//!
//! Applications live in the developer portal (`/o/applications/`), where staff already see and
//! search every client with its owner; the console links there instead of repeating it.
//!
//! Every handler takes [`Staff`](crate::routes::extract::Staff) (`is_staff` or `is_superuser`;
//! others get a 403 page, visitors the sign-in page) and returns `Result<_, PageError>`; every
//! POST is a CSRF-checked [`Form`](crate::routes::extract::Form). What each admin may change is
//! the services' rule (`accounts::privileges`): staff manage ordinary users; the accounts of
//! staff members and superusers, and the staff and superuser flags, are a superuser's. A
//! refused change answers 403 and changes nothing; the pages offer a staff member no form for
//! what they may not change (`read_only`, `groups_read_only`, protected tokens, superuser-only
//! groups).
//!
//! Destructive actions (deactivating or deleting a user, signing a user out everywhere,
//! revoking tokens, deleting a group) are confirmed on the one confirmation page first. A
//! successful POST leaves a notice ([`flash`](crate::routes::chrome::flash)) and redirects
//! (post/redirect/get); a form with errors comes back with 422 and each message next to its
//! field ([`FieldErrors`](crate::routes::errors::FieldErrors)). A user or group that does not
//! exist answers 404.

pub(super) mod audit;
pub(super) mod dashboard;
pub(super) mod discord;
pub(super) mod groups;
pub(super) mod providers;
pub(super) mod tokens;
pub(super) mod user_actions;
pub(super) mod users;

use actix_web::{HttpRequest, HttpResponse};

use crate::accounts::{AccountError, Accounts};
use crate::db::DbError;
use crate::groups::GroupError;
use crate::oauth::Params;
use crate::routes::errors::PageError;
use crate::routes::format::capitalized;
use crate::routes::http::see_other;

/// A user as a list shows them: a link to their page, or their bare id once deleted.
struct Person {
    id: String,
    name: Option<String>,
}

/// A client in a table: its name linking to its page, or its bare id once deleted.
struct ClientRef {
    id: String,
    name: Option<String>,
}

/// The request's query string as parameters (an unreadable one as none).
fn query(req: &HttpRequest) -> Params {
    Params::from_query(req.query_string()).unwrap_or_default()
}

/// `path?k=v&…` with the non-empty pairs, encoded.
fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        query.append_pair(k, v);
    }
    let query = query.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

fn encode(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

/// `/admin/users/{id}/`.
fn user_path(id: &str) -> String {
    format!("/admin/users/{}/", encode(id))
}

/// `/admin/groups/{id}/`.
fn group_path(id: &str) -> String {
    format!("/admin/groups/{}/", encode(id))
}

/// `"1 token"`, `"3 tokens"`.
fn count_of(n: i64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// 404 for a user id that names nobody.
fn user_not_found() -> PageError {
    PageError::not_found(
        "User not found",
        "There is no user at this address. They may have been deleted.",
    )
}

/// 404 for a group id that names no group.
fn group_not_found() -> PageError {
    PageError::not_found(
        "Group not found",
        "There is no group at this address. It may have been deleted.",
    )
}

/// 403: the services refused the change by the privilege rules (`accounts::privileges`); the
/// message says which rule.
fn not_allowed(message: &str) -> PageError {
    PageError::forbidden(
        "Not allowed",
        format!("{}. Nothing was changed.", capitalized(message)),
    )
}

/// The page for an account change the handler has no better answer to.
fn account_failure(e: AccountError) -> PageError {
    match e {
        AccountError::NotFound => user_not_found(),
        AccountError::Db(e) => e.into(),
        AccountError::Forbidden(refusal) => not_allowed(&refusal.to_string()),
        other => {
            tracing::error!(error = %other, "account change failed");
            PageError::bad_request("Not saved", format!("The change was not saved: {other}."))
        }
    }
}

/// The page for a group change the handler has no better answer to.
fn group_failure(e: GroupError) -> PageError {
    match e {
        GroupError::NotFound => {
            PageError::not_found("Not found", "The group or user does not exist any more.")
        }
        GroupError::Db(e) => e.into(),
        GroupError::Forbidden(refusal) => not_allowed(&refusal.to_string()),
        other @ (GroupError::Invalid(_) | GroupError::Taken) => {
            PageError::bad_request("Not saved", format!("The change was not saved: {other}."))
        }
    }
}

/// A list's user filter as its page shows it.
struct UserFilterField {
    /// The user filtered by (empty: no user filter).
    id: String,
    /// What the field shows: the user's username, or what was typed.
    login: String,
    /// Why the typed user was not found (the list is then empty); empty otherwise.
    error: String,
}

/// How a list's user filter came out.
enum UserChoice {
    /// The filter form was sent: go to the list filtered by `user_id`.
    Redirect(HttpResponse),
    /// Show the list with this filter.
    Show(UserFilterField),
}

/// Reads a list's user filter: `user` (a username or email, from the filter form) is resolved
/// and replaced by `user_id` with a redirect to `path` keeping `others`; `user_id` is shown as
/// the user's username.
async fn user_filter(
    accounts: &Accounts,
    params: &Params,
    path: &str,
    others: &[(&str, &str)],
) -> Result<UserChoice, DbError> {
    if let Some(login) = params.get("user").map(str::trim) {
        let id = if login.is_empty() {
            String::new()
        } else {
            match accounts.find_by_login(login).await? {
                Some(user) => user.id,
                None => {
                    return Ok(UserChoice::Show(UserFilterField {
                        id: String::new(),
                        login: login.to_owned(),
                        error: "no user has this username or email address".to_owned(),
                    }))
                }
            }
        };
        let mut pairs = others.to_vec();
        pairs.push(("user_id", &id));
        return Ok(UserChoice::Redirect(see_other(&with_query(path, &pairs))));
    }
    let id = params.get("user_id").unwrap_or_default().trim().to_owned();
    let login = if id.is_empty() {
        String::new()
    } else {
        accounts
            .find(id.clone())
            .await?
            .map_or_else(|| id.clone(), |u| u.username)
    };
    Ok(UserChoice::Show(UserFilterField {
        id,
        login,
        error: String::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::audit::detail_pairs;
    use super::users::yes_no;
    use super::with_query;

    #[test]
    fn redirects_keep_only_filled_filters_encoded() {
        assert_eq!(
            with_query("/admin/tokens/", &[("user_id", "")]),
            "/admin/tokens/"
        );
        assert_eq!(
            with_query(
                "/admin/tokens/",
                &[("user_id", "a b&c"), ("client_id", ""), ("n", "2")]
            ),
            "/admin/tokens/?user_id=a+b%26c&n=2"
        );
    }

    #[test]
    fn filters_are_yes_no_or_either() {
        assert_eq!(yes_no(Some("yes")), "yes");
        assert_eq!(yes_no(Some("no")), "no");
        assert_eq!(yes_no(Some("maybe")), "");
        assert_eq!(yes_no(None), "");
    }

    #[test]
    fn details_show_strings_bare_and_other_values_as_json() {
        assert_eq!(
            detail_pairs(r#"{"name":"Ops","tokens_revoked":2,"rp_initiated":false}"#),
            [
                ("name".to_owned(), "Ops".to_owned()),
                ("rp_initiated".to_owned(), "false".to_owned()),
                ("tokens_revoked".to_owned(), "2".to_owned()),
            ]
        );
        assert!(detail_pairs("{}").is_empty());
        assert_eq!(
            detail_pairs("not json"),
            [(String::new(), "not json".to_owned())]
        );
    }
}

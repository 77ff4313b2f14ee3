//! The admin console `/admin/`, for staff: a dashboard, users (profile, account flags, groups,
//! sign-out-everywhere), groups and their members, active tokens, and the audit log.
//! Applications live in the developer portal (`/o/applications/`), where staff already see and
//! search every client with its owner; the console links there instead of repeating it.
//!
//! Access is a staff check ([`require_staff`]: `is_staff` or `is_superuser`). What each admin
//! may change is the services' rule (`accounts::privileges`): staff manage ordinary users; the
//! accounts of staff members and superusers, and the staff and superuser flags, are a
//! superuser's. A refused change answers 403 and changes nothing; a user's page shows a staff
//! member the accounts they cannot change without their forms.
//!
//! Every POST checks the session's CSRF token. Destructive actions (deactivating a user,
//! signing a user out everywhere, revoking tokens, deleting a group) are confirmed on a page of
//! their own first. A successful POST redirects (PRG) to a page that shows a fixed notice named
//! by `?done=`. A user or group that does not exist answers 404.

pub(super) mod audit;
pub(super) mod dashboard;
pub(super) mod groups;
pub(super) mod tokens;
pub(super) mod users;

use std::collections::HashMap;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::accounts::{AccountError, AccountFlags, Accounts, Profile};
use crate::audit::Audit;
use crate::clients::Clients;
use crate::db::audit_events::{AuditFilter, AuditRow};
use crate::db::groups::GroupRow;
use crate::db::jobs::JobRow;
use crate::db::tokens::TokenFilter;
use crate::db::users::{UserFilter, UserRow};
use crate::db::DbError;
use crate::domain::{Email, Page, PageRequest, PersonName};
use crate::groups::{GroupError, Groups};
use crate::oauth::grants::RevokeError;
use crate::oauth::{OAuth, Params};
use crate::routes::support::{
    actor, csrf_token, error_page, page_number, read_page_form, render, require_staff, see_other,
    show_time, ticked, unavailable, PageNav, WebConfig,
};
use crate::scheduler::Jobs;

use users::user_not_found;

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

/// A confirmation page whose form re-posts `hidden` fields.
#[derive(Template)]
#[template(path = "admin/confirm.html")]
struct ConfirmPage<'a> {
    who: &'a str,
    csrf_token: String,
    area: &'static str,
    title: String,
    message: String,
    action: String,
    hidden: Vec<(String, String)>,
    button: String,
    cancel: String,
}

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

fn user_path(id: &str) -> String {
    format!("/admin/users/{}/", encode(id))
}

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

/// The success notice named by `?done=` after a redirect. The texts are fixed, so a link cannot
/// put words on the page; `n` is the count in the texts that have one.
fn notice(params: &Params) -> Option<String> {
    let n = params
        .get("n")
        .and_then(|n| n.parse::<i64>().ok())
        .unwrap_or(0);
    let text = match params.get("done")? {
        "profile" => "The profile was saved.".to_owned(),
        "flags" => "The account flags were saved.".to_owned(),
        "signed_out" => format!(
            "Signed out everywhere: every session ended and {} revoked.",
            count_of(n, "token")
        ),
        "joined" => "The user was added to the group.".to_owned(),
        "already_in" => "The user already belongs to that group.".to_owned(),
        "left" => "The user was removed from the group.".to_owned(),
        "created" => "The group was created.".to_owned(),
        "saved" => "The group was saved.".to_owned(),
        "member_added" => "The member was added.".to_owned(),
        "member_present" => "That user is already a member.".to_owned(),
        "member_removed" => "The member was removed.".to_owned(),
        "deleted" => "The group was deleted.".to_owned(),
        "revoked" => format!("{} revoked.", count_of(n, "token")),
        "none_selected" => "No token was selected: tick the tokens to revoke first.".to_owned(),
        _ => return None,
    };
    Some(text)
}

/// The page for an account change the handler has no better answer to.
fn account_failure(e: AccountError) -> HttpResponse {
    match e {
        AccountError::NotFound => user_not_found(),
        AccountError::Db(e) => unavailable(&e),
        AccountError::Forbidden(refusal) => not_allowed(&refusal.to_string()),
        other => {
            tracing::error!(error = %other, "account change failed");
            error_page(
                StatusCode::BAD_REQUEST,
                "Not saved",
                &format!("The change was not saved: {other}."),
            )
        }
    }
}

/// 403: the services refused the change by the privilege rules (`accounts::privileges`); the
/// message says which rule.
fn not_allowed(message: &str) -> HttpResponse {
    error_page(
        StatusCode::FORBIDDEN,
        "Not allowed",
        &format!(
            "{}. Nothing was changed.",
            crate::routes::support::capitalized(message)
        ),
    )
}

/// The page for a group change the handler has no better answer to.
fn group_failure(e: GroupError) -> HttpResponse {
    match e {
        GroupError::NotFound => error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "The group or user does not exist any more.",
        ),
        GroupError::Db(e) => unavailable(&e),
        GroupError::Forbidden(refusal) => not_allowed(&refusal.to_string()),
        other @ (GroupError::Invalid(_) | GroupError::Taken) => error_page(
            StatusCode::BAD_REQUEST,
            "Not saved",
            &format!("The change was not saved: {other}."),
        ),
    }
}

/// How a list's user filter came out.
enum UserChoice {
    /// The filter form was sent: go to the list filtered by `user_id`.
    Redirect(HttpResponse),
    /// Filter by this user (`id` empty: no user filter); `login` fills the field.
    Chosen { id: String, login: String },
    /// The form named nobody known.
    Unknown(String),
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
                None => return Ok(UserChoice::Unknown(login.to_owned())),
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
    Ok(UserChoice::Chosen { id, login })
}

/// The words of a confirmation page.
struct ConfirmText {
    title: String,
    message: String,
    action: String,
    hidden: Vec<(String, String)>,
    button: String,
    cancel: String,
}

fn confirm_page(
    session: &Session,
    admin: &UserRow,
    area: &'static str,
    text: ConfirmText,
) -> HttpResponse {
    render(
        StatusCode::OK,
        &ConfirmPage {
            who: &admin.username,
            csrf_token: csrf_token(session),
            area,
            title: text.title,
            message: text.message,
            action: text.action,
            hidden: text.hidden,
            button: text.button,
            cancel: text.cancel,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::audit::detail_pairs;
    use super::users::yes_no;
    use super::{notice, with_query};
    use crate::oauth::Params;

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
    fn notices_are_fixed_texts() {
        let params = |q: &str| Params::from_query(q).unwrap_or_default();
        assert_eq!(
            notice(&params("done=revoked&n=3")).as_deref(),
            Some("3 tokens revoked.")
        );
        assert_eq!(
            notice(&params("done=revoked&n=1")).as_deref(),
            Some("1 token revoked.")
        );
        assert_eq!(notice(&params("done=%3Cscript%3E")), None);
        assert_eq!(notice(&params("")), None);
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

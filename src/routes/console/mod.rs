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

/// How many audit events the dashboard shows.
const DASHBOARD_EVENTS: i64 = 10;

// ---------------------------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------------------------

/// A user as a list shows them: a link to their page, or their bare id once deleted.
struct Person {
    id: String,
    name: Option<String>,
}

/// One row of the audit log.
struct EventLine {
    /// [`show_time`]'s text cut into the date and the rest (`14:05 UTC`), shown on two lines
    /// so that the column stays narrow.
    date: String,
    clock: String,
    event: String,
    actor: Option<Person>,
    /// Who acted when no user did: the client (at the token endpoints), "anonymous" (a
    /// visitor with an address) or "system" (neither: the CLI, jobs).
    nobody: &'static str,
    user: Option<Person>,
    client: Option<ClientRef>,
    ip: Option<String>,
    /// The details object's members as `(name, value)`: strings as they are, other values as
    /// JSON text.
    details: Vec<(String, String)>,
}

/// A client in a table: its name linking to its page, or its bare id once deleted.
struct ClientRef {
    id: String,
    name: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage<'a> {
    who: &'a str,
    csrf_token: String,
    area: &'static str,
    users: i64,
    applications: i64,
    active_tokens: i64,
    logins_24h: i64,
    events: Vec<EventLine>,
    jobs: Vec<JobLine>,
}

/// One scheduled job on the dashboard (`jobs` rows, see `crate::scheduler`).
struct JobLine {
    name: String,
    /// "running", "failing" or "ok"; `None` before the first run.
    status: Option<&'static str>,
    last_run: Option<String>,
    next_run: String,
    failures: i64,
    last_error: Option<String>,
}

impl JobLine {
    fn from_row(row: JobRow, now: chrono::NaiveDateTime) -> Self {
        let status = if row.running_until.is_some_and(|u| u >= now) {
            Some("running")
        } else if row.last_error.is_some() {
            Some("failing")
        } else if row.last_finished_at.is_some() {
            Some("ok")
        } else {
            None
        };
        Self {
            name: row.name,
            status,
            last_run: row.last_started_at.as_ref().map(show_time),
            next_run: show_time(&row.next_run_at),
            failures: row.failures,
            last_error: row.last_error,
        }
    }
}

/// One row of the user list.
struct UserLine {
    id: String,
    username: String,
    email: String,
    name: String,
    is_active: bool,
    is_staff: bool,
    is_superuser: bool,
    last_login: Option<String>,
    joined: String,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage<'a> {
    who: &'a str,
    csrf_token: String,
    area: &'static str,
    users: Vec<UserLine>,
    search: &'a str,
    /// `"yes"`, `"no"` or `""` (either).
    active: &'static str,
    /// `"yes"`, `"no"` or `""` (either).
    staff: &'static str,
    page: PageNav,
}

/// The profile form's values.
struct ProfileValues {
    email: String,
    first_name: String,
    last_name: String,
}

impl ProfileValues {
    fn of(user: &UserRow) -> Self {
        Self {
            email: user.email.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/user.html")]
struct UserPage<'a> {
    who: &'a str,
    csrf_token: String,
    area: &'static str,
    user: &'a UserRow,
    /// The page shows the admin's own account.
    is_self: bool,
    /// The admin may not change this account (a staff member looking at another staff or
    /// superuser account): the page shows no forms. The services refuse such changes anyway.
    read_only: bool,
    /// The admin is a superuser (only they grant or remove staff and superuser status).
    admin_is_superuser: bool,
    /// The admin may not change this user's groups: `read_only`, or their own account and
    /// they are not a superuser (the groups service refuses both anyway).
    groups_read_only: bool,
    joined: String,
    last_login: Option<String>,
    profile: ProfileValues,
    error_field: &'a str,
    error_message: String,
    /// Why the flags were not saved (the form shows the submitted flags then).
    flags_error: String,
    flags: AccountFlags,
    groups: Vec<GroupRow>,
    /// Groups the user is not in, for the "add to group" select.
    other_groups: Vec<GroupRow>,
    active_tokens: i64,
    notice: Option<String>,
}

impl UserPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        (self.error_field == field).then_some(self.error_message.as_str())
    }
}

/// One row of the group list.
struct GroupLine {
    id: String,
    name: String,
    description: String,
    members: i64,
}

/// The group form's values.
#[derive(Default)]
struct GroupValues {
    name: String,
    description: String,
}

#[derive(Template)]
#[template(path = "admin/groups.html")]
struct GroupsPage<'a> {
    who: &'a str,
    csrf_token: String,
    area: &'static str,
    groups: Vec<GroupLine>,
    search: &'a str,
    page: PageNav,
    form: GroupValues,
    error_field: &'a str,
    error_message: String,
    notice: Option<String>,
}

impl GroupsPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        (self.error_field == field).then_some(self.error_message.as_str())
    }
}

/// One member on a group's page.
struct MemberLine {
    id: String,
    username: String,
    email: String,
    is_active: bool,
    /// A staff or superuser member the signed-in staff member may not remove (the service
    /// refuses it anyway): no button.
    protected: bool,
}

#[derive(Template)]
#[template(path = "admin/group.html")]
struct GroupPage<'a> {
    who: &'a str,
    csrf_token: String,
    area: &'static str,
    group: &'a GroupRow,
    created: String,
    updated: String,
    members: Vec<MemberLine>,
    /// The group has a staff or superuser member and the admin is not a superuser: renaming
    /// and deleting it are a superuser's (the groups service refuses them anyway), so the page
    /// offers neither.
    superuser_only: bool,
    page: PageNav,
    form: GroupValues,
    error_field: &'a str,
    error_message: String,
    add_login: String,
    add_error: String,
    notice: Option<String>,
}

impl GroupPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        (self.error_field == field).then_some(self.error_message.as_str())
    }
}

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
    created: String,
    expires: String,
}

#[derive(Template)]
#[template(path = "admin/tokens.html")]
struct TokensPage<'a> {
    who: &'a str,
    csrf_token: String,
    area: &'static str,
    tokens: Vec<TokenLine>,
    user_id: &'a str,
    /// What the user filter field shows: the username, or what was typed.
    user_login: String,
    user_error: String,
    client_id: &'a str,
    page: PageNav,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage<'a> {
    who: &'a str,
    csrf_token: String,
    area: &'static str,
    events: Vec<EventLine>,
    event: &'a str,
    user_id: &'a str,
    user_login: String,
    user_error: String,
    client_id: &'a str,
    ip: &'a str,
    page: PageNav,
}

impl AuditPage<'_> {
    fn filtered(&self) -> bool {
        !(self.event.is_empty()
            && self.user_id.is_empty()
            && self.client_id.is_empty()
            && self.ip.is_empty()
            && self.user_error.is_empty())
    }
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

// ---------------------------------------------------------------------------------------------
// Dashboard
// ---------------------------------------------------------------------------------------------

/// `GET /admin/`: counts of users, applications, active tokens and recent logins, the latest
/// audit events, and the scheduled jobs (last run, next run, last error).
#[allow(clippy::too_many_arguments)] // actix extractors
pub async fn show_dashboard(
    req: HttpRequest,
    session: Session,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    oauth: web::Data<OAuth>,
    audit: web::Data<Audit>,
    jobs: web::Data<Jobs>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let now = crate::db::now();
    let since = now - chrono::Duration::hours(24);
    let loaded = async {
        Ok::<_, DbError>((
            accounts.count().await?,
            clients.count().await?,
            oauth.count_active_tokens().await?,
            audit.count_since("login.success", since).await?,
            audit
                .list(
                    AuditFilter::default(),
                    PageRequest::new(None, DASHBOARD_EVENTS),
                )
                .await?,
            jobs.list().await?,
        ))
    }
    .await;
    let (users, applications, active_tokens, logins_24h, latest, job_rows) = match loaded {
        Ok(all) => all,
        Err(e) => return unavailable(&e),
    };
    let events = match event_lines(&accounts, &clients, latest.items).await {
        Ok(lines) => lines,
        Err(e) => return unavailable(&e),
    };
    render(
        StatusCode::OK,
        &DashboardPage {
            who: &admin.username,
            csrf_token: csrf_token(&session),
            area: "dashboard",
            users,
            applications,
            active_tokens,
            logins_24h,
            events,
            jobs: job_rows
                .into_iter()
                .map(|row| JobLine::from_row(row, now))
                .collect(),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

/// `GET /admin/users/[?q=TEXT&active=yes|no&staff=yes|no&page=N]`: users by username.
pub async fn list_users(
    req: HttpRequest,
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let params = query(&req);
    let search = params.get("q").unwrap_or_default().trim().to_owned();
    let active = yes_no(params.get("active"));
    let staff = yes_no(params.get("staff"));
    let filter = UserFilter {
        search: Some(search.clone()).filter(|s| !s.is_empty()),
        active: as_bool(active),
        staff: as_bool(staff),
    };
    let request = PageRequest::new(page_number(&params), web.page_size);
    let page = match accounts.list(filter, request).await {
        Ok(p) => p,
        Err(e) => return unavailable(&e),
    };
    let nav = PageNav::new(
        &page,
        "/admin/users/",
        &[("q", &search), ("active", active), ("staff", staff)],
    );
    let users = page
        .items
        .into_iter()
        .map(|u| UserLine {
            name: full_name(&u),
            last_login: u.last_login.as_ref().map(show_time),
            joined: show_time(&u.date_joined),
            id: u.id,
            username: u.username,
            email: u.email,
            is_active: u.is_active,
            is_staff: u.is_staff,
            is_superuser: u.is_superuser,
        })
        .collect();
    render(
        StatusCode::OK,
        &UsersPage {
            who: &admin.username,
            csrf_token: csrf_token(&session),
            area: "users",
            users,
            search: &search,
            active,
            staff,
            page: nav,
        },
    )
}

/// What a user's page shows besides the forms.
struct UserForms {
    profile: ProfileValues,
    /// The field and message of a profile error.
    error: Option<(&'static str, String)>,
    flags: AccountFlags,
    flags_error: String,
    notice: Option<String>,
}

impl UserForms {
    fn of(user: &UserRow) -> Self {
        Self {
            profile: ProfileValues::of(user),
            error: None,
            flags: flags_of(user),
            flags_error: String::new(),
            notice: None,
        }
    }
}

/// `GET /admin/users/{id}/`: the user's profile and flags forms, groups, and links to their
/// tokens and audit events.
pub async fn show_user(
    req: HttpRequest,
    path: web::Path<String>,
    session: Session,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    oauth: web::Data<OAuth>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let user = match find_user(&accounts, &path).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let mut forms = UserForms::of(&user);
    forms.notice = notice(&query(&req));
    user_page(&session, &admin, &user, &groups, &oauth, forms).await
}

/// `POST /admin/users/{id}/profile/`: saves the email and names.
#[allow(clippy::too_many_arguments)] // actix extractors
pub async fn update_user_profile(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    oauth: web::Data<OAuth>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let form = match read_page_form(&req, payload, &session, web.max_body_bytes).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let user = match find_user(&accounts, &path).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let profile = ProfileValues {
        email: form.get("email").unwrap_or_default().trim().to_owned(),
        first_name: form.get("first_name").unwrap_or_default().trim().to_owned(),
        last_name: form.get("last_name").unwrap_or_default().trim().to_owned(),
    };
    // Checked here as well as in the service, to name the field the message belongs to.
    let field_error = if let Err(message) = Email::parse(&profile.email) {
        Some(("email", message))
    } else if let Err(message) = PersonName::parse("first name", &profile.first_name) {
        Some(("first_name", message))
    } else if let Err(message) = PersonName::parse("last name", &profile.last_name) {
        Some(("last_name", message))
    } else {
        None
    };
    let error = match field_error {
        Some(error) => error,
        None => {
            // No password field here: an admin's own email address is changed on /account/,
            // which asks for the current password (the service refuses it otherwise).
            let change = Profile {
                email: profile.email.clone(),
                first_name: profile.first_name.clone(),
                last_name: profile.last_name.clone(),
                current_password: None,
            };
            match accounts
                .update_profile(&actor(&req, &admin), &user.id, change)
                .await
            {
                Ok(_) => return see_other(&format!("{}?done=profile", user_path(&user.id))),
                Err(AccountError::Taken) => (
                    "email",
                    "another user already has this email address".to_owned(),
                ),
                Err(AccountError::Invalid(message)) => ("email", message),
                Err(AccountError::WrongPassword) => (
                    "email",
                    "change your own email address on your account page, which asks for your current password".to_owned(),
                ),
                Err(e) => return account_failure(e),
            }
        }
    };
    let mut forms = UserForms::of(&user);
    forms.profile = profile;
    forms.error = Some(error);
    user_page(&session, &admin, &user, &groups, &oauth, forms).await
}

/// `POST /admin/users/{id}/flags/`: sets the active, staff and superuser flags. Deactivating
/// someone else is confirmed first (it revokes their tokens and ends their sessions); admins
/// cannot deactivate themselves or drop their own staff status.
#[allow(clippy::too_many_arguments)] // actix extractors
pub async fn update_user_flags(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    oauth: web::Data<OAuth>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let form = match read_page_form(&req, payload, &session, web.max_body_bytes).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let user = match find_user(&accounts, &path).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let flags = AccountFlags {
        is_active: form.contains("is_active"),
        is_staff: form.contains("is_staff"),
        is_superuser: form.contains("is_superuser"),
    };
    let deactivating = user.is_active && !flags.is_active && user.id != admin.id;
    if deactivating && form.get("confirm") != Some("yes") {
        let mut hidden = vec![("confirm".to_owned(), "yes".to_owned())];
        for (name, on) in [
            ("is_staff", flags.is_staff),
            ("is_superuser", flags.is_superuser),
        ] {
            if on {
                hidden.push((name.to_owned(), "on".to_owned()));
            }
        }
        return confirm_page(
            &session,
            &admin,
            "users",
            ConfirmText {
                title: format!("Deactivate {}?", user.username),
                message: format!(
                    "{} will no longer be able to sign in. Every token they hold is revoked and every browser session they have ends, on every device. You can reactivate the account later, but revoked tokens stay revoked.",
                    user.username
                ),
                action: format!("{}flags/", user_path(&user.id)),
                hidden,
                button: "Deactivate account".to_owned(),
                cancel: user_path(&user.id),
            },
        );
    }
    match accounts
        .set_flags(&actor(&req, &admin), &user.id, flags)
        .await
    {
        Ok(_) => see_other(&format!("{}?done=flags", user_path(&user.id))),
        Err(AccountError::Invalid(message)) => {
            let mut forms = UserForms::of(&user);
            forms.flags = flags;
            forms.flags_error = message;
            user_page(&session, &admin, &user, &groups, &oauth, forms).await
        }
        Err(e) => account_failure(e),
    }
}

/// `POST /admin/users/{id}/groups/`: adds the user to the group `group_id`.
pub async fn add_user_to_group(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let form = match read_page_form(&req, payload, &session, web.max_body_bytes).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let user = match find_user(&accounts, &path).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let group_id = form.get("group_id").unwrap_or_default();
    match groups
        .add_member(&actor(&req, &admin), group_id, &user.username)
        .await
    {
        Ok(true) => see_other(&format!("{}?done=joined", user_path(&user.id))),
        Ok(false) => see_other(&format!("{}?done=already_in", user_path(&user.id))),
        Err(e) => group_failure(e),
    }
}

/// `POST /admin/users/{id}/groups/{group_id}/remove/`: takes the user out of a group.
pub async fn remove_user_from_group(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    if let Err(page) = read_page_form(&req, payload, &session, web.max_body_bytes).await {
        return page;
    }
    let (user_id, group_id) = path.into_inner();
    let user = match find_user(&accounts, &user_id).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    match groups
        .remove_member(&actor(&req, &admin), &group_id, &user.id)
        .await
    {
        Ok(true) => see_other(&format!("{}?done=left", user_path(&user.id))),
        Ok(false) => see_other(&user_path(&user.id)),
        Err(e) => group_failure(e),
    }
}

/// `GET /admin/users/{id}/end_sessions/`: asks before signing the user out everywhere.
pub async fn confirm_end_sessions(
    req: HttpRequest,
    path: web::Path<String>,
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let user = match find_user(&accounts, &path).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let yourself = if user.id == admin.id {
        " This includes this session: you will have to sign in again."
    } else {
        ""
    };
    confirm_page(
        &session,
        &admin,
        "users",
        ConfirmText {
            title: format!("Sign {} out everywhere?", user.username),
            message: format!(
                "Every browser session of {} ends and every access and refresh token they hold is revoked, so every application has to ask them to sign in again. Their account stays active.{yourself}",
                user.username
            ),
            action: format!("{}end_sessions/", user_path(&user.id)),
            hidden: Vec::new(),
            button: "Sign out everywhere".to_owned(),
            cancel: user_path(&user.id),
        },
    )
}

/// `POST /admin/users/{id}/end_sessions/`: revokes every token of the user and ends every
/// session they have.
pub async fn end_sessions(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    if let Err(page) = read_page_form(&req, payload, &session, web.max_body_bytes).await {
        return page;
    }
    match accounts
        .end_sessions_and_tokens(&actor(&req, &admin), &path)
        .await
    {
        Ok(revoked) => see_other(&format!("{}?done=signed_out&n={revoked}", user_path(&path))),
        Err(e) => account_failure(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------------

/// `GET /admin/groups/[?q=TEXT&page=N]`: groups by name with member counts, and the form that
/// creates one.
pub async fn list_groups(
    req: HttpRequest,
    session: Session,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let params = query(&req);
    let notice = notice(&params);
    groups_page(
        &session,
        &admin,
        &groups,
        &web,
        &params,
        GroupValues::default(),
        None,
        notice,
    )
    .await
}

/// `POST /admin/groups/`: creates a group.
pub async fn create_group(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let form = match read_page_form(&req, payload, &session, web.max_body_bytes).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let values = group_values(&form);
    match groups
        .create(&actor(&req, &admin), &values.name, &values.description)
        .await
    {
        Ok(group) => see_other(&format!("{}?done=created", group_path(&group.id))),
        Err(e) => match group_form_error(e) {
            Ok(error) => {
                groups_page(
                    &session,
                    &admin,
                    &groups,
                    &web,
                    &Params::default(),
                    values,
                    Some(error),
                    None,
                )
                .await
            }
            Err(e) => group_failure(e),
        },
    }
}

/// `GET /admin/groups/{id}/[?page=N]`: the group's form and its members.
pub async fn show_group(
    req: HttpRequest,
    path: web::Path<String>,
    session: Session,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let params = query(&req);
    let state = GroupState {
        notice: notice(&params),
        ..GroupState::default()
    };
    group_page(&session, &admin, &groups, &web, &path, &params, state).await
}

/// `POST /admin/groups/{id}/`: renames the group and sets its description.
pub async fn update_group(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let form = match read_page_form(&req, payload, &session, web.max_body_bytes).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let values = group_values(&form);
    match groups
        .update(
            &actor(&req, &admin),
            &path,
            &values.name,
            &values.description,
        )
        .await
    {
        Ok(()) => see_other(&format!("{}?done=saved", group_path(&path))),
        Err(e) => match group_form_error(e) {
            Ok(error) => {
                let state = GroupState {
                    form: Some(values),
                    error: Some(error),
                    ..GroupState::default()
                };
                group_page(
                    &session,
                    &admin,
                    &groups,
                    &web,
                    &path,
                    &Params::default(),
                    state,
                )
                .await
            }
            Err(e) => group_failure(e),
        },
    }
}

/// `POST /admin/groups/{id}/members/add/`: adds the user named in `login` (username or email).
pub async fn add_group_member(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let form = match read_page_form(&req, payload, &session, web.max_body_bytes).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let login = form.get("login").unwrap_or_default().trim().to_owned();
    let add_error = if login.is_empty() {
        "enter a username or email address".to_owned()
    } else {
        match groups.add_member(&actor(&req, &admin), &path, &login).await {
            Ok(true) => return see_other(&format!("{}?done=member_added", group_path(&path))),
            Ok(false) => return see_other(&format!("{}?done=member_present", group_path(&path))),
            // The page below answers 404 when it is the group that is missing.
            Err(GroupError::NotFound) => "no user has this username or email address".to_owned(),
            Err(e) => return group_failure(e),
        }
    };
    let state = GroupState {
        add_login: login,
        add_error,
        ..GroupState::default()
    };
    group_page(
        &session,
        &admin,
        &groups,
        &web,
        &path,
        &Params::default(),
        state,
    )
    .await
}

/// `POST /admin/groups/{id}/members/{user_id}/remove/`: takes a member out of the group.
pub async fn remove_group_member(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    if let Err(page) = read_page_form(&req, payload, &session, web.max_body_bytes).await {
        return page;
    }
    let (group_id, user_id) = path.into_inner();
    match groups.find(&group_id).await {
        Ok(Some(_)) => {}
        Ok(None) => return group_not_found(),
        Err(e) => return unavailable(&e),
    }
    match groups
        .remove_member(&actor(&req, &admin), &group_id, &user_id)
        .await
    {
        Ok(true) => see_other(&format!("{}?done=member_removed", group_path(&group_id))),
        Ok(false) => see_other(&group_path(&group_id)),
        Err(e) => group_failure(e),
    }
}

/// `GET /admin/groups/{id}/delete/`: asks before deleting the group.
pub async fn confirm_delete_group(
    req: HttpRequest,
    path: web::Path<String>,
    session: Session,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let (group, members) = match groups.find(&path).await {
        Ok(Some(found)) => found,
        Ok(None) => return group_not_found(),
        Err(e) => return unavailable(&e),
    };
    confirm_page(
        &session,
        &admin,
        "groups",
        ConfirmText {
            title: format!("Delete the group “{}”?", group.name),
            message: format!(
                "The group is deleted together with its {}; the users themselves are not. This cannot be undone.",
                count_of(i64::try_from(members.len()).unwrap_or(i64::MAX), "membership")
            ),
            action: format!("{}delete/", group_path(&group.id)),
            hidden: Vec::new(),
            button: "Delete group".to_owned(),
            cancel: group_path(&group.id),
        },
    )
}

/// `POST /admin/groups/{id}/delete/`: deletes the group and its memberships.
pub async fn delete_group(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    if let Err(page) = read_page_form(&req, payload, &session, web.max_body_bytes).await {
        return page;
    }
    match groups.delete(&actor(&req, &admin), &path).await {
        Ok(()) => see_other("/admin/groups/?done=deleted"),
        Err(e) => group_failure(e),
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// `GET /admin/tokens/[?user_id=ID&client_id=ID&page=N]`: active tokens, newest first. The
/// filter form sends `user` (a username or email), which is looked up and replaced by
/// `user_id` in a redirect, so links and pages always carry the id.
pub async fn list_tokens(
    req: HttpRequest,
    session: Session,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    oauth: web::Data<OAuth>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let params = query(&req);
    let client_id = params.get("client_id").unwrap_or_default().trim();
    let (user_id, user_login, user_error) = match user_filter(
        &accounts,
        &params,
        "/admin/tokens/",
        &[("client_id", client_id)],
    )
    .await
    {
        Ok(UserChoice::Redirect(response)) => return response,
        Ok(UserChoice::Chosen { id, login }) => (id, login, String::new()),
        Ok(UserChoice::Unknown(login)) => (
            String::new(),
            login,
            "no user has this username or email address".to_owned(),
        ),
        Err(e) => return unavailable(&e),
    };
    let request = PageRequest::new(page_number(&params), web.page_size);
    let page = if user_error.is_empty() {
        let filter = TokenFilter {
            user_id: Some(user_id.clone()).filter(|s| !s.is_empty()),
            client_id: Some(client_id.to_owned()).filter(|s| !s.is_empty()),
        };
        match oauth.list_tokens(filter, request).await {
            Ok(p) => p,
            Err(e) => return unavailable(&e),
        }
    } else {
        Page::new(Vec::new(), request, 0)
    };
    let nav = PageNav::new(
        &page,
        "/admin/tokens/",
        &[("user_id", &user_id), ("client_id", client_id)],
    );
    let names = match client_names(
        &clients,
        page.items.iter().map(|t| t.row.client_id.as_str()),
    )
    .await
    {
        Ok(names) => names,
        Err(e) => return unavailable(&e),
    };
    let tokens = page
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
                created: show_time(&row.created_at),
                expires: show_time(&row.expires_at),
                id: row.id,
                kind: row.kind,
                scope: row.scope,
                grant_type: row.grant_type,
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &TokensPage {
            who: &admin.username,
            csrf_token: csrf_token(&session),
            area: "tokens",
            tokens,
            user_id: &user_id,
            user_login,
            user_error,
            client_id,
            page: nav,
            notice: notice(&params),
        },
    )
}

/// `POST /admin/tokens/revoke/`: the tokens ticked as `token:<row id>`. Without `confirm=yes`
/// it shows a confirmation page that posts them again; with it, it revokes them and goes back
/// to the list (keeping its `user_id` and `client_id` filters).
pub async fn revoke_tokens(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    oauth: web::Data<OAuth>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let form = match read_page_form(&req, payload, &session, web.max_body_bytes).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let filters = [
        ("user_id", form.get("user_id").unwrap_or_default()),
        ("client_id", form.get("client_id").unwrap_or_default()),
    ];
    let ids = ticked(&form, "token:");
    if ids.is_empty() {
        return see_other(&with_query(
            "/admin/tokens/",
            &[&filters[..], &[("done", "none_selected")]].concat(),
        ));
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
        return confirm_page(
            &session,
            &admin,
            "tokens",
            ConfirmText {
                title: format!("Revoke {how_many}?"),
                message: format!(
                    "The {how_many} you selected stop working at once: resource servers see them as inactive, and the applications holding them must ask their users to sign in again. This cannot be undone."
                ),
                action: "/admin/tokens/revoke/".to_owned(),
                hidden,
                button: format!("Revoke {how_many}"),
                cancel: with_query("/admin/tokens/", &filters),
            },
        );
    }
    match oauth.revoke_tokens(&actor(&req, &admin), ids).await {
        Ok(revoked) => {
            let n = revoked.to_string();
            see_other(&with_query(
                "/admin/tokens/",
                &[&filters[..], &[("done", "revoked"), ("n", &n)]].concat(),
            ))
        }
        Err(RevokeError::Forbidden(refusal)) => not_allowed(&refusal.to_string()),
        Err(RevokeError::Db(e)) => unavailable(&e),
    }
}

// ---------------------------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------------------------

/// `GET /admin/audit/[?event=NAME|PREFIX.&user_id=ID&client_id=ID&ip=ADDR&page=N]`: the audit
/// log, newest first. `event` ending in `.` matches every event with that prefix; `user_id`
/// matches events the user caused or was the subject of. Like the token list, the form's `user`
/// field (username or email) becomes `user_id` in a redirect.
pub async fn list_audit_events(
    req: HttpRequest,
    session: Session,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    audit: web::Data<Audit>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let admin = match require_staff(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let params = query(&req);
    let event = params.get("event").unwrap_or_default().trim();
    let client_id = params.get("client_id").unwrap_or_default().trim();
    let ip = params.get("ip").unwrap_or_default().trim();
    let others = [("event", event), ("client_id", client_id), ("ip", ip)];
    let (user_id, user_login, user_error) =
        match user_filter(&accounts, &params, "/admin/audit/", &others).await {
            Ok(UserChoice::Redirect(response)) => return response,
            Ok(UserChoice::Chosen { id, login }) => (id, login, String::new()),
            Ok(UserChoice::Unknown(login)) => (
                String::new(),
                login,
                "no user has this username or email address".to_owned(),
            ),
            Err(e) => return unavailable(&e),
        };
    let request = PageRequest::new(page_number(&params), web.page_size);
    let page = if user_error.is_empty() {
        let filter = AuditFilter {
            event: Some(event.to_owned()).filter(|s| !s.is_empty()),
            user_id: Some(user_id.clone()).filter(|s| !s.is_empty()),
            client_id: Some(client_id.to_owned()).filter(|s| !s.is_empty()),
            ip: Some(ip.to_owned()).filter(|s| !s.is_empty()),
            since: None,
        };
        match audit.list(filter, request).await {
            Ok(p) => p,
            Err(e) => return unavailable(&e),
        }
    } else {
        Page::new(Vec::new(), request, 0)
    };
    let nav = PageNav::new(
        &page,
        "/admin/audit/",
        &[
            ("event", event),
            ("user_id", &user_id),
            ("client_id", client_id),
            ("ip", ip),
        ],
    );
    let events = match event_lines(&accounts, &clients, page.items).await {
        Ok(lines) => lines,
        Err(e) => return unavailable(&e),
    };
    render(
        StatusCode::OK,
        &AuditPage {
            who: &admin.username,
            csrf_token: csrf_token(&session),
            area: "audit",
            events,
            event,
            user_id: &user_id,
            user_login,
            user_error,
            client_id,
            ip,
            page: nav,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

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

/// A three-way filter's value: `"yes"`, `"no"` or `""` (either).
fn yes_no(value: Option<&str>) -> &'static str {
    match value {
        Some("yes") => "yes",
        Some("no") => "no",
        _ => "",
    }
}

fn as_bool(value: &str) -> Option<bool> {
    match value {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

fn full_name(user: &UserRow) -> String {
    format!("{} {}", user.first_name, user.last_name)
        .trim()
        .to_owned()
}

fn flags_of(user: &UserRow) -> AccountFlags {
    AccountFlags {
        is_active: user.is_active,
        is_staff: user.is_staff,
        is_superuser: user.is_superuser,
    }
}

fn user_not_found() -> HttpResponse {
    error_page(
        StatusCode::NOT_FOUND,
        "User not found",
        "There is no user at this address. They may have been deleted.",
    )
}

fn group_not_found() -> HttpResponse {
    error_page(
        StatusCode::NOT_FOUND,
        "Group not found",
        "There is no group at this address. It may have been deleted.",
    )
}

async fn find_user(accounts: &Accounts, id: &str) -> Result<UserRow, HttpResponse> {
    match accounts.find(id.to_owned()).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(user_not_found()),
        Err(e) => Err(unavailable(&e)),
    }
}

/// Whether a client application itself did what `event` records (token requests, client
/// authentication), as opposed to a change made to a client by someone else.
fn client_acted(event: &str) -> bool {
    ["token.", "client_auth.", "code.", "refresh_token."]
        .iter()
        .any(|prefix| event.starts_with(prefix))
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

fn group_values(form: &Params) -> GroupValues {
    GroupValues {
        name: form.get("name").unwrap_or_default().trim().to_owned(),
        description: form
            .get("description")
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

/// The form field and message for a refused group change; other failures as they were.
fn group_form_error(e: GroupError) -> Result<(&'static str, String), GroupError> {
    match e {
        GroupError::Taken => Ok((
            "name",
            "another group already has this name (names are compared ignoring case)".to_owned(),
        )),
        // The service's messages name their field; only the description has its own.
        GroupError::Invalid(message) if message.contains("description") => {
            Ok(("description", message))
        }
        GroupError::Invalid(message) => Ok(("name", message)),
        other => Err(other),
    }
}

/// Usernames of `ids`, each looked up once (`None`: the user is gone).
async fn usernames<'a>(
    accounts: &Accounts,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, Option<String>>, DbError> {
    let mut names = HashMap::new();
    for id in ids {
        if !names.contains_key(id) {
            let name = accounts.find(id.to_owned()).await?.map(|u| u.username);
            names.insert(id.to_owned(), name);
        }
    }
    Ok(names)
}

/// Client names of `ids`, each looked up once (`None`: the client is gone).
async fn client_names<'a>(
    clients: &Clients,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, Option<String>>, DbError> {
    let mut names = HashMap::new();
    for id in ids {
        if !names.contains_key(id) {
            let name = clients.find(id).await?.map(|c| c.row.name);
            names.insert(id.to_owned(), name);
        }
    }
    Ok(names)
}

/// The members of an audit event's details object, for display (text that is not an object,
/// which the audit module never writes, is shown whole).
fn detail_pairs(details: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(details) {
        Ok(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
        Err(_) => vec![(String::new(), details.to_owned())],
    }
}

/// Audit rows as the tables show them, with user and client names.
async fn event_lines(
    accounts: &Accounts,
    clients: &Clients,
    rows: Vec<AuditRow>,
) -> Result<Vec<EventLine>, DbError> {
    let users = usernames(
        accounts,
        rows.iter()
            .flat_map(|r| [r.actor_id.as_deref(), r.user_id.as_deref()])
            .flatten(),
    )
    .await?;
    let apps = client_names(clients, rows.iter().filter_map(|r| r.client_id.as_deref())).await?;
    let person = |id: String| Person {
        name: users.get(&id).cloned().flatten(),
        id,
    };
    Ok(rows
        .into_iter()
        .map(|row| {
            let time = show_time(&row.occurred_at);
            let (date, clock) = time.split_once(' ').unwrap_or((time.as_str(), ""));
            (row, date.to_owned(), clock.to_owned())
        })
        .map(|(row, date, clock)| EventLine {
            date,
            clock,
            nobody: if row.client_id.is_some() && client_acted(&row.event) {
                "client"
            } else if row.ip.is_some() {
                "anonymous"
            } else {
                "system"
            },
            actor: row.actor_id.map(person),
            user: row.user_id.map(person),
            event: row.event,
            client: row.client_id.map(|id| ClientRef {
                name: apps.get(&id).cloned().flatten(),
                id,
            }),
            ip: row.ip,
            details: detail_pairs(&row.details),
        })
        .collect())
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

/// Renders a user's page with `forms`; 422 when it shows an error.
async fn user_page(
    session: &Session,
    admin: &UserRow,
    user: &UserRow,
    groups: &Groups,
    oauth: &OAuth,
    forms: UserForms,
) -> HttpResponse {
    let loaded = async {
        let all = groups.all().await?;
        let mine = groups.of_user(&user.id).await?;
        let tokens = oauth
            .list_tokens(
                TokenFilter {
                    user_id: Some(user.id.clone()),
                    client_id: None,
                },
                PageRequest::new(None, 1),
            )
            .await?;
        Ok::<_, DbError>((all, mine, tokens.total))
    }
    .await;
    let (all, mine, active_tokens) = match loaded {
        Ok(found) => found,
        Err(e) => return unavailable(&e),
    };
    let other_groups = all
        .into_iter()
        .filter(|g| !mine.iter().any(|m| m.id == g.id))
        .collect();
    let status = if forms.error.is_some() || !forms.flags_error.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let (error_field, error_message) = forms.error.unwrap_or(("", String::new()));
    render(
        status,
        &UserPage {
            who: &admin.username,
            csrf_token: csrf_token(session),
            area: "users",
            user,
            is_self: user.id == admin.id,
            read_only: user.id != admin.id && !admin.is_superuser && user.has_staff_access(),
            admin_is_superuser: admin.is_superuser,
            groups_read_only: !admin.is_superuser
                && (user.id == admin.id || user.has_staff_access()),
            joined: show_time(&user.date_joined),
            last_login: user.last_login.as_ref().map(show_time),
            profile: forms.profile,
            error_field,
            error_message,
            flags_error: forms.flags_error,
            flags: forms.flags,
            groups: mine,
            other_groups,
            active_tokens,
            notice: forms.notice,
        },
    )
}

/// Renders the group list for `params` (search, page) with the create form; 422 when the form
/// shows an error.
#[allow(clippy::too_many_arguments)]
async fn groups_page(
    session: &Session,
    admin: &UserRow,
    groups: &Groups,
    web: &WebConfig,
    params: &Params,
    form: GroupValues,
    error: Option<(&'static str, String)>,
    notice: Option<String>,
) -> HttpResponse {
    let search = params.get("q").unwrap_or_default().trim().to_owned();
    let request = PageRequest::new(page_number(params), web.page_size);
    let page = match groups
        .list(Some(search.clone()).filter(|s| !s.is_empty()), request)
        .await
    {
        Ok(p) => p,
        Err(e) => return unavailable(&e),
    };
    let nav = PageNav::new(&page, "/admin/groups/", &[("q", &search)]);
    let lines = page
        .items
        .into_iter()
        .map(|s| GroupLine {
            id: s.group.id,
            name: s.group.name,
            description: s.group.description,
            members: s.members,
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let (error_field, error_message) = error.unwrap_or(("", String::new()));
    render(
        status,
        &GroupsPage {
            who: &admin.username,
            csrf_token: csrf_token(session),
            area: "groups",
            groups: lines,
            search: &search,
            page: nav,
            form,
            error_field,
            error_message,
            notice,
        },
    )
}

/// What a group's page shows besides the stored group.
#[derive(Default)]
struct GroupState {
    /// The submitted form (`None`: the stored values).
    form: Option<GroupValues>,
    error: Option<(&'static str, String)>,
    add_login: String,
    add_error: String,
    notice: Option<String>,
}

/// Renders a group's page (404 when it does not exist); members are paged by `params`. 422
/// when a form shows an error.
async fn group_page(
    session: &Session,
    admin: &UserRow,
    groups: &Groups,
    web: &WebConfig,
    id: &str,
    params: &Params,
    state: GroupState,
) -> HttpResponse {
    let (group, members) = match groups.find(id).await {
        Ok(Some(found)) => found,
        Ok(None) => return group_not_found(),
        Err(e) => return unavailable(&e),
    };
    let superuser_only = !admin.is_superuser && members.iter().any(UserRow::has_staff_access);
    // The service returns every member; the page shows one page of them.
    let request = PageRequest::new(page_number(params), web.page_size);
    let total = i64::try_from(members.len()).unwrap_or(i64::MAX);
    let skip = usize::try_from(request.offset()).unwrap_or(usize::MAX);
    let take = usize::try_from(request.size).unwrap_or(usize::MAX);
    let page = Page::new(
        members
            .into_iter()
            .skip(skip)
            .take(take)
            .collect::<Vec<_>>(),
        request,
        total,
    );
    let nav = PageNav::new(&page, &group_path(&group.id), &[]);
    let members = page
        .items
        .into_iter()
        .map(|u| MemberLine {
            // Staff change neither an admin's memberships nor their own.
            protected: u.has_staff_access() && !admin.is_superuser,
            id: u.id,
            username: u.username,
            email: u.email,
            is_active: u.is_active,
        })
        .collect();
    let status = if state.error.is_some() || !state.add_error.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let form = state.form.unwrap_or_else(|| GroupValues {
        name: group.name.clone(),
        description: group.description.clone(),
    });
    let (error_field, error_message) = state.error.unwrap_or(("", String::new()));
    render(
        status,
        &GroupPage {
            who: &admin.username,
            csrf_token: csrf_token(session),
            area: "groups",
            created: show_time(&group.created_at),
            updated: show_time(&group.updated_at),
            group: &group,
            members,
            superuser_only,
            page: nav,
            form,
            error_field,
            error_message,
            add_login: state.add_login,
            add_error: state.add_error,
            notice: state.notice,
        },
    )
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
    use super::{detail_pairs, notice, with_query, yes_no};
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

//! The console's users: the list, a user's page and its forms.

use super::*;

/// One row of the user list.
pub(super) struct UserLine {
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
pub(super) struct UsersPage<'a> {
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
pub(super) struct ProfileValues {
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
pub(super) struct UserPage<'a> {
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
pub(super) struct UserForms {
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

/// A three-way filter's value: `"yes"`, `"no"` or `""` (either).
pub(super) fn yes_no(value: Option<&str>) -> &'static str {
    match value {
        Some("yes") => "yes",
        Some("no") => "no",
        _ => "",
    }
}

pub(super) fn as_bool(value: &str) -> Option<bool> {
    match value {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

pub(super) fn full_name(user: &UserRow) -> String {
    format!("{} {}", user.first_name, user.last_name)
        .trim()
        .to_owned()
}

pub(super) fn flags_of(user: &UserRow) -> AccountFlags {
    AccountFlags {
        is_active: user.is_active,
        is_staff: user.is_staff,
        is_superuser: user.is_superuser,
    }
}

pub(super) async fn find_user(accounts: &Accounts, id: &str) -> Result<UserRow, HttpResponse> {
    match accounts.find(id.to_owned()).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(user_not_found()),
        Err(e) => Err(unavailable(&e)),
    }
}

pub(super) fn user_not_found() -> HttpResponse {
    error_page(
        StatusCode::NOT_FOUND,
        "User not found",
        "There is no user at this address. They may have been deleted.",
    )
}

/// Renders a user's page with `forms`; 422 when it shows an error.
pub(super) async fn user_page(
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

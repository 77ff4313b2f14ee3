//! The console's users: the list (`/admin/users/`), a user's page (`/admin/users/{id}/`) with
//! its profile and flags forms and groups, and "sign out everywhere". The emails an admin sends
//! a user and deleting a user are in [`super::user_actions`].

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{account_failure, group_failure, query, user_not_found, user_path};
use crate::accounts::{Account, AccountError, AccountFlags, Accounts, Profile, UserFilter};
use crate::config::EmailVerification;
use crate::db::groups::GroupRow;
use crate::db::tokens::TokenFilter;
use crate::domain::{Email, PageRequest, PersonName};
use crate::groups::Groups;
use crate::oauth::OAuth;
use crate::routes::chrome::{
    flash, page, render, AdminArea, ConfirmPage, ConfirmText, Notice, Section,
};
use crate::routes::errors::{FieldErrors, PageError};
use crate::routes::extract::{Form, Staff};
use crate::routes::format::{page_number, Moment, PageNav};
use crate::routes::http::see_other;
use crate::routes::WebConfig;
use crate::upstream::{LinkRemovalError, Upstream};

/// The console's users area in the navigation.
pub(super) const USERS: Section = Section::Admin(AdminArea::Users);

/// One row of the user list.
struct UserLine {
    id: String,
    username: String,
    email: String,
    name: String,
    is_active: bool,
    is_staff: bool,
    is_superuser: bool,
    last_login: Option<Moment>,
    joined: Moment,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    chrome: crate::routes::chrome::Chrome,
    users: Vec<UserLine>,
    search: String,
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
    fn of(user: &Account) -> Self {
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
    chrome: crate::routes::chrome::Chrome,
    user: &'a Account,
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
    /// "Resend verification email" is offered: the address is not verified, verification is
    /// on, and the account is the admin's to change.
    may_resend_verification: bool,
    joined: Moment,
    last_login: Option<Moment>,
    profile: ProfileValues,
    /// Messages of the profile fields (`email`, `first_name`, `last_name`) and of `flags`.
    errors: FieldErrors,
    flags: AccountFlags,
    groups: Vec<GroupRow>,
    /// Groups the user is not in, for the "add to group" select.
    other_groups: Vec<GroupRow>,
    active_tokens: i64,
    /// The user's accounts at upstream identity providers.
    links: Vec<LinkLine>,
    /// Show the linked-accounts section: providers are configured, or the user has links.
    show_links: bool,
    /// The user has no password: removing their last link leaves them to set one by email.
    has_password: bool,
}

/// One linked upstream account on a user's page.
struct LinkLine {
    /// The provider's id (in the removal URL).
    provider_id: String,
    /// The provider's label, or its id when it is no longer configured.
    provider: String,
    /// The name (and display name) at the provider.
    name: String,
    /// The picture at the provider (an https URL).
    picture: Option<String>,
    /// The address the provider gave, and whether it said it verified it.
    email: Option<(String, bool)>,
    since: Moment,
    last_used: Option<Moment>,
}

impl UserPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.errors.first(field)
    }
}

/// `GET /admin/users/[?q=TEXT&active=yes|no&staff=yes|no&page=N]`: users by username.
pub async fn list_users(
    admin: Staff,
    req: HttpRequest,
    accounts: web::Data<Accounts>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
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
    let found = accounts.list(filter, request).await?;
    let nav = PageNav::new(
        &found,
        "/admin/users/",
        &[("q", &search), ("active", active), ("staff", staff)],
    );
    let users = found
        .items
        .into_iter()
        .map(|u| UserLine {
            name: u.full_name(),
            last_login: u.last_login.as_ref().map(Moment::of),
            joined: Moment::of(&u.date_joined),
            id: u.id,
            username: u.username,
            email: u.email,
            is_active: u.is_active,
            is_staff: u.is_staff,
            is_superuser: u.is_superuser,
        })
        .collect();
    Ok(page(&UsersPage {
        chrome: admin.chrome(USERS),
        users,
        search,
        active,
        staff,
        page: nav,
    }))
}

/// What a user's page shows in its forms: the stored values, or what was submitted and why it
/// was not saved.
struct UserForms {
    profile: ProfileValues,
    flags: AccountFlags,
    errors: FieldErrors,
}

impl UserForms {
    fn of(user: &Account) -> Self {
        Self {
            profile: ProfileValues::of(user),
            flags: user.flags(),
            errors: FieldErrors::new(),
        }
    }
}

/// `GET /admin/users/{id}/`: the user's profile and flags forms, groups, the actions on the
/// account, and links to their tokens and audit events.
pub async fn show_user(
    admin: Staff,
    path: web::Path<String>,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    oauth: web::Data<OAuth>,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, PageError> {
    let user = find_user(&accounts, &path).await?;
    let forms = UserForms::of(&user);
    user_page(
        &admin,
        &accounts,
        &user,
        (&groups, &oauth, &upstream),
        forms,
    )
    .await
}

/// `POST /admin/users/{id}/profile/`: saves the email and names.
pub async fn update_user_profile(
    admin: Staff,
    Form(form): Form,
    path: web::Path<String>,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    oauth: web::Data<OAuth>,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, PageError> {
    let user = find_user(&accounts, &path).await?;
    let profile = ProfileValues {
        email: form.get("email").unwrap_or_default().trim().to_owned(),
        first_name: form.get("first_name").unwrap_or_default().trim().to_owned(),
        last_name: form.get("last_name").unwrap_or_default().trim().to_owned(),
    };
    // Checked here as well as in the service, to show every field's message at once.
    let mut errors = FieldErrors::new();
    if let Err(message) = Email::parse(&profile.email) {
        errors.add("email", message);
    }
    if let Err(message) = PersonName::parse("first name", &profile.first_name) {
        errors.add("first_name", message);
    }
    if let Err(message) = PersonName::parse("last name", &profile.last_name) {
        errors.add("last_name", message);
    }
    if errors.is_empty() {
        // No password field here: an admin's own email address is changed on /account/,
        // which asks for the current password (the service refuses it otherwise).
        let change = Profile {
            email: profile.email.clone(),
            first_name: profile.first_name.clone(),
            last_name: profile.last_name.clone(),
            current_password: None,
        };
        match accounts
            .update_profile(&admin.actor(), &user.id, change)
            .await
        {
            Ok(_) => {
                flash(admin.session(), Notice::success("The profile was saved."));
                return Ok(see_other(&user_path(&user.id)));
            }
            Err(AccountError::Taken) => {
                errors.add("email", "another user already has this email address");
            }
            Err(AccountError::Invalid(message)) => errors.add("email", message),
            Err(AccountError::WrongPassword) => errors.add(
                "email",
                "change your own email address on your account page, which asks for your current password",
            ),
            Err(e) => return Err(account_failure(e)),
        }
    }
    let forms = UserForms {
        profile,
        errors,
        ..UserForms::of(&user)
    };
    user_page(
        &admin,
        &accounts,
        &user,
        (&groups, &oauth, &upstream),
        forms,
    )
    .await
}

/// `POST /admin/users/{id}/flags/`: sets the active, staff and superuser flags. Deactivating
/// someone else is confirmed first (it revokes their tokens and ends their sessions); admins
/// cannot deactivate themselves or drop their own staff status.
pub async fn update_user_flags(
    admin: Staff,
    Form(form): Form,
    path: web::Path<String>,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
    oauth: web::Data<OAuth>,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, PageError> {
    let user = find_user(&accounts, &path).await?;
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
        return Ok(page(&ConfirmPage {
            chrome: admin.chrome(USERS),
            confirm: ConfirmText {
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
        }));
    }
    match accounts.set_flags(&admin.actor(), &user.id, flags).await {
        Ok(_) => {
            flash(
                admin.session(),
                Notice::success("The account flags were saved."),
            );
            Ok(see_other(&user_path(&user.id)))
        }
        Err(AccountError::Invalid(message)) => {
            let forms = UserForms {
                flags,
                errors: FieldErrors::one("flags", message),
                ..UserForms::of(&user)
            };
            user_page(
                &admin,
                &accounts,
                &user,
                (&groups, &oauth, &upstream),
                forms,
            )
            .await
        }
        Err(e) => Err(account_failure(e)),
    }
}

/// `POST /admin/users/{id}/groups/`: adds the user to the group `group_id`.
pub async fn add_user_to_group(
    admin: Staff,
    Form(form): Form,
    path: web::Path<String>,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
) -> Result<HttpResponse, PageError> {
    let user = find_user(&accounts, &path).await?;
    let group_id = form.get("group_id").unwrap_or_default();
    let notice = match groups
        .add_member(&admin.actor(), group_id, &user.username)
        .await
        .map_err(group_failure)?
    {
        true => Notice::success("The user was added to the group."),
        false => Notice::info("The user already belongs to that group."),
    };
    flash(admin.session(), notice);
    Ok(see_other(&user_path(&user.id)))
}

/// `POST /admin/users/{id}/groups/{group_id}/remove/`: takes the user out of a group.
pub async fn remove_user_from_group(
    admin: Staff,
    _form: Form,
    path: web::Path<(String, String)>,
    accounts: web::Data<Accounts>,
    groups: web::Data<Groups>,
) -> Result<HttpResponse, PageError> {
    let (user_id, group_id) = path.into_inner();
    let user = find_user(&accounts, &user_id).await?;
    if groups
        .remove_member(&admin.actor(), &group_id, &user.id)
        .await
        .map_err(group_failure)?
    {
        flash(
            admin.session(),
            Notice::success("The user was removed from the group."),
        );
    }
    Ok(see_other(&user_path(&user.id)))
}

/// `GET /admin/users/{id}/end_sessions/`: asks before signing the user out everywhere.
pub async fn confirm_end_sessions(
    admin: Staff,
    path: web::Path<String>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, PageError> {
    let user = find_user(&accounts, &path).await?;
    let yourself = if user.id == admin.id {
        " This includes this session: you will have to sign in again."
    } else {
        ""
    };
    Ok(page(&ConfirmPage {
        chrome: admin.chrome(USERS),
        confirm: ConfirmText {
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
    }))
}

/// `POST /admin/users/{id}/end_sessions/`: revokes every token of the user and ends every
/// session they have.
pub async fn end_sessions(
    admin: Staff,
    _form: Form,
    path: web::Path<String>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, PageError> {
    let revoked = accounts
        .end_sessions_and_tokens(&admin.actor(), &path)
        .await
        .map_err(account_failure)?;
    flash(
        admin.session(),
        Notice::success(format!(
            "Signed out everywhere: every session ended and {} revoked.",
            super::count_of(i64::try_from(revoked).unwrap_or(i64::MAX), "token")
        )),
    );
    Ok(see_other(&user_path(&path)))
}

/// `POST /admin/users/{id}/links/{provider}/remove/`: removes the user's link at an upstream
/// provider (for an admin who may change the account; the service checks).
pub async fn remove_link(
    admin: Staff,
    _form: Form,
    path: web::Path<(String, String)>,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, PageError> {
    let (user_id, provider_id) = path.into_inner();
    match upstream
        .remove_link(&admin.actor(), &user_id, &provider_id)
        .await
    {
        Ok(true) => flash(
            admin.session(),
            Notice::success("The linked account was removed: it no longer signs this user in."),
        ),
        Ok(false) => {}
        Err(LinkRemovalError::NotFound) => return Err(user_not_found()),
        Err(LinkRemovalError::Forbidden(refusal)) => {
            return Err(super::not_allowed(&refusal.to_string()))
        }
        Err(LinkRemovalError::Db(e)) => return Err(e.into()),
    }
    Ok(see_other(&user_path(&user_id)))
}

/// A three-way filter's value: `"yes"`, `"no"` or `""` (either).
pub(super) fn yes_no(value: Option<&str>) -> &'static str {
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

/// The user with `id`, or the 404 page.
pub(super) async fn find_user(accounts: &Accounts, id: &str) -> Result<Account, PageError> {
    accounts
        .find(id.to_owned())
        .await?
        .ok_or_else(user_not_found)
}

/// Whether `admin` may change `user`'s account, as `accounts::privileges` decides (the page
/// hides what the services would refuse).
pub(super) fn may_change(admin: &Account, user: &Account) -> bool {
    user.id == admin.id || admin.is_superuser || !user.has_staff_access()
}

/// Renders a user's page with `forms`; 422 when they show an error.
async fn user_page(
    admin: &Staff,
    accounts: &Accounts,
    user: &Account,
    (groups, oauth, upstream): (&Groups, &OAuth, &Upstream),
    forms: UserForms,
) -> Result<HttpResponse, PageError> {
    let labels = upstream.labels();
    let links: Vec<LinkLine> = upstream
        .links_of(&user.id)
        .await?
        .into_iter()
        .map(|l| LinkLine {
            provider: labels
                .get(&l.provider_id)
                .cloned()
                .unwrap_or_else(|| l.provider_id.clone()),
            name: if l.display_name.is_empty() || l.display_name == l.username {
                l.username.clone()
            } else {
                format!("{} ({})", l.display_name, l.username)
            },
            email: l.email.clone().map(|e| (e, l.email_verified)),
            picture: l.picture.clone(),
            since: Moment::of(&l.created_at),
            last_used: l.last_login_at.as_ref().map(Moment::of),
            provider_id: l.provider_id,
        })
        .collect();
    let all = groups.all().await?;
    let mine = groups.of_user(&user.id).await?;
    let active_tokens = oauth
        .list_tokens(
            TokenFilter {
                user_id: Some(user.id.clone()),
                client_id: None,
            },
            PageRequest::new(None, 1),
        )
        .await?
        .total;
    let other_groups = all
        .into_iter()
        .filter(|g| !mine.iter().any(|m| m.id == g.id))
        .collect();
    let status = if forms.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let read_only = !may_change(admin.user(), user);
    Ok(render(
        status,
        &UserPage {
            chrome: admin.chrome(USERS),
            user,
            is_self: user.id == admin.id,
            read_only,
            admin_is_superuser: admin.is_superuser,
            groups_read_only: !admin.is_superuser
                && (user.id == admin.id || user.has_staff_access()),
            may_resend_verification: !read_only
                && !user.email_verified
                && accounts.settings().email_verification != EmailVerification::Off,
            joined: Moment::of(&user.date_joined),
            last_login: user.last_login.as_ref().map(Moment::of),
            profile: forms.profile,
            errors: forms.errors,
            flags: forms.flags,
            groups: mine,
            other_groups,
            active_tokens,
            show_links: !links.is_empty() || !labels.is_empty(),
            links,
            has_password: user.has_password,
        },
    ))
}

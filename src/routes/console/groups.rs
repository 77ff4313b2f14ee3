//! The console's groups: the list with the create form (`/admin/groups/`), a group's page with
//! its members and its form (`/admin/groups/{id}/`), and deleting a group.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use super::{count_of, group_failure, group_not_found, group_path, query};
use crate::accounts::Account;
use crate::db::groups::GroupRow;
use crate::domain::{Page, PageRequest};
use crate::groups::{GroupError, Groups};
use crate::oauth::Params;
use crate::routes::chrome::{
    flash, page, render, AdminArea, Chrome, ConfirmPage, ConfirmText, Notice, Section,
};
use crate::routes::errors::{FieldErrors, PageError};
use crate::routes::extract::{Form, Staff};
use crate::routes::format::{page_number, Moment, PageNav};
use crate::routes::http::see_other;
use crate::routes::WebConfig;

/// The console's groups area in the navigation.
const GROUPS: Section = Section::Admin(AdminArea::Groups);

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
struct GroupsPage {
    chrome: Chrome,
    groups: Vec<GroupLine>,
    search: String,
    page: PageNav,
    form: GroupValues,
    /// Messages of the create form's `name` and `description`.
    errors: FieldErrors,
}

impl GroupsPage {
    fn err(&self, field: &str) -> Option<&str> {
        self.errors.first(field)
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
    chrome: Chrome,
    group: &'a GroupRow,
    created: Moment,
    updated: Moment,
    members: Vec<MemberLine>,
    /// The group has a staff or superuser member and the admin is not a superuser: renaming
    /// and deleting it are a superuser's (the groups service refuses them anyway), so the page
    /// offers neither.
    superuser_only: bool,
    page: PageNav,
    form: GroupValues,
    add_login: String,
    /// Messages of the form's `name` and `description`, and of the add-member form's `login`.
    errors: FieldErrors,
}

impl GroupPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.errors.first(field)
    }
}

/// `GET /admin/groups/[?q=TEXT&page=N]`: groups by name with member counts, and the form that
/// creates one.
pub async fn list_groups(
    admin: Staff,
    req: HttpRequest,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let params = query(&req);
    groups_page(
        &admin,
        &groups,
        &web,
        &params,
        GroupValues::default(),
        FieldErrors::new(),
    )
    .await
}

/// `POST /admin/groups/`: creates a group.
pub async fn create_group(
    admin: Staff,
    Form(form): Form,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let values = group_values(&form);
    match groups
        .create(&admin.actor(), &values.name, &values.description)
        .await
    {
        Ok(group) => {
            flash(admin.session(), Notice::success("The group was created."));
            Ok(see_other(&group_path(&group.id)))
        }
        Err(e) => {
            let errors = group_form_error(e).map_err(group_failure)?;
            groups_page(&admin, &groups, &web, &Params::default(), values, errors).await
        }
    }
}

/// `GET /admin/groups/{id}/[?page=N]`: the group's form and its members.
pub async fn show_group(
    admin: Staff,
    req: HttpRequest,
    path: web::Path<String>,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let params = query(&req);
    group_page(&admin, &groups, &web, &path, &params, GroupState::default()).await
}

/// `POST /admin/groups/{id}/`: renames the group and sets its description.
pub async fn update_group(
    admin: Staff,
    Form(form): Form,
    path: web::Path<String>,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let values = group_values(&form);
    match groups
        .update(&admin.actor(), &path, &values.name, &values.description)
        .await
    {
        Ok(()) => {
            flash(admin.session(), Notice::success("The group was saved."));
            Ok(see_other(&group_path(&path)))
        }
        Err(e) => {
            let state = GroupState {
                errors: group_form_error(e).map_err(group_failure)?,
                form: Some(values),
                ..GroupState::default()
            };
            group_page(&admin, &groups, &web, &path, &Params::default(), state).await
        }
    }
}

/// `POST /admin/groups/{id}/members/add/`: adds the user named in `login` (username or email).
pub async fn add_group_member(
    admin: Staff,
    Form(form): Form,
    path: web::Path<String>,
    groups: web::Data<Groups>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let login = form.get("login").unwrap_or_default().trim().to_owned();
    let add_error = if login.is_empty() {
        "enter a username or email address"
    } else {
        match groups.add_member(&admin.actor(), &path, &login).await {
            Ok(added) => {
                let notice = if added {
                    Notice::success("The member was added.")
                } else {
                    Notice::info("That user is already a member.")
                };
                flash(admin.session(), notice);
                return Ok(see_other(&group_path(&path)));
            }
            // The page below answers 404 when it is the group that is missing.
            Err(GroupError::NotFound) => "no user has this username or email address",
            Err(e) => return Err(group_failure(e)),
        }
    };
    let state = GroupState {
        add_login: login,
        errors: FieldErrors::one("login", add_error),
        ..GroupState::default()
    };
    group_page(&admin, &groups, &web, &path, &Params::default(), state).await
}

/// `POST /admin/groups/{id}/members/{user_id}/remove/`: takes a member out of the group.
pub async fn remove_group_member(
    admin: Staff,
    _form: Form,
    path: web::Path<(String, String)>,
    groups: web::Data<Groups>,
) -> Result<HttpResponse, PageError> {
    let (group_id, user_id) = path.into_inner();
    if groups.find(&group_id).await?.is_none() {
        return Err(group_not_found());
    }
    if groups
        .remove_member(&admin.actor(), &group_id, &user_id)
        .await
        .map_err(group_failure)?
    {
        flash(admin.session(), Notice::success("The member was removed."));
    }
    Ok(see_other(&group_path(&group_id)))
}

/// `GET /admin/groups/{id}/delete/`: asks before deleting the group.
pub async fn confirm_delete_group(
    admin: Staff,
    path: web::Path<String>,
    groups: web::Data<Groups>,
) -> Result<HttpResponse, PageError> {
    let (group, members) = groups.find(&path).await?.ok_or_else(group_not_found)?;
    Ok(page(&ConfirmPage {
        chrome: admin.chrome(GROUPS),
        confirm: ConfirmText {
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
    }))
}

/// `POST /admin/groups/{id}/delete/`: deletes the group and its memberships.
pub async fn delete_group(
    admin: Staff,
    _form: Form,
    path: web::Path<String>,
    groups: web::Data<Groups>,
) -> Result<HttpResponse, PageError> {
    groups
        .delete(&admin.actor(), &path)
        .await
        .map_err(group_failure)?;
    flash(admin.session(), Notice::success("The group was deleted."));
    Ok(see_other("/admin/groups/"))
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
fn group_form_error(e: GroupError) -> Result<FieldErrors, GroupError> {
    match e {
        GroupError::Taken => Ok(FieldErrors::one(
            "name",
            "another group already has this name (names are compared ignoring case)",
        )),
        // The service's messages name their field; only the description has its own.
        GroupError::Invalid(message) if message.contains("description") => {
            Ok(FieldErrors::one("description", message))
        }
        GroupError::Invalid(message) => Ok(FieldErrors::one("name", message)),
        other => Err(other),
    }
}

/// Renders the group list for `params` (search, page) with the create form; 422 when the form
/// shows an error.
async fn groups_page(
    admin: &Staff,
    groups: &Groups,
    web: &WebConfig,
    params: &Params,
    form: GroupValues,
    errors: FieldErrors,
) -> Result<HttpResponse, PageError> {
    let search = params.get("q").unwrap_or_default().trim().to_owned();
    let request = PageRequest::new(page_number(params), web.page_size);
    let found = groups
        .list(Some(search.clone()).filter(|s| !s.is_empty()), request)
        .await?;
    let nav = PageNav::new(&found, "/admin/groups/", &[("q", &search)]);
    let lines = found
        .items
        .into_iter()
        .map(|s| GroupLine {
            id: s.group.id,
            name: s.group.name,
            description: s.group.description,
            members: s.members,
        })
        .collect();
    Ok(render(
        status_of(&errors),
        &GroupsPage {
            chrome: admin.chrome(GROUPS),
            groups: lines,
            search,
            page: nav,
            form,
            errors,
        },
    ))
}

/// 200, or 422 when a form shows errors.
fn status_of(errors: &FieldErrors) -> StatusCode {
    if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    }
}

/// What a group's page shows besides the stored group.
#[derive(Default)]
struct GroupState {
    /// The submitted form (`None`: the stored values).
    form: Option<GroupValues>,
    add_login: String,
    errors: FieldErrors,
}

/// Renders a group's page (404 when it does not exist); members are paged by `params`. 422
/// when a form shows an error.
async fn group_page(
    admin: &Staff,
    groups: &Groups,
    web: &WebConfig,
    id: &str,
    params: &Params,
    state: GroupState,
) -> Result<HttpResponse, PageError> {
    let (group, members) = groups.find(id).await?.ok_or_else(group_not_found)?;
    let superuser_only = !admin.is_superuser && members.iter().any(Account::has_staff_access);
    // The service returns every member; the page shows one page of them.
    let request = PageRequest::new(page_number(params), web.page_size);
    let total = i64::try_from(members.len()).unwrap_or(i64::MAX);
    let skip = usize::try_from(request.offset()).unwrap_or(usize::MAX);
    let take = usize::try_from(request.size).unwrap_or(usize::MAX);
    let shown = Page::new(
        members
            .into_iter()
            .skip(skip)
            .take(take)
            .collect::<Vec<_>>(),
        request,
        total,
    );
    let nav = PageNav::new(&shown, &group_path(&group.id), &[]);
    let members = shown
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
    let form = state.form.unwrap_or_else(|| GroupValues {
        name: group.name.clone(),
        description: group.description.clone(),
    });
    Ok(render(
        status_of(&state.errors),
        &GroupPage {
            chrome: admin.chrome(GROUPS),
            created: Moment::of(&group.created_at),
            updated: Moment::of(&group.updated_at),
            group: &group,
            members,
            superuser_only,
            page: nav,
            form,
            add_login: state.add_login,
            errors: state.errors,
        },
    ))
}

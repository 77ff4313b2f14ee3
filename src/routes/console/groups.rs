//! The console's groups: the list, the create form, a group's page and its members.

use super::*;

/// One row of the group list.
pub(super) struct GroupLine {
    id: String,
    name: String,
    description: String,
    members: i64,
}

/// The group form's values.
#[derive(Default)]
pub(super) struct GroupValues {
    name: String,
    description: String,
}

#[derive(Template)]
#[template(path = "admin/groups.html")]
pub(super) struct GroupsPage<'a> {
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
pub(super) struct MemberLine {
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
pub(super) struct GroupPage<'a> {
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

pub(super) fn group_not_found() -> HttpResponse {
    error_page(
        StatusCode::NOT_FOUND,
        "Group not found",
        "There is no group at this address. It may have been deleted.",
    )
}

pub(super) fn group_values(form: &Params) -> GroupValues {
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
pub(super) fn group_form_error(e: GroupError) -> Result<(&'static str, String), GroupError> {
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

/// Renders the group list for `params` (search, page) with the create form; 422 when the form
/// shows an error.
#[allow(clippy::too_many_arguments)]
pub(super) async fn groups_page(
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
pub(super) struct GroupState {
    /// The submitted form (`None`: the stored values).
    form: Option<GroupValues>,
    error: Option<(&'static str, String)>,
    add_login: String,
    add_error: String,
    notice: Option<String>,
}

/// Renders a group's page (404 when it does not exist); members are paged by `params`. 422
/// when a form shows an error.
pub(super) async fn group_page(
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

//! The developer portal (django-oauth-toolkit's `/o/applications/`): a user registers, edits
//! and deletes their own OAuth clients; staff see and manage every client. The client secret is
//! shown exactly once, in the answer to the registration (or rotation) POST itself — never
//! stored anywhere, not even in the session — and afterwards only its first characters identify
//! it.
//!
//! Someone else's application answers 404, as if it did not exist. Powers meant for first-party
//! applications are a superuser's: the password grant, skipping consent, introspecting every
//! token, serving RFC 8707 resources (which lets a client introspect the tokens meant for them),
//! refresh tokens without `offline_access`, plain PKCE and custom token lifetimes (a self-made
//! client with the password grant would be a phishing kit that gets tokens without consent).
//! Staff who are not superusers see every application but change only their own and ordinary
//! users' ([`Clients::access`]); while an application holds a power, its redirect URIs,
//! post-logout redirect URIs and origins are read-only to everyone but a superuser.

use std::collections::BTreeMap;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

use crate::accounts::Accounts;
use crate::clients::{
    split_list, AuthMethod, Client, ClientAccess, ClientError, ClientSpec, ClientType, Clients,
    GrantType,
};
use crate::config::RESTRICTED_SCOPES;
use crate::db::users::UserRow;
use crate::domain::PageRequest;
use crate::oauth::Params;
use crate::oidc::SigningAlg;
use crate::routes::support::{
    actor, csrf_token, error_page, page_number, read_page_form, render, require_login, see_other,
    show_time, ticked, unavailable, PageNav, WebConfig,
};

/// One row of the application list.
struct AppRow {
    client: Client,
    owner: Option<String>,
}

#[derive(Template)]
#[template(path = "apps/list.html")]
struct ListPage<'a> {
    who: &'a str,
    csrf_token: String,
    is_staff: bool,
    section: &'a str,
    apps: Vec<AppRow>,
    search: &'a str,
    page: PageNav,
}

/// A checkbox in the form.
struct Choice {
    value: String,
    label: String,
    checked: bool,
}

/// The register/update form with its values and the error to show next to a field.
#[derive(Template)]
#[template(path = "apps/form.html")]
struct FormPage<'a> {
    who: &'a str,
    csrf_token: String,
    is_staff: bool,
    section: &'a str,
    /// `None` when registering.
    client_id: Option<&'a str>,
    /// Whether the viewer may give first-party powers (a superuser); staff who are not see
    /// those settings without being able to change them.
    grant_powers: bool,
    /// Why the redirect URIs, post-logout redirect URIs and origins are read-only, if they are.
    destinations_fixed: Option<String>,
    form: FormValues,
    error_field: &'a str,
    error_message: String,
}

impl FormPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        (self.error_field == field).then_some(self.error_message.as_str())
    }
}

/// What the form shows (a new form, a stored client, or what was submitted).
struct FormValues {
    name: String,
    client_type: String,
    auth_method: String,
    grants: Vec<Choice>,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    allowed_origins: String,
    scopes: Vec<Choice>,
    resource_uris: String,
    skip_authorization: bool,
    introspect_all: bool,
    allow_plain_pkce: bool,
    access_token_lifetime: String,
    refresh_token_lifetime: String,
    id_token_alg: String,
    access_token_format: String,
    always_issue_refresh_token: bool,
    algs: Vec<&'static str>,
}

impl FormValues {
    fn from_spec(spec: &ClientSpec, known: &BTreeMap<String, String>) -> Self {
        let grants = GrantType::ALL
            .iter()
            .map(|g| Choice {
                value: g.as_str().to_owned(),
                label: grant_label(*g).to_owned(),
                checked: spec.grant_types.iter().any(|s| s == g.as_str()),
            })
            .collect();
        let all_scopes = spec.scopes.is_empty();
        let scopes = known
            .iter()
            .map(|(name, description)| Choice {
                value: name.clone(),
                label: description.clone(),
                // A new form ticks every scope but `admin` and `logout_all`, like the
                // validator's default.
                checked: (all_scopes && !RESTRICTED_SCOPES.contains(&name.as_str()))
                    || spec.scopes.iter().any(|s| s == name),
            })
            .collect();
        Self {
            name: spec.name.clone(),
            client_type: spec.client_type.clone(),
            auth_method: spec.auth_method.clone().unwrap_or_default(),
            grants,
            redirect_uris: spec.redirect_uris.join("\n"),
            post_logout_redirect_uris: spec.post_logout_redirect_uris.join("\n"),
            allowed_origins: spec.allowed_origins.join("\n"),
            scopes,
            resource_uris: spec.resource_uris.join("\n"),
            skip_authorization: spec.skip_authorization,
            introspect_all: spec.introspect_all,
            allow_plain_pkce: spec.allow_plain_pkce,
            access_token_lifetime: spec
                .access_token_lifetime
                .map(|v| v.to_string())
                .unwrap_or_default(),
            refresh_token_lifetime: spec
                .refresh_token_lifetime
                .map(|v| v.to_string())
                .unwrap_or_default(),
            id_token_alg: spec.id_token_alg.clone().unwrap_or_else(|| "RS256".into()),
            access_token_format: spec
                .access_token_format
                .clone()
                .unwrap_or_else(|| "opaque".into()),
            always_issue_refresh_token: spec.always_issue_refresh_token,
            algs: SigningAlg::ALL.iter().map(|a| a.as_str()).collect(),
        }
    }
}

fn grant_label(grant: GrantType) -> &'static str {
    match grant {
        GrantType::AuthorizationCode => "Authorization code (users sign in through your app)",
        GrantType::RefreshToken => "Refresh token (keep access without asking again)",
        GrantType::Password => {
            "Password (your app collects the user's password — first-party apps only)"
        }
        GrantType::ClientCredentials => {
            "Client credentials (your server acts as itself, no user; only for the scopes the server allows without a user)"
        }
    }
}

#[derive(Template)]
#[template(path = "apps/detail.html")]
struct DetailPage<'a> {
    who: &'a str,
    csrf_token: String,
    is_staff: bool,
    section: &'a str,
    client: &'a Client,
    owner: Option<String>,
    /// Why the viewer may not edit, delete or rotate the secret of this client, if so.
    refused: Option<String>,
    /// The plain secret, on the one page view right after it was generated.
    new_secret: Option<String>,
    secret_hint: String,
    active_tokens: i64,
    issuer: &'a str,
    grants: Vec<&'static str>,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    allowed_origins: Vec<String>,
    scopes: Vec<String>,
    resource_uris: Vec<String>,
    curl: String,
    created: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "apps/confirm.html")]
struct ConfirmPage<'a> {
    who: &'a str,
    csrf_token: String,
    is_staff: bool,
    section: &'a str,
    title: &'a str,
    message: String,
    action: String,
    button: &'a str,
    cancel: String,
}

/// `GET /o/applications/[?q=TEXT&page=N]`: the user's applications; staff see every
/// application, with owners, and can search.
pub async fn list_applications(
    req: HttpRequest,
    session: Session,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let user = match require_login(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let params = Params::from_query(req.query_string()).unwrap_or_default();
    let search = params.get("q").unwrap_or_default().trim().to_owned();
    let staff = user.has_staff_access();
    let owner = (!staff).then(|| user.id.clone());
    let request = PageRequest::new(page_number(&params), web.page_size);
    let page = match clients
        .list_page(
            owner,
            Some(search.clone()).filter(|s| !s.is_empty()),
            request,
        )
        .await
    {
        Ok(p) => p,
        Err(e) => return unavailable(&e),
    };
    let nav = PageNav::new(&page, "/o/applications/", &[("q", &search)]);
    let mut apps = Vec::with_capacity(page.items.len());
    for client in page.items {
        let owner = if staff {
            match owner_name(&accounts, &client).await {
                Ok(o) => o,
                Err(response) => return response,
            }
        } else {
            None
        };
        apps.push(AppRow { client, owner });
    }
    render(
        StatusCode::OK,
        &ListPage {
            who: &user.username,
            csrf_token: csrf_token(&session),
            is_staff: staff,
            section: "apps",
            apps,
            search: &search,
            page: nav,
        },
    )
}

/// `GET /o/applications/register/`: an empty form with sensible defaults (a confidential
/// client with the authorization-code and refresh-token grants and every scope).
pub async fn show_register_form(
    req: HttpRequest,
    session: Session,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let user = match require_login(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let access = match clients.access(&actor(&req, &user), None).await {
        Ok(a) => a,
        Err(e) => return unavailable(&e),
    };
    let spec = ClientSpec {
        client_type: ClientType::Confidential.as_str().to_owned(),
        auth_method: Some(AuthMethod::ClientSecretBasic.as_str().to_owned()),
        grant_types: vec![
            GrantType::AuthorizationCode.as_str().to_owned(),
            GrantType::RefreshToken.as_str().to_owned(),
        ],
        require_pkce: true,
        ..ClientSpec::default()
    };
    form_page(
        &session,
        &user,
        None,
        &access,
        &spec,
        clients.known_scopes(),
        None,
    )
}

/// `POST /o/applications/register/`: registers the client (owned by the user) and shows its
/// secret once.
pub async fn register_application(
    req: HttpRequest,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let user = match require_login(&req, &session, &accounts, &web).await {
        Ok(u) => u,
        Err(response) => return response,
    };
    let form = match read_page_form(&req, payload, &session, web.max_body_bytes).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let access = match clients.access(&actor(&req, &user), None).await {
        Ok(a) => a,
        Err(e) => return unavailable(&e),
    };
    let (mut spec, error) = spec_from_form(&form, &access, None);
    if error.is_some() {
        return form_page(
            &session,
            &user,
            None,
            &access,
            &spec,
            clients.known_scopes(),
            error,
        );
    }
    spec.owner_id = Some(user.id.clone());
    spec.require_pkce = true;
    match clients.register(&actor(&req, &user), &spec).await {
        Ok((client, secret)) => {
            detail_page(
                &req,
                &session,
                &user,
                &client,
                &accounts,
                &clients,
                &web,
                secret.map(|s| s.0),
                StatusCode::CREATED,
            )
            .await
        }
        Err(e) => form_error(&session, &user, None, &access, &spec, &clients, e),
    }
}

/// `GET /o/applications/{client_id}/`: everything a developer pastes into their client.
pub async fn show_application(
    req: HttpRequest,
    path: web::Path<String>,
    session: Session,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let (user, client) = match owned_client(&req, &path, &session, &accounts, &clients, &web).await
    {
        Ok(found) => found,
        Err(response) => return response,
    };
    detail_page(
        &req,
        &session,
        &user,
        &client,
        &accounts,
        &clients,
        &web,
        None,
        StatusCode::OK,
    )
    .await
}

/// The detail page; `new_secret` is the plain secret in the answer that generated it.
#[allow(clippy::too_many_arguments)]
async fn detail_page(
    req: &HttpRequest,
    session: &Session,
    user: &UserRow,
    client: &Client,
    accounts: &Accounts,
    clients: &Clients,
    web: &WebConfig,
    new_secret: Option<String>,
    status: StatusCode,
) -> HttpResponse {
    let active_tokens = match clients.active_token_count(client.id()).await {
        Ok(n) => n,
        Err(e) => return unavailable(&e),
    };
    let owner = match owner_name(accounts, client).await {
        Ok(o) => o,
        Err(response) => return response,
    };
    let refused = match clients.access(&actor(req, user), Some(client)).await {
        Ok(access) => access.refused,
        Err(e) => return unavailable(&e),
    };
    let row = &client.row;
    let page = DetailPage {
        who: &user.username,
        csrf_token: csrf_token(session),
        is_staff: user.has_staff_access(),
        section: "apps",
        curl: curl_example(&web.issuer, client),
        secret_hint: row.secret_hint.clone().unwrap_or_default(),
        client,
        owner,
        refused,
        new_secret,
        active_tokens,
        issuer: &web.issuer,
        grants: client.grant_types.iter().map(|g| g.as_str()).collect(),
        redirect_uris: client.redirect_uris.clone(),
        post_logout_redirect_uris: split_list(&row.post_logout_redirect_uris),
        allowed_origins: split_list(&row.allowed_origins),
        scopes: client.allowed_scopes.iter().map(str::to_owned).collect(),
        resource_uris: client.resource_uris.iter().map(str::to_owned).collect(),
        created: show_time(&row.created_at),
        updated: show_time(&row.updated_at),
    };
    render(status, &page)
}

/// `GET /o/applications/{client_id}/update/`: the form, filled in.
pub async fn show_update_form(
    req: HttpRequest,
    path: web::Path<String>,
    session: Session,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let (user, client, access) =
        match managed_client(&req, &path, &session, &accounts, &clients, &web).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let spec = ClientSpec::from_client(&client);
    form_page(
        &session,
        &user,
        Some(client.id()),
        &access,
        &spec,
        clients.known_scopes(),
        None,
    )
}

/// `POST /o/applications/{client_id}/update/`: saves the form. First-party settings
/// (`skip_authorization`, `introspect_all`, …) keep their stored values when anyone but a
/// superuser saves, and so do a powered client's redirect URIs, post-logout redirect URIs and
/// origins.
pub async fn update_application(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let (user, client, access) =
        match managed_client(&req, &path, &session, &accounts, &clients, &web).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    let form = match read_page_form(&req, payload, &session, web.max_body_bytes).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let id = client.id().to_owned();
    let (spec, error) = spec_from_form(&form, &access, Some(&client));
    if error.is_some() {
        return form_page(
            &session,
            &user,
            Some(&id),
            &access,
            &spec,
            clients.known_scopes(),
            error,
        );
    }
    match clients.update(&actor(&req, &user), &id, &spec).await {
        Ok(_) => see_other(&detail_path(&id)),
        Err(e) => form_error(&session, &user, Some(&id), &access, &spec, &clients, e),
    }
}

/// `GET /o/applications/{client_id}/delete/`: asks for confirmation.
pub async fn confirm_delete(
    req: HttpRequest,
    path: web::Path<String>,
    session: Session,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let (user, client, _) =
        match managed_client(&req, &path, &session, &accounts, &clients, &web).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    render(
        StatusCode::OK,
        &ConfirmPage {
            who: &user.username,
            csrf_token: csrf_token(&session),
            is_staff: user.has_staff_access(),
            section: "apps",
            title: "Delete this application?",
            message: format!(
                "“{}” will stop working at once: its client_id and secret are forgotten, and every token issued to it is revoked. This cannot be undone.",
                client.row.name
            ),
            action: format!("{}delete/", detail_path(client.id())),
            button: "Delete application",
            cancel: detail_path(client.id()),
        },
    )
}

/// `POST /o/applications/{client_id}/delete/`: deletes the client with its tokens.
pub async fn delete_application(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let (user, client, _) =
        match managed_client(&req, &path, &session, &accounts, &clients, &web).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    if let Err(page) = read_page_form(&req, payload, &session, web.max_body_bytes).await {
        return page;
    }
    match clients.delete(&actor(&req, &user), client.id()).await {
        Ok(()) | Err(ClientError::NotFound) => see_other("/o/applications/"),
        Err(ClientError::Db(e)) => unavailable(&e),
        Err(ClientError::Forbidden { message, .. }) => forbidden(&message),
        Err(e @ ClientError::Invalid { .. }) => {
            error_page(StatusCode::BAD_REQUEST, "Cannot delete", &e.to_string())
        }
    }
}

/// `GET /o/applications/{client_id}/rotate_secret/`: asks for confirmation.
pub async fn confirm_rotate_secret(
    req: HttpRequest,
    path: web::Path<String>,
    session: Session,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let (user, client, _) =
        match managed_client(&req, &path, &session, &accounts, &clients, &web).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    if client.client_type != ClientType::Confidential {
        return not_found();
    }
    render(
        StatusCode::OK,
        &ConfirmPage {
            who: &user.username,
            csrf_token: csrf_token(&session),
            is_staff: user.has_staff_access(),
            section: "apps",
            title: "Generate a new client secret?",
            message: format!(
                "The current secret of “{}” stops working the moment the new one is generated. Update your application with the new secret right away. Tokens already issued stay valid.",
                client.row.name
            ),
            action: format!("{}rotate_secret/", detail_path(client.id())),
            button: "Generate new secret",
            cancel: detail_path(client.id()),
        },
    )
}

/// `POST /o/applications/{client_id}/rotate_secret/`: replaces the secret and shows the new
/// one once.
pub async fn rotate_secret(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    session: Session,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> HttpResponse {
    let (user, client, _) =
        match managed_client(&req, &path, &session, &accounts, &clients, &web).await {
            Ok(found) => found,
            Err(response) => return response,
        };
    if let Err(page) = read_page_form(&req, payload, &session, web.max_body_bytes).await {
        return page;
    }
    match clients
        .rotate_secret(&actor(&req, &user), client.id())
        .await
    {
        Ok(secret) => {
            detail_page(
                &req,
                &session,
                &user,
                &client,
                &accounts,
                &clients,
                &web,
                Some(secret.0),
                StatusCode::OK,
            )
            .await
        }
        Err(ClientError::Db(e)) => unavailable(&e),
        Err(ClientError::Forbidden { message, .. }) => forbidden(&message),
        Err(_) => not_found(),
    }
}

fn detail_path(client_id: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    format!("/o/applications/{encoded}/")
}

fn not_found() -> HttpResponse {
    error_page(
        StatusCode::NOT_FOUND,
        "Application not found",
        "There is no application at this address, or it is not yours.",
    )
}

/// The signed-in user and the client at `client_id`, if it is theirs (or they are staff).
async fn owned_client(
    req: &HttpRequest,
    client_id: &str,
    session: &Session,
    accounts: &Accounts,
    clients: &Clients,
    web: &WebConfig,
) -> Result<(UserRow, Client), HttpResponse> {
    let user = require_login(req, session, accounts, web).await?;
    match clients.find(client_id).await {
        Ok(Some(client))
            if user.has_staff_access()
                || client.row.owner_id.as_deref() == Some(user.id.as_str()) =>
        {
            Ok((user, client))
        }
        Ok(_) => Err(not_found()),
        Err(e) => Err(unavailable(&e)),
    }
}

/// [`owned_client`], when the viewer may also change it ([`Clients::access`]): a staff member
/// who is not a superuser sees an operator's or an admin's client but gets 403 for its forms.
async fn managed_client(
    req: &HttpRequest,
    client_id: &str,
    session: &Session,
    accounts: &Accounts,
    clients: &Clients,
    web: &WebConfig,
) -> Result<(UserRow, Client, ClientAccess), HttpResponse> {
    let (user, client) = owned_client(req, client_id, session, accounts, clients, web).await?;
    let access = match clients.access(&actor(req, &user), Some(&client)).await {
        Ok(a) => a,
        Err(e) => return Err(unavailable(&e)),
    };
    if let Some(why) = &access.refused {
        return Err(forbidden(why));
    }
    Ok((user, client, access))
}

fn forbidden(why: &str) -> HttpResponse {
    error_page(
        StatusCode::FORBIDDEN,
        "Not allowed",
        &format!("You cannot change this application: {why}."),
    )
}

async fn owner_name(accounts: &Accounts, client: &Client) -> Result<Option<String>, HttpResponse> {
    match &client.row.owner_id {
        None => Ok(None),
        Some(id) => match accounts.find(id.clone()).await {
            Ok(user) => Ok(user.map(|u| u.username)),
            Err(e) => Err(unavailable(&e)),
        },
    }
}

fn form_page(
    session: &Session,
    user: &UserRow,
    client_id: Option<&str>,
    access: &ClientAccess,
    spec: &ClientSpec,
    known: &BTreeMap<String, String>,
    error: Option<(&str, String)>,
) -> HttpResponse {
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    form_page_with(session, user, client_id, access, spec, known, error, status)
}

#[allow(clippy::too_many_arguments)]
fn form_page_with(
    session: &Session,
    user: &UserRow,
    client_id: Option<&str>,
    access: &ClientAccess,
    spec: &ClientSpec,
    known: &BTreeMap<String, String>,
    error: Option<(&str, String)>,
    status: StatusCode,
) -> HttpResponse {
    let (error_field, error_message) = error.unwrap_or(("", String::new()));
    render(
        status,
        &FormPage {
            who: &user.username,
            csrf_token: csrf_token(session),
            is_staff: user.has_staff_access(),
            section: "apps",
            client_id,
            grant_powers: access.grant_powers,
            destinations_fixed: access.destinations_fixed.clone(),
            form: FormValues::from_spec(spec, known),
            error_field,
            error_message,
        },
    )
}

fn form_error(
    session: &Session,
    user: &UserRow,
    client_id: Option<&str>,
    access: &ClientAccess,
    spec: &ClientSpec,
    clients: &Clients,
    e: ClientError,
) -> HttpResponse {
    match e {
        ClientError::Invalid { field, message } => form_page(
            session,
            user,
            client_id,
            access,
            spec,
            clients.known_scopes(),
            Some((field, message)),
        ),
        ClientError::Forbidden {
            field: "owner",
            message,
        } => forbidden(&message),
        // The form keeps first-party settings and fixed destinations away from those who may
        // not change them (`spec_from_form`), so this is the service's own refusal of a
        // request the form would not send (or of a change made meanwhile): 403, the form shown.
        ClientError::Forbidden { field, message } => form_page_with(
            session,
            user,
            client_id,
            access,
            spec,
            clients.known_scopes(),
            Some((field, message)),
            StatusCode::FORBIDDEN,
        ),
        ClientError::NotFound => not_found(),
        ClientError::Db(e) => unavailable(&e),
    }
}

/// Lines of a textarea, trimmed, empty ones dropped.
fn lines(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A lifetime field: empty = the server default; otherwise whole seconds.
fn lifetime(form: &Params, field: &'static str) -> Result<Option<i64>, (&'static str, String)> {
    match form.get(field).map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
            (
                field,
                "enter a whole number of seconds, or leave it empty for the server default"
                    .to_owned(),
            )
        }),
    }
}

/// Builds a spec from the submitted form, with the first field that is not even well-formed
/// (and its message) if there is one; the spec is then as far as it was read. First-party
/// settings keep `existing`'s values (or are off) for those who may not give them, and so do
/// the redirect URIs, post-logout redirect URIs and origins while they are fixed (`access`).
fn spec_from_form(
    form: &Params,
    access: &ClientAccess,
    existing: Option<&Client>,
) -> (ClientSpec, Option<(&'static str, String)>) {
    let staff = access.grant_powers;
    let stored = existing.map(ClientSpec::from_client);
    let checked = |name: &str| form.get(name).is_some();
    let client_type = match existing {
        // The type cannot change (it decides whether a secret exists).
        Some(client) => client.client_type.as_str().to_owned(),
        None => form.get("client_type").unwrap_or_default().to_owned(),
    };
    // Superusers decide first-party powers; for others the stored values (or the safe defaults
    // of a new client) stay.
    let staff_or = |ticked: bool, kept: bool| if staff { ticked } else { kept };
    // Where a powered client's codes go stays as stored for those who may not change it.
    let fixed_or = |stored_list: fn(&ClientSpec) -> &Vec<String>, field: &str| match &stored {
        Some(s) if access.destinations_fixed.is_some() => stored_list(s).clone(),
        _ => lines(form.get(field)),
    };
    let mut spec = ClientSpec {
        name: form.get("name").unwrap_or_default().to_owned(),
        auth_method: if client_type == ClientType::Public.as_str() {
            Some(AuthMethod::None.as_str().to_owned())
        } else {
            form.get("token_endpoint_auth_method").map(str::to_owned)
        },
        client_type,
        grant_types: ticked(form, "grant:"),
        redirect_uris: fixed_or(|s| &s.redirect_uris, "redirect_uris"),
        post_logout_redirect_uris: fixed_or(
            |s| &s.post_logout_redirect_uris,
            "post_logout_redirect_uris",
        ),
        allowed_origins: fixed_or(|s| &s.allowed_origins, "allowed_origins"),
        scopes: ticked(form, "scope:"),
        skip_authorization: staff_or(
            checked("skip_authorization"),
            stored.as_ref().is_some_and(|s| s.skip_authorization),
        ),
        require_pkce: stored.as_ref().is_none_or(|s| s.require_pkce),
        allow_plain_pkce: staff_or(
            checked("allow_plain_pkce"),
            stored.as_ref().is_some_and(|s| s.allow_plain_pkce),
        ),
        introspect_all: staff_or(
            checked("introspect_all"),
            stored.as_ref().is_some_and(|s| s.introspect_all),
        ),
        // Serving a resource lets the client introspect the tokens meant for it: superusers
        // only.
        resource_uris: if staff {
            lines(form.get("resource_uris"))
        } else {
            stored
                .as_ref()
                .map(|s| s.resource_uris.clone())
                .unwrap_or_default()
        },
        access_token_lifetime: stored.as_ref().and_then(|s| s.access_token_lifetime),
        refresh_token_lifetime: stored.as_ref().and_then(|s| s.refresh_token_lifetime),
        owner_id: stored.as_ref().and_then(|s| s.owner_id.clone()),
        id_token_alg: form.get("id_token_signed_response_alg").map(str::to_owned),
        access_token_format: form.get("access_token_format").map(str::to_owned),
        always_issue_refresh_token: staff_or(
            checked("always_issue_refresh_token"),
            stored
                .as_ref()
                .is_some_and(|s| s.always_issue_refresh_token),
        ),
    };
    // The `admin` scope (the admin users API) and `logout_all` (signing the user out of
    // everything) are for clients staff set up.
    for restricted in RESTRICTED_SCOPES {
        let had = stored
            .as_ref()
            .is_some_and(|s| s.scopes.iter().any(|x| x == restricted));
        if !staff && !had && spec.scopes.iter().any(|x| x == restricted) {
            return (
                spec,
                Some((
                    "scopes",
                    format!(
                        "the {restricted} scope is only for applications administrators set up"
                    ),
                )),
            );
        }
    }
    let had_password = stored.as_ref().is_some_and(|s| {
        s.grant_types
            .iter()
            .any(|g| g == GrantType::Password.as_str())
    });
    if !staff
        && !had_password
        && spec
            .grant_types
            .iter()
            .any(|g| g == GrantType::Password.as_str())
    {
        return (
            spec,
            Some((
                "grant_types",
                "the password grant lets an application collect passwords and get tokens without asking for consent: only administrators can allow it".to_owned(),
            )),
        );
    }
    if spec.scopes.is_empty() {
        // An empty scope list would mean "every scope" to the validator; in the form it means
        // the user unticked them all.
        return (
            spec,
            Some(("scopes", "choose at least one scope".to_owned())),
        );
    }
    if staff {
        for field in ["access_token_lifetime", "refresh_token_lifetime"] {
            match lifetime(form, field) {
                Ok(v) if field == "access_token_lifetime" => spec.access_token_lifetime = v,
                Ok(v) => spec.refresh_token_lifetime = v,
                Err(error) => return (spec, Some(error)),
            }
        }
    }
    (spec, None)
}

/// A `curl` command that gets a token for this client: client credentials when allowed,
/// otherwise the code exchange (with placeholders for the code and verifier).
fn curl_example(issuer: &str, client: &Client) -> String {
    let token = shell_quote(&format!("{issuer}/o/token/"));
    let auth = match client.row.token_endpoint_auth_method.as_str() {
        "client_secret_basic" => format!(
            "  -u {} \\\n",
            shell_quote(&format!("{}:YOUR_CLIENT_SECRET", client.id()))
        ),
        "client_secret_post" => format!(
            "  -d {} \\\n  -d client_secret=YOUR_CLIENT_SECRET \\\n",
            shell_quote(&format!("client_id={}", client.id()))
        ),
        _ => format!(
            "  -d {} \\\n",
            shell_quote(&format!("client_id={}", client.id()))
        ),
    };
    if client.allows(GrantType::ClientCredentials) {
        format!("curl -X POST {token} \\\n{auth}  -d grant_type=client_credentials")
    } else {
        let redirect = client
            .redirect_uris
            .first()
            .cloned()
            .unwrap_or_else(|| "YOUR_REDIRECT_URI".to_owned());
        let redirect = shell_quote(&format!("redirect_uri={redirect}"));
        format!(
            "curl -X POST {token} \\\n{auth}  -d grant_type=authorization_code \\\n  -d code=THE_CODE \\\n  --data-urlencode {redirect} \\\n  -d code_verifier=YOUR_CODE_VERIFIER"
        )
    }
}

/// `value` as one POSIX shell word: single quotes, with each `'` written as `'\''`. Redirect
/// URIs may hold `$(…)`, backquotes or `;`; pasted into a terminal they must stay text.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn shell_words_stay_words() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(
            shell_quote("redirect_uri=https://x.example/cb?$(id)'x"),
            "'redirect_uri=https://x.example/cb?$(id)'\\''x'"
        );
    }
}

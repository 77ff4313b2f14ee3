//! The register and edit form: `GET`/`POST /o/applications/register/` and
//! `/o/applications/{client_id}/update/`.
//!
//! The form reports every field's problem at once (its own checks, then the clients service's
//! [`spec_problems`]), next to each field and listed at the top. It offers least privilege by
//! default — a new application gets the authorization-code grant and the sign-in scopes
//! (`openid`, `profile`, `email`), nothing that writes or stays connected — and does not offer
//! the restricted scopes ([`RESTRICTED_SCOPES`]) or the password grant to those who may not
//! give them.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::{client_failure, detail_path, forbidden, managed_client, not_found};
use crate::clients::{
    spec_problems, AuthMethod, Client, ClientAccess, ClientError, ClientSpec, ClientType, Clients,
    GrantType,
};
use crate::config::RESTRICTED_SCOPES;
use crate::oauth::Params;
use crate::oidc::SigningAlg;
use crate::routes::chrome::{flash, render, Chrome, Notice, Section};
use crate::routes::errors::{FieldErrors, PageError};
use crate::routes::extract::{Form, SignedIn};
use crate::routes::format::ticked;
use crate::routes::http::see_other;

/// The scopes a new form ticks, those the server knows: signing the user in, nothing more.
const DEFAULT_SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// A checkbox in the form.
struct Choice {
    value: String,
    label: String,
    checked: bool,
}

/// The register/update form with its values and the errors to show next to the fields.
#[derive(Template)]
#[template(path = "apps/form.html")]
struct FormPage<'a> {
    chrome: Chrome,
    /// `None` when registering.
    client_id: Option<&'a str>,
    /// Whether the viewer may give first-party powers (a superuser); staff who are not see
    /// those settings without being able to change them.
    grant_powers: bool,
    /// Why the redirect URIs, post-logout redirect URIs and origins are read-only, if they are.
    destinations_fixed: Option<String>,
    form: FormValues,
    errors: FieldErrors,
    /// Every error as (field label, message), for the list at the top of the form.
    problems: Vec<(&'static str, String)>,
    /// How many fields have an error.
    fields_in_error: usize,
}

impl FormPage<'_> {
    fn err(&self, field: &str) -> Option<&str> {
        self.errors.first(field)
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
    /// The URLs users see about the application, in form order.
    about: [UriField; 4],
}

/// One of the optional URLs users see on the consent page (OpenID Connect Dynamic Client
/// Registration 1.0 §2).
struct UriField {
    /// The form field, named as in DCR (`logo_uri`, …); also the input's id.
    field: &'static str,
    label: &'static str,
    help: &'static str,
    /// What is stored or was typed.
    value: String,
}

impl UriField {
    fn new(field: &'static str, value: Option<&String>) -> Self {
        Self {
            field,
            label: field_label(field),
            help: match field {
                "logo_uri" => {
                    "A square image (PNG, SVG, …), shown at 56×56 pixels next to the name."
                }
                "client_uri" => "Where users learn what the application is.",
                "policy_uri" => "What the application does with the data users share with it.",
                _ => "The terms users accept by using the application.",
            },
            value: value.cloned().unwrap_or_default(),
        }
    }
}

impl FormValues {
    /// The form for `spec`. A restricted scope is offered only to those who may give it
    /// (`access.grant_powers`) or when the stored client (`stored`) already has it, so that
    /// unticking it can take it away.
    fn from_spec(
        spec: &ClientSpec,
        known: &BTreeMap<String, String>,
        access: &ClientAccess,
        stored: Option<&Client>,
    ) -> Self {
        let stored_spec = stored.map(ClientSpec::from_client);
        // The password grant is a first-party power: offered to those who may give it, and
        // shown on a client that has it (so that it can be taken away).
        let grant_offered = |g: GrantType| {
            !matches!(g, GrantType::Password | GrantType::TokenExchange)
                || access.grant_powers
                || stored_spec
                    .as_ref()
                    .is_some_and(|s| s.grant_types.iter().any(|x| x == g.as_str()))
        };
        let grants = GrantType::ALL
            .iter()
            .filter(|g| grant_offered(**g))
            .map(|g| Choice {
                value: g.as_str().to_owned(),
                label: grant_label(*g).to_owned(),
                checked: spec.grant_types.iter().any(|s| s == g.as_str()),
            })
            .collect();
        let offered = |name: &str| {
            !RESTRICTED_SCOPES.contains(&name)
                || access.grant_powers
                || stored_spec
                    .as_ref()
                    .is_some_and(|s| s.scopes.iter().any(|x| x == name))
        };
        let scopes = known
            .iter()
            .filter(|(name, _)| offered(name))
            .map(|(name, description)| Choice {
                value: name.clone(),
                label: description.clone(),
                checked: spec.scopes.iter().any(|s| s == name),
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
            about: [
                UriField::new("logo_uri", spec.logo_uri.as_ref()),
                UriField::new("client_uri", spec.client_uri.as_ref()),
                UriField::new("policy_uri", spec.policy_uri.as_ref()),
                UriField::new("tos_uri", spec.tos_uri.as_ref()),
            ],
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
        GrantType::TokenExchange => {
            "Token exchange (your app trades a Google sign-in for tokens here — first-party apps only)"
        }
    }
}

/// A field's name as the form labels it, for the list of errors at the top.
fn field_label(field: &str) -> &'static str {
    match field {
        "name" => "Name",
        "client_type" => "Client type",
        "token_endpoint_auth_method" => "Client authentication",
        "grant_types" => "Grant types",
        "redirect_uris" => "Redirect URIs",
        "post_logout_redirect_uris" => "Post-logout redirect URIs",
        "allowed_origins" => "Allowed origins",
        "scopes" => "Allowed scopes",
        "access_token_format" => "Access token format",
        "id_token_signed_response_alg" => "ID token signing algorithm",
        "resource_uris" => "Resource URIs",
        "access_token_lifetime" => "Access token lifetime",
        "refresh_token_lifetime" => "Refresh token lifetime",
        "skip_authorization" => "Skip the consent page",
        "introspect_all" => "Introspect every token",
        "allow_plain_pkce" => "Plain PKCE",
        "always_issue_refresh_token" => "Always issue a refresh token",
        "logo_uri" => "Logo URL",
        "client_uri" => "Home page",
        "policy_uri" => "Privacy policy",
        "tos_uri" => "Terms of service",
        _ => "Application",
    }
}

/// `GET /o/applications/register/`: an empty form with least-privilege defaults (a
/// confidential client with the authorization-code grant and the sign-in scopes).
pub async fn show_register_form(
    user: SignedIn,
    clients: web::Data<Clients>,
) -> Result<HttpResponse, PageError> {
    let access = clients.access(&user.actor(), None).await?;
    let spec = ClientSpec {
        client_type: ClientType::Confidential.as_str().to_owned(),
        auth_method: Some(AuthMethod::ClientSecretBasic.as_str().to_owned()),
        grant_types: vec![GrantType::AuthorizationCode.as_str().to_owned()],
        scopes: DEFAULT_SCOPES
            .iter()
            .filter(|s| clients.known_scopes().contains_key(**s))
            .map(|s| (*s).to_owned())
            .collect(),
        require_pkce: true,
        ..ClientSpec::default()
    };
    Ok(form_page(
        &user,
        &clients,
        None,
        &access,
        &spec,
        FieldErrors::new(),
        StatusCode::OK,
    ))
}

/// `POST /o/applications/register/`: registers the client (owned by the user), keeps its
/// secret for one view and redirects to it.
pub async fn register_application(
    user: SignedIn,
    Form(form): Form,
    clients: web::Data<Clients>,
) -> Result<HttpResponse, PageError> {
    let access = clients.access(&user.actor(), None).await?;
    let (mut spec, errors) = spec_from_form(&form, &access, None, &clients);
    spec.owner_id = Some(user.id.clone());
    spec.require_pkce = true;
    if !errors.is_empty() {
        return Ok(form_page(
            &user,
            &clients,
            None,
            &access,
            &spec,
            errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    match clients.register(&user.actor(), &spec).await {
        Ok((client, secret)) => {
            let notice = format!("“{}” was registered.", client.name());
            super::secret::after_new_secret(&user, &clients, &client, secret, &notice).await
        }
        Err(e) => form_error(&user, &clients, None, &access, &spec, e),
    }
}

/// `GET /o/applications/{client_id}/update/`: the form, filled in.
pub async fn show_update_form(
    user: SignedIn,
    path: web::Path<String>,
    clients: web::Data<Clients>,
) -> Result<HttpResponse, PageError> {
    let (client, access) = managed_client(&user, &clients, &path).await?;
    let spec = ClientSpec::from_client(&client);
    Ok(form_page(
        &user,
        &clients,
        Some(&client),
        &access,
        &spec,
        FieldErrors::new(),
        StatusCode::OK,
    ))
}

/// `POST /o/applications/{client_id}/update/`: saves the form. First-party settings
/// (`skip_authorization`, `introspect_all`, …) keep their stored values when anyone but a
/// superuser saves, and so do a powered client's redirect URIs, post-logout redirect URIs and
/// origins.
pub async fn update_application(
    user: SignedIn,
    path: web::Path<String>,
    Form(form): Form,
    clients: web::Data<Clients>,
) -> Result<HttpResponse, PageError> {
    let (client, access) = managed_client(&user, &clients, &path).await?;
    let (spec, errors) = spec_from_form(&form, &access, Some(&client), &clients);
    if !errors.is_empty() {
        return Ok(form_page(
            &user,
            &clients,
            Some(&client),
            &access,
            &spec,
            errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    match clients.update(&user.actor(), client.id(), &spec).await {
        Ok(_) => {
            flash(
                user.session(),
                Notice::success(format!("“{}” was saved.", spec.name.trim())),
            );
            Ok(see_other(&detail_path(client.id())))
        }
        Err(e) => form_error(&user, &clients, Some(&client), &access, &spec, e),
    }
}

fn form_page(
    user: &SignedIn,
    clients: &Clients,
    client: Option<&Client>,
    access: &ClientAccess,
    spec: &ClientSpec,
    errors: FieldErrors,
    status: StatusCode,
) -> HttpResponse {
    let problems = errors
        .iter()
        .map(|(field, message)| (field_label(field), message.to_owned()))
        .collect();
    let mut fields: Vec<&str> = errors.iter().map(|(field, _)| field).collect();
    fields.dedup();
    let fields_in_error = fields.len();
    render(
        status,
        &FormPage {
            chrome: user.chrome(Section::Apps),
            client_id: client.map(Client::id),
            grant_powers: access.grant_powers,
            destinations_fixed: access.destinations_fixed.clone(),
            form: FormValues::from_spec(spec, clients.known_scopes(), access, client),
            problems,
            fields_in_error,
            errors,
        },
    )
}

fn form_error(
    user: &SignedIn,
    clients: &Clients,
    client: Option<&Client>,
    access: &ClientAccess,
    spec: &ClientSpec,
    e: ClientError,
) -> Result<HttpResponse, PageError> {
    match e {
        ClientError::Invalid { field, message } => Ok(form_page(
            user,
            clients,
            client,
            access,
            spec,
            FieldErrors::one(field, message),
            StatusCode::UNPROCESSABLE_ENTITY,
        )),
        ClientError::Forbidden {
            field: "owner",
            message,
        } => Err(forbidden(&message)),
        // The form keeps first-party settings and fixed destinations away from those who may
        // not change them (`spec_from_form`), so this is the service's own refusal of a
        // request the form would not send (or of a change made meanwhile): 403, the form shown.
        ClientError::Forbidden { field, message } => Ok(form_page(
            user,
            clients,
            client,
            access,
            spec,
            FieldErrors::one(field, message),
            StatusCode::FORBIDDEN,
        )),
        ClientError::NotFound => Err(not_found()),
        e @ ClientError::Db(_) => Err(client_failure(e)),
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
fn lifetime(form: &Params, field: &'static str, errors: &mut FieldErrors) -> Option<i64> {
    match form.get(field).map(str::trim) {
        None | Some("") => None,
        Some(v) => v.parse::<i64>().map_or_else(
            |_| {
                errors.add(
                    field,
                    "enter a whole number of seconds, or leave it empty for the server default",
                );
                None
            },
            Some,
        ),
    }
}

/// Builds a spec from the submitted form, with every field's problem: the form's own checks
/// (restricted scopes and the password grant for those who may not give them, no scope
/// ticked, lifetimes that are not numbers), then every problem the clients service's
/// [`spec_problems`] finds. First-party settings keep `existing`'s values (or are off) for
/// those who may not give them, and so do the redirect URIs, post-logout redirect URIs and
/// origins while they are fixed (`access`).
#[allow(clippy::too_many_lines)]
fn spec_from_form(
    form: &Params,
    access: &ClientAccess,
    existing: Option<&Client>,
    clients: &Clients,
) -> (ClientSpec, FieldErrors) {
    let mut errors = FieldErrors::new();
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
        // What users see about the application (OpenID Connect Dynamic Client Registration
        // 1.0 §2); the clients service checks each URL.
        logo_uri: form.get("logo_uri").map(str::to_owned),
        client_uri: form.get("client_uri").map(str::to_owned),
        policy_uri: form.get("policy_uri").map(str::to_owned),
        tos_uri: form.get("tos_uri").map(str::to_owned),
    };
    // The `admin` scope (the admin users API) and `logout_all` (signing the user out of
    // everything) are for clients superusers set up; the form does not offer them to others,
    // so only a hand-made request gets here.
    for restricted in RESTRICTED_SCOPES {
        let had = stored
            .as_ref()
            .is_some_and(|s| s.scopes.iter().any(|x| x == restricted));
        if !staff && !had && spec.scopes.iter().any(|x| x == restricted) {
            errors.add(
                "scopes",
                format!("the {restricted} scope is only for applications administrators set up"),
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
        errors.add(
            "grant_types",
            "the password grant lets an application collect passwords and get tokens without asking for consent: only administrators can allow it",
        );
    }
    if spec.scopes.is_empty() {
        // An empty scope list would mean "every scope" to the validator; in the form it means
        // the user unticked them all.
        errors.add("scopes", "choose at least one scope");
    }
    if staff {
        spec.access_token_lifetime = lifetime(form, "access_token_lifetime", &mut errors);
        spec.refresh_token_lifetime = lifetime(form, "refresh_token_lifetime", &mut errors);
    }
    for (field, message) in spec_problems(&spec, clients.known_scopes()) {
        errors.add(field, message);
    }
    (spec, errors)
}

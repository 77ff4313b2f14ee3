//! The console's sign-in providers (issue 11): the list with the form that adds one
//! (`/admin/providers/`), a provider's page (`/admin/providers/{id}/`: the form of a provider
//! added here, or the read-only settings of one from the configuration file), and deleting one.
//!
//! Who may call: superusers only (who may add a provider decides who can sign in, and its pages
//! show where its secret and users' tokens go): a staff member who is not a superuser gets a
//! 403 page for every page ([`superuser_only`]), and the service ([`Upstream::create_provider`]
//! and the others) refuses their POSTs with 403 whatever the page showed. A provider of the configuration file is
//! read-only here (403 for a forged POST).
//!
//! The form shows every setting when adding a provider, each marked with the kinds it belongs
//! to (the page works without JavaScript, so it cannot hide them as the kind changes); the
//! shared check ([`crate::config::upstream_settings`]) refuses a setting of another kind, as
//! it does in the configuration file. A provider's own form shows only its kind's settings:
//! the kind is fixed once added. Every problem is shown at once, next to its field and listed
//! at the top (422); the client secret is never shown again after it is saved (blank keeps
//! it).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use secrecy::SecretString;

use super::{count_of, encode, not_allowed};
use crate::config::{RawUpstream, UpstreamErrors};
use crate::domain::upstream::default_callback_path;
use crate::domain::{ProviderId, ProviderKind};
use crate::oauth::Params;
use crate::routes::chrome::{
    flash, page, render, AdminArea, Chrome, ConfirmPage, ConfirmText, Notice, Section,
};
use crate::routes::errors::{FieldErrors, PageError};
use crate::routes::extract::{Form, Staff};
use crate::routes::format::Moment;
use crate::routes::http::see_other;
use crate::routes::WebConfig;
use crate::upstream::{ProviderChangeError, ProviderSource, Upstream, PROVIDER_RELOAD_SECONDS};

/// The console's providers area in the navigation.
const PROVIDERS: Section = Section::Admin(AdminArea::Providers);

/// `/admin/providers/{id}/`.
fn provider_path(id: &str) -> String {
    format!("/admin/providers/{}/", encode(id))
}

/// One row of the provider list.
struct ProviderLine {
    id: String,
    kind: String,
    label: String,
    enabled: bool,
    /// "configuration file" or "console".
    source: &'static str,
    links: i64,
    /// Why a stored provider is not in use.
    problem: Option<String>,
}

/// The provider form's values, as typed (lists one entry per line).
#[derive(Clone, Debug)]
struct ProviderValues {
    kind: String,
    id: String,
    label: String,
    client_id: String,
    issuer: String,
    scopes: String,
    enabled: bool,
    link_by_email: bool,
    allowed_hosted_domains: String,
    required_claims: String,
    accepted_audiences: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    tokeninfo_endpoint: String,
    api_base: String,
    /// `""` (the kind's default), `"yes"` or `"no"`.
    keep_tokens: String,
    accept_access_tokens: bool,
    callback_path: String,
}

impl Default for ProviderValues {
    /// A new provider's form: an OpenID Connect provider, enabled.
    fn default() -> Self {
        Self::from_settings(
            "",
            &RawUpstream {
                kind: "oidc".to_owned(),
                ..RawUpstream::default()
            },
        )
    }
}

/// Words of a list field: split at white space and commas, empty ones dropped.
fn words(value: &str) -> Vec<String> {
    value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

impl ProviderValues {
    /// The submitted form.
    fn from_form(form: &Params) -> Self {
        let text = |name: &str| form.get(name).unwrap_or_default().trim().to_owned();
        Self {
            kind: text("kind"),
            id: text("id"),
            label: text("label"),
            client_id: text("client_id"),
            issuer: text("issuer"),
            scopes: text("scopes"),
            enabled: form.get("enabled").is_some(),
            link_by_email: form.get("link_by_email").is_some(),
            allowed_hosted_domains: text("allowed_hosted_domains"),
            required_claims: text("required_claims"),
            accepted_audiences: text("accepted_audiences"),
            authorization_endpoint: text("authorization_endpoint"),
            token_endpoint: text("token_endpoint"),
            userinfo_endpoint: text("userinfo_endpoint"),
            tokeninfo_endpoint: text("tokeninfo_endpoint"),
            api_base: text("api_base"),
            keep_tokens: text("keep_tokens"),
            accept_access_tokens: form.get("accept_access_tokens").is_some(),
            callback_path: text("callback_path"),
        }
    }

    /// The form of provider `id`'s stored `settings`.
    fn from_settings(id: &str, settings: &RawUpstream) -> Self {
        let lines = |list: &[String]| list.join("\n");
        Self {
            kind: settings.kind.clone(),
            id: id.to_owned(),
            label: settings.label.clone(),
            client_id: settings.client_id.clone(),
            issuer: settings.issuer.clone(),
            scopes: settings
                .scopes
                .as_deref()
                .map(|s| s.join(" "))
                .unwrap_or_default(),
            enabled: settings.enabled,
            link_by_email: settings.link_by_email,
            accept_access_tokens: settings.accept_access_tokens,
            allowed_hosted_domains: lines(&settings.allowed_hosted_domains),
            required_claims: settings
                .required_claims
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("\n"),
            accepted_audiences: settings
                .accepted_audiences
                .as_deref()
                .map(lines)
                .unwrap_or_default(),
            authorization_endpoint: settings.authorization_endpoint.clone(),
            token_endpoint: settings.token_endpoint.clone(),
            userinfo_endpoint: settings.userinfo_endpoint.clone(),
            tokeninfo_endpoint: settings.tokeninfo_endpoint.clone(),
            api_base: settings.api_base.clone(),
            keep_tokens: match settings.keep_tokens {
                None => String::new(),
                Some(true) => "yes".to_owned(),
                Some(false) => "no".to_owned(),
            },
            callback_path: settings.callback_path.clone(),
        }
    }

    /// The endpoint overrides: (setting, value, the kinds it is for).
    fn endpoints(&self) -> [(&'static str, &str, &'static str); 5] {
        [
            (
                "authorization_endpoint",
                &self.authorization_endpoint,
                "overrides discovery, or Discord's",
            ),
            (
                "token_endpoint",
                &self.token_endpoint,
                "overrides discovery, or Discord's",
            ),
            (
                "userinfo_endpoint",
                &self.userinfo_endpoint,
                "OpenID Connect; overrides discovery",
            ),
            (
                "tokeninfo_endpoint",
                &self.tokeninfo_endpoint,
                "Google only",
            ),
            (
                "api_base",
                &self.api_base,
                "Discord only; default https://discord.com/api/v10",
            ),
        ]
    }

    /// The settings the form describes, in the configuration's shape (without the secret). A
    /// `required_claims` line that is not `name=value` becomes an entry the shared check
    /// refuses, so that it is reported with every other problem.
    fn settings(&self) -> RawUpstream {
        let list = |value: &str| Some(words(value)).filter(|w| !w.is_empty());
        let mut required_claims = BTreeMap::new();
        for line in self
            .required_claims
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let (name, value) = line.split_once('=').unwrap_or((line, ""));
            required_claims.insert(name.trim().to_owned(), value.trim().to_owned());
        }
        RawUpstream {
            kind: self.kind.clone(),
            label: self.label.clone(),
            client_id: self.client_id.clone(),
            client_secret: None,
            issuer: self.issuer.clone(),
            scopes: list(&self.scopes),
            enabled: self.enabled,
            authorization_endpoint: self.authorization_endpoint.clone(),
            token_endpoint: self.token_endpoint.clone(),
            userinfo_endpoint: self.userinfo_endpoint.clone(),
            api_base: self.api_base.clone(),
            link_by_email: self.link_by_email,
            allowed_hosted_domains: words(&self.allowed_hosted_domains),
            required_claims,
            accepted_audiences: list(&self.accepted_audiences),
            tokeninfo_endpoint: self.tokeninfo_endpoint.clone(),
            keep_tokens: match self.keep_tokens.as_str() {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            },
            accept_access_tokens: self.accept_access_tokens,
            callback_path: self.callback_path.clone(),
        }
    }
}

/// Whether a provider's form shows `field`: every field when adding one (`kind` `None`),
/// otherwise those of its kind.
fn shows(kind: Option<ProviderKind>, field: &str) -> bool {
    let Some(kind) = kind else {
        return true;
    };
    match field {
        "issuer" | "accepted_audiences" | "required_claims" | "userinfo_endpoint" => kind.is_oidc(),
        "allowed_hosted_domains" | "tokeninfo_endpoint" | "accept_access_tokens" => {
            kind == ProviderKind::Google
        }
        "api_base" | "keep_tokens" | "callback_path" => kind == ProviderKind::Discord,
        _ => true,
    }
}

/// The form's problems: by field (next to each) and as the list at the top.
#[derive(Default)]
struct Problems {
    errors: FieldErrors,
    summary: Vec<String>,
}

impl From<&UpstreamErrors> for Problems {
    fn from(e: &UpstreamErrors) -> Self {
        let mut problems = Self::default();
        for (field, sentence) in e.sentences() {
            problems.errors.add(field, sentence.clone());
            problems.summary.push(sentence);
        }
        problems
    }
}

#[derive(Template)]
#[template(path = "admin/providers.html")]
struct ProvidersPage {
    chrome: Chrome,
    lines: Vec<ProviderLine>,
    /// Whether the admin is a superuser (the create form is theirs).
    may_change: bool,
    /// The server's issuer, for the redirect URI to register.
    issuer: String,
    form: ProviderValues,
    errors: FieldErrors,
    problems: Vec<String>,
    reload_seconds: u64,
}

impl ProvidersPage {
    fn err(&self, field: &str) -> Option<&str> {
        self.errors.first(field)
    }

    #[allow(clippy::unused_self)] // the shared fields template asks every page
    fn shows(&self, _field: &str) -> bool {
        true
    }

    #[allow(clippy::unused_self)] // the shared fields template asks every page
    fn editing(&self) -> bool {
        false
    }
}

/// What a provider's page shows of a provider of the configuration file.
struct FileSettings {
    kind: &'static str,
    label: String,
    client_id: String,
    issuer: Option<String>,
    scopes: String,
    enabled: bool,
    link_by_email: bool,
    /// (setting, value) for the settings that are set, besides the above.
    others: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "admin/provider.html")]
struct ProviderPage {
    chrome: Chrome,
    id: String,
    /// "configuration file" or "console".
    source: &'static str,
    may_change: bool,
    links: i64,
    /// The redirect URI to register at the provider.
    redirect_uri: String,
    /// A provider of the configuration file: its settings, read-only.
    file: Option<FileSettings>,
    /// A stored provider: when it was added and changed.
    created: Option<Moment>,
    updated: Option<Moment>,
    /// Why a stored provider is not in use.
    problem: Option<String>,
    /// A stored provider's kind (fixed).
    kind: Option<ProviderKind>,
    form: ProviderValues,
    errors: FieldErrors,
    problems: Vec<String>,
    reload_seconds: u64,
}

impl ProviderPage {
    fn err(&self, field: &str) -> Option<&str> {
        self.errors.first(field)
    }

    fn shows(&self, field: &str) -> bool {
        shows(self.kind, field)
    }

    #[allow(clippy::unused_self)] // the shared fields template asks every page
    fn editing(&self) -> bool {
        true
    }
}

/// 200, or 422 when a form shows errors.
fn status_of(errors: &FieldErrors) -> StatusCode {
    if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    }
}

/// 404 for an id that names no provider.
fn provider_not_found() -> PageError {
    PageError::not_found(
        "Provider not found",
        "There is no sign-in provider at this address. It may have been deleted.",
    )
}

/// 403 for a change to a provider of the configuration file.
fn file_defined(id: &str) -> PageError {
    PageError::forbidden(
        "Defined in the configuration file",
        format!(
            "The provider {id} comes from the configuration file and is read-only here: change [upstream.{id}] there (or its LATCHKEY_UPSTREAM__{}__* environment variables) and restart the server. Nothing was changed.",
            id.to_ascii_uppercase().replace('-', "_")
        ),
    )
}

/// The page for a refused change the handler has no better answer to.
fn change_failure(id: &str, e: ProviderChangeError) -> PageError {
    match e {
        ProviderChangeError::Forbidden(refusal) => not_allowed(&refusal.to_string()),
        ProviderChangeError::FileDefined(_) => file_defined(id),
        ProviderChangeError::NotFound => provider_not_found(),
        ProviderChangeError::Db(e) => e.into(),
        ProviderChangeError::Invalid(errors) => {
            PageError::bad_request("Not saved", format!("The change was not saved: {errors}."))
        }
        ProviderChangeError::Seal => {
            tracing::error!("a provider's client secret could not be sealed");
            PageError::Internal
        }
    }
}

/// The redirect URI of provider `id` with `callback_path` (empty: its own callback).
fn redirect_uri(web: &WebConfig, id: &str, callback_path: &str) -> String {
    let path = match (callback_path.trim(), ProviderId::parse(id)) {
        ("", Ok(id)) => default_callback_path(&id),
        ("", Err(_)) => format!("/accounts/upstream/{id}/callback/"),
        (path, _) => path.to_owned(),
    };
    format!("{}{path}", web.issuer)
}

/// `GET /admin/providers/`: every provider with its kind, label, state, source and links; the
/// form that adds one (superusers).
pub async fn list_providers(
    admin: Staff,
    upstream: web::Data<Upstream>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    superuser_only(&admin)?;
    providers_page(
        &admin,
        &upstream,
        &web,
        ProviderValues::default(),
        Problems::default(),
    )
    .await
}

/// The providers' pages are a superuser's: staff who are not get a 403 page.
///
/// # Errors
/// [`PageError`] 403 for staff who are not superusers.
fn superuser_only(admin: &Staff) -> Result<(), PageError> {
    if admin.is_superuser {
        Ok(())
    } else {
        Err(not_allowed(
            "only a superuser can see or change the sign-in providers",
        ))
    }
}

/// `POST /admin/providers/`: adds a provider (a superuser's; the service checks).
pub async fn create_provider(
    admin: Staff,
    Form(form): Form,
    upstream: web::Data<Upstream>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let values = ProviderValues::from_form(&form);
    let secret = SecretString::from(form.get("client_secret").unwrap_or_default().trim());
    match upstream
        .create_provider(&admin.actor(), &values.id, values.settings(), secret)
        .await
    {
        Ok(()) => {
            flash(
                admin.session(),
                Notice::success(format!(
                    "The provider was added. This server uses it now; other servers within {PROVIDER_RELOAD_SECONDS} seconds."
                )),
            );
            Ok(see_other(&provider_path(&values.id)))
        }
        Err(ProviderChangeError::Invalid(errors)) => {
            providers_page(&admin, &upstream, &web, values, Problems::from(&errors)).await
        }
        Err(e) => Err(change_failure(&values.id, e)),
    }
}

/// Renders the provider list with the create form; 422 when the form shows problems.
async fn providers_page(
    admin: &Staff,
    upstream: &Upstream,
    web: &WebConfig,
    form: ProviderValues,
    problems: Problems,
) -> Result<HttpResponse, PageError> {
    let lines = upstream
        .list_providers()
        .await?
        .into_iter()
        .map(|p| ProviderLine {
            id: p.id,
            kind: p.kind,
            label: p.label,
            enabled: p.enabled,
            source: p.source.describe(),
            links: p.links,
            problem: p.problem,
        })
        .collect();
    Ok(render(
        status_of(&problems.errors),
        &ProvidersPage {
            chrome: admin.chrome(PROVIDERS),
            lines,
            may_change: admin.is_superuser,
            issuer: web.issuer.clone(),
            form,
            errors: problems.errors,
            problems: problems.summary,
            reload_seconds: PROVIDER_RELOAD_SECONDS,
        },
    ))
}

/// `GET /admin/providers/{id}/`: a stored provider's form (read-only for staff who are not
/// superusers), or a configuration-file provider's settings.
pub async fn show_provider(
    admin: Staff,
    path: web::Path<String>,
    upstream: web::Data<Upstream>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    superuser_only(&admin)?;
    provider_page(&admin, &upstream, &web, &path, None).await
}

/// `POST /admin/providers/{id}/`: changes a stored provider (a superuser's; the service
/// checks). A blank client secret keeps the stored one.
pub async fn update_provider(
    admin: Staff,
    Form(form): Form,
    path: web::Path<String>,
    upstream: web::Data<Upstream>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let mut values = ProviderValues::from_form(&form);
    values.id.clone_from(&path);
    let secret = form
        .get("client_secret")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(SecretString::from);
    match upstream
        .update_provider(
            &admin.actor(),
            &path,
            values.settings(),
            secret,
            form.get("end_logins").is_some(),
        )
        .await
    {
        Ok(()) => {
            flash(
                admin.session(),
                Notice::success(format!(
                    "The provider was saved. This server uses it now; other servers within {PROVIDER_RELOAD_SECONDS} seconds."
                )),
            );
            Ok(see_other(&provider_path(&path)))
        }
        Err(ProviderChangeError::Invalid(errors)) => {
            let problems = Problems::from(&errors);
            provider_page(&admin, &upstream, &web, &path, Some((values, problems))).await
        }
        Err(e) => Err(change_failure(&path, e)),
    }
}

/// Renders provider `id`'s page (404 when there is none); `submitted` is a refused form to
/// show again with its problems (422).
async fn provider_page(
    admin: &Staff,
    upstream: &Upstream,
    web: &WebConfig,
    id: &str,
    submitted: Option<(ProviderValues, Problems)>,
) -> Result<HttpResponse, PageError> {
    if let Some(provider) = upstream.file_provider(id) {
        let links = upstream.link_count(id).await?;
        return Ok(page(&ProviderPage {
            chrome: admin.chrome(PROVIDERS),
            id: id.to_owned(),
            source: ProviderSource::File.describe(),
            may_change: false,
            links,
            redirect_uri: format!("{}{}", web.issuer, provider.callback_path()),
            file: Some(file_settings(&provider)),
            created: None,
            updated: None,
            problem: None,
            kind: Some(provider.kind),
            form: ProviderValues::default(),
            errors: FieldErrors::new(),
            problems: Vec::new(),
            reload_seconds: PROVIDER_RELOAD_SECONDS,
        }));
    }
    let stored = upstream
        .stored_provider(id)
        .await?
        .ok_or_else(provider_not_found)?;
    let kind = ProviderKind::parse(&stored.settings.kind).ok();
    let (mut form, problems) = submitted.unwrap_or_else(|| {
        (
            ProviderValues::from_settings(id, &stored.settings),
            Problems::default(),
        )
    });
    if kind.is_some() {
        // The kind stays as created; the form does not send it.
        form.kind.clone_from(&stored.settings.kind);
    }
    Ok(render(
        status_of(&problems.errors),
        &ProviderPage {
            chrome: admin.chrome(PROVIDERS),
            id: stored.id.clone(),
            source: ProviderSource::Console.describe(),
            may_change: admin.is_superuser,
            links: stored.links,
            redirect_uri: redirect_uri(web, id, &stored.settings.callback_path),
            file: None,
            created: Some(Moment::of(&stored.created_at)),
            updated: Some(Moment::of(&stored.updated_at)),
            problem: stored.problem,
            kind,
            form,
            errors: problems.errors,
            problems: problems.summary,
            reload_seconds: PROVIDER_RELOAD_SECONDS,
        },
    ))
}

/// What the page shows of a configuration-file provider: never its secret.
fn file_settings(p: &crate::config::UpstreamProvider) -> FileSettings {
    let mut others: Vec<(&'static str, String)> = Vec::new();
    let mut url = |name: &'static str, value: &Option<url::Url>| {
        if let Some(value) = value {
            others.push((name, value.to_string()));
        }
    };
    url("authorization_endpoint", &p.authorization_endpoint);
    url("token_endpoint", &p.token_endpoint);
    url("userinfo_endpoint", &p.userinfo_endpoint);
    url("tokeninfo_endpoint", &p.tokeninfo_endpoint);
    url("api_base", &p.api_base);
    if !p.allowed_hosted_domains.is_empty() {
        others.push((
            "allowed_hosted_domains",
            p.allowed_hosted_domains.join(", "),
        ));
    }
    if !p.required_claims.is_empty() {
        others.push((
            "required_claims",
            p.required_claims
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    if p.kind.is_oidc() {
        others.push(("accepted_audiences", p.accepted_audiences.join(", ")));
    }
    if p.kind == ProviderKind::Discord {
        others.push((
            "keep_tokens",
            if p.keep_tokens { "yes" } else { "no" }.to_owned(),
        ));
    }
    if let Some(path) = &p.callback_path {
        others.push(("callback_path", path.clone()));
    }
    if p.accept_access_tokens {
        others.push(("accept_access_tokens", "true".to_owned()));
    }
    FileSettings {
        kind: p.kind.as_str(),
        label: p.label.clone(),
        client_id: p.client_id.clone(),
        issuer: p.issuer.clone(),
        scopes: p.scopes.join(" "),
        enabled: p.enabled,
        link_by_email: p.link_by_email,
        others,
    }
}

/// `GET /admin/providers/{id}/delete/`: asks before deleting a stored provider, saying how many
/// accounts are linked through it.
pub async fn confirm_delete_provider(
    admin: Staff,
    path: web::Path<String>,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, PageError> {
    if upstream.file_provider(&path).is_some() {
        return Err(file_defined(&path));
    }
    if !admin.is_superuser {
        return Err(not_allowed("only a superuser can do this"));
    }
    let stored = upstream
        .stored_provider(&path)
        .await?
        .ok_or_else(provider_not_found)?;
    let label = match stored.settings.label.trim() {
        "" => stored.id.clone(),
        label => label.to_owned(),
    };
    let links = if stored.links == 0 {
        "No account is linked through it.".to_owned()
    } else {
        format!(
            "{} through it stay{} stored, unused: they work again if a provider with the same id ({}) and issuer is added later. Until then those users sign in another way (their password, or another provider).",
            count_of(stored.links, "linked account"),
            if stored.links == 1 { "s" } else { "" },
            stored.id
        )
    };
    Ok(page(&ConfirmPage {
        chrome: admin.chrome(PROVIDERS),
        confirm: ConfirmText {
            title: format!("Delete the sign-in provider “{label}”?"),
            message: format!(
                "Nobody can sign in with it any more: on this server at once, on the others within {PROVIDER_RELOAD_SECONDS} seconds. Every session and token of a login through it ends now. {links}"
            ),
            action: format!("{}delete/", provider_path(&stored.id)),
            hidden: Vec::new(),
            button: "Delete provider".to_owned(),
            cancel: provider_path(&stored.id),
        },
    }))
}

/// `POST /admin/providers/{id}/delete/`: deletes a stored provider (a superuser's; the service
/// checks); its links stay.
pub async fn delete_provider(
    admin: Staff,
    Form(form): Form,
    path: web::Path<String>,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, PageError> {
    // On by default: a deleted provider's logins end with it, unless the form says to keep them.
    let end_logins = form.get("keep_logins").is_none();
    let links = upstream
        .delete_provider(&admin.actor(), &path, end_logins)
        .await
        .map_err(|e| change_failure(&path, e))?;
    let kept = if links == 0 {
        String::new()
    } else {
        format!(" Its {} stay stored.", count_of(links, "link"))
    };
    flash(
        admin.session(),
        Notice::success(format!("The provider was deleted.{kept}")),
    );
    Ok(see_other("/admin/providers/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_round_trips_the_stored_settings() {
        let form = Params::from_query(
            "kind=google&id=corp&client_id=+web-id+&scopes=openid++email%0Aprofile\
             &allowed_hosted_domains=a.example,+b.example\
             &required_claims=groups%3Dstaff%0A%0A+hd+%3D+corp.example+\
             &accepted_audiences=&keep_tokens=maybe&enabled=on",
        )
        .expect("a form");
        let values = ProviderValues::from_form(&form);
        let settings = values.settings();
        assert_eq!(
            settings.scopes.as_deref(),
            Some(
                &[
                    "openid".to_owned(),
                    "email".to_owned(),
                    "profile".to_owned()
                ][..]
            )
        );
        assert_eq!(settings.allowed_hosted_domains, ["a.example", "b.example"]);
        assert_eq!(
            settings.required_claims.get("hd").map(String::as_str),
            Some("corp.example")
        );
        assert!(settings.accepted_audiences.is_none() && settings.keep_tokens.is_none());
        assert!(settings.enabled && !settings.link_by_email);
        let again = ProviderValues::from_settings("corp", &settings).settings();
        assert_eq!(again.required_claims, settings.required_claims);
        assert_eq!(again.scopes, settings.scopes);
        // A claim line without '=' reaches the shared check, which refuses it.
        let mut bad = values.clone();
        bad.required_claims = "groups".to_owned();
        assert_eq!(
            bad.settings()
                .required_claims
                .get("groups")
                .map(String::as_str),
            Some("")
        );
    }

    #[test]
    fn a_providers_form_shows_its_kinds_settings() {
        assert!(shows(None, "api_base") && shows(None, "issuer"));
        assert!(shows(Some(ProviderKind::Discord), "callback_path"));
        assert!(!shows(Some(ProviderKind::Discord), "issuer"));
        assert!(shows(Some(ProviderKind::Google), "allowed_hosted_domains"));
        assert!(!shows(Some(ProviderKind::Oidc), "allowed_hosted_domains"));
        assert!(shows(Some(ProviderKind::Oidc), "required_claims"));
    }
}

//! The authorization endpoint (RFC 6749 §4.1.1–§4.1.2) for `response_type=code`.
//!
//! Validation order follows RFC 6749 §4.1.2.1: while the client or its `redirect_uri` cannot be
//! trusted the answer is an error page, never a redirect; after that every error is redirected
//! to the client with `state` and the RFC 9207 `iss` parameter. Login and consent are asked for
//! only once the request itself is valid.
//!
//! Open redirectors (RFC 9700 §4.11.2): any signed-in user can register a client in the
//! developer portal with a redirect URI pointing anywhere, so for such a client an error is
//! redirected only to a user who is signed in and has consented to it before (or has just
//! answered its consent page, which names the destination). Anyone else gets a page naming the
//! error and the destination host, and follows it only by choice ([`AuthorizeOutcome::Untrusted`]).
//! This covers `prompt=none`'s `login_required` and `consent_required` too. Clients registered by
//! an operator, and those staff marked `skip_authorization`, keep RFC 6749 §4.1.2.1's redirect.

use std::net::IpAddr;

use chrono::TimeDelta;
use diesel::Connection;
use url::Url;

use super::error::{ErrorCode, ErrorDescription};
use super::grant_types::negotiate_scope;
use super::params::Params;
use super::primitives::encode_pkce;
use super::OAuth;
use crate::accounts::sessions;
use crate::audit::{self, Actor, AuditEvent};
use crate::clients::{Client, ClientType, GrantType};
use crate::db::codes::{self, CodeRow};
use crate::db::{self, consents, user_sessions, users, DbError};
use crate::domain::{pkce, MetadataUri, ResourceSet, ScopeSet};
use crate::oidc::Authentication;
use crate::secret;

/// What the resource owner decided on the consent page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Approve the requested scopes.
    Allow,
    /// Refuse: the client receives `access_denied`.
    Deny,
}

/// One scope line on the consent page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeLine {
    /// The scope token.
    pub name: String,
    /// What it lets the application do, in words.
    pub description: String,
    /// Whether the user approved it before.
    pub already_granted: bool,
}

/// One RFC 8707 resource (API) line on the consent page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceLine {
    /// The resource URI, exactly as requested.
    pub uri: String,
    /// Whether the user approved it for this client before.
    pub already_granted: bool,
}

/// Everything the consent page shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentPrompt {
    /// The application's name.
    pub client_name: String,
    /// Its `client_id`.
    pub client_id: String,
    /// The username of the user who registered it in the developer portal; `None` for a
    /// client an operator registered (command line), which the page says.
    pub owner: Option<String>,
    /// Its logo (OpenID Connect Dynamic Client Registration 1.0 §2 `logo_uri`), if set.
    pub logo: Option<MetadataUri>,
    /// Its home page (DCR 1.0 §2 `client_uri`), if set.
    pub homepage: Option<MetadataUri>,
    /// Its privacy policy (DCR 1.0 §2 `policy_uri`), if set.
    pub privacy_policy: Option<MetadataUri>,
    /// Its terms of service (DCR 1.0 §2 `tos_uri`), if set.
    pub terms_of_service: Option<MetadataUri>,
    /// Where the user will be sent afterwards (host only, for display).
    pub redirect_host: String,
    /// The requested scopes.
    pub scopes: Vec<ScopeLine>,
    /// The RFC 8707 resources (APIs) the access will be for; empty when none was named.
    pub resources: Vec<ResourceLine>,
    /// Whether the user has a remembered consent for this client (then what is new is marked).
    pub consented_before: bool,
    /// The client is a public one on a loopback or private-use redirect URI (a native app,
    /// RFC 8252 §8.6): another app on the device could claim its redirect, so a remembered
    /// consent does not count and the page asks every time — and says why.
    pub asks_every_time: bool,
}

impl ConsentPrompt {
    /// Whether the user consented to this client before: the page then marks each scope and
    /// resource as "already allowed" or "new".
    #[must_use]
    pub fn has_previous(&self) -> bool {
        self.consented_before
    }

    /// The application's home page, privacy policy and terms of service that it gave, as
    /// (what it is, URL), in that order; empty when it gave none.
    #[must_use]
    pub fn links(&self) -> Vec<(&'static str, &MetadataUri)> {
        [
            ("Home page", &self.homepage),
            ("Privacy policy", &self.privacy_policy),
            ("Terms of service", &self.terms_of_service),
        ]
        .into_iter()
        .filter_map(|(what, uri)| Some((what, uri.as_ref()?)))
        .collect()
    }
}

/// What the route should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    /// Show an error page (status 400): the client or redirect URI cannot be trusted.
    ErrorPage(String),
    /// Send the user agent here (303): a code or an error for the client.
    Redirect(String),
    /// `response_mode=form_post` (OAuth 2.0 Form Post Response Mode §2): an auto-submitting
    /// form that POSTs `fields` to `action`.
    FormPost {
        /// The client's redirect URI.
        action: String,
        /// The response parameters (`code`, `state`, `iss` or the error).
        fields: Vec<(String, String)>,
    },
    /// The user must log in (again), then come back to the authorization endpoint with
    /// `resume_query` (the request minus `prompt=login` and `max_age`, which the new login
    /// satisfies).
    Login {
        /// The query string to come back with.
        resume_query: String,
        /// OIDC `login_hint`, to pre-fill the login form.
        login_hint: Option<String>,
        /// How old, at most, the new login may be, in seconds, when the request said
        /// (`prompt=login`: 0; `max_age`): passed on to an upstream provider the user signs in
        /// through (OIDC Core §3.1.2.1), since the resumed request no longer says it.
        fresh_within: Option<u64>,
    },
    /// Ask the user (boxed: the prompt is much larger than the other outcomes).
    Consent(Box<ConsentPrompt>),
    /// An error for a client whose redirect URI is not trusted yet (RFC 9700 §4.11.2): a page
    /// (status 400) with the error and the destination host; the user may still go back to
    /// the application with `response` (a [`AuthorizeOutcome::Redirect`] or
    /// [`AuthorizeOutcome::FormPost`] carrying the error) by choice, never automatically.
    Untrusted {
        /// The application's name.
        client_name: String,
        /// The error's `error_description`.
        description: String,
        /// The host the error response would go to.
        redirect_host: String,
        /// The error response, for a user who chooses to return.
        response: Box<AuthorizeOutcome>,
    },
}

/// How the authorization response travels (OAuth 2.0 Multiple Response Type Encoding
/// Practices §2.1, Form Post Response Mode §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResponseMode {
    Query,
    FormPost,
}

/// The OIDC `prompt` values (OIDC Core §3.1.2.1) of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Prompt {
    none: bool,
    login: bool,
    consent: bool,
}

impl Prompt {
    fn parse(raw: Option<&str>) -> Result<Self, &'static str> {
        let mut prompt = Self::default();
        for value in raw.unwrap_or_default().split(' ').filter(|v| !v.is_empty()) {
            match value {
                "none" => prompt.none = true,
                // There is one account per session: choosing an account means logging in.
                "login" | "select_account" => prompt.login = true,
                "consent" => prompt.consent = true,
                _ => return Err("prompt must be none, login, consent or select_account"),
            }
        }
        if prompt.none && (prompt.login || prompt.consent) {
            return Err("prompt=none cannot be combined with other values");
        }
        Ok(prompt)
    }
}

/// The longest `nonce` accepted, in bytes.
const MAX_NONCE_BYTES: usize = 512;

impl OAuth {
    /// Appends RFC 9207's `iss` to an authorization response URL.
    fn with_iss(&self, mut url: Url) -> String {
        url.query_pairs_mut().append_pair("iss", &self.cfg.issuer);
        url.into()
    }

    /// Delivers an authorization response: `url` is `target` with the response parameters
    /// appended; `iss` is added (RFC 9207) and the mode decides redirect or form post.
    fn deliver(&self, target: &str, mode: ResponseMode, url: Url) -> AuthorizeOutcome {
        let url = self.with_iss(url);
        match mode {
            ResponseMode::Query => AuthorizeOutcome::Redirect(url),
            ResponseMode::FormPost => {
                let Ok(parsed) = Url::parse(&url) else {
                    return AuthorizeOutcome::ErrorPage(
                        "the registered redirect URI is invalid".to_owned(),
                    );
                };
                // The redirect URI's own query stays in the action; the rest are the response.
                let own = Url::parse(target).map_or(0, |t| t.query_pairs().count());
                AuthorizeOutcome::FormPost {
                    action: target.to_owned(),
                    fields: parsed
                        .query_pairs()
                        .skip(own)
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect(),
                }
            }
        }
    }

    fn error_redirect(
        &self,
        target: &str,
        mode: ResponseMode,
        state: Option<&str>,
        code: ErrorCode,
        description: &str,
    ) -> AuthorizeOutcome {
        match Url::parse(target) {
            Ok(mut url) => {
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("error", code.as_str());
                    // Cleaned into RFC 6749 §4.1.2.1's character set, whatever the message.
                    q.append_pair(
                        "error_description",
                        ErrorDescription::new(description).as_str(),
                    );
                    if let Some(state) = state {
                        q.append_pair("state", state);
                    }
                }
                self.deliver(target, mode, url)
            }
            Err(_) => {
                AuthorizeOutcome::ErrorPage("the registered redirect URI is invalid".to_owned())
            }
        }
    }

    /// An error response for a client whose redirect URI is `trusted` (RFC 6749 §4.1.2.1), or
    /// the page that names it otherwise (RFC 9700 §4.11.2).
    #[allow(clippy::too_many_arguments)]
    fn error_response(
        &self,
        client: &Client,
        trusted: bool,
        target: &str,
        mode: ResponseMode,
        state: Option<&str>,
        code: ErrorCode,
        description: &str,
    ) -> AuthorizeOutcome {
        let response = self.error_redirect(target, mode, state, code, description);
        if trusted
            || !matches!(
                response,
                AuthorizeOutcome::Redirect(_) | AuthorizeOutcome::FormPost { .. }
            )
        {
            return response;
        }
        AuthorizeOutcome::Untrusted {
            client_name: client.name().to_owned(),
            description: description.to_owned(),
            redirect_host: host_of(target),
            response: Box::new(response),
        }
    }

    /// RFC 9700 §4.11.2: whether an error may be redirected to `client` without asking. Yes for
    /// clients an operator registered and for those staff marked `skip_authorization` (both
    /// vetted); for a portal client only when the signed-in user has consented to it before or
    /// has just answered its consent page (`decided`), which named the destination.
    async fn redirect_trusted(
        &self,
        client: &Client,
        login: Option<&Authentication>,
        decided: bool,
    ) -> Result<bool, DbError> {
        if !client.is_portal_client() || client.skip_authorization() {
            return Ok(true);
        }
        let Some(login) = login else {
            return Ok(false);
        };
        if decided {
            return Ok(true);
        }
        let user_id = login.user.id.clone();
        let client_id = client.id().to_owned();
        self.db
            .read(move |conn| {
                consents::find(conn, &user_id, &client_id)
                    .map(|c| c.is_some_and(|c| !c.scope.trim().is_empty()))
                    .map_err(DbError::from)
            })
            .await
    }

    /// Processes an authorization request. `query` is the raw query string (the consent form
    /// posts back to the same URL), `login` the session's authentication if any (its `nonce`
    /// is ignored), `decision` the consent form's answer.
    ///
    /// OpenID Connect parameters (OIDC Core §3.1.2.1): `nonce` is stored with the code;
    /// `prompt=none` answers `login_required` / `consent_required` instead of showing a page,
    /// `prompt=login` (and `select_account`) asks for a new login, `prompt=consent` shows the
    /// consent page even when consent is remembered; `max_age` asks for a new login when the
    /// last one is older; `login_hint` pre-fills the login form; `ui_locales` is accepted (the
    /// pages are English only); `response_mode` is `query` or `form_post`.
    ///
    /// # Errors
    /// [`DbError`] when storage fails.
    #[tracing::instrument(skip_all)]
    pub async fn authorize(
        &self,
        query: &str,
        login: Option<&Authentication>,
        decision: Option<Decision>,
        ip: Option<IpAddr>,
    ) -> Result<AuthorizeOutcome, DbError> {
        let params = match Params::from_query(query) {
            Ok(p) => p,
            Err(e) => return Ok(AuthorizeOutcome::ErrorPage(e.description.into_string())),
        };
        let Some(client_id) = params.get("client_id") else {
            return Ok(AuthorizeOutcome::ErrorPage(
                "the request has no client_id".to_owned(),
            ));
        };
        let Some(client) = self.clients.find(client_id).await? else {
            return Ok(AuthorizeOutcome::ErrorPage(format!(
                "no application is registered with client_id {client_id:?}"
            )));
        };
        let target = match params.get("redirect_uri") {
            // Exact string match (RFC 9700 §4.1.3).
            Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_owned(),
            Some(_) => {
                return Ok(AuthorizeOutcome::ErrorPage(
                    "the redirect_uri is not registered for this application".to_owned(),
                ))
            }
            None => match client.redirect_uris.as_slice() {
                [only] => only.clone(),
                [] => {
                    return Ok(AuthorizeOutcome::ErrorPage(
                        "this application has no redirect URI".to_owned(),
                    ))
                }
                _ => {
                    return Ok(AuthorizeOutcome::ErrorPage(
                        "redirect_uri is required: this application registered several".to_owned(),
                    ))
                }
            },
        };
        let state = params.get("state").map(str::to_owned);
        let state = state.as_deref();
        let trusted = self
            .redirect_trusted(&client, login, decision.is_some())
            .await?;
        let (mode, mode_error) = match params.get("response_mode") {
            None | Some("query") => (ResponseMode::Query, None),
            Some("form_post") => (ResponseMode::FormPost, None),
            Some(_) => (
                ResponseMode::Query,
                Some("response_mode must be query or form_post"),
            ),
        };
        let fail = |code, description: &str| {
            Ok(self.error_response(&client, trusted, &target, mode, state, code, description))
        };
        if let Some(message) = mode_error {
            return fail(ErrorCode::InvalidRequest, message);
        }
        match params.get("response_type") {
            None => return fail(ErrorCode::InvalidRequest, "response_type is required"),
            Some("code") => {}
            Some(_) => {
                return fail(
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                )
            }
        }
        if !client.allows(GrantType::AuthorizationCode) {
            return fail(
                ErrorCode::UnauthorizedClient,
                "this application may not use the authorization code grant",
            );
        }
        let scope = match negotiate_scope(&client, &self.cfg, params.get("scope")) {
            Ok(s) => s,
            Err(e) => return fail(ErrorCode::InvalidScope, e.description.as_str()),
        };
        // RFC 8707 §2.1: the resources the grant is for, stored with the code.
        let resources = match self.check_resources(&params).await? {
            Ok(r) => r,
            Err(message) => return fail(ErrorCode::InvalidTarget, &message),
        };
        if let Some(message) = pkce_problem(&client, &params) {
            return fail(ErrorCode::InvalidRequest, message);
        }
        let prompt = match Prompt::parse(params.get("prompt")) {
            Ok(p) => p,
            Err(message) => return fail(ErrorCode::InvalidRequest, message),
        };
        let max_age = match params.get("max_age").map(str::parse::<u64>) {
            None => None,
            Some(Ok(seconds)) => Some(seconds),
            Some(Err(_)) => {
                return fail(
                    ErrorCode::InvalidRequest,
                    "max_age must be a number of seconds",
                )
            }
        };
        let nonce = params.get("nonce").map(str::to_owned);
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE_BYTES) {
            return fail(ErrorCode::InvalidRequest, "nonce is too long");
        }
        // A login made while this request was pending satisfies prompt=login and max_age: the
        // resumed request carries neither (see `resume_query`).
        let too_old = |auth: &Authentication| {
            max_age.is_some_and(|max| {
                // auth_time has whole seconds, so an age of 0 may be up to a second old:
                // max_age=0 always asks for a new login (it acts like prompt=login).
                let age = (db::now() - auth.auth_time).num_seconds();
                max == 0 || u64::try_from(age).unwrap_or(0) > max
            })
        };
        let login =
            match login {
                Some(auth) if !prompt.login && !too_old(auth) => auth,
                _ if prompt.none => return fail(
                    ErrorCode::LoginRequired,
                    "the user is not logged in (or must log in again) and prompt=none was given",
                ),
                _ => {
                    return Ok(AuthorizeOutcome::Login {
                        resume_query: resume_query(&params),
                        login_hint: params.get("login_hint").map(str::to_owned),
                        fresh_within: if prompt.login { Some(0) } else { max_age },
                    })
                }
            };
        let user = &login.user;
        if decision == Some(Decision::Deny) {
            self.audit
                .record(
                    AuditEvent::new("consent.denied")
                        .by(&Actor::user(user.id.clone(), ip))
                        .user(user.id.clone())
                        .client(client.id()),
                )
                .await?;
            return fail(ErrorCode::AccessDenied, "the user denied the request");
        }
        let auth = Authentication {
            nonce,
            ..login.clone()
        };
        let allowed_now = decision == Some(Decision::Allow);
        let params_for_login = params.clone();
        let login_hint = params.get("login_hint").map(str::to_owned);
        let outcome = self
            .issue_code(
                client.clone(),
                params,
                scope,
                resources,
                auth,
                allowed_now.then_some(ip),
                prompt,
                target.clone(),
            )
            .await?;
        Ok(match outcome {
            IssueOutcome::ConsentRequired => fail(
                ErrorCode::ConsentRequired,
                "the user has not consented to this request and prompt=none was given",
            )?,
            IssueOutcome::Prompt(prompt) => AuthorizeOutcome::Consent(prompt),
            IssueOutcome::Issued(url) => self.deliver(&target, mode, url),
            IssueOutcome::Invalid(message) => AuthorizeOutcome::ErrorPage(message.to_owned()),
            // OIDC Core §3.1.2.6: prompt=none cannot show the login page.
            IssueOutcome::LoginRequired if prompt.none => fail(
                ErrorCode::LoginRequired,
                "the user is not logged in (or must log in again) and prompt=none was given",
            )?,
            IssueOutcome::LoginRequired => AuthorizeOutcome::Login {
                resume_query: resume_query(&params_for_login),
                login_hint: login_hint.clone(),
                fresh_within: None,
            },
        })
    }

    /// Asks for consent or issues the code, in one transaction.
    #[allow(clippy::too_many_arguments)]
    async fn issue_code(
        &self,
        client: Client,
        params: Params,
        scope: ScopeSet,
        resources: ResourceSet,
        auth: Authentication,
        allowed_now: Option<Option<IpAddr>>,
        prompt: Prompt,
        target: String,
    ) -> Result<IssueOutcome, DbError> {
        // `Some(ip)`: the user allowed the request just now, from `ip`.
        let (ip, allowed_now) = (allowed_now.flatten(), allowed_now.is_some());
        let cfg = self.cfg.clone();
        let user_id = auth.user.id.clone();
        let session_id = auth.session_id.clone();
        let outcome = self
            .db
            .write(move |conn| {
                conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    // The user's row lock first (the lock rule in `db::tokens`), held through
                    // the consent check and the code's insert: a "sign out everywhere", a
                    // password change or reset, a deactivation or an app revocation runs wholly
                    // before this (and shows below, or deleted the consent) or after it (and
                    // deletes the code).
                    let Some(user) = users::lock(conn, &user_id)? else {
                        return Ok(IssueOutcome::LoginRequired);
                    };
                    // The browser session as it is now, not as it was when the request came in.
                    let live = match &session_id {
                        Some(id) => user_sessions::find(conn, id)?
                            .is_some_and(|row| sessions::is_live(&row, &user)),
                        None => false,
                    };
                    if !live {
                        return Ok(IssueOutcome::LoginRequired);
                    }
                    let previous = consents::find(conn, &user_id, client.id())?.map(|c| Previous {
                        scope: ScopeSet::from_stored(&c.scope),
                        resources: ResourceSet::from_stored(&c.resources),
                    });
                    // RFC 8252 §8.6: a public client on a loopback or private-use redirect URI cannot
                    // be told apart from another app claiming it, so remembered consent does not
                    // count for it (an admin's skip_authorization still does).
                    let impersonable =
                        client.client_type == ClientType::Public && !target.starts_with("https://");
                    // A remembered consent covers the request's scopes and its RFC 8707
                    // resources: a token for an API the user never approved for this client
                    // needs the page (RFC 8707 §2.1 leaves the policy to the server). No
                    // resource means the server's own default audience, which every consent
                    // covers.
                    let covered = client.skip_authorization()
                        || (!impersonable
                            && !prompt.consent
                            && previous
                                .as_ref()
                                .is_some_and(|p| p.covers(&scope, &resources)));
                    if !covered && !allowed_now {
                        if prompt.none {
                            return Ok(IssueOutcome::ConsentRequired);
                        }
                        // Who registered the client: the page names a portal client's owner,
                        // so that a user can tell a colleague's app from the operator's.
                        let owner = match client.owner_id() {
                            Some(id) => users::find(conn, id)?.map(|u| u.username),
                            None => None,
                        };
                        return Ok(IssueOutcome::Prompt(Box::new(consent_prompt(
                            &client,
                            owner,
                            &cfg.scopes,
                            &scope,
                            &resources,
                            previous.as_ref(),
                            &target,
                            impersonable,
                        ))));
                    }
                    if allowed_now {
                        let previous = previous.unwrap_or_default();
                        consents::upsert(
                            conn,
                            &user_id,
                            client.id(),
                            &previous.scope.union(&scope).to_string(),
                            &previous.resources.union(&resources).to_string(),
                            db::now(),
                        )?;
                        let mut event = AuditEvent::new("consent.granted")
                            .by(&Actor::user(user_id.clone(), ip))
                            .user(user_id.clone())
                            .client(client.id())
                            .detail("scope", scope.to_string());
                        if !resources.is_empty() {
                            event = event.detail("resources", resources.to_string());
                        }
                        audit::record(conn, event)?;
                    }
                    // The PKCE parameters were checked above (`pkce_problem`): the encoding
                    // cannot refuse them.
                    let Ok(extensions) = encode_pkce(&client, &params) else {
                        return Ok(IssueOutcome::Invalid("the PKCE parameters are invalid"));
                    };
                    let code = secret::new_token();
                    let now = db::now();
                    let ttl = TimeDelta::from_std(cfg.lifetimes.authorization_code)
                        .unwrap_or(TimeDelta::minutes(1));
                    codes::insert(
                        conn,
                        &CodeRow {
                            id: uuid::Uuid::now_v7().to_string(),
                            code_hash: secret::sha256_hex(&code),
                            client_id: client.id().to_owned(),
                            user_id: user_id.clone(),
                            redirect_uri: target.clone(),
                            redirect_uri_explicit: params.get("redirect_uri").is_some(),
                            scope: scope.to_string(),
                            extensions,
                            created_at: now,
                            expires_at: now + ttl,
                            used_at: None,
                            nonce: auth.nonce.clone(),
                            auth_time: Some(auth.auth_time),
                            amr: Some(auth.amr.clone()),
                            resources: resources.to_string(),
                            idp: auth.idp.clone(),
                        },
                    )?;
                    // RFC 6749 §4.1.2: `code` and `state` on the redirect URI's query.
                    let Ok(mut url) = Url::parse(&target) else {
                        return Ok(IssueOutcome::Invalid(
                            "the registered redirect URI is invalid",
                        ));
                    };
                    url.query_pairs_mut().append_pair("code", &code);
                    if let Some(state) = params.get("state") {
                        url.query_pairs_mut().append_pair("state", state);
                    }
                    Ok(IssueOutcome::Issued(url))
                })
                .map_err(DbError::from)
            })
            .await?;
        Ok(outcome)
    }
}

/// What the user approved for a client before (their remembered consent).
#[derive(Default)]
struct Previous {
    scope: ScopeSet,
    resources: ResourceSet,
}

impl Previous {
    /// Whether the consent covers a request for `scope` and `resources`: nothing in it is new.
    fn covers(&self, scope: &ScopeSet, resources: &ResourceSet) -> bool {
        scope.is_subset(&self.scope) && resources.is_subset(&self.resources)
    }
}

/// What [`OAuth::issue_code`] decided.
enum IssueOutcome {
    /// The redirect URI with `code` and `state`.
    Issued(Url),
    /// Consent is needed: show this.
    Prompt(Box<ConsentPrompt>),
    /// Consent is needed but `prompt=none` forbids asking.
    ConsentRequired,
    /// The request cannot be answered on its redirect URI.
    Invalid(&'static str),
    /// The browser session ended (or the user was deactivated) after the request was
    /// checked: the user must log in again.
    LoginRequired,
}

/// The request to resume after a login: without `prompt=login` / `select_account` and
/// `max_age`, which that login satisfies (other prompt values stay).
fn resume_query(params: &Params) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in params.iter() {
        match key {
            "max_age" => {}
            "prompt" => {
                let rest: Vec<&str> = value
                    .split(' ')
                    .filter(|v| !v.is_empty() && *v != "login" && *v != "select_account")
                    .collect();
                if !rest.is_empty() {
                    out.append_pair("prompt", &rest.join(" "));
                }
            }
            _ => {
                out.append_pair(key, value);
            }
        }
    }
    out.finish()
}

fn pkce_problem(client: &Client, params: &Params) -> Option<&'static str> {
    let challenge = params.get("code_challenge");
    let method = params.get("code_challenge_method");
    match (challenge, method) {
        (None, Some(_)) => Some("code_challenge_method given without code_challenge"),
        (None, None) if client.requires_pkce() => {
            Some("PKCE is required: send code_challenge and code_challenge_method=S256 (RFC 7636)")
        }
        (None, None) => None,
        (Some(c), _) if !pkce::is_valid(c) => {
            Some("code_challenge must be 43 to 128 unreserved characters (RFC 7636 section 4.2)")
        }
        (Some(_), Some("S256")) => None,
        // RFC 7636 §4.3: an absent method means plain.
        (Some(_), Some("plain") | None) if client.allows_plain_pkce() => None,
        (Some(_), Some("plain") | None) => {
            Some("code_challenge_method=plain is not allowed for this application: use S256")
        }
        (Some(_), Some(_)) => Some("unsupported code_challenge_method: use S256"),
    }
}

/// The host of a redirect URI, for display (the whole URI when it has none, e.g. a
/// private-use scheme).
fn host_of(target: &str) -> String {
    Url::parse(target)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| target.to_owned())
}

#[allow(clippy::too_many_arguments)]
fn consent_prompt(
    client: &Client,
    owner: Option<String>,
    descriptions: &std::collections::BTreeMap<String, String>,
    scope: &ScopeSet,
    resources: &ResourceSet,
    previous: Option<&Previous>,
    target: &str,
    asks_every_time: bool,
) -> ConsentPrompt {
    ConsentPrompt {
        client_name: client.name().to_owned(),
        client_id: client.id().to_owned(),
        owner,
        logo: client.logo(),
        homepage: client.homepage(),
        privacy_policy: client.privacy_policy(),
        terms_of_service: client.terms_of_service(),
        redirect_host: host_of(target),
        resources: resources
            .iter()
            .map(|r| ResourceLine {
                uri: r.to_owned(),
                already_granted: previous.is_some_and(|p| p.resources.contains(r)),
            })
            .collect(),
        scopes: scope
            .iter()
            .map(|s| ScopeLine {
                name: s.to_owned(),
                description: descriptions.get(s).cloned().unwrap_or_else(|| s.to_owned()),
                already_granted: previous.is_some_and(|p| p.scope.contains(s)),
            })
            .collect(),
        consented_before: previous.is_some(),
        asks_every_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resumed_request_keeps_every_resource_and_drops_what_the_login_satisfies() {
        let params = Params::from_query(
            "client_id=c&resource=https%3A%2F%2Fb.example&resource=urn%3Aa&prompt=login+consent&max_age=5",
        )
        .expect("valid");
        let resumed = Params::from_query(&resume_query(&params)).expect("valid");
        assert_eq!(resumed.get_all("resource"), ["https://b.example", "urn:a"]);
        assert_eq!(resumed.get("prompt"), Some("consent"));
        assert_eq!(resumed.get("max_age"), None);
        assert_eq!(resumed.get("client_id"), Some("c"));
    }

    #[test]
    fn the_page_names_the_host_of_the_redirect_uri() {
        assert_eq!(host_of("https://rp.example.net/cb?x=1"), "rp.example.net");
        assert_eq!(host_of("com.example.app:/cb"), "com.example.app:/cb");
    }
}

//! The OAuth 2.0 core: authorization endpoint, token endpoint (one module per grant type),
//! introspection (RFC 7662), revocation (RFC 7009), bearer-token validation (RFC 6750) and
//! authorization server metadata (RFC 8414).
//!
//! oxide-auth's `code_grant` state machines run the authorization-code, refresh-token and
//! client-credentials flows over our diesel-backed primitives ([`primitives`]); parameter
//! parsing ([`params`]), client authentication ([`client_auth`]) and every response are ours, so
//! clients only ever see RFC-shaped answers. The password grant, introspection and revocation
//! are written here directly.

pub mod authorizations;
pub mod authorize;
pub mod bearer;
pub mod client_auth;
pub mod error;
mod grant_types;
mod housekeeping;
pub mod introspect;
pub mod logout;
pub mod metadata;
mod mint;
pub mod params;
mod primitives;
mod resource;
pub mod revoke;
pub mod token;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::accounts::Accounts;
use crate::audit::Audit;
use crate::clients::Clients;
use crate::config::{Lifetimes, RateLimits, Settings};
use crate::db::Db;
use crate::limits::Limiter;
use crate::oidc::KeyStore;

pub use error::{ErrorCode, ErrorDescription, OAuthError};
pub use grant_types::token_exchange;
pub use params::Params;

/// What the OAuth core needs from the configuration.
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    /// Issuer URL without a trailing slash.
    pub issuer: String,
    /// Code and token lifetimes.
    pub lifetimes: Lifetimes,
    /// Known scopes and their descriptions.
    pub scopes: BTreeMap<String, String>,
    /// Brute-force limits.
    pub rate_limits: RateLimits,
    /// `aud` of RFC 9068 JWT access tokens and of introspection answers when the token names no
    /// RFC 8707 resource.
    pub access_token_audience: String,
    /// Scopes portal clients may get without a user (client-credentials grant).
    pub scopes_without_user: crate::domain::ScopeSet,
    /// How long audit events are kept.
    pub audit_retention: std::time::Duration,
    /// How long a browser login lasts (`server.session_max_age_seconds`); older session rows
    /// are deleted by `cleartokens`.
    pub session_max_age: std::time::Duration,
}

impl OAuthConfig {
    /// Extracts the OAuth settings.
    #[must_use]
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            issuer: settings.issuer_str().to_owned(),
            lifetimes: settings.lifetimes,
            scopes: settings.scopes.clone(),
            rate_limits: settings.rate_limits,
            access_token_audience: settings.oidc.access_token_audience.clone(),
            scopes_without_user: settings.scopes_without_user.clone(),
            audit_retention: settings.audit_retention,
            session_max_age: settings.session_max_age,
        }
    }

    /// An endpoint URL under the issuer, e.g. `endpoint("/o/token/")`.
    #[must_use]
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }
}

/// The OAuth service: cheap to clone, shared by every request.
#[derive(Clone, Debug)]
pub struct OAuth {
    db: Db,
    cfg: Arc<OAuthConfig>,
    accounts: Accounts,
    clients: Clients,
    limiter: Limiter,
    keys: KeyStore,
    audit: Audit,
    /// Upstream login, for RFC 8693 token exchange; `None` answers that grant
    /// `unsupported_grant_type`.
    upstream: Option<crate::upstream::Upstream>,
}

impl OAuth {
    /// The service.
    #[must_use]
    pub fn new(
        db: Db,
        cfg: OAuthConfig,
        accounts: Accounts,
        clients: Clients,
        keys: KeyStore,
    ) -> Self {
        Self {
            keys,
            limiter: Limiter::new(db.clone()),
            audit: Audit::new(db.clone()),
            db,
            cfg: Arc::new(cfg),
            accounts,
            clients,
            upstream: None,
        }
    }

    /// The service, with upstream login for RFC 8693 token exchange.
    #[must_use]
    pub fn with_upstream(mut self, upstream: crate::upstream::Upstream) -> Self {
        self.upstream = Some(upstream);
        self
    }

    /// The client registry.
    #[must_use]
    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    /// The signing keys.
    #[must_use]
    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &OAuthConfig {
        &self.cfg
    }
}

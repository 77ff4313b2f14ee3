//! Authorization server metadata (RFC 8414 §2). Everything advertised is implemented.

use serde::Serialize;

use super::OAuthConfig;

/// The metadata document served at `/.well-known/oauth-authorization-server`.
#[derive(Clone, Debug, Serialize)]
pub struct ServerMetadata {
    /// The issuer, exactly as configured.
    pub issuer: String,
    /// `/o/authorize/`.
    pub authorization_endpoint: String,
    /// `/o/token/`.
    pub token_endpoint: String,
    /// `/o/revoke_token/` (RFC 7009).
    pub revocation_endpoint: String,
    /// `/o/introspect/` (RFC 7662).
    pub introspection_endpoint: String,
    /// Known scopes.
    pub scopes_supported: Vec<String>,
    /// `["code"]`.
    pub response_types_supported: Vec<&'static str>,
    /// `["query"]`.
    pub response_modes_supported: Vec<&'static str>,
    /// The four grant types.
    pub grant_types_supported: Vec<&'static str>,
    /// Basic, post, none.
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Basic, post, none.
    pub revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Basic, post, none.
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    /// `["S256"]` (`plain` only for clients that opt in, so not advertised).
    pub code_challenge_methods_supported: Vec<&'static str>,
    /// RFC 9207: `iss` is in every authorization response.
    pub authorization_response_iss_parameter_supported: bool,
}

impl ServerMetadata {
    /// The document for `cfg`.
    #[must_use]
    pub fn new(cfg: &OAuthConfig) -> Self {
        let auth_methods = vec!["client_secret_basic", "client_secret_post", "none"];
        Self {
            issuer: cfg.issuer.clone(),
            authorization_endpoint: cfg.endpoint("/o/authorize/"),
            token_endpoint: cfg.endpoint("/o/token/"),
            revocation_endpoint: cfg.endpoint("/o/revoke_token/"),
            introspection_endpoint: cfg.endpoint("/o/introspect/"),
            scopes_supported: cfg.scopes.keys().cloned().collect(),
            response_types_supported: vec!["code"],
            response_modes_supported: vec!["query"],
            grant_types_supported: vec![
                "authorization_code",
                "refresh_token",
                "password",
                "client_credentials",
            ],
            token_endpoint_auth_methods_supported: auth_methods.clone(),
            revocation_endpoint_auth_methods_supported: auth_methods.clone(),
            introspection_endpoint_auth_methods_supported: auth_methods,
            code_challenge_methods_supported: vec!["S256"],
            authorization_response_iss_parameter_supported: true,
        }
    }
}

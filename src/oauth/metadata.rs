//! Authorization server metadata (RFC 8414 §2) and OpenID Provider metadata (OpenID Connect
//! Discovery 1.0 §3): one document, served at both well-known paths. Everything advertised is
//! implemented, and defaults that would claim more (`request_uri_parameter_supported` defaults
//! to true) are spelled out.

use serde::Serialize;

use super::OAuthConfig;
use crate::oidc::{SigningAlg, CLAIMS_SUPPORTED};

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
    /// `/o/userinfo/` (OIDC Core §5.3).
    pub userinfo_endpoint: String,
    /// `/.well-known/jwks.json` (RFC 7517).
    pub jwks_uri: String,
    /// `/o/logout/` (OpenID Connect RP-Initiated Logout 1.0 §2).
    pub end_session_endpoint: String,
    /// `["public"]`: `sub` is the user's id for every client.
    pub subject_types_supported: Vec<&'static str>,
    /// RS256 (required by OIDC), ES256, EdDSA.
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    /// Claims in ID tokens and UserInfo.
    pub claims_supported: Vec<&'static str>,
    /// `prompt` values (OIDC Core §3.1.2.1).
    pub prompt_values_supported: Vec<&'static str>,
    /// The pages are in English.
    pub ui_locales_supported: Vec<&'static str>,
    /// `false`: no `claims` request parameter.
    pub claims_parameter_supported: bool,
    /// `false`: no `request` objects.
    pub request_parameter_supported: bool,
    /// `false` (Discovery §3 defaults it to true).
    pub request_uri_parameter_supported: bool,
    /// Known scopes.
    pub scopes_supported: Vec<String>,
    /// `["code"]`.
    pub response_types_supported: Vec<&'static str>,
    /// `["query", "form_post"]`.
    pub response_modes_supported: Vec<&'static str>,
    /// The four RFC 6749 grant types, the mfa-otp extension grant (RFC 6749 §4.5) that
    /// completes a password-grant login with an emailed code, and RFC 8693 token exchange.
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
            userinfo_endpoint: cfg.endpoint("/o/userinfo/"),
            jwks_uri: cfg.endpoint("/.well-known/jwks.json"),
            end_session_endpoint: cfg.endpoint("/o/logout/"),
            subject_types_supported: vec!["public"],
            id_token_signing_alg_values_supported: SigningAlg::ALL
                .iter()
                .map(|a| a.as_str())
                .collect(),
            claims_supported: CLAIMS_SUPPORTED.to_vec(),
            prompt_values_supported: vec!["none", "login", "consent", "select_account"],
            ui_locales_supported: vec!["en"],
            claims_parameter_supported: false,
            request_parameter_supported: false,
            request_uri_parameter_supported: false,
            scopes_supported: cfg.scopes.keys().cloned().collect(),
            response_types_supported: vec!["code"],
            response_modes_supported: vec!["query", "form_post"],
            grant_types_supported: vec![
                "authorization_code",
                "refresh_token",
                "password",
                "client_credentials",
                super::grant_types::mfa_otp::GRANT_TYPE,
                super::grant_types::token_exchange::GRANT_TYPE,
            ],
            token_endpoint_auth_methods_supported: auth_methods.clone(),
            revocation_endpoint_auth_methods_supported: auth_methods.clone(),
            introspection_endpoint_auth_methods_supported: auth_methods,
            code_challenge_methods_supported: vec!["S256"],
            authorization_response_iss_parameter_supported: true,
        }
    }
}

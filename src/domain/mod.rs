//! Validated newtypes: input is parsed into these at the edge, so the code behind them never
//! sees an invalid scope, redirect URI, resource indicator, metadata URL, email, username or
//! person name ([`pkce`] holds the PKCE grammar; [`branding`] the product name, logo and accent
//! colour).

pub mod branding;
pub mod client_ip;
mod email;
mod metadata_uri;
pub mod nickname;
mod person_name;
mod redirect_uri;
mod resource;
mod scope;
mod signing_alg;
mod username;

pub use branding::{AccentColor, BrandName, LogoUrl};
pub use client_ip::{ForwardedHeader, TrustedProxies};
pub use email::Email;
pub use metadata_uri::{MetadataUri, MAX_METADATA_URI_BYTES};
pub use nickname::{NicknameFields, NicknameTemplate};
pub use person_name::{PersonName, MAX_NAME_CHARS};
pub use redirect_uri::RedirectUri;
pub use resource::{ResourceSet, MAX_RESOURCES};
pub use scope::{is_scope_char, ScopeSet, OFFLINE_ACCESS, OPENID};
pub use signing_alg::SigningAlg;
pub use upstream::{ProviderId, ProviderKind};
pub use username::Username;
pub mod page;
pub mod pkce;
pub mod upstream;
pub use page::{Page, PageRequest};

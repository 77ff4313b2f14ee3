//! Validated newtypes: input is parsed into these at the edge, so the code behind them never
//! sees an invalid scope, redirect URI, email or username ([`pkce`] holds the PKCE grammar).

mod email;
mod redirect_uri;
mod scope;
mod username;

pub use email::Email;
pub use redirect_uri::RedirectUri;
pub use scope::ScopeSet;
pub use username::Username;
pub mod page;
pub mod pkce;
pub use page::{Page, PageRequest};

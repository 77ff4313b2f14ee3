//! OpenID Connect authorization-request parameters and RP-initiated logout, over HTTP.

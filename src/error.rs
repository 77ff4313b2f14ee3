//! Error policy — which error type belongs where:
//!
//! * `db` returns `diesel::QueryResult`; [`crate::db::DbError`] adds pool and task failures.
//! * Services (`accounts`, `clients`, `oauth`, …) return small `thiserror` enums that wrap
//!   `DbError`; OAuth code returns [`crate::oauth::OAuthError`], already shaped like
//!   RFC 6749 §5.2.
//! * Start-up and CLI code use `anyhow` with `.context(…)`, so the operator sees the whole chain.
//! * Only `routes` turns errors into HTTP: RFC 6749 / RFC 6750 JSON on OAuth endpoints, an
//!   error page on HTML pages. Users see an opaque, helpful message; logs get the cause.
//!   Bad input is always a 4xx; a 5xx means the database failed.

//! The `clients` table (registered OAuth client applications).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::clients;
use super::DbConnection;

/// A row of `clients`. List-valued columns hold space-separated items.
///
/// [`update`] writes every column, a `None` as NULL (`treat_none_as_null`): clearing an
/// optional setting (a token lifetime, a metadata URL) clears it.
#[derive(
    Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable, Identifiable, AsChangeset,
)]
#[diesel(table_name = clients, primary_key(client_id), treat_none_as_null = true)]
pub struct ClientRow {
    /// Public identifier (RFC 6749 §2.2).
    pub client_id: String,
    /// Display name shown on the consent page.
    pub name: String,
    /// `confidential` or `public` (RFC 6749 §2.1).
    pub client_type: String,
    /// `client_secret_basic`, `client_secret_post` or `none`.
    pub token_endpoint_auth_method: String,
    /// Hex SHA-256 of the client secret; `None` for public clients.
    pub secret_hash: Option<String>,
    /// The secret's first characters, to recognise it (never enough to use it).
    pub secret_hint: Option<String>,
    /// Allowed grant types, space-separated.
    pub grant_types: String,
    /// Registered redirect URIs, space-separated; matched exactly.
    pub redirect_uris: String,
    /// Registered post-logout redirect URIs, space-separated.
    pub post_logout_redirect_uris: String,
    /// Origins allowed to call the token endpoint from a browser (CORS), space-separated.
    pub allowed_origins: String,
    /// Scopes this client may be granted, space-separated.
    pub allowed_scopes: String,
    /// Skip the consent page for this (first-party) client.
    pub skip_authorization: bool,
    /// Require PKCE (always true for public clients).
    pub require_pkce: bool,
    /// Accept the `plain` PKCE method (RFC 7636 §4.2); off by default.
    pub allow_plain_pkce: bool,
    /// A resource server that may introspect every client's tokens.
    pub introspect_all: bool,
    /// Per-client access-token lifetime in seconds; `None` = server default.
    pub access_token_lifetime: Option<i64>,
    /// Per-client refresh-token lifetime in seconds; `None` = server default.
    pub refresh_token_lifetime: Option<i64>,
    /// The user who registered the client.
    pub owner_id: Option<String>,
    /// Creation time (UTC).
    pub created_at: NaiveDateTime,
    /// Last change (UTC).
    pub updated_at: NaiveDateTime,
    /// JWS algorithm of ID tokens and JWT access tokens: `RS256`, `ES256` or `EdDSA`
    /// (OpenID Connect Dynamic Client Registration §2 name).
    pub id_token_signed_response_alg: String,
    /// `opaque` (default) or `jwt` (RFC 9068).
    pub access_token_format: String,
    /// Issue a refresh token on every authorization-code exchange, even without
    /// `offline_access` (django-oauth-toolkit's behaviour).
    pub always_issue_refresh_token: bool,
    /// RFC 8707 resource URIs this client serves as a resource server, space-separated: it may
    /// introspect access tokens whose audience names one of them.
    pub resource_uris: String,
    /// URL of the application's logo, shown on the consent page (OpenID Connect Dynamic Client
    /// Registration 1.0 §2 `logo_uri`); `None` = no logo.
    pub logo_uri: Option<String>,
    /// URL of the application's home page (DCR 1.0 §2 `client_uri`).
    pub client_uri: Option<String>,
    /// URL of the application's privacy policy (DCR 1.0 §2 `policy_uri`).
    pub policy_uri: Option<String>,
    /// URL of the application's terms of service (DCR 1.0 §2 `tos_uri`).
    pub tos_uri: Option<String>,
}

/// Inserts a client.
///
/// # Errors
/// Query failures (a duplicate `client_id` is a unique violation).
pub fn insert(conn: &mut DbConnection, row: &ClientRow) -> QueryResult<()> {
    diesel::insert_into(clients::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// The client with this id.
///
/// # Errors
/// Query failures only.
pub fn find(conn: &mut DbConnection, client_id: &str) -> QueryResult<Option<ClientRow>> {
    crate::per_backend!(conn, |c| clients::table
        .find(client_id)
        .select(ClientRow::as_select())
        .load(c))
    .map(super::first_of)
}

/// Locks the client's row until the transaction ends and returns it, as it is once the lock is
/// held (PostgreSQL `SELECT … FOR NO KEY UPDATE`; a plain read on SQLite, whose single writer
/// serialises write transactions already): two edits of one client, or an edit and a grant of
/// powers, then apply one after the other, each checked against what the other stored.
///
/// # Errors
/// Query failures only.
pub fn lock(conn: &mut DbConnection, client_id: &str) -> QueryResult<Option<ClientRow>> {
    crate::load_locked!(
        conn,
        clients::table
            .find(client_id)
            .select(ClientRow::as_select())
    )
    .map(super::first_of)
}

/// All clients, oldest first.
///
/// # Errors
/// Query failures only.
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<ClientRow>> {
    clients::table
        .order(clients::created_at.asc())
        .select(ClientRow::as_select())
        .load(conn)
}

/// The `client_id`s of the clients owned by `owner_id`.
///
/// # Errors
/// Query failures only.
pub fn ids_owned_by(conn: &mut DbConnection, owner_id: &str) -> QueryResult<Vec<String>> {
    crate::per_backend!(conn, |c| clients::table
        .filter(clients::owner_id.eq(owner_id))
        .select(clients::client_id)
        .load(c))
}

/// Replaces every column of the row with this `client_id`. Returns whether it existed.
///
/// # Errors
/// Query failures only.
pub fn update(conn: &mut DbConnection, row: &ClientRow) -> QueryResult<bool> {
    diesel::update(clients::table.find(&row.client_id))
        .set(row)
        .execute(conn)
        .map(|n| n == 1)
}

/// Deletes a client (its codes, tokens and consents cascade). Returns whether it existed.
///
/// # Errors
/// Query failures only.
pub fn delete(conn: &mut DbConnection, client_id: &str) -> QueryResult<bool> {
    diesel::delete(clients::table.find(client_id))
        .execute(conn)
        .map(|n| n == 1)
}

/// Stores a new secret hash and hint.
///
/// # Errors
/// Query failures only.
pub fn set_secret(
    conn: &mut DbConnection,
    client_id: &str,
    secret_hash: &str,
    secret_hint: &str,
    at: NaiveDateTime,
) -> QueryResult<bool> {
    diesel::update(clients::table.find(client_id))
        .set((
            clients::secret_hash.eq(Some(secret_hash)),
            clients::secret_hint.eq(Some(secret_hint)),
            clients::updated_at.eq(at),
        ))
        .execute(conn)
        .map(|n| n == 1)
}

/// Clients whose `allowed_origins` contains `origin` as a substring (the caller matches exactly).
///
/// # Errors
/// Query failures only.
pub fn with_origin_like(conn: &mut DbConnection, origin: &str) -> QueryResult<Vec<ClientRow>> {
    let escaped = origin
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    clients::table
        .filter(
            clients::allowed_origins
                .like(format!("%{escaped}%"))
                .escape('\\'),
        )
        .select(ClientRow::as_select())
        .load(conn)
}

/// One page of clients, newest first: only `owner_id`'s when given, only names or client ids
/// containing `search` (case-insensitive) when given; and the number of matches.
///
/// # Errors
/// Query failures only.
pub fn list_page(
    conn: &mut DbConnection,
    owner_id: Option<&str>,
    search: Option<&str>,
    limit: i64,
    offset: i64,
) -> QueryResult<(Vec<ClientRow>, i64)> {
    let filtered = || {
        let mut query = clients::table.into_boxed();
        if let Some(owner) = owner_id {
            query = query.filter(clients::owner_id.eq(owner));
        }
        if let Some(s) = search.filter(|s| !s.trim().is_empty()) {
            let pattern = crate::domain::page::contains_pattern(s);
            query = query.filter(
                super::lower(clients::name)
                    .like(pattern.clone())
                    .escape('\\')
                    .or(super::lower(clients::client_id).like(pattern).escape('\\')),
            );
        }
        query
    };
    let total = filtered().count().get_result(conn)?;
    let rows = filtered()
        .order((clients::created_at.desc(), clients::client_id.asc()))
        .limit(limit)
        .offset(offset)
        .select(ClientRow::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// The non-empty `resource_uris` lists of every client (resource servers are few; the caller
/// parses them).
///
/// # Errors
/// Query failures only.
pub fn resource_uri_lists(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    clients::table
        .filter(clients::resource_uris.ne(""))
        .select(clients::resource_uris)
        .load(conn)
}

/// Counts all clients.
///
/// # Errors
/// Query failures only.
pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    clients::table.count().get_result(conn)
}

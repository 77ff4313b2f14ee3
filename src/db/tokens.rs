//! The `tokens` table: access and refresh tokens, stored only as SHA-256 hashes.
//!
//! Tokens issued from one authorization grant share a `family_id` (the authorization code's id,
//! or a fresh id for password and client-credentials grants). Revoking a refresh token, replaying
//! a code or reusing a rotated refresh token revokes the whole family (RFC 7009 §2.1,
//! RFC 6749 §4.1.2, RFC 9700 §4.14.2).
//!
//! **Lock rule** (PostgreSQL runs READ COMMITTED: a revoking `UPDATE` does not see tokens that a
//! concurrent refresh inserts and commits after the statement began). Every transaction that
//! mints tokens for a user or revokes a user's tokens first locks that user's row
//! ([`users::lock`], or [`lock_owner`] by token hash), before touching any token or code row.
//! Minting and revoking for one user therefore run one after the other, and whichever runs
//! second sees what the first committed. A family belongs to one user (or is a single
//! client-credentials token, which no refresh extends), so this serialises families too.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::tokens;
use super::users::{self, UserRow};
use super::DbConnection;

/// `kind` of an access token row.
pub const ACCESS: &str = "access";
/// `kind` of a refresh token row.
pub const REFRESH: &str = "refresh";

/// A row of `tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = tokens)]
pub struct TokenRow {
    /// Row id.
    pub id: String,
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// [`ACCESS`] or [`REFRESH`].
    pub kind: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The resource owner; `None` for client-credentials tokens.
    pub user_id: Option<String>,
    /// Granted scope, space-separated.
    pub scope: String,
    /// The grant type that produced the family.
    pub grant_type: String,
    /// Family (authorization grant) the token belongs to.
    pub family_id: String,
    /// Issue time (UTC).
    pub created_at: NaiveDateTime,
    /// Expiry (UTC).
    pub expires_at: NaiveDateTime,
    /// Revocation time; `None` while valid.
    pub revoked_at: Option<NaiveDateTime>,
    /// For refresh tokens: when it was exchanged for a new one (rotation).
    pub rotated_at: Option<NaiveDateTime>,
    /// When the user authenticated for this grant (ID tokens on refresh keep it, OIDC Core §12.2).
    pub auth_time: Option<NaiveDateTime>,
    /// Authentication methods (RFC 8176 values), space-separated.
    pub amr: Option<String>,
    /// RFC 8707 resources, space-separated: an access token's audience (empty: the default
    /// audience, `oidc.access_token_audience`); a refresh token's grant resources, which a
    /// refresh may narrow (RFC 8707 §2.2).
    pub resources: String,
    /// For RFC 9068 JWT access tokens: the `kid` of the key that signed it (revoking the key
    /// revokes the token, [`revoke_signed_by`]); `None` for opaque tokens.
    pub signing_kid: Option<String>,
    /// The upstream identity provider the grant's login went through (`[upstream.<id>]`);
    /// `None` for a local login. Kept so that refreshed ID tokens carry the same `idp` claim.
    pub idp: Option<String>,
}

impl TokenRow {
    /// Whether the token is usable at `now`: not expired, revoked or rotated.
    #[must_use]
    pub fn is_active(&self, now: NaiveDateTime) -> bool {
        self.revoked_at.is_none() && self.rotated_at.is_none() && self.expires_at > now
    }
}

/// Inserts a token.
///
/// # Errors
/// Query failures only.
pub fn insert(conn: &mut DbConnection, row: &TokenRow) -> QueryResult<()> {
    let query = diesel::insert_into(tokens::table).values(row);
    crate::per_backend!(conn, |c| query.execute(c)).map(|_| ())
}

/// The rows one token response stores, made before storage is asked: its token rows and their
/// `token.issued` audit event. Used where minting needs no lock and no read — the
/// client-credentials grant with opaque tokens (no user, so the lock rule above does not apply)
/// — so that storage only inserts: on SQLite inside the writer's group commit, on PostgreSQL
/// in a group insert ([`super::grouped`]).
#[derive(Clone, Debug)]
pub struct TokenIssue {
    /// The token rows (an access token, and a refresh token when one was minted).
    pub tokens: Vec<TokenRow>,
    /// The `token.issued` event.
    pub audit: super::audit_events::AuditRow,
}

impl TokenIssue {
    /// Inserts the rows one statement each (inside the caller's transaction).
    ///
    /// # Errors
    /// Query failures only.
    pub fn insert(&self, conn: &mut DbConnection) -> QueryResult<()> {
        for row in &self.tokens {
            insert(conn, row)?;
        }
        super::audit_events::insert(conn, &self.audit)
    }
}

/// Inserts every row of `issues` with one multi-row `INSERT` per table (inside the caller's
/// transaction: all or nothing).
///
/// # Errors
/// Query failures only; the first failing row fails the whole statement.
pub fn insert_issues(conn: &mut DbConnection, issues: &[TokenIssue]) -> QueryResult<()> {
    let rows: Vec<&TokenRow> = issues.iter().flat_map(|i| &i.tokens).collect();
    let audit: Vec<&super::audit_events::AuditRow> = issues.iter().map(|i| &i.audit).collect();
    let tokens = diesel::insert_into(tokens::table).values(rows);
    crate::per_backend!(conn, |c| tokens.execute(c))?;
    let events = diesel::insert_into(super::schema::audit_events::table).values(audit);
    crate::per_backend!(conn, |c| events.execute(c)).map(|_| ())
}

/// The token with this hash and kind (`None` for either kind). Both forms are static queries,
/// so diesel caches their prepared statements (a boxed query would be prepared every time).
///
/// # Errors
/// Query failures only.
pub fn find_by_hash(
    conn: &mut DbConnection,
    token_hash: &str,
    kind: Option<&str>,
) -> QueryResult<Option<TokenRow>> {
    let by_hash = tokens::table.filter(tokens::token_hash.eq(token_hash));
    match kind {
        Some(kind) => crate::per_backend!(conn, |c| by_hash
            .filter(tokens::kind.eq(kind))
            .select(TokenRow::as_select())
            .load(c)),
        None => crate::per_backend!(conn, |c| by_hash.select(TokenRow::as_select()).load(c)),
    }
    .map(super::first_of)
}

/// Locks the resource owner of the token with this hash (any kind) and returns the owner as
/// read under the lock; `None` for an unknown token or one without a user (client
/// credentials). Call it before reading the token itself, so that the token row read next
/// reflects every revocation or rotation committed before the lock was granted. See the lock
/// rule above.
///
/// # Errors
/// Query failures only.
pub fn lock_owner(conn: &mut DbConnection, token_hash: &str) -> QueryResult<Option<UserRow>> {
    use super::schema::users as u;
    let owner = tokens::table
        .filter(tokens::token_hash.eq(token_hash))
        .select(tokens::user_id);
    crate::load_locked!(
        conn,
        u::table
            .filter(u::id.nullable().eq_any(owner))
            .select(UserRow::as_select())
    )
    .map(super::first_of)
}

/// The token with this hash (and kind) if it is usable at `now`, with its resource owner; `None`
/// when the token is unknown, expired, revoked or rotated, or its owner is missing or
/// deactivated. The owner is `None` for client-credentials tokens.
///
/// # Errors
/// Query failures only.
pub fn find_usable(
    conn: &mut DbConnection,
    token_hash: &str,
    kind: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<Option<(TokenRow, Option<UserRow>)>> {
    let Some(row) = find_by_hash(conn, token_hash, kind)? else {
        return Ok(None);
    };
    if !row.is_active(now) {
        return Ok(None);
    }
    let owner = match &row.user_id {
        None => None,
        Some(id) => match users::find(conn, id)? {
            Some(user) if user.is_active => Some(user),
            _ => return Ok(None),
        },
    };
    Ok(Some((row, owner)))
}

/// The tokens whose hashes are in `token_hashes` (any kind, used or not), and the users who
/// own them: one query each (on PostgreSQL `= ANY($1)`), for lookups served in groups
/// ([`super::grouped::GroupLookup`]). Callers apply [`find_usable`]'s rules themselves.
///
/// # Errors
/// Query failures only.
pub fn find_many_with_owners(
    conn: &mut DbConnection,
    token_hashes: &[&str],
) -> QueryResult<(Vec<TokenRow>, Vec<UserRow>)> {
    let hashes = token_hashes.to_vec();
    let rows: Vec<TokenRow> = crate::per_backend!(conn, |c| tokens::table
        .filter(tokens::token_hash.eq_any(&hashes))
        .select(TokenRow::as_select())
        .load(c))?;
    let mut owners: Vec<&str> = rows.iter().filter_map(|r| r.user_id.as_deref()).collect();
    owners.sort_unstable();
    owners.dedup();
    if owners.is_empty() {
        return Ok((rows, Vec::new()));
    }
    let users = crate::per_backend!(conn, |c| super::schema::users::table
        .filter(super::schema::users::id.eq_any(&owners))
        .select(UserRow::as_select())
        .load(c))?;
    Ok((rows, users))
}

/// Marks a refresh token rotated if it was not already; `true` only for the caller that won.
///
/// # Errors
/// Query failures only.
pub fn mark_rotated(conn: &mut DbConnection, id: &str, at: NaiveDateTime) -> QueryResult<bool> {
    diesel::update(
        tokens::table
            .find(id)
            .filter(tokens::rotated_at.is_null())
            .filter(tokens::revoked_at.is_null()),
    )
    .set(tokens::rotated_at.eq(Some(at)))
    .execute(conn)
    .map(|n| n == 1)
}

/// Revokes one token; returns whether it changed.
///
/// # Errors
/// Query failures only.
pub fn revoke(conn: &mut DbConnection, id: &str, at: NaiveDateTime) -> QueryResult<bool> {
    diesel::update(tokens::table.find(id).filter(tokens::revoked_at.is_null()))
        .set(tokens::revoked_at.eq(Some(at)))
        .execute(conn)
        .map(|n| n == 1)
}

/// Revokes every token of a family; returns how many changed.
///
/// # Errors
/// Query failures only.
pub fn revoke_family(
    conn: &mut DbConnection,
    family_id: &str,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        tokens::table
            .filter(tokens::family_id.eq(family_id))
            .filter(tokens::revoked_at.is_null()),
    )
    .set(tokens::revoked_at.eq(Some(at)))
    .execute(conn)
}

/// Revokes every unexpired token signed by the signing key `kid` (JWT access tokens, see
/// [`TokenRow::signing_kid`]); returns how many changed. Rare (a key revocation), so it scans
/// rather than keeping an index that every token insert would pay for.
///
/// # Errors
/// Query failures only.
pub fn revoke_signed_by(
    conn: &mut DbConnection,
    kid: &str,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        tokens::table
            .filter(tokens::signing_kid.eq(kid))
            .filter(tokens::revoked_at.is_null())
            .filter(tokens::expires_at.gt(at)),
    )
    .set(tokens::revoked_at.eq(Some(at)))
    .execute(conn)
}

/// Deletes tokens that expired or were revoked before `now`; returns how many.
///
/// # Errors
/// Query failures only.
pub fn delete_expired_or_revoked(
    conn: &mut DbConnection,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::delete(
        tokens::table.filter(
            tokens::expires_at
                .lt(now)
                .or(tokens::revoked_at.is_not_null()),
        ),
    )
    .execute(conn)
}

/// Counts active (unexpired, unrevoked, unrotated) tokens of a client.
///
/// # Errors
/// Query failures only.
pub fn count_active_for_client(
    conn: &mut DbConnection,
    client_id: &str,
    now: NaiveDateTime,
) -> QueryResult<i64> {
    tokens::table
        .filter(tokens::client_id.eq(client_id))
        .filter(tokens::revoked_at.is_null())
        .filter(tokens::rotated_at.is_null())
        .filter(tokens::expires_at.gt(now))
        .count()
        .get_result(conn)
}

/// Revokes every active token of `user_id` (only those issued to `client_id` when given);
/// returns how many changed. Locks the user's row first (see the lock rule above), so a token
/// minted by a transaction that commits meanwhile is either seen and revoked here, or minted
/// after this transaction commits by a minter that then finds the revocation's effects.
///
/// # Errors
/// Query failures only.
pub fn revoke_for_user(
    conn: &mut DbConnection,
    user_id: &str,
    client_id: Option<&str>,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    users::lock(conn, user_id)?;
    let mut query = tokens::table
        .filter(tokens::user_id.eq(user_id))
        .filter(tokens::revoked_at.is_null())
        .into_boxed();
    if let Some(client_id) = client_id {
        query = query.filter(tokens::client_id.eq(client_id));
    }
    let ids: Vec<String> = query.select(tokens::id).load(conn)?;
    revoke_ids(conn, &ids, at)
}

/// Revokes every active token of `user_id` minted from a login through the upstream provider
/// `idp` (its link was removed); returns how many changed. Locks the user's row first, as
/// [`revoke_for_user`] does.
///
/// # Errors
/// Query failures only.
pub fn revoke_for_idp(
    conn: &mut DbConnection,
    user_id: &str,
    idp: &str,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    users::lock(conn, user_id)?;
    let ids: Vec<String> = tokens::table
        .filter(tokens::user_id.eq(user_id))
        .filter(tokens::idp.eq(idp))
        .filter(tokens::revoked_at.is_null())
        .select(tokens::id)
        .load(conn)?;
    revoke_ids(conn, &ids, at)
}

/// The users with an unrevoked token whose login went through provider `idp`, sorted.
///
/// # Errors
/// Query failures only.
pub fn users_with_idp(conn: &mut DbConnection, idp: &str) -> QueryResult<Vec<String>> {
    tokens::table
        .filter(tokens::idp.eq(idp))
        .filter(tokens::revoked_at.is_null())
        .filter(tokens::user_id.is_not_null())
        .select(tokens::user_id.assume_not_null())
        .distinct()
        .order(tokens::user_id.assume_not_null())
        .load(conn)
}

/// Revokes the tokens with these row ids (already revoked ones are left alone); returns how
/// many changed.
///
/// # Errors
/// Query failures only.
pub fn revoke_ids(
    conn: &mut DbConnection,
    ids: &[String],
    at: NaiveDateTime,
) -> QueryResult<usize> {
    let mut changed = 0;
    // Bounded chunks keep the statement within every backend's parameter limit.
    for chunk in ids.chunks(500) {
        changed += diesel::update(
            tokens::table
                .filter(tokens::id.eq_any(chunk))
                .filter(tokens::revoked_at.is_null()),
        )
        .set(tokens::revoked_at.eq(Some(at)))
        .execute(conn)?;
    }
    Ok(changed)
}

/// The tokens with these row ids.
///
/// # Errors
/// Query failures only.
pub fn find_ids(conn: &mut DbConnection, ids: &[String]) -> QueryResult<Vec<TokenRow>> {
    let mut rows = Vec::new();
    for chunk in ids.chunks(500) {
        rows.extend(
            tokens::table
                .filter(tokens::id.eq_any(chunk))
                .select(TokenRow::as_select())
                .load(conn)?,
        );
    }
    Ok(rows)
}

/// A token and its owner (`None` for client-credentials tokens).
pub type TokenWithOwner = (TokenRow, Option<TokenOwner>);

/// The owner of a listed token, as the admin list needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenOwner {
    /// Their username.
    pub username: String,
    /// Whether they are a staff member or superuser (`is_staff || is_superuser`).
    pub is_admin: bool,
}

/// Which active tokens to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenFilter {
    /// Only this user's tokens.
    pub user_id: Option<String>,
    /// Only tokens issued to this client.
    pub client_id: Option<String>,
}

/// A token's user as the console's token list shows it: (username, is_staff, is_superuser).
type OwnerFlags = (String, bool, bool);

/// One page of active tokens (unexpired, unrevoked, unrotated) matching `filter`, newest
/// first, each with its owner, and the number of matches.
///
/// # Errors
/// Query failures only.
pub fn list_active(
    conn: &mut DbConnection,
    filter: &TokenFilter,
    now: NaiveDateTime,
    limit: i64,
    offset: i64,
) -> QueryResult<(Vec<TokenWithOwner>, i64)> {
    use super::schema::users as u;
    let filtered = || {
        let mut query = tokens::table
            .left_join(u::table)
            .filter(tokens::revoked_at.is_null())
            .filter(tokens::rotated_at.is_null())
            .filter(tokens::expires_at.gt(now))
            .into_boxed();
        if let Some(user) = filter.user_id.as_deref().filter(|s| !s.is_empty()) {
            query = query.filter(tokens::user_id.eq(user));
        }
        if let Some(client) = filter.client_id.as_deref().filter(|s| !s.is_empty()) {
            query = query.filter(tokens::client_id.eq(client));
        }
        query
    };
    let total = filtered().count().get_result(conn)?;
    let rows: Vec<(TokenRow, Option<OwnerFlags>)> = filtered()
        .order((tokens::created_at.desc(), tokens::id.desc()))
        .limit(limit)
        .offset(offset)
        .select((
            TokenRow::as_select(),
            (u::username, u::is_staff, u::is_superuser).nullable(),
        ))
        .load(conn)?;
    let rows = rows
        .into_iter()
        .map(|(row, owner)| {
            let owner = owner.map(|(username, staff, superuser)| TokenOwner {
                username,
                is_admin: staff || superuser,
            });
            (row, owner)
        })
        .collect();
    Ok((rows, total))
}

/// Counts every active token.
///
/// # Errors
/// Query failures only.
pub fn count_active(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<i64> {
    tokens::table
        .filter(tokens::revoked_at.is_null())
        .filter(tokens::rotated_at.is_null())
        .filter(tokens::expires_at.gt(now))
        .count()
        .get_result(conn)
}

/// For each client the user holds active tokens of: (client id, count).
///
/// # Errors
/// Query failures only.
pub fn active_per_client_for_user(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> QueryResult<Vec<(String, i64)>> {
    let ids: Vec<String> = tokens::table
        .filter(tokens::user_id.eq(user_id))
        .filter(tokens::revoked_at.is_null())
        .filter(tokens::rotated_at.is_null())
        .filter(tokens::expires_at.gt(now))
        .select(tokens::client_id)
        .load(conn)?;
    let mut counts: Vec<(String, i64)> = Vec::new();
    for id in ids {
        match counts.iter_mut().find(|(c, _)| *c == id) {
            Some((_, n)) => *n += 1,
            None => counts.push((id, 1)),
        }
    }
    Ok(counts)
}

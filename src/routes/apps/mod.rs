//! The developer portal (django-oauth-toolkit's `/o/applications/`): a user registers, edits
//! and deletes their own OAuth clients; staff see and manage every client. One file per step:
//!
//! * [`list`] — `/o/applications/`: the list (staff: every application, with owners, search);
//! * [`form`] — the register and edit form (`register/`, `{client_id}/update/`);
//! * [`detail`] — `{client_id}/`: everything a developer pastes into their client, and
//!   `{client_id}/delete/`;
//! * [`secret`] — `{client_id}/rotate_secret/` and `{client_id}/secret/`, the one view of a
//!   newly generated secret.
//!
//! Someone else's application answers 404, as if it did not exist. Powers meant for first-party
//! applications are a superuser's: the password grant, skipping consent, introspecting every
//! token, serving RFC 8707 resources (which lets a client introspect the tokens meant for them),
//! refresh tokens without `offline_access`, plain PKCE, custom token lifetimes and the
//! restricted scopes (`admin`, `logout_all`; a self-made client with the password grant would
//! be a phishing kit that gets tokens without consent). Staff who are not superusers see every
//! application but change only their own and ordinary users' ([`Clients::access`]); while an
//! application holds a power, its redirect URIs, post-logout redirect URIs and origins are
//! read-only to everyone but a superuser. The clients service decides each of these rules again
//! inside the change's transaction; the pages only hide what the viewer cannot use.
//!
//! Every change answers with a redirect to a GET page (post/redirect/get) and a one-time notice
//! ([`crate::routes::chrome::flash`]), so a reload repeats nothing.

pub(super) mod detail;
pub(super) mod form;
pub(super) mod list;
pub(super) mod secret;

pub use detail::{confirm_delete, delete_application, show_application};
pub use form::{register_application, show_register_form, show_update_form, update_application};
pub use list::list_applications;
pub use secret::{confirm_rotate_secret, rotate_secret, show_new_secret};

use crate::accounts::Accounts;
use crate::clients::{Client, ClientAccess, ClientError, Clients};
use crate::routes::errors::PageError;
use crate::routes::extract::SignedIn;
use crate::routes::format::capitalized;

/// `/o/applications/{client_id}/`, with the id percent-encoded.
fn detail_path(client_id: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    format!("/o/applications/{encoded}/")
}

/// The 404 of an application that does not exist or is not the viewer's.
fn not_found() -> PageError {
    PageError::not_found(
        "Application not found",
        "There is no application at this address, or it is not yours.",
    )
}

/// The 403 of a change the viewer may not make.
fn forbidden(why: &str) -> PageError {
    PageError::forbidden(
        "Not allowed",
        format!("You cannot change this application: {why}."),
    )
}

/// The page for a clients-service error no form field shows.
fn client_failure(e: ClientError) -> PageError {
    match e {
        ClientError::Db(e) => e.into(),
        ClientError::NotFound => not_found(),
        ClientError::Forbidden { message, .. } => forbidden(&message),
        ClientError::Invalid { message, .. } => {
            PageError::bad_request("Not possible", capitalized(&message))
        }
    }
}

/// The client at `client_id`, if the signed-in user may see it (theirs, or they are staff).
///
/// # Errors
/// 404 for anyone else's application; 503 when storage fails.
async fn visible_client(
    user: &SignedIn,
    clients: &Clients,
    client_id: &str,
) -> Result<Client, PageError> {
    match clients.find(client_id).await? {
        Some(client) if user.has_staff_access() || client.owner_id() == Some(user.id.as_str()) => {
            Ok(client)
        }
        _ => Err(not_found()),
    }
}

/// [`visible_client`], when the viewer may also change it ([`Clients::access`]): a staff member
/// who is not a superuser sees an operator's or an admin's client but gets 403 for its forms.
async fn managed_client(
    user: &SignedIn,
    clients: &Clients,
    client_id: &str,
) -> Result<(Client, ClientAccess), PageError> {
    let client = visible_client(user, clients, client_id).await?;
    let access = clients.access(&user.actor(), Some(&client)).await?;
    if let Some(why) = &access.refused {
        return Err(forbidden(why));
    }
    Ok((client, access))
}

/// The username of the client's owner, if it has one.
async fn owner_name(accounts: &Accounts, client: &Client) -> Result<Option<String>, PageError> {
    Ok(match client.owner_id() {
        None => None,
        Some(id) => accounts.find(id.to_owned()).await?.map(|u| u.username),
    })
}

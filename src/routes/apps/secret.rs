//! A confidential client's secret: `GET`/`POST /o/applications/{client_id}/rotate_secret/`
//! (confirm, then generate a new one) and `GET /o/applications/{client_id}/secret/`, the one
//! view of a newly generated secret (post/redirect/get, issue 10 item 9).
//!
//! Registering or rotating keeps the new secret server-side for a single view
//! ([`Clients::hold_secret`]: sealed with a key derived from `secrets.secret_key`, for
//! [`HELD_SECRET_SECONDS`]) and redirects to `…/secret/`; this browser's encrypted session
//! holds the ticket. The first GET shows the secret and deletes it; a reload, another browser
//! or a late visit sees that it was shown once. So a reload repeats neither the registration
//! nor the rotation, and the secret never sits in a page the browser could re-post.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::detail::detail_page;
use super::{client_failure, detail_path, managed_client, not_found, visible_client};
use crate::accounts::Accounts;
use crate::clients::{Client, ClientType, Clients, PlainSecret, HELD_SECRET_SECONDS};
use crate::routes::chrome::{flash, page, ConfirmPage, ConfirmText, Notice, Section};
use crate::routes::errors::PageError;
use crate::routes::extract::{Form, SignedIn};
use crate::routes::http::see_other;
use crate::routes::WebConfig;

/// Session key of the ticket of the secret waiting for its view.
const SESSION_HELD_SECRET: &str = "held_secret";

/// What the session keeps between the POST and the view: which client, and the ticket.
#[derive(Serialize, Deserialize)]
struct HeldTicket {
    client_id: String,
    ticket: String,
}

/// After a registration (`what` = "registered") or a rotation: holds the new secret for its
/// view, leaves a notice, and redirects to the view (or, for a public client without a
/// secret, to the application).
pub(super) async fn after_new_secret(
    user: &SignedIn,
    clients: &Clients,
    client: &Client,
    secret: Option<PlainSecret>,
    notice: &str,
) -> Result<HttpResponse, PageError> {
    flash(user.session(), Notice::success(notice));
    let Some(secret) = secret else {
        return Ok(see_other(&detail_path(client.id())));
    };
    if let Some(ticket) = clients.hold_secret(&user.id, client.id(), secret).await? {
        let held = HeldTicket {
            client_id: client.id().to_owned(),
            ticket,
        };
        if let Err(e) = user.session().insert(SESSION_HELD_SECRET, held) {
            // The secret cannot be shown; the page says to generate a new one.
            tracing::error!(error = %e, "could not keep the ticket of a new client secret");
        }
    }
    Ok(see_other(&format!("{}secret/", detail_path(client.id()))))
}

/// `GET /o/applications/{client_id}/secret/`: the application's page with its new secret, the
/// one time it is shown; afterwards the same page says the secret was shown once.
pub async fn show_new_secret(
    user: SignedIn,
    path: web::Path<String>,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let client = visible_client(&user, &clients, &path).await?;
    let session = user.session();
    let held = session
        .get::<HeldTicket>(SESSION_HELD_SECRET)
        .ok()
        .flatten()
        .filter(|h| h.client_id == client.id());
    let secret = match held {
        Some(held) => {
            session.remove(SESSION_HELD_SECRET);
            clients
                .take_held_secret(&held.ticket, &user.id, client.id())
                .await?
        }
        None => None,
    };
    let mut chrome = user.chrome(Section::Apps);
    if secret.is_none() && client.client_type == ClientType::Confidential {
        chrome.notice = Some(Notice::info(format!(
            "The secret was shown once (for up to {} minutes after it was generated); {} keeps only its hash. Generate a new one if you lost it.",
            HELD_SECRET_SECONDS / 60,
            chrome.brand.name
        )));
    }
    detail_page(
        &user,
        chrome,
        &client,
        &accounts,
        &clients,
        &web,
        secret.map(|s| s.0),
    )
    .await
}

/// `GET /o/applications/{client_id}/rotate_secret/`: asks for confirmation.
pub async fn confirm_rotate_secret(
    user: SignedIn,
    path: web::Path<String>,
    clients: web::Data<Clients>,
) -> Result<HttpResponse, PageError> {
    let (client, _) = managed_client(&user, &clients, &path).await?;
    if client.client_type != ClientType::Confidential {
        return Err(not_found());
    }
    Ok(page(&ConfirmPage {
        chrome: user.chrome(Section::Apps),
        confirm: ConfirmText {
            title: "Generate a new client secret?".to_owned(),
            message: format!(
                "The current secret of “{}” stops working the moment the new one is generated. Update your application with the new secret right away. Tokens already issued stay valid.",
                client.name()
            ),
            action: format!("{}rotate_secret/", detail_path(client.id())),
            hidden: Vec::new(),
            button: "Generate new secret".to_owned(),
            cancel: detail_path(client.id()),
        },
    }))
}

/// `POST /o/applications/{client_id}/rotate_secret/`: replaces the secret and redirects to
/// its one view.
pub async fn rotate_secret(
    user: SignedIn,
    path: web::Path<String>,
    _form: Form,
    clients: web::Data<Clients>,
) -> Result<HttpResponse, PageError> {
    let (client, _) = managed_client(&user, &clients, &path).await?;
    let secret = clients
        .rotate_secret(&user.actor(), client.id())
        .await
        .map_err(client_failure)?;
    let notice = format!(
        "A new secret was generated for “{}”; the previous one no longer works.",
        client.name()
    );
    after_new_secret(&user, &clients, &client, Some(secret), &notice).await
}

//! `GET /o/applications/{client_id}/`: everything a developer pastes into their client, and
//! `/o/applications/{client_id}/delete/`.

use actix_web::{web, HttpResponse};
use askama::Template;

use super::{client_failure, detail_path, managed_client, owner_name, visible_client};
use crate::accounts::Accounts;
use crate::clients::{Client, ClientError, ClientSpec, Clients, GrantType};
use crate::domain::MetadataUri;
use crate::routes::chrome::{flash, page, Chrome, ConfirmPage, ConfirmText, Notice, Section};
use crate::routes::errors::PageError;
use crate::routes::extract::{Form, SignedIn};
use crate::routes::format::show_time;
use crate::routes::http::see_other;
use crate::routes::WebConfig;

#[derive(Template)]
#[template(path = "apps/detail.html")]
struct DetailPage<'a> {
    chrome: Chrome,
    client: &'a Client,
    /// The client's settings as its form shows them.
    spec: ClientSpec,
    owner: Option<String>,
    /// Why the viewer may not edit, delete or rotate the secret of this client, if so.
    refused: Option<String>,
    /// The plain secret, on its one view right after it was generated.
    new_secret: Option<String>,
    secret_hint: String,
    active_tokens: i64,
    issuer: &'a str,
    grants: Vec<&'static str>,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    allowed_origins: Vec<String>,
    scopes: Vec<String>,
    resource_uris: Vec<String>,
    curl: String,
    created: String,
    updated: String,
    /// The logo users see on the consent page, if one is set.
    logo: Option<MetadataUri>,
    /// The home page, privacy policy and terms of service, as (label, URL if set).
    links: [(&'static str, Option<MetadataUri>); 3],
}

/// `GET /o/applications/{client_id}/`: everything a developer pastes into their client.
pub async fn show_application(
    user: SignedIn,
    path: web::Path<String>,
    accounts: web::Data<Accounts>,
    clients: web::Data<Clients>,
    web: web::Data<WebConfig>,
) -> Result<HttpResponse, PageError> {
    let client = visible_client(&user, &clients, &path).await?;
    let chrome = user.chrome(Section::Apps);
    detail_page(&user, chrome, &client, &accounts, &clients, &web, None).await
}

/// The detail page with `chrome`; `new_secret` is the plain secret on its one view.
pub(super) async fn detail_page(
    user: &SignedIn,
    chrome: Chrome,
    client: &Client,
    accounts: &Accounts,
    clients: &Clients,
    web: &WebConfig,
    new_secret: Option<String>,
) -> Result<HttpResponse, PageError> {
    let active_tokens = clients.active_token_count(client.id()).await?;
    let owner = owner_name(accounts, client).await?;
    let refused = clients.access(&user.actor(), Some(client)).await?.refused;
    Ok(page(&DetailPage {
        chrome,
        curl: curl_example(&web.issuer, client),
        secret_hint: client.secret_hint().unwrap_or_default().to_owned(),
        client,
        spec: ClientSpec::from_client(client),
        owner,
        refused,
        new_secret,
        active_tokens,
        issuer: &web.issuer,
        grants: client.grant_types.iter().map(|g| g.as_str()).collect(),
        redirect_uris: client.redirect_uris.clone(),
        post_logout_redirect_uris: client.post_logout_redirect_uris(),
        allowed_origins: client.allowed_origins(),
        scopes: client.allowed_scopes.iter().map(str::to_owned).collect(),
        resource_uris: client.resource_uris.iter().map(str::to_owned).collect(),
        created: show_time(&client.created_at()),
        updated: show_time(&client.updated_at()),
        logo: client.logo(),
        links: [
            ("Home page", client.homepage()),
            ("Privacy policy", client.privacy_policy()),
            ("Terms of service", client.terms_of_service()),
        ],
    }))
}

/// `GET /o/applications/{client_id}/delete/`: asks for confirmation.
pub async fn confirm_delete(
    user: SignedIn,
    path: web::Path<String>,
    clients: web::Data<Clients>,
) -> Result<HttpResponse, PageError> {
    let (client, _) = managed_client(&user, &clients, &path).await?;
    Ok(page(&ConfirmPage {
        chrome: user.chrome(Section::Apps),
        confirm: ConfirmText {
            title: "Delete this application?".to_owned(),
            message: format!(
                "“{}” will stop working at once: its client_id and secret are forgotten, and every token issued to it is revoked. This cannot be undone.",
                client.name()
            ),
            action: format!("{}delete/", detail_path(client.id())),
            hidden: Vec::new(),
            button: "Delete application".to_owned(),
            cancel: detail_path(client.id()),
        },
    }))
}

/// `POST /o/applications/{client_id}/delete/`: deletes the client with its tokens.
pub async fn delete_application(
    user: SignedIn,
    path: web::Path<String>,
    _form: Form,
    clients: web::Data<Clients>,
) -> Result<HttpResponse, PageError> {
    let (client, _) = managed_client(&user, &clients, &path).await?;
    match clients.delete(&user.actor(), client.id()).await {
        // Deleted meanwhile by someone else: gone all the same.
        Ok(()) | Err(ClientError::NotFound) => {
            flash(
                user.session(),
                Notice::success(format!("“{}” was deleted.", client.name())),
            );
            Ok(see_other("/o/applications/"))
        }
        Err(e) => Err(client_failure(e)),
    }
}

/// A `curl` command that gets a token for this client: client credentials when allowed,
/// otherwise the code exchange (with placeholders for the code and verifier).
fn curl_example(issuer: &str, client: &Client) -> String {
    let token = shell_quote(&format!("{issuer}/o/token/"));
    let auth = match client.auth_method() {
        "client_secret_basic" => format!(
            "  -u {} \\\n",
            shell_quote(&format!("{}:YOUR_CLIENT_SECRET", client.id()))
        ),
        "client_secret_post" => format!(
            "  -d {} \\\n  -d client_secret=YOUR_CLIENT_SECRET \\\n",
            shell_quote(&format!("client_id={}", client.id()))
        ),
        _ => format!(
            "  -d {} \\\n",
            shell_quote(&format!("client_id={}", client.id()))
        ),
    };
    if client.allows(GrantType::ClientCredentials) {
        format!("curl -X POST {token} \\\n{auth}  -d grant_type=client_credentials")
    } else {
        let redirect = client
            .redirect_uris
            .first()
            .cloned()
            .unwrap_or_else(|| "YOUR_REDIRECT_URI".to_owned());
        let redirect = shell_quote(&format!("redirect_uri={redirect}"));
        format!(
            "curl -X POST {token} \\\n{auth}  -d grant_type=authorization_code \\\n  -d code=THE_CODE \\\n  --data-urlencode {redirect} \\\n  -d code_verifier=YOUR_CODE_VERIFIER"
        )
    }
}

/// `value` as one POSIX shell word: single quotes, with each `'` written as `'\''`. Redirect
/// URIs may hold `$(…)`, backquotes or `;`; pasted into a terminal they must stay text.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn shell_words_stay_words() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(
            shell_quote("redirect_uri=https://x.example/cb?$(id)'x"),
            "'redirect_uri=https://x.example/cb?$(id)'\\''x'"
        );
    }
}

//! Outgoing email with lettre: SMTP (STARTTLS or implicit TLS, optional authentication) in
//! production, or the development outbox — one `.eml` file per message in `email.outbox_dir`
//! and a log line — so that the demo works without a mail server.
//!
//! Messages are askama templates under `templates/email/`, each an HTML body with a plain-text
//! alternative. Links in them start with the public issuer URL. The [`Mailer`] draws every
//! message under the configured [`EmailBrand`] (`[branding]`): the HTML layout shows the logo and
//! the product name and colours its links and buttons; the plain text signs with the name. A
//! failed send is logged and returned to the caller, which reports it to the user; it never
//! undoes the account change that asked for the message (the user can ask for it again).

use std::path::PathBuf;

use askama::Template;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{Branding, EmailSettings, EmailTransport, SmtpSecurity};
use crate::domain::AccentColor;

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The recipient address or the message could not be built.
    #[error("the message could not be built: {0}")]
    Build(String),
    /// The template failed to render.
    #[error("the message could not be rendered: {0}")]
    Render(#[from] askama::Error),
    /// The SMTP server refused or could not be reached.
    #[error("the mail server did not accept the message: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// The outbox file could not be written.
    #[error("the message could not be written to the outbox: {0}")]
    Outbox(#[from] lettre::transport::file::Error),
}

/// How emails show the product (from `[branding]`). HTML email has no stylesheet worth the
/// name: the colours go into inline `style` attributes, which is why they are validated
/// `#rrggbb` values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailBrand {
    /// The product name: at the top of the HTML part, in its `<title>`, and the plain text's
    /// signature.
    pub name: String,
    /// The logo's absolute URL (a configured path resolved against the issuer: a mail client
    /// has no page to resolve it against), shown above the message.
    pub logo_url: Option<String>,
    /// The colour of links and buttons, `#rrggbb` (Latchkey's blue when none is configured).
    pub accent: String,
    /// The text colour on a button, `#rrggbb`, contrasting with `accent`.
    pub on_accent: String,
}

impl EmailBrand {
    /// The brand of emails sent by a server whose public URL is `issuer`.
    #[must_use]
    pub fn new(branding: &Branding, issuer: &url::Url) -> Self {
        let accent = branding.accent_color.unwrap_or(AccentColor::DEFAULT);
        Self {
            name: branding.name.as_str().to_owned(),
            logo_url: branding.logo_url.as_ref().map(|logo| logo.absolute(issuer)),
            accent: accent.hex(),
            on_accent: accent.on_accent().to_owned(),
        }
    }
}

/// One email: a subject and a template pair (HTML and plain text) rendered from the same data
/// under the sender's [`EmailBrand`].
pub trait EmailTemplate {
    /// The `Subject` header.
    fn subject(&self) -> String;
    /// The HTML body (a whole document, in `templates/email/layout.html`).
    ///
    /// # Errors
    /// Template errors.
    fn html(&self, brand: &EmailBrand) -> Result<String, askama::Error>;
    /// The plain-text body (signed with the brand's name, `templates/email/layout.txt`).
    ///
    /// # Errors
    /// Template errors.
    fn text(&self, brand: &EmailBrand) -> Result<String, askama::Error>;
}

#[derive(Clone)]
enum Transport {
    Outbox(AsyncFileTransport<Tokio1Executor>, PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Sends messages (cheap to clone).
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    brand: EmailBrand,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.transport {
            Transport::Outbox(_, dir) => format!("outbox {}", dir.display()),
            Transport::Smtp(_) => "smtp".to_owned(),
        };
        f.debug_struct("Mailer")
            .field("transport", &kind)
            .field("from", &self.from.to_string())
            .field("brand", &self.brand)
            .finish()
    }
}

impl Mailer {
    /// The mailer `settings` describe, drawing its messages under `brand`. The outbox
    /// directory is created here.
    ///
    /// # Errors
    /// An unusable `from` address, TLS set-up failure, or an outbox directory that cannot be
    /// created.
    pub fn new(settings: &EmailSettings, brand: EmailBrand) -> anyhow::Result<Self> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("email.from is not a mailbox: {e}"))?;
        let transport = match &settings.transport {
            EmailTransport::Outbox(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    anyhow::anyhow!("cannot create the outbox {}: {e}", dir.display())
                })?;
                Transport::Outbox(AsyncFileTransport::new(dir), dir.clone())
            }
            EmailTransport::Smtp {
                host,
                port,
                security,
                credentials,
                timeout,
            } => {
                let tls = match security {
                    SmtpSecurity::None => Tls::None,
                    SmtpSecurity::StartTls => Tls::Required(TlsParameters::new(host.clone())?),
                    SmtpSecurity::Tls => Tls::Wrapper(TlsParameters::new(host.clone())?),
                };
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                    .port(*port)
                    .tls(tls)
                    .timeout(Some(*timeout));
                if let Some((user, password)) = credentials {
                    builder = builder.credentials(Credentials::new(
                        user.clone(),
                        password.expose_secret().to_owned(),
                    ));
                }
                Transport::Smtp(builder.build())
            }
        };
        Ok(Self {
            transport,
            from,
            brand,
        })
    }

    /// Renders `email` and sends it to `to` (an address already validated by the caller).
    ///
    /// # Errors
    /// [`MailError`]; the caller logs it and tells the user the message could not be sent.
    // No fields: subjects and bodies may hold codes and links, which are never logged.
    #[tracing::instrument(skip_all)]
    pub async fn send(&self, to: &str, email: &impl EmailTemplate) -> Result<(), MailError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e: lettre::address::AddressError| MailError::Build(e.to_string()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject())
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(email.text(&self.brand)?),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(email.html(&self.brand)?),
                    ),
            )
            .map_err(|e| MailError::Build(e.to_string()))?;
        match &self.transport {
            Transport::Outbox(transport, dir) => {
                let id = transport.send(message).await?;
                // The body holds codes and links: the log line names only the file.
                tracing::info!(file = %dir.join(format!("{id}.eml")).display(), "email written to the outbox");
            }
            Transport::Smtp(transport) => {
                transport.send(message).await?;
                tracing::info!("email sent");
            }
        }
        Ok(())
    }
}

/// How an email greets the user: their first name (trimmed), else their username.
#[must_use]
pub fn greeting_name(first_name: &str, username: &str) -> String {
    match first_name.trim() {
        "" => username.to_owned(),
        first => first.to_owned(),
    }
}

/// Implements [`EmailTemplate`] for `$name` through two wrappers that pair the message (`m`)
/// with the [`EmailBrand`] (`brand`): `$html` renders the HTML template `$html_path`, `$text`
/// the plain-text one `$text_path`.
macro_rules! email {
    ($name:ident, $html:ident, $html_path:literal, $text:ident, $text_path:literal, $subject:expr) => {
        #[derive(Template)]
        #[template(path = $html_path)]
        struct $html<'a> {
            m: &'a $name,
            brand: &'a EmailBrand,
        }

        #[derive(Template)]
        #[template(path = $text_path, escape = "none")]
        struct $text<'a> {
            m: &'a $name,
            brand: &'a EmailBrand,
        }

        impl EmailTemplate for $name {
            fn subject(&self) -> String {
                let subject: fn(&$name) -> String = $subject;
                subject(self)
            }
            fn html(&self, brand: &EmailBrand) -> Result<String, askama::Error> {
                $html { m: self, brand }.render()
            }
            fn text(&self, brand: &EmailBrand) -> Result<String, askama::Error> {
                $text { m: self, brand }.render()
            }
        }
    };
}

/// The 6-digit code that verifies an address, with the activation link that does the same.
#[derive(Debug)]
pub struct VerificationEmail {
    /// Greeting name.
    pub name: String,
    /// The one-time code.
    pub code: String,
    /// Minutes the code lasts.
    pub minutes: u64,
    /// The activation link.
    pub link: String,
}
email!(
    VerificationEmail,
    VerificationHtml,
    "email/verification.html",
    VerificationText,
    "email/verification.txt",
    |_| { "Confirm your email address".to_owned() }
);

/// The 6-digit code that completes a login.
#[derive(Debug)]
pub struct LoginCodeEmail {
    /// Greeting name.
    pub name: String,
    /// The one-time code.
    pub code: String,
    /// Minutes the code lasts.
    pub minutes: u64,
    /// Where the login came from (an IP address), for the reader to judge.
    pub ip: String,
}
// The code stays out of the subject: subjects show in notification previews and mail logs.
email!(
    LoginCodeEmail,
    LoginCodeHtml,
    "email/login_code.html",
    LoginCodeText,
    "email/login_code.txt",
    |_| { "Your sign-in code".to_owned() }
);

/// The password-reset link.
#[derive(Debug)]
pub struct PasswordResetEmail {
    /// Greeting name.
    pub name: String,
    /// The reset link.
    pub link: String,
    /// Minutes the link lasts.
    pub minutes: u64,
}
email!(
    PasswordResetEmail,
    PasswordResetHtml,
    "email/password_reset.html",
    PasswordResetText,
    "email/password_reset.txt",
    |_| { "Reset your password".to_owned() }
);

/// The notice that the password changed.
#[derive(Debug)]
pub struct PasswordChangedEmail {
    /// Greeting name.
    pub name: String,
    /// Where to reset the password if the reader did not change it.
    pub reset_link: String,
    /// Whether the change also revoked every token of the user (a reset always does; a change
    /// on the account page when "also sign out of applications" was ticked).
    pub applications_signed_out: bool,
}
email!(
    PasswordChangedEmail,
    PasswordChangedHtml,
    "email/password_changed.html",
    PasswordChangedText,
    "email/password_changed.txt",
    |_| { "Your password was changed".to_owned() }
);

/// The notice sent to the *previous* address after an email change (by the user or by an
/// administrator), so that the owner learns of a change meant to take the account over.
#[derive(Debug)]
pub struct EmailChangedEmail {
    /// Greeting name.
    pub name: String,
    /// The account's username.
    pub username: String,
    /// The address the message goes to (the one replaced).
    pub previous_email: String,
    /// The address now stored.
    pub new_email: String,
    /// Whether someone other than the user (an administrator, or the command line) changed it.
    pub by_admin: bool,
}
email!(
    EmailChangedEmail,
    EmailChangedHtml,
    "email/email_changed.html",
    EmailChangedText,
    "email/email_changed.txt",
    |_| { "Your email address was changed".to_owned() }
);

/// The notice that sign-in codes (the emailed second step) were switched off.
#[derive(Debug)]
pub struct LoginCodeOffEmail {
    /// Greeting name.
    pub name: String,
    /// The account's username.
    pub username: String,
    /// Where to reset the password if the reader did not do it.
    pub reset_link: String,
}
email!(
    LoginCodeOffEmail,
    LoginCodeOffHtml,
    "email/login_code_off.html",
    LoginCodeOffText,
    "email/login_code_off.txt",
    |_| { "Sign-in codes were switched off".to_owned() }
);

/// The notice that an account at an upstream identity provider was linked to the user's
/// account (issue 11): a link is a new way in, so its owner hears of every one.
#[derive(Debug)]
pub struct AccountLinkedEmail {
    /// Greeting name.
    pub name: String,
    /// The account's username.
    pub username: String,
    /// The provider's label (`Discord`, `Google`, …).
    pub provider: String,
    /// The linked account's name at the provider (may be empty).
    pub linked_as: String,
    /// The linked-accounts page, where the link can be removed.
    pub manage_link: String,
    /// Where to reset the password if the reader did not link it.
    pub reset_link: String,
}
email!(
    AccountLinkedEmail,
    AccountLinkedHtml,
    "email/account_linked.html",
    AccountLinkedText,
    "email/account_linked.txt",
    |m| { format!("A {} account was linked to your account", m.provider) }
);

#[cfg(test)]
mod tests {
    use super::{greeting_name, EmailBrand, EmailTemplate, PasswordResetEmail};
    use crate::config::Branding;
    use crate::domain::{AccentColor, BrandName, LogoUrl};

    fn reset_email() -> PasswordResetEmail {
        PasswordResetEmail {
            name: "Ann".into(),
            link: "https://id.example.com/accounts/password-reset-confirm/x/y/".into(),
            minutes: 60,
        }
    }

    #[test]
    fn emails_carry_the_brand() {
        let issuer = url::Url::parse("https://id.example.com").expect("url");
        let brand = EmailBrand::new(
            &Branding {
                name: BrandName::parse("Acme ID").expect("name"),
                logo_url: Some(LogoUrl::parse("/static/acme.svg").expect("logo")),
                accent_color: Some(AccentColor::parse("#ffd400").expect("colour")),
            },
            &issuer,
        );
        assert_eq!(
            brand.logo_url.as_deref(),
            Some("https://id.example.com/static/acme.svg")
        );
        let email = reset_email();
        let html = email.html(&brand).expect("html");
        assert!(
            html.contains("<title>Reset your password · Acme ID</title>"),
            "{html}"
        );
        assert!(
            html.contains(r#"<img src="https://id.example.com/static/acme.svg""#),
            "{html}"
        );
        assert!(html.contains("background:#ffd400;color:#000000"), "{html}");
        assert!(!html.contains("Latchkey"), "{html}");
        let text = email.text(&brand).expect("text");
        assert!(
            text.starts_with("Hello Ann,\n\nTo choose a new password"),
            "{text:?}"
        );
        assert!(
            text.contains("\n\n    https://id.example.com/accounts/password-reset-confirm/x/y/\n"),
            "{text:?}"
        );
        assert!(
            text.ends_with("stays as it is.\n\n-- \nAcme ID"),
            "{text:?}"
        );
        assert!(
            !text.contains("#ffd400") && !text.contains("acme.svg"),
            "{text:?}"
        );
    }

    #[test]
    fn emails_without_branding_look_as_before() {
        let issuer = url::Url::parse("https://id.example.com").expect("url");
        let brand = EmailBrand::new(&Branding::default(), &issuer);
        assert_eq!(brand.logo_url, None);
        let html = reset_email().html(&brand).expect("html");
        assert!(html.contains(">Latchkey</span></p>"), "{html}");
        assert!(html.contains("background:#2450c9;color:#ffffff"), "{html}");
        assert!(!html.contains("<img"), "{html}");
    }

    #[test]
    fn emails_greet_by_first_name_or_username() {
        assert_eq!(greeting_name("  ", "ann"), "ann");
        assert_eq!(greeting_name("Ann ", "ann"), "Ann");
    }
}

//! Outgoing e-mail: invitations, sign-up confirmations and password resets,
//! through the operator's SMTP server (`mail.*`), with lettre.
//!
//! Each message carries one link to the web UI whose token sits in the URL
//! fragment, so it never reaches a server log or a `Referer` header. Mail an
//! admin asked for (an invitation) is sent while they wait and they are told
//! whether it went; mail anyone can cause (sign-up, reset) goes in the
//! background, so the answer's timing does not say whether an account exists.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use icehouse_api::invitations::MailDelivery;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailConfig, MailTls};

/// One message to one address.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    public_url: String,
}

impl Mailer {
    /// `public_url` is where users reach the web UI; links start with it.
    pub fn new(config: &MailConfig, public_url: &str) -> anyhow::Result<Mailer> {
        let from: Mailbox = config.from.parse().with_context(|| format!("mail.from `{}`", config.from))?;
        let transport = match &config.smtp_host {
            None => None,
            Some(host) => {
                let builder = match config.tls {
                    MailTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
                    MailTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
                    MailTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
                };
                let port = config.smtp_port.unwrap_or(if config.tls == MailTls::Tls { 465 } else { 587 });
                let builder = builder.port(port).timeout(Some(Duration::from_secs(config.timeout_secs.max(1))));
                let builder = match (&config.username, &config.password) {
                    (Some(user), Some(password)) => {
                        builder.credentials(Credentials::new(user.clone(), password.clone()))
                    }
                    _ => builder,
                };
                Some(builder.build())
            }
        };
        Ok(Mailer { transport, from, public_url: public_url.trim_end_matches('/').to_string() })
    }

    pub fn is_configured(&self) -> bool {
        self.transport.is_some()
    }

    /// A link to a page of the web UI that takes a token.
    pub fn link(&self, page: &str, token: &str) -> String {
        format!("{}{page}#token={token}", self.public_url)
    }

    pub fn page(&self, page: &str) -> String {
        format!("{}{page}", self.public_url)
    }

    /// Sends now; the outcome, never the SMTP server's words (they are logged).
    pub async fn send(&self, mail: Mail) -> MailDelivery {
        let Some(transport) = &self.transport else { return MailDelivery::NotConfigured };
        let message = match self.message(&mail) {
            Ok(message) => message,
            Err(err) => {
                tracing::warn!(error = %err, "could not build a mail");
                return MailDelivery::Failed;
            }
        };
        match transport.send(message).await {
            Ok(_) => MailDelivery::Sent,
            Err(err) => {
                tracing::warn!(error = %err, subject = %mail.subject, "mail not delivered to the SMTP server");
                MailDelivery::Failed
            }
        }
    }

    /// Sends in the background; failures are logged.
    pub fn send_later(self: &Arc<Self>, mail: Mail) {
        let mailer = self.clone();
        tokio::spawn(async move {
            mailer.send(mail).await;
        });
    }

    fn message(&self, mail: &Mail) -> anyhow::Result<Message> {
        let to: Mailbox = mail.to.parse().context("recipient")?;
        Ok(Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())?)
    }
}

/// The messages, in plain text.
impl Mail {
    pub fn invitation(to: &str, tenant: &str, inviter: &str, role: &str, link: &str, hours: u32) -> Mail {
        Mail {
            to: to.into(),
            subject: format!("You are invited to {tenant} on Icehouse"),
            body: format!(
                "{inviter} invited you to join {tenant} on Icehouse as {role}.\n\n\
                 Accept the invitation here (the link works once, for {hours} hours):\n{link}\n\n\
                 If you did not expect this, ignore this mail.\n"
            ),
        }
    }

    pub fn confirm_signup(to: &str, tenant: &str, link: &str, hours: u32) -> Mail {
        Mail {
            to: to.into(),
            subject: "Confirm your Icehouse sign-up".into(),
            body: format!(
                "Someone, probably you, signed up for Icehouse with this address, to create {tenant}.\n\n\
                 Finish here (the link works once, for {hours} hours):\n{link}\n\n\
                 If it was not you, ignore this mail: nothing is created without it.\n"
            ),
        }
    }

    pub fn account_exists(to: &str, login: &str, reset: &str) -> Mail {
        Mail {
            to: to.into(),
            subject: "You already have an Icehouse account".into(),
            body: format!(
                "Someone, probably you, tried to sign up for Icehouse with this address, which already \
                 has an account.\n\nLog in here: {login}\nForgot your password? Reset it here: {reset}\n\n\
                 If it was not you, ignore this mail: nothing has changed.\n"
            ),
        }
    }

    pub fn password_reset(to: &str, link: &str, minutes: u32) -> Mail {
        Mail {
            to: to.into(),
            subject: "Reset your Icehouse password".into(),
            body: format!(
                "Someone, probably you, asked to reset the password of your Icehouse account.\n\n\
                 Choose a new one here (the link works once, for {minutes} minutes):\n{link}\n\n\
                 Setting it logs every session of the account out. If you did not ask, ignore this mail.\n"
            ),
        }
    }
}

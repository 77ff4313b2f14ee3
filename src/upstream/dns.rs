//! Name resolution for the endpoints a provider's discovery document names (issue 11): a remote
//! issuer's document could name a host whose DNS answer is an address on this machine or the
//! private network behind it (server-side request forgery that the IP-literal check of
//! [`crate::domain::upstream::discovered_endpoint`] cannot see). [`PublicOnly`] resolves with
//! the system resolver and keeps only public addresses ([`is_internal_ip`]); the HTTP client
//! built on it (`super::client::guarded_http_client`) connects to nothing else, and uses no
//! proxy (a proxy would resolve the name itself). IP literals skip resolvers: the literal check
//! covers them.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::upstream::is_internal_ip;

/// A resolver that answers only public addresses: the system resolver's answer
/// (`tokio::net::lookup_host`) without the internal ones; an error when none is left.
#[derive(Clone, Copy, Debug, Default)]
pub struct PublicOnly;

/// Why a name was not resolved.
#[derive(Debug, thiserror::Error)]
#[error("{0} resolves to no public address")]
pub struct NoPublicAddress(String);

impl PublicOnly {
    /// The public addresses of `host` (port 0).
    ///
    /// # Errors
    /// The resolver's error, or [`NoPublicAddress`] when every address is internal.
    pub async fn lookup(
        host: &str,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let found = tokio::net::lookup_host((host, 0)).await?;
        let public: Vec<SocketAddr> = found.filter(|a| !is_internal_ip(a.ip())).collect();
        if public.is_empty() {
            tracing::warn!(host, "a provider's endpoint resolves to no public address");
            return Err(Box::new(NoPublicAddress(host.to_owned())));
        }
        Ok(public)
    }
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Addrs = Box::new(Self::lookup(&host).await?.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn localhost_resolves_to_nothing() {
        assert!(PublicOnly::lookup("localhost").await.is_err());
        assert!(PublicOnly
            .resolve("localhost".parse().expect("a name"))
            .await
            .is_err());
    }
}

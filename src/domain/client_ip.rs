//! The client's address behind reverse proxies (`server.trusted_proxies`).
//!
//! Every IP-keyed limit and the audit log use the address [`TrustedProxies::client_ip`] finds.
//! Only a request whose TCP peer is a trusted proxy has its forwarding header read, and then
//! only the header the proxies are configured to set: a proxy that sets `X-Forwarded-For`
//! passes a client's own `Forwarded` header through untouched (and the other way round), so
//! reading both would let any client choose its address. The hops are read from the right (the
//! nearest proxy appends last) and the first one that is not a trusted proxy is the client
//! ("rightmost untrusted hop"); whatever the client wrote further left is never looked at. A hop
//! that names no address (`unknown`, an obfuscated identifier, a malformed value) ends the walk
//! at the trusted proxy that reported it: the request is attributed to that proxy, never to a
//! value anyone could choose.
//!
//! CIDRs are parsed by `ipnet`; the `Forwarded` header (RFC 7239 §4) by `rfc7239`.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// Which forwarding header the trusted proxies set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy `option forwardfor`, Caddy,
    /// Traefik, most load balancers).
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:4711"`.
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// The reverse proxies whose forwarding header is believed, and which header that is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardedHeader,
}

impl Default for TrustedProxies {
    /// No proxy is trusted: the client address is always the TCP peer.
    fn default() -> Self {
        Self {
            nets: Vec::new(),
            header: ForwardedHeader::XForwardedFor,
        }
    }
}

impl TrustedProxies {
    /// Parses `entries` (addresses such as `10.0.0.7` or `::1`, or CIDRs such as `10.0.0.0/8`
    /// or `fd00::/8`) and the header name (`x-forwarded-for` or `forwarded`, any case).
    ///
    /// # Errors
    /// A message naming the first entry that is neither an address nor a CIDR, or the header.
    pub fn parse(entries: &[String], header: &str) -> Result<Self, String> {
        let header = match header.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => ForwardedHeader::XForwardedFor,
            "forwarded" => ForwardedHeader::Forwarded,
            other => {
                return Err(format!(
                    "must be \"x-forwarded-for\" or \"forwarded\", not {other:?}"
                ))
            }
        };
        let mut nets = Vec::with_capacity(entries.len());
        for entry in entries {
            let entry = entry.trim();
            let net = match entry.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(canonical(ip)),
                    Err(_) => {
                        return Err(format!(
                            "{entry:?} is neither an IP address nor a CIDR such as 10.0.0.0/8"
                        ))
                    }
                },
            };
            nets.push(net);
        }
        Ok(Self { nets, header })
    }

    /// Whether no proxy is trusted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The header the trusted proxies set.
    #[must_use]
    pub fn header(&self) -> ForwardedHeader {
        self.header
    }

    /// Whether `ip` is a trusted proxy (IPv4-mapped IPv6 addresses count as their IPv4).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from TCP peer `peer` that carried `values`, the
    /// field lines of [`TrustedProxies::header`] in order: the rightmost hop that is not a
    /// trusted proxy (see the module documentation). `peer` itself when it is not trusted or
    /// there is no header; the leftmost hop when every hop is trusted.
    #[must_use]
    pub fn client_ip(&self, peer: IpAddr, values: &[&str]) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) || values.is_empty() {
            return peer;
        }
        let mut client = peer;
        for hop in self.hops(values).into_iter().rev() {
            match hop {
                Some(ip) if self.contains(ip) => client = ip,
                Some(ip) => return ip,
                // No address: attributed to the trusted hop that reported it.
                None => return client,
            }
        }
        client
    }

    /// The addresses in `values`, left to right; `None` for a hop that names none.
    fn hops(&self, values: &[&str]) -> Vec<Option<IpAddr>> {
        let mut hops = Vec::new();
        for value in values {
            match self.header {
                ForwardedHeader::XForwardedFor => {
                    hops.extend(value.split(',').map(|item| parse_node(item.trim())));
                }
                ForwardedHeader::Forwarded => {
                    hops.extend(rfc7239::parse(value).map(|element| {
                        element
                            .ok()
                            .and_then(|e| e.forwarded_for)
                            .and_then(|node| node.ip().copied())
                            .map(canonical)
                    }));
                }
            }
        }
        hops
    }
}

/// One `X-Forwarded-For` item: an address, optionally with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`) or in brackets (`[2001:db8::1]`).
fn parse_node(item: &str) -> Option<IpAddr> {
    let ip = item
        .parse::<IpAddr>()
        .ok()
        .or_else(|| item.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            item.strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse::<std::net::Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })?;
    Some(canonical(ip))
}

/// `ip`, with an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, as a dual-stack socket reports
/// IPv4 peers) turned into its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn proxies(entries: &[&str], header: &str) -> TrustedProxies {
        let entries: Vec<String> = entries.iter().map(|e| (*e).to_owned()).collect();
        TrustedProxies::parse(&entries, header).expect("valid")
    }

    #[test]
    fn parses_addresses_and_cidrs_and_refuses_anything_else() {
        let p = proxies(
            &[
                "10.0.0.0/8",
                "192.0.2.7",
                "fd00::/8",
                "::1",
                " 10.1.2.3/16 ",
            ],
            "X-Forwarded-For",
        );
        assert!(p.contains(ip("10.200.0.1")));
        assert!(p.contains(ip("192.0.2.7")));
        assert!(!p.contains(ip("192.0.2.8")));
        assert!(p.contains(ip("fd12::1")));
        assert!(p.contains(ip("::1")));
        assert!(p.contains(ip("::ffff:10.0.0.1")), "IPv4-mapped");
        assert!(!p.contains(ip("127.0.0.1")));
        for bad in ["10.0.0.0/33", "localhost", "10.0.0", "", "1.2.3.4/x"] {
            assert!(
                TrustedProxies::parse(&[bad.to_owned()], "forwarded").is_err(),
                "{bad:?}"
            );
        }
        assert!(TrustedProxies::parse(&[], "x-real-ip").is_err());
        assert!(TrustedProxies::default().is_empty());
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let p = proxies(&["10.0.0.1"], "x-forwarded-for");
        assert_eq!(
            p.client_ip(ip("203.0.113.9"), &["198.51.100.1"]),
            ip("203.0.113.9")
        );
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("10.0.0.1"), &["198.51.100.1"]),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn x_forwarded_for_is_read_from_the_right() {
        let p = proxies(&["10.0.0.0/8"], "x-forwarded-for");
        let peer = ip("10.0.0.1");
        // The client's own (spoofed) entries on the left are never reached.
        assert_eq!(
            p.client_ip(peer, &["1.1.1.1, 2.2.2.2, 198.51.100.7"]),
            ip("198.51.100.7")
        );
        // Several trusted hops are skipped.
        assert_eq!(
            p.client_ip(peer, &["1.1.1.1, 198.51.100.7, 10.2.3.4, 10.9.9.9"]),
            ip("198.51.100.7")
        );
        // Several field lines are one list, in order.
        assert_eq!(
            p.client_ip(peer, &["1.1.1.1", "198.51.100.7, 10.2.3.4"]),
            ip("198.51.100.7")
        );
        // Every hop trusted: the leftmost.
        assert_eq!(p.client_ip(peer, &["10.5.5.5, 10.2.3.4"]), ip("10.5.5.5"));
        // No header: the peer.
        assert_eq!(p.client_ip(peer, &[]), peer);
        // Ports, IPv6 (bare, bracketed, with a port), IPv4-mapped.
        assert_eq!(
            p.client_ip(peer, &["198.51.100.7:4711"]),
            ip("198.51.100.7")
        );
        assert_eq!(p.client_ip(peer, &["2001:db8::1"]), ip("2001:db8::1"));
        assert_eq!(p.client_ip(peer, &["[2001:db8::1]"]), ip("2001:db8::1"));
        assert_eq!(
            p.client_ip(peer, &["[2001:db8::1]:4711"]),
            ip("2001:db8::1")
        );
        assert_eq!(
            p.client_ip(peer, &["::ffff:198.51.100.7"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            p.client_ip(ip("::ffff:10.0.0.1"), &["198.51.100.7"]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_hop_without_an_address_is_attributed_to_the_proxy_that_reported_it() {
        let p = proxies(&["10.0.0.0/8"], "x-forwarded-for");
        let peer = ip("10.0.0.1");
        assert_eq!(p.client_ip(peer, &["198.51.100.7, garbage"]), peer);
        assert_eq!(
            p.client_ip(peer, &["198.51.100.7, unknown, 10.2.3.4"]),
            ip("10.2.3.4")
        );
        assert_eq!(p.client_ip(peer, &[""]), peer);
        assert_eq!(p.client_ip(peer, &["1.2.3.4.5"]), peer);
        assert_eq!(p.client_ip(peer, &["198.51.100.7,"]), peer);
        assert_eq!(p.client_ip(peer, &["300.1.1.1"]), peer);
    }

    #[test]
    fn forwarded_is_read_from_the_right() {
        let p = proxies(&["10.0.0.0/8", "2001:db8:ffff::/48"], "forwarded");
        let peer = ip("10.0.0.1");
        assert_eq!(
            p.client_ip(
                peer,
                &["for=1.1.1.1, for=198.51.100.7;proto=https;by=10.0.0.1"]
            ),
            ip("198.51.100.7")
        );
        assert_eq!(
            p.client_ip(peer, &["for=\"[2001:db8:cafe::17]:4711\", For=10.3.3.3"]),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            p.client_ip(peer, &["for=\"198.51.100.7:4711\""]),
            ip("198.51.100.7")
        );
        assert_eq!(
            p.client_ip(peer, &["for=1.1.1.1", "for=\"[2001:db8:ffff::2]\""]),
            ip("1.1.1.1")
        );
        // Obfuscated identifiers and `unknown` (RFC 7239 §6.2, §6.3) name no address.
        assert_eq!(p.client_ip(peer, &["for=198.51.100.7, for=_hidden"]), peer);
        assert_eq!(p.client_ip(peer, &["for=198.51.100.7, for=unknown"]), peer);
        assert_eq!(
            p.client_ip(peer, &["for=198.51.100.7, for=_hidden, for=10.4.4.4"]),
            ip("10.4.4.4")
        );
        // Malformed elements, an element without `for`.
        assert_eq!(p.client_ip(peer, &["for=198.51.100.7, nonsense"]), peer);
        assert_eq!(p.client_ip(peer, &["for=198.51.100.7, proto=https"]), peer);
        assert_eq!(
            p.client_ip(peer, &["for=2001:db8::1"]),
            peer,
            "IPv6 must be quoted"
        );
        // A `Forwarded`-shaped value is no `X-Forwarded-For` item.
        let xff = proxies(&["10.0.0.0/8"], "x-forwarded-for");
        assert_eq!(xff.client_ip(peer, &["for=198.51.100.7"]), peer);
    }
}

//! Property and fuzz tests (proptest, stable Rust) for every parser of outside input: form bodies
//! and query strings with duplicate parameters ([`crate::oauth::params`]), HTTP Basic client
//! credentials ([`crate::oauth::client_auth`]), redirect URIs, scope strings, PKCE values
//! ([`crate::domain`]), `id_token_hint`s ([`crate::oidc::keys::KeyStore::verify`], what
//! `/o/logout/` runs), signed account links ([`crate::accounts::links`]) and upstream provider
//! settings from the console's form ([`crate::config::upstream_settings`]).
//!
//! Properties, not only "does not panic": round trips, idempotence, and refusal of whatever the
//! grammar forbids. Each test's case count is chosen for its cost so that `cargo test` spends a
//! few seconds here; `LATCHKEY_FUZZ_SCALE=N` multiplies every count (`.ci/run` runs a bounded
//! pass of about a minute with it). proptest shrinks a failure to a minimal input and records it
//! in `proptest-regressions/properties.txt` (committed, replayed first on every run); each one
//! found so far also has a named regression test below.
//!

use std::sync::OnceLock;

use proptest::prelude::*;

/// The case count for a test: `base` × `LATCHKEY_FUZZ_SCALE` (default 1).
fn cases(base: u32) -> ProptestConfig {
    let scale = std::env::var("LATCHKEY_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    ProptestConfig::with_cases(base.saturating_mul(scale))
}

/// Any string without NUL, up to `max` characters (any Unicode scalar).
fn text(max: usize) -> impl Strategy<Value = String> {
    // Mapped rather than filtered: a filter's rejects add up at high case counts.
    let no_nul = any::<char>().prop_map(|c| if c == '\0' { '\u{1}' } else { c });
    proptest::collection::vec(no_nul, 0..=max).prop_map(|chars| chars.into_iter().collect())
}

/// Bytes biased towards what form parsers trip on.
fn form_bytes() -> impl Strategy<Value = Vec<u8>> {
    let interesting = prop_oneof![
        Just(b'&'),
        Just(b'='),
        Just(b'%'),
        Just(b'+'),
        Just(b'0'),
        Just(b'F'),
        Just(b'a'),
        Just(0xff_u8),
        Just(0xc3_u8),
        Just(0_u8),
        any::<u8>(),
    ];
    proptest::collection::vec(interesting, 0..200)
}

fn form_encode(pairs: &[(String, String)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        out.append_pair(name, value);
    }
    out.finish()
}

const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

mod params {
    use super::*;
    use crate::oauth::Params;

    /// Distinct names (≤ 128 bytes) with values, some empty.
    fn unique_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::btree_map(text(24), text(40), 0..12)
            .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #![proptest_config(cases(256))]

        /// Encoding a set of distinct parameters and parsing it gives them back, empty values
        /// dropped (RFC 6749 §3.1); as a body and as a query string alike.
        #[test]
        fn forms_round_trip(pairs in unique_pairs()) {
            let body = form_encode(&pairs);
            let parsed = Params::from_form(FORM, body.as_bytes()).expect("a valid form");
            prop_assert_eq!(&parsed, &Params::from_query(&body).expect("valid query"));
            for (name, value) in &pairs {
                let expected = (!value.is_empty()).then_some(value.as_str());
                prop_assert_eq!(parsed.get(name), expected);
            }
            prop_assert_eq!(
                parsed.iter().count(),
                pairs.iter().filter(|(_, v)| !v.is_empty()).count()
            );
        }

        /// A repeated name is refused wherever it is and whatever the values (RFC 6749 §3.1),
        /// even when one copy is empty.
        #[test]
        fn repeated_parameters_are_refused(
            pairs in unique_pairs().prop_filter("one pair", |p| !p.is_empty()),
            pick in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            value in text(10),
        ) {
            let mut pairs = pairs;
            let name = pairs[pick.index(pairs.len())].0.clone();
            pairs.insert(at.index(pairs.len() + 1), (name, value));
            let body = form_encode(&pairs);
            prop_assert!(Params::from_form(FORM, body.as_bytes()).is_err());
        }

        /// Whatever the bytes: no panic; what is accepted has no NUL, no empty value, no name
        /// over 128 bytes, and parsing its re-encoding gives the same (idempotence).
        #[test]
        fn arbitrary_bodies_parse_to_clean_parameters(body in form_bytes()) {
            if let Ok(parsed) = Params::from_form(FORM, &body) {
                let pairs: Vec<(String, String)> = parsed
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                for (name, value) in &pairs {
                    prop_assert!(!value.is_empty());
                    prop_assert!(!name.contains('\0') && !value.contains('\0'));
                    prop_assert!(name.len() <= 128);
                }
                let again = Params::from_form(FORM, form_encode(&pairs).as_bytes());
                prop_assert_eq!(again.expect("re-encoded form"), parsed);
            }
        }

        /// NUL, invalid UTF-8 (raw or percent-encoded) and over-long names are refused
        /// wherever they appear.
        #[test]
        fn forbidden_content_is_refused_anywhere(
            pairs in unique_pairs(),
            at in any::<prop::sample::Index>(),
            poison in prop_oneof![
                Just("%00".to_owned()),
                Just("%FF".to_owned()),
                Just("%C3%28".to_owned()),
                Just("%ED%A0%80".to_owned()),
                Just(format!("{}=x", "n".repeat(129))),
            ],
        ) {
            let body = form_encode(&pairs);
            // Insert at a pair boundary as a value, or as a whole pair.
            let mut parts: Vec<String> =
                body.split('&').filter(|p| !p.is_empty()).map(str::to_owned).collect();
            let i = at.index(parts.len() + 1);
            let item = if poison.contains('=') { poison } else { format!("x{i}={poison}") };
            parts.insert(i, item);
            prop_assert!(Params::from_form(FORM, parts.join("&").as_bytes()).is_err());
            let mut raw = parts.join("&").into_bytes();
            raw.extend_from_slice(b"&y=\xff");
            prop_assert!(Params::from_form(FORM, &raw).is_err());
        }

        /// Only `application/x-www-form-urlencoded` (any case, any parameters) is a form.
        #[test]
        fn only_form_media_types_are_accepted(
            media in "[a-zA-Z/+.-]{0,40}",
            upper in any::<bool>(),
            suffix in "(; ?[a-z]{1,8}=[a-zA-Z0-9-]{1,8})?",
        ) {
            let form = if upper { "APPLICATION/X-WWW-FORM-URLENCODED" } else { "application/x-www-form-urlencoded" };
            let canonical = format!("{form}{suffix}");
            prop_assert!(Params::from_form(Some(&canonical), b"a=b").is_ok());
            let accepted = Params::from_form(Some(&format!("{media}{suffix}")), b"a=b").is_ok();
            prop_assert_eq!(accepted, media.eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        }
    }
}

mod basic_credentials {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use secrecy::ExposeSecret;

    use super::*;
    use crate::oauth::client_auth::{presented_client, PresentedClient, MAX_CLIENT_ID_BYTES};
    use crate::oauth::Params;

    /// RFC 6749 §2.3.1: each part form-urlencoded, then `id:secret` in base64.
    fn basic(id: &str, secret: &str) -> String {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
        )
    }

    fn body(pairs: &[(&str, &str)]) -> Params {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Params::from_form(FORM, form_encode(&owned).as_bytes()).expect("form")
    }

    proptest! {
        #![proptest_config(cases(256))]

        /// Any id and secret (colons, `+`, `%`, Unicode) survive the encoding, whatever the
        /// case of the scheme; the body may repeat the same client_id but not contradict it
        /// or add a client_secret.
        #[test]
        fn basic_credentials_round_trip(
            id in text(40),
            secret in text(60),
            scheme in "[bB][aA][sS][iI][cC]",
        ) {
            let header = basic(&id, &secret).replacen("Basic", &scheme, 1);
            match presented_client(Some(&header), &body(&[])).expect("valid credentials") {
                PresentedClient::Basic { id: got, secret: got_secret } => {
                    prop_assert_eq!(got, id.clone());
                    prop_assert_eq!(got_secret.expose_secret(), secret.as_str());
                }
                other => prop_assert!(false, "not Basic: {other:?}"),
            }
            if !id.is_empty() {
                prop_assert!(presented_client(Some(&header), &body(&[("client_id", &id)])).is_ok());
                let contradicting = format!("{id}x");
                prop_assert!(presented_client(Some(&header), &body(&[("client_id", &contradicting)])).is_err());
            }
            prop_assert!(presented_client(Some(&header), &body(&[("client_secret", "s")])).is_err());
        }

        /// A client_id longer than 255 bytes is refused before any lookup, by either method.
        #[test]
        fn long_client_ids_are_refused(id in "[a-z]{256,300}") {
            prop_assert!(id.len() > MAX_CLIENT_ID_BYTES);
            prop_assert!(presented_client(Some(&basic(&id, "s")), &body(&[])).is_err());
            prop_assert!(presented_client(None, &body(&[("client_id", &id)])).is_err());
        }

        /// Arbitrary headers never panic, and only the Basic scheme is ever accepted.
        #[test]
        fn arbitrary_authorization_headers_are_handled(header in text(80)) {
            if presented_client(Some(&header), &body(&[])).is_ok() {
                prop_assert!(header.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("basic ")));
            }
        }
    }
}

mod redirect_uris {
    use super::*;
    use crate::domain::RedirectUri;

    fn host() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9-]{0,10}(\\.[a-z][a-z0-9-]{0,10}){1,3}"
            .prop_filter("no punycode labels", |h: &String| {
                !h.split('.').any(|l| l.starts_with("xn--"))
            })
    }

    fn path() -> impl Strategy<Value = String> {
        "(/[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,12}){0,4}(\\?[A-Za-z0-9=&._~-]{0,20})?"
    }

    proptest! {
        #![proptest_config(cases(256))]

        /// What is accepted is kept byte for byte (exact matching, RFC 9700 §4.1.3) and obeys
        /// every rule: no whitespace, control character or fragment, an absolute URI without
        /// credentials, https, http only on loopback, or a reverse-domain private scheme.
        #[test]
        fn arbitrary_strings_are_accepted_only_when_safe(raw in prop_oneof![
            text(60),
            "(https?|javascript|data|com\\.example\\.app|myapp):[ -~]{0,40}",
        ]) {
            if let Ok(uri) = RedirectUri::parse(&raw) {
                prop_assert_eq!(uri.as_str(), raw.as_str());
                prop_assert!(!raw.chars().any(|c| c.is_whitespace() || c.is_control()));
                prop_assert!(!raw.contains('#') && raw.len() <= 2000);
                let url = url::Url::parse(&raw).expect("absolute");
                prop_assert!(url.username().is_empty() && url.password().is_none());
                match url.scheme() {
                    "https" => prop_assert!(url.host().is_some()),
                    "http" => prop_assert!(matches!(
                        url.host_str(),
                        Some("127.0.0.1" | "[::1]" | "localhost")
                    ) || url.host_str().is_some_and(|h| h.starts_with("127."))),
                    scheme => prop_assert!(scheme.contains('.')),
                }
            }
        }

        /// https URIs are accepted; the same on http only for loopback; a fragment, a space or
        /// credentials anywhere make any of them refused.
        #[test]
        fn generated_uris_follow_the_rules(
            host in host(),
            path in path(),
            port in proptest::option::of(1_u16..),
            fragment in "[a-z]{0,5}",
            at in any::<prop::sample::Index>(),
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let https = format!("https://{host}{port}{path}");
            prop_assert_eq!(RedirectUri::parse(&https).map(|u| u.to_string()), Ok(https.clone()));
            let plain = format!("http://{host}{port}{path}");
            prop_assert!(RedirectUri::parse(&plain).is_err());
            for loopback in ["127.0.0.1", "[::1]", "localhost"] {
                let uri = format!("http://{loopback}{port}{path}");
                prop_assert!(RedirectUri::parse(&uri).is_ok(), "{}", uri);
            }
            let with_fragment = format!("{https}#{fragment}");
            prop_assert!(RedirectUri::parse(&with_fragment).is_err());
            let with_credentials = format!("https://user:pw@{host}{path}");
            prop_assert!(RedirectUri::parse(&with_credentials).is_err());
            let mut spaced = https.clone();
            let i = at.index(spaced.len() + 1);
            if spaced.is_char_boundary(i) {
                spaced.insert(i, ' ');
                prop_assert!(RedirectUri::parse(&spaced).is_err());
            }
        }
    }
}

mod scopes {
    use super::*;
    use crate::domain::ScopeSet;

    /// RFC 6749 §3.3 `scope-token` characters.
    fn token() -> impl Strategy<Value = String> {
        "[!#-\\[\\]-~]{1,12}"
    }

    proptest! {
        #![proptest_config(cases(256))]

        /// Parsing is canonical: the string form re-parses to the same set, sorted, single
        /// spaced; any order, repetition or extra spaces give the same set.
        #[test]
        fn scope_strings_round_trip(
            tokens in proptest::collection::vec(token(), 0..8),
            spaces in proptest::collection::vec(1_usize..4, 8),
        ) {
            let mut raw = String::new();
            for (t, n) in tokens.iter().zip(spaces.iter().cycle()) {
                raw.push_str(t);
                raw.push_str(&" ".repeat(*n));
            }
            let set = ScopeSet::parse(&raw).expect("valid tokens");
            let canonical = set.to_string();
            prop_assert_eq!(&ScopeSet::parse(&canonical).expect("canonical"), &set);
            let mut sorted: Vec<&str> = tokens.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            sorted.dedup();
            prop_assert_eq!(canonical, sorted.join(" "));
            prop_assert_eq!(ScopeSet::from_stored(&raw), set.clone());
            let mut reversed = tokens.clone();
            reversed.reverse();
            prop_assert_eq!(ScopeSet::parse(&reversed.join(" ")).expect("valid"), set);
        }

        /// A token with a character the grammar forbids (quote, backslash, control, DEL,
        /// non-ASCII) is refused wherever it is; `from_stored` drops only that token.
        #[test]
        fn forbidden_characters_are_refused(
            tokens in proptest::collection::vec(token(), 0..5),
            bad in prop_oneof![
                Just('"'), Just('\\'), Just('\u{7f}'), Just('\t'), Just('\u{0}'),
                any::<char>().prop_filter("outside scope-token", |c| !crate::domain::is_scope_char(*c) && *c != ' '),
            ],
            at in any::<prop::sample::Index>(),
        ) {
            let mut with_bad = tokens.clone();
            let poisoned = format!("a{bad}b");
            with_bad.insert(at.index(tokens.len() + 1), poisoned);
            prop_assert!(ScopeSet::parse(&with_bad.join(" ")).is_err());
            prop_assert_eq!(
                ScopeSet::from_stored(&with_bad.join(" ")),
                ScopeSet::parse(&tokens.join(" ")).expect("valid")
            );
        }

        /// The set algebra the token endpoint relies on (RFC 6749 §3.3 negotiation).
        #[test]
        fn scope_set_algebra(
            a in proptest::collection::vec(token(), 0..6),
            b in proptest::collection::vec(token(), 0..6),
        ) {
            let a = ScopeSet::parse(&a.join(" ")).expect("valid");
            let b = ScopeSet::parse(&b.join(" ")).expect("valid");
            let union = a.union(&b);
            prop_assert!(a.is_subset(&union) && b.is_subset(&union));
            let only_a = a.difference(&b);
            prop_assert!(only_a.is_subset(&a));
            prop_assert!(only_a.iter().all(|s| !b.contains(s)));
            prop_assert_eq!(only_a.union(&b), union);
        }

        /// Arbitrary input: no panic, and what parses has only grammatical tokens.
        #[test]
        fn arbitrary_scope_strings(raw in text(60)) {
            if let Ok(set) = ScopeSet::parse(&raw) {
                prop_assert!(set.iter().all(|t| !t.is_empty() && t.chars().all(crate::domain::is_scope_char)));
            }
        }
    }
}

mod pkce_values {
    use std::borrow::Cow;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use oxide_auth::code_grant::extensions::Pkce;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::domain::pkce;

    fn verifier() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._~-]{43,128}"
    }

    fn s256(verifier: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    }

    proptest! {
        #![proptest_config(cases(256))]

        /// Every grammatical verifier is valid, so is its S256 challenge, and that challenge
        /// verifies this verifier and no other (RFC 7636 §4.6).
        #[test]
        fn s256_round_trips(v in verifier(), other in verifier()) {
            prop_assert!(pkce::is_valid(&v));
            let challenge = s256(&v);
            prop_assert!(pkce::is_valid(&challenge));
            let pkce = Pkce::required();
            let method = pkce
                .challenge(Some(Cow::Borrowed("S256")), Some(Cow::Borrowed(challenge.as_str())))
                .expect("S256 accepted")
                .expect("a method is stored");
            prop_assert!(pkce.verify(Some(method.clone()), Some(Cow::Borrowed(v.as_str()))).is_ok());
            if other != v {
                prop_assert!(pkce.verify(Some(method), Some(Cow::Borrowed(other.as_str()))).is_err());
            }
        }

        /// The grammar exactly: 43 to 128 characters, each unreserved; nothing else.
        #[test]
        fn the_grammar_is_exact(raw in prop_oneof![text(140), "[A-Za-z0-9._~+/= -]{30,140}"]) {
            let expected = (43..=128).contains(&raw.chars().count())
                && raw.chars().all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c));
            prop_assert_eq!(pkce::is_valid(&raw), expected);
        }
    }
}

mod id_token_hints {
    use std::time::Duration;

    use serde_json::{json, Value};

    use super::*;
    use crate::db::{DatabaseUrl, Db};
    use crate::oidc::keys::{JwtVerifyError, KeyStore};
    use crate::oidc::{SigningAlg, ACCESS_TOKEN_TYP, ID_TOKEN_TYP};

    const ISSUER: &str = "https://id.example";

    struct Fixture {
        runtime: tokio::runtime::Runtime,
        keys: KeyStore,
        /// ID tokens signed with each algorithm, and an RFC 9068 access token.
        tokens: Vec<String>,
        access_token: String,
        _dir: tempfile::TempDir,
    }

    /// One key store on a temporary SQLite database for every case (keys are slow to make).
    fn fixture() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            let dir = tempfile::tempdir().expect("dir");
            let url = DatabaseUrl::Sqlite(dir.path().join("keys.db"));
            let (keys, tokens, access_token) = runtime.block_on(async {
                let db = Db::connect(&url, 2).expect("db");
                db.migrate().await.expect("migrate");
                let keys = KeyStore::new(db, &[9; 64], Duration::from_secs(3600)).expect("store");
                keys.ensure().await.expect("keys");
                let claims = json!({"iss": ISSUER, "sub": "user-1", "aud": "client-1", "exp": 4_000_000_000_u64, "iat": 1});
                let mut tokens = Vec::new();
                for alg in SigningAlg::ALL {
                    tokens.push(keys.sign(alg, ID_TOKEN_TYP, &claims).await.expect("sign"));
                }
                let access = keys.sign(SigningAlg::Rs256, ACCESS_TOKEN_TYP, &claims).await.expect("sign");
                (keys, tokens, access)
            });
            Fixture { runtime, keys, tokens, access_token, _dir: dir }
        })
    }

    fn verify(token: &str, allow_expired: bool) -> Result<Value, JwtVerifyError> {
        let f = fixture();
        f.runtime.block_on(
            f.keys
                .verify::<Value>(token, ID_TOKEN_TYP, ISSUER, allow_expired),
        )
    }

    proptest! {
        #![proptest_config(cases(48))]

        /// Our ID tokens verify; changing any one character of one (to any other base64url
        /// character or a dot), cutting it, or extending it makes it fail (no malleable
        /// encoding, no ignored trailing data).
        #[test]
        fn any_change_to_a_hint_is_refused(
            which in 0_usize..3,
            at in any::<prop::sample::Index>(),
            with in "[A-Za-z0-9_.-]",
            cut in any::<prop::sample::Index>(),
            tail in "[A-Za-z0-9_.-]{1,4}",
        ) {
            let token = &fixture().tokens[which];
            prop_assert_eq!(&verify(token, false).expect("genuine")["sub"], "user-1");
            let i = at.index(token.len());
            let c = with.chars().next().expect("one char");
            if token.as_bytes()[i] != c as u8 {
                let mut changed = token.clone();
                changed.replace_range(i..=i, &with);
                prop_assert!(verify(&changed, true).is_err(), "{}", changed);
            }
            prop_assert!(verify(&token[..cut.index(token.len())], true).is_err());
            let extended = format!("{token}{tail}");
            prop_assert!(verify(&extended, true).is_err());
        }

        /// Arbitrary text, and JWT-shaped text with forged headers (`alg: none`, another
        /// `typ`, an unknown or missing `kid`), never verifies and never panics.
        #[test]
        fn forged_hints_are_refused(
            raw in text(120),
            alg in prop_oneof![Just("none"), Just("HS256"), Just("RS256"), Just("ES256")],
            typ in prop_oneof![Just("JWT"), Just("at+jwt"), Just("")],
            kid in proptest::option::of("[A-Za-z0-9_-]{0,43}"),
        ) {
            prop_assert!(verify(&raw, true).is_err());
            use base64::Engine;
            let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            let mut header = json!({"alg": alg, "typ": typ});
            if let Some(kid) = &kid {
                header["kid"] = json!(kid);
            }
            let claims = json!({"iss": ISSUER, "sub": "x", "exp": 4_000_000_000_u64});
            let genuine = &fixture().tokens[0];
            let signature = genuine.rsplit('.').next().expect("signature");
            for sig in ["", signature] {
                let forged = format!("{}.{}.{sig}", b64(&header), b64(&claims));
                prop_assert!(verify(&forged, true).is_err());
            }
        }
    }

    #[test]
    fn access_tokens_and_expired_hints() {
        // An RFC 9068 access token is not an ID token, though the same key signed it.
        assert!(verify(&fixture().access_token, true).is_err());
        let f = fixture();
        let expired = f.runtime.block_on(f.keys.sign(
            SigningAlg::Es256,
            ID_TOKEN_TYP,
            &json!({"iss": ISSUER, "sub": "u", "aud": "c", "exp": 1_000_000_000_u64}),
        ));
        let expired = expired.expect("sign");
        assert!(verify(&expired, false).is_err());
        assert!(
            verify(&expired, true).is_ok(),
            "logout accepts expired hints"
        );
    }
}

mod forwarded_headers {
    //! `TrustedProxies::client_ip`: the address every IP-keyed limit and the audit log use.

    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::{cases, text};
    use crate::domain::client_ip::TrustedProxies;

    /// Trusted: 10.0.0.0/8 and fd00::/8.
    fn proxies(header: &str) -> TrustedProxies {
        TrustedProxies::parse(&["10.0.0.0/8".to_owned(), "fd00::/8".to_owned()], header)
            .expect("valid")
    }

    fn trusted() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 3]>().prop_map(|[a, b, c]| IpAddr::V4(Ipv4Addr::new(10, a, b, c))),
            any::<[u16; 7]>().prop_map(|s| IpAddr::V6(Ipv6Addr::new(
                0xfd00, s[0], s[1], s[2], s[3], s[4], s[5], s[6]
            ))),
        ]
    }

    /// Public addresses (never in the trusted ranges).
    fn untrusted() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 3]>().prop_map(|[a, b, c]| IpAddr::V4(Ipv4Addr::new(192, a, b, c))),
            any::<[u16; 7]>().prop_map(|s| IpAddr::V6(Ipv6Addr::new(
                0x2001, s[0], s[1], s[2], s[3], s[4], s[5], s[6]
            ))),
        ]
    }

    /// An `X-Forwarded-For` item for `ip`, with or without a port.
    fn xff_item(ip: IpAddr, port: Option<u16>) -> String {
        match (ip, port) {
            (IpAddr::V4(v4), Some(p)) => format!("{v4}:{p}"),
            (IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
            (ip, None) => ip.to_string(),
        }
    }

    /// A `Forwarded` element for `ip` (RFC 7239 section 6: IPv6 in brackets and quotes).
    fn forwarded_item(ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => format!("for={v4}"),
            IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
        }
    }

    proptest! {
        #![proptest_config(cases(256))]

        /// From a peer that is not a trusted proxy, no header is ever believed.
        #[test]
        fn an_untrusted_peer_is_the_client_whatever_it_sends(
            peer in untrusted(),
            values in proptest::collection::vec(text(80), 0..3),
        ) {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            for header in ["x-forwarded-for", "forwarded"] {
                prop_assert_eq!(proxies(header).client_ip(peer, &values), peer);
            }
        }

        /// Behind a chain of trusted proxies, the rightmost untrusted hop is the client, and
        /// nothing the client wrote further left (however many hops, whatever they say) changes
        /// that.
        #[test]
        fn the_rightmost_untrusted_hop_is_the_client(
            left in proptest::collection::vec(text(20), 0..4),
            client in untrusted(),
            port in proptest::option::of(any::<u16>()),
            chain in proptest::collection::vec(trusted(), 0..4),
            peer in trusted(),
        ) {
            let mut items: Vec<String> = left.iter().map(|l| l.replace(',', " ")).collect();
            items.push(xff_item(client, port));
            items.extend(chain.iter().map(|ip| xff_item(*ip, None)));
            let header = items.join(", ");
            prop_assert_eq!(proxies("x-forwarded-for").client_ip(peer, &[header.as_str()]), client);

            let mut elements: Vec<String> = Vec::new();
            elements.push(forwarded_item(client));
            elements.extend(chain.iter().map(|ip| forwarded_item(*ip)));
            let header = elements.join(", ");
            prop_assert_eq!(proxies("forwarded").client_ip(peer, &[header.as_str()]), client);
        }

        /// Arbitrary header text never panics, and the answer is the peer or an address the
        /// text names: never one made up.
        #[test]
        fn arbitrary_header_text_gives_the_peer_or_a_named_address(
            peer in trusted(),
            values in proptest::collection::vec(text(120), 1..3),
        ) {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            for header in ["x-forwarded-for", "forwarded"] {
                let ip = proxies(header).client_ip(peer, &values);
                let named = values.iter().any(|v| {
                    v.contains(&ip.to_string())
                        || matches!(ip, IpAddr::V6(v6) if v.to_ascii_lowercase().contains(&v6.to_string()))
                });
                prop_assert!(ip == peer || named, "{} from {:?}", ip, values);
            }
        }
    }
}

mod account_links {
    use chrono::{DateTime, TimeDelta, Utc};

    use super::*;
    use crate::accounts::links::{decode_uid, encode_uid, LinkPurpose, LinkSigner};
    use crate::db::users::UserRow;

    fn user(id: String, email: String, hash: Option<String>, verified: bool) -> UserRow {
        UserRow {
            id,
            username: "u".into(),
            email,
            first_name: String::new(),
            last_name: String::new(),
            password_hash: hash,
            is_active: true,
            is_staff: false,
            is_superuser: false,
            email_verified: verified,
            date_joined: crate::db::now(),
            last_login: None,
            sessions_valid_after: None,
            mfa_enabled: false,
        }
    }

    fn purpose() -> impl Strategy<Value = LinkPurpose> {
        prop_oneof![
            Just(LinkPurpose::Activation),
            Just(LinkPurpose::PasswordReset)
        ]
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("in range")
    }

    proptest! {
        #![proptest_config(cases(256))]

        /// A link verifies for its purpose, user and state until it expires, and never after
        /// the state it dies with changes or for the other purpose.
        #[test]
        fn links_round_trip_until_expiry_or_state_change(
            id in text(40),
            email in text(30),
            hash in proptest::option::of(text(30)),
            purpose in purpose(),
            issued in 0_i64..4_000_000_000,
            max_age in 1_i64..1_000_000,
            elapsed in 0_i64..2_000_000,
        ) {
            let signer = LinkSigner::new(b"secret");
            let u = user(id, email, hash, false);
            let token = signer.make(purpose, &u, at(issued));
            let now = at(issued + elapsed);
            prop_assert_eq!(signer.check(purpose, &u, &token, max_age, now), elapsed <= max_age);
            let other = match purpose {
                LinkPurpose::Activation => LinkPurpose::PasswordReset,
                LinkPurpose::PasswordReset => LinkPurpose::Activation,
            };
            prop_assert!(!signer.check(other, &u, &token, max_age, at(issued)));
            let mut changed = u.clone();
            match purpose {
                LinkPurpose::Activation => changed.email_verified = true,
                LinkPurpose::PasswordReset => changed.last_login = Some(crate::db::now()),
            }
            prop_assert!(!signer.check(purpose, &changed, &token, max_age, at(issued)));
            prop_assert!(!LinkSigner::new(b"other").check(purpose, &u, &token, max_age, at(issued)));
        }

        /// Only the exact token verifies: any change of one character, a sign, a leading zero
        /// or upper-case digits in the time, is refused (the grammar is lower-case base36
        /// without leading zeros, then 32 lower-case hex digits).
        #[test]
        fn only_the_exact_token_verifies(
            purpose in purpose(),
            issued in 1_i64..4_000_000_000,
            pos in any::<prop::sample::Index>(),
            with in "[0-9a-zA-Z+-]",
            variant in 0_usize..4,
        ) {
            let signer = LinkSigner::new(b"secret");
            let u = user("id-1".into(), "a@example.com".into(), Some("h".into()), false);
            let token = signer.make(purpose, &u, at(issued));
            let now = at(issued);
            prop_assert!(signer.check(purpose, &u, &token, 60, now));
            let (time, mac) = token.split_once('-').expect("time-mac");
            let variant = match variant {
                0 => format!("+{time}-{mac}"),
                1 => format!("0{time}-{mac}"),
                2 => format!("{}-{mac}", time.to_ascii_uppercase()),
                _ => {
                    let i = pos.index(token.len());
                    let mut changed = token.clone();
                    changed.replace_range(i..=i, &with);
                    changed
                }
            };
            if variant != token {
                prop_assert!(!signer.check(purpose, &u, &variant, 60, now), "{}", variant);
            }
        }

        /// Arbitrary tokens and uids never panic; a decoded uid never holds NUL or another
        /// control character (it goes into a database query), and ids round-trip within the
        /// 100-character bound on uids.
        #[test]
        fn arbitrary_tokens_and_uids(token in text(60), uid in "[A-Za-z0-9_=-]{0,120}", id in text(30)) {
            let signer = LinkSigner::new(b"secret");
            let u = user("id".into(), "e".into(), None, false);
            let _ = signer.check(LinkPurpose::Activation, &u, &token, 60, Utc::now() + TimeDelta::days(1));
            if let Some(decoded) = decode_uid(&uid) {
                prop_assert!(!decoded.chars().any(char::is_control));
            }
            // A uid is at most 100 characters (ours are UUIDs: 48), and never a control character.
            let encoded = encode_uid(&id);
            let expected = (!id.chars().any(char::is_control) && encoded.len() <= 100).then(|| id.clone());
            prop_assert_eq!(decode_uid(&encoded), expected);
        }
    }

    /// Found by `only_the_exact_token_verifies`: `i64::from_str_radix` accepts `+`, upper
    /// case and leading zeros, so one link had many spellings that all verified.
    #[test]
    fn regression_the_issue_time_has_one_spelling() {
        let signer = LinkSigner::new(b"secret");
        let u = user(
            "id-1".into(),
            "a@example.com".into(),
            Some("h".into()),
            false,
        );
        let token = signer.make(LinkPurpose::PasswordReset, &u, at(1_790_000_000));
        let (time, mac) = token.split_once('-').expect("time-mac");
        for variant in [
            format!("+{time}-{mac}"),
            format!("0{time}-{mac}"),
            format!("{}-{mac}", time.to_ascii_uppercase()),
        ] {
            assert!(!signer.check(
                LinkPurpose::PasswordReset,
                &u,
                &variant,
                60,
                at(1_790_000_000)
            ));
        }
    }

    /// Found by `arbitrary_tokens_and_uids`: a uid decoding to NUL reached the user lookup,
    /// which PostgreSQL refuses with an error (a 500 on the activation page).
    #[test]
    fn regression_uids_with_control_characters_are_not_user_ids() {
        assert_eq!(decode_uid(&encode_uid("\0")), None);
        assert_eq!(decode_uid("AA"), None);
        assert_eq!(decode_uid(&encode_uid("a\u{7}b")), None);
    }
}

mod upstream_settings {
    use std::collections::BTreeMap;

    use secrecy::SecretString;

    use super::*;
    use crate::config::{upstream_settings, RawUpstream};

    /// The settings' names, as the problems name them.
    const FIELDS: [&str; 19] = [
        "id",
        "kind",
        "label",
        "client_id",
        "client_secret",
        "issuer",
        "scopes",
        "enabled",
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "api_base",
        "link_by_email",
        "allowed_hosted_domains",
        "required_claims",
        "accepted_audiences",
        "tokeninfo_endpoint",
        "keep_tokens",
        "callback_path",
    ];

    // Weighted towards what is valid (most settings blank), so that many cases are accepted
    // and the properties of accepted providers are exercised too.
    fn url() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => Just(String::new()),
            2 => "https://[a-z]{1,8}\\.example(/[a-z]{0,6})?",
            1 => "http://(127\\.0\\.0\\.1|localhost|idp\\.example):[0-9]{1,4}/[a-z]{0,5}",
            1 => text(30),
        ]
    }

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![4 => "[a-z][a-z0-9.]{0,10}", 1 => text(12)]
    }

    fn words() -> impl Strategy<Value = Vec<String>> {
        prop_oneof![4 => Just(Vec::new()), 1 => proptest::collection::vec(word(), 1..4)]
    }

    fn rarely<T: std::fmt::Debug + Clone>(
        value: impl Strategy<Value = T>,
    ) -> impl Strategy<Value = Option<T>> {
        prop_oneof![4 => Just(None), 1 => value.prop_map(Some)]
    }

    /// An id and settings as the console's form can send them.
    fn settings() -> impl Strategy<Value = (String, RawUpstream)> {
        let names = (
            prop_oneof![8 => "[a-z][a-z0-9-]{0,12}", 1 => text(40)],
            prop_oneof![
                3 => Just("discord".to_owned()),
                3 => Just("google".to_owned()),
                3 => Just("oidc".to_owned()),
                1 => text(8),
            ],
            prop_oneof![8 => "[A-Za-z0-9 ]{0,30}", 1 => text(70)],
            prop_oneof![8 => "[a-z0-9.-]{1,20}", 1 => text(20)],
            prop_oneof![8 => "[!-~]{1,12}".prop_map(Some), 1 => proptest::option::of(text(12))],
            rarely(prop_oneof![
                Just(vec!["openid".to_owned(), "email".to_owned()]),
                Just(vec!["identify".to_owned(), "guilds.join".to_owned()]),
                words(),
            ]),
            any::<(bool, bool)>(),
        );
        let urls = (url(), url(), url(), url(), url(), url());
        let rest = (
            words(),
            prop_oneof![
                4 => Just(BTreeMap::new()),
                1 => proptest::collection::btree_map(word(), text(8), 1..3),
            ],
            rarely(words()),
            rarely(any::<bool>()),
            prop_oneof![
                6 => Just(String::new()),
                1 => Just("/oauth2/login/redirect/".to_owned()),
                1 => Just("/discord/sso/callback".to_owned()),
                1 => text(20),
            ],
        );
        (names, urls, rest).prop_map(
            |(
                (id, kind, label, client_id, secret, scopes, (enabled, link_by_email)),
                (
                    issuer,
                    authorization_endpoint,
                    token_endpoint,
                    userinfo_endpoint,
                    api_base,
                    tokeninfo_endpoint,
                ),
                (
                    allowed_hosted_domains,
                    required_claims,
                    accepted_audiences,
                    keep_tokens,
                    callback_path,
                ),
            )| {
                let raw = RawUpstream {
                    kind,
                    label,
                    client_id,
                    client_secret: secret.map(SecretString::from),
                    issuer,
                    scopes,
                    enabled,
                    authorization_endpoint,
                    token_endpoint,
                    userinfo_endpoint,
                    api_base,
                    link_by_email,
                    allowed_hosted_domains,
                    required_claims,
                    accepted_audiences,
                    tokeninfo_endpoint,
                    keep_tokens,
                    // Not drawn: a flag the check reads for Google only.
                    accept_access_tokens: false,
                    callback_path,
                };
                (id, raw)
            },
        )
    }

    proptest! {
        #![proptest_config(cases(512))]

        /// Any settings are checked without panicking; a refusal names only real settings; an
        /// accepted provider keeps to every rule, and the JSON the console stores (without the
        /// secret) reads back into the same provider.
        #[test]
        fn arbitrary_settings_are_checked_and_read_back_from_storage((id, raw) in settings()) {
            let secret = raw.client_secret.clone();
            match upstream_settings(&id, raw.clone()) {
                Err(problems) => {
                    prop_assert!(!problems.is_empty());
                    for (field, sentence) in problems.sentences() {
                        prop_assert!(FIELDS.contains(&field), "{}", field);
                        prop_assert!(sentence.starts_with(field));
                    }
                }
                Ok(provider) => {
                    prop_assert_eq!(provider.id.as_str(), id.as_str());
                    prop_assert!(provider.label.chars().count() <= 64);
                    prop_assert!(!provider.label.chars().any(char::is_control));
                    let urls = [
                        &provider.authorization_endpoint,
                        &provider.token_endpoint,
                        &provider.userinfo_endpoint,
                        &provider.api_base,
                        &provider.tokeninfo_endpoint,
                    ];
                    for url in urls.into_iter().flatten() {
                        prop_assert!(crate::domain::upstream::endpoint_url(url.as_str()).is_ok(), "{}", url);
                    }
                    if provider.kind.is_oidc() {
                        prop_assert!(provider.scopes.iter().any(|s| s == "openid"));
                        prop_assert!(provider.issuer.is_some());
                    } else {
                        prop_assert!(provider.issuer.is_none());
                        prop_assert!(provider.required_claims.is_empty());
                    }
                    prop_assert!(!provider.keep_tokens || !provider.kind.is_oidc());
                    let json = serde_json::to_string(&raw).expect("serializes");
                    let mut stored: RawUpstream = serde_json::from_str(&json).expect("reads back");
                    prop_assert!(stored.client_secret.is_none());
                    stored.client_secret = secret;
                    let again = upstream_settings(&id, stored).expect("still valid");
                    prop_assert_eq!(format!("{provider:?}"), format!("{again:?}"));
                }
            }
        }
    }
}

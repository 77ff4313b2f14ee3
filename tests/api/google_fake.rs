//! A wiremock fake of Google's OpenID Connect provider, speaking the real protocol: the
//! discovery document (`/.well-known/openid-configuration`, its issuer the mock's URI), the
//! JWKS with a test RSA key generated here (`/oauth2/v3/certs`), the token endpoint issuing
//! RS256-signed ID tokens for the codes a test hands it (`/token`, HTTP Basic client
//! authentication and a PKCE verifier required), UserInfo (`/v1/userinfo`) and tokeninfo
//! (`/tokeninfo?access_token=…`). Keys can be rotated, and every answer is read from shared
//! state, so a test changes what the fake says without remounting it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// Latchkey's (web) client id at the fake.
pub const CLIENT_ID: &str = "latchkey-web.apps.googleusercontent.com";
/// Latchkey's client secret at the fake.
pub const CLIENT_SECRET: &str = "google-client-secret";
/// The client id of Latchkey's own Android app (an accepted audience).
pub const ANDROID_CLIENT_ID: &str = "latchkey-android.apps.googleusercontent.com";
/// Someone else's client id at Google.
pub const FOREIGN_CLIENT_ID: &str = "someone-else.apps.googleusercontent.com";

/// An RSA signing key of the fake: its `kid`, the private key and the public JWK.
pub struct TestKey {
    /// The key id in the JWKS and the ID tokens' headers.
    pub kid: String,
    encoding: EncodingKey,
    /// The public key as a JWK (RFC 7517).
    pub jwk: Value,
    /// The public key as PEM (SubjectPublicKeyInfo), for the HS256 key-confusion attack.
    pub public_pem: String,
}

impl TestKey {
    /// A new 2048-bit RSA key named `kid`.
    pub fn generate(kid: &str) -> Self {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::KeyPair;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .expect("an RSA key");
        let public = pair.public_key();
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        });
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).expect("PKCS#8");
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
        let spki = AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(pair.public_key())
            .expect("SPKI");
        Self {
            kid: kid.to_owned(),
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("an encoding key"),
            jwk,
            public_pem: pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref().to_vec())),
        }
    }

    /// `claims` signed with RS256 under this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signed")
    }

    /// `claims` signed with RS256 under this key's `kid`, the header's `typ` being `typ` (e.g.
    /// RFC 9068's `at+jwt` of a JWT access token).
    pub fn sign_typed(&self, typ: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signed")
    }

    /// `claims` signed with RS256 under another `kid`.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signed")
    }
}

/// An unsigned JWT (`alg: none`, RFC 7519 §6).
pub fn unsigned(claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        part(&json!({"alg": "none", "typ": "JWT"})),
        part(claims)
    )
}

/// `claims` signed with HS256 keyed by `secret` under `kid`.
pub fn hs256(secret: &[u8], kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("signed")
}

/// What the fake answers with.
#[derive(Default)]
struct State {
    /// The JWKS's keys.
    keys: Vec<Value>,
    /// Codes the token endpoint accepts, with the ID token it then issues.
    codes: HashMap<String, String>,
    /// UserInfo by access token.
    userinfo: HashMap<String, Value>,
    /// tokeninfo by access token.
    tokeninfo: HashMap<String, Value>,
}

/// The fake Google.
pub struct FakeGoogle {
    /// The mock server.
    pub server: MockServer,
    /// The key the fake signs with now.
    pub key: TestKey,
    state: Arc<Mutex<State>>,
}

/// Unix seconds now.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl FakeGoogle {
    /// Starts the fake with one signing key and a discovery document naming no RFC 9207
    /// support.
    pub async fn start() -> Self {
        Self::start_with(json!({})).await
    }

    /// [`FakeGoogle::start`] with `extra` members in the discovery document.
    pub async fn start_with(extra: Value) -> Self {
        let server = MockServer::start().await;
        let key = TestKey::generate("key-1");
        let state = Arc::new(Mutex::new(State {
            keys: vec![key.jwk.clone()],
            ..State::default()
        }));
        let uri = server.uri();
        let mut document = json!({
            "issuer": uri,
            "authorization_endpoint": format!("{uri}/o/oauth2/v2/auth"),
            "token_endpoint": format!("{uri}/token"),
            "userinfo_endpoint": format!("{uri}/v1/userinfo"),
            "jwks_uri": format!("{uri}/oauth2/v3/certs"),
            "response_types_supported": ["code", "token", "id_token", "code id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["aud", "email", "email_verified", "exp", "family_name", "given_name", "iat", "iss", "name", "picture", "sub"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
        });
        if let (Some(doc), Some(more)) = (document.as_object_mut(), extra.as_object()) {
            doc.extend(more.clone());
        }
        Mock::given(method("GET"))
            .and(path("/.well-known/openid-configuration"))
            .respond_with(ResponseTemplate::new(200).set_body_json(document))
            .mount(&server)
            .await;
        let keys = state.clone();
        Mock::given(method("GET"))
            .and(path("/oauth2/v3/certs"))
            .respond_with(move |_: &Request| {
                let keys = keys.lock().expect("state").keys.clone();
                ResponseTemplate::new(200).set_body_json(json!({ "keys": keys }))
            })
            .mount(&server)
            .await;
        let codes = state.clone();
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(move |request: &Request| token_endpoint(&codes, request))
            .mount(&server)
            .await;
        let userinfo = state.clone();
        Mock::given(method("GET"))
            .and(path("/v1/userinfo"))
            .respond_with(move |request: &Request| {
                let token = request
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or_default();
                match userinfo.lock().expect("state").userinfo.get(token) {
                    Some(claims) => ResponseTemplate::new(200).set_body_json(claims),
                    None => ResponseTemplate::new(401)
                        .insert_header("www-authenticate", "Bearer error=\"invalid_token\""),
                }
            })
            .mount(&server)
            .await;
        let tokeninfo = state.clone();
        Mock::given(method("GET"))
            .and(path("/tokeninfo"))
            .respond_with(move |request: &Request| {
                let token = request
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "access_token")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                match tokeninfo.lock().expect("state").tokeninfo.get(&token) {
                    Some(info) => ResponseTemplate::new(200).set_body_json(info),
                    None => ResponseTemplate::new(400).set_body_json(
                        json!({"error": "invalid_token", "error_description": "Invalid Value"}),
                    ),
                }
            })
            .mount(&server)
            .await;
        Self { server, key, state }
    }

    /// The issuer: the mock's URI.
    pub fn issuer(&self) -> String {
        self.server.uri()
    }

    /// Good ID-token claims for Ann at Latchkey's web client, with `nonce` when given.
    pub fn claims(&self, nonce: Option<&str>) -> Value {
        let now = now();
        let mut claims = json!({
            "iss": self.issuer(),
            "azp": CLIENT_ID,
            "aud": CLIENT_ID,
            "sub": "110169484474386276334",
            "email": "ann@gmail.example",
            "email_verified": true,
            "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q",
            "name": "Ann Example",
            "given_name": "Ann",
            "family_name": "Example",
            "picture": "https://lh3.googleusercontent.example/a/ann",
            "iat": now,
            "exp": now + 3600,
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        claims
    }

    /// `claims` signed with the current key.
    pub fn sign(&self, claims: &Value) -> String {
        self.key.sign(claims)
    }

    /// Makes the token endpoint answer `code` with `id_token` and the access token
    /// `ya29.<code>`, whose UserInfo is `userinfo`.
    pub fn accept_code(&self, code: &str, id_token: &str, userinfo: &Value) {
        let mut state = self.state.lock().expect("state");
        state.codes.insert(code.to_owned(), id_token.to_owned());
        state
            .userinfo
            .insert(format!("ya29.{code}"), userinfo.clone());
    }

    /// Makes `access_token` known: tokeninfo answers `tokeninfo`, UserInfo `userinfo`.
    pub fn accept_access_token(&self, access_token: &str, tokeninfo: &Value, userinfo: &Value) {
        let mut state = self.state.lock().expect("state");
        state
            .tokeninfo
            .insert(access_token.to_owned(), tokeninfo.clone());
        state
            .userinfo
            .insert(access_token.to_owned(), userinfo.clone());
    }

    /// Rotates the signing key: the JWKS then holds only `new`, which is returned for signing.
    pub fn rotate(&self, kid: &str) -> TestKey {
        let new = TestKey::generate(kid);
        self.state.lock().expect("state").keys = vec![new.jwk.clone()];
        new
    }

    /// How many requests reached `path`.
    pub async fn requests_to(&self, at: &str) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == at)
            .count()
    }
}

/// UserInfo (OIDC Core §5.3.2) for the person in ID-token `claims`.
pub fn userinfo_of(claims: &Value) -> Value {
    let mut info = serde_json::Map::new();
    for name in [
        "sub",
        "email",
        "email_verified",
        "name",
        "given_name",
        "family_name",
        "picture",
        "hd",
    ] {
        if let Some(value) = claims.get(name) {
            info.insert(name.to_owned(), value.clone());
        }
    }
    Value::Object(info)
}

/// The token endpoint (RFC 6749 §4.1.3): HTTP Basic with Latchkey's credentials, a PKCE
/// verifier, and a code handed to [`FakeGoogle::accept_code`] (single use).
fn token_endpoint(state: &Mutex<State>, request: &Request) -> ResponseTemplate {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    let authorized = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(basic.as_str());
    if !authorized {
        return ResponseTemplate::new(401).set_body_json(json!({"error": "invalid_client"}));
    }
    let code = form.get("code").cloned().unwrap_or_default();
    let id_token = state.lock().expect("state").codes.remove(&code);
    match (id_token, form.get("grant_type").map(String::as_str), form.get("code_verifier")) {
        (Some(id_token), Some("authorization_code"), Some(_)) => {
            ResponseTemplate::new(200).set_body_json(json!({
                "access_token": format!("ya29.{code}"),
                "expires_in": 3599,
                "scope": "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile",
                "token_type": "Bearer",
                "id_token": id_token,
            }))
        }
        _ => ResponseTemplate::new(400)
            .set_body_json(json!({"error": "invalid_grant", "error_description": "Bad Request"})),
    }
}

//! OpenID Connect: a strict relying party, discovery, keys, JWT access tokens, UserInfo.

// The oidc-provider peer of bench/peers.sh: panva's OpenID-certified node server with its
// built-in in-memory adapter (nothing is persisted), one client_credentials client, introspection
// and revocation on. Reads its client, signing key and cookie key from $PEER_CONFIG (written by
// bench/peers.sh) and listens on 127.0.0.1:$PORT.
import fs from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 18290);
const cfg = JSON.parse(fs.readFileSync(process.env.PEER_CONFIG, 'utf8'));

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: cfg.client_id,
    client_secret: cfg.client_secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'read write',
  }],
  scopes: ['openid', 'offline_access', 'read', 'write'],
  jwks: { keys: [cfg.jwk] },
  cookies: { keys: cfg.cookie_keys },
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    devInteractions: { enabled: false },
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));
const server = provider.listen(port, '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));

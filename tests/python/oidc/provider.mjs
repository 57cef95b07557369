// A real OpenID Connect provider (npm oidc-provider, pinned in package.json) for tests/python/test_oidc.py.
//
//   PORT=9000 OIDC_KID=k1 OIDC_REDIRECT_URIS='["http://127.0.0.1:8000/auth/callback"]' \
//   OIDC_POST_LOGOUT_URIS='["http://127.0.0.1:8000/"]' node provider.mjs
//
// Issuer http://127.0.0.1:PORT. One user, alice / wonderland (the development login and consent pages of
// oidc-provider, with the password checked here). Clients: `covet-web` (confidential, client_secret_basic, also
// allowed client_credentials and introspection), `covet-spa` (public, PKCE) and, with
// OIDC_BACKCHANNEL_LOGOUT_URI, `covet-bcl` (confidential, back-channel logout to that URI). client_credentials tokens are
// opaque (introspection) unless `resource=urn:covet:api` asks for a JWT access token (audience urn:covet:api).
// The signing key is a fresh RSA key with kid $OIDC_KID: the tests rotate it by restarting the provider on the
// same port with another kid. Prints "oidc-provider listening on PORT" once it serves.
import { generateKeyPairSync } from 'node:crypto';
import * as querystring from 'node:querystring';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 0);
const issuer = `http://127.0.0.1:${port}`;
const redirectUris = JSON.parse(process.env.OIDC_REDIRECT_URIS || '[]');
const postLogoutUris = JSON.parse(process.env.OIDC_POST_LOGOUT_URIS || '[]');
const backchannelLogoutUri = process.env.OIDC_BACKCHANNEL_LOGOUT_URI || '';
const USERS = { alice: { password: 'wonderland', name: 'Alice Liddell', email: 'alice@example.com' } };
export const API_RESOURCE = 'urn:covet:api';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: process.env.OIDC_KID || 'k1', alg: 'RS256', use: 'sig' };

const configuration = {
  jwks: { keys: [signingKey] },
  cookies: { keys: ['covet-oidc-test-cookie-key'] },
  clients: [
    {
      client_id: 'covet-web',
      client_secret: 'covet-web-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'client_credentials'],
      response_types: ['code'],
      redirect_uris: redirectUris,
      post_logout_redirect_uris: postLogoutUris,
      scope: 'openid profile email api:read',
    },
    // Back-channel logout (OpenID Connect Back-Channel Logout 1.0): the provider POSTs a logout token to the
    // app when the user's session at the provider ends; its ID tokens carry the provider session's `sid`.
    ...(backchannelLogoutUri ? [{
      client_id: 'covet-bcl',
      client_secret: 'covet-bcl-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: redirectUris,
      post_logout_redirect_uris: postLogoutUris,
      backchannel_logout_uri: backchannelLogoutUri,
      backchannel_logout_session_required: true,
    }] : []),
    {
      client_id: 'covet-spa',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: redirectUris,
      post_logout_redirect_uris: postLogoutUris,
    },
  ],
  scopes: ['openid', 'offline_access', 'profile', 'email', 'api:read'],
  claims: { openid: ['sub'], profile: ['name'], email: ['email', 'email_verified'] },
  async findAccount(ctx, id) {
    const user = USERS[id];
    if (!user) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: user.name, email: user.email, email_verified: true };
      },
    };
  },
  features: {
    devInteractions: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => false,
      getResourceServerInfo(ctx, resourceIndicator) {
        if (resourceIndicator !== API_RESOURCE) throw new Error(`unknown resource ${resourceIndicator}`);
        return { scope: 'api:read', audience: API_RESOURCE, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
  // The provider refuses outgoing requests to special-use addresses (SSRF protection, a dispatcher it passes in
  // `options`); the test's app, which receives the back-channel logout, listens on 127.0.0.1.
  fetch: (url, { dispatcher, ...options }) => globalThis.fetch(url, options),
  pkce: { required: () => true },
  ttl: { AccessToken: 600, ClientCredentials: 600, IdToken: 600, AuthorizationCode: 60, Interaction: 600, Session: 3600, Grant: 3600 },
};

const provider = new Provider(issuer, configuration);

// The development login page accepts any name: here only alice with her password gets through.
provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && /^\/interaction\/[^/]+$/.test(ctx.path) && ctx.is('application/x-www-form-urlencoded')) {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    const form = querystring.parse(Buffer.concat(chunks).toString());
    if (form.prompt === 'login' && USERS[form.login]?.password !== form.password) {
      ctx.status = 403;
      ctx.type = 'html';
      ctx.body = '<!DOCTYPE html><title>Sign-in failed</title><p id="error">wrong user name or password</p>';
      return;
    }
    ctx.request.body = form;
  }
  await next();
});

provider.on('backchannel.error', (ctx, error, client) => {
  console.log(`back-channel logout to ${client.clientId} failed: ${error.message} ${error.cause?.message ?? ""} ${error.cause?.code ?? ""}`);
});
provider.on('backchannel.success', (ctx, client) => console.log(`back-channel logout to ${client.clientId} sent`));

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${server.address().port} kid ${signingKey.kid}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));  // in-memory state only: nothing to flush

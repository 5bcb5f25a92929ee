#!/usr/bin/env node
// Node peers for the running authority (`tessera serve`), driven by interop/run.sh.
//
//   node served.mjs verify ISSUER ALG < CASES
//       jose, for each JSON line {"case","token","aud"}: one
//       createRemoteJWKSet(jwks_uri of the served openid-configuration), then
//       jwtVerify with algorithms [ALG], issuer, audience, typ "at+jwt" and
//       the RFC 9068 required claims; print one line {"case","header","claims"}
//       or {"case","rejected": "CODE: message"}.
//   node served.mjs client ISSUER oidc|oauth2 basic|post|private_key_jwt CLIENT_ID SECRET_OR_JWK_FILE AUD PARAMS_JSON
//       openid-client: discovery(new URL(ISSUER), ...) from the OpenID Connect
//       or the RFC 8414 document (allowInsecureRequests: the issuer is
//       http://127.0.0.1), then clientCredentialsGrant(PARAMS) at the
//       discovered token endpoint, authenticating with client_secret_basic,
//       client_secret_post or private_key_jwt (the private JWK in the file);
//       the access token is then verified as `verify` does, with the
//       discovered jwks_uri and issuer; print {"header","claims","response"}.
//
// Exit codes: 0 ok (`verify`: every line answered), 1 rejected (`client`:
// stderr "rejected: CODE: message"), 2 usage or transport error.
//
// jose and openid-client are loaded from .deps/node (run.sh installs them
// there with `npm ci` from interop/package-lock.json); INTEROP_NODE_DIR
// overrides.

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const NODE_DIR = process.env.INTEROP_NODE_DIR || resolve(HERE, '..', '.deps', 'node');
// RFC 9068 §2.2: claims every JWT access token carries.
const RFC9068_REQUIRED = ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'];

function die(code, msg) {
  process.stderr.write(msg + '\n');
  process.exit(code);
}

function describe(e) {
  // openid-client's ResponseBodyError carries the RFC 6749 error code.
  const code = e.error || e.code || e.name;
  const detail = e.error_description ? ` (${e.error_description})` : '';
  const cause = e.cause && e.cause.message ? ` [cause: ${e.cause.message}]` : '';
  return `${code}: ${e.message}${detail}${cause}`;
}

async function load(name) {
  const req = createRequire(join(NODE_DIR, 'package.json'));
  let entry;
  try {
    entry = req.resolve(name);
  } catch {
    die(2, `served.mjs: ${name} is not installed in ${NODE_DIR} (run interop/run.sh)`);
  }
  return import(pathToFileURL(entry).href);
}

function remoteJwks(jose, jwksUri) {
  return jose.createRemoteJWKSet(new URL(jwksUri));
}

async function verifyAccessToken(jose, jwks, token, { issuer, alg, aud }) {
  const options = { issuer, audience: aud, typ: 'at+jwt', requiredClaims: RFC9068_REQUIRED };
  if (alg !== undefined) options.algorithms = [alg];
  const out = await jose.jwtVerify(token, jwks, options);
  return { header: out.protectedHeader, claims: out.payload };
}

async function readLines(stream) {
  let text = '';
  for await (const chunk of stream) text += chunk;
  return text.split('\n').filter((l) => l.trim() !== '');
}

async function cmdVerify(issuer, alg) {
  const jose = await load('jose');
  let doc;
  try {
    const resp = await fetch(`${issuer}/.well-known/openid-configuration`);
    if (resp.status !== 200) throw new Error(`HTTP ${resp.status}`);
    doc = await resp.json();
  } catch (e) {
    die(2, `served.mjs: discovery: ${e.message}`);
  }
  // What a jose resource server does: one remote JWKS (fetched once,
  // cached), the key by the token's kid and alg.
  const jwks = remoteJwks(jose, doc.jwks_uri);
  for (const line of await readLines(process.stdin)) {
    const c = JSON.parse(line);
    const result = { case: c.case };
    try {
      Object.assign(result, await verifyAccessToken(jose, jwks, c.token, { issuer, alg, aud: c.aud }));
    } catch (e) {
      result.rejected = describe(e);
    }
    process.stdout.write(JSON.stringify(result) + '\n');
  }
}

async function cmdClient(issuer, doc, auth, clientId, secretOrKey, aud, paramsJson) {
  const jose = await load('jose');
  const client = await load('openid-client');
  if (doc !== 'oidc' && doc !== 'oauth2') die(2, `served.mjs: document ${doc}: want oidc or oauth2`);
  let metadata;
  let clientAuth;
  switch (auth) {
    case 'basic':
      clientAuth = client.ClientSecretBasic(secretOrKey);
      break;
    case 'post':
      // A string is the client_secret; openid-client then defaults to
      // client_secret_post.
      metadata = secretOrKey;
      break;
    case 'private_key_jwt': {
      const jwk = JSON.parse(readFileSync(secretOrKey, 'utf8'));
      const key = await jose.importJWK(jwk, jwk.alg);
      clientAuth = client.PrivateKeyJwt({ key, kid: jwk.kid });
      break;
    }
    default:
      die(2, `served.mjs: client authentication ${auth}: want basic, post or private_key_jwt`);
  }
  let config;
  try {
    config = await client.discovery(new URL(issuer), clientId, metadata, clientAuth, {
      algorithm: doc,
      execute: [client.allowInsecureRequests],
    });
  } catch (e) {
    die(1, `rejected: discovery (${doc}): ${describe(e)}`);
  }
  const as = config.serverMetadata();
  let tokens;
  try {
    tokens = await client.clientCredentialsGrant(config, JSON.parse(paramsJson));
  } catch (e) {
    die(1, `rejected: clientCredentialsGrant: ${describe(e)}`);
  }
  try {
    const jwks = remoteJwks(jose, as.jwks_uri);
    const out = await verifyAccessToken(jose, jwks, tokens.access_token, { issuer: as.issuer, aud });
    out.response = { token_type: tokens.token_type, expires_in: tokens.expires_in, scope: tokens.scope };
    process.stdout.write(JSON.stringify(out) + '\n');
  } catch (e) {
    die(1, `rejected: jwtVerify: ${describe(e)}`);
  }
}

const COMMANDS = {
  verify: [cmdVerify, 2],
  client: [cmdClient, 7],
};

const [cmd, ...args] = process.argv.slice(2);
const usage =
  'usage: node served.mjs verify ISSUER ALG < CASES | client ISSUER oidc|oauth2 basic|post|private_key_jwt CLIENT_ID SECRET_OR_JWK_FILE AUD PARAMS_JSON';
if (!(cmd in COMMANDS) || args.length !== COMMANDS[cmd][1]) die(2, usage);
await COMMANDS[cmd][0](...args);

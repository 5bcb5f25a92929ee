#!/usr/bin/env node
// Node peer (panva/jose) for the Tessera interop tests (driven by interop/run.sh).
//
// Keys are exchanged as JWK JSON files only: the tests never use a key this
// peer made; it imports the ones `tessera keys generate` / `tessera keys
// public` wrote (`info` alone makes throwaway keys, to probe which algorithms
// this Node + jose can run at all).
//
//   node peer.mjs info                                 versions and supported algorithms (JSON)
//   node peer.mjs sign ALG PRIVATE_JWK CLAIMS_JSON     print a compact JWS (header alg, kid, typ=JWT);
//                                                      iat/exp are added when CLAIMS_JSON lacks them
//   node peer.mjs verify ALG JWK_OR_JWKS TOKEN ISS AUD print {"header":..,"claims":..}; exit 1 on
//                                                      rejection (stderr "rejected: CODE: message")
//
// Exit codes: 0 ok, 1 rejected, 2 usage or key import error.
//
// jose is loaded from .deps/node (run.sh installs it there with `npm ci`
// from interop/package-lock.json); set INTEROP_NODE_DIR to use another
// install, or fall back to a plain `import('jose')`.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const NODE_DIR = process.env.INTEROP_NODE_DIR || resolve(HERE, '..', '.deps', 'node');

const ALGS = [
  'HS256', 'HS384', 'HS512',
  'RS256', 'RS384', 'RS512',
  'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512',
  'EdDSA',
];

// Everything the verifier must insist on; iss/aud values come from the command line.
const REQUIRED = ['exp', 'iat', 'iss', 'sub', 'aud'];

function die(code, msg) {
  process.stderr.write(msg + '\n');
  process.exit(code);
}

async function loadJose() {
  const req = createRequire(join(NODE_DIR, 'package.json'));
  let entry;
  try {
    entry = req.resolve('jose');
  } catch {
    return { jose: await import('jose'), version: 'unknown (not from .deps/node)' };
  }
  const { version } = JSON.parse(readFileSync(req.resolve('jose/package.json'), 'utf8'));
  return { jose: await import(pathToFileURL(entry).href), version };
}

function loadJson(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    die(2, `peer.mjs: cannot read ${path}: ${e.message}`);
  }
}

function pickJwk(doc, kid) {
  if (doc && Array.isArray(doc.keys)) {
    const keys = kid === undefined ? doc.keys : doc.keys.filter((k) => k.kid === kid);
    if (keys.length !== 1) {
      die(2, `peer.mjs: JWKS has ${keys.length} keys matching kid ${JSON.stringify(kid)}, want exactly 1`);
    }
    return keys[0];
  }
  return doc;
}

async function importKey(jose, jwk, alg) {
  if (jwk.alg !== undefined && jwk.alg !== alg) {
    die(2, `peer.mjs: JWK alg ${jwk.alg} does not match ${alg}`);
  }
  try {
    return await jose.importJWK(jwk, alg);
  } catch (e) {
    die(2, `peer.mjs: cannot import JWK for ${alg}: ${e.code || e.name}: ${e.message}`);
  }
}

async function probe(jose, alg) {
  try {
    let key, verifyKey;
    if (alg.startsWith('HS')) {
      key = verifyKey = await jose.generateSecret(alg);
    } else {
      const kp = await jose.generateKeyPair(alg, alg === 'EdDSA' ? { crv: 'Ed25519' } : {});
      key = kp.privateKey;
      verifyKey = kp.publicKey;
    }
    const jws = await new jose.CompactSign(new TextEncoder().encode('probe'))
      .setProtectedHeader({ alg })
      .sign(key);
    await jose.compactVerify(jws, verifyKey, { algorithms: [alg] });
    return null;
  } catch (e) {
    return `${e.code || e.name}: ${e.message}`;
  }
}

async function cmdInfo({ jose, version }) {
  const algorithms = [];
  const unsupported = {};
  for (const alg of ALGS) {
    const why = await probe(jose, alg);
    if (why === null) algorithms.push(alg);
    else unsupported[alg] = why;
  }
  process.stdout.write(JSON.stringify({
    peer: 'jose',
    version,
    node: process.versions.node,
    algorithms,
    unsupported,
  }) + '\n');
}

async function cmdSign({ jose }, alg, keyPath, claimsPath) {
  const jwk = loadJson(keyPath);
  const claims = loadJson(claimsPath);
  const now = Math.floor(Date.now() / 1000);
  if (claims.iat === undefined) claims.iat = now;
  if (claims.exp === undefined) claims.exp = now + 300;
  const key = await importKey(jose, jwk, alg);
  const header = { alg, typ: 'JWT' };
  if (jwk.kid !== undefined) header.kid = jwk.kid;
  const token = await new jose.SignJWT(claims).setProtectedHeader(header).sign(key);
  process.stdout.write(token + '\n');
}

async function cmdVerify({ jose }, alg, keyPath, token, iss, aud) {
  let header;
  try {
    header = jose.decodeProtectedHeader(token);
  } catch (e) {
    die(1, `rejected: ${e.code || e.name}: ${e.message}`);
  }
  const doc = loadJson(keyPath);
  // Asymmetric keys go through jose's own JWKS key selection (kid, alg, kty,
  // use), as a relying party would consume `tessera keys public`; jose's
  // JWKS support excludes oct keys, so HS* keys are imported directly.
  let key;
  if (!alg.startsWith('HS') && doc && Array.isArray(doc.keys)) {
    key = jose.createLocalJWKSet(doc);
  } else {
    key = await importKey(jose, pickJwk(doc, header.kid), alg);
  }
  let out;
  try {
    out = await jose.jwtVerify(token, key, {
      algorithms: [alg],
      issuer: iss,
      audience: aud,
      requiredClaims: REQUIRED,
    });
  } catch (e) {
    die(1, `rejected: ${e.code || e.name}: ${e.message}`);
  }
  process.stdout.write(JSON.stringify({ header: out.protectedHeader, claims: out.payload }) + '\n');
}

const COMMANDS = {
  info: [cmdInfo, 0],
  sign: [cmdSign, 3],
  verify: [cmdVerify, 5],
};

const [cmd, ...args] = process.argv.slice(2);
const usage = 'usage: node peer.mjs info | sign ALG PRIVATE_JWK CLAIMS_JSON | verify ALG JWK_OR_JWKS TOKEN ISS AUD';
if (!(cmd in COMMANDS) || args.length !== COMMANDS[cmd][1]) die(2, usage);
let loaded;
try {
  loaded = await loadJose();
} catch (e) {
  die(2, `peer.mjs: cannot load jose (run interop/run.sh to install it into .deps/node): ${e.message}`);
}
await COMMANDS[cmd][0](loaded, ...args);

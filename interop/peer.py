#!/usr/bin/env python3
"""PyJWT peer for the Tessera interop tests (driven by interop/run.sh).

Keys are exchanged as JWK JSON files only: this peer never generates keys,
it imports the ones `tessera keys generate` / `tessera keys public` wrote.

  peer.py info                                  versions and supported algorithms (JSON)
  peer.py sign ALG PRIVATE_JWK CLAIMS_JSON      print a compact JWS (header alg, kid, typ=JWT);
                                                iat/exp are added when CLAIMS_JSON lacks them
  peer.py verify ALG JWK_OR_JWKS TOKEN ISS AUD  print {"header":..,"claims":..}; exit 1 on rejection
                                                (stderr "rejected: ErrorClass: message")

Helpers for run.sh (token plumbing, not PyJWT):
  peer.py show TOKEN                            print TOKEN's header and claims, unverified (diagnostics)
  peer.py tamper TOKEN                          print TOKEN with its payload's "sub" changed, same signature
  peer.py check EXPECTED_CLAIMS ALG JWK < OUT   OUT is a verifier's {"header","claims"}: header alg/kid
                                                must match ALG and the JWK's kid, claims must contain
                                                EXPECTED_CLAIMS, exp/iat must be integers

Exit codes: 0 ok, 1 rejected / mismatch, 2 usage or key import error.
"""

import base64
import json
import sys
import time

USAGE = __doc__

# Everything the verifier must insist on; iss/aud values come from the command line.
REQUIRED = ["exp", "iat", "iss", "sub", "aud"]


def die(code, msg):
    print(msg, file=sys.stderr)
    sys.exit(code)


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        die(2, f"peer.py: cannot read {path}: {e}")


def pick_jwk(doc, kid):
    """A single JWK, or the member of a JWKS whose kid matches the token's."""
    if isinstance(doc, dict) and "keys" in doc:
        keys = doc["keys"]
        if kid is not None:
            keys = [k for k in keys if k.get("kid") == kid]
        if len(keys) != 1:
            die(2, f"peer.py: JWKS has {len(keys)} keys matching kid {kid!r}, want exactly 1")
        return keys[0]
    return doc


def import_jwk(jwk, alg):
    import jwt

    try:
        # PyJWK dispatches to jwt.algorithms.<Family>Algorithm.from_jwk and
        # checks the JWK's own "alg" against ALG.
        return jwt.PyJWK(jwk, algorithm=alg)
    except jwt.PyJWTError as e:
        die(2, f"peer.py: cannot import JWK for {alg}: {type(e).__name__}: {e}")


def cmd_info():
    import cryptography
    import jwt
    from jwt.algorithms import get_default_algorithms

    algs = sorted(a for a in get_default_algorithms() if a != "none")
    print(json.dumps({
        "peer": "pyjwt",
        "version": jwt.__version__,
        "cryptography": cryptography.__version__,
        "python": sys.version.split()[0],
        "algorithms": algs,
    }))


def cmd_sign(alg, key_path, claims_path):
    import jwt

    jwk = load_json(key_path)
    claims = load_json(claims_path)
    now = int(time.time())
    claims.setdefault("iat", now)
    claims.setdefault("exp", now + 300)
    key = import_jwk(jwk, alg)
    headers = {"typ": "JWT"}
    if "kid" in jwk:
        headers["kid"] = jwk["kid"]
    print(jwt.encode(claims, key.key, algorithm=alg, headers=headers))


def cmd_verify(alg, key_path, token, iss, aud):
    import jwt

    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        die(1, f"rejected: {type(e).__name__}: {e}")
    key = import_jwk(pick_jwk(load_json(key_path), header.get("kid")), alg)
    try:
        out = jwt.decode_complete(
            token,
            key.key,
            algorithms=[alg],
            issuer=iss,
            audience=aud,
            options={"require": REQUIRED, "strict_aud": False},
        )
    except jwt.PyJWTError as e:
        die(1, f"rejected: {type(e).__name__}: {e}")
    print(json.dumps({"header": out["header"], "claims": out["payload"]}, ensure_ascii=False))


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def cmd_show(token):
    try:
        h, p, _ = token.strip().split(".")
        header = json.loads(b64d(h))
        claims = json.loads(b64d(p))
    except ValueError as e:
        die(1, f"show: not a compact JWS: {e}")
    print("header: " + json.dumps(header, ensure_ascii=False))
    print("claims: " + json.dumps(claims, ensure_ascii=False))


def cmd_tamper(token):
    h, p, s = token.strip().split(".")
    claims = json.loads(b64d(p))
    claims["sub"] = "mallory"
    p2 = b64e(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
    print(f"{h}.{p2}.{s}")


def cmd_check(expected_path, alg, jwk_path):
    expected = load_json(expected_path)
    jwk = load_json(jwk_path)
    raw = sys.stdin.buffer.read().decode("utf-8")
    try:
        out = json.loads(raw)
        header, claims = out["header"], out["claims"]
    except (ValueError, KeyError, TypeError) as e:
        die(1, f"check: verifier output is not {{header, claims}} JSON ({e}): {raw!r}")
    problems = []
    if header.get("alg") != alg:
        problems.append(f"header alg {header.get('alg')!r} != {alg!r}")
    if header.get("kid") != jwk.get("kid"):
        problems.append(f"header kid {header.get('kid')!r} != JWK kid {jwk.get('kid')!r}")
    for name, want in expected.items():
        if name not in claims:
            problems.append(f"claim {name!r} missing")
        elif claims[name] != want:
            problems.append(f"claim {name!r}: got {claims[name]!r}, want {want!r}")
    for name in ("exp", "iat"):
        if not isinstance(claims.get(name), int) or isinstance(claims.get(name), bool):
            problems.append(f"claim {name!r} is not an integer: {claims.get(name)!r}")
    if problems:
        die(1, "check: " + "; ".join(problems)
            + "\n  header: " + json.dumps(header, ensure_ascii=False)
            + "\n  claims: " + json.dumps(claims, ensure_ascii=False))


COMMANDS = {
    "info": (cmd_info, 0),
    "sign": (cmd_sign, 3),
    "verify": (cmd_verify, 5),
    "show": (cmd_show, 1),
    "tamper": (cmd_tamper, 1),
    "check": (cmd_check, 3),
}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        die(2, USAGE)
    fn, nargs = COMMANDS[argv[1]]
    if len(argv) - 2 != nargs:
        die(2, USAGE)
    fn(*argv[2:])


if __name__ == "__main__":
    main(sys.argv)

#!/usr/bin/env python3
"""Python peers for the running authority (`tessera serve`), driven by interop/run.sh.

  served.py free-port [N]                       print N (default 1) distinct free TCP ports on 127.0.0.1
  served.py wait-ready TIMEOUT PID=URL...       poll each URL (/readyz) until it answers 200 and PID
                                                holds the listening socket; exit 1 naming the servers
                                                that exited or timed out
  served.py register ISSUER ADMIN_TOKEN_FILE METADATA_JSON
                                                POST ISSUER/admin/clients with the admin bearer token;
                                                print the 201 answer (client_id, client_secret...)
  served.py token ISSUER CLIENT_ID SECRET basic|post [NAME=VALUE...]
                                                client_credentials at ISSUER/token (HTTP Basic or
                                                client_secret_post); print the JSON answer
  served.py verify ISSUER ALG < CASES           PyJWT, for each JSON line {"case","token","aud"}: key
                                                from one PyJWKClient(jwks_uri of the served
                                                openid-configuration), jwt.decode with algorithms
                                                [ALG], issuer, audience and the RFC 9068 required
                                                claims, header typ must be "at+jwt"; print one line
                                                {"case","header","claims"} or {"case","rejected"}
  served.py discovery oidc|oauth ISSUER         fetch the OpenID Connect / RFC 8414 document from the
                                                well-known URL authlib derives from ISSUER and validate
                                                it unchanged with authlib (OpenIDProviderMetadata /
                                                AuthorizationServerMetadata); exit 1 with the member
                                                and authlib's message on rejection
  served.py judge CASES PEER=RESULTS...         compare each peer's `verify` results with CASES (lines
                                                {"case","token","aud"} plus "expect": {"alg","ttl",
                                                "claims","absent"} or "reject": "signature"|"audience");
                                                print "ok<TAB>NAME" or "FAIL<TAB>NAME<TAB>REASON" per
                                                case and peer ("{peer}" in a case name is replaced)
  served.py check EXPECT_JSON < OUT             OUT is a verifier's {"header","claims"[,"response"]}:
                                                header alg/typ, RFC 9068 claims, EXPECT's claims
                                                (exact values), exp - iat == EXPECT's ttl

Exit codes: 0 ok, 1 rejected / mismatch, 2 usage or transport error.
"""

import base64
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

USAGE = __doc__

# RFC 9068 §2.2: claims every JWT access token carries.
RFC9068_REQUIRED = ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"]
TIMEOUT = 10  # seconds, per HTTP request


def die(code, msg):
    print(msg, file=sys.stderr)
    sys.exit(code)


def http(method, url, body=None, headers=None):
    """(status, headers, body bytes); HTTP errors are answers, not exceptions."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
    except (urllib.error.URLError, OSError) as e:
        die(2, f"served.py: {method} {url}: {e}")


def json_answer(what, status, body, want_status):
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if status != want_status or not isinstance(doc, dict):
        die(1, f"{what}: HTTP {status} (want {want_status}): {body[:500].decode('utf-8', 'replace')}")
    return doc


def cmd_free_port(count="1"):
    # All sockets stay open until every port is known, so the ports differ.
    socks = []
    try:
        for _ in range(int(count)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        print(" ".join(str(s.getsockname()[1]) for s in socks))
    finally:
        for s in socks:
            s.close()


def listens(pid, url):
    """Whether process pid holds the listening socket of url's port.

    Two servers must never be confused: a server that lost its port to
    another must not look ready because the other one answers. Linux only
    (/proc); elsewhere this is assumed.
    """
    port = urllib.parse.urlsplit(url).port
    try:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table, encoding="ascii") as f:
                    rows = f.read().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                cols = row.split()
                # local_address is HEXIP:HEXPORT; state 0A is LISTEN.
                if int(cols[1].rsplit(":", 1)[1], 16) == port and cols[3] == "0A" and cols[9] in inodes:
                    return True
    except OSError:
        return True  # no /proc: cannot tell
    return False


def cmd_wait_ready(timeout, *targets):
    deadline = time.monotonic() + float(timeout)
    pending = {}
    for t in targets:
        pid, _, url = t.partition("=")
        pending[int(pid)] = url
    last = {}
    while pending:
        for pid, url in list(pending.items()):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                die(1, f"server {pid} ({url}) exited before it was ready")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200 and listens(pid, url):
                        del pending[pid]
                        continue
                    last[pid] = f"HTTP {resp.status}" + ("" if resp.status != 200 else
                                                         f", but from a process other than {pid}")
            except urllib.error.HTTPError as e:
                last[pid] = f"HTTP {e.code}: {e.read()[:200].decode('utf-8', 'replace').strip()}"
            except (urllib.error.URLError, OSError) as e:
                last[pid] = str(e)
        if not pending:
            break
        if time.monotonic() > deadline:
            die(1, "not ready after %ss: %s" % (timeout, "; ".join(
                f"{pending[p]} ({last.get(p, 'no answer')})" for p in pending)))
        time.sleep(0.05)


def cmd_register(issuer, admin_token_file, metadata):
    with open(admin_token_file, encoding="utf-8") as f:
        admin = f.read().strip()
    status, _, body = http("POST", f"{issuer}/admin/clients", metadata.encode("utf-8"), {
        "Authorization": f"Bearer {admin}",
        "Content-Type": "application/json",
    })
    doc = json_answer("POST /admin/clients", status, body, 201)
    want = json.loads(metadata)
    problems = [f"{k}: got {doc.get(k)!r}, want {v!r}" for k, v in want.items()
                if k != "jwks" and doc.get(k) != v]
    if not doc.get("client_id"):
        problems.append("no client_id")
    if want.get("token_endpoint_auth_method") != "private_key_jwt" and not doc.get("client_secret"):
        problems.append("no client_secret")
    if problems:
        die(1, "POST /admin/clients answer does not echo the registration: " + "; ".join(problems))
    print(json.dumps(doc))


def cmd_token(issuer, client_id, secret, method, *params):
    form = {"grant_type": "client_credentials"}
    for p in params:
        name, _, value = p.partition("=")
        form[name] = value
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if method == "basic":
        # RFC 6749 §2.3.1: form-encode, then Base64.
        raw = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(raw.encode("utf-8")).decode("ascii")
    elif method == "post":
        form.update(client_id=client_id, client_secret=secret)
    else:
        die(2, f"served.py: unknown client authentication {method!r}")
    status, hdrs, body = http("POST", f"{issuer}/token", urllib.parse.urlencode(form).encode(), headers)
    doc = json_answer("POST /token", status, body, 200)
    problems = []
    if not isinstance(doc.get("access_token"), str):
        problems.append("no access_token")
    if str(doc.get("token_type", "")).lower() != "bearer":
        problems.append(f"token_type {doc.get('token_type')!r}")
    if "no-store" not in (hdrs.get("Cache-Control") or ""):
        problems.append(f"Cache-Control {hdrs.get('Cache-Control')!r} lacks no-store (RFC 6749 §5.1)")
    if problems:
        die(1, "POST /token: " + "; ".join(problems) + f": {doc}")
    print(json.dumps(doc))


def discovered(issuer):
    status, _, body = http("GET", f"{issuer}/.well-known/openid-configuration")
    return json_answer("GET /.well-known/openid-configuration", status, body, 200)


def cmd_verify(issuer, alg):
    import jwt

    jwks_uri = discovered(issuer).get("jwks_uri")
    if not isinstance(jwks_uri, str):
        die(1, "served.py: discovery: no jwks_uri")
    # What a PyJWT resource server does: one PyJWKClient for the served
    # JWKS, the key by the token's kid, the algorithm pinned, issuer and
    # audience checked.
    jwks = jwt.PyJWKClient(jwks_uri)
    for line in sys.stdin:
        if not line.strip():
            continue
        case = json.loads(line)
        result = {"case": case["case"]}
        try:
            key = jwks.get_signing_key_from_jwt(case["token"])
            out = jwt.decode_complete(
                case["token"],
                key.key,
                algorithms=[alg],
                issuer=issuer,
                audience=case["aud"],
                options={"require": RFC9068_REQUIRED, "strict_aud": False},
            )
            # PyJWT leaves typ to the caller; RFC 9068 §4 says check it.
            typ = out["header"].get("typ")
            if not isinstance(typ, str) or typ.lower() not in ("at+jwt", "application/at+jwt"):
                result["rejected"] = f"typ: header typ is {typ!r}, want at+jwt (RFC 9068 §4)"
            else:
                result.update(header=out["header"], claims=out["payload"])
        except jwt.PyJWTError as e:
            result["rejected"] = f"{type(e).__name__}: {e}"
        print(json.dumps(result, ensure_ascii=False))


def where(exc):
    """authlib's source line that raised exc."""
    import traceback

    frame = traceback.extract_tb(exc.__traceback__)[-1]
    path = frame.filename
    if "site-packages" in path:
        path = path.split("site-packages/", 1)[1]
    return f"{path}:{frame.lineno}"


def cmd_discovery(kind, issuer):
    if kind == "oidc":
        from authlib.oidc.discovery import OpenIDProviderMetadata as Metadata
        from authlib.oidc.discovery import get_well_known_url
    elif kind == "oauth":
        from authlib.oauth2.rfc8414 import AuthorizationServerMetadata as Metadata
        from authlib.oauth2.rfc8414 import get_well_known_url
    else:
        die(2, USAGE)
    if os.environ.get("AUTHLIB_INSECURE_TRANSPORT"):
        die(2, "served.py: unset AUTHLIB_INSECURE_TRANSPORT: it turns authlib's https checks off")
    # The validator must be live: the document without "issuer" is refused.
    try:
        Metadata({}).validate()
    except ValueError:
        pass
    else:
        die(2, f"served.py: authlib {Metadata.__name__}({{}}).validate() accepted an empty document")

    url = get_well_known_url(issuer, external=True)
    status, hdrs, body = http("GET", url)
    doc = json_answer(f"GET {url}", status, body, 200)
    ctype = (hdrs.get("Content-Type") or "").split(";")[0].strip()
    problems = []
    if ctype != "application/json":
        problems.append(f"Content-Type {ctype!r}, want application/json")
    # RFC 8414 §3.3 / OpenID Connect Discovery §4.3: identical issuer.
    if doc.get("issuer") != issuer:
        problems.append(f"issuer {doc.get('issuer')!r} != {issuer!r} (RFC 8414 §3.3)")
    metadata = Metadata(doc)
    try:
        metadata.validate()
    except ValueError as e:
        problems.append(f"authlib {Metadata.__name__}.validate(): {e} ({where(e)})")
        # validate() stops at the first error: name every member it refuses.
        for key in Metadata.REGISTRY_KEYS:
            try:
                getattr(metadata, f"validate_{key}")()
            except ValueError as e:
                problems.append(f"member {key}: {e} ({where(e)})")
    if problems:
        die(1, f"rejected: {url}: " + "; ".join(problems) + "\n  document: " + body.decode())
    print(json.dumps(doc))


def token_problems(expect, header, claims, response=None):
    """What differs between a verified token and what the server was asked for."""
    problems = []
    if header.get("alg") != expect["alg"]:
        problems.append(f"header alg {header.get('alg')!r} != {expect['alg']!r}")
    if header.get("typ") != "at+jwt":
        problems.append(f"header typ {header.get('typ')!r} != 'at+jwt'")
    if not isinstance(header.get("kid"), str) or not header["kid"]:
        problems.append("header has no kid")
    for name in RFC9068_REQUIRED:
        if name not in claims:
            problems.append(f"RFC 9068 claim {name!r} missing")
    for name, want in expect.get("claims", {}).items():
        if name not in claims:
            problems.append(f"claim {name!r} missing")
        elif claims[name] != want:
            problems.append(f"claim {name!r}: got {claims[name]!r}, want {want!r}")
    for name in expect.get("absent", []):
        if name in claims:
            problems.append(f"claim {name!r} present: {claims[name]!r}")
    if claims.get("sub") != claims.get("client_id"):
        problems.append(f"sub {claims.get('sub')!r} != client_id {claims.get('client_id')!r} (client_credentials)")
    jti = claims.get("jti")
    if not isinstance(jti, str) or len(jti) < 16:
        problems.append(f"jti {jti!r} is not a string of 16+ characters")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (iat, exp)):
        problems.append(f"iat {iat!r} / exp {exp!r} are not integers")
    else:
        if exp - iat != expect["ttl"]:
            problems.append(f"exp - iat = {exp - iat}, want {expect['ttl']}")
        if abs(iat - time.time()) > 120:
            problems.append(f"iat {iat} is {iat - int(time.time())} s from now")
    if response is not None:
        if response.get("expires_in") != expect["ttl"]:
            problems.append(f"response expires_in {response.get('expires_in')!r} != {expect['ttl']}")
        if "scope" in expect.get("claims", {}) and response.get("scope") != expect["claims"]["scope"]:
            problems.append(f"response scope {response.get('scope')!r} != {expect['claims']['scope']!r}")
    if problems:
        problems.append("header " + json.dumps(header, ensure_ascii=False)
                        + ", claims " + json.dumps(claims, ensure_ascii=False))
    return problems


# What each peer says when it rejects a token for a reason (case "reject").
REJECTIONS = {
    ("pyjwt", "signature"): "InvalidSignatureError:",
    ("jose", "signature"): "ERR_JWS_SIGNATURE_VERIFICATION_FAILED:",
    ("pyjwt", "audience"): "InvalidAudienceError:",
    ("jose", "audience"): 'ERR_JWT_CLAIM_VALIDATION_FAILED: unexpected "aud"',
}


def cmd_judge(cases_path, *peer_results):
    """One line per (case, peer): ok<TAB>NAME or FAIL<TAB>NAME<TAB>REASON."""
    with open(cases_path, encoding="utf-8") as f:
        cases = [json.loads(line) for line in f if line.strip()]
    for spec in peer_results:
        peer, _, path = spec.partition("=")
        results = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    r = json.loads(line)
                    results[r["case"]] = r
                except (ValueError, KeyError, TypeError):
                    pass  # a missing result is reported per case below
        for case in cases:
            name = case["case"].replace("{peer}", peer)
            r = results.get(case["case"])
            if r is None:
                why = f"no result from {peer} (see its stderr)"
            elif "reject" in case:
                want = REJECTIONS[(peer, case["reject"])]
                got = r.get("rejected")
                why = None if got is not None and got.startswith(want) else (
                    f"want rejection {want!r}, got " + (repr(got) if got is not None else "accepted"))
            elif "rejected" in r:
                why = f"{peer} rejected the served token: {r['rejected']}"
            else:
                problems = token_problems(case["expect"], r.get("header", {}), r.get("claims", {}))
                why = "; ".join(problems) if problems else None
            print("ok\t" + name if why is None else "FAIL\t" + name + "\t" + why.replace("\n", " "))


def cmd_check(expect_json):
    expect = json.loads(expect_json)
    raw = sys.stdin.read()
    try:
        out = json.loads(raw)
        header, claims = out["header"], out["claims"]
    except (ValueError, KeyError, TypeError) as e:
        die(1, f"check: verifier output is not {{header, claims}} JSON ({e}): {raw!r}")
    problems = token_problems(expect, header, claims, out.get("response"))
    if problems:
        die(1, "check: " + "; ".join(problems))


COMMANDS = {
    "free-port": (cmd_free_port, 0, 1),
    "wait-ready": (cmd_wait_ready, 2, None),
    "register": (cmd_register, 3, 3),
    "token": (cmd_token, 4, None),
    "verify": (cmd_verify, 2, 2),
    "judge": (cmd_judge, 2, None),
    "discovery": (cmd_discovery, 2, 2),
    "check": (cmd_check, 1, 1),
}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        die(2, USAGE)
    fn, least, most = COMMANDS[argv[1]]
    n = len(argv) - 2
    if n < least or (most is not None and n > most):
        die(2, USAGE)
    fn(*argv[2:])


if __name__ == "__main__":
    main(sys.argv)

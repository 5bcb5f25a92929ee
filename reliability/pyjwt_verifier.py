"""A third-party verifier for the reliability campaign: PyJWT's PyJWKClient.

Usage: pyjwt_verifier.py ISSUER AUDIENCE LIFESPAN_SECONDS

Reads one token a line on stdin and answers one line each, in order: "ok",
or "err <ExceptionName>: <message>". At the end of input it prints
"fetches N": how many times PyJWKClient fetched the JWKS. The JWKS is cached
for LIFESPAN seconds (PyJWKClient's lifespan) and, as PyJWKClient does, fetched
again at once for a kid it does not hold.
"""
import sys

import jwt
from jwt import PyJWKClient


def main():
    issuer, audience, lifespan = sys.argv[1], sys.argv[2], float(sys.argv[3])
    client = PyJWKClient(issuer + "/.well-known/jwks.json", cache_jwk_set=True, lifespan=lifespan)
    fetches = 0
    fetch = client.fetch_data

    def counted():
        nonlocal fetches
        fetches += 1
        return fetch()

    client.fetch_data = counted
    for line in sys.stdin:
        token = line.strip()
        try:
            key = client.get_signing_key_from_jwt(token)
            jwt.decode(
                token,
                key.key,
                algorithms=["ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"],
                audience=audience,
                issuer=issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
            out = "ok"
        except Exception as e:  # every refusal is reported, by its class
            out = "err %s: %s" % (type(e).__name__, str(e).replace("\n", " "))
        sys.stdout.write(out + "\n")
        sys.stdout.flush()
    sys.stdout.write("fetches %d\n" % fetches)
    sys.stdout.flush()


if __name__ == "__main__":
    main()

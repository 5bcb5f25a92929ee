#!/usr/bin/env bash
# Interoperability tests: Tessera against PyJWT and Node's jose (panva/jose).
#
# For every algorithm both sides support:
#   tessera -> PEER  a token from `tessera token sign` verifies in the peer
#                    (iss, sub, aud, custom claims round-trip), and the same
#                    token with its payload altered is rejected by the peer;
#   PEER -> tessera  a token the peer signed verifies in `tessera token
#                    verify` (claims round-trip); the peer's token for the
#                    wrong audience and its altered token make tessera exit 1.
# Keys travel as JWK files only: tessera makes every key (`keys generate`),
# the peers import the private JWK (to sign) or `keys public`'s JWKS (to
# verify; for HS* the private oct JWK, which `keys public` refuses).
#
# Peers are installed into .deps/ (git-ignored; TESSERA_DEPS_DIR overrides)
# from the pins in interop/requirements.txt and interop/package-lock.json,
# and reused while those pins (and the Python/Node versions) are unchanged.
#
# Environment:
#   TESSERA_BIN       tessera binary to test (default: `cargo build -q -p
#                     tessera` and use the workspace's target/debug/tessera)
#   TESSERA_DEPS_DIR  where the peers are installed (default: .deps in the
#                     repo root); .ci/run points it at a cache outside the clone
#   PYTHON            interpreter for the venv (default: python3)
#   KEEP_WORK=1       keep the temp dir with keys and tokens
#
# Prints one line per case ("ok   pyjwt -> tessera ES256", "FAIL ...",
# "skip ... : reason") and ends with "interop: N passed, N failed, N skipped".
# Exit status: 0 all passed, 1 some case failed, 2 setup failed.
set -euo pipefail

ORIG_PWD=$PWD
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
INTEROP=$ROOT/interop
DEPS=${TESSERA_DEPS_DIR:-$ROOT/.deps}
[[ $DEPS == /* ]] || DEPS=$ORIG_PWD/$DEPS
PYTHON=${PYTHON:-python3}
export PYTHONUTF8=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# Algorithms of the tessera CLI contract.
ALGS=(HS256 HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA)
PEERS=(pyjwt jose)

die() { printf 'interop: %s\n' "$*" >&2; exit 2; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH ($2)"; }
need "$PYTHON" "the Python peer needs it"
need node "the jose peer needs Node >= 20"
need npm "installing the jose peer needs it"

# ---------------------------------------------------------------- 1. peers
mkdir -p "$DEPS"
exec 9>"$DEPS/.interop.lock"
flock 9 2>/dev/null || true # concurrent runs wait for one another's install

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

install_python() {
  local venv=$DEPS/venv want
  want="$("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])') $(hash_of interop/requirements.txt)"
  if [[ -x $venv/bin/python && -f $venv/.interop-stamp && $(<"$venv/.interop-stamp") == "$want" ]]; then
    return
  fi
  echo "interop: installing the Python peer into $venv"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv" || die "python -m venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/python" -m pip install --no-input -q --only-binary=:all: -r interop/requirements.txt ||
    die "pip install -r interop/requirements.txt failed"
  printf '%s' "$want" >"$venv/.interop-stamp"
}

install_node() {
  local dir=$DEPS/node want
  want="node $(node --version) $(hash_of interop/package.json interop/package-lock.json)"
  if [[ -f $dir/node_modules/jose/package.json && -f $dir/.interop-stamp && $(<"$dir/.interop-stamp") == "$want" ]]; then
    return
  fi
  echo "interop: installing the jose peer into $dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp interop/package.json interop/package-lock.json "$dir/"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) ||
    die "npm ci (interop/package-lock.json) failed"
  printf '%s' "$want" >"$dir/.interop-stamp"
}

install_python
install_node
exec 9>&-

PYBIN=$DEPS/venv/bin/python
export INTEROP_NODE_DIR=$DEPS/node

# ---------------------------------------------------------------- 2. tessera
if [[ -n ${TESSERA_BIN:-} ]]; then
  [[ $TESSERA_BIN == /* ]] || TESSERA_BIN=$ORIG_PWD/$TESSERA_BIN
else
  need cargo "to build tessera (or set TESSERA_BIN)"
  cargo build -q -p tessera || die "cargo build -p tessera failed"
  target_dir=$(cargo metadata -q --format-version 1 --no-deps |
    "$PYBIN" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') ||
    die "cargo metadata failed"
  TESSERA_BIN=$target_dir/debug/tessera
fi
[[ -x $TESSERA_BIN ]] || die "tessera binary not found or not executable: $TESSERA_BIN"

# ---------------------------------------------------------------- 3. cases
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tessera-interop.XXXXXX")
if [[ ${KEEP_WORK:-} == 1 ]]; then
  echo "interop: keeping $WORK"
else
  trap 'rm -rf "$WORK"' EXIT
fi

ISS=https://issuer.interop.test
SUB=user-42
AUD=tessera-api
OTHER_AUD=other-api
WRONG_AUD=someone-else

# What tessera signs (aud as an array of two) and must arrive intact.
cat >"$WORK/expect-from-tessera.json" <<EOF
{"iss":"$ISS","sub":"$SUB","aud":["$AUD","$OTHER_AUD"],
 "role":"admin","name":"Zoë","scopes":["read","write"],"level":3}
EOF
# What the peers sign (aud as a single string); iat/exp are added by the peer.
cat >"$WORK/claims.json" <<EOF
{"iss":"$ISS","sub":"$SUB","aud":"$AUD",
 "role":"admin","name":"Zoë","scopes":["read","write"],"level":3}
EOF
sed "s/\"aud\":\"$AUD\"/\"aud\":\"$WRONG_AUD\"/" "$WORK/claims.json" >"$WORK/claims-wrong-aud.json"
grep -q "$WRONG_AUD" "$WORK/claims-wrong-aud.json" || die "could not write claims-wrong-aud.json"

peer() { # peer NAME ARGS...
  case $1 in
    pyjwt) "$PYBIN" "$INTEROP/peer.py" "${@:2}" ;;
    jose) node "$INTEROP/peer.mjs" "${@:2}" ;;
  esac
}
helper() { "$PYBIN" "$INTEROP/peer.py" "$@"; } # tamper / check / show
tessera() { "$TESSERA_BIN" "$@"; }

# run CMD...: sets OUT (stdout), ERR (stderr), RC without tripping set -e.
run() {
  if OUT=$("$@" 2>"$WORK/stderr"); then RC=0; else RC=$?; fi
  ERR=$(<"$WORK/stderr")
}

PASSED=0 FAILED=0 SKIPPED=0
FAILURES=()
ok() { PASSED=$((PASSED + 1)); printf 'ok   %s\n' "$1"; }
skip() { SKIPPED=$((SKIPPED + 1)); printf 'skip %s: %s\n' "$1" "$2"; }
fail() { # fail CASE REASON [TOKEN]
  FAILED=$((FAILED + 1))
  FAILURES+=("$1")
  printf 'FAIL %s: %s\n' "$1" "$2"
  [[ -n ${OUT:-} ]] && printf '     stdout: %s\n' "$OUT"
  [[ -n ${ERR:-} ]] && printf '     stderr: %s\n' "$ERR"
  if [[ -n ${3:-} ]]; then
    printf '     token:  %s\n' "$3"
    helper show "$3" 2>&1 | sed 's/^/     /' || true
  fi
}

# Supported algorithms, as each peer reports them.
declare -A SUPPORTS=() WHY_NOT=()
for p in "${PEERS[@]}"; do
  run peer "$p" info
  [[ $RC == 0 ]] || die "$p info failed: $ERR"
  info=$OUT
  desc=$("$PYBIN" -c '
import json, sys
i = json.loads(sys.argv[1])
extra = {k: v for k, v in i.items() if k not in ("peer", "version", "algorithms", "unsupported")}
print(i["peer"], i["version"], "(" + ", ".join(f"{k} {v}" for k, v in extra.items()) + ")")' "$info")
  algs=$("$PYBIN" -c 'import json, sys; print(" ".join(json.loads(sys.argv[1])["algorithms"]))' "$info")
  echo "interop: $desc supports: $algs"
  for a in $algs; do SUPPORTS[$p:$a]=1; done
  while IFS=$'\t' read -r a why; do
    [[ -n $a ]] && WHY_NOT[$p:$a]=$why
  done < <("$PYBIN" -c '
import json, sys
for a, why in json.loads(sys.argv[1]).get("unsupported", {}).items():
    print(a, " ".join(str(why).split()), sep="\t")' "$info")
  extra=()
  for a in $algs; do [[ " ${ALGS[*]} " == *" $a "* ]] || extra+=("$a"); done
  if ((${#extra[@]})); then
    echo "interop: not tested (tessera does not implement them): $p ${extra[*]}"
  fi
done
echo "interop: tessera $("$TESSERA_BIN" --version 2>/dev/null | awk '{print $NF}') ($TESSERA_BIN) algorithms: ${ALGS[*]}"

for alg in "${ALGS[@]}"; do
  key=$WORK/$alg.jwk.json
  run tessera keys generate --alg "$alg" --out "$key"
  if [[ $RC != 0 ]]; then
    fail "tessera keys generate $alg" "exit $RC"
    continue
  fi
  if [[ $alg == HS* ]]; then
    vkey=$key # oct: the verifier holds the secret JWK itself
  else
    vkey=$WORK/$alg.jwks.json
    run tessera keys public "$key"
    if [[ $RC != 0 ]]; then
      fail "tessera keys public $alg" "exit $RC"
      continue
    fi
    printf '%s\n' "$OUT" >"$vkey"
  fi

  for p in "${PEERS[@]}"; do
    if [[ -z ${SUPPORTS[$p:$alg]:-} ]]; then
      why=${WHY_NOT[$p:$alg]:-not in the peer\'s algorithm list}
      skip "tessera -> $p $alg" "$p does not support $alg ($why)"
      skip "$p -> tessera $alg" "$p does not support $alg ($why)"
      continue
    fi

    # --- tessera -> peer
    c="tessera -> $p $alg"
    run tessera token sign --key "$key" --iss "$ISS" --sub "$SUB" --aud "$AUD" --aud "$OTHER_AUD" \
      --ttl 5m --claim role=admin --claim 'name=Zoë' --claim 'scopes=["read","write"]' --claim level=3
    if [[ $RC != 0 ]]; then
      fail "$c" "tessera token sign exited $RC"
    else
      tok=$OUT
      run peer "$p" verify "$alg" "$vkey" "$tok" "$ISS" "$AUD"
      if [[ $RC != 0 ]]; then
        fail "$c" "$p rejected tessera's token (exit $RC)" "$tok"
      else
        verified=$OUT
        run helper check "$WORK/expect-from-tessera.json" "$alg" "$key" <<<"$verified"
        if [[ $RC != 0 ]]; then fail "$c" "claims/header did not round-trip" "$tok"; else ok "$c"; fi
      fi

      c="tessera -> $p $alg tampered token rejected"
      bad=$(helper tamper "$tok")
      run peer "$p" verify "$alg" "$vkey" "$bad" "$ISS" "$AUD"
      case $p in
        pyjwt) want='^rejected: InvalidSignatureError' ;;
        jose) want='^rejected: ERR_JWS_SIGNATURE_VERIFICATION_FAILED' ;;
      esac
      if [[ $RC == 1 && $ERR =~ $want ]]; then
        ok "$c"
      else
        fail "$c" "want exit 1 and stderr matching /$want/, got exit $RC" "$bad"
      fi
    fi

    # --- peer -> tessera
    c="$p -> tessera $alg"
    verify=(tessera token verify --jwks "$vkey" --iss "$ISS" --aud "$AUD" --alg "$alg" --typ JWT)
    run peer "$p" sign "$alg" "$key" "$WORK/claims.json"
    if [[ $RC != 0 ]]; then
      fail "$c" "$p sign exited $RC"
    else
      tok=$OUT
      run "${verify[@]}" "$tok"
      if [[ $RC != 0 ]]; then
        fail "$c" "tessera rejected $p's token (exit $RC)" "$tok"
      else
        verified=$OUT
        run helper check "$WORK/claims.json" "$alg" "$key" <<<"$verified"
        if [[ $RC != 0 ]]; then fail "$c" "claims/header did not round-trip" "$tok"; else ok "$c"; fi
      fi

      c="$p -> tessera $alg tampered token rejected"
      bad=$(helper tamper "$tok")
      run "${verify[@]}" "$bad"
      if [[ $RC == 1 && $ERR == "rejected: bad_signature:"* ]]; then
        ok "$c"
      else
        fail "$c" "want exit 1 and 'rejected: bad_signature:', got exit $RC" "$bad"
      fi
    fi

    c="$p -> tessera $alg wrong audience rejected"
    run peer "$p" sign "$alg" "$key" "$WORK/claims-wrong-aud.json"
    if [[ $RC != 0 ]]; then
      fail "$c" "$p sign exited $RC"
    else
      tok=$OUT
      run "${verify[@]}" "$tok"
      if [[ $RC == 1 && $ERR == "rejected: audience_mismatch:"* ]]; then
        ok "$c"
      else
        fail "$c" "want exit 1 and 'rejected: audience_mismatch:', got exit $RC" "$tok"
      fi
    fi
  done
done

echo "interop: $PASSED passed, $FAILED failed, $SKIPPED skipped"
if ((FAILED)); then
  printf 'interop: failed: %s\n' "${FAILURES[@]}" >&2
  exit 1
fi

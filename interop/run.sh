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
# Then the running authority (`tessera serve`, section 4): one server per
# asymmetric algorithm both peers support (ES256 with the defaults, the others
# with TESSERA_KEYS_ALGORITHMS=ALG), each on a free 127.0.0.1 port with its
# own temporary data folder, stopped on exit whatever happens:
#   serve ALG -> PEER  tokens from POST /token (the quickstart client with
#                      client_secret_basic; a client registered through
#                      POST /admin/clients with client_secret_post, scope,
#                      two audiences, a lifetime and static claims) verify in
#                      PyJWT (PyJWKClient) and jose (createRemoteJWKSet) from
#                      the discovered jwks_uri, with issuer, audience, typ
#                      at+jwt and RFC 9068 claims; the tampered token (and, on
#                      ES256, the wrong audience) is rejected;
#   discovery          (ES256) authlib validates both discovery documents
#                      unchanged; openid-client discovers from each of them
#                      and gets tokens with clientCredentialsGrant
#                      (client_secret_basic, client_secret_post,
#                      private_key_jwt), verified with jose; a wrong secret
#                      is refused (openid-client names Ed25519 assertions with
#                      RFC 9864's alg "Ed25519", which the server reads as EdDSA).
# Python pieces are in served.py, Node pieces in served.mjs.
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
#   KEEP_WORK=1       keep the temp dir with keys, tokens and server logs
#   SERVE_TIMEOUT     seconds a server may take to answer /readyz (default 30)
#
# Prints one line per case ("ok   pyjwt -> tessera ES256", "FAIL ...",
# "skip ... : reason") and ends with "interop: N passed, N failed, N skipped".
# Exit status: 0 all passed, 1 some case failed, any case was skipped, or the
# number of cases run differs from interop/expected_cases; 2 setup failed.
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

# How many cases a complete run has (passed + failed); kept in the repository
# so that a lost case fails the run.
EXPECTED_CASES=$(tr -d '[:space:]' <"$INTEROP/expected_cases" 2>/dev/null) ||
  die "interop/expected_cases is missing"
[[ $EXPECTED_CASES =~ ^[1-9][0-9]*$ ]] || die "interop/expected_cases must hold a positive number"

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
  if [[ -f $dir/node_modules/jose/package.json && -f $dir/node_modules/openid-client/package.json &&
    -f $dir/.interop-stamp && $(<"$dir/.interop-stamp") == "$want" ]]; then
    return
  fi
  echo "interop: installing the jose and openid-client peers into $dir"
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
SERVER_PIDS=() # every `tessera serve` this script started
JOB_PIDS=()    # background case jobs (section 4)

# Stops every server this script started: SIGTERM, up to 5 s, then SIGKILL.
stop_servers() {
  local pid i
  for pid in "${JOB_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  JOB_PIDS=()
  for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${SERVER_PIDS[@]}"; do
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  SERVER_PIDS=()
}
cleanup() {
  stop_servers
  if [[ ${KEEP_WORK:-} == 1 ]]; then
    echo "interop: keeping $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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
  local stderr=${RUN_STDERR:-$WORK/stderr} # per job when cases run in parallel
  if OUT=$("$@" 2>"$stderr"); then RC=0; else RC=$?; fi
  ERR=$(<"$stderr")
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

# ---------------------------------------------------------------- 4. serve
# The running authority, against the same peers plus authlib and
# openid-client. Every server gets a free port and its own data folder under
# $WORK; cleanup (trap) stops them all, whatever happens.
served_py() { "$PYBIN" "$INTEROP/served.py" "$@"; }
served_js() { node "$INTEROP/served.mjs" "$@"; }
json_get() { # json_get JSON NAME: print the member (strings bare, others as JSON)
  "$PYBIN" -c '
import json, sys
v = json.loads(sys.argv[1])[sys.argv[2]]
print(v if isinstance(v, str) else json.dumps(v))' "$1" "$2"
}
# Loopback only: no proxy may stand between the peers and the servers, and
# authlib's https checks stay on.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
unset AUTHLIB_INSECURE_TRANSPORT
# The servers see no TESSERA_<SECTION>_<KEY> setting from the caller's shell.
SERVER_ENV=(env)
while IFS= read -r v; do SERVER_ENV+=(-u "$v"); done < <(compgen -e | grep -E '^TESSERA_(SERVER|KEYS|TOKENS|JWKS|ADMIN)_' || true)

SERVE_ALGS=()
for alg in "${ALGS[@]}"; do
  [[ $alg == HS* ]] && continue # the authority signs with asymmetric keys only
  if [[ -n ${SUPPORTS[pyjwt:$alg]:-} && -n ${SUPPORTS[jose:$alg]:-} ]]; then
    SERVE_ALGS+=("$alg")
  else
    skip "serve $alg" "not supported by both pyjwt and jose"
  fi
done
DEFAULT_ALG=ES256 # what `tessera serve` signs with when keys.algorithms is unset

declare -A SRV_PID=() SRV_ISS=() SRV_DIR=()
launch() { # launch ALG PORT: start a server with a fresh data folder (ES256: the defaults)
  local alg=$1 port=$2 dir
  local cmd=("${SERVER_ENV[@]}")
  [[ $alg == "$DEFAULT_ALG" ]] || cmd+=("TESSERA_KEYS_ALGORITHMS=$alg")
  # Fresh on every attempt: a data folder keeps the issuer it first ran
  # with as the quickstart client's audience.
  dir=$(mktemp -d "$WORK/serve-$alg.XXXX")
  "${cmd[@]}" "$TESSERA_BIN" serve --data "$dir/data" --listen "127.0.0.1:$port" >"$dir/log" 2>&1 &
  SERVER_PIDS+=("$!")
  SRV_PID[$alg]=$!
  SRV_ISS[$alg]=http://127.0.0.1:$port
  SRV_DIR[$alg]=$dir
}
server_log() { sed 's/^/     log: /' "${SRV_DIR[$1]}/log" | tail -n 20; }

SERVE_START=$SECONDS
ports=$(served_py free-port "${#SERVE_ALGS[@]}") || die "served.py free-port failed"
read -r -a ports <<<"$ports"
for i in "${!SERVE_ALGS[@]}"; do launch "${SERVE_ALGS[$i]}" "${ports[$i]}"; done # all start at once

# Registered through the admin API on every server.
ORDERS_CLIENT='{"client_name":"interop orders","grant_types":["client_credentials"],
 "token_endpoint_auth_method":"client_secret_post","scope":"orders:read orders:write",
 "audiences":["orders-api","billing-api"],"access_token_ttl":600,
 "claims":{"tenant_id":"acme","roles":["reader","auditor"],"region":"eu-west-1"}}'
ORDERS_CLAIMS='"tenant_id":"acme","roles":["reader","auditor"],"region":"eu-west-1"'

declare -A READY=() QS_ID=() QS_SECRET=() ORDERS_ID=() ORDERS_SECRET=()
for alg in "${SERVE_ALGS[@]}"; do
  iss=${SRV_ISS[$alg]}
  pid=${SRV_PID[$alg]}
  c="serve $alg ready"
  for attempt in 1 2 3; do
    run served_py wait-ready "${SERVE_TIMEOUT:-30}" "$pid=$iss/readyz"
    [[ $RC != 0 ]] && ! kill -0 "$pid" 2>/dev/null && grep -qi 'in use' "${SRV_DIR[$alg]}/log" || break
    # Another process took the port between free-port and bind: a new port.
    port=$(served_py free-port) || die "served.py free-port failed"
    launch "$alg" "$port"
    iss=${SRV_ISS[$alg]}
    pid=${SRV_PID[$alg]}
  done
  if [[ $RC != 0 ]]; then
    fail "$c" "no 200 from $iss/readyz"
    server_log "$alg"
    continue
  fi
  data=${SRV_DIR[$alg]}/data
  if [[ ! -s $data/admin.token || ! -s $data/quickstart.credentials ]]; then
    OUT= ERR=
    fail "$c" "$data lacks admin.token or quickstart.credentials"
    continue
  fi
  creds=$(<"$data/quickstart.credentials")
  QS_ID[$alg]=${creds%%:*}
  QS_SECRET[$alg]=${creds#*:}
  run served_py register "$iss" "$data/admin.token" "$ORDERS_CLIENT"
  if [[ $RC != 0 ]]; then
    fail "$c" "POST /admin/clients failed (exit $RC)"
    continue
  fi
  ORDERS_ID[$alg]=$(json_get "$OUT" client_id)
  ORDERS_SECRET[$alg]=$(json_get "$OUT" client_secret)
  READY[$alg]=1
  ok "$c"
done

# add_case FILE NAME TOKEN AUD MEMBERS: one line of a verification batch
# ("{peer}" in NAME becomes each peer's name; MEMBERS is "expect":{...} or
# "reject":"signature"|"audience", see served.py judge).
add_case() {
  printf '{"case":"%s","token":"%s","aud":"%s",%s}\n' "$2" "$3" "$4" "${5//$'\n'/}" >>"$1"
}

# serve_cases ALG: the token cases of one server. Tokens come from POST
# /token; each peer verifies the batch in one run (one remote JWKS, as a
# service holds it), then served.py judges every (case, peer).
serve_cases() {
  local alg=$1 iss=${SRV_ISS[$1]} dir=${SRV_DIR[$1]} c tok p status name why results=()
  local batch=$dir/cases.jsonl
  : >"$batch"

  # The quickstart client: client_secret_basic and the defaults (aud = the
  # issuer, 15 minutes, no scope).
  c="serve $alg quickstart token (client_secret_basic)"
  run served_py token "$iss" "${QS_ID[$alg]}" "${QS_SECRET[$alg]}" basic
  if [[ $RC != 0 ]]; then
    fail "$c" "POST /token failed (exit $RC)"
  else
    tok=$(json_get "$OUT" access_token)
    add_case "$batch" "$c -> {peer}" "$tok" "$iss" '"expect":{"alg":"'"$alg"'","ttl":900,"absent":["scope"],
      "claims":{"iss":"'"$iss"'","aud":"'"$iss"'","client_id":"'"${QS_ID[$alg]}"'"}}'
  fi

  # The admin-registered client: client_secret_post, one of its two scopes,
  # both audiences (an array), 600 s, static claims.
  c="serve $alg admin client token (client_secret_post, scope, audiences, claims)"
  run served_py token "$iss" "${ORDERS_ID[$alg]}" "${ORDERS_SECRET[$alg]}" post scope=orders:read
  if [[ $RC != 0 ]]; then
    fail "$c" "POST /token failed (exit $RC)"
  else
    tok=$(json_get "$OUT" access_token)
    add_case "$batch" "$c -> {peer}" "$tok" billing-api '"expect":{"alg":"'"$alg"'","ttl":600,
      "claims":{"iss":"'"$iss"'","aud":["orders-api","billing-api"],"client_id":"'"${ORDERS_ID[$alg]}"'",
      "scope":"orders:read",'"$ORDERS_CLAIMS"'}}'
    add_case "$batch" "serve $alg tampered token rejected by {peer}" "$(helper tamper "$tok")" billing-api \
      '"reject":"signature"'
    if [[ $alg == "$DEFAULT_ALG" ]]; then
      add_case "$batch" "serve $alg wrong audience rejected by {peer}" "$tok" "$WRONG_AUD" '"reject":"audience"'
    fi
  fi
  [[ -s $batch ]] || return 0

  for p in "${PEERS[@]}"; do
    case $p in
      pyjwt) served_py verify "$iss" "$alg" <"$batch" >"$dir/$p.jsonl" 2>"$dir/$p.stderr" || true ;;
      jose) served_js verify "$iss" "$alg" <"$batch" >"$dir/$p.jsonl" 2>"$dir/$p.stderr" || true ;;
    esac
    results+=("$p=$dir/$p.jsonl")
  done
  run served_py judge "$batch" "${results[@]}"
  if [[ $RC != 0 ]]; then
    fail "serve $alg verification" "served.py judge exited $RC"
    return 0
  fi
  while IFS=$'\t' read -r status name why; do
    if [[ $status == ok ]]; then
      ok "$name"
    else
      OUT= ERR=
      fail "$name" "$why"
      p=${name##* } # the peer: the case name's last word
      if [[ -s $dir/$p.stderr ]]; then sed 's/^/     stderr: /' "$dir/$p.stderr"; fi
    fi
  done <<<"$OUT"
}

# client_case CASE EXPECT ARGS...: openid-client (served.mjs client ARGS)
# gets a token, which must verify and carry what EXPECT says.
client_case() {
  local c=$1 expect=$2
  run served_js client "${@:3}"
  if [[ $RC != 0 ]]; then
    fail "$c" "served.mjs client exited $RC"
    return
  fi
  run served_py check "${expect//$'\n'/}" <<<"$OUT"
  if [[ $RC != 0 ]]; then fail "$c" "the token is not what the server was asked for"; else ok "$c"; fi
}

# discovery_cases ALG: strict client libraries against the discovery
# documents of one server.
discovery_cases() {
  local alg=$1 iss=${SRV_ISS[$1]} c kind kalg key pk_id
  for kind in oidc oauth; do
    case $kind in
      oidc) c="serve $alg openid-configuration accepted by authlib OpenIDProviderMetadata.validate()" ;;
      oauth) c="serve $alg oauth-authorization-server accepted by authlib AuthorizationServerMetadata.validate()" ;;
    esac
    run served_py discovery "$kind" "$iss"
    if [[ $RC == 0 ]]; then ok "$c"; else fail "$c" "authlib refused the document (exit $RC)"; fi
  done

  # openid-client: discovery from each document, then clientCredentialsGrant
  # at the discovered token endpoint.
  client_case "serve $alg openid-client discovery(openid-configuration) + clientCredentialsGrant (client_secret_basic)" \
    '{"alg":"'"$alg"'","ttl":900,"absent":["scope"],
      "claims":{"iss":"'"$iss"'","aud":"'"$iss"'","client_id":"'"${QS_ID[$alg]}"'"}}' \
    "$iss" oidc basic "${QS_ID[$alg]}" "${QS_SECRET[$alg]}" "$iss" '{}'
  client_case "serve $alg openid-client discovery(oauth-authorization-server) + clientCredentialsGrant (client_secret_post, scope, audience)" \
    '{"alg":"'"$alg"'","ttl":600,
      "claims":{"iss":"'"$iss"'","aud":"billing-api","client_id":"'"${ORDERS_ID[$alg]}"'",
      "scope":"orders:write",'"$ORDERS_CLAIMS"'}}' \
    "$iss" oauth2 post "${ORDERS_ID[$alg]}" "${ORDERS_SECRET[$alg]}" billing-api \
    '{"scope":"orders:write","audience":"billing-api"}'

  c="serve $alg openid-client wrong client secret refused (invalid_client)"
  run served_js client "$iss" oauth2 post "${ORDERS_ID[$alg]}" "not-${ORDERS_SECRET[$alg]}" billing-api '{}'
  if [[ $RC == 1 && $ERR == "rejected: clientCredentialsGrant: invalid_client:"* ]]; then
    ok "$c"
  else
    fail "$c" "want exit 1 and 'rejected: clientCredentialsGrant: invalid_client:', got exit $RC"
  fi

  # private_key_jwt: a key pair from `tessera keys generate`, its public JWKS
  # registered through the admin API; openid-client signs the assertion.
  # With an Ed25519 key openid-client (oauth4webapi) writes the RFC 9864
  # name "alg":"Ed25519", not "EdDSA"; the server reads it as EdDSA.
  for kalg in ES256 PS256 EdDSA; do
    c="serve $alg openid-client clientCredentialsGrant (private_key_jwt, $kalg assertion)"
    key=$WORK/client-$kalg.jwk.json
    run tessera keys generate --alg "$kalg" --out "$key"
    if [[ $RC == 0 ]]; then run tessera keys public "$key"; fi
    if [[ $RC != 0 ]]; then
      fail "$c" "tessera keys generate/public $kalg exited $RC"
      continue
    fi
    run served_py register "$iss" "${SRV_DIR[$alg]}/data/admin.token" \
      '{"client_name":"interop '"$kalg"' assertion","token_endpoint_auth_method":"private_key_jwt",
        "jwks":'"$OUT"',"audiences":["jobs-api"],"scope":"jobs:run","claims":{"tenant_id":"acme"}}'
    if [[ $RC != 0 ]]; then
      fail "$c" "POST /admin/clients failed (exit $RC)"
      continue
    fi
    pk_id=$(json_get "$OUT" client_id)
    client_case "$c" \
      '{"alg":"'"$alg"'","ttl":900,
        "claims":{"iss":"'"$iss"'","aud":"jobs-api","client_id":"'"$pk_id"'","scope":"jobs:run","tenant_id":"acme"}}' \
      "$iss" oidc private_key_jwt "$pk_id" "$key" jobs-api '{}'
  done
}

# Every server's cases run as one background job, all at once; a job's lines
# and counts go to its folder and are replayed here in order, so the output
# reads as if the cases ran one after another.
JOBS=()
start_job() { # start_job NAME COMMAND...
  local dir=$WORK/job-$1
  mkdir -p "$dir"
  (
    PASSED=0 FAILED=0 SKIPPED=0 FAILURES=()
    RUN_STDERR=$dir/stderr
    "${@:2}"
    printf '%s\n' "$PASSED $FAILED $SKIPPED" "${FAILURES[@]}" >"$dir/counts"
  ) >"$dir/out" 2>&1 &
  JOB_PIDS+=("$!")
  JOBS+=("$1:$!")
}
for alg in "${SERVE_ALGS[@]}"; do
  if [[ -n ${READY[$alg]:-} ]]; then start_job "$alg" serve_cases "$alg"; fi
done
if [[ -n ${READY[$DEFAULT_ALG]:-} ]]; then
  start_job discovery discovery_cases "$DEFAULT_ALG"
else
  skip "serve $DEFAULT_ALG discovery (authlib, openid-client)" "the $DEFAULT_ALG server is not ready"
fi
for job in "${JOBS[@]}"; do
  name=${job%%:*}
  wait "${job#*:}" || true
  cat "$WORK/job-$name/out"
  if [[ -s $WORK/job-$name/counts ]]; then
    {
      read -r p f s
      PASSED=$((PASSED + p)) FAILED=$((FAILED + f)) SKIPPED=$((SKIPPED + s))
      while IFS= read -r line; do [[ -z $line ]] || FAILURES+=("$line"); done
    } <"$WORK/job-$name/counts"
  else
    OUT= ERR=
    fail "serve cases ($name)" "the job stopped before it finished (its output is above)"
  fi
done
JOB_PIDS=()

# A server that died while the cases ran is a failure too.
for alg in "${SERVE_ALGS[@]}"; do
  if [[ -n ${READY[$alg]:-} ]] && ! kill -0 "${SRV_PID[$alg]}" 2>/dev/null; then
    OUT= ERR=
    fail "serve $alg still running after the cases" "the server exited"
    server_log "$alg"
  fi
done
stop_servers
echo "interop: tessera serve cases took $((SECONDS - SERVE_START)) s"

echo "interop: $PASSED passed, $FAILED failed, $SKIPPED skipped"
if ((FAILED)); then
  printf 'interop: failed: %s\n' "${FAILURES[@]}" >&2
  exit 1
fi
# A peer build without some algorithm (Node without Ed25519 or RSA-PSS, say)
# drops cases at run time; that must not pass as green.
if ((SKIPPED)); then
  echo "interop: $SKIPPED case(s) skipped (see the 'skip' lines above): every case must run" >&2
  exit 1
fi
ran=$((PASSED + FAILED))
if ((ran != EXPECTED_CASES)); then
  echo "interop: $ran cases ran, $EXPECTED_CASES expected (interop/expected_cases): a case was lost or added; update the file when cases are added on purpose" >&2
  exit 1
fi

//! Side-by-side JWT benchmarks: tessera-jose, the raw aws-lc-rs floor,
//! `jsonwebtoken` (aws-lc-rs backend) and `jwt-simple` (pure-Rust backend).
//!
//! Every library signs and verifies the same claims with the same key
//! material; `main` asserts once, before measuring, that each library's
//! tokens verify in tessera and tessera's in each library. See
//! `bench/README.md` for how to run it and read the results.

use std::collections::HashSet;
use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self as sig, KeyPair as _, ParsedPublicKey};
use aws_lc_rs::{hmac, rsa};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};
use jsonwebtoken as jwt;
use jwt_simple::prelude as js;
use jwt_simple::prelude::{
    ECDSAP256KeyPairLike as _, ECDSAP256PublicKeyLike as _, ECDSAP384KeyPairLike as _,
    ECDSAP384PublicKeyLike as _, EdDSAKeyPairLike as _, EdDSAPublicKeyLike as _, MACLike as _,
    RSAKeyPairLike as _, RSAPublicKeyLike as _,
};
use serde::{Deserialize, Serialize};
use tessera_bench::Op;
use tessera_jose::{b64, verify_at, Algorithm, KeySet, Signer, SigningKey, UnixTime, Validation};

const KID: &str = "key-2024-01";
const ISS: &str = "https://auth.example.com";
const AUD: &str = "orders-api";

/// The one claims type every library signs and decodes into.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    iat: u64,
    jti: String,
    tenant_id: String,
    email: String,
}

/// The non-registered members of [`Claims`]: jwt-simple keeps the
/// registered claims in its own `JWTClaims` envelope and flattens these
/// into it, so the JSON is the same set of members.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Extra {
    tenant_id: String,
    email: String,
}

fn claims() -> Claims {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let mut r = [0u8; 16];
    SystemRandom::new().fill(&mut r).expect("random");
    r[6] = (r[6] & 0x0f) | 0x40; // UUID version 4
    r[8] = (r[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h: String = r.iter().map(|b| format!("{b:02x}")).collect();
    Claims {
        iss: ISS.into(),
        sub: "user_abc123".into(),
        aud: AUD.into(),
        exp: now + 900,
        iat: now,
        jti: format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        ),
        tenant_id: "acme".into(),
        email: "a@example.com".into(),
    }
}

fn to_js(c: &Claims) -> js::JWTClaims<Extra> {
    js::JWTClaims {
        issued_at: Some(js::UnixTimeStamp::from_secs(c.iat)),
        expires_at: Some(js::UnixTimeStamp::from_secs(c.exp)),
        invalid_before: None,
        issuer: Some(c.iss.clone()),
        subject: Some(c.sub.clone()),
        audiences: Some(js::Audiences::AsString(c.aud.clone())),
        jwt_id: Some(c.jti.clone()),
        nonce: None,
        custom: Extra {
            tenant_id: c.tenant_id.clone(),
            email: c.email.clone(),
        },
    }
}

/// Moves jwt-simple's decoded envelope into [`Claims`] (no allocation).
fn from_js(c: js::JWTClaims<Extra>) -> Claims {
    Claims {
        iss: c.issuer.expect("iss"),
        sub: c.subject.expect("sub"),
        aud: c.audiences.expect("aud").into_string().expect("one aud"),
        exp: c.expires_at.expect("exp").as_secs(),
        iat: c.issued_at.expect("iat").as_secs(),
        jti: c.jwt_id.expect("jti"),
        tenant_id: c.custom.tenant_id,
        email: c.custom.email,
    }
}

/// PEM from DER, reusing tessera's base64url encoder (and mapping it to the
/// standard alphabet with padding) so the bench needs no extra dependency.
fn pem(label: &str, der: &[u8]) -> String {
    let mut b: String = b64::encode(der)
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while b.len() % 4 != 0 {
        b.push('=');
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("ascii"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The raw aws-lc-rs primitives: keys parsed once, no JSON, no base64.
enum FloorSigner {
    Hmac(Box<hmac::Key>),
    Rsa(rsa::KeyPair, &'static dyn sig::RsaEncoding),
    Ec(sig::EcdsaKeyPair),
    Ed(sig::Ed25519KeyPair),
}

enum FloorVerifier {
    Hmac(Box<hmac::Key>),
    Asym(ParsedPublicKey),
}

type JsSign = Box<dyn Fn(js::JWTClaims<Extra>) -> String>;
type JsVerify = Box<dyn Fn(&str, js::VerificationOptions) -> Claims>;

struct Jsonwebtoken {
    header: jwt::Header,
    encoding: jwt::EncodingKey,
    decoding: jwt::DecodingKey,
    validation: jwt::Validation,
}

/// Everything needed to sign and verify one algorithm with every library.
struct Case {
    alg: Algorithm,
    signer: Signer,
    keys: KeySet,
    policy: Validation,
    floor_signer: FloorSigner,
    floor_verifier: FloorVerifier,
    jsonwebtoken: Option<Jsonwebtoken>,
    jwt_simple: Option<(JsSign, JsVerify)>,
}

/// Shared key material, as each library wants to import it.
struct Material {
    /// PKCS#8 v1 DER (asymmetric) or the raw secret (HMAC).
    private: Vec<u8>,
    /// SubjectPublicKeyInfo DER (asymmetric only).
    spki: Vec<u8>,
}

fn material(alg: Algorithm) -> Material {
    let rng = SystemRandom::new();
    match alg {
        Algorithm::HS256 => {
            let mut secret = vec![0u8; 32];
            rng.fill(&mut secret).expect("random");
            Material {
                private: secret,
                spki: Vec::new(),
            }
        }
        Algorithm::RS256 | Algorithm::PS256 => {
            let kp = rsa::KeyPair::generate(rsa::KeySize::Rsa2048).expect("rsa keygen");
            let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&kp).expect("pkcs8");
            let spki = AsDer::<PublicKeyX509Der>::as_der(kp.public_key()).expect("spki");
            Material {
                private: pkcs8.as_ref().to_vec(),
                spki: spki.as_ref().to_vec(),
            }
        }
        Algorithm::ES256 | Algorithm::ES384 | Algorithm::ES512 => {
            let kp = sig::EcdsaKeyPair::generate(ecdsa_signing(alg)).expect("ec keygen");
            let pkcs8 = kp.to_pkcs8v1().expect("pkcs8");
            let spki = AsDer::<PublicKeyX509Der>::as_der(kp.public_key()).expect("spki");
            Material {
                private: pkcs8.as_ref().to_vec(),
                spki: spki.as_ref().to_vec(),
            }
        }
        _ => {
            let kp = sig::Ed25519KeyPair::generate().expect("ed25519 keygen");
            let pkcs8 = kp.to_pkcs8v1().expect("pkcs8");
            let spki = AsDer::<PublicKeyX509Der>::as_der(kp.public_key()).expect("spki");
            Material {
                private: pkcs8.as_ref().to_vec(),
                spki: spki.as_ref().to_vec(),
            }
        }
    }
}

fn ecdsa_signing(alg: Algorithm) -> &'static sig::EcdsaSigningAlgorithm {
    match alg {
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
        _ => &sig::ECDSA_P521_SHA512_FIXED_SIGNING,
    }
}

fn floor(alg: Algorithm, m: &Material) -> (FloorSigner, FloorVerifier) {
    let verification: &'static dyn sig::VerificationAlgorithm = match alg {
        Algorithm::HS256 => {
            return (
                FloorSigner::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, &m.private))),
                FloorVerifier::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, &m.private))),
            )
        }
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::ES512 => &sig::ECDSA_P521_SHA512_FIXED,
        _ => &sig::ED25519,
    };
    let signer = match alg {
        Algorithm::RS256 => FloorSigner::Rsa(
            rsa::KeyPair::from_pkcs8(&m.private).expect("rsa pkcs8"),
            &sig::RSA_PKCS1_SHA256,
        ),
        Algorithm::PS256 => FloorSigner::Rsa(
            rsa::KeyPair::from_pkcs8(&m.private).expect("rsa pkcs8"),
            &sig::RSA_PSS_SHA256,
        ),
        Algorithm::EdDSA => FloorSigner::Ed(
            sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&m.private).expect("ed pkcs8"),
        ),
        _ => FloorSigner::Ec(
            sig::EcdsaKeyPair::from_pkcs8(ecdsa_signing(alg), &m.private).expect("ec pkcs8"),
        ),
    };
    // The same public-key encoding tessera hands to aws-lc-rs: the raw
    // point / PKCS#1 RSAPublicKey / 32 Ed25519 bytes.
    let public = match &signer {
        FloorSigner::Rsa(kp, _) => kp.public_key().as_ref().to_vec(),
        FloorSigner::Ec(kp) => kp.public_key().as_ref().to_vec(),
        FloorSigner::Ed(kp) => kp.public_key().as_ref().to_vec(),
        FloorSigner::Hmac(_) => unreachable!(),
    };
    let verifier =
        FloorVerifier::Asym(ParsedPublicKey::new(verification, public).expect("public key"));
    (signer, verifier)
}

fn jsonwebtoken_for(alg: Algorithm, m: &Material) -> Option<Jsonwebtoken> {
    let (jalg, encoding, decoding) = match alg {
        Algorithm::HS256 => (
            jwt::Algorithm::HS256,
            jwt::EncodingKey::from_secret(&m.private),
            jwt::DecodingKey::from_secret(&m.private),
        ),
        Algorithm::RS256 | Algorithm::PS256 => (
            if alg == Algorithm::RS256 {
                jwt::Algorithm::RS256
            } else {
                jwt::Algorithm::PS256
            },
            jwt::EncodingKey::from_rsa_pem(pem("PRIVATE KEY", &m.private).as_bytes()).ok()?,
            jwt::DecodingKey::from_rsa_pem(pem("PUBLIC KEY", &m.spki).as_bytes()).ok()?,
        ),
        Algorithm::ES256 | Algorithm::ES384 => (
            if alg == Algorithm::ES256 {
                jwt::Algorithm::ES256
            } else {
                jwt::Algorithm::ES384
            },
            jwt::EncodingKey::from_ec_pem(pem("PRIVATE KEY", &m.private).as_bytes()).ok()?,
            jwt::DecodingKey::from_ec_pem(pem("PUBLIC KEY", &m.spki).as_bytes()).ok()?,
        ),
        // jsonwebtoken has no ES512.
        Algorithm::ES512 => return None,
        _ => (
            jwt::Algorithm::EdDSA,
            jwt::EncodingKey::from_ed_pem(pem("PRIVATE KEY", &m.private).as_bytes()).ok()?,
            jwt::DecodingKey::from_ed_pem(pem("PUBLIC KEY", &m.spki).as_bytes()).ok()?,
        ),
    };
    let mut header = jwt::Header::new(jalg);
    header.kid = Some(KID.into());
    let mut validation = jwt::Validation::new(jalg);
    validation.set_issuer(&[ISS]);
    validation.set_audience(&[AUD]);
    Some(Jsonwebtoken {
        header,
        encoding,
        decoding,
        validation,
    })
}

fn jwt_simple_for(alg: Algorithm, m: &Material) -> Option<(JsSign, JsVerify)> {
    macro_rules! pair {
        ($kp:expr, $pk:expr) => {{
            let kp = $kp.with_key_id(KID);
            let pk = $pk.with_key_id(KID);
            let sign: JsSign = Box::new(move |c| kp.sign(c).expect("jwt-simple sign"));
            let verify: JsVerify = Box::new(move |t, o| {
                from_js(
                    pk.verify_token::<Extra>(t, Some(o))
                        .expect("jwt-simple verify"),
                )
            });
            Some((sign, verify))
        }};
    }
    match alg {
        Algorithm::HS256 => {
            let key = js::HS256Key::from_bytes(&m.private).with_key_id(KID);
            let vkey = key.clone();
            let sign: JsSign = Box::new(move |c| key.authenticate(c).expect("jwt-simple sign"));
            let verify: JsVerify = Box::new(move |t, o| {
                from_js(
                    vkey.verify_token::<Extra>(t, Some(o))
                        .expect("jwt-simple verify"),
                )
            });
            Some((sign, verify))
        }
        Algorithm::RS256 => pair!(
            js::RS256KeyPair::from_der(&m.private).ok()?,
            js::RS256PublicKey::from_der(&m.spki).ok()?
        ),
        Algorithm::PS256 => pair!(
            js::PS256KeyPair::from_der(&m.private).ok()?,
            js::PS256PublicKey::from_der(&m.spki).ok()?
        ),
        Algorithm::ES256 => pair!(
            js::ES256KeyPair::from_der(&m.private).ok()?,
            js::ES256PublicKey::from_der(&m.spki).ok()?
        ),
        Algorithm::ES384 => pair!(
            js::ES384KeyPair::from_der(&m.private).ok()?,
            js::ES384PublicKey::from_der(&m.spki).ok()?
        ),
        // jwt-simple has no ES512.
        Algorithm::ES512 => None,
        _ => pair!(
            js::Ed25519KeyPair::from_der(&m.private).ok()?,
            js::Ed25519PublicKey::from_der(&m.spki).ok()?
        ),
    }
}

fn js_options() -> js::VerificationOptions {
    js::VerificationOptions {
        allowed_issuers: Some(HashSet::from([ISS.to_owned()])),
        allowed_audiences: Some(HashSet::from([AUD.to_owned()])),
        ..Default::default()
    }
}

impl Case {
    fn new(alg: Algorithm) -> Self {
        let m = material(alg);
        let key = match alg {
            Algorithm::HS256 => SigningKey::from_secret(alg, &m.private),
            _ => SigningKey::from_pkcs8_der(&m.private, alg),
        }
        .expect("tessera import")
        .with_kid(KID);
        let keys = KeySet::new(vec![key.verifying_key().expect("verifying key")]);
        let (floor_signer, floor_verifier) = floor(alg, &m);
        let jsonwebtoken = jsonwebtoken_for(alg, &m);
        let jwt_simple = jwt_simple_for(alg, &m);
        assert_eq!(
            jsonwebtoken.is_some(),
            !matches!(alg, Algorithm::ES512),
            "jsonwebtoken import failed for {alg}"
        );
        assert_eq!(
            jwt_simple.is_some(),
            !matches!(alg, Algorithm::ES512),
            "jwt-simple import failed for {alg}"
        );
        Self {
            alg,
            signer: Signer::new(key),
            keys,
            policy: Validation::new().issuer(ISS).audience(AUD),
            floor_signer,
            floor_verifier,
            jsonwebtoken,
            jwt_simple,
        }
    }

    fn tessera_verify(&self, token: &str) -> Claims {
        verify_at::<Claims>(token, &self.keys, &self.policy, UnixTime::now())
            .unwrap_or_else(|e| panic!("tessera rejects a {} token: {e}", self.alg))
            .claims
    }

    fn floor_sign(&self, rng: &SystemRandom, msg: &[u8], out: &mut [u8]) -> usize {
        match &self.floor_signer {
            FloorSigner::Hmac(key) => {
                let tag = hmac::sign(key, msg);
                out[..tag.as_ref().len()].copy_from_slice(tag.as_ref());
                tag.as_ref().len()
            }
            FloorSigner::Rsa(kp, padding) => {
                let n = kp.public_modulus_len();
                kp.sign(*padding, rng, msg, &mut out[..n])
                    .expect("rsa sign");
                n
            }
            FloorSigner::Ec(kp) => {
                let s = kp.sign(rng, msg).expect("ec sign");
                out[..s.as_ref().len()].copy_from_slice(s.as_ref());
                s.as_ref().len()
            }
            FloorSigner::Ed(kp) => {
                let s = kp.sign(msg);
                out[..s.as_ref().len()].copy_from_slice(s.as_ref());
                s.as_ref().len()
            }
        }
    }

    fn floor_verify(&self, msg: &[u8], signature: &[u8]) -> bool {
        match &self.floor_verifier {
            FloorVerifier::Hmac(key) => hmac::verify(key, msg, signature).is_ok(),
            FloorVerifier::Asym(pk) => pk.verify_sig(msg, signature).is_ok(),
        }
    }
}

/// A token split into its signing input and decoded signature.
fn split(token: &str) -> (&str, Vec<u8>) {
    let dot = token.rfind('.').expect("compact JWS");
    (
        &token[..dot],
        b64::decode(&token[dot + 1..]).expect("base64url signature"),
    )
}

fn decode_part(token: &str, i: usize) -> String {
    let part = token.split('.').nth(i).expect("part");
    String::from_utf8(b64::decode(part).expect("base64url")).expect("utf-8")
}

/// Once per algorithm, before measuring: every library's token verifies in
/// tessera, tessera's verifies in every library, the floor agrees with
/// tessera both ways, and all tokens carry the same header and claims.
fn sanity(case: &Case, c: &Claims) {
    let alg = case.alg;
    let token = case.signer.sign(c).expect("tessera sign");
    assert_eq!(
        decode_part(&token, 0),
        format!(r#"{{"alg":"{}","kid":"{KID}","typ":"JWT"}}"#, alg.name())
    );
    assert_eq!(case.tessera_verify(&token), *c);

    // Floor <-> tessera.
    let (input, signature) = split(&token);
    assert!(
        case.floor_verify(input.as_bytes(), &signature),
        "{alg}: floor rejects tessera"
    );
    let mut out = [0u8; 1024];
    let n = case.floor_sign(&SystemRandom::new(), input.as_bytes(), &mut out);
    let floor_token = format!("{input}.{}", b64::encode(&out[..n]));
    assert_eq!(
        case.tessera_verify(&floor_token),
        *c,
        "{alg}: floor signature"
    );

    let mut lengths = vec![("tessera", token.len())];
    if let Some(j) = &case.jsonwebtoken {
        let theirs = jwt::encode(&j.header, c, &j.encoding).expect("jsonwebtoken encode");
        assert_eq!(
            case.tessera_verify(&theirs),
            *c,
            "{alg}: jsonwebtoken -> tessera"
        );
        let data = jwt::decode::<Claims>(&token, &j.decoding, &j.validation)
            .unwrap_or_else(|e| panic!("{alg}: tessera -> jsonwebtoken: {e}"));
        assert_eq!(data.claims, *c);
        lengths.push(("jsonwebtoken", theirs.len()));
    }
    if let Some((sign, verify)) = &case.jwt_simple {
        let theirs = sign(to_js(c));
        assert_eq!(
            decode_part(&theirs, 0),
            decode_part(&token, 0),
            "{alg}: jwt-simple header"
        );
        assert_eq!(
            case.tessera_verify(&theirs),
            *c,
            "{alg}: jwt-simple -> tessera"
        );
        assert_eq!(
            verify(&token, js_options()),
            *c,
            "{alg}: tessera -> jwt-simple"
        );
        lengths.push(("jwt-simple", theirs.len()));
    }
    eprintln!("sanity {alg}: cross-verification ok; token bytes {lengths:?}");
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, alg: Algorithm) {
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    if matches!(alg, Algorithm::RS256 | Algorithm::PS256) {
        // RSA signing is ~1 ms (and several ms in pure-Rust jwt-simple):
        // fewer, flat samples keep the group within its time budget.
        group.sample_size(30).sampling_mode(SamplingMode::Flat);
    } else {
        group.sample_size(50);
    }
}

/// The verify rows of one algorithm, each verifying the same token.
fn verify_ops<'a>(case: &'a Case, token: &'a str) -> Vec<Op<'a>> {
    let (input, signature) = split(token);
    let mut ops: Vec<Op<'a>> = vec![
        (
            "tessera",
            Box::new(move || {
                black_box(
                    verify_at::<Claims>(
                        black_box(token),
                        &case.keys,
                        &case.policy,
                        UnixTime::now(),
                    )
                    .expect("verify"),
                );
            }),
        ),
        (
            "floor",
            Box::new(move || {
                assert!(case.floor_verify(black_box(input.as_bytes()), black_box(&signature)));
            }),
        ),
        // A yardstick, not a verifier: the least any verifier that returns
        // typed claims must do — the floor, base64url of signature and
        // payload, serde into `Claims`, and the exp/iss/aud comparisons. No
        // header parsing, no duplicate-name check, no key binding, no size limit.
        (
            "typed-floor",
            Box::new(move || {
                let now = UnixTime::now().secs().unsigned_abs();
                let token = black_box(token);
                let dot = token.rfind('.').expect("compact JWS");
                let signature = b64::decode(&token[dot + 1..]).expect("base64url");
                assert!(case.floor_verify(&token.as_bytes()[..dot], &signature));
                let payload = token[..dot].split_once('.').expect("compact JWS").1;
                let claims: Claims =
                    serde_json::from_slice(&b64::decode(payload).expect("base64url"))
                        .expect("claims");
                assert!(claims.exp > now && claims.iss == ISS && claims.aud == AUD);
                black_box(claims);
            }),
        ),
    ];
    if let Some(j) = &case.jsonwebtoken {
        ops.push((
            "jsonwebtoken",
            Box::new(move || {
                black_box(
                    jwt::decode::<Claims>(black_box(token), &j.decoding, &j.validation)
                        .expect("verify"),
                );
            }),
        ));
    }
    if let Some((_, verify)) = &case.jwt_simple {
        // verify_token takes its options by value, so each op clones them
        // (a few small allocations, well under 5% of its cost).
        let options = js_options();
        ops.push((
            "jwt-simple",
            Box::new(move || {
                black_box(verify(black_box(token), options.clone()));
            }),
        ));
    }
    ops
}

/// The sign rows of one algorithm, each signing the same claims.
fn sign_ops<'a>(case: &'a Case, claims: &'a Claims) -> Vec<Op<'a>> {
    let token = case.signer.sign(claims).expect("tessera sign");
    let input = split(&token).0.to_owned();
    let header = input.split_once('.').expect("compact JWS").0.to_owned();
    let rng = SystemRandom::new();
    let mut out = [0u8; 1024];
    let mut yardstick_out = [0u8; 1024];
    let yardstick_rng = SystemRandom::new();
    let mut ops: Vec<Op<'a>> = vec![
        (
            "tessera",
            Box::new(move || {
                black_box(case.signer.sign(black_box(claims)).expect("sign"));
            }),
        ),
        (
            "floor",
            Box::new(move || {
                black_box(case.floor_sign(&rng, black_box(input.as_bytes()), &mut out));
            }),
        ),
        // The yardstick for signing: serde_json of `Claims`, base64url, the
        // floor signature and its base64url, into one token string.
        (
            "typed-floor",
            Box::new(move || {
                let json = serde_json::to_vec(black_box(claims)).expect("json");
                let mut token = String::with_capacity(header.len() + json.len() * 2 + 400);
                token.push_str(&header);
                token.push('.');
                b64::encode_into(&json, &mut token);
                let n = case.floor_sign(&yardstick_rng, token.as_bytes(), &mut yardstick_out);
                token.push('.');
                b64::encode_into(&yardstick_out[..n], &mut token);
                black_box(token);
            }),
        ),
    ];
    if let Some(j) = &case.jsonwebtoken {
        ops.push((
            "jsonwebtoken",
            Box::new(move || {
                black_box(jwt::encode(&j.header, black_box(claims), &j.encoding).expect("sign"));
            }),
        ));
    }
    if let Some((sign, _)) = &case.jwt_simple {
        // jwt-simple takes its claims envelope by value; each op builds it.
        ops.push((
            "jwt-simple",
            Box::new(move || {
                black_box(sign(to_js(black_box(claims))));
            }),
        ));
    }
    ops
}

fn bench_group(c: &mut Criterion, name: String, alg: Algorithm, ops: Vec<Op<'_>>) {
    let mut group = c.benchmark_group(name);
    configure(&mut group, alg);
    for (name, mut op) in ops {
        group.bench_function(name, |b| b.iter(&mut op));
    }
    group.finish();
}

fn bench_rsa_keygen(c: &mut Criterion) {
    let mut group = c.benchmark_group("rsa-keygen");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(8));
    for bits in [2048, 3072] {
        group.bench_function(bits.to_string(), |b| {
            b.iter(|| SigningKey::generate_rsa(Algorithm::RS256, black_box(bits)).expect("keygen"))
        });
    }
    group.finish();
}

const ALGS: [Algorithm; 7] = [
    Algorithm::HS256,
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::ES512,
    Algorithm::EdDSA,
];

fn main() {
    let claims = claims();
    let cases: Vec<Case> = ALGS.into_iter().map(Case::new).collect();
    for case in &cases {
        sanity(case, &claims);
    }

    if std::env::args().any(|a| a == "--interleaved") {
        interleaved::run(&cases, &claims);
        return;
    }

    let mut c = Criterion::default().configure_from_args();
    let tokens: Vec<String> = cases
        .iter()
        .map(|case| case.signer.sign(&claims).expect("tessera sign"))
        .collect();
    for (case, token) in cases.iter().zip(&tokens) {
        bench_group(
            &mut c,
            format!("verify-{}", case.alg),
            case.alg,
            verify_ops(case, token),
        );
    }
    for case in &cases {
        bench_group(
            &mut c,
            format!("sign-{}", case.alg),
            case.alg,
            sign_ops(case, &claims),
        );
    }
    bench_rsa_keygen(&mut c);
    c.final_summary();
}

/// `cargo bench -p tessera-bench --bench jwt -- --interleaved`: every row of
/// a group measured in turn, round after round, in thread CPU time (see
/// `tessera_bench::measure`), printed as markdown with the issue's goals.
mod interleaved {
    use super::{sign_ops, verify_ops, Case, Claims, ALGS};
    use tessera_bench::measure;
    use tessera_jose::Algorithm;

    const ROUNDS: usize = 31;

    /// (operation, algorithm, (row, median ns) for each row).
    type Measured = (&'static str, Algorithm, Vec<(&'static str, f64)>);
    const ROWS: [&str; 5] = [
        "tessera",
        "floor",
        "typed-floor",
        "jsonwebtoken",
        "jwt-simple",
    ];

    pub(super) fn run(cases: &[Case], claims: &Claims) {
        let mut results: Vec<Measured> = Vec::new();
        for case in cases {
            let token = case.signer.sign(claims).expect("tessera sign");
            for (op, mut ops) in [
                ("verify", verify_ops(case, &token)),
                ("sign", sign_ops(case, claims)),
            ] {
                let times = measure(&mut ops, ROUNDS);
                let rows = ops.iter().map(|(name, _)| *name).zip(times).collect();
                eprintln!("measured {op}-{}", case.alg);
                results.push((op, case.alg, rows));
            }
        }
        for op in ["verify", "sign"] {
            println!("\n### {op}, interleaved (median ns/op over {ROUNDS} rounds, thread CPU time; ratio to floor)\n");
            let compared: Vec<&str> = ROWS.into_iter().filter(|r| *r != "floor").collect();
            let heads: Vec<String> = compared.iter().map(|r| format!("{r}/floor")).collect();
            println!("| alg | {} | {} |", ROWS.join(" | "), heads.join(" | "));
            println!(
                "|---|{}|",
                vec!["--:"; ROWS.len() + compared.len()].join("|")
            );
            for (_, alg, rows) in results.iter().filter(|r| r.0 == op) {
                let get = |name: &str| rows.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
                let floor = get("floor").unwrap_or(f64::NAN);
                let ns: Vec<String> = ROWS
                    .iter()
                    .map(|r| get(r).map_or("—".into(), |t| format!("{t:.0}")))
                    .collect();
                let ratios: Vec<String> = compared
                    .iter()
                    .map(|r| get(r).map_or("—".into(), |t| format!("{:.2}x", t / floor)))
                    .collect();
                println!("| {alg} | {} | {} |", ns.join(" | "), ratios.join(" | "));
            }
        }
        goals(&results);
    }

    fn goals(results: &[Measured]) {
        let ratio = |op: &str, alg: Algorithm| {
            results
                .iter()
                .find(|r| r.0 == op && r.1 == alg)
                .map(|(_, _, rows)| {
                    let get = |name: &str| {
                        rows.iter()
                            .find(|(n, _)| *n == name)
                            .map_or(f64::NAN, |(_, t)| *t)
                    };
                    get("tessera") / get("floor")
                })
        };
        let mut faster = Vec::new();
        for (op, alg, rows) in results {
            let tessera = rows
                .iter()
                .find(|(n, _)| *n == "tessera")
                .map_or(f64::NAN, |(_, t)| *t);
            for (peer, t) in rows
                .iter()
                .filter(|(n, _)| *n == "jsonwebtoken" || *n == "jwt-simple")
            {
                if *t <= tessera {
                    faster.push(format!(
                        "{op} {alg}: {peer} {t:.0} ns <= tessera {tessera:.0} ns"
                    ));
                }
            }
        }
        let check = |op: &str, algs: &[Algorithm], limit: f64| {
            let parts: Vec<String> = algs
                .iter()
                .filter_map(|&a| ratio(op, a).map(|r| (a, r)))
                .map(|(a, r)| format!("{a} {r:.2}x{}", if r <= limit { "" } else { " ✗" }))
                .collect();
            let met = algs
                .iter()
                .all(|&a| ratio(op, a).is_some_and(|r| r <= limit));
            format!(
                "{} ({})",
                if met { "**met**" } else { "**not met**" },
                parts.join(", ")
            )
        };
        let asymmetric: Vec<Algorithm> = ALGS.into_iter().filter(|a| !a.is_symmetric()).collect();
        println!("\n### Goals (interleaved figures)\n");
        println!(
            "1. faster than both peers for every algorithm, verify and sign: {}",
            if faster.is_empty() {
                "**met**".to_owned()
            } else {
                format!("**not met** ({})", faster.join("; "))
            }
        );
        println!(
            "2. verify within 1.05x of the floor, asymmetric: {}",
            check("verify", &asymmetric, 1.05)
        );
        println!(
            "3. HS256 verify within 2x of raw HMAC: {}",
            check("verify", &[Algorithm::HS256], 2.0)
        );
        println!(
            "4. sign within 1.05x of the floor, asymmetric: {}",
            check("sign", &asymmetric, 1.05)
        );
        println!(
            "5. HS256 sign within 1.5x of raw HMAC: {}",
            check("sign", &[Algorithm::HS256], 1.5)
        );
    }
}

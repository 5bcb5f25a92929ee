//! Claims: iss, aud, typ, exp and nbf.

use std::time::Duration;

use serde_json::json;
use tessera_jose::{ErrorKind, Validation};

use super::{
    accept, accept_at, all_keys, claims, forge, fx, reject, reject_at, token_with, EXP, NOW,
};

// ---------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------

#[test]
fn issuer_checks() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new().issuer("https://auth.example.com");
    let t = |iss: &str| token_with(&f.es256, &format!(r#"{{"exp":{EXP}{iss}}}"#));
    accept(&t(r#","iss":"https://auth.example.com""#), &keys, &v);
    for wrong in [
        r#","iss":"https://evil.example.com""#,
        r#","iss":"https://auth.example.com/""#,
        r#","iss":"HTTPS://AUTH.EXAMPLE.COM""#,
        r#","iss":"""#,
    ] {
        reject(&t(wrong), &keys, &v, ErrorKind::IssuerMismatch);
    }
    reject(&t(""), &keys, &v, ErrorKind::MissingClaim);
    // Not a string: malformed whatever the policy.
    for bad in [
        r#","iss":1"#,
        r#","iss":null"#,
        r#","iss":["https://auth.example.com"]"#,
    ] {
        reject(&t(bad), &keys, &v, ErrorKind::Malformed);
        reject(&t(bad), &keys, &Validation::new(), ErrorKind::Malformed);
    }
}

#[test]
fn audience_checks() {
    let f = fx();
    let keys = all_keys();
    let api = Validation::new().audience("orders-api");
    let none = Validation::new();
    let t = |aud: &str| token_with(&f.es256, &format!(r#"{{"exp":{EXP}{aud}}}"#));
    accept(&t(r#","aud":"orders-api""#), &keys, &api);
    accept(&t(r#","aud":["other","orders-api"]"#), &keys, &api);
    accept(&t(""), &keys, &none);
    // Wrong audience, string and array forms.
    for wrong in [
        r#","aud":"billing-api""#,
        r#","aud":"Orders-api""#,
        r#","aud":["billing-api"]"#,
        r#","aud":["billing-api","orders-api "]"#,
        r#","aud":[]"#,
    ] {
        reject(&t(wrong), &keys, &api, ErrorKind::AudienceMismatch);
    }
    // An audience while the verifier names none.
    for present in [
        r#","aud":"orders-api""#,
        r#","aud":["orders-api"]"#,
        r#","aud":[]"#,
    ] {
        reject(&t(present), &keys, &none, ErrorKind::AudienceMismatch);
    }
    reject(&t(""), &keys, &api, ErrorKind::MissingClaim);
    // Not a string or an array of strings.
    for bad in [
        r#","aud":["orders-api",1]"#,
        r#","aud":[null]"#,
        r#","aud":[["orders-api"]]"#,
        r#","aud":1"#,
        r#","aud":{}"#,
        r#","aud":null"#,
    ] {
        reject(&t(bad), &keys, &api, ErrorKind::Malformed);
    }
}

#[test]
fn type_checks() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new().typ("at+jwt");
    let t = |typ: Option<&str>| {
        let mut header = json!({"alg": "ES256", "kid": "ec1"});
        if let Some(typ) = typ {
            header["typ"] = typ.into();
        }
        forge(&f.es256, &header.to_string(), &claims())
    };
    for ok in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/At+Jwt",
    ] {
        accept(&t(Some(ok)), &keys, &v);
    }
    for wrong in [
        "JWT",
        "jwt",
        "at+jwt ",
        "application/jwt",
        "application/",
        "",
        "at",
    ] {
        reject(&t(Some(wrong)), &keys, &v, ErrorKind::TypeMismatch);
    }
    reject(&t(None), &keys, &v, ErrorKind::TypeMismatch);
    // Any typ when the policy names none.
    accept(&t(Some("whatever")), &keys, &Validation::new());
    // typ that is not a string.
    let header = r#"{"alg":"ES256","kid":"ec1","typ":1}"#;
    reject(
        &forge(&f.es256, header, &claims()),
        &keys,
        &Validation::new(),
        ErrorKind::Malformed,
    );
}

#[test]
fn expiry_and_not_before_at_the_leeway_boundaries() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new(); // 60 s leeway
    let e = EXP;
    let t = token_with(&f.es256, &format!(r#"{{"exp":{e}}}"#));
    accept_at(&t, &keys, &v, e - 1);
    accept_at(&t, &keys, &v, e + 59);
    reject_at(&t, &keys, &v, e + 60, ErrorKind::Expired);
    reject_at(&t, &keys, &v, e + 61, ErrorKind::Expired);
    reject_at(&t, &keys, &v, i64::MAX, ErrorKind::Expired);
    // Without leeway, expired exactly at exp (RFC 7519 §4.1.4: now must be before exp).
    let strict = Validation::new().leeway(Duration::ZERO);
    accept_at(&t, &keys, &strict, e - 1);
    reject_at(&t, &keys, &strict, e, ErrorKind::Expired);
    // Fractional exp is truncated towards minus infinity.
    let t = token_with(&f.es256, &format!(r#"{{"exp":{e}.9}}"#));
    accept_at(&t, &keys, &strict, e - 1);
    reject_at(&t, &keys, &strict, e, ErrorKind::Expired);

    let nbf = NOW + 1000;
    let t = token_with(&f.es256, &format!(r#"{{"exp":{},"nbf":{nbf}}}"#, nbf + 600));
    accept_at(&t, &keys, &v, nbf);
    accept_at(&t, &keys, &v, nbf - 60);
    reject_at(&t, &keys, &v, nbf - 61, ErrorKind::NotYetValid);
    reject_at(&t, &keys, &v, NOW, ErrorKind::NotYetValid);
    accept_at(&t, &keys, &strict, nbf);
    reject_at(&t, &keys, &strict, nbf - 1, ErrorKind::NotYetValid);
}

#[test]
fn exp_is_required_and_typed() {
    let f = fx();
    let keys = all_keys();
    let v = Validation::new();
    accept(
        &token_with(&f.es256, &format!(r#"{{"exp":{EXP}}}"#)),
        &keys,
        &v,
    );
    reject(
        &token_with(&f.es256, r#"{"sub":"u"}"#),
        &keys,
        &v,
        ErrorKind::MissingClaim,
    );
    reject(
        &token_with(&f.es256, "{}"),
        &keys,
        &v,
        ErrorKind::MissingClaim,
    );
    for exp in [
        format!(r#""{EXP}""#),
        "1e400".to_owned(),
        "-1e400".to_owned(),
        "9223372036854775808".to_owned(),
        "18446744073709551616".to_owned(),
        "1e19".to_owned(),
        "true".to_owned(),
        "null".to_owned(),
        format!("[{EXP}]"),
        format!(r#"{{"t":{EXP}}}"#),
    ] {
        for claim in ["exp", "nbf", "iat"] {
            let payload = if claim == "exp" {
                format!(r#"{{"exp":{exp}}}"#)
            } else {
                format!(r#"{{"exp":{EXP},"{claim}":{exp}}}"#)
            };
            reject(
                &token_with(&f.es256, &payload),
                &keys,
                &v,
                ErrorKind::Malformed,
            );
        }
    }
    // Other registered string claims must be strings.
    for bad in [r#""sub":1"#, r#""jti":{}"#, r#""sub":null"#] {
        let payload = format!(r#"{{"exp":{EXP},{bad}}}"#);
        reject(
            &token_with(&f.es256, &payload),
            &keys,
            &v,
            ErrorKind::Malformed,
        );
    }
}

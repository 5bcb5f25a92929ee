//! Secrets stay secret: no error message prints private key material.

use serde_json::{json, Value};

use super::crafted::b64e;
use super::Dir;

// ---------------------------------------------------------------------------
// Secrets stay secret
// ---------------------------------------------------------------------------

// No error message of verify, decode, lint, keys public or sign prints the
// private members of a key, whatever is wrong with it.
#[test]
fn private_key_material_is_never_printed_in_errors() {
    let dir = Dir::new();
    for alg in ["ES256", "RS256", "EdDSA", "HS256"] {
        let key = dir.genkey(alg, "key.json", &["--kid", "k"]);
        let secrets: Vec<String> = ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .filter_map(|m| key.get(*m))
            .map(|v| v.as_str().unwrap()[..12].to_owned())
            .collect();
        let token = dir.sign("key.json", &[]);
        let public = if alg == "HS256" {
            "key.json"
        } else {
            "jwks.json"
        };
        if alg != "HS256" {
            dir.public(&["key.json"], "jwks.json");
        }

        // Broken copies of the private key.
        let mut variants: Vec<Value> = Vec::new();
        let edit = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
            let mut v = key.clone();
            f(v.as_object_mut().unwrap());
            v
        };
        variants.push(edit(&|m| {
            m.insert("alg".into(), json!("ES384"));
        }));
        variants.push(edit(&|m| {
            m.insert("alg".into(), json!("XX256"));
        }));
        variants.push(edit(&|m| {
            m.remove("alg");
        }));
        variants.push(edit(&|m| {
            m.insert("crv".into(), json!("P-999"));
        }));
        variants.push(edit(&|m| {
            m.insert("kty".into(), json!("XYZ"));
        }));
        variants.push(edit(&|m| {
            m.insert("use".into(), json!(["sig"]));
        }));
        variants.push(edit(&|m| {
            m.insert("key_ops".into(), json!("verify"));
        }));
        for member in ["x", "n", "d", "k", "p"] {
            if let Some(Value::String(s)) = key.get(member) {
                let s = s.clone();
                variants.push(edit(&|m| {
                    m.insert(member.into(), json!(format!("{s}!")));
                }));
                variants.push(edit(&|m| {
                    m.insert(member.into(), json!(&s[..s.len() - 4]));
                }));
                variants.push(edit(&|m| {
                    m.insert(member.into(), json!([s.clone()]));
                }));
            }
        }
        let mut runs = Vec::new();
        for (i, variant) in variants.iter().enumerate() {
            let name = format!("v{i}.json");
            dir.write(&name, variant.to_string());
            let set = format!("s{i}.json");
            dir.write(&set, json!({ "keys": [variant] }).to_string());
            // Truncated JSON still holding the secrets.
            let cut = format!("c{i}.json");
            let text = variant.to_string();
            dir.write(&cut, &text[..text.len() - 1]);
            for file in [&name, &set, &cut] {
                runs.push((dir.verify(file, &[], &token), true));
                runs.push((dir.run(&["keys", "public", file]), true));
                runs.push((dir.run(&["token", "sign", "--key", file]), true));
            }
        }
        // The private key where a token belongs.
        let private = dir.read("key.json");
        for cmd in ["verify", "decode", "lint"] {
            let mut args = vec!["token", cmd];
            if cmd == "verify" {
                args.extend(["--jwks", public]);
            }
            let stdout_too = cmd != "decode";
            runs.push((dir.run_stdin(&args, &private), stdout_too));
            let mut with_arg = args.clone();
            with_arg.push(private.trim_end());
            runs.push((dir.run(&with_arg), stdout_too));
            // ... base64url-encoded as header and payload.
            let disguised = format!("{0}.{0}.AAAA", b64e(private.trim_end().as_bytes()));
            let mut with_arg = args.clone();
            with_arg.push(disguised.as_str());
            runs.push((dir.run(&with_arg), stdout_too));
        }
        // Some variants still work (a corrupted "d" does not stop keys
        // public or verify): then stdout must not hold secrets either. Only
        // decode prints its input (here, the key itself) by design.
        for (run, stdout_too) in &runs {
            for secret in &secrets {
                assert!(!run.stderr.contains(secret.as_str()), "{alg}: {run:#?}");
                if *stdout_too {
                    assert!(!run.stdout.contains(secret.as_str()), "{alg}: {run:#?}");
                }
            }
        }
    }
}

//! A strict, allocation-light JSON scanner for JOSE headers and payloads.
//!
//! serde_json silently keeps the last of duplicate member names, and RFC 7515
//! §5.2 / RFC 7519 §4 say a JWS or JWT with duplicate names must be rejected
//! (RFC 8725 §3.x: parsers that disagree about duplicates are an attack
//! surface). This scanner walks the document once, checks the grammar,
//! rejects duplicate names at every level and nesting deeper than
//! [`MAX_DEPTH`], and hands back the raw text of selected top-level members,
//! so the registered claims never need a second parse of the whole payload.

use std::borrow::Cow;

use crate::error::{Error, Result};

/// Maximum nesting of objects and arrays.
pub const MAX_DEPTH: usize = 32;

/// Scans `input`, which must be exactly one JSON object, and stores in
/// `found[i]` the raw text of the top-level member named `wanted[i]`.
pub(crate) fn scan_object<'a>(
    input: &'a [u8],
    wanted: &[&str],
    found: &mut [Option<&'a [u8]>],
) -> Result<()> {
    debug_assert_eq!(wanted.len(), found.len());
    let mut s = Scanner {
        input,
        pos: 0,
        keys: Vec::with_capacity(16),
        non_ascii: false,
    };
    s.skip_ws();
    if s.peek() != Some(b'{') {
        return Err(Error::malformed("JSON value is not an object"));
    }
    let mut prints = [0u64; MAX_WANTED];
    let prints = prints
        .get_mut(..wanted.len())
        .ok_or_else(|| Error::malformed("too many members asked for"))?;
    for (p, name) in prints.iter_mut().zip(wanted) {
        *p = fingerprint(name.as_bytes());
    }
    s.object(1, Some((wanted, prints, found)))?;
    s.skip_ws();
    if s.pos != input.len() {
        return Err(Error::malformed("trailing characters after JSON object"));
    }
    // Bytes >= 0x80 are only legal inside strings, where the scanner notes
    // them; pure-ASCII documents (nearly every token) skip this pass.
    if s.non_ascii && std::str::from_utf8(input).is_err() {
        return Err(Error::malformed("JSON is not valid UTF-8"));
    }
    Ok(())
}

/// Most top-level members one scan can hand back.
const MAX_WANTED: usize = 8;

/// The first seven bytes and the length of a name: equal names have equal
/// fingerprints, and names of up to seven bytes are equal exactly when their
/// fingerprints are. Most JWT member names are that short, so duplicate
/// checks are integer comparisons.
fn fingerprint(name: &[u8]) -> u64 {
    let len = u64::try_from(name.len().min(255)).unwrap_or(255);
    name.iter()
        .take(7)
        .enumerate()
        .fold(len << 56, |acc, (i, &b)| acc | u64::from(b) << (8 * i))
}

/// True when any byte of `w` is `"`, `\\`, a control character or >= 0x80
/// (SWAR: the classic "has a zero byte" test on transformed words).
fn needs_attention(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let quote = has_zero(w ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
    // Bytes below 0x20: subtracting 0x20 borrows into the high bit.
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (quote | backslash | control | (w & HIGH)) != 0
}

struct Key<'a> {
    print: u64,
    name: Cow<'a, [u8]>,
}

impl Key<'_> {
    fn same(&self, print: u64, name: &[u8]) -> bool {
        self.print == print && (name.len() < 7 || *self.name == *name)
    }
}

struct Scanner<'a> {
    input: &'a [u8],
    pos: usize,
    /// Member names of every object still open, innermost last.
    keys: Vec<Key<'a>>,
    /// A string held a byte >= 0x80, so the document needs UTF-8 validation.
    non_ascii: bool,
}

type Wanted<'w, 'a> = Option<(&'w [&'w str], &'w [u64], &'w mut [Option<&'a [u8]>])>;

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax())
        }
    }

    fn syntax(&self) -> Error {
        Error::malformed(format!("invalid JSON at byte {}", self.pos))
    }

    fn value(&mut self, depth: usize) -> Result<()> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1, None),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(drop),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => Err(self.syntax()),
        }
    }

    fn object(&mut self, depth: usize, mut wanted: Wanted<'_, 'a>) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::malformed("JSON nested too deeply"));
        }
        self.expect(b'{')?;
        let first_key = self.keys.len();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.syntax());
            }
            let key = self.string()?;
            let print = fingerprint(&key);
            if self.keys[first_key..].iter().any(|k| k.same(print, &key)) {
                return Err(Error::malformed("duplicate member name in JSON object"));
            }
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let start = self.pos;
            self.value(depth)?;
            if let Some((names, prints, found)) = wanted.as_mut() {
                let hit = prints
                    .iter()
                    .zip(names.iter())
                    .position(|(&p, n)| p == print && (key.len() < 7 || n.as_bytes() == &*key));
                if let Some(i) = hit {
                    found[i] = Some(&self.input[start..self.pos]);
                }
            }
            self.keys.push(Key { print, name: key });
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.keys.truncate(first_key);
                    return Ok(());
                }
                _ => return Err(self.syntax()),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::malformed("JSON nested too deeply"));
        }
        self.expect(b'[')?;
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            self.value(depth)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.syntax()),
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if self.input[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.syntax())
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.syntax()),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.syntax());
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.syntax());
            }
        }
        Ok(())
    }

    /// Scans a string and returns its decoded bytes (borrowed when it has
    /// no escapes, which is the common case for member names).
    fn string(&mut self) -> Result<Cow<'a, [u8]>> {
        self.expect(b'"')?;
        let start = self.pos;
        let bytes = self.input;
        let mut i = start;
        // Eight bytes at a time while none of them needs a closer look.
        while let Some(chunk) = bytes.get(i..i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            if needs_attention(u64::from_le_bytes(word)) {
                break;
            }
            i += 8;
        }
        while let Some(&c) = bytes.get(i) {
            match c {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(Cow::Borrowed(&bytes[start..i]));
                }
                b'\\' => break,
                0..=0x1f => {
                    self.pos = i;
                    return Err(self.syntax());
                }
                0x80.. => self.non_ascii = true,
                _ => {}
            }
            i += 1;
        }
        self.pos = i;
        // Slow path: decode escapes so that "\u0069ss" and "iss" compare equal.
        let mut out = self.input[start..self.pos].to_vec();
        loop {
            match self.peek() {
                None => return Err(self.syntax()),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.peek().ok_or_else(|| self.syntax())?;
                    self.pos += 1;
                    match c {
                        b'"' | b'\\' | b'/' => out.push(c),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let ch = self.unicode_escape()?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(self.syntax()),
                    }
                }
                Some(c) if c < 0x20 => return Err(self.syntax()),
                Some(c) => {
                    self.non_ascii |= c >= 0x80;
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32> {
        let digits = self
            .input
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.syntax())?;
        let text = std::str::from_utf8(digits).map_err(|_| self.syntax())?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.syntax());
        }
        let v = u32::from_str_radix(text, 16).map_err(|_| self.syntax())?;
        self.pos += 4;
        Ok(v)
    }

    /// Decodes the `XXXX` after `\u`, joining surrogate pairs. A lone
    /// surrogate is refused: it has no UTF-8 form and parsers disagree on it.
    fn unicode_escape(&mut self) -> Result<char> {
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if !self.input[self.pos..].starts_with(b"\\u") {
                return Err(Error::malformed("lone surrogate in JSON string"));
            }
            self.pos += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(Error::malformed("lone surrogate in JSON string"));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| Error::malformed("lone surrogate in JSON string"))
    }
}

/// Returns the string value of a raw JSON member, or `None` when the raw
/// text is not a string. Borrowed when the string has no escapes.
pub(crate) fn raw_str(raw: &[u8]) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if !inner.contains(&b'\\') {
        // The scanner has already checked that the document is UTF-8.
        return std::str::from_utf8(inner).ok().map(Cow::Borrowed);
    }
    serde_json::from_slice::<String>(raw).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn scan(s: &str) -> Result<()> {
        scan_object(s.as_bytes(), &[], &mut [])
    }

    #[test]
    fn accepts_valid_objects_and_extracts_members() {
        let doc = br#" {"a": [1, -2.5e3, {"b": null}], "iss" : "x\"y", "n": {"iss": 1}, "e": {}} "#;
        let mut found = [None, None, None];
        scan_object(doc, &["iss", "e", "zz"], &mut found).unwrap();
        assert_eq!(found[0], Some(&br#""x\"y""#[..]));
        assert_eq!(found[1], Some(&b"{}"[..]));
        assert_eq!(found[2], None);
        assert_eq!(raw_str(found[0].unwrap()).unwrap(), "x\"y");
    }

    #[test]
    fn rejects_duplicates_at_any_level_including_escaped_names() {
        for doc in [
            r#"{"a":1,"a":2}"#,
            r#"{"iss":1,"\u0069ss":2}"#,
            r#"{"x":{"b":1,"b":1}}"#,
            r#"{"x":[{"c":1,"d":2,"c":3}]}"#,
        ] {
            assert_eq!(scan(doc).unwrap_err().kind(), ErrorKind::Malformed, "{doc}");
        }
        // The same name in sibling objects is fine.
        scan(r#"{"x":{"b":1},"y":{"b":1}}"#).unwrap();
    }

    #[test]
    fn rejects_deep_nesting_without_recursing_forever() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(scan(&deep).unwrap_err().kind(), ErrorKind::Malformed);
        let ok = format!(
            "{{\"a\":{}1{}}}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        scan(&ok).unwrap();
    }

    #[test]
    fn rejects_grammar_errors() {
        for doc in [
            "",
            "[]",
            "\"s\"",
            "{",
            "{}x",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{\"a\":01}",
            "{\"a\":1.}",
            "{\"a\":.5}",
            "{\"a\":1e}",
            "{\"a\":tru}",
            "{\"a\":NaN}",
            "{\"a\":Infinity}",
            "{\"a\":\"\u{1}\"}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\ud800\"}",
            "{'a':1}",
            "{\"a\":1}{}",
        ] {
            assert_eq!(
                scan(doc).unwrap_err().kind(),
                ErrorKind::Malformed,
                "{doc:?}"
            );
        }
        assert_eq!(
            scan_object(b"{\"a\":\"\xff\"}", &[], &mut [])
                .unwrap_err()
                .kind(),
            ErrorKind::Malformed
        );
    }

    proptest::proptest! {
        #[test]
        fn swar_test_agrees_with_the_byte_test(bytes in proptest::array::uniform8(proptest::num::u8::ANY)) {
            let naive = bytes.iter().any(|&b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b));
            proptest::prop_assert_eq!(needs_attention(u64::from_le_bytes(bytes)), naive);
        }

        #[test]
        fn strings_of_any_content_scan_like_serde_json(s in "\\PC{0,40}") {
            let doc = serde_json::json!({ "k": s }).to_string();
            let mut found = [None];
            scan_object(doc.as_bytes(), &["k"], &mut found).unwrap();
            proptest::prop_assert_eq!(raw_str(found[0].unwrap()).unwrap(), s.as_str());
        }
    }
}

//! A strict, allocation-light JSON scanner for JOSE headers and payloads.
//!
//! serde_json silently keeps the last of duplicate member names, and RFC 7515
//! §5.2 / RFC 7519 §4 say a JWS or JWT with duplicate names must be rejected
//! (RFC 8725 §3.x: parsers that disagree about duplicates are an attack
//! surface). This scanner walks the document once, checks the grammar,
//! rejects duplicate names at every level and nesting deeper than
//! [`MAX_DEPTH`], and hands back the raw text of selected top-level members,
//! so the registered claims never need a second parse of the whole payload.
//! For a typical token it does not allocate.

use std::borrow::Cow;

use crate::error::{Error, Result};

/// Maximum nesting of objects and arrays.
pub const MAX_DEPTH: usize = 32;

/// Most top-level members one scan can hand back.
const MAX_WANTED: usize = 8;

/// Scans `text`, which must be exactly one JSON object, and stores in
/// `found[i]` the raw text of the top-level member named `wanted[i]`.
/// Returns `text`.
pub(crate) fn scan_object<'a>(
    text: &'a str,
    wanted: &[&str],
    found: &mut [Option<&'a str>],
) -> Result<&'a str> {
    debug_assert_eq!(wanted.len(), found.len());
    let input = text.as_bytes();
    let mut prints = [0u64; MAX_WANTED];
    let prints = prints
        .get_mut(..wanted.len())
        .ok_or_else(|| Error::malformed("too many members asked for"))?;
    for (p, name) in prints.iter_mut().zip(wanted) {
        *p = fingerprint(name.as_bytes());
    }
    let mut s = Scanner {
        text,
        input,
        pos: 0,
        names: Names::new(),
    };
    s.skip_ws();
    if s.peek() != Some(b'{') {
        return Err(Error::malformed("JSON value is not an object"));
    }
    s.object(1, Some((wanted, prints, found)))?;
    s.skip_ws();
    if s.pos != input.len() {
        return Err(Error::malformed("trailing characters after JSON object"));
    }
    Ok(text)
}

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

/// A mask whose lowest set bit is the high bit of the first byte of `w`
/// (little-endian) that is `"`, `\\`, or a control character; zero when there
/// is none. SWAR: the classic "has a zero byte" test on transformed words,
/// exact for the first match (false positives only above a true one).
fn attention(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let quote = has_zero(w ^ (ONES * u64::from(b'"')));
    let backslash = has_zero(w ^ (ONES * u64::from(b'\\')));
    // Bytes below 0x20: subtracting 0x20 borrows into the high bit; bytes
    // >= 0x80 set it too, so they take the byte loop, which lets them pass.
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    quote | backslash | control
}

/// A member name: where its bytes are, and its fingerprint. Names without
/// escapes point into the input; decoded names of escaped ones into an arena.
#[derive(Clone, Copy)]
struct Name {
    print: u64,
    start: u32,
    end: u32,
    decoded: bool,
}

impl Name {
    const EMPTY: Name = Name {
        print: 0,
        start: 0,
        end: 0,
        decoded: false,
    };
}

/// Names of the open objects, innermost last. The first [`INLINE_NAMES`] live
/// on the stack, so scanning a token's header and claims allocates nothing.
struct Names {
    inline: [Name; INLINE_NAMES],
    len: usize,
    spill: Vec<Name>,
    /// Decoded bytes of names that had escapes ("\u0069ss" is "iss").
    arena: Vec<u8>,
}

const INLINE_NAMES: usize = 16;

impl Names {
    fn new() -> Self {
        Self {
            inline: [Name::EMPTY; INLINE_NAMES],
            len: 0,
            spill: Vec::new(),
            arena: Vec::new(),
        }
    }

    fn push(&mut self, name: Name) {
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = name,
            None => self.spill.push(name),
        }
        self.len += 1;
    }

    fn truncate(&mut self, len: usize) {
        self.spill.truncate(len.saturating_sub(INLINE_NAMES));
        self.len = len;
    }

    /// True when a name from position `from` to the top equals `name`.
    fn contains(&self, from: usize, input: &[u8], name: &Name) -> bool {
        let bytes = self.bytes(input, name);
        let short = bytes.len() < 7;
        let same = |n: &Name| n.print == name.print && (short || self.bytes(input, n) == bytes);
        let top = self.len.min(INLINE_NAMES);
        self.inline[from.min(top)..top].iter().any(same)
            || self.spill[from.saturating_sub(INLINE_NAMES)..]
                .iter()
                .any(same)
    }

    fn bytes<'s>(&'s self, input: &'s [u8], name: &Name) -> &'s [u8] {
        let range = name.start as usize..name.end as usize;
        if name.decoded {
            &self.arena[range]
        } else {
            &input[range]
        }
    }
}

struct Scanner<'a> {
    text: &'a str,
    input: &'a [u8],
    pos: usize,
    names: Names,
}

type Wanted<'w, 'a> = Option<(&'w [&'w str], &'w [u64], &'w mut [Option<&'a str>])>;

fn offset(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::malformed("JSON document too large"))
}

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

    /// Scans a member name and returns it with its fingerprint.
    fn name(&mut self) -> Result<Name> {
        let (start, end, escaped) = self.string()?;
        if !escaped {
            let bytes = &self.input[start..end];
            return Ok(Name {
                print: fingerprint(bytes),
                start: offset(start)?,
                end: offset(end)?,
                decoded: false,
            });
        }
        let decoded: String = serde_json::from_str(&self.text[start - 1..=end])
            .map_err(|_| Error::malformed("invalid escape in JSON string"))?;
        let from = self.names.arena.len();
        self.names.arena.extend_from_slice(decoded.as_bytes());
        Ok(Name {
            print: fingerprint(decoded.as_bytes()),
            start: offset(from)?,
            end: offset(self.names.arena.len())?,
            decoded: true,
        })
    }

    fn object(&mut self, depth: usize, mut wanted: Wanted<'_, 'a>) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::malformed("JSON nested too deeply"));
        }
        self.expect(b'{')?;
        let first = self.names.len;
        let arena = self.names.arena.len();
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
            let name = self.name()?;
            if self.names.contains(first, self.input, &name) {
                return Err(Error::malformed("duplicate member name in JSON object"));
            }
            if let Some((names, prints, found)) = wanted.as_mut() {
                let bytes = self.names.bytes(self.input, &name);
                let short = bytes.len() < 7;
                let hit = prints
                    .iter()
                    .zip(names.iter())
                    .position(|(&p, n)| p == name.print && (short || n.as_bytes() == bytes));
                self.skip_ws();
                self.expect(b':')?;
                self.skip_ws();
                let start = self.pos;
                self.value(depth)?;
                if let Some(i) = hit {
                    found[i] = Some(&self.text[start..self.pos]);
                }
            } else {
                self.skip_ws();
                self.expect(b':')?;
                self.skip_ws();
                self.value(depth)?;
            }
            self.names.push(name);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.names.truncate(first);
                    self.names.arena.truncate(arena);
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
        let start = self.pos;
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
        let mut plain = true;
        if self.peek() == Some(b'.') {
            plain = false;
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.syntax());
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            plain = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.syntax());
            }
        }
        // serde_json refuses numbers beyond f64 (1e400, 400-digit integers);
        // refuse them here too, so that both parsers accept the same documents.
        let text = &self.text[start..self.pos];
        if (!plain || text.len() > 20) && !text.parse::<f64>().is_ok_and(f64::is_finite) {
            return Err(Error::malformed("number out of range"));
        }
        Ok(())
    }

    /// Scans a string, checking its escapes, and returns the byte range of
    /// its body (between the quotes) and whether it has escapes.
    fn string(&mut self) -> Result<(usize, usize, bool)> {
        self.expect(b'"')?;
        let start = self.pos;
        let bytes = self.input;
        let mut i = start;
        let mut escaped = false;
        loop {
            // Eight bytes at a time, jumping straight to the first byte that
            // needs a closer look.
            match bytes.get(i..i + 8) {
                Some(chunk) => {
                    let mut word = [0u8; 8];
                    word.copy_from_slice(chunk);
                    let mask = attention(u64::from_le_bytes(word));
                    if mask == 0 {
                        i += 8;
                        continue;
                    }
                    i += (mask.trailing_zeros() / 8) as usize;
                }
                // Fewer than eight bytes left: skip the plain ones one by one.
                None => {
                    while bytes
                        .get(i)
                        .is_some_and(|&c| c >= 0x20 && c != b'"' && c != b'\\')
                    {
                        i += 1;
                    }
                }
            }
            match bytes.get(i) {
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok((start, i, escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    self.pos = i + 1;
                    self.escape()?;
                    i = self.pos;
                }
                _ => {
                    // A control character, or the end of the input.
                    self.pos = i;
                    return Err(self.syntax());
                }
            }
        }
    }

    /// Checks one escape sequence after its backslash.
    fn escape(&mut self) -> Result<()> {
        let c = self.peek().ok_or_else(|| self.syntax())?;
        self.pos += 1;
        match c {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(()),
            b'u' => self.unicode_escape(),
            _ => Err(self.syntax()),
        }
    }

    fn hex4(&mut self) -> Result<u32> {
        let digits = self
            .input
            .get(self.pos..self.pos + 4)
            .filter(|d| d.iter().all(u8::is_ascii_hexdigit))
            .ok_or_else(|| self.syntax())?;
        let v = digits.iter().fold(0u32, |acc, &d| {
            acc << 4 | char::from(d).to_digit(16).unwrap_or(0)
        });
        self.pos += 4;
        Ok(v)
    }

    /// Checks the `XXXX` after `\u`, requiring surrogates to come in pairs.
    /// A lone surrogate is refused: it has no UTF-8 form and parsers disagree
    /// on it.
    fn unicode_escape(&mut self) -> Result<()> {
        let lone = || Error::malformed("lone surrogate in JSON string");
        match self.hex4()? {
            0xD800..=0xDBFF => {
                if !self.input[self.pos..].starts_with(b"\\u") {
                    return Err(lone());
                }
                self.pos += 2;
                match self.hex4()? {
                    0xDC00..=0xDFFF => Ok(()),
                    _ => Err(lone()),
                }
            }
            0xDC00..=0xDFFF => Err(lone()),
            _ => Ok(()),
        }
    }
}

/// Checks that decoded bytes are UTF-8 (RFC 8259 §8.1) before scanning.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|_| Error::malformed("JSON is not valid UTF-8"))
}

/// The string value of an optional member found by the scanner: `None`
/// when absent, `malformed` ("{context}\"{name}\" must be a string") when
/// present but not a string.
pub(crate) fn string_member<'a>(
    raw: Option<&'a str>,
    context: &str,
    name: &str,
) -> Result<Option<Cow<'a, str>>> {
    raw.map(|r| {
        raw_str(r).ok_or_else(|| Error::malformed(format!("{context}\"{name}\" must be a string")))
    })
    .transpose()
}

/// Returns the string value of a raw JSON member, or `None` when the raw
/// text is not a string. Borrowed when the string has no escapes.
pub(crate) fn raw_str(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn scan(s: &str) -> Result<()> {
        scan_object(s, &[], &mut []).map(drop)
    }

    #[test]
    fn accepts_valid_objects_and_extracts_members() {
        let doc = r#" {"a": [1, -2.5e3, {"b": null}], "iss" : "x\"y", "n": {"iss": 1}, "e": {}} "#;
        let mut found = [None, None, None];
        scan_object(doc, &["iss", "e", "zz"], &mut found).unwrap();
        assert_eq!(found[0], Some(r#""x\"y""#));
        assert_eq!(found[1], Some("{}"));
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
    fn numbers_beyond_f64_are_refused_like_serde_json_does() {
        let huge = format!("{{\"a\":{}}}", "9".repeat(400));
        for doc in [r#"{"a":1e400}"#, r#"{"a":-1e309}"#, huge.as_str()] {
            assert_eq!(scan(doc).unwrap_err().kind(), ErrorKind::Malformed, "{doc}");
            assert!(
                serde_json::from_str::<serde_json::Value>(doc).is_err(),
                "{doc}"
            );
        }
        for doc in [
            r#"{"a":1e308}"#,
            r#"{"a":123456789012345678901234567890}"#,
            r#"{"a":-0.0}"#,
        ] {
            scan(doc).unwrap();
            serde_json::from_str::<serde_json::Value>(doc).unwrap();
        }
    }

    #[test]
    fn duplicates_are_found_beyond_the_inline_name_stack() {
        let members: Vec<String> = (0..40).map(|i| format!("\"m{i}\":{i}")).collect();
        let many = members.join(",");
        scan(&format!("{{{many}}}")).unwrap();
        for dup in ["m3", "m30", "m39"] {
            let doc = format!("{{{many},\"{dup}\":0}}");
            assert_eq!(
                scan(&doc).unwrap_err().kind(),
                ErrorKind::Malformed,
                "{dup}"
            );
        }
        // An inner object opened after the stack spilled, and closed again.
        let nested = format!("{{{many},\"o\":{{\"a\":1,\"b\":2}},\"p\":{{\"a\":1}}}}");
        scan(&nested).unwrap();
        let nested_dup = format!("{{{many},\"o\":{{\"a\":1,\"a\":2}}}}");
        assert_eq!(scan(&nested_dup).unwrap_err().kind(), ErrorKind::Malformed);
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
            utf8(b"{\"a\":\"\xff\"}").unwrap_err().kind(),
            ErrorKind::Malformed
        );
    }

    proptest::proptest! {
        #[test]
        fn swar_test_never_misses_a_byte_that_needs_attention(bytes in proptest::array::uniform8(proptest::num::u8::ANY)) {
            let special = bytes.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20);
            let mask = attention(u64::from_le_bytes(bytes));
            let flagged = mask != 0;
            // No false negatives; false positives only cost a trip through the
            // byte loop, and never happen for plain printable ASCII.
            if special {
                proptest::prop_assert!(flagged);
                // The lowest flagged byte is exactly the first special byte.
                let first = bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
                proptest::prop_assert_eq!(Some((mask.trailing_zeros() / 8) as usize), first);
            }
            if !special && bytes.iter().all(|&b| b < 0x80) {
                proptest::prop_assert!(!flagged);
            }
        }

        #[test]
        fn strings_of_any_content_scan_like_serde_json(s in "\\PC{0,40}") {
            let doc = serde_json::json!({ "k": s }).to_string();
            let mut found = [None];
            scan_object(&doc, &["k"], &mut found).unwrap();
            proptest::prop_assert_eq!(raw_str(found[0].unwrap()).unwrap(), s.as_str());
        }
    }
}

//! The one sanitiser for server-supplied text that reaches a message, a log or a terminal:
//! control and bidi characters out, one line, JWT-shaped words redacted, then cut to length.
//! Redaction always runs on whole words before any cut, so a cut never leaves part of a token.

/// How much of a body an unexpected-response excerpt shows, in characters.
const EXCERPT_CHARS: usize = 160;
/// How much of a body is looked at to build an excerpt, in bytes (bounds the work). The scan
/// ends at a word boundary past this, so a JWT that straddles it is seen whole and redacted.
const EXCERPT_SCAN_BYTES: usize = 4096;
/// The longest word the scan extends over to reach a word boundary (a JWT is a few KiB).
const MAX_WORD_BYTES: usize = 16 * 1024;

/// Makes one line of server-supplied text safe to print on a terminal or in a log: control and
/// bidi-override characters (escape sequences among them) become spaces, runs of white space
/// collapse, words shaped like a JWT (an access token or an assertion echoed back) become
/// `[redacted]`, and the result is cut at `max_chars` characters (with `…` when cut).
///
/// The SDK runs every server-supplied text in its errors through this; the CLI runs every
/// server-supplied text it prints through it too.
///
/// ```
/// let shown = ibkr_oauth::sanitize("\u{1b}]0;pwned\u{7}token eyJhbGciOiJSUzI1NiJ9.e30.c2ln\r\nok", 80);
/// assert_eq!(shown, "]0;pwned token [redacted] ok");
/// ```
pub fn sanitize(text: &str, max_chars: usize) -> String {
    let mut cleaned = String::with_capacity(text.len().min(max_chars.saturating_mul(4)));
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_control() || is_bidi_control(c) || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if !last_space {
                cleaned.push(' ');
            }
            last_space = true;
        } else {
            cleaned.push(c);
            last_space = false;
        }
    }
    let redacted = redact_jwts(cleaned.trim_end());
    let mut out: String = redacted.chars().take(max_chars).collect();
    if redacted.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

/// A short, single-line, sanitised excerpt of a body (tags dropped from HTML).
pub(crate) fn excerpt(body: &[u8], html: bool) -> String {
    let head = body.get(..scan_end(body)).unwrap_or(body);
    let text = String::from_utf8_lossy(head);
    if html {
        sanitize(&strip_tags(&text), EXCERPT_CHARS)
    } else {
        sanitize(&text, EXCERPT_CHARS)
    }
}

/// Where the excerpt's scan stops: [`EXCERPT_SCAN_BYTES`] moved forward to the end of the word
/// it falls in (so redaction sees that word whole), or, for a word longer than
/// [`MAX_WORD_BYTES`], back to its start (the word is then not shown at all).
fn scan_end(body: &[u8]) -> usize {
    if body.len() <= EXCERPT_SCAN_BYTES {
        return body.len();
    }
    let is_word = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    let limit = body.len().min(EXCERPT_SCAN_BYTES + MAX_WORD_BYTES);
    match body[EXCERPT_SCAN_BYTES..limit]
        .iter()
        .position(|b| !is_word(b))
    {
        Some(offset) => EXCERPT_SCAN_BYTES + offset,
        None if limit == body.len() => body.len(),
        None => body[..EXCERPT_SCAN_BYTES]
            .iter()
            .rposition(|b| !is_word(b))
            .map_or(0, |i| i + 1),
    }
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn is_token_char(c: char) -> bool {
    // base64url and the dots of a compact JWS.
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Whether a word may be (part of) a compact JWS/JWE: it starts `eyJ` (the base64url of `{"`)
/// and either has the dots of a JWS or is long enough to hold an encoded header. IBKR's access
/// tokens and client assertions both have that shape.
fn looks_like_jwt(word: &str) -> bool {
    word.starts_with("eyJ") && (word.contains('.') || word.len() >= 16)
}

fn redact_jwts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if looks_like_jwt(word) {
            out.push_str("[redacted]");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if is_token_char(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests;

//! A lenient PEM reader and writer for key files.
//!
//! Lenient on purpose: real key files carry text before the block (`Bag Attributes` from
//! `openssl pkcs12`), an `EC PARAMETERS` block before the key (`openssl ecparam -genkey`),
//! CRLF line ends and trailing blank lines. It never panics and copies base64 and DER only into
//! zeroizing buffers.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// One `-----BEGIN LABEL-----` ... `-----END LABEL-----` block, borrowed from the input.
pub(crate) struct Block<'a> {
    /// The label, e.g. `PRIVATE KEY`.
    pub(crate) label: &'a str,
    /// Whether RFC 1421 headers mark the body as encrypted (`Proc-Type: 4,ENCRYPTED`), which is
    /// OpenSSL's legacy encryption of PKCS#1 and SEC1 keys.
    pub(crate) legacy_encrypted: bool,
    /// Whether the matching END line was found.
    pub(crate) terminated: bool,
    body: Vec<&'a str>,
}

impl Block<'_> {
    /// Decodes the base64 body, or `None` if it is not valid base64.
    pub(crate) fn decode(&self) -> Option<Zeroizing<Vec<u8>>> {
        let len: usize = self.body.iter().map(|line| line.len()).sum();
        let mut text = Zeroizing::new(String::with_capacity(len));
        for line in &self.body {
            text.extend(line.chars().filter(|c| !c.is_ascii_whitespace()));
        }
        // Sized up front so the decoder never reallocates and leaves a copy behind.
        let mut der = Zeroizing::new(Vec::with_capacity(text.len() / 4 * 3 + 3));
        STANDARD.decode_vec(text.as_bytes(), &mut der).ok()?;
        Some(der)
    }
}

/// `text` with line breaks put back around PEM boundaries, when a PEM block was flattened
/// onto one line (env files and CI secrets often turn line breaks into spaces); `None` when
/// every boundary already starts a line. The body's spaces are dropped by [`Block::decode`].
pub(crate) fn unflatten(text: &str) -> Option<Zeroizing<String>> {
    let flattened = text.lines().map(str::trim).any(|line| {
        line.contains("-----BEGIN ")
            && (!line.starts_with("-----BEGIN ") || boundary(line, "BEGIN").is_none())
    });
    if !flattened {
        return None;
    }
    // Each boundary gains at most two line breaks; sized up front so the buffer never
    // reallocates and leaves an unwiped copy behind.
    let mut out = Zeroizing::new(String::with_capacity(text.len() + text.len() / 4 + 8));
    let mut rest = text;
    while let Some(start) = rest.find("-----") {
        let marker = &rest[start..];
        let is_boundary = marker.starts_with("-----BEGIN ") || marker.starts_with("-----END ");
        // The boundary ends at the next "-----" after its opening dashes.
        let end = marker[5..].find("-----").map(|i| start + 5 + i + 5);
        match end {
            Some(end) if is_boundary => {
                out.push_str(&rest[..start]);
                out.push('\n');
                out.push_str(&rest[start..end]);
                out.push('\n');
                rest = &rest[end..];
            }
            _ => {
                out.push_str(&rest[..start + 5]);
                rest = &rest[start + 5..];
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// Every PEM block in `text`, in order. Text outside blocks is ignored.
pub(crate) fn blocks(text: &str) -> Vec<Block<'_>> {
    let mut found = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = boundary(line, "BEGIN") else {
            continue;
        };
        let mut block = Block {
            label,
            legacy_encrypted: false,
            terminated: false,
            body: Vec::new(),
        };
        for line in lines.by_ref() {
            if boundary(line, "END") == Some(label) {
                block.terminated = true;
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                // An RFC 1421 header line; base64 never contains ':'.
                if name.trim().eq_ignore_ascii_case("Proc-Type")
                    && value.to_ascii_uppercase().contains("ENCRYPTED")
                {
                    block.legacy_encrypted = true;
                }
                continue;
            }
            block.body.push(line);
        }
        found.push(block);
    }
    found
}

/// The label of a `-----BEGIN LABEL-----` (or END) line. Only labels of the characters real
/// key files use (upper-case letters, digits, spaces) count: anything else may be key
/// material glued to the line, and a label ends up in error messages.
fn boundary<'a>(line: &'a str, kind: &str) -> Option<&'a str> {
    let rest = line.strip_prefix("-----")?.strip_suffix("-----")?;
    let label = rest.strip_prefix(kind)?.strip_prefix(' ')?.trim();
    let label_char = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == ' ';
    (label.len() <= 64 && label.chars().all(label_char)).then_some(label)
}

/// Encodes `der` as a PEM block with 64-character lines.
pub(crate) fn encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(STANDARD.encode(der));
    let mut out = Zeroizing::new(String::with_capacity(
        b64.len() + b64.len() / 64 + 2 * label.len() + 40,
    ));
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // Base64 is ASCII, so every 64-byte chunk is valid UTF-8.
    for chunk in b64.as_bytes().chunks(64) {
        out.extend(chunk.iter().map(|&b| char::from(b)));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests;

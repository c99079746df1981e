//! Unit tests of `pem` (may use its private items).

use super::*;

#[test]
fn finds_blocks_among_other_text() {
    let text = "Bag Attributes\r\n-----BEGIN EC PARAMETERS-----\r\nBggqhkjOPQMBBw==\r\n\
                -----END EC PARAMETERS-----\r\n-----BEGIN EC PRIVATE KEY-----\r\nAAEC\r\n\
                -----END EC PRIVATE KEY-----\r\n\r\n";
    let found = blocks(text);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].label, "EC PARAMETERS");
    assert_eq!(found[1].label, "EC PRIVATE KEY");
    assert!(found[1].terminated);
    assert_eq!(
        found[1].decode().as_deref().map(Vec::as_slice),
        Some(&[0u8, 1, 2][..])
    );
}

#[test]
fn notes_legacy_encryption_and_missing_end() {
    let text = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAEC\n";
    let found = blocks(text);
    assert_eq!(found.len(), 1);
    assert!(found[0].legacy_encrypted);
    assert!(!found[0].terminated);
}

#[test]
fn a_flattened_block_is_unflattened_and_its_body_never_becomes_a_label() {
    let flat = "-----BEGIN EC PRIVATE KEY----- AAEC AwQ= -----END EC PRIVATE KEY-----";
    // As it is, the line is no boundary: nothing of the body can reach a label.
    assert!(blocks(flat).is_empty());
    let text = unflatten(flat).expect("flattened");
    let found = blocks(&text);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].label, "EC PRIVATE KEY");
    assert!(found[0].terminated);
    assert_eq!(
        found[0].decode().as_deref().map(Vec::as_slice),
        Some(&[0u8, 1, 2, 3, 4][..])
    );
    assert!(unflatten("-----BEGIN PRIVATE KEY-----\nAAEC\n-----END PRIVATE KEY-----\n").is_none());
}

#[test]
fn encode_round_trips() {
    let der: Vec<u8> = (0..=255).collect();
    let pem = encode("PUBLIC KEY", &der);
    let found = blocks(&pem);
    assert_eq!(found[0].label, "PUBLIC KEY");
    assert_eq!(found[0].decode().as_deref(), Some(&der));
    assert!(pem.lines().all(|line| line.len() <= 64));
}

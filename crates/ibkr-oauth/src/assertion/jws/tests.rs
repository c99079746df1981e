//! Unit tests of `jws` (may use its private items).

use super::*;

#[test]
fn encoded_len_matches_the_encoder() {
    for n in 0..100 {
        assert_eq!(encoded_len(n), URL_SAFE_NO_PAD.encode(vec![0u8; n]).len());
    }
}

//! Ids derived from text: the `cluster_id` filter.
//!
//! Some datastores need one id shared by every member, fixed before the first start: Kafka's
//! KRaft storage is formatted with a cluster id (16 bytes, base64url without padding, 22
//! characters) that every node must be given alike. `{{ (namespace ~ '/' ~ statefulset) |
//! cluster_id }}` gives every pod of a StatefulSet the same id with no coordination, and a
//! StatefulSet of another name or namespace another one. It is an identifier, not a secret:
//! anyone who knows the names can compute it.
//!
//! The 16 bytes are the 128-bit FNV-1a hash of the text's UTF-8 bytes (stable across releases:
//! changing it would give an existing cluster a new id, and its nodes would refuse their
//! storage).

/// FNV-1a, 128 bits (offset basis and prime from the FNV specification).
fn fnv1a_128(bytes: &[u8]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    bytes
        .iter()
        .fold(OFFSET, |h, b| (h ^ u128::from(*b)).wrapping_mul(PRIME))
}

/// `bytes` in base64url without padding (RFC 4648 section 5).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

/// The `cluster_id` filter: 22 characters, the same for the same text.
pub fn cluster_id(value: &str) -> String {
    base64url(&fnv1a_128(value.as_bytes()).to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc_4648_vectors() {
        // RFC 4648 section 10, without padding.
        for (input, want) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(input.as_bytes()), want, "{input}");
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn fnv1a_128_matches_the_published_values() {
        // The offset basis for empty input; "a" from the FNV reference test suite.
        assert_eq!(fnv1a_128(b""), 0x6c62272e07bb014262b821756295c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228cb696f1a8caf78912b704e4a8964);
    }

    #[test]
    fn ids_are_22_characters_stable_and_distinct() {
        let id = cluster_id("kafka/kafka");
        assert_eq!(id.len(), 22);
        assert_eq!(id, cluster_id("kafka/kafka"));
        assert_ne!(id, cluster_id("kafka/kafka2"));
        assert_ne!(id, cluster_id("other/kafka"));
    }
}

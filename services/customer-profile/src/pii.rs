//! Protection of ID and phone numbers at rest: encrypted with AES-256-GCM and found
//! through keyed blind indexes (HMAC-SHA256), so that a copy of the database reveals
//! neither, while exact look-ups and the identification rule still work.
//!
//! Encryption is deterministic (the nonce is an HMAC of the value, as in SIV
//! constructions): equal values give equal ciphertexts, which survivorship needs to tell
//! a changed value from a re-sent one. That reveals equality, which the blind index
//! reveals anyway; it reveals nothing else. Ciphertexts carry the key version
//! (`v1:`) so that a new key can be introduced beside the old one.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use crm_platform::crypto::{Key32, NONCE_LEN, Sealer};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a key or a stored value cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PiiError {
    /// The configured key is not 64 hex digits.
    #[error("the PII key must be 64 hexadecimal digits (32 bytes)")]
    BadKey,
    /// A stored value is not a ciphertext of this key.
    #[error("stored value cannot be decrypted")]
    Undecryptable,
}

/// The keys derived from the configured master key.
#[derive(Clone)]
pub struct PiiCipher {
    cipher: Sealer,
    nonce_key: [u8; 32],
    index_key: [u8; 32],
}

impl std::fmt::Debug for PiiCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PiiCipher(…)")
    }
}

const VERSION: &str = "v1:";

fn derive(master: &[u8], label: &str) -> [u8; 32] {
    // HMAC accepts keys of any length, so this never fails.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(master).unwrap_or_else(|_| unreachable!());
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

fn keyed(key: &[u8; 32], domain: &str, value: &str) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(domain.as_bytes());
    mac.update(&[0]);
    mac.update(value.as_bytes());
    mac.finalize().into_bytes().into()
}

impl PiiCipher {
    /// Keys from the configured master key (64 hex digits).
    pub fn from_hex(master_hex: &str) -> Result<Self, PiiError> {
        let master = Key32::from_hex(master_hex).ok_or(PiiError::BadKey)?;
        let master = master.bytes();
        Ok(Self {
            cipher: Sealer::new(&Key32::from_bytes(derive(master, "crm/customer-profile/pii/encryption/v1"))),
            nonce_key: derive(master, "crm/customer-profile/pii/nonce/v1"),
            index_key: derive(master, "crm/customer-profile/pii/index/v1"),
        })
    }

    /// Encrypts `value` of the attribute `field` (the field binds the ciphertext to its
    /// column, so values cannot be swapped between columns unnoticed).
    pub fn encrypt(&self, field: &str, value: &str) -> String {
        // A synthetic nonce: equal values of a field seal alike (look-ups by value),
        // different values never share a nonce.
        let tag = keyed(&self.nonce_key, field, value);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&tag[..NONCE_LEN]);
        format!("{VERSION}{}", B64.encode(self.cipher.seal_with_nonce(nonce, field.as_bytes(), value.as_bytes())))
    }

    /// Decrypts what [`PiiCipher::encrypt`] produced for `field`.
    pub fn decrypt(&self, field: &str, stored: &str) -> Result<String, PiiError> {
        let raw = stored.strip_prefix(VERSION).ok_or(PiiError::Undecryptable)?;
        let bytes = B64.decode(raw).map_err(|_| PiiError::Undecryptable)?;
        let plain = self.cipher.open(field.as_bytes(), &bytes).ok_or(PiiError::Undecryptable)?;
        String::from_utf8(plain).map_err(|_| PiiError::Undecryptable)
    }

    /// The blind index of a normalised value in a look-up `domain` (`id`, `phone`).
    pub fn blind_index(&self, domain: &str, value: &str) -> String {
        keyed(&self.index_key, domain, value)[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn values_round_trip_and_do_not_show_in_the_ciphertext() {
        let c = PiiCipher::from_hex(KEY).expect("key");
        let stored = c.encrypt("id_number", "11010519491231002X");
        assert!(stored.starts_with("v1:") && !stored.contains("110105"));
        assert_eq!(c.decrypt("id_number", &stored).as_deref(), Ok("11010519491231002X"));
    }

    #[test]
    fn values_stored_before_the_kit_sealed_them_still_open_and_seal_alike() {
        // Sealed by the inline AES-GCM code this service had before the kit's Sealer.
        const STORED: &str = "v1:x7moQ1ebzzH+qt6pTD0LH+8+JJo+jbOAxrVCMoLAPWdpjirlFtmo1qrQRmwXKw";
        let c = PiiCipher::from_hex("8f2c0b5e3a7d41c69e0f1b2a3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f").expect("key");
        assert_eq!(c.decrypt("id_number", STORED).expect("opens"), "110105194912310021");
        assert_eq!(c.encrypt("id_number", "110105194912310021"), STORED);
    }

    #[test]
    fn encryption_is_deterministic_per_field() {
        let c = PiiCipher::from_hex(KEY).expect("key");
        assert_eq!(c.encrypt("mobile_phone", "13800001111"), c.encrypt("mobile_phone", "13800001111"));
        assert_ne!(c.encrypt("mobile_phone", "13800001111"), c.encrypt("mobile_phone", "13800001112"));
        assert_ne!(c.encrypt("mobile_phone", "13800001111"), c.encrypt("id_number", "13800001111"));
    }

    #[test]
    fn a_value_moved_to_another_field_or_tampered_with_does_not_decrypt() {
        let c = PiiCipher::from_hex(KEY).expect("key");
        let stored = c.encrypt("mobile_phone", "13800001111");
        assert_eq!(c.decrypt("id_number", &stored), Err(PiiError::Undecryptable));
        let mut tampered = stored.clone();
        tampered.pop();
        tampered.push(if stored.ends_with('A') { 'B' } else { 'A' });
        assert_ne!(tampered, stored);
        assert_eq!(c.decrypt("mobile_phone", &tampered), Err(PiiError::Undecryptable));
        let other = PiiCipher::from_hex(&KEY.replace("00", "ff")).expect("key");
        assert_eq!(other.decrypt("mobile_phone", &stored), Err(PiiError::Undecryptable));
    }

    #[test]
    fn blind_indexes_are_keyed_and_separated_by_domain() {
        let c = PiiCipher::from_hex(KEY).expect("key");
        let other = PiiCipher::from_hex(&KEY.replace("00", "ff")).expect("key");
        assert_eq!(c.blind_index("id", "X1"), c.blind_index("id", "X1"));
        assert_ne!(c.blind_index("id", "X1"), c.blind_index("phone", "X1"));
        assert_ne!(c.blind_index("id", "X1"), other.blind_index("id", "X1"));
        assert_eq!(c.blind_index("id", "X1").len(), 32);
    }

    #[test]
    fn keys_must_be_32_bytes_of_hex() {
        for bad in ["", "00", &KEY[..62], &KEY.replace('0', "g")] {
            assert_eq!(PiiCipher::from_hex(bad).err(), Some(PiiError::BadKey), "{bad}");
        }
    }
}

//! Secrets at rest: a 32-byte key read from configuration, and one AES-256-GCM sealing
//! construction (`nonce ‖ ciphertext`, the context bound as associated data) for every
//! service that encrypts something it stores (identity's signing-key seeds,
//! customer-profile's ID and phone numbers).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

/// Length of the nonce at the start of a sealed value.
pub const NONCE_LEN: usize = 12;

/// A 256-bit key, configured as 64 hexadecimal digits. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Key32([u8; 32]);

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32(…)")
    }
}

impl Key32 {
    /// The key of 64 hexadecimal digits (surrounding white space ignored); `None` for
    /// anything else.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let hex = hex.trim();
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(key))
    }

    /// A key from raw bytes (one derived from another, say).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// AES-256-GCM with the context (a key id, a column name) as associated data, so that
/// a sealed value moved to another context does not open.
#[derive(Clone)]
pub struct Sealer(Aes256Gcm);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(…)")
    }
}

impl Sealer {
    /// A sealer with `key`.
    pub fn new(key: &Key32) -> Self {
        Self(Aes256Gcm::new(key.bytes().into()))
    }

    /// `nonce ‖ ciphertext` of `message` in `context`, with a random nonce.
    pub fn seal(&self, context: &[u8], message: &[u8]) -> Vec<u8> {
        self.seal_with_nonce(rand::random(), context, message)
    }

    /// Like [`Sealer::seal`] with a nonce of the caller's: deterministic encryption,
    /// where equal values must seal alike. The nonce must then be derived from the
    /// value and context with a key of its own (a synthetic IV), never reused otherwise.
    pub fn seal_with_nonce(&self, nonce: [u8; NONCE_LEN], context: &[u8], message: &[u8]) -> Vec<u8> {
        // AES-GCM fails only for messages of 64 GiB and more.
        let sealed = self.0.encrypt(&Nonce::from(nonce), Payload { msg: message, aad: context }).unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The message of a sealed value of `context`; `None` if it was sealed with another
    /// key or context, or altered.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.0.decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad: context }).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";

    #[test]
    fn keys_are_exactly_64_hex_digits() {
        let key = Key32::from_hex(HEX).expect("a key");
        assert_eq!(key.bytes()[..4], [0x00, 0x11, 0x22, 0x33]);
        assert_eq!(key.bytes()[31], 0xff);
        assert_eq!(Key32::from_hex(&format!("  {HEX}\n")), Some(key.clone()));
        for bad in ["", "00", &HEX[..62], &format!("{HEX}00"), &HEX.replace('a', "g"), &format!("é{}", &HEX[2..])] {
            assert_eq!(Key32::from_hex(bad), None, "{bad}");
        }
        assert_eq!(format!("{key:?}"), "Key32(…)", "never printed");
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context_and_unaltered() {
        let key = Key32::from_hex(HEX).expect("a key");
        let sealer = Sealer::new(&key);
        let sealed = sealer.seal(b"kid-1", b"seed");
        assert_eq!(sealer.open(b"kid-1", &sealed).as_deref(), Some(&b"seed"[..]));
        assert_eq!(sealer.open(b"kid-2", &sealed), None, "another context");
        let other = Sealer::new(&Key32::from_bytes([7; 32]));
        assert_eq!(other.open(b"kid-1", &sealed), None, "another key");
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert_eq!(sealer.open(b"kid-1", &altered), None, "altered");
        assert_eq!(sealer.open(b"kid-1", &sealed[..NONCE_LEN - 1]), None, "too short");
        assert_ne!(sealer.seal(b"kid-1", b"seed"), sealed, "random nonces");
    }

    #[test]
    fn sealing_with_a_given_nonce_is_deterministic() {
        let sealer = Sealer::new(&Key32::from_bytes([1; 32]));
        let a = sealer.seal_with_nonce([9; NONCE_LEN], b"id_number", b"110105");
        assert_eq!(a, sealer.seal_with_nonce([9; NONCE_LEN], b"id_number", b"110105"));
        assert_eq!(&a[..NONCE_LEN], &[9; NONCE_LEN]);
        assert_eq!(sealer.open(b"id_number", &a).as_deref(), Some(&b"110105"[..]));
    }
}

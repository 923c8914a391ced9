//! Secret material: password and client-secret hashes (argon2id), refresh tokens
//! (random, stored as SHA-256), signing-key seeds encrypted at rest (AES-256-GCM).
//!
//! Nothing here logs; callers never put a password, secret or token in a log field.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use crm_platform::crypto::{Key32, Sealer};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::settings::Argon2Settings;

/// Hashes and checks passwords and client secrets.
#[derive(Clone)]
pub struct PasswordHashing {
    params: Params,
    /// A hash to verify against when the login is unknown, so that an unknown login
    /// costs as much time as a wrong password.
    decoy: String,
}

impl std::fmt::Debug for PasswordHashing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHashing").field("params", &self.params).finish_non_exhaustive()
    }
}

impl PasswordHashing {
    /// Hashing with the configured cost.
    pub fn new(settings: &Argon2Settings) -> Result<Self> {
        let params = Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None)
            .map_err(|e| Error::Secret(format!("argon2 parameters: {e}")))?;
        let mut hashing = Self { params, decoy: String::new() };
        hashing.decoy = hashing.hash(&URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()))?;
        Ok(hashing)
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// The PHC string of `secret` with a fresh salt.
    pub fn hash(&self, secret: &str) -> Result<String> {
        let salt_bytes: [u8; 16] = rand::random();
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| Error::Secret(e.to_string()))?;
        self.argon2()
            .hash_password(secret.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Secret(e.to_string()))
    }

    /// Whether `secret` matches `stored` (a PHC string); with `None`, spends the same
    /// time against a decoy and answers false.
    pub fn verify(&self, secret: &str, stored: Option<&str>) -> bool {
        let target = stored.unwrap_or(&self.decoy);
        let Ok(parsed) = PasswordHash::new(target) else { return false };
        let ok = self.argon2().verify_password(secret.as_bytes(), &parsed).is_ok();
        ok && stored.is_some()
    }
}

/// A new refresh token (or client secret): 32 random bytes, base64url.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// How a refresh token is stored and looked up.
pub fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Encrypts signing-key seeds at rest.
#[derive(Clone)]
pub struct SeedCipher(Sealer);

impl std::fmt::Debug for SeedCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SeedCipher")
    }
}

impl SeedCipher {
    /// A cipher with the key-encryption key.
    pub fn new(key: &Key32) -> Self {
        Self(Sealer::new(key))
    }

    /// `base64(nonce ‖ ciphertext)`; the kid is bound as associated data so that a
    /// seed cannot be swapped between keys.
    pub fn encrypt(&self, kid: &str, seed: &[u8; 32]) -> Result<String> {
        Ok(STANDARD.encode(self.0.seal(kid.as_bytes(), seed)))
    }

    /// The seed back.
    pub fn decrypt(&self, kid: &str, stored: &str) -> Result<[u8; 32]> {
        let raw = STANDARD.decode(stored).map_err(|_| Error::Secret("stored seed is not base64".into()))?;
        let plain = self
            .0
            .open(kid.as_bytes(), &raw)
            .ok_or_else(|| Error::Secret("seed does not decrypt: wrong identity.key_encryption_key?".into()))?;
        plain.try_into().map_err(|_| Error::Secret("seed is not 32 bytes".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashing() -> PasswordHashing {
        PasswordHashing::new(&Argon2Settings { memory_kib: 64, iterations: 1, parallelism: 1 }).unwrap()
    }

    #[test]
    fn a_password_verifies_against_its_hash_only() {
        let h = hashing();
        let stored = h.hash("Correct-Horse-9").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(h.verify("Correct-Horse-9", Some(&stored)));
        assert!(!h.verify("correct-horse-9", Some(&stored)));
        assert!(!h.verify("Correct-Horse-9", None), "the decoy never matches");
        assert_ne!(h.hash("Correct-Horse-9").unwrap(), stored, "salted");
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_hashed() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), a);
    }

    #[test]
    fn a_seed_decrypts_only_with_its_key_and_kid() {
        let cipher = SeedCipher::new(&Key32::from_bytes([7u8; 32]));
        let seed = [42u8; 32];
        let stored = cipher.encrypt("k1", &seed).unwrap();
        assert_eq!(cipher.decrypt("k1", &stored).unwrap(), seed);
        assert!(cipher.decrypt("k2", &stored).is_err());
        assert!(SeedCipher::new(&Key32::from_bytes([8u8; 32])).decrypt("k1", &stored).is_err());
    }
}

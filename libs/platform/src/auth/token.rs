//! Access tokens: compact JWS (JWT) signed with Ed25519 (`alg: EdDSA`), and the
//! claims every service reads from them.
//!
//! Only one algorithm is accepted, whatever the header says otherwise: a token with
//! `alg: none`, an HMAC algorithm or anything but EdDSA is malformed, which closes
//! the classic algorithm-confusion attacks.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, Verifier as _};
use serde::{Deserialize, Serialize};

/// Who a token was issued to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A member of staff.
    User,
    /// Another bank system (service account).
    Service,
}

/// How much customer data a caller sees along the org tree; ordered from narrowest
/// to widest so that the widest of several roles is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataScope {
    /// Customers the caller is an RM of.
    Own,
    /// Customers of the caller's org.
    Org,
    /// Customers of the caller's org and every org below it.
    Subtree,
    /// Every customer.
    All,
}

impl DataScope {
    /// The scope's name in tokens and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            DataScope::Own => "own",
            DataScope::Org => "org",
            DataScope::Subtree => "subtree",
            DataScope::All => "all",
        }
    }
}

/// The claims of an access token (docs/auth.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// User id or service-account client id.
    pub sub: String,
    /// Audience: the platform the token is meant for.
    pub aud: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// Token id.
    pub jti: String,
    /// User or service account.
    pub kind: PrincipalKind,
    /// Login or client id, for logs and audit trails.
    pub name: String,
    /// The principal's org id.
    pub org: String,
    /// Materialised path of that org, e.g. `/HO/BJ/BJ01/`.
    pub org_path: String,
    /// Role codes.
    pub roles: Vec<String>,
    /// Function permissions (union of the roles').
    pub perms: Vec<String>,
    /// Data scope (widest of the roles').
    pub scope: DataScope,
}

/// Why a token is not acceptable. Every variant means UNAUTHENTICATED.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with JSON header and claims, or not EdDSA.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// Signed by a key this service does not know (even after asking identity again).
    #[error("token signed by an unknown key")]
    UnknownKey,
    /// The signature does not match: the token was altered or forged.
    #[error("token signature is invalid")]
    BadSignature,
    /// Past its expiry.
    #[error("token has expired")]
    Expired,
    /// Issued in the future beyond the allowed clock skew.
    #[error("token is not valid yet")]
    NotYetValid,
    /// Issued by someone else.
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// Meant for another audience.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// Issued before the principal was disabled or their credentials reset.
    #[error("token has been revoked")]
    Revoked,
}

/// The header of our tokens.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    kid: String,
}

/// An Ed25519 key that signs tokens, with its key id. Only identity holds these.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate(kid: impl Into<String>) -> Self {
        let seed: [u8; 32] = rand::random();
        Self::from_seed(kid, seed)
    }

    /// The key with this 32-byte seed (as stored, encrypted, by identity).
    pub fn from_seed(kid: impl Into<String>, seed: [u8; 32]) -> Self {
        Self { kid: kid.into(), key: ed25519_dalek::SigningKey::from_bytes(&seed) }
    }

    /// The seed, for storing the key.
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, to publish.
    pub fn verification_key(&self) -> VerificationKey {
        VerificationKey { kid: self.kid.clone(), public_key: self.key.verifying_key().to_bytes() }
    }
}

/// An Ed25519 public key with its key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationKey {
    /// Key id (`kid` header of the tokens it verifies).
    pub kid: String,
    /// The 32-byte public key.
    pub public_key: [u8; 32],
}

impl VerificationKey {
    /// A key from published bytes; `None` unless they are a valid Ed25519 point.
    pub fn from_bytes(kid: impl Into<String>, bytes: &[u8]) -> Option<Self> {
        let public_key: [u8; 32] = bytes.try_into().ok()?;
        ed25519_dalek::VerifyingKey::from_bytes(&public_key).ok()?;
        Some(Self { kid: kid.into(), public_key })
    }

    pub(crate) fn verifying_key(&self) -> Option<ed25519_dalek::VerifyingKey> {
        ed25519_dalek::VerifyingKey::from_bytes(&self.public_key).ok()
    }
}

/// Signs `claims` into a compact JWS with `key`.
pub fn sign(claims: &Claims, key: &SigningKey) -> String {
    let header = Header { alg: "EdDSA".into(), typ: Some("JWT".into()), kid: key.kid.clone() };
    // Serialising these plain structs cannot fail.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let claims = serde_json::to_vec(claims).unwrap_or_default();
    let mut token = String::with_capacity(64 + claims.len() * 4 / 3 + 88);
    URL_SAFE_NO_PAD.encode_string(header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut token);
    let signature = key.key.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
    token
}

/// A token split into its parts, header parsed, signature not yet checked.
#[derive(Debug)]
pub(crate) struct Unverified<'a> {
    pub(crate) kid: String,
    signed: &'a str,
    claims: &'a str,
    signature: Signature,
}

/// Splits and parses the header; checks the algorithm.
pub(crate) fn parse(token: &str) -> Result<Unverified<'_>, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected three dot-separated parts"));
    };
    let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| TokenError::Malformed("header is not base64url"))?;
    let header: Header = serde_json::from_slice(&header).map_err(|_| TokenError::Malformed("header is not valid"))?;
    if header.alg != "EdDSA" {
        return Err(TokenError::Malformed("only EdDSA tokens are accepted"));
    }
    let signature =
        URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed("signature is not base64url"))?;
    let signature = Signature::from_slice(&signature).map_err(|_| TokenError::Malformed("signature length"))?;
    let signed_len = token.len() - token.rsplit('.').next().map_or(0, str::len) - 1;
    Ok(Unverified { kid: header.kid, signed: &token[..signed_len], claims, signature })
}

impl Unverified<'_> {
    /// Checks the signature with `key`, then decodes the claims.
    pub(crate) fn verify(&self, key: &ed25519_dalek::VerifyingKey) -> Result<Claims, TokenError> {
        key.verify(self.signed.as_bytes(), &self.signature).map_err(|_| TokenError::BadSignature)?;
        let claims =
            URL_SAFE_NO_PAD.decode(self.claims).map_err(|_| TokenError::Malformed("claims are not base64url"))?;
        serde_json::from_slice(&claims).map_err(|_| TokenError::Malformed("claims are not valid"))
    }
}

/// Checks the time, issuer and audience claims of verified claims.
pub(crate) fn check_claims(
    claims: &Claims,
    now: i64,
    leeway: i64,
    issuer: &str,
    audience: &str,
) -> Result<(), TokenError> {
    // Saturating: signed claims may hold any i64 (an overflow panicked in debug builds).
    if claims.exp.saturating_add(leeway) <= now {
        return Err(TokenError::Expired);
    }
    if claims.iat.saturating_sub(leeway) > now {
        return Err(TokenError::NotYetValid);
    }
    if claims.iss != issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.aud != audience {
        return Err(TokenError::WrongAudience);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn claims(now: i64) -> Claims {
        Claims {
            iss: "crm-identity".into(),
            sub: "u-1".into(),
            aud: "crm".into(),
            iat: now,
            exp: now + 900,
            jti: "j-1".into(),
            kind: PrincipalKind::User,
            name: "alice".into(),
            org: "BJ01".into(),
            org_path: "/HO/BJ/BJ01/".into(),
            roles: vec!["RM".into()],
            perms: vec!["customer.read".into()],
            scope: DataScope::Own,
        }
    }

    fn verify(token: &str, key: &SigningKey) -> Result<Claims, TokenError> {
        let vk = key.verification_key().verifying_key().unwrap();
        parse(token)?.verify(&vk)
    }

    #[test]
    fn a_signed_token_verifies_and_round_trips_its_claims() {
        let key = SigningKey::generate("k1");
        let c = claims(1_000);
        let token = sign(&c, &key);
        assert_eq!(parse(&token).unwrap().kid, "k1");
        assert_eq!(verify(&token, &key).unwrap(), c);
    }

    #[test]
    fn a_token_with_altered_claims_fails_the_signature() {
        let key = SigningKey::generate("k1");
        let token = sign(&claims(1_000), &key);
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut forged = claims(1_000);
        forged.scope = DataScope::All;
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(verify(&parts.join("."), &key), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_token_signed_by_another_key_fails_the_signature() {
        let token = sign(&claims(1_000), &SigningKey::generate("k1"));
        assert_eq!(verify(&token, &SigningKey::generate("k1")), Err(TokenError::BadSignature));
    }

    #[test]
    fn malformed_tokens_are_refused_before_any_crypto() {
        let key = SigningKey::generate("k1");
        let good = sign(&claims(1_000), &key);
        let (_, rest) = good.split_once('.').unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"k1"}"#);
        let hs_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","kid":"k1"}"#);
        for bad in [
            String::new(),
            "abc".to_string(),
            "a.b".to_string(),
            format!("{good}.extra"),
            format!("{none_header}.{rest}"),
            format!("{hs_header}.{rest}"),
            format!("!!!.{rest}"),
            good.rsplit_once('.').map(|(signed, _)| format!("{signed}.AAAA")).unwrap(),
        ] {
            assert!(
                matches!(verify(&bad, &key), Err(TokenError::Malformed(_))),
                "{bad:?} was not refused as malformed"
            );
        }
    }

    #[test]
    fn time_issuer_and_audience_are_checked() {
        let c = claims(1_000);
        let cases: &[(i64, &str, &str, Result<(), TokenError>)] = &[
            (1_000, "crm-identity", "crm", Ok(())),
            (1_929, "crm-identity", "crm", Ok(())), // within leeway after exp
            (1_930, "crm-identity", "crm", Err(TokenError::Expired)),
            (969, "crm-identity", "crm", Err(TokenError::NotYetValid)),
            (970, "crm-identity", "crm", Ok(())),
            (1_000, "someone-else", "crm", Err(TokenError::WrongIssuer)),
            (1_000, "crm-identity", "payments", Err(TokenError::WrongAudience)),
        ];
        for (now, iss, aud, expected) in cases {
            assert_eq!(&check_claims(&c, *now, 30, iss, aud), expected, "now={now} iss={iss} aud={aud}");
        }
    }

    #[test]
    fn times_at_the_ends_of_the_range_are_checked_without_overflow() {
        let mut c = claims(1_000);
        (c.iat, c.exp) = (i64::MIN, i64::MAX);
        assert_eq!(check_claims(&c, 1_000, 30, "crm-identity", "crm"), Ok(()));
        (c.iat, c.exp) = (i64::MAX, i64::MIN);
        assert_eq!(check_claims(&c, 1_000, 30, "crm-identity", "crm"), Err(TokenError::Expired));
        c.exp = i64::MAX;
        assert_eq!(check_claims(&c, 1_000, 30, "crm-identity", "crm"), Err(TokenError::NotYetValid));
    }

    #[test]
    fn the_widest_scope_is_the_maximum() {
        let scopes = [DataScope::Org, DataScope::Own, DataScope::Subtree];
        assert_eq!(scopes.iter().max(), Some(&DataScope::Subtree));
        assert!(DataScope::All > DataScope::Subtree);
        assert_eq!(serde_json::to_string(&DataScope::Subtree).unwrap(), "\"subtree\"");
    }

    #[test]
    fn a_verification_key_must_be_32_bytes() {
        assert!(VerificationKey::from_bytes("k", &[0u8; 31]).is_none());
        let vk = SigningKey::generate("k").verification_key();
        assert_eq!(VerificationKey::from_bytes("k", &vk.public_key), Some(vk));
    }
}

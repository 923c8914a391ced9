//! Access tokens as any caller may present them, through the verifier every service
//! runs (`auth::Verifier`), holding one fixed Ed25519 key `k1` (seed: 32 bytes of 7).
//!
//! Input: the first byte picks the mode, the rest is
//! - mode 0: a compact JWS, as sent in `authorization: Bearer …`;
//! - mode 1: a header and a claims JSON document separated by a 0xFF byte, which the
//!   target signs with `k1` (so that the parsing behind the signature is reached);
//! - mode 2: claims built from the bytes (strings, roles, times around now), signed
//!   with the platform's own `auth::sign`.
//!
//! Properties: whatever verifies carries claims that re-sign and verify to the same
//! claims, within issuer, audience and time; a second verification (from the cache)
//! agrees with the first; a token the platform signed with a known key is never
//! refused as malformed or forged, and one that is valid on its face is accepted.
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crm_platform::auth::{
    Claims, DataScope, PrincipalKind, SigningKey, StaticKeys, TokenError, Verifier, VerifierSettings, sign,
};
use ed25519_dalek::Signer;
use libfuzzer_sys::arbitrary::{Result as ArbitraryResult, Unstructured};
use libfuzzer_sys::fuzz_target;

const SEED: [u8; 32] = [7; 32];
const ISSUER: &str = "crm-identity";
const AUDIENCE: &str = "crm";
const LEEWAY: i64 = 30;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    verifier: Verifier,
    key: SigningKey,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let key = SigningKey::from_seed("k1", SEED);
    let settings = VerifierSettings {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        leeway_s: LEEWAY,
        key_refresh_min_interval: Duration::from_secs(3600),
        cache_capacity: 64,
    };
    let verifier = Verifier::new(settings, Arc::new(StaticKeys(vec![key.verification_key()])));
    verifier.set_keys(vec![key.verification_key()]);
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime");
    Fixture { runtime, verifier, key }
});

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn verify(token: &str) -> Result<Claims, TokenError> {
    FIXTURE.runtime.block_on(FIXTURE.verifier.verify(token)).map(|caller| {
        assert_eq!(caller.token(), token);
        caller.claims.clone()
    })
}

/// Whether the claims' times are valid now and stay so for a few seconds (properties
/// about time are only asserted away from the edges, so that the clock cannot flip
/// them between two checks).
fn clearly_current(c: &Claims, now: i64) -> bool {
    c.exp.saturating_add(LEEWAY) > now.saturating_add(5) && c.iat.saturating_sub(LEEWAY) <= now.saturating_sub(5)
}

/// What holds for any input: an accepted token's claims are acceptable and re-sign to
/// a token that verifies to them; verifying again agrees.
fn check(token: &str) -> Result<Claims, TokenError> {
    let first = verify(token);
    let now = now();
    if let Ok(claims) = &first {
        assert_eq!((claims.iss.as_str(), claims.aud.as_str()), (ISSUER, AUDIENCE));
        assert!(claims.exp.saturating_add(LEEWAY) > now - 5, "expired claims accepted: {claims:?}");
        if clearly_current(claims, now) {
            assert_eq!(verify(token).as_ref(), Ok(claims), "the cached verification differs");
            let again = sign(claims, &FIXTURE.key);
            assert_eq!(verify(&again).as_ref(), Ok(claims), "re-signed claims do not verify");
        }
    } else if !matches!(first, Err(TokenError::Expired | TokenError::NotYetValid)) {
        assert_eq!(verify(token), first, "a second verification differs");
    }
    first
}

fn string(u: &mut Unstructured<'_>, usual: &str) -> ArbitraryResult<String> {
    if u.arbitrary()? { Ok(usual.to_string()) } else { u.arbitrary() }
}

fn claims(u: &mut Unstructured<'_>, now: i64) -> ArbitraryResult<Claims> {
    let time = |u: &mut Unstructured<'_>| -> ArbitraryResult<i64> {
        if u.arbitrary()? { Ok(now + i64::from(u.arbitrary::<i16>()?)) } else { u.arbitrary() }
    };
    let (iat, exp) = (time(u)?, time(u)?);
    Ok(Claims {
        iss: string(u, ISSUER)?,
        sub: u.arbitrary()?,
        aud: string(u, AUDIENCE)?,
        iat,
        exp,
        jti: u.arbitrary()?,
        kind: if u.arbitrary()? { PrincipalKind::User } else { PrincipalKind::Service },
        name: u.arbitrary()?,
        org: u.arbitrary()?,
        org_path: u.arbitrary()?,
        roles: u.arbitrary()?,
        perms: u.arbitrary()?,
        scope: [DataScope::Own, DataScope::Org, DataScope::Subtree, DataScope::All]
            [usize::from(u.arbitrary::<u8>()? % 4)],
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => {
            let _ = check(&String::from_utf8_lossy(rest));
        }
        1 => {
            let (header, body) = match rest.iter().position(|b| *b == 0xFF) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            let mut token = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(body));
            let signature = ed25519_dalek::SigningKey::from_bytes(&SEED).sign(token.as_bytes());
            token = format!("{token}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()));
            match check(&token) {
                Ok(claims) => {
                    // (Not re-read as a `serde_json::Value`: an ignored header field may hold an
                    // escape such as a lone surrogate that the typed parse skips; harmless.)
                    let parsed: Claims = serde_json::from_slice(body).expect("accepted claims are Claims");
                    assert_eq!(parsed, claims);
                }
                Err(TokenError::BadSignature) => panic!("a token signed with k1 has a bad signature"),
                Err(_) => {}
            }
        }
        _ => {
            let now = now();
            let Ok(claims) = claims(&mut Unstructured::new(rest), now) else { return };
            let token = sign(&claims, &FIXTURE.key);
            let result = check(&token);
            match &result {
                Ok(verified) => assert_eq!(verified, &claims),
                Err(TokenError::Malformed(_) | TokenError::BadSignature | TokenError::UnknownKey) => {
                    panic!("a token the platform signed with a known key was refused: {result:?} {claims:?}")
                }
                Err(_) => {}
            }
            if claims.iss == ISSUER && claims.aud == AUDIENCE && clearly_current(&claims, now) {
                assert_eq!(result, Ok(claims));
            }
        }
    }
});

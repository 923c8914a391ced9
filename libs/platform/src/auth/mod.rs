//! Authentication and authorization, checked locally in every service.
//!
//! Identity signs short-lived access tokens (compact JWS, Ed25519, with a key id);
//! every service verifies them here without calling identity per request, maps each
//! RPC to the permission it needs in one table, and hands handlers the [`Caller`].
//! The design and the permission catalogue are in `docs/auth.md`.
//!
//! # Layout
//! - [`token`]: claims, signing keys, signing and parsing of tokens.
//! - [`verifier`]: key cache (refreshed on an unknown key id), verified-token cache,
//!   revocation list.
//! - [`layer`]: the tower layer, the policy table type, the caller of the current call.
//! - [`revocation`]: `PrincipalRevoked` events into the database and into verifiers.
//! - [`identity_keys`]: keys fetched from identity over gRPC.
//! - [`stored`]: principal kinds and data scopes as `TEXT` columns, by their token names.
//!
//! The caller travels on: [`current_caller`] is set while a call is handled, the kit's
//! gRPC clients forward its token, and the outbox records its subject as the actor.

pub mod identity_keys;
pub mod layer;
pub mod revocation;
pub mod stored;
pub mod token;
pub mod verifier;
pub mod visibility;

pub use identity_keys::IdentityKeys;
pub use layer::{AuthLayer, Policy, Requirement, caller, current_caller};
pub use stored::UnknownName;
pub use token::{Claims, DataScope, PrincipalKind, SigningKey, TokenError, VerificationKey, sign};
pub use verifier::{Caller, KeySource, StaticKeys, Verifier, VerifierSettings};
pub use visibility::Visibility;

/// The routing key (event type) of revocations.
pub const PRINCIPAL_REVOKED: &str = "crm.identity.v1.PrincipalRevoked";

//! All SQL of identity, one module per aggregate. Every change runs in one
//! transaction together with its audit entry and, where other services must learn of
//! it, its outbox event; a refused change writes nothing.
//!
//! Rows are read into `#[derive(sqlx::FromRow)]` structs, which are also what the
//! store answers: no proto type appears in a signature here (`crate::convert` maps
//! them to the wire). Principal kinds and data scopes are the kit's enums, stored by
//! their token names (`crm_platform::auth::stored`).
//!
//! - [`orgs`]: the org tree (materialised paths; moves rewrite a subtree) and its
//!   `OrgChanged` events.
//! - [`roles`]: built-in and custom roles.
//! - [`principals`]: users and service accounts, their roles, disabling, password
//!   resets and unlocking.
//! - [`logins`]: credentials, failed-login counting and locks, successful logins and
//!   the claims material of access tokens.
//! - [`refresh_tokens`]: rotation with reuse detection, logout.
//! - [`revocations`]: revoking every token of a principal (`PrincipalRevoked`).
//! - [`signing_keys`]: the current signing key, rotation, published keys.
//! - [`mod@bootstrap`]: the root org and first administrator of an empty database.
//! - [`mod@audit`]: the audit trail: [`CallContext`], [`audit()`], listing.

pub mod audit;
pub mod bootstrap;
pub mod logins;
pub mod orgs;
pub mod principals;
pub mod refresh_tokens;
pub mod revocations;
pub mod roles;
pub mod signing_keys;

pub use audit::{CallContext, audit, list_audit};
pub use bootstrap::{bootstrap, is_empty};
pub use logins::{Credentials, Lockout, PrincipalClaims, credentials, login_failed, login_succeeded, principal_claims};
pub use orgs::{Org, close_org, create_org, list_orgs, update_org};
pub use principals::{
    NewPrincipal, Principal, assign_roles, create_principal, get_user, reset_password, set_disabled, unlock,
    update_user,
};
pub use refresh_tokens::{Refreshed, logout, rotate_refresh};
pub use roles::{Role, create_role, list_roles, update_role};
pub use signing_keys::{PublishedKey, StoredKey, current_key, rotate_key, verification_keys};

/// Source of this service's events.
pub const EVENT_SOURCE: &str = "crm/identity";

/// The actor of what identity does by itself (first start, first signing key).
fn system() -> CallContext {
    CallContext::system()
}

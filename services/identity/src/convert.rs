//! Identity's wire mapping, written once: the store's rows to `crm.identity.v1`
//! messages, and the one message a client sends as a whole (`Role`) back to a row,
//! with a field violation for every bad field. Data scopes map here and nowhere else.

use crm_platform::FieldViolations;
use crm_platform::auth::DataScope;
use crm_platform::convert::timestamp;
use crm_proto::crm::identity::v1 as pb;
use time::OffsetDateTime;

use crate::domain;
use crm_platform::audit::StoredEntry;

use crate::store::{Org, Principal, PublishedKey, Role};

/// The wire value of a scope.
pub fn scope_to_pb(scope: DataScope) -> pb::DataScope {
    match scope {
        DataScope::Own => pb::DataScope::Own,
        DataScope::Org => pb::DataScope::Org,
        DataScope::Subtree => pb::DataScope::Subtree,
        DataScope::All => pb::DataScope::All,
    }
}

/// The scope of a wire value; `None` for unspecified and unknown numbers.
pub fn scope_from_pb(value: i32) -> Option<DataScope> {
    match pb::DataScope::try_from(value).ok()? {
        pb::DataScope::Own => Some(DataScope::Own),
        pb::DataScope::Org => Some(DataScope::Org),
        pb::DataScope::Subtree => Some(DataScope::Subtree),
        pb::DataScope::All => Some(DataScope::All),
        pb::DataScope::Unspecified => None,
    }
}

/// A role as a client sends it (create, update): code and name trimmed, permissions
/// sorted and deduplicated, `built_in` ignored. Every bad field is added to `v`; the
/// answer is only meaningful when `v` stays empty.
pub fn role_from_pb(role: Option<pb::Role>, v: &mut FieldViolations) -> Role {
    let Some(role) = role else {
        v.add("role", "is required");
        return Role {
            code: String::new(),
            name: String::new(),
            permissions: Vec::new(),
            data_scope: DataScope::Own,
            built_in: false,
        };
    };
    let code = role.code.trim().to_string();
    let name = role.name.trim().to_string();
    if !domain::valid_role_code(&code) {
        v.add("role.code", "must be 2-32 upper-case letters, digits or '_', starting with a letter");
    }
    if name.is_empty() {
        v.add("role.name", "is required");
    }
    for (i, p) in role.permissions.iter().enumerate() {
        if !domain::valid_permission(p) {
            v.add(format!("role.permissions[{i}]"), "must look like `area.thing` or `area.thing.action`");
        }
    }
    let mut permissions = role.permissions;
    permissions.sort();
    permissions.dedup();
    let data_scope = scope_from_pb(role.data_scope).unwrap_or_else(|| {
        v.add("role.data_scope", "must be OWN, ORG, SUBTREE or ALL");
        DataScope::Own
    });
    Role { code, name, permissions, data_scope, built_in: false }
}

impl From<Org> for pb::Org {
    fn from(o: Org) -> Self {
        pb::Org {
            org_id: o.org_id,
            name: o.name,
            parent_org_id: o.parent_org_id.unwrap_or_default(),
            path: o.path,
            closed: o.closed,
        }
    }
}

impl From<Role> for pb::Role {
    fn from(r: Role) -> Self {
        pb::Role {
            code: r.code,
            name: r.name,
            permissions: r.permissions,
            data_scope: scope_to_pb(r.data_scope) as i32,
            built_in: r.built_in,
        }
    }
}

/// A user or service account on the wire as of `now`: `locked_until` only while
/// the lock holds.
pub fn user_to_pb(u: Principal, now: OffsetDateTime) -> pb::User {
    pb::User {
        user_id: u.subject,
        login: u.login,
        display_name: u.display_name,
        org_id: u.org_id,
        role_codes: u.role_codes,
        disabled: u.disabled,
        locked_until: u.locked_until.filter(|t| domain::is_locked(Some(*t), now)).map(timestamp),
    }
}

impl From<Principal> for pb::User {
    /// As of the current time.
    fn from(u: Principal) -> Self {
        user_to_pb(u, OffsetDateTime::now_utc())
    }
}

/// An entry of the kit's audit trail as identity's wire type.
pub fn audit_event(stored: StoredEntry) -> pb::AuditEvent {
    let e = stored.entry;
    pb::AuditEvent {
        audit_id: stored.audit_id,
        occurred_at: Some(timestamp(stored.occurred_at)),
        actor: e.actor,
        action: e.action,
        target: e.subject.unwrap_or_default(),
        source_address: e.source_address.unwrap_or_default(),
        details: e.details.to_string(),
        actor_name: e.actor_name,
        trace_id: e.trace_id.unwrap_or_default(),
    }
}

impl From<PublishedKey> for pb::VerificationKey {
    fn from(k: PublishedKey) -> Self {
        pb::VerificationKey {
            kid: k.kid,
            alg: "EdDSA".into(),
            public_key: k.public_key,
            retired_at: k.retired_at.map(timestamp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_maps_to_the_wire_and_back() {
        for scope in [DataScope::Own, DataScope::Org, DataScope::Subtree, DataScope::All] {
            assert_eq!(scope_from_pb(scope_to_pb(scope) as i32), Some(scope));
        }
        for unusable in [pb::DataScope::Unspecified as i32, 99, -1] {
            assert_eq!(scope_from_pb(unusable), None, "{unusable}");
        }
    }

    #[test]
    fn a_role_is_trimmed_sorted_and_every_bad_field_is_named() {
        let mut v = FieldViolations::new();
        let role = role_from_pb(
            Some(pb::Role {
                code: " AUDITOR ".into(),
                name: " Branch auditor ".into(),
                permissions: vec!["customer.read".into(), "customer.audit.read".into(), "customer.read".into()],
                data_scope: pb::DataScope::Subtree as i32,
                built_in: true,
            }),
            &mut v,
        );
        assert!(v.is_empty(), "{v:?}");
        assert_eq!(
            role,
            Role {
                code: "AUDITOR".into(),
                name: "Branch auditor".into(),
                permissions: vec!["customer.audit.read".into(), "customer.read".into()],
                data_scope: DataScope::Subtree,
                built_in: false,
            }
        );

        let mut v = FieldViolations::new();
        role_from_pb(
            Some(pb::Role {
                code: "x".into(),
                name: " ".into(),
                permissions: vec!["Bad".into()],
                ..Default::default()
            }),
            &mut v,
        );
        let fields: Vec<&str> = v.iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["role.code", "role.name", "role.permissions[0]", "role.data_scope"]);

        let mut v = FieldViolations::new();
        role_from_pb(None, &mut v);
        assert_eq!(v.iter().map(|(f, _)| f).collect::<Vec<_>>(), ["role"]);
    }

    #[test]
    fn a_user_shows_its_lock_only_while_it_holds() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let user = |locked_until| Principal {
            subject: "u-1".into(),
            login: "alice".into(),
            display_name: "Alice".into(),
            org_id: "BJ01".into(),
            role_codes: vec!["RM".into()],
            disabled: false,
            locked_until,
        };
        let later = now + time::Duration::minutes(5);
        assert_eq!(user_to_pb(user(Some(later)), now).locked_until, Some(timestamp(later)));
        assert_eq!(user_to_pb(user(Some(now)), now).locked_until, None);
        assert_eq!(user_to_pb(user(None), now).locked_until, None);
        assert_eq!(
            pb::Org::from(Org {
                org_id: "HO".into(),
                name: "Head Office".into(),
                parent_org_id: None,
                path: "/HO/".into(),
                closed: false,
            })
            .parent_org_id,
            ""
        );
    }
}

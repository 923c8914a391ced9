//! Who may call what, and which customers they see (docs/auth.md).
//!
//! [`POLICY`] is the one table mapping every RPC of `crm.customer.v1.CustomerService`
//! to the permission it needs; the kit's auth layer enforces it before a handler runs
//! (an RPC missing here is refused). Handlers then narrow reads to the caller's data
//! scope with [`visibility`] and reveal full ID and phone numbers only with
//! `customer.pii.read`.

use crm_platform::auth::{Caller, Policy, Requirement};

use crate::store::Visibility;

const SERVICE: &str = "/crm.customer.v1.CustomerService/";

macro_rules! rpc {
    ($method:literal, $permission:literal) => {
        (concat!("/crm.customer.v1.CustomerService/", $method), Requirement::Permission($permission))
    };
}

/// Permission per RPC.
pub const POLICY: Policy = &[
    rpc!("UpsertSourceRecord", "customer.write"),
    rpc!("ImportSourceRecords", "customer.write"),
    rpc!("AddRelationship", "customer.write"),
    rpc!("PutPartyDetail", "customer.details.write"),
    rpc!("RemovePartyDetail", "customer.details.write"),
    rpc!("SetExtendedAttributes", "customer.details.write"),
    rpc!("GetCustomer", "customer.read"),
    rpc!("GetCustomer360", "customer.read"),
    rpc!("SearchCustomers", "customer.read"),
    rpc!("ListCustomerHistory", "customer.read"),
    rpc!("ListAssignmentHistory", "customer.read"),
    rpc!("AssignCustomers", "customer.assign"),
    rpc!("RecallCustomers", "customer.assign"),
    rpc!("ListSuspectPairs", "customer.steward"),
    rpc!("ResolveSuspectPair", "customer.steward"),
    rpc!("ListAccessAudit", "customer.audit.read"),
];

/// Full ID and phone numbers instead of masked ones.
pub const PII_READ: &str = "customer.pii.read";

/// The customers `caller` may see.
pub fn visibility(caller: &Caller) -> Visibility {
    Visibility::of(caller)
}

/// Whether `caller` sees PII in full.
pub fn can_see_pii(caller: &Caller) -> bool {
    caller.has_permission(PII_READ)
}

/// The RPC path prefix of this service (for tests and tooling).
pub fn service_prefix() -> &'static str {
    SERVICE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crm_platform::auth::{Claims, DataScope, PrincipalKind};
    use prost::Message;

    fn caller(scope: DataScope, perms: &[&str]) -> Caller {
        Caller::new(
            Claims {
                iss: "crm-identity".into(),
                sub: "u-7".into(),
                aud: "crm".into(),
                iat: 0,
                exp: 1,
                jti: "j".into(),
                kind: PrincipalKind::User,
                name: "rm7".into(),
                org: "BJ01".into(),
                org_path: "/HO/BJ/BJ01/".into(),
                roles: vec![],
                perms: perms.iter().map(|p| p.to_string()).collect(),
                scope,
            },
            "token",
        )
    }

    #[test]
    fn every_rpc_of_the_service_has_exactly_one_policy_entry() {
        let fds = prost_types::FileDescriptorSet::decode(crm_proto::FILE_DESCRIPTOR_SET).unwrap();
        let methods: Vec<String> = fds
            .file
            .iter()
            .filter(|f| f.package() == "crm.customer.v1")
            .flat_map(|f| f.service.iter())
            .filter(|s| s.name() == "CustomerService")
            .flat_map(|s| s.method.iter().map(|m| format!("{SERVICE}{}", m.name())))
            .collect();
        assert!(!methods.is_empty());
        for method in &methods {
            let entries = POLICY.iter().filter(|(p, _)| p == method).count();
            assert_eq!(entries, 1, "{method} must appear once in POLICY");
        }
        for (path, _) in POLICY {
            assert!(methods.iter().any(|m| m == path), "{path} is in POLICY but not in the contract");
        }
    }

    #[test]
    fn each_scope_becomes_its_filter() {
        let cases = [
            (DataScope::All, Visibility::All),
            (DataScope::Subtree, Visibility::Subtree("/HO/BJ/BJ01/".into())),
            (DataScope::Org, Visibility::Org("BJ01".into())),
            (DataScope::Own, Visibility::Own("u-7".into())),
        ];
        for (scope, expected) in cases {
            assert_eq!(visibility(&caller(scope, &[])), expected);
        }
    }

    #[test]
    fn pii_needs_its_own_permission() {
        assert!(!can_see_pii(&caller(DataScope::All, &["customer.read"])));
        assert!(can_see_pii(&caller(DataScope::Own, &["customer.read", "customer.pii.read"])));
    }
}

//! The permission each RPC of identity needs (docs/auth.md). Logging in and
//! publishing keys are open; administration needs `identity.admin`; the audit trail
//! `identity.audit.read`.

use crm_platform::auth::{Policy, Requirement};

macro_rules! rpc {
    ($service:literal, $method:literal, $req:expr) => {
        (concat!("/crm.identity.v1.", $service, "/", $method), $req)
    };
}

const ADMIN: Requirement = Requirement::Permission("identity.admin");

/// Requirement per RPC.
pub const POLICY: Policy = &[
    rpc!("AuthService", "Login", Requirement::Open),
    rpc!("AuthService", "AuthenticateClient", Requirement::Open),
    rpc!("AuthService", "RefreshToken", Requirement::Open),
    rpc!("AuthService", "Logout", Requirement::Open),
    rpc!("AuthService", "ListVerificationKeys", Requirement::Open),
    rpc!("IdentityAdminService", "CreateOrg", ADMIN),
    rpc!("IdentityAdminService", "UpdateOrg", ADMIN),
    rpc!("IdentityAdminService", "CloseOrg", ADMIN),
    rpc!("IdentityAdminService", "ListOrgs", ADMIN),
    rpc!("IdentityAdminService", "CreateRole", ADMIN),
    rpc!("IdentityAdminService", "UpdateRole", ADMIN),
    rpc!("IdentityAdminService", "ListRoles", ADMIN),
    rpc!("IdentityAdminService", "CreateUser", ADMIN),
    rpc!("IdentityAdminService", "UpdateUser", ADMIN),
    rpc!("IdentityAdminService", "AssignRoles", ADMIN),
    rpc!("IdentityAdminService", "DisableUser", ADMIN),
    rpc!("IdentityAdminService", "EnableUser", ADMIN),
    rpc!("IdentityAdminService", "ResetPassword", ADMIN),
    rpc!("IdentityAdminService", "UnlockUser", ADMIN),
    rpc!("IdentityAdminService", "GetUser", ADMIN),
    rpc!("IdentityAdminService", "CreateServiceAccount", ADMIN),
    rpc!("IdentityAdminService", "RotateSigningKey", ADMIN),
    rpc!("IdentityAdminService", "ListAuditEvents", Requirement::Permission("identity.audit.read")),
];

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn every_rpc_of_identity_has_exactly_one_policy_entry() {
        let fds = prost_types::FileDescriptorSet::decode(crm_proto::FILE_DESCRIPTOR_SET).unwrap();
        let methods: Vec<String> = fds
            .file
            .iter()
            .filter(|f| f.package() == "crm.identity.v1")
            .flat_map(|f| f.service.iter().flat_map(|s| s.method.iter().map(move |m| (s.name(), m.name()))))
            .map(|(s, m)| format!("/crm.identity.v1.{s}/{m}"))
            .collect();
        assert!(methods.len() > 20);
        for method in &methods {
            assert_eq!(POLICY.iter().filter(|(p, _)| p == method).count(), 1, "{method}");
        }
        assert_eq!(POLICY.len(), methods.len());
    }
}

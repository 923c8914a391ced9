//! The limits `proto/crm/identity/v1/identity.proto` documents for each request,
//! checked before a handler does anything else: text fields of at most so many
//! characters without NUL or other control characters, and repeated fields of at most
//! so many entries. A request over a limit is refused with INVALID_ARGUMENT, one
//! violation per bad field, and nothing is read or written. Formats (org ids, logins,
//! role codes, permissions) and required fields stay with the handler and the domain.
//! Logins, client credentials and refresh tokens are not checked here: a value that
//! can belong to nobody fails as an unknown one does (UNAUTHENTICATED).

use crm_platform::FieldViolations;
use crm_platform::validate::Check;
use crm_proto::crm::identity::v1 as pb;

/// An org id (1-32 letters, digits, '-' and '_').
const ORG_ID: usize = 32;
/// A user id (a UUID) or a service account's client id.
const USER_ID: usize = 64;
/// A login or client id.
const LOGIN: usize = 128;
/// An org's name, a user's display name, a role's name.
const NAME: usize = 200;
/// A role code.
const ROLE_CODE: usize = 32;
/// Role codes given to one principal.
pub const MAX_ROLES: usize = 50;
/// Permissions of one role.
pub const MAX_PERMISSIONS: usize = 100;
/// A password (the password policy's maximum).
const PASSWORD: usize = 128;

/// CreateOrg.
pub fn create_org(r: &pb::CreateOrgRequest) -> Result<(), FieldViolations> {
    Check::new()
        .line("org_id", &r.org_id, ORG_ID)
        .line("name", &r.name, NAME)
        .line("parent_org_id", &r.parent_org_id, ORG_ID)
        .done()
}

/// UpdateOrg.
pub fn update_org(r: &pb::UpdateOrgRequest) -> Result<(), FieldViolations> {
    Check::new()
        .line("org_id", &r.org_id, ORG_ID)
        .line("name", &r.name, NAME)
        .line("parent_org_id", &r.parent_org_id, ORG_ID)
        .done()
}

/// CloseOrg.
pub fn close_org(r: &pb::CloseOrgRequest) -> Result<(), FieldViolations> {
    Check::new().line("org_id", &r.org_id, ORG_ID).done()
}

/// ListOrgs.
pub fn list_orgs(r: &pb::ListOrgsRequest) -> Result<(), FieldViolations> {
    Check::new().line("org_id", &r.org_id, ORG_ID).done()
}

fn role(r: Option<&pb::Role>) -> Result<(), FieldViolations> {
    let Some(r) = r else { return Ok(()) };
    Check::new()
        .line("role.code", &r.code, ROLE_CODE)
        .line("role.name", &r.name, NAME)
        .list("role.permissions", &r.permissions, MAX_PERMISSIONS, 64)
        .done()
}

/// CreateRole.
pub fn create_role(r: &pb::CreateRoleRequest) -> Result<(), FieldViolations> {
    role(r.role.as_ref())
}

/// UpdateRole.
pub fn update_role(r: &pb::UpdateRoleRequest) -> Result<(), FieldViolations> {
    role(r.role.as_ref())
}

/// CreateUser.
pub fn create_user(r: &pb::CreateUserRequest) -> Result<(), FieldViolations> {
    Check::new()
        .line("login", &r.login, LOGIN)
        .line("display_name", &r.display_name, NAME)
        .line("org_id", &r.org_id, ORG_ID)
        .list("role_codes", &r.role_codes, MAX_ROLES, ROLE_CODE)
        .secret("password", &r.password, PASSWORD)
        .done()
}

/// UpdateUser.
pub fn update_user(r: &pb::UpdateUserRequest) -> Result<(), FieldViolations> {
    Check::new()
        .line("user_id", &r.user_id, USER_ID)
        .line("display_name", &r.display_name, NAME)
        .line("org_id", &r.org_id, ORG_ID)
        .done()
}

/// AssignRoles.
pub fn assign_roles(r: &pb::AssignRolesRequest) -> Result<(), FieldViolations> {
    Check::new().line("user_id", &r.user_id, USER_ID).list("role_codes", &r.role_codes, MAX_ROLES, ROLE_CODE).done()
}

/// DisableUser.
pub fn disable_user(r: &pb::DisableUserRequest) -> Result<(), FieldViolations> {
    Check::new().line("user_id", &r.user_id, USER_ID).line("reason", &r.reason, 500).done()
}

/// EnableUser.
pub fn enable_user(r: &pb::EnableUserRequest) -> Result<(), FieldViolations> {
    Check::new().line("user_id", &r.user_id, USER_ID).done()
}

/// ResetPassword.
pub fn reset_password(r: &pb::ResetPasswordRequest) -> Result<(), FieldViolations> {
    Check::new().line("user_id", &r.user_id, USER_ID).secret("new_password", &r.new_password, PASSWORD).done()
}

/// UnlockUser.
pub fn unlock_user(r: &pb::UnlockUserRequest) -> Result<(), FieldViolations> {
    Check::new().line("user_id", &r.user_id, USER_ID).done()
}

/// GetUser.
pub fn get_user(r: &pb::GetUserRequest) -> Result<(), FieldViolations> {
    Check::new().line("user_id", &r.user_id, USER_ID).done()
}

/// CreateServiceAccount.
pub fn create_service_account(r: &pb::CreateServiceAccountRequest) -> Result<(), FieldViolations> {
    Check::new()
        .line("client_id", &r.client_id, LOGIN)
        .line("display_name", &r.display_name, NAME)
        .line("org_id", &r.org_id, ORG_ID)
        .list("role_codes", &r.role_codes, MAX_ROLES, ROLE_CODE)
        .done()
}

/// ListAuditEvents.
pub fn list_audit_events(r: &pb::ListAuditEventsRequest) -> Result<(), FieldViolations> {
    Check::new()
        .line("actor", &r.actor, LOGIN)
        .line("action", &r.action, 64)
        .page_token(&r.page_token)
        .line("target", &r.target, 128)
        .done()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(r: Result<(), FieldViolations>) -> Vec<String> {
        r.err().map(|v| v.iter().map(|(f, _)| f.to_string()).collect()).unwrap_or_default()
    }

    #[test]
    fn each_overlong_or_control_character_field_is_one_violation() {
        let r = pb::CreateUserRequest {
            login: "l".repeat(129),
            display_name: "王".repeat(200),
            org_id: "HO\0".into(),
            role_codes: vec!["RM".into(), "X".repeat(33)],
            password: "p\0ssword-Long-1".into(),
        };
        assert_eq!(fields(create_user(&r)), ["login", "org_id", "role_codes[1]", "password"]);
        let r = pb::AssignRolesRequest { user_id: "u".into(), role_codes: vec!["RM".into(); MAX_ROLES + 1] };
        assert_eq!(fields(assign_roles(&r)), ["role_codes"]);
    }

    #[test]
    fn passwords_may_hold_control_characters_but_not_nul() {
        let r = pb::ResetPasswordRequest { user_id: "u".into(), new_password: "Tab\there-Long-1".into() };
        assert!(reset_password(&r).is_ok());
        let r = pb::ResetPasswordRequest { user_id: "u".into(), new_password: "x".repeat(129) };
        assert_eq!(fields(reset_password(&r)), ["new_password"]);
    }

    #[test]
    fn roles_are_bounded_in_their_permissions() {
        let r = pb::CreateRoleRequest {
            role: Some(pb::Role {
                code: "RM".into(),
                name: "n\u{7}".into(),
                permissions: vec!["customer.read".into(); MAX_PERMISSIONS + 1],
                ..Default::default()
            }),
        };
        assert_eq!(fields(create_role(&r)), ["role.name", "role.permissions"]);
        assert!(create_role(&pb::CreateRoleRequest { role: None }).is_ok());
    }
}

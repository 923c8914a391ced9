//! The limits of the contract on every administration request (`src/limits.rs`): what
//! the sweep of bad input (`tests/tests/sweep`) found answering INTERNAL before they
//! were checked.

use crm_proto::crm::identity::v1 as pb;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::helpers::spawn_app;

/// The fields of a refusal's field violations, after checking it is INVALID_ARGUMENT.
fn refused_fields<T: std::fmt::Debug>(answer: Result<T, Status>) -> Vec<String> {
    let status = answer.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect()
}

#[tokio::test]
async fn a_nul_in_an_id_or_filter_is_refused_naming_the_field_not_answered_internal() {
    let mut app = spawn_app().await;
    let mut admin = app.admin().await;
    let user_id = || "u\0".to_string();
    assert_eq!(refused_fields(admin.get_user(pb::GetUserRequest { user_id: user_id() }).await), ["user_id"]);
    assert_eq!(refused_fields(admin.enable_user(pb::EnableUserRequest { user_id: user_id() }).await), ["user_id"]);
    assert_eq!(refused_fields(admin.unlock_user(pb::UnlockUserRequest { user_id: user_id() }).await), ["user_id"]);
    let disable = pb::DisableUserRequest { user_id: user_id(), reason: "r".repeat(501) };
    assert_eq!(refused_fields(admin.disable_user(disable).await), ["user_id", "reason"]);
    let reset = pb::ResetPasswordRequest { user_id: user_id(), new_password: "Teller-Window-42".into() };
    assert_eq!(refused_fields(admin.reset_password(reset).await), ["user_id"]);
    let assign = pb::AssignRolesRequest { user_id: user_id(), role_codes: vec!["RM".into()] };
    assert_eq!(refused_fields(admin.assign_roles(assign).await), ["user_id"]);
    let update = pb::UpdateUserRequest { user_id: user_id(), display_name: "n".into(), ..Default::default() };
    assert_eq!(refused_fields(admin.update_user(update).await), ["user_id"]);
    assert_eq!(refused_fields(admin.close_org(pb::CloseOrgRequest { org_id: "HO\0".into() }).await), ["org_id"]);
    let list = pb::ListOrgsRequest { org_id: "\0".into(), include_closed: true };
    assert_eq!(refused_fields(admin.list_orgs(list).await), ["org_id"]);
    let audit = pb::ListAuditEventsRequest { actor: "a\0".into(), action: "\0".into(), ..Default::default() };
    assert_eq!(refused_fields(admin.list_audit_events(audit).await), ["actor", "action"]);
    app.stop().await;
}

#[tokio::test]
async fn too_many_roles_or_an_overlong_name_are_refused_and_nothing_is_created() {
    let mut app = spawn_app().await;
    let mut admin = app.admin().await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM principal").fetch_one(&app.pool).await.unwrap();
    let account = pb::CreateServiceAccountRequest {
        client_id: "core-banking".into(),
        display_name: "王".repeat(201),
        org_id: "HO".into(),
        role_codes: vec!["RM".into(); 51],
    };
    assert_eq!(refused_fields(admin.create_service_account(account).await), ["display_name", "role_codes"]);
    let role = pb::Role {
        code: "AUDITOR".into(),
        name: "Auditor".into(),
        permissions: vec!["customer.read".into(); 101],
        data_scope: pb::DataScope::All as i32,
        built_in: false,
    };
    assert_eq!(
        refused_fields(admin.create_role(pb::CreateRoleRequest { role: Some(role) }).await),
        ["role.permissions"]
    );
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM principal").fetch_one(&app.pool).await.unwrap();
    assert_eq!(after, before);
    app.stop().await;
}

//! Administration: the org tree, roles, permissions on admin RPCs, the audit trail.

use std::time::Duration;

use crm_proto::crm::identity::v1 as pb;
use tonic::Code;

use crate::helpers::{Events, PASSWORD, spawn_app};

fn org(id: &str, parent: &str) -> pb::CreateOrgRequest {
    pb::CreateOrgRequest { org_id: id.into(), name: format!("Org {id}"), parent_org_id: parent.into() }
}

#[tokio::test]
async fn moving_an_org_rewrites_its_subtree_and_announces_every_changed_org() {
    let mut app = spawn_app().await;
    let mut admin = app.admin().await;
    for (id, parent) in [("BJ", "HO"), ("SH", "HO"), ("BJ01", "BJ"), ("BJ01A", "BJ01")] {
        admin.create_org(org(id, parent)).await.unwrap();
    }
    let events = Events::bind(&app.env).await;
    let moved = admin
        .update_org(pb::UpdateOrgRequest { org_id: "BJ01".into(), parent_org_id: "SH".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .org
        .unwrap();
    assert_eq!(moved.path, "/HO/SH/BJ01/");
    let tree = admin.list_orgs(pb::ListOrgsRequest { org_id: "SH".into(), ..Default::default() }).await.unwrap();
    let paths: Vec<String> = tree.into_inner().orgs.into_iter().map(|o| o.path).collect();
    assert_eq!(paths, vec!["/HO/SH/", "/HO/SH/BJ01/", "/HO/SH/BJ01/BJ01A/"]);
    let mut announced: Vec<(String, String)> = events
        .take::<pb::OrgChanged>(2, Duration::from_secs(10))
        .await
        .into_iter()
        .filter_map(|e| e.org.map(|o| (o.org_id, o.path)))
        .collect();
    announced.sort();
    assert_eq!(announced, vec![("BJ01".into(), "/HO/SH/BJ01/".into()), ("BJ01A".into(), "/HO/SH/BJ01/BJ01A/".into())]);
    let into_own_subtree = admin
        .update_org(pb::UpdateOrgRequest { org_id: "SH".into(), parent_org_id: "BJ01A".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(into_own_subtree.code(), Code::FailedPrecondition);
    app.stop().await;
}

#[tokio::test]
async fn an_org_with_open_children_or_enabled_users_cannot_close() {
    let mut app = spawn_app().await;
    let user = app.user("closer", &["RM"]).await; // creates BJ
    let mut admin = app.admin().await;
    admin.create_org(org("BJ01", "BJ")).await.unwrap();
    let refused = admin.close_org(pb::CloseOrgRequest { org_id: "BJ".into() }).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("child"), "{refused:?}");
    admin.close_org(pb::CloseOrgRequest { org_id: "BJ01".into() }).await.unwrap();
    let refused = admin.close_org(pb::CloseOrgRequest { org_id: "BJ".into() }).await.unwrap_err();
    assert!(refused.message().contains("users"), "{refused:?}");
    admin.disable_user(pb::DisableUserRequest { user_id: user, reason: "moved".into() }).await.unwrap();
    let closed = admin.close_org(pb::CloseOrgRequest { org_id: "BJ".into() }).await.unwrap().into_inner();
    assert!(closed.org.unwrap().closed);
    let under_closed = admin.create_org(org("BJ02", "BJ")).await.unwrap_err();
    assert_eq!(under_closed.code(), Code::FailedPrecondition);
    app.stop().await;
}

#[tokio::test]
async fn admin_rpcs_need_a_token_and_the_admin_permission() {
    let mut app = spawn_app().await;
    let anonymous = app.anonymous_admin_client().list_roles(pb::ListRolesRequest {}).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    app.user("rm1", &["RM"]).await;
    let rm = app.login("rm1", PASSWORD).await.unwrap();
    let denied = app.admin_client(&rm.access_token).list_roles(pb::ListRolesRequest {}).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied =
        app.admin_client(&rm.access_token).list_audit_events(pb::ListAuditEventsRequest::default()).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    app.user("auditor1", &["AUDITOR"]).await;
    let auditor = app.login("auditor1", PASSWORD).await.unwrap();
    app.admin_client(&auditor.access_token).list_audit_events(pb::ListAuditEventsRequest::default()).await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn custom_roles_can_change_built_in_ones_cannot_and_changes_are_audited() {
    let mut app = spawn_app().await;
    let mut admin = app.admin().await;
    let role = |perms: &[&str]| pb::Role {
        code: "BRANCH_AUDITOR".into(),
        name: "Branch auditor".into(),
        permissions: perms.iter().map(|p| p.to_string()).collect(),
        data_scope: pb::DataScope::Subtree as i32,
        built_in: false,
    };
    admin.create_role(pb::CreateRoleRequest { role: Some(role(&["customer.read"])) }).await.unwrap();
    admin
        .update_role(pb::UpdateRoleRequest { role: Some(role(&["customer.read", "customer.audit.read"])) })
        .await
        .unwrap();
    let bad = admin
        .create_role(pb::CreateRoleRequest { role: Some(pb::Role { code: "x".into(), ..role(&["Bad Perm"]) }) })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let built_in = pb::Role { code: "RM".into(), ..role(&["customer.read", "customer.pii.read"]) };
    let refused = admin.update_role(pb::UpdateRoleRequest { role: Some(built_in) }).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);

    let user = app.user("branchaud", &["BRANCH_AUDITOR", "RM"]).await;
    let tokens = app.login("branchaud", PASSWORD).await.unwrap();
    let caller = app.verifier().verify(&tokens.access_token).await.unwrap();
    assert_eq!(
        caller.claims.perms,
        vec!["analytics.read", "customer.audit.read", "customer.details.write", "customer.read"]
    );
    assert_eq!(caller.claims.scope, crm_platform::auth::DataScope::Subtree, "widest of own and subtree");
    assert_eq!(caller.claims.org_path, "/HO/BJ/");

    admin.assign_roles(pb::AssignRolesRequest { user_id: user.clone(), role_codes: vec!["RM".into()] }).await.unwrap();
    let events = admin
        .list_audit_events(pb::ListAuditEventsRequest { page_size: 100, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .events;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for expected in
        ["role.created", "role.updated", "user.created", "user.roles_assigned", "login.succeeded", "token.issued"]
    {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    let assigned = events.iter().find(|e| e.action == "user.roles_assigned").unwrap();
    assert_eq!(assigned.target, user);
    assert!(assigned.source_address.starts_with("127.0.0.1:"));
    assert!(assigned.details.contains("BRANCH_AUDITOR"), "before/after recorded: {}", assigned.details);
    // Paging: newest first, no overlap.
    let page1 = admin
        .list_audit_events(pb::ListAuditEventsRequest { page_size: 3, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let page2 = admin
        .list_audit_events(pb::ListAuditEventsRequest {
            page_size: 3,
            page_token: page1.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(page1.events.last().unwrap().audit_id > page2.events[0].audit_id);

    // Filters: by target, by action and target, by time; the actor's name is recorded.
    let list = |request: pb::ListAuditEventsRequest| {
        let mut admin = admin.clone();
        async move { admin.list_audit_events(request).await.map(|r| r.into_inner().events) }
    };
    let about_user = list(pb::ListAuditEventsRequest { target: user.clone(), ..Default::default() }).await.unwrap();
    assert!(!about_user.is_empty() && about_user.iter().all(|e| e.target == user));
    assert!(about_user.iter().any(|e| e.action == "user.roles_assigned" && e.actor_name == "admin"));
    let assigned_only = list(pb::ListAuditEventsRequest {
        target: user.clone(),
        action: "user.roles_assigned".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(!assigned_only.is_empty() && assigned_only.iter().all(|e| e.action == "user.roles_assigned"));
    let first = events.last().unwrap().occurred_at.unwrap();
    let until_first = list(pb::ListAuditEventsRequest { occurred_before: Some(first), ..Default::default() }).await;
    assert!(until_first.unwrap().iter().all(|e| e.occurred_at.unwrap().seconds <= first.seconds));
    let later = prost_types::Timestamp { seconds: first.seconds + 3600, nanos: 0 };
    let from_later = list(pb::ListAuditEventsRequest { occurred_from: Some(later), ..Default::default() });
    assert!(from_later.await.unwrap().is_empty(), "nothing recorded an hour after the first entry");
    let malformed = prost_types::Timestamp { seconds: 0, nanos: -5 };
    let refused = list(pb::ListAuditEventsRequest { occurred_from: Some(malformed), ..Default::default() }).await;
    assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument);
    app.stop().await;
}

#[tokio::test]
async fn no_password_or_token_is_stored_or_audited_in_the_clear() {
    let mut app = spawn_app().await;
    app.user("secretive", &["RM"]).await;
    let tokens = app.login("secretive", PASSWORD).await.unwrap();
    let _ = app.login("secretive", "Typo-Password-77").await;
    let dump: String = sqlx::query_scalar(
        "SELECT string_agg(t::text, ' ') FROM (
           SELECT row_to_json(a)::text AS t FROM crm_kit.audit_entry a
           UNION ALL SELECT row_to_json(p)::text FROM principal p
           UNION ALL SELECT row_to_json(r)::text FROM refresh_token r) x",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    for secret in [PASSWORD, "Typo-Password-77", tokens.refresh_token.as_str(), tokens.access_token.as_str()] {
        assert!(!dump.contains(secret), "a secret is stored in the clear");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_org_name_beyond_its_limit_or_with_a_nul_is_refused_and_nothing_is_stored() {
    let mut app = spawn_app().await;
    let mut admin = app.admin().await;
    for name in ["机".repeat(100_000), "北京\0分行".to_string(), "a\u{7}b".to_string()] {
        let refused = admin
            .create_org(pb::CreateOrgRequest { org_id: "BJ".into(), name, parent_org_id: "HO".into() })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    }
    let orgs = admin.list_orgs(pb::ListOrgsRequest { org_id: "HO".into(), ..Default::default() }).await.unwrap();
    assert_eq!(orgs.into_inner().orgs.len(), 1, "only the root");
    admin
        .create_org(pb::CreateOrgRequest { org_id: "BJ".into(), name: "机".repeat(200), parent_org_id: "HO".into() })
        .await
        .unwrap();
    app.stop().await;
}

//! Logins: passwords, lockout, the password policy, service accounts.

use std::time::Duration;

use crm_platform::auth::{DataScope, PrincipalKind};
use crm_proto::crm::identity::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{ADMIN_PASSWORD, PASSWORD, spawn_app};

#[tokio::test]
async fn the_bootstrap_administrator_logs_in_with_a_token_every_service_can_verify() {
    let mut app = spawn_app().await;
    let tokens = app.login("admin", ADMIN_PASSWORD).await.unwrap();
    assert!(!tokens.refresh_token.is_empty());
    let caller = app.verifier().verify(&tokens.access_token).await.expect("verifies with published keys");
    let c = &caller.claims;
    assert_eq!(c.kind, PrincipalKind::User);
    assert_eq!((c.name.as_str(), c.org.as_str(), c.org_path.as_str()), ("admin", "HO", "/HO/"));
    assert_eq!(c.roles, vec!["ADMIN"]);
    assert_eq!(c.scope, DataScope::All);
    assert!(caller.has_permission("identity.admin") && caller.has_permission("customer.pii.read"));
    assert!(caller.has_permission("analytics.targets"), "ADMIN manages business targets");
    assert!(c.exp - c.iat == 900);
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_login_are_refused_alike() {
    let mut app = spawn_app().await;
    let wrong = app.login("admin", "Not-The-Password-1").await.unwrap_err();
    let unknown = app.login("nobody", "Not-The-Password-1").await.unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    assert_eq!((wrong.code(), wrong.message()), (unknown.code(), unknown.message()));
    let empty = app.login("", "").await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    app.stop().await;
}

#[tokio::test]
async fn five_failures_lock_a_user_until_the_lock_expires_or_an_admin_unlocks() {
    let mut app = spawn_app().await;
    let teller = app.user("teller1", &["RM"]).await;
    for _ in 0..5 {
        assert_eq!(app.login("teller1", "Wrong-Password-99").await.unwrap_err().code(), Code::Unauthenticated);
    }
    let locked = app.login("teller1", PASSWORD).await.unwrap_err();
    assert_eq!(locked.code(), Code::Unauthenticated, "the right password does not open a locked account");
    let mut admin = app.admin().await;
    let user = admin.get_user(pb::GetUserRequest { user_id: teller.clone() }).await.unwrap().into_inner().user.unwrap();
    assert!(user.locked_until.is_some());

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    app.login("teller1", PASSWORD).await.expect("the lock expired");

    for _ in 0..5 {
        let _ = app.login("teller1", "Wrong-Password-99").await;
    }
    assert!(app.login("teller1", PASSWORD).await.is_err());
    admin.unlock_user(pb::UnlockUserRequest { user_id: teller.clone() }).await.unwrap();
    app.login("teller1", PASSWORD).await.expect("unlocked by an administrator");

    // Failures are recorded under the login attempted, successes under the user id.
    let attempts = app.audit_actions(&mut admin, "teller1").await;
    assert!(attempts.iter().filter(|a| *a == "login.failed").count() >= 10, "{attempts:?}");
    assert_eq!(attempts.iter().filter(|a| *a == "user.locked").count(), 2, "{attempts:?}");
    let by_user = app.audit_actions(&mut admin, &teller).await;
    assert!(by_user.contains(&"login.succeeded".to_string()), "{by_user:?}");
    let by_admin = app.audit_actions(&mut admin, &app.admin_id().await).await;
    assert!(by_admin.contains(&"user.unlocked".to_string()), "{by_admin:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_weak_password_is_refused_with_field_violations() {
    let mut app = spawn_app().await;
    let mut admin = app.admin().await;
    let status = admin
        .create_user(pb::CreateUserRequest {
            login: "weakling".into(),
            display_name: "W".into(),
            org_id: "HO".into(),
            role_codes: vec!["RM".into()],
            password: "weakling".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let violations = details.bad_request().unwrap().field_violations.clone();
    let descriptions: Vec<&str> = violations.iter().map(|v| v.description.as_str()).collect();
    assert!(violations.iter().all(|v| v.field == "password"));
    assert!(descriptions.iter().any(|d| d.contains("12 characters")), "{descriptions:?}");
    assert!(descriptions.iter().any(|d| d.contains("three of")), "{descriptions:?}");
    assert!(descriptions.iter().any(|d| d.contains("login")), "{descriptions:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_service_account_authenticates_with_client_credentials() {
    let mut app = spawn_app().await;
    let mut admin = app.admin().await;
    let created = admin
        .create_service_account(pb::CreateServiceAccountRequest {
            client_id: "core-banking".into(),
            display_name: "Core banking".into(),
            org_id: "HO".into(),
            role_codes: vec!["SOURCE_SYSTEM".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let tokens = app
        .auth
        .authenticate_client(pb::AuthenticateClientRequest {
            client_id: "core-banking".into(),
            client_secret: created.client_secret.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    assert!(tokens.refresh_token.is_empty(), "service accounts authenticate again instead");
    let caller = app.verifier().verify(&tokens.access_token).await.unwrap();
    assert_eq!(caller.claims.kind, PrincipalKind::Service);
    assert_eq!(caller.subject(), "core-banking");
    assert_eq!(caller.claims.roles, vec!["SOURCE_SYSTEM"]);
    assert_eq!(
        caller.claims.perms,
        vec!["analytics.ingest", "customer.details.write", "customer.read", "customer.write"]
    );
    assert_eq!(caller.claims.scope, DataScope::All);
    assert_eq!((caller.claims.org.as_str(), caller.claims.org_path.as_str()), ("HO", "/HO/"));
    let wrong = app
        .auth
        .authenticate_client(pb::AuthenticateClientRequest {
            client_id: "core-banking".into(),
            client_secret: "guess".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    // Wrong secrets do not lock a service account (anyone could cut a bank system off).
    for _ in 0..6 {
        let request = pb::AuthenticateClientRequest { client_id: "core-banking".into(), client_secret: "guess".into() };
        let _ = app.auth.authenticate_client(request).await;
    }
    let request = pb::AuthenticateClientRequest {
        client_id: "core-banking".into(),
        client_secret: created.client_secret.clone(),
    };
    app.auth.authenticate_client(request).await.expect("not locked");
    let as_user = app.login("core-banking", &created.client_secret).await.unwrap_err();
    assert_eq!(as_user.code(), Code::Unauthenticated, "a service account is not a staff login");
    app.stop().await;
}

#[tokio::test]
async fn a_first_start_without_an_admin_password_fails_naming_the_key() {
    let env = crm_platform::testing::TestEnv::new("identity").await;
    let vars = env.vars(&[("identity.key_encryption_key", crate::helpers::KEK)]);
    let settings = identity::Settings::load_from(vars).expect("settings load without the password");
    let error = identity::Application::build(settings).await.unwrap_err().to_string();
    assert!(error.contains("identity.bootstrap.admin_password"), "{error}");
    assert!(error.contains("CRM_IDENTITY__IDENTITY__BOOTSTRAP__ADMIN_PASSWORD"), "{error}");
}

#[tokio::test]
async fn a_missing_or_malformed_key_encryption_key_is_refused_at_load() {
    let env = crm_platform::testing::TestEnv::new("identity").await;
    for vars in [env.vars(&[]), env.vars(&[("identity.key_encryption_key", "abc")])] {
        let error = identity::Settings::load_from(vars).unwrap_err().to_string();
        assert!(error.contains("identity.key_encryption_key"), "{error}");
    }
}

#[tokio::test]
async fn two_replicas_starting_at_once_bootstrap_one_administrator_and_one_key() {
    let env = crm_platform::testing::TestEnv::new("identity").await;
    let build = || {
        let vars = env.vars(&[
            ("identity.key_encryption_key", crate::helpers::KEK),
            ("identity.bootstrap.admin_password", ADMIN_PASSWORD),
            ("identity.argon2.memory_kib", "256"),
            ("identity.argon2.iterations", "1"),
        ]);
        identity::Application::build(identity::Settings::load_from(vars).unwrap())
    };
    let (a, b) = tokio::join!(build(), build());
    let (a, _b) = (a.expect("first replica"), b.expect("second replica"));
    let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM principal").fetch_one(&a.pool()).await.unwrap();
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM signing_key").fetch_one(&a.pool()).await.unwrap();
    let roots: i64 = sqlx::query_scalar("SELECT count(*) FROM org").fetch_one(&a.pool()).await.unwrap();
    assert_eq!((admins, keys, roots), (1, 1, 1));
}

#[tokio::test]
async fn an_absurd_login_fails_like_any_unknown_login() {
    let mut app = spawn_app().await;
    for login in ["x".repeat(1_000_000), "ad\0min".to_string()] {
        let refused = app.login(&login, "Whatever-Password-1").await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
        assert_eq!(refused.message(), "login failed");
    }
    app.stop().await;
}

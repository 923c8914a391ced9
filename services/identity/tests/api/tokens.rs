//! Refresh rotation, reuse detection, logout, revocation, key rotation.

use std::time::Duration;

use crm_platform::auth::TokenError;
use crm_proto::crm::identity::v1 as pb;
use tonic::Code;

use crate::helpers::{ADMIN_PASSWORD, Events, PASSWORD, spawn_app};

fn refresh(token: &str) -> pb::RefreshTokenRequest {
    pb::RefreshTokenRequest { refresh_token: token.into() }
}

#[tokio::test]
async fn a_refresh_token_rotates_and_its_reuse_revokes_the_whole_family() {
    let mut app = spawn_app().await;
    let first = app.login("admin", ADMIN_PASSWORD).await.unwrap();
    let second = app.auth.refresh_token(refresh(&first.refresh_token)).await.unwrap().into_inner().tokens.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    app.verifier().verify(&second.access_token).await.unwrap();

    // The spent token again: someone replayed it. The family dies, including `second`.
    let reuse = app.auth.refresh_token(refresh(&first.refresh_token)).await.unwrap_err();
    assert_eq!(reuse.code(), Code::Unauthenticated);
    let after = app.auth.refresh_token(refresh(&second.refresh_token)).await.unwrap_err();
    assert_eq!(after.code(), Code::Unauthenticated, "the newest token of a reused family is revoked too");

    // Another login is another family, unaffected.
    let other = app.login("admin", ADMIN_PASSWORD).await.unwrap();
    app.auth.refresh_token(refresh(&other.refresh_token)).await.unwrap();
    let mut admin = app.admin_client(&other.access_token);
    let subject = app.verifier().verify(&other.access_token).await.unwrap().subject().to_string();
    let actions = app.audit_actions(&mut admin, &subject).await;
    assert!(actions.contains(&"token.reuse_detected".to_string()), "{actions:?}");
    assert!(actions.contains(&"token.revoked".to_string()), "{actions:?}");
    assert!(actions.iter().filter(|a| *a == "token.issued").count() >= 3, "{actions:?}");
    app.stop().await;
}

#[tokio::test]
async fn logout_revokes_the_refresh_token() {
    let mut app = spawn_app().await;
    let tokens = app.login("admin", ADMIN_PASSWORD).await.unwrap();
    app.auth.logout(pb::LogoutRequest { refresh_token: tokens.refresh_token.clone() }).await.unwrap();
    let refused = app.auth.refresh_token(refresh(&tokens.refresh_token)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let garbage = app.auth.refresh_token(refresh("not-a-token")).await.unwrap_err();
    assert_eq!(garbage.code(), Code::Unauthenticated);
    app.stop().await;
}

#[tokio::test]
async fn a_disabled_users_tokens_are_refused_and_the_revocation_is_announced() {
    let mut app = spawn_app().await;
    let events = Events::bind(&app.env).await;
    let teller = app.user("teller2", &["RM_SUPERVISOR"]).await;
    let tokens = app.login("teller2", PASSWORD).await.unwrap();
    let mut admin = app.admin().await;
    tokio::time::sleep(Duration::from_millis(1_100)).await; // iat strictly before the revocation
    admin
        .disable_user(pb::DisableUserRequest { user_id: teller.clone(), reason: "left the bank".into() })
        .await
        .unwrap();

    let refresh_refused = app.auth.refresh_token(refresh(&tokens.refresh_token)).await.unwrap_err();
    assert_eq!(refresh_refused.code(), Code::Unauthenticated);
    assert_eq!(app.login("teller2", PASSWORD).await.unwrap_err().code(), Code::Unauthenticated);
    let revoked: Vec<pb::PrincipalRevoked> = events.take(1, Duration::from_secs(10)).await;
    assert_eq!(revoked.len(), 1, "PrincipalRevoked published");
    assert_eq!(revoked[0].subject, teller);

    // Identity itself refuses the old access token once its replicas reload revocations.
    let refused = crm_platform::testing::eventually(Duration::from_secs(5), || {
        let mut client = app.admin_client(&tokens.access_token);
        async move {
            client.list_roles(pb::ListRolesRequest {}).await.err().map(|s| s.code()) == Some(Code::Unauthenticated)
        }
    })
    .await;
    assert!(refused, "the disabled user's access token is refused");

    admin.enable_user(pb::EnableUserRequest { user_id: teller }).await.unwrap();
    app.login("teller2", PASSWORD).await.expect("enabled again");
    app.stop().await;
}

#[tokio::test]
async fn after_key_rotation_old_tokens_still_verify_and_new_ones_carry_the_new_kid() {
    let mut app = spawn_app().await;
    let before = app.login("admin", ADMIN_PASSWORD).await.unwrap();
    let verifier = app.verifier();
    verifier.verify(&before.access_token).await.unwrap();
    let mut admin = app.admin_client(&before.access_token);
    let kid = admin.rotate_signing_key(pb::RotateSigningKeyRequest {}).await.unwrap().into_inner().kid;

    let keys = app.auth.list_verification_keys(pb::ListVerificationKeysRequest {}).await.unwrap().into_inner().keys;
    assert_eq!(keys.len(), 2, "the retired key stays published");
    assert!(keys.iter().any(|k| k.kid == kid && k.retired_at.is_none()));
    assert!(keys.iter().any(|k| k.kid != kid && k.retired_at.is_some()));

    let after = app.login("admin", ADMIN_PASSWORD).await.unwrap();
    let header = after.access_token.split('.').next().unwrap();
    let header =
        String::from_utf8(base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap())
            .unwrap();
    assert!(header.contains(&kid), "{header}");
    // The verifier that had only the old key fetches the new one on the unknown kid.
    verifier.verify(&after.access_token).await.expect("new kid fetched on demand");
    verifier.verify(&before.access_token).await.expect("old token still valid until it expires");
    // A fresh verifier gets both keys.
    app.verifier().verify(&before.access_token).await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_token_signed_by_an_unpublished_key_is_refused() {
    let mut app = spawn_app().await;
    let forged = crm_platform::testing::TestTokens::new().token(
        "admin",
        &["identity.admin"],
        crm_platform::auth::DataScope::All,
        "/HO/",
    );
    assert_eq!(app.verifier().verify(&forged).await.unwrap_err(), TokenError::UnknownKey);
    let status = app.admin_client(&forged).list_roles(pb::ListRolesRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    app.stop().await;
}

#[tokio::test]
async fn a_password_reset_revokes_every_session_and_only_the_new_password_logs_in() {
    let mut app = spawn_app().await;
    let events = Events::bind(&app.env).await;
    let teller = app.user("teller3", &["RM"]).await;
    let first = app.login("teller3", PASSWORD).await.unwrap();
    let second = app.login("teller3", PASSWORD).await.unwrap();
    let mut admin = app.admin().await;
    let weak = admin
        .reset_password(pb::ResetPasswordRequest { user_id: teller.clone(), new_password: "short".into() })
        .await
        .unwrap_err();
    assert_eq!(weak.code(), Code::InvalidArgument);
    admin
        .reset_password(pb::ResetPasswordRequest { user_id: teller.clone(), new_password: "Fresh-Start-2027".into() })
        .await
        .unwrap();
    for family in [&first, &second] {
        let refused = app.auth.refresh_token(refresh(&family.refresh_token)).await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "every family is revoked");
    }
    assert_eq!(app.login("teller3", PASSWORD).await.unwrap_err().code(), Code::Unauthenticated);
    app.login("teller3", "Fresh-Start-2027").await.expect("the new password logs in");
    let revoked: Vec<pb::PrincipalRevoked> = events.take(1, Duration::from_secs(10)).await;
    assert_eq!(revoked.first().map(|r| r.subject.as_str()), Some(teller.as_str()));
    assert!(revoked[0].not_before.is_some());
    let actions = app.audit_actions(&mut admin, &app.admin_id().await).await;
    assert!(actions.contains(&"user.password_reset".to_string()), "{actions:?}");
    app.stop().await;
}

//! `crm.identity.v1.AuthService`: password and client-credential logins, refresh-token
//! rotation, logout, and the published verification keys.

use crm_platform::FieldViolations;
use crm_platform::auth::PrincipalKind;
use crm_platform::convert::timestamp;
use crm_platform::validate::{self, Lines};
use crm_proto::crm::identity::v1 as pb;
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use super::{IdentityApi, MAX_LOGIN_CHARS, actor, required};
use crate::domain::{self, LoginRefusal};
use crate::error::Error;
use crate::secrets;
use crate::store::{self, CallContext, Refreshed};

impl IdentityApi {
    /// Checks a login's secret and answers its subject, or records the failure.
    async fn authenticate(
        &self,
        actor: &CallContext,
        login: &str,
        secret: String,
        kind: PrincipalKind,
    ) -> Result<String, Error> {
        // A login no principal can have (overlong, control characters) is never looked
        // up, and fails like an unknown one: the same argon2 work, the same answer.
        let usable = validate::text_problem(login, MAX_LOGIN_CHARS, Lines::Single).is_none();
        let credentials = if usable { store::credentials(&self.pool, login, kind).await? } else { None };
        let unusable_actor;
        let actor = if usable {
            actor
        } else {
            unusable_actor = actor.acting_as("(unusable login)");
            &unusable_actor
        };
        let matches = self.verify_secret(secret, credentials.as_ref().map(|c| c.secret_hash.clone())).await?;
        let account = credentials.as_ref().map(|c| (c.disabled, c.locked_until));
        let refusal = domain::login_refusal(account, matches, OffsetDateTime::now_utc());
        match (refusal, credentials) {
            (None, Some(c)) => Ok(c.subject),
            (refusal, c) => {
                let reason = refusal.unwrap_or(LoginRefusal::UnknownLogin);
                tracing::info!(reason = reason.as_str(), kind = kind.as_str(), "login refused");
                let subject = c.map(|c| c.subject);
                // Service accounts are not locked: their secrets are 256 random bits
                // (guessing is hopeless), and a lock would let anyone who knows a
                // client id cut a bank system off.
                let lockout = (kind == PrincipalKind::User).then_some(self.lockout);
                store::login_failed(&self.pool, actor, subject.as_deref(), lockout, reason).await?;
                Err(Error::LoginFailed)
            }
        }
    }

    async fn issue_pair(&self, actor: &CallContext, subject: &str, with_refresh: bool) -> Result<pb::TokenPair, Error> {
        let jti = uuid::Uuid::new_v4().to_string();
        let refresh = with_refresh.then(secrets::random_token);
        let refresh_expires = OffsetDateTime::now_utc() + self.refresh_ttl;
        let hash = refresh.as_deref().map(secrets::token_hash);
        let actor = actor.acting_as(subject);
        let claims =
            store::login_succeeded(&self.pool, &actor, subject, hash.as_deref().map(|h| (h, refresh_expires)), &jti)
                .await?;
        let (access_token, expires) = self.issuer.issue(subject, &claims, &jti).await?;
        Ok(pb::TokenPair {
            access_token,
            access_token_expires_at: Some(timestamp(expires)),
            refresh_token_expires_at: refresh.as_ref().map(|_| timestamp(refresh_expires)),
            refresh_token: refresh.unwrap_or_default(),
        })
    }
}

#[tonic::async_trait]
impl pb::auth_service_server::AuthService for IdentityApi {
    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::LoginResponse>, Status> {
        let actor = actor(&request);
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        required(&mut v, "login", &r.login);
        required(&mut v, "password", &r.password);
        v.into_result().map_err(Error::Invalid)?;
        let attempt = actor.acting_as(r.login.trim().to_string());
        let subject = self.authenticate(&attempt, r.login.trim(), r.password, PrincipalKind::User).await?;
        let tokens = self.issue_pair(&attempt, &subject, true).await?;
        Ok(Response::new(pb::LoginResponse { tokens: Some(tokens) }))
    }

    async fn authenticate_client(
        &self,
        request: Request<pb::AuthenticateClientRequest>,
    ) -> Result<Response<pb::AuthenticateClientResponse>, Status> {
        let actor = actor(&request);
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        required(&mut v, "client_id", &r.client_id);
        required(&mut v, "client_secret", &r.client_secret);
        v.into_result().map_err(Error::Invalid)?;
        let attempt = actor.acting_as(r.client_id.trim().to_string());
        let subject = self.authenticate(&attempt, r.client_id.trim(), r.client_secret, PrincipalKind::Service).await?;
        let tokens = self.issue_pair(&attempt, &subject, false).await?;
        Ok(Response::new(pb::AuthenticateClientResponse { tokens: Some(tokens) }))
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::RefreshTokenResponse>, Status> {
        let actor = actor(&request);
        let r = request.into_inner();
        if r.refresh_token.trim().is_empty() {
            let mut v = FieldViolations::new();
            v.add("refresh_token", "is required");
            return Err(Error::Invalid(v).into());
        }
        let next = secrets::random_token();
        let next_expires = OffsetDateTime::now_utc() + self.refresh_ttl;
        let jti = uuid::Uuid::new_v4().to_string();
        let outcome = store::rotate_refresh(
            &self.pool,
            &actor,
            &secrets::token_hash(r.refresh_token.trim()),
            &secrets::token_hash(&next),
            next_expires,
            &jti,
        )
        .await?;
        match outcome {
            Refreshed::Rotated(subject, claims) => {
                let (access_token, expires) = self.issuer.issue(&subject, &claims, &jti).await?;
                Ok(Response::new(pb::RefreshTokenResponse {
                    tokens: Some(pb::TokenPair {
                        access_token,
                        access_token_expires_at: Some(timestamp(expires)),
                        refresh_token: next,
                        refresh_token_expires_at: Some(timestamp(next_expires)),
                    }),
                }))
            }
            Refreshed::ReuseDetected(subject) => {
                tracing::warn!(subject, "spent refresh token presented again; its family is revoked");
                Err(Error::BadRefreshToken.into())
            }
            Refreshed::Refused => Err(Error::BadRefreshToken.into()),
        }
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Result<Response<pb::LogoutResponse>, Status> {
        let actor = actor(&request);
        let r = request.into_inner();
        if !r.refresh_token.trim().is_empty() {
            store::logout(&self.pool, &actor, &secrets::token_hash(r.refresh_token.trim())).await?;
        }
        Ok(Response::new(pb::LogoutResponse {}))
    }

    async fn list_verification_keys(
        &self,
        _request: Request<pb::ListVerificationKeysRequest>,
    ) -> Result<Response<pb::ListVerificationKeysResponse>, Status> {
        let keys = self.keys.published().await?;
        Ok(Response::new(pb::ListVerificationKeysResponse { keys: keys.into_iter().map(Into::into).collect() }))
    }
}

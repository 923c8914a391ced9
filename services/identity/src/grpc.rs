//! `crm.identity.v1.AuthService` and `IdentityAdminService`: proto ↔ domain.

use std::sync::Arc;

use crm_platform::FieldViolations;
use crm_platform::auth::DataScope;
use crm_platform::convert::timestamp;
use crm_platform::paging::Page;
use crm_platform::validate::{self, Lines};
use crm_proto::crm::identity::v1 as pb;
use sqlx::PgPool;
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use crate::domain;
use crate::error::Error;
use crate::secrets::{self, PasswordHashing};
use crate::settings::IdentitySettings;
use crate::store::{self, Actor, NewPrincipal, Refreshed};
use crate::tokens::{StoreKeys, TokenIssuer};

/// Both gRPC services share this state.
#[derive(Debug, Clone)]
pub struct IdentityApi {
    pool: PgPool,
    hashing: Arc<PasswordHashing>,
    issuer: TokenIssuer,
    keys: StoreKeys,
    refresh_ttl: time::Duration,
    lockout: store::Lockout,
}

impl IdentityApi {
    /// The services over `pool`.
    pub fn new(
        pool: PgPool,
        settings: &IdentitySettings,
        hashing: PasswordHashing,
        issuer: TokenIssuer,
        keys: StoreKeys,
    ) -> Self {
        Self {
            pool,
            hashing: Arc::new(hashing),
            issuer,
            keys,
            refresh_ttl: time::Duration::seconds(settings.refresh_token_ttl_s),
            lockout: store::Lockout {
                threshold: settings.lockout_threshold,
                duration: time::Duration::seconds(settings.lockout_duration_s),
            },
        }
    }

    /// Hashing runs on the blocking pool: argon2id deliberately takes tens of
    /// milliseconds of CPU, which must not stall the async workers.
    async fn hash(&self, secret: String) -> Result<String, Error> {
        let hashing = self.hashing.clone();
        tokio::task::spawn_blocking(move || hashing.hash(&secret))
            .await
            .map_err(|e| Error::Secret(format!("hashing task: {e}")))?
    }

    async fn verify_secret(&self, secret: String, stored: Option<String>) -> Result<bool, Error> {
        let hashing = self.hashing.clone();
        tokio::task::spawn_blocking(move || hashing.verify(&secret, stored.as_deref()))
            .await
            .map_err(|e| Error::Secret(format!("hashing task: {e}")))
    }

    /// Checks a login's secret and answers its subject, or records the failure.
    async fn authenticate(&self, actor: &Actor, login: &str, secret: String, kind: &str) -> Result<String, Error> {
        // A login no principal can have (overlong, control characters) is never looked
        // up, and fails like an unknown one: the same argon2 work, the same answer.
        let usable = validate::text_problem(login, MAX_LOGIN_CHARS, Lines::Single).is_none();
        let credentials = if usable { store::credentials(&self.pool, login, kind).await? } else { None };
        let unusable_actor;
        let actor = if usable {
            actor
        } else {
            unusable_actor = Actor { subject: "(unusable login)".into(), ..actor.clone() };
            &unusable_actor
        };
        let matches = self.verify_secret(secret, credentials.as_ref().map(|c| c.secret_hash.clone())).await?;
        let now = OffsetDateTime::now_utc();
        let failure = match &credentials {
            None => Some("unknown login"),
            Some(c) if c.disabled => Some("disabled"),
            Some(c) if domain::is_locked(c.locked_until, now) => Some("locked"),
            Some(_) if !matches => Some("wrong secret"),
            Some(_) => None,
        };
        match (failure, credentials) {
            (None, Some(c)) => Ok(c.subject),
            (reason, c) => {
                let reason = reason.unwrap_or("unknown login");
                tracing::info!(reason, kind, "login refused");
                let subject = c.map(|c| c.subject);
                // Service accounts are not locked: their secrets are 256 random bits
                // (guessing is hopeless), and a lock would let anyone who knows a
                // client id cut a bank system off.
                let lockout = (kind == "user").then_some(self.lockout);
                store::login_failed(&self.pool, actor, subject.as_deref(), lockout, reason).await?;
                Err(Error::LoginFailed)
            }
        }
    }

    async fn issue_pair(&self, actor: &Actor, subject: &str, with_refresh: bool) -> Result<pb::TokenPair, Error> {
        let jti = uuid::Uuid::new_v4().to_string();
        let refresh = with_refresh.then(secrets::random_token);
        let refresh_expires = OffsetDateTime::now_utc() + self.refresh_ttl;
        let hash = refresh.as_deref().map(secrets::token_hash);
        let actor = Actor { subject: subject.into(), ..actor.clone() };
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

fn actor<T>(request: &Request<T>) -> Actor {
    Actor {
        subject: crm_platform::auth::current_caller().map(|c| c.subject().to_string()).unwrap_or_default(),
        source_address: request.remote_addr().map(|a| a.to_string()),
    }
}

/// The longest login (user login or client id) there can be.
const MAX_LOGIN_CHARS: usize = 128;
/// The longest name of an org or display name of a user.
const MAX_NAME_CHARS: usize = 200;

/// Checks a one-line text field against `max` characters (see [`validate::text`]).
fn bounded(v: &mut FieldViolations, field: &str, value: &str, max: usize) {
    validate::text(v, field, value, max, Lines::Single);
}

fn required(v: &mut FieldViolations, field: &str, value: &str) {
    if value.trim().is_empty() {
        v.add(field, "is required");
    }
}

fn scope_from_pb(v: i32) -> Option<DataScope> {
    match pb::DataScope::try_from(v).ok()? {
        pb::DataScope::Own => Some(DataScope::Own),
        pb::DataScope::Org => Some(DataScope::Org),
        pb::DataScope::Subtree => Some(DataScope::Subtree),
        pb::DataScope::All => Some(DataScope::All),
        pb::DataScope::Unspecified => None,
    }
}

fn check_role(role: Option<pb::Role>, v: &mut FieldViolations) -> (pb::Role, Option<DataScope>) {
    let Some(mut role) = role else {
        v.add("role", "is required");
        return (pb::Role::default(), None);
    };
    role.code = role.code.trim().to_string();
    role.name = role.name.trim().to_string();
    if !domain::valid_role_code(&role.code) {
        v.add("role.code", "must be 2-32 upper-case letters, digits or '_', starting with a letter");
    }
    required(v, "role.name", &role.name);
    for (i, p) in role.permissions.iter().enumerate() {
        if !domain::valid_permission(p) {
            v.add(format!("role.permissions[{i}]"), "must look like `area.thing` or `area.thing.action`");
        }
    }
    role.permissions.sort();
    role.permissions.dedup();
    let scope = scope_from_pb(role.data_scope);
    if scope.is_none() {
        v.add("role.data_scope", "must be OWN, ORG, SUBTREE or ALL");
    }
    (role, scope)
}

fn check_roles(codes: &[String], v: &mut FieldViolations) -> Vec<String> {
    let mut codes: Vec<String> = codes.iter().map(|c| c.trim().to_string()).collect();
    for (i, c) in codes.iter().enumerate() {
        if c.is_empty() {
            v.add(format!("role_codes[{i}]"), "must not be empty");
        }
    }
    codes.sort();
    codes.dedup();
    codes
}

/// A required identifier, trimmed; INVALID_ARGUMENT naming `field` when empty.
fn required_id<'a>(field: &str, value: &'a str) -> Result<&'a str, Error> {
    non_empty(value).ok_or_else(|| {
        let mut v = FieldViolations::new();
        v.add(field, "is required");
        Error::Invalid(v)
    })
}

fn non_empty(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
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
        let attempt = Actor { subject: r.login.trim().to_string(), ..actor };
        let subject = self.authenticate(&attempt, r.login.trim(), r.password, "user").await?;
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
        let attempt = Actor { subject: r.client_id.trim().to_string(), ..actor };
        let subject = self.authenticate(&attempt, r.client_id.trim(), r.client_secret, "service").await?;
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
        Ok(Response::new(pb::ListVerificationKeysResponse {
            keys: keys
                .into_iter()
                .map(|k| pb::VerificationKey {
                    kid: k.kid,
                    alg: "EdDSA".into(),
                    public_key: k.public_key,
                    retired_at: k.retired_at.map(timestamp),
                })
                .collect(),
        }))
    }
}

#[tonic::async_trait]
impl pb::identity_admin_service_server::IdentityAdminService for IdentityApi {
    async fn create_org(
        &self,
        request: Request<pb::CreateOrgRequest>,
    ) -> Result<Response<pb::CreateOrgResponse>, Status> {
        crate::limits::create_org(request.get_ref()).map_err(Error::Invalid)?;
        let actor = actor(&request);
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        if !domain::valid_org_id(r.org_id.trim()) {
            v.add("org_id", "must be 1-32 letters, digits, '-' or '_'");
        }
        required(&mut v, "name", &r.name);
        bounded(&mut v, "name", &r.name, MAX_NAME_CHARS);
        v.into_result().map_err(Error::Invalid)?;
        let org =
            store::create_org(&self.pool, &actor, r.org_id.trim(), r.name.trim(), non_empty(&r.parent_org_id)).await?;
        Ok(Response::new(pb::CreateOrgResponse { org: Some(org) }))
    }

    async fn update_org(
        &self,
        request: Request<pb::UpdateOrgRequest>,
    ) -> Result<Response<pb::UpdateOrgResponse>, Status> {
        crate::limits::update_org(request.get_ref()).map_err(Error::Invalid)?;
        let actor = actor(&request);
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        required(&mut v, "org_id", &r.org_id);
        bounded(&mut v, "name", &r.name, MAX_NAME_CHARS);
        if non_empty(&r.name).is_none() && non_empty(&r.parent_org_id).is_none() {
            v.add("name", "give a new name or a new parent_org_id");
        }
        v.into_result().map_err(Error::Invalid)?;
        let org =
            store::update_org(&self.pool, &actor, r.org_id.trim(), non_empty(&r.name), non_empty(&r.parent_org_id))
                .await?;
        Ok(Response::new(pb::UpdateOrgResponse { org: Some(org) }))
    }

    async fn close_org(&self, request: Request<pb::CloseOrgRequest>) -> Result<Response<pb::CloseOrgResponse>, Status> {
        crate::limits::close_org(request.get_ref()).map_err(Error::Invalid)?;
        let actor = actor(&request);
        let r = request.into_inner();
        let org = store::close_org(&self.pool, &actor, required_id("org_id", &r.org_id)?).await?;
        Ok(Response::new(pb::CloseOrgResponse { org: Some(org) }))
    }

    async fn list_orgs(&self, request: Request<pb::ListOrgsRequest>) -> Result<Response<pb::ListOrgsResponse>, Status> {
        crate::limits::list_orgs(request.get_ref()).map_err(Error::Invalid)?;
        let r = request.into_inner();
        let orgs = store::list_orgs(&self.pool, non_empty(&r.org_id), r.include_closed).await?;
        Ok(Response::new(pb::ListOrgsResponse { orgs }))
    }

    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::CreateRoleResponse>, Status> {
        crate::limits::create_role(request.get_ref()).map_err(Error::Invalid)?;
        let actor = actor(&request);
        let mut v = FieldViolations::new();
        let (role, scope) = check_role(request.into_inner().role, &mut v);
        v.into_result().map_err(Error::Invalid)?;
        let role = store::create_role(&self.pool, &actor, &role, scope.unwrap_or(DataScope::Own)).await?;
        Ok(Response::new(pb::CreateRoleResponse { role: Some(role) }))
    }

    async fn update_role(
        &self,
        request: Request<pb::UpdateRoleRequest>,
    ) -> Result<Response<pb::UpdateRoleResponse>, Status> {
        crate::limits::update_role(request.get_ref()).map_err(Error::Invalid)?;
        let actor = actor(&request);
        let mut v = FieldViolations::new();
        let (role, scope) = check_role(request.into_inner().role, &mut v);
        v.into_result().map_err(Error::Invalid)?;
        let role = store::update_role(&self.pool, &actor, &role, scope.unwrap_or(DataScope::Own)).await?;
        Ok(Response::new(pb::UpdateRoleResponse { role: Some(role) }))
    }

    async fn list_roles(
        &self,
        _request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        Ok(Response::new(pb::ListRolesResponse { roles: store::list_roles(&self.pool).await? }))
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        crate::limits::create_user(request.get_ref()).map_err(Error::Invalid)?;
        let actor = actor(&request);
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        let login = r.login.trim().to_string();
        if !domain::valid_login(&login) {
            v.add("login", "must be 3-64 letters, digits, '.', '-' or '_'");
        }
        required(&mut v, "display_name", &r.display_name);
        bounded(&mut v, "display_name", &r.display_name, MAX_NAME_CHARS);
        required(&mut v, "org_id", &r.org_id);
        let roles = check_roles(&r.role_codes, &mut v);
        domain::check_password("password", &r.password, &login, &mut v);
        v.into_result().map_err(Error::Invalid)?;
        let secret_hash = self.hash(r.password).await?;
        let user = store::create_principal(
            &self.pool,
            &actor,
            &NewPrincipal {
                subject: uuid::Uuid::new_v4().to_string(),
                kind: "user",
                login,
                display_name: r.display_name.trim().into(),
                org_id: r.org_id.trim().into(),
                roles,
                secret_hash,
            },
        )
        .await?;
        Ok(Response::new(pb::CreateUserResponse { user: Some(user) }))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        crate::limits::update_user(request.get_ref()).map_err(Error::Invalid)?;
        let actor = actor(&request);
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        required(&mut v, "user_id", &r.user_id);
        bounded(&mut v, "display_name", &r.display_name, MAX_NAME_CHARS);
        v.into_result().map_err(Error::Invalid)?;
        let user =
            store::update_user(&self.pool, &actor, r.user_id.trim(), non_empty(&r.display_name), non_empty(&r.org_id))
                .await?;
        Ok(Response::new(pb::UpdateUserResponse { user: Some(user) }))
    }

    async fn assign_roles(
        &self,
        request: Request<pb::AssignRolesRequest>,
    ) -> Result<Response<pb::AssignRolesResponse>, Status> {
        crate::limits::assign_roles(request.get_ref()).map_err(Error::Invalid)?;
        let actor = actor(&request);
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        required(&mut v, "user_id", &r.user_id);
        let roles = check_roles(&r.role_codes, &mut v);
        v.into_result().map_err(Error::Invalid)?;
        let user = store::assign_roles(&self.pool, &actor, r.user_id.trim(), &roles).await?;
        Ok(Response::new(pb::AssignRolesResponse { user: Some(user) }))
    }

    async fn disable_user(
        &self,
        request: Request<pb::DisableUserRequest>,
    ) -> Result<Response<pb::DisableUserResponse>, Status> {
        crate::limits::disable_user(request.get_ref()).map_err(Error::Invalid)?;
        let actor = actor(&request);
        let r = request.into_inner();
        let user =
            store::set_disabled(&self.pool, &actor, required_id("user_id", &r.user_id)?, true, r.reason.trim()).await?;
        Ok(Response::new(pb::DisableUserResponse { user: Some(user) }))
    }

    async fn enable_user(
        &self,
        request: Request<pb::EnableUserRequest>,
    ) -> Result<Response<pb::EnableUserResponse>, Status> {
        crate::limits::enable_user(request.get_ref()).map_err(Error::Invalid)?;
        let actor = actor(&request);
        let r = request.into_inner();
        let user = store::set_disabled(&self.pool, &actor, required_id("user_id", &r.user_id)?, false, "").await?;
        Ok(Response::new(pb::EnableUserResponse { user: Some(user) }))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        crate::limits::reset_password(request.get_ref()).map_err(Error::Invalid)?;
        let actor = actor(&request);
        let r = request.into_inner();
        let user = store::get_user(&self.pool, required_id("user_id", &r.user_id)?).await?;
        let mut v = FieldViolations::new();
        domain::check_password("new_password", &r.new_password, &user.login, &mut v);
        v.into_result().map_err(Error::Invalid)?;
        let hash = self.hash(r.new_password).await?;
        store::reset_password(&self.pool, &actor, &user.user_id, &hash).await?;
        Ok(Response::new(pb::ResetPasswordResponse {}))
    }

    async fn unlock_user(
        &self,
        request: Request<pb::UnlockUserRequest>,
    ) -> Result<Response<pb::UnlockUserResponse>, Status> {
        crate::limits::unlock_user(request.get_ref()).map_err(Error::Invalid)?;
        let actor = actor(&request);
        let user = store::unlock(&self.pool, &actor, required_id("user_id", &request.get_ref().user_id)?).await?;
        Ok(Response::new(pb::UnlockUserResponse { user: Some(user) }))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Result<Response<pb::GetUserResponse>, Status> {
        crate::limits::get_user(request.get_ref()).map_err(Error::Invalid)?;
        let user = store::get_user(&self.pool, required_id("user_id", &request.get_ref().user_id)?).await?;
        Ok(Response::new(pb::GetUserResponse { user: Some(user) }))
    }

    async fn create_service_account(
        &self,
        request: Request<pb::CreateServiceAccountRequest>,
    ) -> Result<Response<pb::CreateServiceAccountResponse>, Status> {
        crate::limits::create_service_account(request.get_ref()).map_err(Error::Invalid)?;
        let actor = actor(&request);
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        let client_id = r.client_id.trim().to_string();
        if !domain::valid_login(&client_id) {
            v.add("client_id", "must be 3-64 letters, digits, '.', '-' or '_'");
        }
        required(&mut v, "org_id", &r.org_id);
        let roles = check_roles(&r.role_codes, &mut v);
        v.into_result().map_err(Error::Invalid)?;
        let secret = secrets::random_token();
        let secret_hash = self.hash(secret.clone()).await?;
        let display_name = non_empty(&r.display_name).unwrap_or(&client_id).to_string();
        store::create_principal(
            &self.pool,
            &actor,
            &NewPrincipal {
                subject: client_id.clone(),
                kind: "service",
                login: client_id.clone(),
                display_name,
                org_id: r.org_id.trim().into(),
                roles,
                secret_hash,
            },
        )
        .await?;
        Ok(Response::new(pb::CreateServiceAccountResponse { client_id, client_secret: secret }))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        let actor = actor(&request);
        let kid = self.issuer.rotate(Some(&actor)).await?;
        tracing::info!(kid, "signing key rotated");
        Ok(Response::new(pb::RotateSigningKeyResponse { kid }))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        crate::limits::list_audit_events(request.get_ref()).map_err(Error::Invalid)?;
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        let page = Page::parse("audit", r.page_size, &r.page_token, &mut v);
        v.into_result().map_err(Error::Invalid)?;
        let events =
            store::list_audit(&self.pool, non_empty(&r.actor), non_empty(&r.action), page.position(), page.size)
                .await?;
        let next = page.next_token(&events, |e| e.audit_id);
        Ok(Response::new(pb::ListAuditEventsResponse { events, next_page_token: next }))
    }
}

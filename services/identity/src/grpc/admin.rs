//! `crm.identity.v1.IdentityAdminService`: the org tree, roles, users, service
//! accounts, signing-key rotation and the audit trail, in proto order.

use crm_platform::FieldViolations;
use crm_platform::auth::PrincipalKind;
use crm_platform::paging::Page;
use crm_proto::crm::identity::v1 as pb;
use tonic::{Request, Response, Status};

use super::{IdentityApi, MAX_NAME_CHARS, actor, bounded, check_roles, non_empty, required, required_id};
use crate::error::Error;
use crate::store::{self, NewPrincipal};
use crate::{convert, domain, secrets};

#[tonic::async_trait]
impl pb::identity_admin_service_server::IdentityAdminService for IdentityApi {
    async fn create_org(
        &self,
        request: Request<pb::CreateOrgRequest>,
    ) -> Result<Response<pb::CreateOrgResponse>, Status> {
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
        Ok(Response::new(pb::CreateOrgResponse { org: Some(org.into()) }))
    }

    async fn update_org(
        &self,
        request: Request<pb::UpdateOrgRequest>,
    ) -> Result<Response<pb::UpdateOrgResponse>, Status> {
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
        Ok(Response::new(pb::UpdateOrgResponse { org: Some(org.into()) }))
    }

    async fn close_org(&self, request: Request<pb::CloseOrgRequest>) -> Result<Response<pb::CloseOrgResponse>, Status> {
        let actor = actor(&request);
        let r = request.into_inner();
        let org = store::close_org(&self.pool, &actor, required_id("org_id", &r.org_id)?).await?;
        Ok(Response::new(pb::CloseOrgResponse { org: Some(org.into()) }))
    }

    async fn list_orgs(&self, request: Request<pb::ListOrgsRequest>) -> Result<Response<pb::ListOrgsResponse>, Status> {
        let r = request.into_inner();
        let orgs = store::list_orgs(&self.pool, non_empty(&r.org_id), r.include_closed).await?;
        Ok(Response::new(pb::ListOrgsResponse { orgs: orgs.into_iter().map(Into::into).collect() }))
    }

    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::CreateRoleResponse>, Status> {
        let actor = actor(&request);
        let mut v = FieldViolations::new();
        let role = convert::role_from_pb(request.into_inner().role, &mut v);
        v.into_result().map_err(Error::Invalid)?;
        let role = store::create_role(&self.pool, &actor, &role).await?;
        Ok(Response::new(pb::CreateRoleResponse { role: Some(role.into()) }))
    }

    async fn update_role(
        &self,
        request: Request<pb::UpdateRoleRequest>,
    ) -> Result<Response<pb::UpdateRoleResponse>, Status> {
        let actor = actor(&request);
        let mut v = FieldViolations::new();
        let role = convert::role_from_pb(request.into_inner().role, &mut v);
        v.into_result().map_err(Error::Invalid)?;
        let role = store::update_role(&self.pool, &actor, &role).await?;
        Ok(Response::new(pb::UpdateRoleResponse { role: Some(role.into()) }))
    }

    async fn list_roles(
        &self,
        _request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let roles = store::list_roles(&self.pool).await?;
        Ok(Response::new(pb::ListRolesResponse { roles: roles.into_iter().map(Into::into).collect() }))
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
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
                kind: PrincipalKind::User,
                login,
                display_name: r.display_name.trim().into(),
                org_id: r.org_id.trim().into(),
                roles,
                secret_hash,
            },
        )
        .await?;
        Ok(Response::new(pb::CreateUserResponse { user: Some(user.into()) }))
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        let actor = actor(&request);
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        required(&mut v, "user_id", &r.user_id);
        bounded(&mut v, "display_name", &r.display_name, MAX_NAME_CHARS);
        v.into_result().map_err(Error::Invalid)?;
        let user =
            store::update_user(&self.pool, &actor, r.user_id.trim(), non_empty(&r.display_name), non_empty(&r.org_id))
                .await?;
        Ok(Response::new(pb::UpdateUserResponse { user: Some(user.into()) }))
    }

    async fn assign_roles(
        &self,
        request: Request<pb::AssignRolesRequest>,
    ) -> Result<Response<pb::AssignRolesResponse>, Status> {
        let actor = actor(&request);
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        required(&mut v, "user_id", &r.user_id);
        let roles = check_roles(&r.role_codes, &mut v);
        v.into_result().map_err(Error::Invalid)?;
        let user = store::assign_roles(&self.pool, &actor, r.user_id.trim(), &roles).await?;
        Ok(Response::new(pb::AssignRolesResponse { user: Some(user.into()) }))
    }

    async fn disable_user(
        &self,
        request: Request<pb::DisableUserRequest>,
    ) -> Result<Response<pb::DisableUserResponse>, Status> {
        let actor = actor(&request);
        let r = request.into_inner();
        let user =
            store::set_disabled(&self.pool, &actor, required_id("user_id", &r.user_id)?, true, r.reason.trim()).await?;
        Ok(Response::new(pb::DisableUserResponse { user: Some(user.into()) }))
    }

    async fn enable_user(
        &self,
        request: Request<pb::EnableUserRequest>,
    ) -> Result<Response<pb::EnableUserResponse>, Status> {
        let actor = actor(&request);
        let r = request.into_inner();
        let user = store::set_disabled(&self.pool, &actor, required_id("user_id", &r.user_id)?, false, "").await?;
        Ok(Response::new(pb::EnableUserResponse { user: Some(user.into()) }))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let actor = actor(&request);
        let r = request.into_inner();
        let user = store::get_user(&self.pool, required_id("user_id", &r.user_id)?).await?;
        let mut v = FieldViolations::new();
        domain::check_password("new_password", &r.new_password, &user.login, &mut v);
        v.into_result().map_err(Error::Invalid)?;
        let hash = self.hash(r.new_password).await?;
        store::reset_password(&self.pool, &actor, &user.subject, &hash).await?;
        Ok(Response::new(pb::ResetPasswordResponse {}))
    }

    async fn unlock_user(
        &self,
        request: Request<pb::UnlockUserRequest>,
    ) -> Result<Response<pb::UnlockUserResponse>, Status> {
        let actor = actor(&request);
        let user = store::unlock(&self.pool, &actor, required_id("user_id", &request.get_ref().user_id)?).await?;
        Ok(Response::new(pb::UnlockUserResponse { user: Some(user.into()) }))
    }

    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> Result<Response<pb::GetUserResponse>, Status> {
        let user = store::get_user(&self.pool, required_id("user_id", &request.get_ref().user_id)?).await?;
        Ok(Response::new(pb::GetUserResponse { user: Some(user.into()) }))
    }

    async fn create_service_account(
        &self,
        request: Request<pb::CreateServiceAccountRequest>,
    ) -> Result<Response<pb::CreateServiceAccountResponse>, Status> {
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
                kind: PrincipalKind::Service,
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
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        let page = Page::parse("audit", r.page_size, &r.page_token, &mut v);
        let filter = audit_filter(&r, &mut v);
        v.into_result().map_err(Error::Invalid)?;
        let entries = store::list_audit(&self.pool, &filter, &page).await?;
        let next = page.next_token(&entries, |e| e.audit_id);
        let events = entries.into_iter().map(crate::convert::audit_event).collect();
        Ok(Response::new(pb::ListAuditEventsResponse { events, next_page_token: next }))
    }
}

/// The trail's filters of a request; a malformed instant is a violation.
fn audit_filter(r: &pb::ListAuditEventsRequest, v: &mut FieldViolations) -> crm_platform::audit::Filter {
    let instant = |field: &str, t: &Option<prost_types::Timestamp>, v: &mut FieldViolations| {
        let t = t.as_ref()?;
        let time = crm_platform::convert::time_of(t);
        if time.is_none() {
            v.add(field, "is not a valid instant");
        }
        time
    };
    crm_platform::audit::Filter {
        actor: non_empty(&r.actor).map(str::to_string),
        subject: non_empty(&r.target).map(str::to_string),
        action: non_empty(&r.action).map(str::to_string),
        from: instant("occurred_from", &r.occurred_from, v),
        until: instant("occurred_before", &r.occurred_before, v),
    }
}

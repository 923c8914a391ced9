//! The call context: who is calling (a user or a service account, with org, org path,
//! roles, permissions and data scope), from where, and under which trace. One value per
//! call, built once by the handler, used for authorization, the audit trail and the
//! actor of the events the call writes.
//!
//! Background work (consumers, timers, bootstrap) acts as [`CallContext::system`].

use std::sync::Arc;

use serde_json::Value;

use crate::audit;
use crate::auth::{Caller, DataScope, PrincipalKind};

/// Actor recorded for work the platform does on its own (consumers, timers, start-up).
pub const SYSTEM_ACTOR: &str = "system";

/// Who is calling, from where, under which trace.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    caller: Option<Arc<Caller>>,
    actor: String,
    actor_name: String,
    source_address: Option<String>,
    trace_id: Option<String>,
}

impl CallContext {
    /// The context of `request`: its verified caller when a token came with it (set by
    /// the auth layer), its peer address and the current trace.
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        let caller = request.extensions().get::<Arc<Caller>>().cloned().or_else(crate::auth::current_caller);
        let (actor, actor_name) = match &caller {
            Some(c) => (c.subject().to_string(), c.claims.name.clone()),
            None => (String::new(), String::new()),
        };
        Self {
            caller,
            actor,
            actor_name,
            source_address: request.remote_addr().map(|a| a.to_string()),
            trace_id: current_trace_id(),
        }
    }

    /// Like [`CallContext::of`], UNAUTHENTICATED when no verified caller came with the
    /// request (an open RPC called without a token).
    pub fn authenticated<T>(request: &tonic::Request<T>) -> Result<Self, tonic::Status> {
        let context = Self::of(request);
        match context.caller {
            Some(_) => Ok(context),
            None => Err(tonic::Status::unauthenticated("a bearer token is required")),
        }
    }

    /// The platform acting on its own: actor [`SYSTEM_ACTOR`], no caller, the current trace.
    pub fn system() -> Self {
        Self {
            caller: None,
            actor: SYSTEM_ACTOR.to_string(),
            actor_name: SYSTEM_ACTOR.to_string(),
            source_address: None,
            trace_id: current_trace_id(),
        }
    }

    /// The same call recorded under another actor: e.g. a login attempt is recorded
    /// under the login tried, a token issue under the principal it was issued to.
    pub fn acting_as(&self, actor: impl Into<String>) -> Self {
        let actor = actor.into();
        Self { actor_name: actor.clone(), actor, ..self.clone() }
    }

    /// The verified caller, if a token came with the call.
    pub fn caller(&self) -> Option<&Caller> {
        self.caller.as_deref()
    }

    /// Subject of the actor (user id, client id, [`SYSTEM_ACTOR`]); empty for an
    /// anonymous call.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Login or client id of the actor, for people reading the audit trail.
    pub fn actor_name(&self) -> &str {
        &self.actor_name
    }

    /// The actor of the events this call writes; `None` for an anonymous call.
    pub fn event_actor(&self) -> Option<&str> {
        (!self.actor.is_empty()).then_some(self.actor.as_str())
    }

    /// User or service account.
    pub fn kind(&self) -> Option<PrincipalKind> {
        self.caller().map(|c| c.claims.kind)
    }

    /// The caller's org id.
    pub fn org(&self) -> Option<&str> {
        self.caller().map(|c| c.claims.org.as_str())
    }

    /// Materialised path of the caller's org, e.g. `/HO/BJ/`.
    pub fn org_path(&self) -> Option<&str> {
        self.caller().map(|c| c.claims.org_path.as_str())
    }

    /// Role codes of the caller.
    pub fn roles(&self) -> &[String] {
        self.caller().map(|c| c.claims.roles.as_slice()).unwrap_or_default()
    }

    /// The caller's data scope: how much customer data it sees along the org tree.
    pub fn scope(&self) -> Option<DataScope> {
        self.caller().map(|c| c.claims.scope)
    }

    /// Whether the caller holds `permission` (the platform itself holds none).
    pub fn has_permission(&self, permission: &str) -> bool {
        self.caller().is_some_and(|c| c.has_permission(permission))
    }

    /// Peer address of the call.
    pub fn source_address(&self) -> Option<&str> {
        self.source_address.as_deref()
    }

    /// The trace of the call, to find it in the tracing backend.
    pub fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }

    /// An audit entry for `action` done by this call to `subject` (a customer number,
    /// a user id, a role code…).
    pub fn audit(&self, action: &str, subject: Option<&str>, details: Value) -> audit::Entry {
        audit::Entry {
            actor: self.actor.clone(),
            actor_name: self.actor_name.clone(),
            action: action.to_string(),
            subject: subject.map(str::to_string),
            source_address: self.source_address.clone(),
            trace_id: self.trace_id.clone(),
            details,
        }
    }
}

/// The trace id of the current span, when it is sampled into a trace.
fn current_trace_id() -> Option<String> {
    let id = crate::telemetry::trace_id(&tracing::Span::current());
    (!id.is_empty() && id.bytes().any(|b| b != b'0')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Claims;

    fn caller() -> Arc<Caller> {
        let claims = Claims {
            iss: "crm-identity".into(),
            sub: "u-42".into(),
            aud: "crm".into(),
            iat: 0,
            exp: 60,
            jti: "j".into(),
            kind: PrincipalKind::User,
            name: "wang.rm".into(),
            org: "BJ01".into(),
            org_path: "/HO/BJ/BJ01/".into(),
            roles: vec!["RM".into()],
            perms: vec!["customer.read".into()],
            scope: DataScope::Own,
        };
        Arc::new(Caller::new(claims, "token"))
    }

    #[test]
    fn a_verified_caller_is_the_actor_with_its_org_roles_and_scope() {
        let mut request = tonic::Request::new(());
        request.extensions_mut().insert(caller());
        let context = CallContext::authenticated(&request).expect("authenticated");
        assert_eq!((context.actor(), context.actor_name()), ("u-42", "wang.rm"));
        assert_eq!(context.event_actor(), Some("u-42"));
        assert_eq!((context.org(), context.org_path()), (Some("BJ01"), Some("/HO/BJ/BJ01/")));
        assert_eq!(context.roles(), ["RM".to_string()]);
        assert_eq!((context.kind(), context.scope()), (Some(PrincipalKind::User), Some(DataScope::Own)));
        assert!(context.has_permission("customer.read") && !context.has_permission("customer.write"));
        let entry = context.audit("customer.view_360", Some("C0001"), serde_json::json!({"full": true}));
        assert_eq!((entry.actor.as_str(), entry.actor_name.as_str()), ("u-42", "wang.rm"));
        assert_eq!((entry.action.as_str(), entry.subject.as_deref()), ("customer.view_360", Some("C0001")));
    }

    #[test]
    fn an_anonymous_call_has_no_actor_and_is_refused_where_a_caller_is_needed() {
        let request = tonic::Request::new(());
        let context = CallContext::of(&request);
        assert_eq!((context.actor(), context.event_actor()), ("", None));
        assert!(context.caller().is_none() && !context.has_permission("customer.read"));
        let status = CallContext::authenticated(&request).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn the_system_and_a_stated_actor_are_recorded_as_such() {
        let system = CallContext::system();
        assert_eq!((system.actor(), system.event_actor()), (SYSTEM_ACTOR, Some(SYSTEM_ACTOR)));
        assert!(!system.has_permission("identity.admin"));
        let attempt = CallContext::of(&tonic::Request::new(())).acting_as("someone");
        assert_eq!(attempt.audit("login.failed", None, Value::Null).actor, "someone");
    }
}

//! The tower layer every gRPC server mounts: bearer token → verified [`Caller`] →
//! permission check against the service's policy table.

use std::collections::HashSet;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::Status;

use super::verifier::{Caller, Verifier};

/// What an RPC needs from its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Anyone may call it (login, key publication).
    Open,
    /// A valid token holding this permission.
    Permission(&'static str),
}

/// One service's table: full gRPC path (`/package.Service/Method`) → requirement.
pub type Policy = &'static [(&'static str, Requirement)];

/// Paths open to everyone on every server unless the policy lists them: probes and
/// tooling.
const ALWAYS_OPEN: &[&str] =
    &["/grpc.health.v1.Health/", "/grpc.reflection.v1.ServerReflection/", "/grpc.reflection.v1alpha.ServerReflection/"];

/// The method paths a server has; `None` when the layer was not told (every path is
/// then taken to exist and left to the policy).
pub(crate) type Served<'a> = Option<&'a HashSet<String>>;

tokio::task_local! {
    /// The caller of the RPC being handled, so that outgoing calls and outbox events
    /// made while handling it carry the caller on.
    static CURRENT: Arc<Caller>;
}

/// The caller of the RPC this task is handling, if any.
pub fn current_caller() -> Option<Arc<Caller>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// The verified caller of `request` (set by [`AuthLayer`]); UNAUTHENTICATED when the
/// RPC was open and no token came with it.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<&Caller, Status> {
    request
        .extensions()
        .get::<Arc<Caller>>()
        .map(Arc::as_ref)
        .ok_or_else(|| Status::unauthenticated("a bearer token is required"))
}

/// What the layer decided for one call.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Go on, with the caller when a valid token came.
    Proceed(Option<Arc<Caller>>),
    /// Refuse with this status.
    Refuse(Status),
}

/// Checks one call: whether the server has the method at `path` (UNIMPLEMENTED if
/// not, before any token is looked at, so that a client can tell "no such method" from
/// "not allowed"), the policy entry for it and the `authorization` header.
pub(crate) async fn decide(
    verifier: &Verifier,
    policy: Policy,
    served: Served<'_>,
    path: &str,
    authorization: Option<&str>,
) -> Decision {
    let always_open = ALWAYS_OPEN.iter().any(|p| path.starts_with(p));
    if !always_open && served.is_some_and(|methods| !methods.contains(path)) {
        tracing::debug!(rpc = path, "call to a method this server does not have");
        return Decision::Refuse(Status::unimplemented(format!("this server has no method {path}")));
    }
    let requirement = match policy.iter().find(|(p, _)| *p == path).map(|(_, r)| *r) {
        Some(requirement) => requirement,
        None if always_open => return Decision::Proceed(None),
        None => {
            // Deny by default: an RPC nobody classified is not callable.
            tracing::warn!(rpc = path, "rpc missing from the authorization policy; refused");
            return Decision::Refuse(Status::permission_denied("this rpc is not open to any caller"));
        }
    };
    let token = match authorization.map(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))) {
        None => None,
        Some(Some(token)) => Some(token.trim()),
        Some(None) => return Decision::Refuse(Status::unauthenticated("authorization must be `Bearer <token>`")),
    };
    let caller = match token {
        None => None,
        Some(token) => match verifier.verify(token).await {
            Ok(caller) => Some(caller),
            Err(error) => {
                tracing::info!(rpc = path, %error, "call refused: token not accepted");
                return Decision::Refuse(Status::unauthenticated(error.to_string()));
            }
        },
    };
    match (requirement, caller) {
        (Requirement::Open, caller) => Decision::Proceed(caller),
        (Requirement::Permission(_), None) => Decision::Refuse(Status::unauthenticated("a bearer token is required")),
        (Requirement::Permission(permission), Some(caller)) if caller.has_permission(permission) => {
            Decision::Proceed(Some(caller))
        }
        (Requirement::Permission(permission), Some(caller)) => {
            tracing::info!(rpc = path, subject = caller.subject(), permission, "call refused: permission missing");
            Decision::Refuse(Status::permission_denied(format!("the `{permission}` permission is required")))
        }
    }
}

/// Authenticates and authorises every call of a server.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    verifier: Arc<Verifier>,
    policy: Policy,
    served: Option<Arc<HashSet<String>>>,
}

impl AuthLayer {
    /// A layer checking calls against `policy` with `verifier`.
    pub fn new(verifier: Arc<Verifier>, policy: Policy) -> Self {
        Self { verifier, policy, served: None }
    }

    /// Tells the layer the method paths (`/package.Service/Method`) the server has:
    /// calls to any other path (but health and reflection) are answered UNIMPLEMENTED.
    /// The runtime sets them from the services it serves.
    pub fn serving(mut self, methods: HashSet<String>) -> Self {
        self.served = Some(Arc::new(methods));
        self
    }

    /// The verifier (the runtime keeps its revocations current).
    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, verifier: self.verifier.clone(), policy: self.policy, served: self.served.clone() }
    }
}

/// The service [`AuthLayer`] wraps around a server.
#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Arc<Verifier>,
    policy: Policy,
    served: Option<Arc<HashSet<String>>>,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for AuthService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // The clone is not ready; use the one that is and leave the clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let policy = self.policy;
        let served = self.served.clone();
        Box::pin(async move {
            let authorization =
                request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
            match decide(&verifier, policy, served.as_deref(), request.uri().path(), authorization.as_deref()).await {
                Decision::Refuse(status) => Ok(status.into_http()),
                Decision::Proceed(None) => inner.call(request).await,
                Decision::Proceed(Some(caller)) => {
                    tracing::Span::current().record("enduser.id", caller.subject());
                    request.extensions_mut().insert(caller.clone());
                    CURRENT.scope(caller, inner.call(request)).await
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token::{Claims, DataScope, PrincipalKind, SigningKey, sign};
    use crate::auth::verifier::{StaticKeys, VerifierSettings};
    use std::time::Duration;
    use tonic::Code;

    const POLICY: Policy = &[
        ("/crm.test.v1.Svc/Open", Requirement::Open),
        ("/crm.test.v1.Svc/Read", Requirement::Permission("customer.read")),
        ("/crm.test.v1.Svc/Assign", Requirement::Permission("customer.assign")),
    ];

    fn token(key: &SigningKey, aud: &str, exp_offset: i64) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        sign(
            &Claims {
                iss: "crm-identity".into(),
                sub: "rm-1".into(),
                aud: aud.into(),
                iat: now,
                exp: now + exp_offset,
                jti: "j".into(),
                kind: PrincipalKind::User,
                name: "rm".into(),
                org: "BJ01".into(),
                org_path: "/HO/BJ/BJ01/".into(),
                roles: vec!["RM".into()],
                perms: vec!["customer.read".into()],
                scope: DataScope::Own,
            },
            key,
        )
    }

    fn verifier_of(key: &SigningKey) -> Verifier {
        Verifier::new(
            VerifierSettings {
                issuer: "crm-identity".into(),
                audience: "crm".into(),
                leeway_s: 0,
                key_refresh_min_interval: Duration::from_secs(60),
                cache_capacity: 10,
            },
            Arc::new(StaticKeys(vec![key.verification_key()])),
        )
    }

    fn code(d: Decision) -> Option<Code> {
        match d {
            Decision::Proceed(_) => None,
            Decision::Refuse(s) => Some(s.code()),
        }
    }

    #[tokio::test]
    async fn calls_made_while_handling_a_call_carry_the_callers_token_on() {
        use tonic::service::Interceptor;
        let key = SigningKey::generate("k1");
        let token = token(&key, "crm", 900);
        let claims = crate::auth::token::parse(&token)
            .unwrap()
            .verify(&key.verification_key().verifying_key().unwrap())
            .unwrap();
        let caller = Arc::new(Caller::new(claims, token.clone()));
        let outgoing = CURRENT
            .scope(caller, async { crate::grpc::client::TracePropagation.call(tonic::Request::new(())).unwrap() })
            .await;
        let header = outgoing.metadata().get("authorization").unwrap().to_str().unwrap().to_string();
        assert_eq!(header, format!("Bearer {token}"));
        let outside = crate::grpc::client::TracePropagation.call(tonic::Request::new(())).unwrap();
        assert!(outside.metadata().get("authorization").is_none(), "no caller, no token");
    }

    #[tokio::test]
    async fn every_bad_token_case_and_permission_case_gets_its_status() {
        let key = SigningKey::generate("k1");
        let verifier = verifier_of(&key);
        let good = format!("Bearer {}", token(&key, "crm", 900));
        let expired = format!("Bearer {}", token(&key, "crm", -10));
        let other_aud = format!("Bearer {}", token(&key, "payments", 900));
        let foreign = format!("Bearer {}", token(&SigningKey::generate("k1"), "crm", 900));
        let tampered = {
            let t = token(&key, "crm", 900);
            let (signed, sig) = t.rsplit_once('.').unwrap();
            let flipped = if sig.starts_with('A') { "B" } else { "A" };
            format!("Bearer {signed}.{flipped}{}", &sig[1..])
        };
        let cases: &[(&str, Option<&str>, Option<Code>)] = &[
            ("/grpc.health.v1.Health/Check", None, None),
            ("/crm.test.v1.Svc/Open", None, None),
            ("/crm.test.v1.Svc/Read", None, Some(Code::Unauthenticated)),
            ("/crm.test.v1.Svc/Read", Some("Basic abc"), Some(Code::Unauthenticated)),
            ("/crm.test.v1.Svc/Read", Some("Bearer not-a-token"), Some(Code::Unauthenticated)),
            ("/crm.test.v1.Svc/Read", Some(&expired), Some(Code::Unauthenticated)),
            ("/crm.test.v1.Svc/Read", Some(&other_aud), Some(Code::Unauthenticated)),
            ("/crm.test.v1.Svc/Read", Some(&foreign), Some(Code::Unauthenticated)),
            ("/crm.test.v1.Svc/Read", Some(&tampered), Some(Code::Unauthenticated)),
            ("/crm.test.v1.Svc/Read", Some(&good), None),
            ("/crm.test.v1.Svc/Assign", Some(&good), Some(Code::PermissionDenied)),
            ("/crm.test.v1.Svc/Unlisted", Some(&good), Some(Code::PermissionDenied)),
        ];
        for (path, auth, expected) in cases {
            let got = code(decide(&verifier, POLICY, None, path, *auth).await);
            assert_eq!(&got, expected, "{path} with {auth:?}");
        }
    }

    #[tokio::test]
    async fn a_method_the_server_lacks_is_unimplemented_and_one_it_has_stays_denied_by_default() {
        let key = SigningKey::generate("k1");
        let verifier = verifier_of(&key);
        let good = format!("Bearer {}", token(&key, "crm", 900));
        let served: HashSet<String> =
            ["/crm.test.v1.Svc/Open", "/crm.test.v1.Svc/Read", "/crm.test.v1.Svc/Unlisted"].map(String::from).into();
        let cases: &[(&str, Option<&str>, Option<Code>)] = &[
            ("/crm.test.v1.Svc/Nope", None, Some(Code::Unimplemented)),
            ("/crm.test.v1.Svc/Nope", Some(&good), Some(Code::Unimplemented)),
            ("/crm.test.v1.Svc/Nope", Some("Bearer not-a-token"), Some(Code::Unimplemented)),
            ("/crm.other.v1.Other/Login", None, Some(Code::Unimplemented)),
            // Listed in the policy but not served here: still no such method.
            ("/crm.test.v1.Svc/Assign", Some(&good), Some(Code::Unimplemented)),
            ("/crm.test.v1.Svc/Unlisted", Some(&good), Some(Code::PermissionDenied)),
            ("/crm.test.v1.Svc/Read", None, Some(Code::Unauthenticated)),
            ("/crm.test.v1.Svc/Read", Some(&good), None),
            ("/crm.test.v1.Svc/Open", None, None),
            ("/grpc.health.v1.Health/Check", None, None),
            ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", None, None),
            ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", None, None),
        ];
        for (path, auth, expected) in cases {
            let got = code(decide(&verifier, POLICY, Some(&served), path, *auth).await);
            assert_eq!(&got, expected, "{path} with {auth:?}");
        }
    }
}

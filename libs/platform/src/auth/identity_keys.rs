//! Verification keys fetched from identity's `ListVerificationKeys`.

use std::future::Future;
use std::pin::Pin;

use crm_proto::crm::identity::v1::ListVerificationKeysRequest;
use crm_proto::crm::identity::v1::auth_service_client::AuthServiceClient;

use super::token::VerificationKey;
use super::verifier::KeySource;
use crate::grpc::client::TracedChannel;

/// Asks identity for the current key set.
#[derive(Debug, Clone)]
pub struct IdentityKeys {
    client: AuthServiceClient<TracedChannel>,
}

impl IdentityKeys {
    /// Keys from the identity service behind `channel`.
    pub fn new(channel: TracedChannel) -> Self {
        Self { client: AuthServiceClient::new(channel) }
    }
}

impl KeySource for IdentityKeys {
    fn keys(&self) -> Pin<Box<dyn Future<Output = Result<Vec<VerificationKey>, String>> + Send + '_>> {
        let mut client = self.client.clone();
        Box::pin(async move {
            let response = client
                .list_verification_keys(ListVerificationKeysRequest {})
                .await
                .map_err(|s| format!("identity answered {:?}: {}", s.code(), s.message()))?;
            Ok(response
                .into_inner()
                .keys
                .into_iter()
                .filter(|k| k.alg == "EdDSA")
                .filter_map(|k| VerificationKey::from_bytes(k.kid, &k.public_key))
                .collect())
        })
    }
}

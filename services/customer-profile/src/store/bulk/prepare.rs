//! Preparation: what can be computed of a record before its transaction.

use serde_json::Value;

use crate::domain::{IdentityKey, ValidatedRecord};
use crate::pii::PiiCipher;
use crate::store::{ID_INDEX, PHONE_INDEX, attributes_json, search_form, stored_identity};

/// A validated record with everything computed that needs no database: its encrypted
/// attributes and blind indexes. Preparing is CPU work (AES-GCM, HMAC), done before the
/// batch's transaction so that it does not lengthen the time the ECIF lock is held.
#[derive(Debug, Clone)]
pub struct PreparedRecord {
    /// The record as validated (complex records go through the one-by-one path).
    pub validated: ValidatedRecord,
    pub(super) flags: Vec<String>,
    pub(super) digest: Option<String>,
    pub(super) blind: Option<String>,
    pub(super) name_key: Option<String>,
    pub(super) attributes: Value,
    pub(super) phone_index: Option<String>,
    pub(super) id_index: String,
    /// Trace of the call that brought the record: its events continue it even when
    /// another task writes them.
    pub(super) trace: (Option<String>, Option<String>),
}

impl PreparedRecord {
    /// Encrypts and indexes `v`.
    pub fn new(pii: &PiiCipher, v: ValidatedRecord) -> Self {
        let key = IdentityKey::of(&v);
        let (blind, digest) = match key.as_ref().map(|k| stored_identity(pii, k)) {
            Some((b, d)) => (Some(b), Some(d)),
            None => (None, None),
        };
        let r = &v.record;
        Self {
            flags: v.flags.iter().map(|f| f.code().to_string()).collect(),
            digest,
            blind,
            name_key: key.map(|k| k.name_key),
            attributes: attributes_json(pii, &v),
            phone_index: r.mobile_phone.as_ref().map(|p| pii.blind_index(PHONE_INDEX, p)),
            id_index: pii.blind_index(ID_INDEX, &search_form(r.id_type, &r.id_number)),
            trace: crm_platform::telemetry::current_trace_context(),
            validated: v,
        }
    }

    /// The record's source key (system, id).
    pub(super) fn key(&self) -> (&str, &str) {
        (&self.validated.record.source_system, &self.validated.record.source_customer_id)
    }
}

//! Maintained details: PII sealed before storing, revealed (masked unless permitted)
//! when read.

use crm_proto::crm::customer::v1 as pb;
use pb::party_detail::Detail;
use prost::Message;
use time::OffsetDateTime;

use crate::domain::{mask_id_number, mask_phone, normalize_id_number};
use crate::error::Error;
use crate::pii::PiiCipher;

const PHONE: &str = "detail.phone";
const ID_NUMBER: &str = "detail.id_number";

fn is_phone(kind: i32) -> bool {
    matches!(
        pb::ContactKind::try_from(kind),
        Ok(pb::ContactKind::MobilePhone | pb::ContactKind::Landline | pb::ContactKind::Fax)
    )
}

fn seal_phone(pii: &PiiCipher, value: &mut String) {
    if !value.trim().is_empty() {
        let plain = crate::domain::record::normalize_mobile_phone(value).unwrap_or_else(|| value.trim().to_string());
        *value = pii.encrypt(PHONE, &plain);
    }
}

/// The detail as stored: trimmed, phones normalised, PII encrypted, no change time.
pub fn seal(pii: &PiiCipher, mut detail: pb::PartyDetail) -> pb::PartyDetail {
    detail.update_time = None;
    match detail.detail.as_mut() {
        Some(Detail::Contact(c)) => {
            if is_phone(c.kind) {
                seal_phone(pii, &mut c.value);
            } else {
                c.value = c.value.trim().to_string();
            }
        }
        Some(Detail::FamilyMember(m)) => {
            seal_phone(pii, &mut m.mobile_phone);
            if !m.id_number.trim().is_empty() {
                m.id_number = pii.encrypt(ID_NUMBER, &normalize_id_number(&m.id_number));
            }
        }
        Some(Detail::KeyPerson(k)) => seal_phone(pii, &mut k.mobile_phone),
        _ => {}
    }
    detail
}

fn reveal_value(pii: &PiiCipher, field: &str, stored: &mut String, mask: fn(&str) -> String, full: bool) {
    if stored.is_empty() {
        return;
    }
    *stored = match pii.decrypt(field, stored) {
        Ok(plain) if full => plain,
        Ok(plain) => mask(&plain),
        Err(e) => {
            tracing::error!(field, error = %e, "stored detail does not decrypt with the configured key");
            "*".repeat(8)
        }
    };
}

/// A stored detail for a response: PII in full with `full`, masked otherwise.
pub fn reveal(pii: &PiiCipher, mut detail: pb::PartyDetail, full: bool) -> pb::PartyDetail {
    match detail.detail.as_mut() {
        Some(Detail::Contact(c)) if is_phone(c.kind) => reveal_value(pii, PHONE, &mut c.value, mask_phone, full),
        Some(Detail::FamilyMember(m)) => {
            reveal_value(pii, PHONE, &mut m.mobile_phone, mask_phone, full);
            reveal_value(pii, ID_NUMBER, &mut m.id_number, mask_id_number, full);
        }
        Some(Detail::KeyPerson(k)) => reveal_value(pii, PHONE, &mut k.mobile_phone, mask_phone, full),
        _ => {}
    }
    detail
}

/// Decodes a stored detail under its stored id.
pub fn decode(detail_id: &str, payload: &[u8], updated_at: OffsetDateTime) -> Result<pb::PartyDetail, Error> {
    let mut detail = pb::PartyDetail::decode(payload).map_err(|e| Error::Corrupt(format!("party detail: {e}")))?;
    detail.detail_id = detail_id.to_string();
    detail.update_time = Some(crm_platform::convert::timestamp(updated_at));
    Ok(detail)
}

//! Maintained details (contacts, addresses, family, assets, events, key persons, the
//! corporate profile) and extended attributes, put and removed by bank staff. A
//! detail's PII is sealed before storing and revealed (masked unless permitted) when
//! read; the 360° view reads details through [`decode`] and [`reveal`].

use crm_platform::FieldViolations;
use crm_proto::crm::customer::v1 as pb;
use pb::party_detail::Detail;
use prost::Message;
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use super::{CustomerApi, viewer};
use crate::convert::{self, today};
use crate::domain::{self, PartyKind, mask_id_number, mask_phone, normalize_id_number};
use crate::error::Error;
use crate::pii::PiiCipher;
use crate::store;

pub(super) async fn put_party_detail(
    api: &CustomerApi,
    request: Request<pb::PutPartyDetailRequest>,
) -> Result<Response<pb::PutPartyDetailResponse>, Status> {
    let viewer = viewer(&request)?;
    let r = request.into_inner();
    let mut v = FieldViolations::new();
    let number = convert::customer_number(&mut v, "customer_number", &r.customer_number);
    let Some(detail) = r.detail else {
        v.add("detail", "is required");
        return Err(Error::Invalid(v).into());
    };
    v.extend(domain::details::validate(&detail, today()));
    let (Some(number), true) = (number, v.is_empty()) else {
        return Err(Error::Invalid(v).into());
    };
    let customer = api.visible_survivor(&viewer, number.as_str()).await?;
    let kind_code = fitting_kind(&detail, convert::party_kind_of(&customer.party_kind))?;
    let sealed = seal(&api.pii, detail);
    let changed = store::put_detail(
        &api.pool,
        &customer.customer_number,
        &sealed.detail_id,
        kind_code,
        &sealed.encode_to_vec(),
        viewer.actor(),
    )
    .await?;
    if changed {
        api.audit(&[viewer.audit(
            "customer.put_detail",
            Some(&customer.customer_number),
            serde_json::json!({"detail_id": sealed.detail_id, "kind": kind_code}),
        )])
        .await?;
    }
    Ok(Response::new(pb::PutPartyDetailResponse {
        customer_number: customer.customer_number,
        detail: Some(reveal(&api.pii, sealed, viewer.full_pii)),
        changed,
    }))
}

/// The stored code of a validated detail's kind, refused when the kind does not fit
/// the customer (family details of a company, a key person or profile of a person).
fn fitting_kind(detail: &pb::PartyDetail, party_kind: PartyKind) -> Result<&'static str, Error> {
    let Some(kind) = detail.detail.as_ref() else {
        return Err(Error::Corrupt("validated detail without kind".into()));
    };
    let kind_code = domain::details::kind_code(kind);
    if !domain::details::fits_party_kind(kind, party_kind) {
        let mut v = FieldViolations::new();
        v.add("detail", format!("a {kind_code} detail does not fit a {} customer", party_kind.code()));
        return Err(Error::Invalid(v));
    }
    Ok(kind_code)
}

pub(super) async fn remove_party_detail(
    api: &CustomerApi,
    request: Request<pb::RemovePartyDetailRequest>,
) -> Result<Response<pb::RemovePartyDetailResponse>, Status> {
    let viewer = viewer(&request)?;
    let r = request.into_inner();
    let mut v = FieldViolations::new();
    let number = convert::customer_number(&mut v, "customer_number", &r.customer_number);
    if r.detail_id.trim().is_empty() {
        v.add("detail_id", "is required");
    }
    let (Some(number), true) = (number, v.is_empty()) else {
        return Err(Error::Invalid(v).into());
    };
    let customer = api.visible_survivor(&viewer, number.as_str()).await?;
    let removed =
        store::remove_detail(&api.pool, &customer.customer_number, r.detail_id.trim(), viewer.actor()).await?;
    if removed {
        api.audit(&[viewer.audit(
            "customer.remove_detail",
            Some(&customer.customer_number),
            serde_json::json!({"detail_id": r.detail_id.trim()}),
        )])
        .await?;
    }
    Ok(Response::new(pb::RemovePartyDetailResponse { removed }))
}

pub(super) async fn set_extended_attributes(
    api: &CustomerApi,
    request: Request<pb::SetExtendedAttributesRequest>,
) -> Result<Response<pb::SetExtendedAttributesResponse>, Status> {
    let viewer = viewer(&request)?;
    let r = request.into_inner();
    let mut v = domain::details::validate_extended(&r.set, &r.remove);
    let number = convert::customer_number(&mut v, "customer_number", &r.customer_number);
    let (Some(number), true) = (number, v.is_empty()) else {
        return Err(Error::Invalid(v).into());
    };
    let customer = api.visible_survivor(&viewer, number.as_str()).await?;
    let attributes =
        store::set_extended(&api.pool, &customer.customer_number, &r.set, &r.remove, viewer.actor()).await?;
    let keys: Vec<&String> = r.set.keys().chain(r.remove.iter()).collect();
    api.audit(&[viewer.audit(
        "customer.set_extended_attributes",
        Some(&customer.customer_number),
        serde_json::json!({"keys": keys}),
    )])
    .await?;
    Ok(Response::new(pb::SetExtendedAttributesResponse { attributes: attributes.into_iter().collect() }))
}

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

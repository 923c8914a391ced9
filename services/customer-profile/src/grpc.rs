//! `crm.customer.v1.CustomerService`: proto ↔ domain, nothing else.

use std::sync::Arc;

use crm_platform::FieldViolations;
use crm_platform::auth::Caller;
use crm_platform::convert::{timestamp, timestamp_from_micros};
use crm_platform::paging::Page;
use crm_platform::runtime::ServiceRuntime;
use crm_platform::validate::{self, Lines};
use crm_proto::crm::common::v1 as common;
use crm_proto::crm::customer::v1 as pb;
use futures::StreamExt;
use serde_json::Value;
use sqlx::PgPool;
use time::OffsetDateTime;
use tonic::{Request, Response, Status, Streaming};

mod details;

use crate::access;
use crate::domain::{self, Date, Gender, IdType, PartyKind, TrustTable, ValidatedRecord, mask_id_number, mask_phone};
use crate::error::Error;
use crate::pii::PiiCipher;
use crate::store::{self, StoredCustomer};

/// Records of an import stream applied per transaction.
const IMPORT_BATCH: usize = 1000;

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct CustomerApi {
    pool: PgPool,
    trust: Arc<TrustTable>,
    pii: Arc<PiiCipher>,
    /// Single upserts of concurrent calls, applied together (group commit).
    upserts: store::UpsertQueue,
    /// Audit entries of concurrent calls, written together.
    audits: store::AuditQueue,
}

impl CustomerApi {
    /// A service over the database in `pool` with the configured source trust and PII key.
    pub fn new(runtime: &mut ServiceRuntime, trust: TrustTable, pii: PiiCipher) -> Self {
        let pool = runtime.pool.clone();
        let (trust, pii) = (Arc::new(trust), Arc::new(pii));
        let (upserts, writer) = store::UpsertQueue::new(pool.clone(), trust.clone(), pii.clone());
        runtime.task("upsert writer", writer);
        let (audits, writer) = store::AuditQueue::new(pool.clone());
        runtime.task("audit writer", writer);
        Self { pool, trust, pii, upserts, audits }
    }

    /// Decrypts a stored ID or phone number for display: in full for callers with
    /// `customer.pii.read`, masked for everyone else. A value that does not decrypt
    /// (wrong key) is shown as fully masked rather than failing the read.
    fn reveal(&self, field: &str, stored: &str, mask: fn(&str) -> String, full: bool) -> String {
        if stored.is_empty() {
            return String::new();
        }
        match self.pii.decrypt(field, stored) {
            Ok(plain) if full => plain,
            Ok(plain) => mask(&plain),
            Err(e) => {
                tracing::error!(field, error = %e, "stored value does not decrypt with the configured key");
                "*".repeat(8)
            }
        }
    }
}

fn id_type_from_pb(v: i32) -> Option<IdType> {
    use pb::IdType as P;
    Some(match P::try_from(v).ok()? {
        P::Unspecified => return None,
        P::ResidentId => IdType::ResidentId,
        P::Passport => IdType::Passport,
        P::HkMacaoPermit => IdType::HkMacaoPermit,
        P::TaiwanPermit => IdType::TaiwanPermit,
        P::ForeignPermanentResidentId => IdType::ForeignPermanentResidentId,
        P::MilitaryId => IdType::MilitaryId,
        P::UnifiedSocialCreditCode => IdType::UnifiedSocialCreditCode,
        P::OrganizationCode => IdType::OrganizationCode,
        P::BusinessLicense => IdType::BusinessLicense,
        P::Other => IdType::Other,
    })
}

fn id_type_to_pb(code: &str) -> pb::IdType {
    use pb::IdType as P;
    match IdType::from_code(code) {
        Some(IdType::ResidentId) => P::ResidentId,
        Some(IdType::Passport) => P::Passport,
        Some(IdType::HkMacaoPermit) => P::HkMacaoPermit,
        Some(IdType::TaiwanPermit) => P::TaiwanPermit,
        Some(IdType::ForeignPermanentResidentId) => P::ForeignPermanentResidentId,
        Some(IdType::MilitaryId) => P::MilitaryId,
        Some(IdType::UnifiedSocialCreditCode) => P::UnifiedSocialCreditCode,
        Some(IdType::OrganizationCode) => P::OrganizationCode,
        Some(IdType::BusinessLicense) => P::BusinessLicense,
        Some(IdType::Other) => P::Other,
        None => P::Unspecified,
    }
}

fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// Converts a proto record into a validated domain record, or every problem with it.
pub fn validate_record(record: Option<pb::SourceRecord>, today: Date) -> Result<ValidatedRecord, FieldViolations> {
    let mut v = FieldViolations::new();
    let Some(r) = record else {
        v.add("record", "is required");
        return Err(v);
    };
    let key = r.key.unwrap_or_default();
    // The limits the contract documents (proto/crm/customer/v1/customer.proto).
    let texts: [(&str, &str, usize); 9] = [
        ("record.key.source_system", &key.source_system, 32),
        ("record.key.source_customer_id", &key.source_customer_id, 64),
        ("record.id_number", &r.id_number, 64),
        ("record.name", &r.name, 200),
        ("record.nationality", &r.nationality, 16),
        ("record.mobile_phone", &r.mobile_phone, 32),
        ("record.email", &r.email, 254),
        ("record.address", &r.address, 500),
        ("record.occupation", &r.occupation, 100),
    ];
    let mut unusable = false;
    for (field, value, max) in texts {
        unusable |= !validate::text(&mut v, field, value, max, Lines::Single);
    }
    if unusable {
        // Values that cannot be stored are not checked further.
        return Err(v);
    }
    let party_kind = match pb::PartyKind::try_from(r.party_kind) {
        Ok(pb::PartyKind::Personal) => Some(PartyKind::Personal),
        Ok(pb::PartyKind::Corporate) => Some(PartyKind::Corporate),
        _ => {
            v.add("record.party_kind", "must be PERSONAL or CORPORATE");
            None
        }
    };
    let id_type = id_type_from_pb(r.id_type);
    if id_type.is_none() {
        v.add("record.id_type", "must be a known ID type");
    }
    let birth_date = match r.birth_date {
        Some(d) => match (u8::try_from(d.month), u8::try_from(d.day)) {
            (Ok(m), Ok(day)) => match Date::new(d.year, m, day) {
                Some(date) => Some(date),
                None => {
                    v.add("record.birth_date", "is not a calendar date");
                    None
                }
            },
            _ => {
                v.add("record.birth_date", "is not a calendar date");
                None
            }
        },
        None => None,
    };
    let gender = match pb::Gender::try_from(r.gender) {
        Ok(pb::Gender::Male) => Some(Gender::Male),
        Ok(pb::Gender::Female) => Some(Gender::Female),
        Ok(pb::Gender::Unknown) => Some(Gender::Unknown),
        _ => None,
    };
    let (Some(party_kind), Some(id_type)) = (party_kind, id_type) else {
        return Err(v);
    };
    let record = domain::SourceRecord {
        source_system: key.source_system.trim().to_string(),
        source_customer_id: key.source_customer_id.trim().to_string(),
        source_version: r.source_version,
        party_kind,
        id_type,
        id_number: r.id_number,
        name: r.name,
        gender,
        birth_date,
        nationality: non_empty(&r.nationality),
        mobile_phone: non_empty(&r.mobile_phone),
        email: non_empty(&r.email),
        address: non_empty(&r.address),
        occupation: non_empty(&r.occupation),
    };
    match domain::validate(record, today) {
        Ok(validated) if v.is_empty() => Ok(validated),
        Ok(_) => Err(v),
        Err(violations) => {
            for violation in violations {
                let field = match violation.field {
                    "source_system" => "record.key.source_system".to_string(),
                    "source_customer_id" => "record.key.source_customer_id".to_string(),
                    other => format!("record.{other}"),
                };
                v.add(field, violation.reason);
            }
            Err(v)
        }
    }
}

/// Today's date, for birth-date checks.
pub fn today() -> Date {
    let now = OffsetDateTime::now_utc().date();
    Date::new(now.year(), u8::from(now.month()), now.day()).unwrap_or(Date { year: 2000, month: 1, day: 1 })
}

fn customer_to_pb(api: &CustomerApi, c: StoredCustomer, full_pii: bool) -> pb::Customer {
    let get = |k: &str| c.golden.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let birth_date = c
        .golden
        .get("birth_date")
        .and_then(Value::as_str)
        .and_then(Date::parse_iso)
        .map(|d| common::Date { year: d.year, month: i32::from(d.month), day: i32::from(d.day) });
    let gender = match Gender::from_code(&get("gender")) {
        Some(Gender::Male) => pb::Gender::Male,
        Some(Gender::Female) => pb::Gender::Female,
        Some(Gender::Unknown) => pb::Gender::Unknown,
        None => pb::Gender::Unspecified,
    };
    let lineage = c
        .lineage
        .iter()
        .map(|(attribute, l)| pb::AttributeLineage {
            attribute: attribute.clone(),
            source: Some(pb::SourceKey {
                source_system: l.get("source_system").and_then(Value::as_str).unwrap_or_default().into(),
                source_customer_id: l.get("source_customer_id").and_then(Value::as_str).unwrap_or_default().into(),
            }),
            trust: l.get("trust").and_then(Value::as_i64).unwrap_or_default() as i32,
            update_time: l.get("updated_at").and_then(Value::as_i64).map(timestamp_from_micros),
        })
        .collect();
    let phone = api.reveal("mobile_phone", &get("mobile_phone"), mask_phone, full_pii);
    let id_number = api.reveal("id_number", &get("id_number"), mask_id_number, full_pii);
    pb::Customer {
        customer_number: c.customer_number.clone(),
        party_kind: if c.party_kind == "CORPORATE" { pb::PartyKind::Corporate } else { pb::PartyKind::Personal } as i32,
        name: get("name"),
        id_type: id_type_to_pb(&get("id_type")) as i32,
        id_number,
        gender: gender as i32,
        birth_date,
        nationality: get("nationality"),
        mobile_phone: phone,
        email: get("email"),
        address: get("address"),
        occupation: get("occupation"),
        lineage,
        source_keys: c
            .sources
            .into_iter()
            .map(|(source_system, source_customer_id)| pb::SourceKey { source_system, source_customer_id })
            .collect(),
        quality_flags: c.quality_flags,
        create_time: Some(timestamp(c.created_at)),
        update_time: Some(timestamp(c.updated_at)),
    }
}

/// Customer numbers of a batch request: 1 to 1000, each well-formed.
fn customer_numbers(numbers: &[String], v: &mut FieldViolations) -> Vec<String> {
    if numbers.is_empty() || numbers.len() > 1000 {
        v.add("customer_numbers", "give between 1 and 1000 customer numbers");
    }
    for (i, n) in numbers.iter().enumerate() {
        if !domain::is_valid_customer_number(n.trim()) {
            v.add(format!("customer_numbers[{i}]"), "is not a valid customer number");
        }
    }
    numbers.iter().map(|n| n.trim().to_string()).collect()
}

/// The verified caller of a request: what they may see, and how they are recorded in
/// events and the access audit trail.
#[derive(Debug, Clone)]
struct Viewer {
    caller: Arc<Caller>,
    visibility: store::Visibility,
    full_pii: bool,
    source_address: Option<String>,
}

fn viewer<T>(request: &Request<T>) -> Result<Viewer, Status> {
    let caller = crm_platform::auth::caller(request)?;
    Ok(Viewer {
        visibility: access::visibility(caller),
        full_pii: access::can_see_pii(caller),
        caller: Arc::new(caller.clone()),
        source_address: request.remote_addr().map(|a| a.to_string()),
    })
}

impl Viewer {
    /// The actor recorded in history and events.
    fn actor(&self) -> Option<&str> {
        Some(self.caller.subject())
    }

    /// An audit entry for `action` on `customer_number`.
    fn audit(&self, action: &str, customer_number: Option<&str>, details: Value) -> store::AuditEntry {
        store::AuditEntry {
            actor: self.caller.subject().to_string(),
            actor_name: self.caller.claims.name.clone(),
            action: action.to_string(),
            customer_number: customer_number.map(str::to_string),
            source_address: self.source_address.clone(),
            trace_id: Some(crm_platform::telemetry::trace_id(&tracing::Span::current())),
            details,
        }
    }
}

impl CustomerApi {
    /// Refuses a customer outside the viewer's data scope. Give the surviving number.
    async fn ensure_visible(&self, viewer: &Viewer, customer_number: &str) -> Result<(), Error> {
        match store::customer_visible(&self.pool, customer_number, &viewer.visibility).await? {
            Some(true) => Ok(()),
            Some(false) => Err(Error::OutOfScope(format!("customer {customer_number}"))),
            None => Err(Error::NotFound(format!("customer {customer_number}"))),
        }
    }

    /// Resolves a (possibly absorbed) customer number to its survivor and refuses it
    /// when outside the viewer's data scope.
    async fn visible_survivor(&self, viewer: &Viewer, customer_number: &str) -> Result<StoredCustomer, Error> {
        let customer = store::customer_by_number(&self.pool, customer_number).await?;
        self.ensure_visible(viewer, &customer.customer_number).await?;
        Ok(customer)
    }

    /// Writes audit entries; a read or change that cannot be audited fails.
    async fn audit(&self, entries: &[store::AuditEntry]) -> Result<(), Error> {
        self.audits.write(entries.to_vec()).await
    }
}

fn upsert_response(r: store::UpsertResult) -> pb::UpsertSourceRecordResponse {
    pb::UpsertSourceRecordResponse {
        customer_number: r.customer_number,
        outcome: r.outcome as i32,
        quality_flags: r.quality_flags,
        absorbed_customer_numbers: r.absorbed,
    }
}

fn relationship_kind(kind: i32) -> Option<&'static str> {
    match pb::RelationshipKind::try_from(kind).ok()? {
        pb::RelationshipKind::ExecutiveOf => Some("EXECUTIVE_OF"),
        pb::RelationshipKind::SubsidiaryOf => Some("SUBSIDIARY_OF"),
        pb::RelationshipKind::SharesLegalRepresentativeWith => Some("SHARES_LEGAL_REPRESENTATIVE_WITH"),
        pb::RelationshipKind::FamilyMemberOf => Some("FAMILY_MEMBER_OF"),
        pb::RelationshipKind::Unspecified => None,
    }
}

fn relationship_to_pb(r: store::RelationshipRow) -> pb::Relationship {
    let kind = match r.kind.as_str() {
        "EXECUTIVE_OF" => pb::RelationshipKind::ExecutiveOf,
        "SUBSIDIARY_OF" => pb::RelationshipKind::SubsidiaryOf,
        "SHARES_LEGAL_REPRESENTATIVE_WITH" => pb::RelationshipKind::SharesLegalRepresentativeWith,
        "FAMILY_MEMBER_OF" => pb::RelationshipKind::FamilyMemberOf,
        _ => pb::RelationshipKind::Unspecified,
    };
    pb::Relationship {
        kind: kind as i32,
        related_customer_number: r.related_customer_number,
        related_name: r.related_name,
        role: r.role,
        inverse: r.inverse,
    }
}

fn change_to_pb(h: store::HistoryRow) -> pb::CustomerChange {
    pb::CustomerChange {
        change_kind: h.change_kind,
        change_time: Some(timestamp(h.changed_at)),
        actor: h.actor.unwrap_or_default(),
        source: h.source.map(|(source_system, source_customer_id)| pb::SourceKey { source_system, source_customer_id }),
        changed_attributes: h.changed_attributes,
    }
}

#[tonic::async_trait]
impl pb::customer_service_server::CustomerService for CustomerApi {
    async fn list_customer_history(
        &self,
        request: Request<pb::ListCustomerHistoryRequest>,
    ) -> Result<Response<pb::ListCustomerHistoryResponse>, Status> {
        crate::limits::list_customer_history(request.get_ref()).map_err(Error::Invalid)?;
        let viewer = viewer(&request)?;
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        let page = Page::parse("customer-history", r.page_size, &r.page_token, &mut v);
        if r.customer_number.trim().is_empty() {
            v.add("customer_number", "is required");
        }
        v.into_result().map_err(Error::Invalid)?;
        self.visible_survivor(&viewer, r.customer_number.trim()).await?;
        let rows = store::customer_history(&self.pool, r.customer_number.trim(), page.position(), page.size).await?;
        let next = page.next_token(&rows, |h| h.id);
        Ok(Response::new(pb::ListCustomerHistoryResponse {
            changes: rows.into_iter().map(change_to_pb).collect(),
            next_page_token: next,
        }))
    }

    async fn add_relationship(
        &self,
        request: Request<pb::AddRelationshipRequest>,
    ) -> Result<Response<pb::AddRelationshipResponse>, Status> {
        crate::limits::add_relationship(request.get_ref()).map_err(Error::Invalid)?;
        let viewer = viewer(&request)?;
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        for (field, value) in
            [("customer_number", &r.customer_number), ("related_customer_number", &r.related_customer_number)]
        {
            if !domain::is_valid_customer_number(value.trim()) {
                v.add(field, "is not a valid customer number");
            }
        }
        let kind = relationship_kind(r.kind);
        if kind.is_none() {
            v.add("kind", "must be a known relationship kind");
        }
        if r.role.chars().count() > 64 {
            v.add("role", "must be at most 64 characters");
        }
        let Some(kind) = kind else {
            return Err(Error::Invalid(v).into());
        };
        v.into_result().map_err(Error::Invalid)?;
        for number in [&r.customer_number, &r.related_customer_number] {
            self.visible_survivor(&viewer, number.trim()).await?;
        }
        let row = store::add_relationship(
            &self.pool,
            r.customer_number.trim(),
            kind,
            r.related_customer_number.trim(),
            &r.role.trim().to_ascii_uppercase(),
            viewer.actor(),
        )
        .await?;
        self.audit(&[viewer.audit(
            "customer.add_relationship",
            Some(r.customer_number.trim()),
            serde_json::json!({"kind": kind, "related_customer_number": r.related_customer_number.trim()}),
        )])
        .await?;
        Ok(Response::new(pb::AddRelationshipResponse { relationship: Some(relationship_to_pb(row)) }))
    }

    async fn get_customer360(
        &self,
        request: Request<pb::GetCustomer360Request>,
    ) -> Result<Response<pb::GetCustomer360Response>, Status> {
        crate::limits::get_customer360(request.get_ref()).map_err(Error::Invalid)?;
        let viewer = viewer(&request)?;
        let r = request.into_inner();
        if r.customer_number.trim().is_empty() {
            let mut v = FieldViolations::new();
            v.add("customer_number", "is required");
            return Err(Error::Invalid(v).into());
        }
        let view = store::customer_360(&self.pool, r.customer_number.trim(), &viewer.visibility).await?;
        if !view.visible {
            return Err(Error::OutOfScope(format!("customer {}", view.customer.customer_number)).into());
        }
        // Audited before anything is returned: no full view leaves without its record.
        self.audit(&[viewer.audit(
            "customer.view_360",
            Some(&view.customer.customer_number),
            serde_json::json!({"requested": r.customer_number.trim(), "full_pii": viewer.full_pii}),
        )])
        .await?;
        let mut party_details = Vec::new();
        for (detail_id, payload, updated_at) in &view.details {
            let detail = details::decode(detail_id, payload, *updated_at)?;
            party_details.push(details::reveal(&self.pii, detail, viewer.full_pii));
        }
        let asset_totals = domain::details::asset_totals(party_details.iter().filter_map(|d| match &d.detail {
            Some(pb::party_detail::Detail::FamilyAsset(a)) => Some(a),
            _ => None,
        }));
        Ok(Response::new(pb::GetCustomer360Response {
            details: party_details,
            asset_totals,
            extended_attributes: view.extended.into_iter().collect(),
            customer: Some(customer_to_pb(self, view.customer, viewer.full_pii)),
            assignment: view.assignment.as_ref().map(store::assignment_to_pb),
            relationships: view.relationships.into_iter().map(relationship_to_pb).collect(),
            recent_changes: view.recent_changes.into_iter().map(change_to_pb).collect(),
            open_suspect_pairs: view.open_suspect_pairs as i32,
        }))
    }

    async fn search_customers(
        &self,
        request: Request<pb::SearchCustomersRequest>,
    ) -> Result<Response<pb::SearchCustomersResponse>, Status> {
        crate::limits::search_customers(request.get_ref()).map_err(Error::Invalid)?;
        let viewer = viewer(&request)?;
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        let page = Page::parse("search", r.page_size, &r.page_token, &mut v);
        let text = |s: &str| non_empty(s).map(|s| s.to_lowercase());
        let mut criteria = store::SearchCriteria {
            name_prefix: text(&r.name_prefix),
            name_contains: text(&r.name_contains),
            home_org_id: non_empty(&r.home_org_id),
            rm_id: non_empty(&r.rm_id),
            visibility: viewer.visibility.clone(),
            ..Default::default()
        };
        if let Some(id) = non_empty(&r.id_number) {
            // The same number under any type: as its resident-ID matching form (15 → 18)
            // and as it is.
            let forms: std::collections::BTreeSet<String> =
                [store::search_form(IdType::ResidentId, &id), store::search_form(IdType::Passport, &id)].into();
            criteria.id_indexes = Some(forms.iter().map(|f| self.pii.blind_index(store::ID_INDEX, f)).collect());
        }
        if let Some(phone) = non_empty(&r.mobile_phone) {
            match domain::record::normalize_mobile_phone(&phone) {
                Some(p) => criteria.phone_index = Some(self.pii.blind_index(store::PHONE_INDEX, &p)),
                None => {
                    v.add("mobile_phone", "is not a mobile phone number");
                }
            }
        }
        let any = criteria.id_indexes.is_some()
            || criteria.phone_index.is_some()
            || criteria.name_prefix.is_some()
            || criteria.name_contains.is_some()
            || criteria.home_org_id.is_some()
            || criteria.rm_id.is_some();
        if !any && v.is_empty() {
            v.add(
                "criteria",
                "give at least one of id_number, mobile_phone, name_prefix, name_contains, home_org_id, rm_id",
            );
        }
        v.clone().into_result().map_err(Error::Invalid)?;
        let rows = store::search(&self.pool, &criteria, page.position(), page.size).await?;
        let next = page.next_token(&rows, |c| c.party_id);
        let customers = rows
            .into_iter()
            .map(|c| {
                let get = |k: &str| c.golden.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                pb::CustomerSummary {
                    customer_number: c.customer_number.clone(),
                    party_kind: if c.party_kind == "CORPORATE" {
                        pb::PartyKind::Corporate
                    } else {
                        pb::PartyKind::Personal
                    } as i32,
                    name: get("name"),
                    id_type: id_type_to_pb(&get("id_type")) as i32,
                    id_number: self.reveal("id_number", &get("id_number"), mask_id_number, viewer.full_pii),
                    mobile_phone: self.reveal("mobile_phone", &get("mobile_phone"), mask_phone, viewer.full_pii),
                    home_org_id: c.home_org_id.unwrap_or_default(),
                    primary_rm_id: c.primary_rm_id.unwrap_or_default(),
                }
            })
            .collect();
        Ok(Response::new(pb::SearchCustomersResponse { customers, next_page_token: next }))
    }

    async fn assign_customers(
        &self,
        request: Request<pb::AssignCustomersRequest>,
    ) -> Result<Response<pb::AssignCustomersResponse>, Status> {
        crate::limits::assign_customers(request.get_ref()).map_err(Error::Invalid)?;
        let viewer = viewer(&request)?;
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        let numbers = customer_numbers(&r.customer_numbers, &mut v);
        let related: Vec<String> = r.related_rm_ids.iter().filter_map(|s| non_empty(s)).collect();
        let change = store::AssignmentChange::Assign {
            home_org_id: non_empty(&r.home_org_id),
            primary_rm_id: non_empty(&r.primary_rm_id),
            related_rm_ids: (!related.is_empty()).then_some(related),
        };
        if let store::AssignmentChange::Assign { home_org_id: None, primary_rm_id: None, related_rm_ids: None } = change
        {
            v.add("home_org_id", "give a home org, a primary RM or related RMs to assign");
        }
        v.into_result().map_err(Error::Invalid)?;
        self.ensure_assignable(&viewer, &numbers, non_empty(&r.home_org_id).as_deref()).await?;
        let rows = store::change_assignments(&self.pool, &numbers, &change, r.reason.trim(), viewer.actor()).await?;
        let details = serde_json::json!({
            "home_org_id": r.home_org_id.trim(), "primary_rm_id": r.primary_rm_id.trim(), "reason": r.reason.trim()
        });
        let entries: Vec<_> =
            rows.iter().map(|a| viewer.audit("customer.assign", Some(&a.customer_number), details.clone())).collect();
        self.audit(&entries).await?;
        Ok(Response::new(pb::AssignCustomersResponse {
            assignments: rows.iter().map(store::assignment_to_pb).collect(),
        }))
    }

    async fn recall_customers(
        &self,
        request: Request<pb::RecallCustomersRequest>,
    ) -> Result<Response<pb::RecallCustomersResponse>, Status> {
        crate::limits::recall_customers(request.get_ref()).map_err(Error::Invalid)?;
        let viewer = viewer(&request)?;
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        let numbers = customer_numbers(&r.customer_numbers, &mut v);
        v.into_result().map_err(Error::Invalid)?;
        self.ensure_assignable(&viewer, &numbers, None).await?;
        let rows = store::change_assignments(
            &self.pool,
            &numbers,
            &store::AssignmentChange::Recall,
            r.reason.trim(),
            viewer.actor(),
        )
        .await?;
        let details = serde_json::json!({"reason": r.reason.trim()});
        let entries: Vec<_> =
            rows.iter().map(|a| viewer.audit("customer.recall", Some(&a.customer_number), details.clone())).collect();
        self.audit(&entries).await?;
        Ok(Response::new(pb::RecallCustomersResponse {
            assignments: rows.iter().map(store::assignment_to_pb).collect(),
        }))
    }

    async fn list_assignment_history(
        &self,
        request: Request<pb::ListAssignmentHistoryRequest>,
    ) -> Result<Response<pb::ListAssignmentHistoryResponse>, Status> {
        crate::limits::list_assignment_history(request.get_ref()).map_err(Error::Invalid)?;
        let viewer = viewer(&request)?;
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        let page = Page::parse("assignment-history", r.page_size, &r.page_token, &mut v);
        if r.customer_number.trim().is_empty() {
            v.add("customer_number", "is required");
        }
        v.into_result().map_err(Error::Invalid)?;
        self.visible_survivor(&viewer, r.customer_number.trim()).await?;
        let rows = store::assignment_history(&self.pool, r.customer_number.trim(), page.position(), page.size).await?;
        let next = page.next_token(&rows, |h| h.id);
        let changes = rows
            .into_iter()
            .map(|h| pb::AssignmentChange {
                action: store::assignment_action(&h.action) as i32,
                change_time: h.assignment.updated_at.map(timestamp),
                assignment: Some(store::assignment_to_pb(&h.assignment)),
                actor: h.actor.unwrap_or_default(),
                reason: h.reason.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::ListAssignmentHistoryResponse { changes, next_page_token: next }))
    }

    async fn upsert_source_record(
        &self,
        request: Request<pb::UpsertSourceRecordRequest>,
    ) -> Result<Response<pb::UpsertSourceRecordResponse>, Status> {
        let viewer = viewer(&request)?;
        let validated = validate_record(request.into_inner().record, today()).map_err(Error::Invalid)?;
        // The audit entry commits with the change (customer number and outcome are
        // filled in by the writer once known).
        let audit = upsert_audit(&viewer, &validated);
        let result =
            self.upserts.upsert(store::PreparedRecord::new(&self.pii, validated), viewer.actor(), Some(audit)).await?;
        tracing::info!(customer_number = %result.customer_number, outcome = ?result.outcome, "source record upserted");
        Ok(Response::new(upsert_response(result)))
    }

    async fn import_source_records(
        &self,
        request: Request<Streaming<pb::ImportSourceRecordsRequest>>,
    ) -> Result<Response<pb::ImportSourceRecordsResponse>, Status> {
        let viewer = viewer(&request)?;
        let mut stream = request.into_inner();
        let today = today();
        let mut response = pb::ImportSourceRecordsResponse::default();
        let mut index = 0i64;
        // Records are applied in batches, one transaction each; outcomes keep stream order.
        // The records waiting for the next batch, and their positions and keys.
        let mut pending: Vec<store::PreparedRecord> = Vec::new();
        let mut keys: Vec<(i64, Option<pb::SourceKey>)> = Vec::new();
        let mut outcomes: Vec<Option<pb::ImportOutcome>> = Vec::new();
        let mut ended = false;
        while !ended {
            match stream.next().await {
                Some(message) => {
                    let message = message?;
                    crate::limits::import_record(index).map_err(Error::Invalid)?;
                    let key = crate::limits::echoed_key(&message);
                    match validate_record(message.record, today) {
                        Err(violations) => {
                            response.rejected_count += 1;
                            outcomes.push(Some(pb::ImportOutcome {
                                index,
                                key,
                                outcome: pb::UpsertOutcome::Rejected as i32,
                                violations: violations
                                    .iter()
                                    .map(|(field, description)| common::FieldViolation {
                                        field: field.into(),
                                        description: description.into(),
                                    })
                                    .collect(),
                                ..Default::default()
                            }));
                        }
                        Ok(validated) => {
                            outcomes.push(None);
                            pending.push(store::PreparedRecord::new(&self.pii, validated));
                            keys.push((index, key));
                        }
                    }
                    index += 1;
                }
                None => ended = true,
            }
            if pending.len() >= IMPORT_BATCH || (ended && !pending.is_empty()) {
                let records = std::mem::take(&mut pending);
                let audits: Vec<_> = records.iter().map(|r| Some(upsert_audit(&viewer, &r.validated))).collect();
                let results =
                    store::upsert_batch(&self.pool, &self.trust, &self.pii, &records, viewer.actor(), &audits).await?;
                for ((i, key), r) in keys.drain(..).zip(results) {
                    response.accepted_count += 1;
                    outcomes[i as usize] = Some(pb::ImportOutcome {
                        index: i,
                        key,
                        outcome: r.outcome as i32,
                        customer_number: r.customer_number,
                        quality_flags: r.quality_flags,
                        violations: vec![],
                    });
                }
            }
        }
        response.outcomes = outcomes.into_iter().flatten().collect();
        tracing::info!(accepted = response.accepted_count, rejected = response.rejected_count, "import finished");
        Ok(Response::new(response))
    }

    async fn get_customer(
        &self,
        request: Request<pb::GetCustomerRequest>,
    ) -> Result<Response<pb::GetCustomerResponse>, Status> {
        crate::limits::get_customer(request.get_ref()).map_err(Error::Invalid)?;
        let viewer = viewer(&request)?;
        let customer = match request.into_inner().lookup {
            Some(pb::get_customer_request::Lookup::CustomerNumber(n)) if !n.trim().is_empty() => {
                store::customer_by_number(&self.pool, n.trim()).await?
            }
            Some(pb::get_customer_request::Lookup::SourceKey(k))
                if !k.source_system.trim().is_empty() && !k.source_customer_id.trim().is_empty() =>
            {
                store::customer_by_source(&self.pool, k.source_system.trim(), k.source_customer_id.trim()).await?
            }
            _ => {
                let mut v = FieldViolations::new();
                v.add("lookup", "give a customer_number or a complete source_key");
                return Err(Error::Invalid(v).into());
            }
        };
        self.ensure_visible(&viewer, &customer.customer_number).await?;
        Ok(Response::new(pb::GetCustomerResponse { customer: Some(customer_to_pb(self, customer, viewer.full_pii)) }))
    }

    async fn list_suspect_pairs(
        &self,
        request: Request<pb::ListSuspectPairsRequest>,
    ) -> Result<Response<pb::ListSuspectPairsResponse>, Status> {
        crate::limits::list_suspect_pairs(request.get_ref()).map_err(Error::Invalid)?;
        let viewer = viewer(&request)?;
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        let page = Page::parse("suspect-pairs", r.page_size, &r.page_token, &mut v);
        v.into_result().map_err(Error::Invalid)?;
        let rows = store::open_suspects(&self.pool, page.position(), page.size, &viewer.visibility).await?;
        let next = page.next_token(&rows, |s| s.id);
        let suspect_pairs = rows
            .into_iter()
            .map(|s| pb::SuspectPair {
                suspect_pair_id: s.id.to_string(),
                customer_number_a: s.customer_a,
                customer_number_b: s.customer_b,
                id_type: id_type_to_pb(&s.id_type) as i32,
                id_number: self.reveal("id_number", &s.id_number, mask_id_number, viewer.full_pii),
                name_a: s.name_a,
                name_b: s.name_b,
                create_time: Some(timestamp(s.created_at)),
            })
            .collect();
        Ok(Response::new(pb::ListSuspectPairsResponse { suspect_pairs, next_page_token: next }))
    }

    async fn resolve_suspect_pair(
        &self,
        request: Request<pb::ResolveSuspectPairRequest>,
    ) -> Result<Response<pb::ResolveSuspectPairResponse>, Status> {
        crate::limits::resolve_suspect_pair(request.get_ref()).map_err(Error::Invalid)?;
        let viewer = viewer(&request)?;
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        let id = r.suspect_pair_id.parse::<i64>().ok();
        if id.is_none() {
            v.add("suspect_pair_id", "is not a suspect pair id");
        }
        let same = match pb::SuspectResolution::try_from(r.resolution) {
            Ok(pb::SuspectResolution::SameParty) => Some(true),
            Ok(pb::SuspectResolution::DifferentParties) => Some(false),
            _ => {
                v.add("resolution", "must be SAME_PARTY or DIFFERENT_PARTIES");
                None
            }
        };
        let (Some(id), Some(same)) = (id, same) else {
            return Err(Error::Invalid(v).into());
        };
        let number = store::resolve_suspect(&self.pool, &self.trust, id, same, viewer.actor()).await?;
        self.audit(&[viewer.audit(
            "customer.resolve_suspect",
            Some(&number),
            serde_json::json!({"suspect_pair_id": id, "same_party": same}),
        )])
        .await?;
        Ok(Response::new(pb::ResolveSuspectPairResponse { customer_number: number }))
    }

    async fn put_party_detail(
        &self,
        request: Request<pb::PutPartyDetailRequest>,
    ) -> Result<Response<pb::PutPartyDetailResponse>, Status> {
        crate::limits::put_party_detail(request.get_ref()).map_err(Error::Invalid)?;
        let viewer = viewer(&request)?;
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        if !domain::is_valid_customer_number(r.customer_number.trim()) {
            v.add("customer_number", "is not a valid customer number");
        }
        let Some(detail) = r.detail else {
            v.add("detail", "is required");
            return Err(Error::Invalid(v).into());
        };
        v.extend(domain::details::validate(&detail, today()));
        v.into_result().map_err(Error::Invalid)?;
        let customer = self.visible_survivor(&viewer, r.customer_number.trim()).await?;
        let Some(kind) = detail.detail.as_ref() else {
            return Err(Error::Corrupt("validated detail without kind".into()).into());
        };
        let party_kind = if customer.party_kind == "CORPORATE" { PartyKind::Corporate } else { PartyKind::Personal };
        if !domain::details::fits_party_kind(kind, party_kind) {
            let mut v = FieldViolations::new();
            v.add(
                "detail",
                format!(
                    "a {} detail does not fit a {} customer",
                    domain::details::kind_code(kind),
                    customer.party_kind
                ),
            );
            return Err(Error::Invalid(v).into());
        }
        let kind_code = domain::details::kind_code(kind);
        let sealed = details::seal(&self.pii, detail);
        let changed = store::put_detail(
            &self.pool,
            &customer.customer_number,
            &sealed.detail_id,
            kind_code,
            &prost::Message::encode_to_vec(&sealed),
            viewer.actor(),
        )
        .await?;
        if changed {
            self.audit(&[viewer.audit(
                "customer.put_detail",
                Some(&customer.customer_number),
                serde_json::json!({"detail_id": sealed.detail_id, "kind": kind_code}),
            )])
            .await?;
        }
        Ok(Response::new(pb::PutPartyDetailResponse {
            customer_number: customer.customer_number,
            detail: Some(details::reveal(&self.pii, sealed, viewer.full_pii)),
            changed,
        }))
    }

    async fn remove_party_detail(
        &self,
        request: Request<pb::RemovePartyDetailRequest>,
    ) -> Result<Response<pb::RemovePartyDetailResponse>, Status> {
        crate::limits::remove_party_detail(request.get_ref()).map_err(Error::Invalid)?;
        let viewer = viewer(&request)?;
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        if !domain::is_valid_customer_number(r.customer_number.trim()) {
            v.add("customer_number", "is not a valid customer number");
        }
        if r.detail_id.trim().is_empty() {
            v.add("detail_id", "is required");
        }
        v.into_result().map_err(Error::Invalid)?;
        let customer = self.visible_survivor(&viewer, r.customer_number.trim()).await?;
        let removed =
            store::remove_detail(&self.pool, &customer.customer_number, r.detail_id.trim(), viewer.actor()).await?;
        if removed {
            self.audit(&[viewer.audit(
                "customer.remove_detail",
                Some(&customer.customer_number),
                serde_json::json!({"detail_id": r.detail_id.trim()}),
            )])
            .await?;
        }
        Ok(Response::new(pb::RemovePartyDetailResponse { removed }))
    }

    async fn set_extended_attributes(
        &self,
        request: Request<pb::SetExtendedAttributesRequest>,
    ) -> Result<Response<pb::SetExtendedAttributesResponse>, Status> {
        crate::limits::set_extended_attributes(request.get_ref()).map_err(Error::Invalid)?;
        let viewer = viewer(&request)?;
        let r = request.into_inner();
        let mut v = domain::details::validate_extended(&r.set, &r.remove);
        if !domain::is_valid_customer_number(r.customer_number.trim()) {
            v.add("customer_number", "is not a valid customer number");
        }
        v.into_result().map_err(Error::Invalid)?;
        let customer = self.visible_survivor(&viewer, r.customer_number.trim()).await?;
        let attributes =
            store::set_extended(&self.pool, &customer.customer_number, &r.set, &r.remove, viewer.actor()).await?;
        let keys: Vec<&String> = r.set.keys().chain(r.remove.iter()).collect();
        self.audit(&[viewer.audit(
            "customer.set_extended_attributes",
            Some(&customer.customer_number),
            serde_json::json!({"keys": keys}),
        )])
        .await?;
        Ok(Response::new(pb::SetExtendedAttributesResponse { attributes: attributes.into_iter().collect() }))
    }

    async fn list_access_audit(
        &self,
        request: Request<pb::ListAccessAuditRequest>,
    ) -> Result<Response<pb::ListAccessAuditResponse>, Status> {
        crate::limits::list_access_audit(request.get_ref()).map_err(Error::Invalid)?;
        let r = request.into_inner();
        let mut v = FieldViolations::new();
        let page = Page::parse("access-audit", r.page_size, &r.page_token, &mut v);
        v.into_result().map_err(Error::Invalid)?;
        let rows = store::audit_trail(
            &self.pool,
            non_empty(&r.customer_number).as_deref(),
            non_empty(&r.actor).as_deref(),
            page.position(),
            page.size,
        )
        .await?;
        let next = page.next_token(&rows, |a| a.audit_id);
        let entries = rows
            .into_iter()
            .map(|a| pb::AccessAuditEntry {
                occurred_at: Some(timestamp(a.occurred_at)),
                actor: a.entry.actor,
                actor_name: a.entry.actor_name,
                action: a.entry.action,
                customer_number: a.entry.customer_number.unwrap_or_default(),
                source_address: a.entry.source_address.unwrap_or_default(),
                trace_id: a.entry.trace_id.unwrap_or_default(),
                details: a.entry.details.to_string(),
            })
            .collect();
        Ok(Response::new(pb::ListAccessAuditResponse { entries, next_page_token: next }))
    }
}

/// The audit entry of an accepted source record; the writer fills in the customer
/// number and the outcome, and stores it in the record's transaction.
fn upsert_audit(viewer: &Viewer, record: &ValidatedRecord) -> store::AuditEntry {
    viewer.audit(
        "customer.upsert_source_record",
        None,
        serde_json::json!({
            "source_system": record.record.source_system,
            "source_customer_id": record.record.source_customer_id,
        }),
    )
}

impl CustomerApi {
    /// Assignment changes stay inside the caller's data scope: every customer must be
    /// visible, and a new home org must lie inside the caller's org subtree (or be the
    /// caller's org for an org scope). An own-scope caller cannot move home orgs.
    async fn ensure_assignable(
        &self,
        viewer: &Viewer,
        numbers: &[String],
        home_org: Option<&str>,
    ) -> Result<(), Error> {
        for number in numbers {
            self.visible_survivor(viewer, number).await?;
        }
        let Some(org) = home_org else { return Ok(()) };
        let allowed = match &viewer.visibility {
            store::Visibility::All => true,
            store::Visibility::Subtree(path) => store::org_within(&self.pool, org, path).await?,
            store::Visibility::Org(own) => own == org,
            store::Visibility::Own(_) => false,
        };
        if allowed { Ok(()) } else { Err(Error::OutOfScope(format!("org {org}"))) }
    }
}

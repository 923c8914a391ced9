//! All SQL of customer-profile. Every change runs in one transaction together with
//! its outbox events (and audit entries), so that concurrent changes of one real
//! customer are applied one at a time:
//! - source records arrive through the set-based path ([`bulk`]), as bulk batches or
//!   as groups of concurrent single upserts ([`UpsertQueue`]), which hold the ECIF
//!   advisory lock exclusively, as do the one-by-one path ([`upsert_in`], for records
//!   whose identity changed) and steward decisions;
//! - large batches of simple records run as partitions by identity side by side, each
//!   holding the ECIF lock shared and its partition's lock exclusively.

use std::collections::{BTreeMap, BTreeSet};

use crm_platform::messaging::outbox;
use crm_platform::sqlstate::DbFailure;
use crm_proto::crm::customer::v1 as pb;
use serde_json::{Map, Value, json};
use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;

use crate::domain::{Attribute, Candidate, IdentityKey, TrustTable, ValidatedRecord, choose, customer_number};
use crate::error::{Error, Result};
use crate::pii::PiiCipher;

mod access;
pub mod bulk;
mod details;
mod queue;
pub use access::*;
pub use bulk::{PreparedRecord, upsert_prepared_in};
pub use details::*;
pub use queue::{AuditQueue, UpsertQueue};

/// Source of this service's events.
pub const EVENT_SOURCE: &str = "crm/customer-profile";

/// What an upsert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertResult {
    /// The record's customer after the upsert.
    pub customer_number: String,
    /// Created, updated or unchanged.
    pub outcome: pb::UpsertOutcome,
    /// Flags of the accepted record.
    pub quality_flags: Vec<String>,
    /// Customers absorbed into `customer_number`.
    pub absorbed: Vec<String>,
}

/// A golden record with its sources, as stored.
#[derive(Debug, Clone)]
pub struct StoredCustomer {
    /// Internal key of the (surviving) party.
    pub party_id: i64,
    /// Bank customer number.
    pub customer_number: String,
    /// `PERSONAL` / `CORPORATE`.
    pub party_kind: String,
    /// Golden attribute values by attribute code (plus `id_type`).
    pub golden: Map<String, Value>,
    /// Lineage by attribute code.
    pub lineage: Map<String, Value>,
    /// Union of the source records' flags.
    pub quality_flags: Vec<String>,
    /// Source keys (system, id).
    pub sources: Vec<(String, String)>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
}

/// An open suspect pair with both sides resolved to their current customers.
#[derive(Debug, Clone)]
pub struct StoredSuspect {
    /// Pair id.
    pub id: i64,
    /// Side A's customer.
    pub customer_a: String,
    /// Side B's customer.
    pub customer_b: String,
    /// ID type code.
    pub id_type: String,
    /// The shared ID number, as stored (encrypted) in side A's golden record.
    pub id_number: String,
    /// Side A's golden name.
    pub name_a: String,
    /// Side B's golden name.
    pub name_b: String,
    /// When found.
    pub created_at: OffsetDateTime,
}

/// Blind index domain of ID numbers (matching form).
pub const ID_INDEX: &str = "id";
/// Blind index domain of mobile phones (normalised form).
pub const PHONE_INDEX: &str = "phone";

/// The form an ID number is searched by: its matching form, or for type "other"
/// (which has none, as it is never merged) its normalised form.
pub fn search_form(id_type: crate::domain::IdType, raw: &str) -> String {
    crate::domain::match_key(id_type, raw).unwrap_or_else(|| crate::domain::normalize_id_number(raw))
}

/// How a record is identified in the database: the blind index of its ID number and
/// the identity digest built on it, so that no table holds an ID number in clear.
fn stored_identity(pii: &PiiCipher, key: &IdentityKey) -> (String, String) {
    let blind = pii.blind_index(ID_INDEX, &key.match_key);
    let digest = format!("{}|{}|{}", key.id_type.code(), blind, key.name_key);
    (blind, digest)
}

fn attributes_json(pii: &PiiCipher, v: &ValidatedRecord) -> Value {
    let r = &v.record;
    let mut m = Map::new();
    m.insert("party_kind".into(), json!(party_kind_code(r.party_kind)));
    m.insert("id_type".into(), json!(r.id_type.code()));
    m.insert(Attribute::IdNumber.code().into(), json!(pii.encrypt(Attribute::IdNumber.code(), &r.id_number)));
    m.insert(Attribute::Name.code().into(), json!(r.name));
    let opt = |m: &mut Map<String, Value>, a: Attribute, v: Option<String>| {
        if let Some(v) = v {
            m.insert(a.code().into(), json!(v));
        }
    };
    opt(&mut m, Attribute::Gender, r.gender.map(|g| g.code().to_string()));
    opt(&mut m, Attribute::BirthDate, r.birth_date.map(|d| d.to_iso()));
    opt(&mut m, Attribute::Nationality, r.nationality.clone());
    opt(&mut m, Attribute::MobilePhone, r.mobile_phone.as_ref().map(|p| pii.encrypt(Attribute::MobilePhone.code(), p)));
    opt(&mut m, Attribute::Email, r.email.clone());
    opt(&mut m, Attribute::Address, r.address.clone());
    opt(&mut m, Attribute::Occupation, r.occupation.clone());
    Value::Object(m)
}

/// `PERSONAL` or `CORPORATE`.
pub fn party_kind_code(kind: crate::domain::PartyKind) -> &'static str {
    match kind {
        crate::domain::PartyKind::Personal => "PERSONAL",
        crate::domain::PartyKind::Corporate => "CORPORATE",
    }
}

fn lock_key(id_type: &str, match_key: &str) -> String {
    format!("identity|{id_type}|{match_key}")
}

async fn advisory_lock(tx: &mut PgConnection, key: &str) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(key).execute(tx).await?;
    Ok(())
}

struct ExistingRecord {
    source_version: i64,
    party_id: i64,
    identity_digest: Option<String>,
    id_type: String,
    match_key: Option<String>,
}

async fn new_party(tx: &mut PgConnection, kind: &str) -> Result<(i64, String)> {
    let seq: i64 = sqlx::query_scalar("SELECT nextval('customer_number_seq')").fetch_one(&mut *tx).await?;
    let domain_kind =
        if kind == "CORPORATE" { crate::domain::PartyKind::Corporate } else { crate::domain::PartyKind::Personal };
    let number = customer_number(domain_kind, seq as u64)
        .ok_or_else(|| Error::Corrupt("customer number sequence exhausted".into()))?;
    let id: i64 =
        sqlx::query_scalar("INSERT INTO party (customer_number, party_kind) VALUES ($1, $2) RETURNING party_id")
            .bind(&number)
            .bind(kind)
            .fetch_one(&mut *tx)
            .await?;
    Ok((id, number))
}

async fn customer_number_of(tx: &mut PgConnection, party_id: i64) -> Result<String> {
    Ok(sqlx::query_scalar("SELECT customer_number FROM party WHERE party_id = $1").bind(party_id).fetch_one(tx).await?)
}

async fn record_count(tx: &mut PgConnection, party_id: i64) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM source_record WHERE party_id = $1")
        .bind(party_id)
        .fetch_one(tx)
        .await?)
}

async fn history(
    tx: &mut PgConnection,
    party_id: i64,
    kind: &str,
    source: Option<(&str, &str)>,
    before: Option<&Value>,
    after: Option<&Value>,
    actor: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO party_history (party_id, actor, change_kind, source_system, source_customer_id, before, after)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(party_id)
    .bind(actor)
    .bind(kind)
    .bind(source.map(|s| s.0))
    .bind(source.map(|s| s.1))
    .bind(before)
    .bind(after)
    .execute(tx)
    .await?;
    Ok(())
}

/// The golden record of a party's source records.
pub(crate) struct Survived {
    /// Golden values by attribute code (plus `id_type`).
    pub golden: Map<String, Value>,
    /// Where each golden value came from.
    pub lineage: Map<String, Value>,
    /// Union of the records' quality flags, sorted.
    pub flags: Vec<String>,
}

/// Survivorship over `records` (system, id, attributes, flags, updated at µs): pure, so
/// that one-by-one upserts and bulk runs choose alike.
pub(crate) fn survive<'a>(
    trust: &TrustTable,
    records: impl Iterator<Item = (&'a str, &'a str, &'a Value, &'a [String], i64)>,
) -> Survived {
    let records: Vec<_> = records.collect();
    let flags: BTreeSet<&String> = records.iter().flat_map(|r| r.3.iter()).collect();
    let mut golden = Map::new();
    let mut lineage = Map::new();
    for attribute in Attribute::ALL {
        let candidates: Vec<Candidate<'_>> = records
            .iter()
            .map(|(sys, id, attrs, _, updated)| Candidate {
                value: attrs.get(attribute.code()).and_then(Value::as_str),
                source_system: sys,
                source_customer_id: id,
                updated_at: *updated,
            })
            .collect();
        if let Some(w) = choose(trust, attribute, &candidates) {
            if attribute == Attribute::IdNumber {
                // The ID type travels with the ID number that won.
                if let Some((_, _, attrs, _, _)) =
                    records.iter().find(|(s, i, _, _, _)| *s == w.source_system && *i == w.source_customer_id)
                    && let Some(t) = attrs.get("id_type")
                {
                    golden.insert("id_type".into(), t.clone());
                }
            }
            golden.insert(attribute.code().into(), json!(w.value));
            lineage.insert(
                attribute.code().into(),
                json!({
                    "source_system": w.source_system,
                    "source_customer_id": w.source_customer_id,
                    "trust": w.trust,
                    "updated_at": w.updated_at,
                }),
            );
        }
    }
    Survived { golden, lineage, flags: flags.into_iter().cloned().collect() }
}

/// The golden attributes (and `id_type`) whose value differs between two golden records.
pub(crate) fn changed_attributes(before: &Value, after: &Map<String, Value>) -> Vec<String> {
    Attribute::ALL
        .iter()
        .map(|a| a.code())
        .chain(std::iter::once("id_type"))
        .filter(|code| before.get(*code) != after.get(*code))
        .map(str::to_string)
        .collect()
}

/// Re-runs survivorship over every source record of a party and stores the golden
/// record. Returns the attributes whose golden value changed.
async fn recompute(tx: &mut PgConnection, trust: &TrustTable, party_id: i64) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT source_system, source_customer_id, attributes, quality_flags, updated_at
         FROM source_record WHERE party_id = $1",
    )
    .bind(party_id)
    .fetch_all(&mut *tx)
    .await?;
    let before: Value = sqlx::query_scalar("SELECT golden FROM party WHERE party_id = $1 FOR UPDATE")
        .bind(party_id)
        .fetch_one(&mut *tx)
        .await?;
    let records: Vec<(String, String, Value, Vec<String>, i64)> = rows
        .iter()
        .map(|r| {
            let updated: OffsetDateTime = r.try_get("updated_at")?;
            Ok((
                r.try_get::<String, _>("source_system")?,
                r.try_get::<String, _>("source_customer_id")?,
                r.try_get::<Value, _>("attributes")?,
                r.try_get::<Vec<String>, _>("quality_flags")?,
                (updated.unix_timestamp_nanos() / 1000) as i64,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    let survived = survive(trust, records.iter().map(|(s, i, a, f, u)| (s.as_str(), i.as_str(), a, f.as_slice(), *u)));
    let changed = changed_attributes(&before, &survived.golden);
    sqlx::query(
        "UPDATE party SET golden = $2, lineage = $3, quality_flags = $4, updated_at = now() WHERE party_id = $1",
    )
    .bind(party_id)
    .bind(Value::Object(survived.golden))
    .bind(Value::Object(survived.lineage))
    .bind(survived.flags)
    .execute(&mut *tx)
    .await?;
    Ok(changed)
}

/// Absorbs party `from` into `into`: its records and identity groups move, it is
/// marked MERGED and remembers its survivor.
async fn absorb(tx: &mut PgConnection, from: i64, into: i64, actor: Option<&str>) -> Result<()> {
    // The survivor keeps its own assignment; it inherits the absorbed one's if it had none.
    sqlx::query(
        "INSERT INTO party_assignment (party_id, home_org_id, primary_rm_id, related_rm_ids)
         SELECT $2, home_org_id, primary_rm_id, related_rm_ids FROM party_assignment WHERE party_id = $1
         ON CONFLICT (party_id) DO NOTHING",
    )
    .bind(from)
    .bind(into)
    .execute(&mut *tx)
    .await?;
    // Relationships follow the survivor; one that would now point at itself is dropped.
    sqlx::query(
        "INSERT INTO party_relationship (party_id, kind, related_party_id, role, actor, created_at)
         SELECT CASE WHEN party_id = $1 THEN $2 ELSE party_id END, kind,
                CASE WHEN related_party_id = $1 THEN $2 ELSE related_party_id END, role, actor, created_at
         FROM party_relationship
         WHERE (party_id = $1 OR related_party_id = $1)
           AND (CASE WHEN party_id = $1 THEN $2 ELSE party_id END)
               <> (CASE WHEN related_party_id = $1 THEN $2 ELSE related_party_id END)
         ON CONFLICT DO NOTHING",
    )
    .bind(from)
    .bind(into)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM party_relationship WHERE party_id = $1 OR related_party_id = $1")
        .bind(from)
        .execute(&mut *tx)
        .await?;
    details::absorb_details(tx, from, into).await?;
    sqlx::query("UPDATE source_record SET party_id = $2 WHERE party_id = $1")
        .bind(from)
        .bind(into)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE identity_group SET party_id = $2 WHERE party_id = $1")
        .bind(from)
        .bind(into)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE party SET merged_into = $2 WHERE merged_into = $1")
        .bind(from)
        .bind(into)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE party SET status = 'MERGED', merged_into = $2, updated_at = now() WHERE party_id = $1")
        .bind(from)
        .bind(into)
        .execute(&mut *tx)
        .await?;
    history(tx, from, "ABSORBED", None, None, Some(&json!({ "merged_into": into })), actor).await?;
    history(tx, into, "MERGED", None, None, Some(&json!({ "absorbed": from })), actor).await
}

fn source_key(v: &ValidatedRecord) -> pb::SourceKey {
    pb::SourceKey {
        source_system: v.record.source_system.clone(),
        source_customer_id: v.record.source_customer_id.clone(),
    }
}

/// Upserts many records through the set-based path ([`bulk`]) with the audit entries
/// (one per record, or none) of the records that changed something. A batch of simple
/// records big enough to be worth it is applied as [`bulk::PARTITIONS`] transactions
/// side by side (each commits on its own: a replayed batch finds the committed part
/// unchanged); any other batch, and whatever a partition hands back, in one transaction
/// holding the ECIF lock. Deadlocks and serialization failures are retried.
pub async fn upsert_batch(
    pool: &PgPool,
    trust: &TrustTable,
    pii: &PiiCipher,
    records: &[PreparedRecord],
    actor: Option<&str>,
    audits: &[Option<AuditEntry>],
) -> Result<Vec<UpsertResult>> {
    let one_transaction = |records: &[PreparedRecord], audits: &[Option<AuditEntry>]| {
        let actors = vec![actor; records.len()];
        let (records, audits) = (records.to_vec(), audits.to_vec());
        async move { queue::apply_together(pool, trust, pii, &records, &actors, &audits).await }
    };
    if records.len() < PARTITION_FROM {
        return one_transaction(records, audits).await;
    }
    let Some((mut applied, handed_back)) = bulk::upsert_partitioned(pool, trust, records, actor, audits).await? else {
        return one_transaction(records, audits).await;
    };
    if !handed_back.is_empty() {
        let rest: Vec<PreparedRecord> = handed_back.iter().map(|i| records[*i].clone()).collect();
        let rest_audits: Vec<Option<AuditEntry>> =
            handed_back.iter().map(|i| audits.get(*i).cloned().flatten()).collect();
        applied.extend(handed_back.into_iter().zip(one_transaction(&rest, &rest_audits).await?));
    }
    applied.sort_by_key(|(i, _)| *i);
    Ok(applied.into_iter().map(|(_, r)| r).collect())
}

/// Batches smaller than this go in one transaction: splitting them saves less than
/// the extra transaction costs.
const PARTITION_FROM: usize = 200;

/// A deadlock or serialization failure: the transaction may succeed when run again.
pub(crate) fn retryable(e: &Error) -> bool {
    matches!(e, Error::Database(d) if matches!(DbFailure::of(d), DbFailure::DeadlockDetected | DbFailure::SerializationFailure))
}

/// Creates or updates one source record inside the caller's transaction: identifies
/// its party (merging or splitting parties when its identity changed), re-runs
/// survivorship and writes the resulting history and events. The set-based path
/// hands it the records whose identity changed.
pub async fn upsert_in(
    tx: &mut PgConnection,
    trust: &TrustTable,
    pii: &PiiCipher,
    v: &ValidatedRecord,
    actor: Option<&str>,
) -> Result<UpsertResult> {
    let r = &v.record;
    let flags: Vec<String> = v.flags.iter().map(|f| f.code().to_string()).collect();
    // The ECIF lock first, exclusively (see [`bulk`]); inside a bulk transaction that
    // holds it already this is granted at once.
    sqlx::query("SELECT pg_advisory_xact_lock($1), pg_advisory_xact_lock(hashtextextended($2, 0))")
        .bind(bulk::ECIF_LOCK)
        .bind(format!("source|{}|{}", r.source_system, r.source_customer_id))
        .execute(&mut *tx)
        .await?;
    let existing = sqlx::query(
        "SELECT source_version, party_id, identity_digest, id_type, match_key
         FROM source_record WHERE source_system = $1 AND source_customer_id = $2",
    )
    .bind(&r.source_system)
    .bind(&r.source_customer_id)
    .fetch_optional(&mut *tx)
    .await?
    .map(|row| {
        Ok::<_, sqlx::Error>(ExistingRecord {
            source_version: row.try_get("source_version")?,
            party_id: row.try_get("party_id")?,
            identity_digest: row.try_get("identity_digest")?,
            id_type: row.try_get("id_type")?,
            match_key: row.try_get("match_key")?,
        })
    })
    .transpose()?;

    if let Some(e) = &existing
        && e.source_version >= r.source_version
    {
        // A replay or an out-of-order older update: nothing changes.
        return Ok(UpsertResult {
            customer_number: customer_number_of(tx, e.party_id).await?,
            outcome: pb::UpsertOutcome::Unchanged,
            quality_flags: flags,
            absorbed: vec![],
        });
    }

    let key = IdentityKey::of(v);
    let (blind, digest) = match key.as_ref().map(|k| stored_identity(pii, k)) {
        Some((blind, digest)) => (Some(blind), Some(digest)),
        None => (None, None),
    };
    let id_type = r.id_type.code();
    // Lock every identity this change touches, in a fixed order.
    let mut locks = BTreeSet::new();
    if let Some(b) = &blind {
        locks.insert(lock_key(id_type, b));
    }
    if let Some(e) = &existing
        && let Some(mk) = &e.match_key
    {
        locks.insert(lock_key(&e.id_type, mk));
    }
    for l in &locks {
        advisory_lock(tx, l).await?;
    }

    let kind = party_kind_code(r.party_kind);
    let old_party = existing.as_ref().map(|e| e.party_id);
    let old_party_alone = match old_party {
        Some(p) => record_count(tx, p).await? == 1,
        None => false,
    };
    let same_identity = existing.as_ref().is_some_and(|e| e.identity_digest == digest && digest.is_some());

    // Which party does the record belong to now?
    let group_party: Option<i64> = match &digest {
        Some(d) => {
            sqlx::query_scalar("SELECT party_id FROM identity_group WHERE identity_digest = $1")
                .bind(d)
                .fetch_optional(&mut *tx)
                .await?
        }
        None => None,
    };
    let mut created = false;
    let target = match (group_party, old_party) {
        (Some(g), _) => g,
        // Still the same identity, or alone in its party: the party stays.
        (None, Some(p)) if same_identity || old_party_alone => p,
        _ => {
            created = true;
            new_party(tx, kind).await?.0
        }
    };
    if let (Some(d), Some(k), Some(b), None) = (&digest, &key, &blind, group_party) {
        sqlx::query(
            "INSERT INTO identity_group (identity_digest, id_type, match_key, name_key, party_id) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(d)
        .bind(id_type)
        .bind(b)
        .bind(&k.name_key)
        .bind(target)
        .execute(&mut *tx)
        .await?;
    }

    let attributes = attributes_json(pii, v);
    let phone_index = r.mobile_phone.as_ref().map(|p| pii.blind_index(PHONE_INDEX, p));
    let id_index = pii.blind_index(ID_INDEX, &search_form(r.id_type, &r.id_number));
    sqlx::query(
        "INSERT INTO source_record (source_system, source_customer_id, source_version, party_id, identity_digest,
                                    id_type, match_key, attributes, quality_flags, phone_index, id_index)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (source_system, source_customer_id) DO UPDATE SET
             source_version = EXCLUDED.source_version, party_id = EXCLUDED.party_id,
             identity_digest = EXCLUDED.identity_digest, id_type = EXCLUDED.id_type,
             match_key = EXCLUDED.match_key, attributes = EXCLUDED.attributes,
             quality_flags = EXCLUDED.quality_flags, phone_index = EXCLUDED.phone_index,
             id_index = EXCLUDED.id_index, updated_at = now()",
    )
    .bind(&r.source_system)
    .bind(&r.source_customer_id)
    .bind(r.source_version)
    .bind(target)
    .bind(&digest)
    .bind(id_type)
    .bind(&blind)
    .bind(&attributes)
    .bind(&flags)
    .bind(&phone_index)
    .bind(&id_index)
    .execute(&mut *tx)
    .await?;

    // An identity group left without records is forgotten, so that a later record
    // with that identity starts afresh rather than joining a party it no longer
    // describes.
    if let Some(e) = &existing
        && let Some(old_digest) = &e.identity_digest
        && Some(old_digest) != digest.as_ref()
    {
        sqlx::query(
            "DELETE FROM identity_group g WHERE identity_digest = $1
               AND NOT EXISTS (SELECT 1 FROM source_record s WHERE s.identity_digest = g.identity_digest)",
        )
        .bind(old_digest)
        .execute(&mut *tx)
        .await?;
    }

    let source = source_key(v);
    let target_number = customer_number_of(tx, target).await?;
    let mut absorbed = Vec::new();
    if let Some(p) = old_party
        && p != target
    {
        let old_number = customer_number_of(tx, p).await?;
        if record_count(tx, p).await? == 0 {
            // Its only record now matches another customer: the two are one.
            absorb(tx, p, target, actor).await?;
            outbox::enqueue(
                tx,
                EVENT_SOURCE,
                &target_number,
                &pb::CustomerMerged {
                    surviving_customer_number: target_number.clone(),
                    absorbed_customer_numbers: vec![old_number.clone()],
                    reason: "IDENTIFICATION".into(),
                },
                actor,
            )
            .await?;
            absorbed.push(old_number);
        } else {
            // The record no longer matches the rest of its customer: split it off.
            history(
                tx,
                p,
                "UNMERGED",
                Some((&r.source_system, &r.source_customer_id)),
                None,
                Some(&json!({ "moved_to": target_number })),
                actor,
            )
            .await?;
            outbox::enqueue(
                tx,
                EVENT_SOURCE,
                &old_number,
                &pb::CustomerUnmerged {
                    customer_number: old_number.clone(),
                    new_customer_number: target_number.clone(),
                    source: Some(source.clone()),
                },
                actor,
            )
            .await?;
            let changed = recompute(tx, trust, p).await?;
            if !changed.is_empty() {
                outbox::enqueue(
                    tx,
                    EVENT_SOURCE,
                    &old_number,
                    &pb::CustomerUpdated {
                        customer_number: old_number.clone(),
                        changed_attributes: changed,
                        source: Some(source.clone()),
                    },
                    actor,
                )
                .await?;
            }
        }
    }

    let before: Value =
        sqlx::query_scalar("SELECT golden FROM party WHERE party_id = $1").bind(target).fetch_one(&mut *tx).await?;
    let changed = recompute(tx, trust, target).await?;
    let after: Value =
        sqlx::query_scalar("SELECT golden FROM party WHERE party_id = $1").bind(target).fetch_one(&mut *tx).await?;
    let src = Some((r.source_system.as_str(), r.source_customer_id.as_str()));
    if created {
        history(tx, target, "CREATED", src, None, Some(&after), actor).await?;
        outbox::enqueue(
            tx,
            EVENT_SOURCE,
            &target_number,
            &pb::CustomerCreated {
                customer_number: target_number.clone(),
                party_kind: if kind == "CORPORATE" { pb::PartyKind::Corporate } else { pb::PartyKind::Personal } as i32,
                source: Some(source.clone()),
            },
            actor,
        )
        .await?;
    } else if !changed.is_empty() {
        history(tx, target, "UPDATED", src, Some(&before), Some(&after), actor).await?;
        outbox::enqueue(
            tx,
            EVENT_SOURCE,
            &target_number,
            &pb::CustomerUpdated {
                customer_number: target_number.clone(),
                changed_attributes: changed,
                source: Some(source),
            },
            actor,
        )
        .await?;
    }

    if let (Some(d), Some(b)) = (&digest, &blind) {
        record_suspects(tx, d, id_type, b).await?;
    }

    Ok(UpsertResult {
        customer_number: target_number,
        outcome: if existing.is_some() { pb::UpsertOutcome::Updated } else { pb::UpsertOutcome::Created },
        quality_flags: flags,
        absorbed,
    })
}

/// Records a suspect pair between `digest` and every other identity with the same ID
/// type and number but another name, unless the pair is known already (in particular
/// when a steward said "different parties").
async fn record_suspects(tx: &mut PgConnection, digest: &str, id_type: &str, match_key: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO suspect_pair (digest_a, digest_b, id_type, match_key)
         SELECT LEAST($1, g.identity_digest), GREATEST($1, g.identity_digest), $2, $3
         FROM identity_group g
         WHERE g.id_type = $2 AND g.match_key = $3 AND g.identity_digest <> $1
           AND g.party_id <> (SELECT party_id FROM identity_group WHERE identity_digest = $1)
         ON CONFLICT (digest_a, digest_b) DO NOTHING",
    )
    .bind(digest)
    .bind(id_type)
    .bind(match_key)
    .execute(tx)
    .await?;
    Ok(())
}

fn row_to_customer(row: &sqlx::postgres::PgRow, sources: Vec<(String, String)>) -> Result<StoredCustomer> {
    let golden: Value = row.try_get("golden")?;
    let lineage: Value = row.try_get("lineage")?;
    Ok(StoredCustomer {
        party_id: row.try_get("party_id")?,
        customer_number: row.try_get("customer_number")?,
        party_kind: row.try_get("party_kind")?,
        golden: golden.as_object().cloned().unwrap_or_default(),
        lineage: lineage.as_object().cloned().unwrap_or_default(),
        quality_flags: row.try_get("quality_flags")?,
        sources,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn load_party(pool: &PgPool, party_id: i64) -> Result<StoredCustomer> {
    load_party_from(pool, "party_id = $1::text::bigint", &party_id.to_string())
        .await?
        .ok_or_else(|| Error::NotFound(format!("party {party_id}")))
}

/// The surviving party of the party found by `start` (a condition on `party` with one
/// text parameter), following merges.
async fn load_party_from(pool: &PgPool, start: &'static str, arg: &str) -> Result<Option<StoredCustomer>> {
    // Follow merges to the surviving party.
    let sql = format!(
        "WITH RECURSIVE chain(party_id, merged_into, depth) AS (
             SELECT party_id, merged_into, 0 FROM party WHERE {start}
             UNION ALL
             SELECT p.party_id, p.merged_into, c.depth + 1 FROM party p JOIN chain c ON p.party_id = c.merged_into
             WHERE c.depth < 64)
         SELECT p.* FROM party p JOIN chain c ON p.party_id = c.party_id
         WHERE c.merged_into IS NULL"
    );
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(arg).fetch_optional(pool).await? else {
        return Ok(None);
    };
    let survivor: i64 = row.try_get("party_id")?;
    let sources = sqlx::query_as::<_, (String, String)>(
        "SELECT source_system, source_customer_id FROM source_record WHERE party_id = $1 ORDER BY source_system, source_customer_id",
    )
    .bind(survivor)
    .fetch_all(pool)
    .await?;
    row_to_customer(&row, sources).map(Some)
}

/// The golden record by customer number (absorbed numbers resolve to the survivor).
pub async fn customer_by_number(pool: &PgPool, number: &str) -> Result<StoredCustomer> {
    load_party_from(pool, "customer_number = $1", number)
        .await?
        .ok_or_else(|| Error::NotFound(format!("customer {number}")))
}

/// The golden record of the customer a source record belongs to.
pub async fn customer_by_source(pool: &PgPool, system: &str, id: &str) -> Result<StoredCustomer> {
    let party: Option<i64> =
        sqlx::query_scalar("SELECT party_id FROM source_record WHERE source_system = $1 AND source_customer_id = $2")
            .bind(system)
            .bind(id)
            .fetch_optional(pool)
            .await?;
    let party = party.ok_or_else(|| Error::NotFound(format!("source record {system}/{id}")))?;
    load_party(pool, party).await
}

/// Open suspect pairs after `after_id`, oldest first, skipping pairs whose sides have
/// since become one customer, and pairs with a side outside `visibility`.
pub async fn open_suspects(
    pool: &PgPool,
    after_id: i64,
    limit: i64,
    visibility: &Visibility,
) -> Result<Vec<StoredSuspect>> {
    let (scope, arg) = visibility.sql_args();
    let rows = sqlx::query(
        "SELECT s.suspect_pair_id, s.id_type, s.created_at,
                pa.customer_number AS customer_a, pb.customer_number AS customer_b,
                COALESCE(pa.golden->>'name', '') AS name_a, COALESCE(pb.golden->>'name', '') AS name_b,
                COALESCE(pa.golden->>'id_number', '') AS id_number
         FROM suspect_pair s
         JOIN identity_group ga ON ga.identity_digest = s.digest_a
         JOIN identity_group gb ON gb.identity_digest = s.digest_b
         JOIN party pa ON pa.party_id = ga.party_id
         JOIN party pb ON pb.party_id = gb.party_id
         WHERE s.status = 'OPEN' AND s.suspect_pair_id > $1 AND ga.party_id <> gb.party_id
           AND party_visible(pa.party_id, $3, $4) AND party_visible(pb.party_id, $3, $4)
         ORDER BY s.suspect_pair_id LIMIT $2",
    )
    .bind(after_id)
    .bind(limit)
    .bind(scope)
    .bind(arg)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredSuspect {
                id: r.try_get("suspect_pair_id")?,
                customer_a: r.try_get("customer_a")?,
                customer_b: r.try_get("customer_b")?,
                id_type: r.try_get("id_type")?,
                id_number: r.try_get("id_number")?,
                name_a: r.try_get("name_a")?,
                name_b: r.try_get("name_b")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// Applies a data steward's decision. SAME_PARTY merges side B's customer into side
/// A's (the older customer number survives); DIFFERENT_PARTIES closes the pair for good.
pub async fn resolve_suspect(
    pool: &PgPool,
    trust: &TrustTable,
    id: i64,
    same_party: bool,
    actor: Option<&str>,
) -> Result<String> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "SELECT id_type, match_key, status, digest_a, digest_b FROM suspect_pair WHERE suspect_pair_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::NotFound(format!("suspect pair {id}")))?;
    let (id_type, match_key, status): (String, String, String) =
        (row.try_get("id_type")?, row.try_get("match_key")?, row.try_get("status")?);
    // A steward's merge moves records between parties: exclusive, like bulk batches,
    // so that no partitioned batch (which holds the lock shared) runs beside it.
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(bulk::ECIF_LOCK).execute(&mut *tx).await?;
    advisory_lock(&mut tx, &lock_key(&id_type, &match_key)).await?;
    if status != "OPEN" {
        return Err(Error::FailedPrecondition(format!("suspect pair {id} is already resolved ({status})")));
    }
    let party_of = |d: String| {
        sqlx::query_scalar::<_, i64>("SELECT party_id FROM identity_group WHERE identity_digest = $1").bind(d)
    };
    let pa = party_of(row.try_get("digest_a")?).fetch_one(&mut *tx).await?;
    let pb_ = party_of(row.try_get("digest_b")?).fetch_one(&mut *tx).await?;
    let (survivor, absorbed) = if pa <= pb_ { (pa, pb_) } else { (pb_, pa) };
    let new_status = if same_party { "SAME_PARTY" } else { "DIFFERENT_PARTIES" };
    sqlx::query(
        "UPDATE suspect_pair SET status = $2, resolved_at = now(), resolved_by = $3 WHERE suspect_pair_id = $1",
    )
    .bind(id)
    .bind(new_status)
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    let survivor_number = customer_number_of(&mut tx, survivor).await?;
    if same_party && survivor != absorbed {
        let absorbed_number = customer_number_of(&mut tx, absorbed).await?;
        absorb(&mut tx, absorbed, survivor, actor).await?;
        let changed = recompute(&mut tx, trust, survivor).await?;
        outbox::enqueue(
            &mut tx,
            EVENT_SOURCE,
            &survivor_number,
            &pb::CustomerMerged {
                surviving_customer_number: survivor_number.clone(),
                absorbed_customer_numbers: vec![absorbed_number],
                reason: "STEWARD".into(),
            },
            actor,
        )
        .await?;
        if !changed.is_empty() {
            outbox::enqueue(
                &mut tx,
                EVENT_SOURCE,
                &survivor_number,
                &pb::CustomerUpdated {
                    customer_number: survivor_number.clone(),
                    changed_attributes: changed,
                    source: None,
                },
                actor,
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(if same_party { survivor_number } else { customer_number_of_pool(pool, pa).await? })
}

async fn customer_number_of_pool(pool: &PgPool, party_id: i64) -> Result<String> {
    let mut conn = pool.acquire().await?;
    customer_number_of(&mut conn, party_id).await
}

/// History entries of a party, newest first (for the 360° view and audits).
pub async fn party_history(pool: &PgPool, number: &str, limit: i64) -> Result<Vec<BTreeMap<String, Value>>> {
    let rows = sqlx::query(
        "SELECT h.change_kind, h.changed_at, h.actor, h.source_system, h.source_customer_id
         FROM party_history h JOIN party p ON p.party_id = h.party_id
         WHERE p.customer_number = $1 ORDER BY h.history_id DESC LIMIT $2",
    )
    .bind(number)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let mut m = BTreeMap::new();
            m.insert("change_kind".into(), json!(r.try_get::<String, _>("change_kind")?));
            m.insert("actor".into(), json!(r.try_get::<Option<String>, _>("actor")?));
            m.insert("source_system".into(), json!(r.try_get::<Option<String>, _>("source_system")?));
            Ok(m)
        })
        .collect()
}

/// Search criteria, already turned into what the database holds.
#[derive(Debug, Clone, Default)]
pub struct SearchCriteria {
    /// Blind indexes an ID number may be stored under.
    pub id_indexes: Option<Vec<String>>,
    /// Blind index of the phone.
    pub phone_index: Option<String>,
    /// Lower-cased name prefix.
    pub name_prefix: Option<String>,
    /// Lower-cased name fragment.
    pub name_contains: Option<String>,
    /// Home org.
    pub home_org_id: Option<String>,
    /// Primary or related RM.
    pub rm_id: Option<String>,
    /// The caller's data scope.
    pub visibility: Visibility,
}

impl Default for Visibility {
    /// Nothing is visible unless a scope says so.
    fn default() -> Self {
        Visibility::Own(String::new())
    }
}

/// One search hit.
#[derive(Debug, Clone)]
pub struct CustomerRow {
    /// Paging key.
    pub party_id: i64,
    /// Customer number.
    pub customer_number: String,
    /// PERSONAL / CORPORATE.
    pub party_kind: String,
    /// Golden attributes (ID and phone encrypted).
    pub golden: Map<String, Value>,
    /// Home org, if assigned.
    pub home_org_id: Option<String>,
    /// Primary RM, if assigned.
    pub primary_rm_id: Option<String>,
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Active customers matching every criterion, by party id after `after`.
pub async fn search(pool: &PgPool, c: &SearchCriteria, after: i64, limit: i64) -> Result<Vec<CustomerRow>> {
    let rows = sqlx::query(
        "SELECT p.party_id, p.customer_number, p.party_kind, p.golden, a.home_org_id, a.primary_rm_id
         FROM party p LEFT JOIN party_assignment a ON a.party_id = p.party_id
         WHERE p.status = 'ACTIVE' AND p.party_id > $1
           AND ($2::text[] IS NULL OR p.party_id IN (SELECT party_id FROM source_record WHERE id_index = ANY($2)))
           AND ($3::text IS NULL OR p.party_id IN (SELECT party_id FROM source_record WHERE phone_index = $3))
           AND ($4::text IS NULL OR lower(p.golden->>'name') LIKE $4 || '%')
           AND ($5::text IS NULL OR lower(p.golden->>'name') LIKE '%' || $5 || '%')
           AND ($6::text IS NULL OR a.home_org_id = $6)
           AND ($7::text IS NULL OR a.primary_rm_id = $7 OR $7 = ANY(a.related_rm_ids))
           AND party_visible(p.party_id, $9, $10)
         ORDER BY p.party_id LIMIT $8",
    )
    .bind(after)
    .bind(&c.id_indexes)
    .bind(&c.phone_index)
    .bind(c.name_prefix.as_deref().map(like_escape))
    .bind(c.name_contains.as_deref().map(like_escape))
    .bind(&c.home_org_id)
    .bind(&c.rm_id)
    .bind(limit)
    .bind(c.visibility.sql_args().0)
    .bind(c.visibility.sql_args().1)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let golden: Value = r.try_get("golden")?;
            Ok(CustomerRow {
                party_id: r.try_get("party_id")?,
                customer_number: r.try_get("customer_number")?,
                party_kind: r.try_get("party_kind")?,
                golden: golden.as_object().cloned().unwrap_or_default(),
                home_org_id: r.try_get("home_org_id")?,
                primary_rm_id: r.try_get("primary_rm_id")?,
            })
        })
        .collect()
}

/// Who looks after a customer, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssignmentRow {
    /// Customer number.
    pub customer_number: String,
    /// Home org.
    pub home_org_id: Option<String>,
    /// Primary RM.
    pub primary_rm_id: Option<String>,
    /// Related RMs.
    pub related_rm_ids: Vec<String>,
    /// Last change.
    pub updated_at: Option<OffsetDateTime>,
}

/// A change to apply to assignments.
#[derive(Debug, Clone)]
pub enum AssignmentChange {
    /// Set the given fields (None keeps the current value).
    Assign {
        /// New home org.
        home_org_id: Option<String>,
        /// New primary RM.
        primary_rm_id: Option<String>,
        /// New related RMs.
        related_rm_ids: Option<Vec<String>>,
    },
    /// Remove primary and related RMs.
    Recall,
}

/// Applies `change` to every customer in `numbers` in one transaction (all or
/// nothing), with history and a `CustomerAssigned` event each. Absorbed customer
/// numbers apply to their survivor.
pub async fn change_assignments(
    pool: &PgPool,
    numbers: &[String],
    change: &AssignmentChange,
    reason: &str,
    actor: Option<&str>,
) -> Result<Vec<AssignmentRow>> {
    let mut tx = pool.begin().await?;
    let mut out = Vec::with_capacity(numbers.len());
    for number in numbers {
        let party: Option<(i64, String)> = sqlx::query_as(
            "WITH RECURSIVE chain(party_id, merged_into, depth) AS (
                 SELECT party_id, merged_into, 0 FROM party WHERE customer_number = $1
                 UNION ALL
                 SELECT p.party_id, p.merged_into, c.depth + 1 FROM party p JOIN chain c ON p.party_id = c.merged_into
                 WHERE c.depth < 64)
             SELECT p.party_id, p.customer_number FROM party p JOIN chain c ON p.party_id = c.party_id
             WHERE c.merged_into IS NULL",
        )
        .bind(number)
        .fetch_optional(&mut *tx)
        .await?;
        let (party_id, survivor) = party.ok_or_else(|| Error::NotFound(format!("customer {number}")))?;
        let before: Option<(Option<String>, Option<String>, Vec<String>)> = sqlx::query_as(
            "SELECT home_org_id, primary_rm_id, related_rm_ids FROM party_assignment WHERE party_id = $1 FOR UPDATE",
        )
        .bind(party_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (org, primary, related) = before.clone().unwrap_or_default();
        let (action, org, primary, related) = match change {
            AssignmentChange::Assign { home_org_id, primary_rm_id, related_rm_ids } => (
                if before.as_ref().is_some_and(|b| b.1.is_some() || b.0.is_some()) { "ADJUST" } else { "ASSIGN" },
                home_org_id.clone().or(org),
                primary_rm_id.clone().or(primary),
                related_rm_ids.clone().unwrap_or(related),
            ),
            AssignmentChange::Recall => ("RECALL", org, None, vec![]),
        };
        let updated_at: OffsetDateTime = sqlx::query_scalar(
            "INSERT INTO party_assignment (party_id, home_org_id, primary_rm_id, related_rm_ids, updated_at)
             VALUES ($1, $2, $3, $4, now())
             ON CONFLICT (party_id) DO UPDATE SET home_org_id = EXCLUDED.home_org_id,
                 primary_rm_id = EXCLUDED.primary_rm_id, related_rm_ids = EXCLUDED.related_rm_ids, updated_at = now()
             RETURNING updated_at",
        )
        .bind(party_id)
        .bind(&org)
        .bind(&primary)
        .bind(&related)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO assignment_history (party_id, action, home_org_id, primary_rm_id, related_rm_ids, actor, reason)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(party_id)
        .bind(action)
        .bind(&org)
        .bind(&primary)
        .bind(&related)
        .bind(actor)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        let row = AssignmentRow {
            customer_number: survivor.clone(),
            home_org_id: org,
            primary_rm_id: primary,
            related_rm_ids: related,
            updated_at: Some(updated_at),
        };
        outbox::enqueue(
            &mut tx,
            EVENT_SOURCE,
            &survivor,
            &pb::CustomerAssigned {
                action: assignment_action(action) as i32,
                assignment: Some(assignment_to_pb(&row)),
            },
            actor,
        )
        .await?;
        out.push(row);
    }
    tx.commit().await?;
    Ok(out)
}

/// The proto form of an action code.
pub fn assignment_action(code: &str) -> pb::AssignmentAction {
    match code {
        "ASSIGN" => pb::AssignmentAction::Assign,
        "ADJUST" => pb::AssignmentAction::Adjust,
        "RECALL" => pb::AssignmentAction::Recall,
        _ => pb::AssignmentAction::Unspecified,
    }
}

/// The proto form of an assignment.
pub fn assignment_to_pb(a: &AssignmentRow) -> pb::Assignment {
    pb::Assignment {
        customer_number: a.customer_number.clone(),
        home_org_id: a.home_org_id.clone().unwrap_or_default(),
        primary_rm_id: a.primary_rm_id.clone().unwrap_or_default(),
        related_rm_ids: a.related_rm_ids.clone(),
        update_time: a.updated_at.map(crm_platform::convert::timestamp),
    }
}

/// One stored assignment change.
#[derive(Debug, Clone)]
pub struct AssignmentHistoryRow {
    /// Paging key.
    pub id: i64,
    /// ASSIGN / ADJUST / RECALL.
    pub action: String,
    /// The assignment after the change.
    pub assignment: AssignmentRow,
    /// Who.
    pub actor: Option<String>,
    /// Why.
    pub reason: Option<String>,
}

/// Assignment changes of a customer (and of customers it absorbed), newest first,
/// before history id `before` (0: from the newest).
pub async fn assignment_history(
    pool: &PgPool,
    number: &str,
    before: i64,
    limit: i64,
) -> Result<Vec<AssignmentHistoryRow>> {
    let customer = customer_by_number(pool, number).await?;
    let rows = sqlx::query(
        "SELECT h.history_id, h.action, h.home_org_id, h.primary_rm_id, h.related_rm_ids, h.actor, h.reason, h.changed_at
         FROM assignment_history h JOIN party p ON p.party_id = h.party_id
         WHERE p.customer_number = $1 AND ($2 = 0 OR h.history_id < $2)
         ORDER BY h.history_id DESC LIMIT $3",
    )
    .bind(&customer.customer_number)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AssignmentHistoryRow {
                id: r.try_get("history_id")?,
                action: r.try_get("action")?,
                assignment: AssignmentRow {
                    customer_number: customer.customer_number.clone(),
                    home_org_id: r.try_get("home_org_id")?,
                    primary_rm_id: r.try_get("primary_rm_id")?,
                    related_rm_ids: r.try_get("related_rm_ids")?,
                    updated_at: Some(r.try_get("changed_at")?),
                },
                actor: r.try_get("actor")?,
                reason: r.try_get("reason")?,
            })
        })
        .collect()
}

/// One golden-record change.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    /// Paging key.
    pub id: i64,
    /// CREATED, UPDATED, MERGED, ABSORBED, UNMERGED.
    pub change_kind: String,
    /// When.
    pub changed_at: OffsetDateTime,
    /// Who.
    pub actor: Option<String>,
    /// The source record that caused it.
    pub source: Option<(String, String)>,
    /// Names of golden attributes that changed.
    pub changed_attributes: Vec<String>,
}

fn changed_names(before: &Option<Value>, after: &Option<Value>) -> Vec<String> {
    let empty = Map::new();
    let b = before.as_ref().and_then(Value::as_object).unwrap_or(&empty);
    let a = after.as_ref().and_then(Value::as_object).unwrap_or(&empty);
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| b.get(*k) != a.get(*k)).cloned().collect()
}

/// Golden-record changes of a customer (absorbed numbers resolve to the survivor),
/// newest first, before history id `before` (0: from the newest).
pub async fn customer_history(pool: &PgPool, number: &str, before: i64, limit: i64) -> Result<Vec<HistoryRow>> {
    let customer = customer_by_number(pool, number).await?;
    history_of(pool, customer.party_id, before, limit).await
}

async fn history_of(pool: &PgPool, party_id: i64, before: i64, limit: i64) -> Result<Vec<HistoryRow>> {
    let rows = sqlx::query(
        "SELECT h.history_id, h.change_kind, h.changed_at, h.actor, h.source_system, h.source_customer_id, h.before, h.after
         FROM party_history h
         WHERE h.party_id = $1 AND ($2 = 0 OR h.history_id < $2)
         ORDER BY h.history_id DESC LIMIT $3",
    )
    .bind(party_id)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get("change_kind")?;
            let (b, a): (Option<Value>, Option<Value>) = (r.try_get("before")?, r.try_get("after")?);
            // Only CREATED/UPDATED carry golden records; the others carry references.
            let changed = if kind == "CREATED" || kind == "UPDATED" { changed_names(&b, &a) } else { vec![] };
            let system: Option<String> = r.try_get("source_system")?;
            let id: Option<String> = r.try_get("source_customer_id")?;
            Ok(HistoryRow {
                id: r.try_get("history_id")?,
                change_kind: kind,
                changed_at: r.try_get("changed_at")?,
                actor: r.try_get("actor")?,
                source: system.zip(id),
                changed_attributes: changed,
            })
        })
        .collect()
}

/// A relationship as seen from one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationshipRow {
    /// Kind code.
    pub kind: String,
    /// The other customer.
    pub related_customer_number: String,
    /// Its golden name.
    pub related_name: String,
    /// Role.
    pub role: String,
    /// This customer is the object of the relationship.
    pub inverse: bool,
}

async fn active_party(pool: &PgPool, number: &str) -> Result<i64> {
    let customer = customer_by_number(pool, number).await?;
    Ok(sqlx::query_scalar("SELECT party_id FROM party WHERE customer_number = $1")
        .bind(&customer.customer_number)
        .fetch_one(pool)
        .await?)
}

/// Records a relationship (idempotent).
pub async fn add_relationship(
    pool: &PgPool,
    number: &str,
    kind: &str,
    related: &str,
    role: &str,
    actor: Option<&str>,
) -> Result<RelationshipRow> {
    let party = active_party(pool, number).await?;
    let other = active_party(pool, related).await?;
    if party == other {
        return Err(Error::FailedPrecondition(format!("{number} and {related} are the same customer")));
    }
    sqlx::query(
        "INSERT INTO party_relationship (party_id, kind, related_party_id, role, actor) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING",
    )
    .bind(party)
    .bind(kind)
    .bind(other)
    .bind(role)
    .bind(actor)
    .execute(pool)
    .await?;
    let found = relationships(pool, party).await?;
    let other_number = customer_number_of_pool(pool, other).await?;
    found
        .into_iter()
        .find(|r| !r.inverse && r.kind == kind && r.related_customer_number == other_number && r.role == role)
        .ok_or_else(|| Error::Corrupt("relationship vanished".into()))
}

/// Relationships of a party, both directions.
pub async fn relationships(pool: &PgPool, party_id: i64) -> Result<Vec<RelationshipRow>> {
    let rows = sqlx::query(
        "SELECT r.kind, r.role, false AS inverse, o.customer_number, COALESCE(o.golden->>'name', '') AS name
         FROM party_relationship r JOIN party o ON o.party_id = r.related_party_id WHERE r.party_id = $1
         UNION ALL
         SELECT r.kind, r.role, true, o.customer_number, COALESCE(o.golden->>'name', '')
         FROM party_relationship r JOIN party o ON o.party_id = r.party_id WHERE r.related_party_id = $1
         ORDER BY 1, 4, 2",
    )
    .bind(party_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(RelationshipRow {
                kind: r.try_get("kind")?,
                related_customer_number: r.try_get("customer_number")?,
                related_name: r.try_get("name")?,
                role: r.try_get("role")?,
                inverse: r.try_get("inverse")?,
            })
        })
        .collect()
}

/// Everything the 360° view shows, read in one go.
#[derive(Debug, Clone)]
pub struct Customer360 {
    /// Whether the customer lies inside the caller's data scope.
    pub visible: bool,
    /// Golden record, lineage, sources.
    pub customer: StoredCustomer,
    /// Assignment, if any.
    pub assignment: Option<AssignmentRow>,
    /// Relationships, both directions.
    pub relationships: Vec<RelationshipRow>,
    /// Latest history.
    pub recent_changes: Vec<HistoryRow>,
    /// Open suspect pairs involving the customer.
    pub open_suspect_pairs: i64,
    /// Maintained details: id, encoded `PartyDetail`, change time.
    pub details: Vec<(String, Vec<u8>, OffsetDateTime)>,
    /// Extended attributes.
    pub extended: BTreeMap<String, String>,
}

/// The 360° view of a customer (absorbed numbers resolve to the survivor), with
/// whether it lies inside `visibility`: one statement, one round trip, since the view
/// is the platform's most frequent read.
pub async fn customer_360(pool: &PgPool, number: &str, visibility: &Visibility) -> Result<Customer360> {
    let (scope, arg) = visibility.sql_args();
    let row = sqlx::query(
        "WITH RECURSIVE chain(party_id, merged_into, depth) AS (
             SELECT party_id, merged_into, 0 FROM party WHERE customer_number = $1
             UNION ALL
             SELECT p.party_id, p.merged_into, c.depth + 1 FROM party p JOIN chain c ON p.party_id = c.merged_into
             WHERE c.depth < 64),
         me AS (SELECT p.* FROM party p JOIN chain c ON p.party_id = c.party_id WHERE c.merged_into IS NULL)
         SELECT me.party_id, me.customer_number, me.party_kind, me.golden, me.lineage, me.quality_flags,
                me.created_at, me.updated_at,
                party_visible(me.party_id, $2, $3) AS visible,
                ARRAY(SELECT s.source_system FROM source_record s WHERE s.party_id = me.party_id
                      ORDER BY s.source_system, s.source_customer_id) AS source_systems,
                ARRAY(SELECT s.source_customer_id FROM source_record s WHERE s.party_id = me.party_id
                      ORDER BY s.source_system, s.source_customer_id) AS source_ids,
                a.party_id IS NOT NULL AS assigned, a.home_org_id, a.primary_rm_id,
                COALESCE(a.related_rm_ids, '{}') AS related_rm_ids, a.updated_at AS assigned_at,
                -- Open suspect pairs, by index look-ups from the party's own identities
                -- whatever the statistics say (OFFSET 0 keeps the status test out of the
                -- scans, where the planner would combine it with the index of all open pairs).
                (SELECT count(*) FROM identity_group mine
                 CROSS JOIN LATERAL (
                     SELECT s.digest_a AS other, s.status FROM suspect_pair s WHERE s.digest_b = mine.identity_digest
                     UNION ALL
                     SELECT s.digest_b, s.status FROM suspect_pair s WHERE s.digest_a = mine.identity_digest
                     OFFSET 0) pair
                 WHERE mine.party_id = me.party_id AND pair.status = 'OPEN'
                   AND (SELECT g.party_id FROM identity_group g WHERE g.identity_digest = pair.other) <> me.party_id
                ) AS open_suspect_pairs,
                (SELECT COALESCE(jsonb_agg(r ORDER BY r.kind, r.customer_number, r.role), '[]') FROM (
                     SELECT r.kind, r.role, false AS inverse, o.customer_number, COALESCE(o.golden->>'name', '') AS name
                     FROM party_relationship r JOIN party o ON o.party_id = r.related_party_id WHERE r.party_id = me.party_id
                     UNION ALL
                     SELECT r.kind, r.role, true, o.customer_number, COALESCE(o.golden->>'name', '')
                     FROM party_relationship r JOIN party o ON o.party_id = r.party_id WHERE r.related_party_id = me.party_id
                 ) r) AS relationships,
                (SELECT COALESCE(jsonb_agg(h ORDER BY h.history_id DESC), '[]') FROM (
                     SELECT h.history_id, h.change_kind, (extract(epoch FROM h.changed_at) * 1000000)::bigint AS at_us,
                            h.actor, h.source_system, h.source_customer_id, h.before, h.after
                     FROM party_history h WHERE h.party_id = me.party_id ORDER BY h.history_id DESC LIMIT 10
                 ) h) AS history,
                (SELECT COALESCE(jsonb_agg(jsonb_build_array(d.detail_id, encode(d.payload, 'base64'),
                                                             (extract(epoch FROM d.updated_at) * 1000000)::bigint)
                                           ORDER BY d.kind, d.detail_id), '[]')
                 FROM party_detail d WHERE d.party_id = me.party_id) AS details,
                (SELECT COALESCE(jsonb_object_agg(e.key, e.value), '{}')
                 FROM party_extended_attribute e WHERE e.party_id = me.party_id) AS extended
         FROM me LEFT JOIN party_assignment a ON a.party_id = me.party_id",
    )
    .bind(number)
    .bind(scope)
    .bind(arg)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| Error::NotFound(format!("customer {number}")))?;
    view_from_row(&row)
}

fn at_micros(us: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map_err(|e| Error::Corrupt(format!("timestamp {us}: {e}")))
}

fn view_from_row(row: &sqlx::postgres::PgRow) -> Result<Customer360> {
    let corrupt = |what: &str| Error::Corrupt(format!("360 view: {what}"));
    let systems: Vec<String> = row.try_get("source_systems")?;
    let ids: Vec<String> = row.try_get("source_ids")?;
    let customer = row_to_customer(row, systems.into_iter().zip(ids).collect())?;
    let assignment = if row.try_get("assigned")? {
        let at: Option<OffsetDateTime> = row.try_get("assigned_at")?;
        Some(AssignmentRow {
            customer_number: customer.customer_number.clone(),
            home_org_id: row.try_get("home_org_id")?,
            primary_rm_id: row.try_get("primary_rm_id")?,
            related_rm_ids: row.try_get("related_rm_ids")?,
            updated_at: at,
        })
    } else {
        None
    };
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    let relationships: Value = row.try_get("relationships")?;
    let relationships = relationships
        .as_array()
        .ok_or_else(|| corrupt("relationships"))?
        .iter()
        .map(|r| RelationshipRow {
            kind: text(r, "kind").unwrap_or_default(),
            related_customer_number: text(r, "customer_number").unwrap_or_default(),
            related_name: text(r, "name").unwrap_or_default(),
            role: text(r, "role").unwrap_or_default(),
            inverse: r.get("inverse").and_then(Value::as_bool).unwrap_or_default(),
        })
        .collect();
    let history: Value = row.try_get("history")?;
    let recent_changes = history
        .as_array()
        .ok_or_else(|| corrupt("history"))?
        .iter()
        .map(|h| {
            let kind = text(h, "change_kind").unwrap_or_default();
            let (before, after) =
                (h.get("before").cloned().filter(|v| !v.is_null()), h.get("after").cloned().filter(|v| !v.is_null()));
            // Only CREATED/UPDATED carry golden records; the others carry references.
            let changed = if kind == "CREATED" || kind == "UPDATED" { changed_names(&before, &after) } else { vec![] };
            Ok(HistoryRow {
                id: h.get("history_id").and_then(Value::as_i64).ok_or_else(|| corrupt("history id"))?,
                changed_at: at_micros(h.get("at_us").and_then(Value::as_i64).ok_or_else(|| corrupt("history time"))?)?,
                actor: text(h, "actor"),
                source: text(h, "source_system").zip(text(h, "source_customer_id")),
                changed_attributes: changed,
                change_kind: kind,
            })
        })
        .collect::<Result<_>>()?;
    let details: Value = row.try_get("details")?;
    let details = details
        .as_array()
        .ok_or_else(|| corrupt("details"))?
        .iter()
        .map(|d| {
            let id = d.get(0).and_then(Value::as_str).ok_or_else(|| corrupt("detail id"))?;
            // PostgreSQL's base64 breaks lines every 76 characters.
            let b64: String = d.get(1).and_then(Value::as_str).unwrap_or_default().split_whitespace().collect();
            let payload = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
                .map_err(|_| corrupt("detail payload"))?;
            let at = at_micros(d.get(2).and_then(Value::as_i64).ok_or_else(|| corrupt("detail time"))?)?;
            Ok((id.to_string(), payload, at))
        })
        .collect::<Result<_>>()?;
    let extended: Value = row.try_get("extended")?;
    let extended = extended
        .as_object()
        .ok_or_else(|| corrupt("extended attributes"))?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    Ok(Customer360 {
        visible: row.try_get("visible")?,
        open_suspect_pairs: row.try_get("open_suspect_pairs")?,
        customer,
        assignment,
        relationships,
        recent_changes,
        details,
        extended,
    })
}

//! Upserts of source records: which party a record belongs to (the identification
//! rule, [`crate::domain::placement`]), and the merges and unmerges that follow when a
//! record's identity changes. Batches go through the set-based path ([`super::bulk`]),
//! which hands the records whose identity changed to [`upsert_in`], one at a time.

use std::collections::BTreeSet;

use crm_platform::messaging::outbox;
use crm_proto::crm::customer::v1 as pb;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};

use super::parties::{absorb, new_party, recompute, record_count};
use super::{
    AuditEntry, EVENT_SOURCE, ID_INDEX, PHONE_INDEX, PreparedRecord, advisory_lock, attributes_json, bulk,
    customer_number_of, history, lock_key, party_kind_code, search_form, stored_identity, writer,
};
use crate::domain::placement::{Before, Placement, place};
use crate::domain::{IdentityKey, TrustTable, UpsertOutcome, ValidatedRecord};
use crate::error::Result;
use crate::pii::PiiCipher;

/// What an upsert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpsertResult {
    /// The record's customer after the upsert.
    pub customer_number: String,
    /// Created, updated or unchanged.
    pub outcome: UpsertOutcome,
    /// Flags of the accepted record.
    pub quality_flags: Vec<String>,
    /// Customers absorbed into `customer_number`.
    pub absorbed: Vec<String>,
}

/// The stored version of a record that is upserted again.
#[derive(sqlx::FromRow)]
struct ExistingRecord {
    source_version: i64,
    party_id: i64,
    identity_digest: Option<String>,
    id_type: String,
    match_key: Option<String>,
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
        async move { writer::apply_together(pool, trust, pii, &records, &actors, &audits).await }
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
    let existing = sqlx::query_as::<_, ExistingRecord>(
        "SELECT source_version, party_id, identity_digest, id_type, match_key
         FROM source_record WHERE source_system = $1 AND source_customer_id = $2",
    )
    .bind(&r.source_system)
    .bind(&r.source_customer_id)
    .fetch_optional(&mut *tx)
    .await?;

    if let Some(e) = &existing
        && e.source_version >= r.source_version
    {
        // A replay or an out-of-order older update: nothing changes.
        return Ok(UpsertResult {
            customer_number: customer_number_of(tx, e.party_id).await?,
            outcome: UpsertOutcome::Unchanged,
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
    let placement = place(Before { group_party, old_party, same_identity, alone: old_party_alone });
    let created = placement == Placement::Found;
    let target = match placement {
        Placement::Join(p) | Placement::Stay(p) => p,
        Placement::Found => new_party(tx, kind).await?.0,
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
            outbox::write_event(
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
            history::append(
                tx,
                p,
                "UNMERGED",
                Some((&r.source_system, &r.source_customer_id)),
                None,
                Some(&json!({ "moved_to": target_number })),
                actor,
            )
            .await?;
            outbox::write_event(
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
                let golden: Value = sqlx::query_scalar("SELECT golden FROM party WHERE party_id = $1")
                    .bind(p)
                    .fetch_one(&mut *tx)
                    .await?;
                outbox::write_event(
                    tx,
                    EVENT_SOURCE,
                    &old_number,
                    &pb::CustomerUpdated {
                        customer_number: old_number.clone(),
                        changed_attributes: changed,
                        source: Some(source.clone()),
                        demographics: Some(crate::convert::demographics(&golden)),
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
        history::append(tx, target, "CREATED", src, None, Some(&after), actor).await?;
        outbox::write_event(
            tx,
            EVENT_SOURCE,
            &target_number,
            &pb::CustomerCreated {
                customer_number: target_number.clone(),
                party_kind: if kind == "CORPORATE" { pb::PartyKind::Corporate } else { pb::PartyKind::Personal } as i32,
                source: Some(source.clone()),
                demographics: Some(crate::convert::demographics(&after)),
            },
            actor,
        )
        .await?;
    } else if !changed.is_empty() {
        history::append(tx, target, "UPDATED", src, Some(&before), Some(&after), actor).await?;
        outbox::write_event(
            tx,
            EVENT_SOURCE,
            &target_number,
            &pb::CustomerUpdated {
                customer_number: target_number.clone(),
                changed_attributes: changed,
                source: Some(source),
                demographics: Some(crate::convert::demographics(&after)),
            },
            actor,
        )
        .await?;
    } else if existing.is_none() {
        outbox::write_event(
            tx,
            EVENT_SOURCE,
            &target_number,
            &pb::SourceRecordLinked { customer_number: target_number.clone(), source: Some(source) },
            actor,
        )
        .await?;
    }

    if let (Some(d), Some(b)) = (&digest, &blind) {
        record_suspects(tx, d, id_type, b).await?;
    }

    Ok(UpsertResult {
        customer_number: target_number,
        outcome: if existing.is_some() { UpsertOutcome::Updated } else { UpsertOutcome::Created },
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

//! Large batches of simple records as [`PARTITIONS`] transactions side by side, split
//! by identity.

use crm_platform::sqlstate::DbFailure;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{ECIF_LOCK, PreparedRecord, read_stored, run, simple_prefix};
use crate::domain::TrustTable;
use crate::error::{Error, Result};
use crm_platform::audit::record_in as audit_in;

use crate::store::{AuditEntry, UpsertResult, retryable, writer};

/// How many partitions a batch of simple records is split into (one transaction each,
/// side by side): PostgreSQL runs one backend per transaction, and a load otherwise
/// leaves the second core idle.
pub const PARTITIONS: usize = 2;

/// The partition of a record: by identity (ID type + blind index of the number), so that
/// records that may share an identity group or a suspect pair always meet in one
/// partition; records without identity ("other") by source key.
fn partition_of(r: &PreparedRecord) -> usize {
    // A hash fixed here rather than std's (whose algorithm may change between Rust
    // releases): replicas built at different times must agree, or two of them could
    // write one identity side by side and miss each other's suspect pairs.
    fn fnv1a(parts: &[&str]) -> u64 {
        parts
            .iter()
            .flat_map(|p| p.bytes().chain(std::iter::once(0)))
            .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    }
    let hash = match &r.blind {
        Some(blind) => fnv1a(&[r.validated.record.id_type.code(), blind]),
        None => fnv1a(&[r.key().0, r.key().1]),
    };
    (hash % PARTITIONS as u64) as usize
}

/// Applies a batch of simple records as [`PARTITIONS`] transactions side by side; `None`
/// when the batch is not all simple (it then needs the exclusive path, in one
/// transaction). Each partition holds the ECIF lock shared and its partition lock
/// exclusively: it excludes the exclusive writers and the same partition of other
/// batches, and runs beside the other partitions. A party with identities in both partitions (merged
/// earlier) is updated by both, one after the other: each locks the party's row before
/// reading its records. A partition that meets a record that has become complex since
/// the batch was classified, or a conflicting insert of a concurrent batch, rolls back
/// and hands its records back (indexes into `records`) for the exclusive path.
pub async fn upsert_partitioned(
    pool: &PgPool,
    trust: &TrustTable,
    records: &[PreparedRecord],
    actor: Option<&str>,
    audits: &[Option<AuditEntry>],
) -> Result<Option<(Vec<(usize, UpsertResult)>, Vec<usize>)>> {
    let existing = {
        let mut conn = pool.acquire().await?;
        read_stored(&mut conn, records, false).await?.records
    };
    if simple_prefix(records, &existing) < records.len() {
        return Ok(None);
    }
    let mut parts: Vec<Vec<usize>> = vec![Vec::new(); PARTITIONS];
    for (i, r) in records.iter().enumerate() {
        parts[partition_of(r)].push(i);
    }
    let runs = parts.into_iter().enumerate().filter(|(_, idx)| !idx.is_empty()).map(|(p, idx)| async move {
        let part: Vec<PreparedRecord> = idx.iter().map(|i| records[*i].clone()).collect();
        let part_audits: Vec<Option<AuditEntry>> = idx.iter().map(|i| audits.get(*i).cloned().flatten()).collect();
        let outcome = apply_partition(pool, trust, p, &part, actor, &part_audits).await;
        Ok::<_, Error>((idx, outcome))
    });
    let mut applied = Vec::with_capacity(records.len());
    let mut handed_back = Vec::new();
    for (idx, outcome) in futures::future::try_join_all(runs).await? {
        match outcome {
            Ok(Some(results)) => applied.extend(idx.into_iter().zip(results)),
            Ok(None) => handed_back.extend(idx),
            Err(e) if retryable(&e) || unique_violation(&e) => handed_back.extend(idx),
            Err(e) => return Err(e),
        }
    }
    Ok(Some((applied, handed_back)))
}

/// A conflicting insert of a concurrent batch.
fn unique_violation(e: &Error) -> bool {
    matches!(e, Error::Database(d) if DbFailure::of(d) == DbFailure::UniqueViolation)
}

/// One partition in its own transaction; `None` when a record has become complex.
async fn apply_partition(
    pool: &PgPool,
    trust: &TrustTable,
    partition: usize,
    records: &[PreparedRecord],
    actor: Option<&str>,
    audits: &[Option<AuditEntry>],
) -> Result<Option<Vec<UpsertResult>>> {
    let mut tx = pool.begin().await?;
    let now: OffsetDateTime =
        sqlx::query_scalar("SELECT now() FROM pg_advisory_xact_lock_shared($1), pg_advisory_xact_lock($2)")
            .bind(ECIF_LOCK)
            .bind(ECIF_LOCK + 1 + partition as i64)
            .fetch_one(&mut *tx)
            .await?;
    let stored = read_stored(&mut tx, records, true).await?;
    if simple_prefix(records, &stored.records) < records.len() {
        // Changed since the batch was classified: the exclusive path takes these.
        return Ok(None);
    }
    let results = run::apply_run(&mut tx, trust, records, &stored, now, actor).await?;
    audit_in(&mut tx, &writer::completed_audits(&results, audits)).await?;
    tx.commit().await?;
    Ok(Some(results))
}

#[cfg(test)]
mod tests {
    use crm_proto::crm::customer::v1 as pb;

    use super::*;
    use crate::pii::PiiCipher;

    fn prepared(records: Vec<crm_proto::crm::customer::v1::SourceRecord>) -> Vec<PreparedRecord> {
        let pii = PiiCipher::from_hex(&"ab".repeat(32)).expect("key");
        records
            .into_iter()
            .filter_map(|r| crate::grpc::validate_record(Some(r), crate::grpc::today()).ok())
            .map(|v| PreparedRecord::new(&pii, v))
            .collect()
    }

    #[test]
    fn records_of_one_id_number_meet_in_one_partition_whatever_their_name_or_id_form() {
        let mut a = crate::sample::generate(1, 1).remove(0);
        a.id_number = "11010519491231002X".into();
        let mut b = a.clone();
        b.key = Some(pb::SourceKey { source_system: "CARDS".into(), source_customer_id: "K-9".into() });
        b.id_number = "110105491231002".into();
        b.name = "另一个名字".into();
        let p = prepared(vec![a, b]);
        assert_eq!(p.len(), 2);
        assert_eq!(partition_of(&p[0]), partition_of(&p[1]));
    }

    #[test]
    fn a_load_spreads_over_every_partition() {
        let p = prepared(crate::sample::generate(5, 400));
        let mut counts = [0usize; PARTITIONS];
        for r in &p {
            counts[partition_of(r)] += 1;
        }
        // Blind indexes are HMACs: the split is even up to chance.
        for c in counts {
            assert!(c > p.len() / PARTITIONS / 2, "{counts:?}");
        }
    }
}

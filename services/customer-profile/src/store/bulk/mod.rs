//! The set-based ingestion path: many source records applied with a dozen statements
//! per batch instead of a dozen per record.
//!
//! A batch gives exactly the result of applying its records one by one with
//! [`super::upsert_in`] — the same parties, customer numbers, golden records, history
//! rows, suspect pairs and events, in the same order (a test checks this on a generated
//! load). It gets there by splitting the batch into runs of *simple* records, handled
//! as sets, and the rare *complex* ones, handled one at a time:
//! - simple: a source key not seen before (it joins the party of its identity, or
//!   founds one), a replay or older version (unchanged), or a newer version whose
//!   identity (ID type, number and name) did not change (its party stays);
//! - complex: a newer version whose identity changed, which may merge or split parties.
//!
//! Within a run, identification needs no round trip per record: identities are looked
//! up in one query, survivorship runs in memory over the parties' records (loaded in
//! one query), and everything is written with a few statements (the ECIF tables with
//! one, then events, suspect pairs and audit entries).
//!
//! A batch in one transaction holds the ECIF lock exclusively (so do steward decisions):
//! one lock instead of one per identity keeps the lock table small whatever the batch
//! size, and such batches cannot deadlock with each other. Large batches of simple
//! records instead run as [`PARTITIONS`] transactions side by side, split by identity
//! ([`upsert_partitioned`]), so that a load uses more than one PostgreSQL backend.
//!
//! # Layout
//! - `prepare`: [`PreparedRecord`], the CPU work done before a transaction.
//! - this module: classification into runs and the entry point, [`upsert_prepared_in`].
//! - `partition`: large batches of simple records as partitions side by side.
//! - `run`: a run of simple records applied in memory, exactly as one by one would.
//! - `write`: the statement that writes a run to the ECIF tables (`write.sql`).

use std::collections::{BTreeSet, HashMap, HashSet};

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::UpsertResult;
use crate::domain::TrustTable;
use crate::error::{Error, Result};
use crate::pii::PiiCipher;

mod partition;
mod prepare;
mod run;
mod write;

pub use partition::{PARTITIONS, upsert_partitioned};
pub use prepare::PreparedRecord;

/// The advisory lock that bulk batches take exclusively and every other ECIF writer
/// shares ("ECIF" in ASCII).
pub(super) const ECIF_LOCK: i64 = 0x4543_4946;

/// How many records after a complex one are looked at again before the next run:
/// bounds the re-reading a batch full of complex records costs.
const WINDOW: usize = 4096;

/// A source record of a run as stored.
struct Existing {
    version: i64,
    party_id: i64,
    digest: Option<String>,
    customer_number: String,
}

type Key = (String, String);

/// What the database holds for a run: its stored source records, and (when asked for)
/// the identity groups of its records' identities.
#[derive(Default)]
struct Stored {
    records: HashMap<Key, Existing>,
    /// Identity digest → party.
    identities: HashMap<String, i64>,
}

/// A row of [`read_stored`]: a stored source record, or (without source key) an
/// identity group.
#[derive(sqlx::FromRow)]
struct StoredRow {
    source_system: Option<String>,
    source_customer_id: Option<String>,
    source_version: Option<i64>,
    party_id: i64,
    identity_digest: Option<String>,
    customer_number: Option<String>,
}

/// Reads the stored records of `records` and, with `identities`, their identity groups,
/// in one statement (a single upsert's group pays per round trip, not per row).
async fn read_stored(tx: &mut PgConnection, records: &[PreparedRecord], identities: bool) -> Result<Stored> {
    let systems: Vec<&str> = records.iter().map(|r| r.key().0).collect();
    let ids: Vec<&str> = records.iter().map(|r| r.key().1).collect();
    let digests: Vec<&str> = if identities {
        records.iter().filter_map(|r| r.digest.as_deref()).collect::<BTreeSet<_>>().into_iter().collect()
    } else {
        Vec::new()
    };
    // Identity rows have no source key.
    let rows = sqlx::query_as::<_, StoredRow>(
        "SELECT s.source_system, s.source_customer_id, s.source_version, s.party_id, s.identity_digest,
                p.customer_number
         FROM unnest($1::text[], $2::text[]) AS k(sys, id)
         JOIN source_record s ON s.source_system = k.sys AND s.source_customer_id = k.id
         JOIN party p ON p.party_id = s.party_id
         UNION ALL
         SELECT NULL, NULL, NULL, g.party_id, g.identity_digest, NULL
         FROM identity_group g WHERE g.identity_digest = ANY($3::text[])",
    )
    .bind(&systems)
    .bind(&ids)
    .bind(&digests)
    .fetch_all(&mut *tx)
    .await?;
    let mut stored = Stored::default();
    for row in rows {
        match (row.source_system, row.source_customer_id, row.source_version, row.customer_number) {
            (Some(system), Some(id), Some(version), Some(customer_number)) => {
                let existing =
                    Existing { version, party_id: row.party_id, digest: row.identity_digest, customer_number };
                stored.records.insert((system, id), existing);
            }
            (None, ..) => {
                let digest =
                    row.identity_digest.ok_or_else(|| Error::Corrupt("an identity group without digest".into()))?;
                stored.identities.insert(digest, row.party_id);
            }
            _ => return Err(Error::Corrupt("a source record without key, version or customer".into())),
        }
    }
    Ok(stored)
}

/// Applies `records` in order inside the caller's transaction. See the module docs.
pub async fn upsert_prepared_in(
    tx: &mut PgConnection,
    trust: &TrustTable,
    pii: &PiiCipher,
    records: &[PreparedRecord],
    actor: Option<&str>,
) -> Result<Vec<UpsertResult>> {
    let now: OffsetDateTime =
        sqlx::query_scalar("SELECT now() FROM pg_advisory_xact_lock($1)").bind(ECIF_LOCK).fetch_one(&mut *tx).await?;
    let mut results = Vec::with_capacity(records.len());
    let mut i = 0;
    while i < records.len() {
        let window = &records[i..records.len().min(i + WINDOW)];
        let stored = read_stored(tx, window, true).await?;
        let simple = simple_prefix(window, &stored.records);
        if simple == 0 {
            results.push(super::upsert_in(tx, trust, pii, &window[0].validated, actor).await?);
            i += 1;
        } else {
            results.extend(run::apply_run(tx, trust, &window[..simple], &stored, now, actor).await?);
            i += simple;
        }
    }
    Ok(results)
}

/// How many records at the start of `records` are simple (see the module docs) given
/// the stored records `existing`.
fn simple_prefix(records: &[PreparedRecord], existing: &HashMap<Key, Existing>) -> usize {
    let mut seen = HashSet::new();
    records
        .iter()
        .take_while(|r| {
            let (sys, id) = r.key();
            // A second record of one source key waits for the next run, which sees the
            // first one stored.
            seen.insert((sys, id))
                && match existing.get(&(sys.to_string(), id.to_string())) {
                    None => true,
                    Some(e) => {
                        r.validated.record.source_version <= e.version || (r.digest.is_some() && r.digest == e.digest)
                    }
                }
        })
        .count()
}

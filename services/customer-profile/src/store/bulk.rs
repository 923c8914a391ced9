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

use std::collections::{BTreeSet, HashMap, HashSet};

use crm_platform::messaging::outbox::{OutboxEvent, enqueue_many};
use crm_platform::sqlstate::DbFailure;
use crm_proto::crm::customer::v1 as pb;
use serde_json::{Value, json};
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;

use super::{EVENT_SOURCE, ID_INDEX, PHONE_INDEX, UpsertResult, attributes_json, search_form, stored_identity};
use crate::domain::{IdentityKey, PartyKind, TrustTable, ValidatedRecord, customer_number};
use crate::error::{Error, Result};
use crate::pii::PiiCipher;

/// The advisory lock that bulk batches take exclusively and every other ECIF writer
/// shares ("ECIF" in ASCII).
pub(super) const ECIF_LOCK: i64 = 0x4543_4946;

/// How many records after a complex one are looked at again before the next run:
/// bounds the re-reading a batch full of complex records costs.
const WINDOW: usize = 4096;

/// A validated record with everything computed that needs no database: its encrypted
/// attributes and blind indexes. Preparing is CPU work (AES-GCM, HMAC), done before the
/// batch's transaction so that it does not lengthen the time the ECIF lock is held.
#[derive(Debug, Clone)]
pub struct PreparedRecord {
    /// The record as validated (complex records go through the one-by-one path).
    pub validated: ValidatedRecord,
    flags: Vec<String>,
    digest: Option<String>,
    blind: Option<String>,
    name_key: Option<String>,
    attributes: Value,
    phone_index: Option<String>,
    id_index: String,
    /// Trace of the call that brought the record: its events continue it even when
    /// another task writes them.
    trace: (Option<String>, Option<String>),
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

    fn key(&self) -> (&str, &str) {
        (&self.validated.record.source_system, &self.validated.record.source_customer_id)
    }
}

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
    let rows = sqlx::query(
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
        let party_id: i64 = row.try_get("party_id")?;
        let digest: Option<String> = row.try_get("identity_digest")?;
        match row.try_get::<Option<String>, _>("source_system")? {
            Some(system) => {
                let existing = Existing {
                    version: row.try_get("source_version")?,
                    party_id,
                    digest,
                    customer_number: row.try_get("customer_number")?,
                };
                stored.records.insert((system, row.try_get("source_customer_id")?), existing);
            }
            None => {
                let digest = digest.ok_or_else(|| Error::Corrupt("an identity group without digest".into()))?;
                stored.identities.insert(digest, party_id);
            }
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
            results.extend(apply_run(tx, trust, &window[..simple], &stored, now, actor).await?);
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
    pool: &sqlx::PgPool,
    trust: &TrustTable,
    records: &[PreparedRecord],
    actor: Option<&str>,
    audits: &[Option<super::AuditEntry>],
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
        let part_audits: Vec<Option<super::AuditEntry>> =
            idx.iter().map(|i| audits.get(*i).cloned().flatten()).collect();
        let outcome = apply_partition(pool, trust, p, &part, actor, &part_audits).await;
        Ok::<_, Error>((idx, outcome))
    });
    let mut applied = Vec::with_capacity(records.len());
    let mut handed_back = Vec::new();
    for (idx, outcome) in futures::future::try_join_all(runs).await? {
        match outcome {
            Ok(Some(results)) => applied.extend(idx.into_iter().zip(results)),
            Ok(None) => handed_back.extend(idx),
            Err(e) if super::retryable(&e) || unique_violation(&e) => handed_back.extend(idx),
            Err(e) => return Err(e),
        }
    }
    Ok(Some((applied, handed_back)))
}

fn unique_violation(e: &Error) -> bool {
    matches!(e, Error::Database(d) if DbFailure::of(d) == DbFailure::UniqueViolation)
}

async fn apply_partition(
    pool: &sqlx::PgPool,
    trust: &TrustTable,
    partition: usize,
    records: &[PreparedRecord],
    actor: Option<&str>,
    audits: &[Option<super::AuditEntry>],
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
    let results = apply_run(&mut tx, trust, records, &stored, now, actor).await?;
    super::audit_in(&mut tx, &super::queue::completed_audits(&results, audits)).await?;
    tx.commit().await?;
    Ok(Some(results))
}

/// Where a record of a run lands.
#[derive(Clone, Copy)]
enum Slot {
    /// A replay or an older version: nothing changes.
    Unchanged,
    /// A party that exists already.
    Party(i64),
    /// The `n`th party founded by this run.
    New(usize),
}

/// A party as survivorship sees it during a run.
struct PartyState {
    party_id: i64,
    customer_number: String,
    founded: bool,
    /// Source records: (system, id, attributes, flags, updated at µs).
    records: Vec<(String, String, Value, Vec<String>, i64)>,
    golden: Value,
    lineage: Value,
    flags: Vec<String>,
}

async fn apply_run(
    tx: &mut PgConnection,
    trust: &TrustTable,
    run: &[PreparedRecord],
    stored: &Stored,
    now: OffsetDateTime,
    actor: Option<&str>,
) -> Result<Vec<UpsertResult>> {
    let existing_of = |r: &PreparedRecord| stored.records.get(&(r.key().0.to_string(), r.key().1.to_string()));
    let known = &stored.identities;
    let unchanged = |r: &PreparedRecord| UpsertResult {
        customer_number: existing_of(r).map(|e| e.customer_number.clone()).unwrap_or_default(),
        outcome: pb::UpsertOutcome::Unchanged,
        quality_flags: r.flags.clone(),
        absorbed: vec![],
    };

    // Where every record goes; new identities found parties (in record order, as one by
    // one would number them).
    let mut founded_by: HashMap<&str, usize> = HashMap::new();
    let mut new_kinds: Vec<PartyKind> = Vec::new();
    let mut new_groups: Vec<(&PreparedRecord, usize)> = Vec::new();
    let slots: Vec<Slot> = run
        .iter()
        .map(|r| match existing_of(r) {
            Some(e) if r.validated.record.source_version <= e.version => Slot::Unchanged,
            Some(e) => Slot::Party(e.party_id),
            None => match r.digest.as_deref() {
                Some(d) => match (known.get(d), founded_by.get(d)) {
                    (Some(p), _) => Slot::Party(*p),
                    (None, Some(n)) => Slot::New(*n),
                    (None, None) => {
                        new_kinds.push(r.validated.record.party_kind);
                        founded_by.insert(d, new_kinds.len() - 1);
                        new_groups.push((r, new_kinds.len() - 1));
                        Slot::New(new_kinds.len() - 1)
                    }
                },
                None => {
                    new_kinds.push(r.validated.record.party_kind);
                    Slot::New(new_kinds.len() - 1)
                }
            },
        })
        .collect();

    // Existing parties the run changes.
    let touched: Vec<i64> = slots
        .iter()
        .filter_map(|s| if let Slot::Party(p) = s { Some(*p) } else { None })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if new_kinds.is_empty() && touched.is_empty() {
        // Replays and older versions only: nothing to write.
        return Ok(run.iter().map(unchanged).collect());
    }
    let plans = GenericPlans::open(tx).await?;

    let mut parties: Vec<PartyState> = Vec::new();
    let mut index_of: HashMap<i64, usize> = HashMap::new();
    if !new_kinds.is_empty() {
        let ids: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT nextval('party_party_id_seq'), nextval('customer_number_seq') FROM generate_series(1, $1)",
        )
        .bind(new_kinds.len() as i64)
        .fetch_all(&mut *tx)
        .await?;
        for ((party_id, seq), kind) in ids.into_iter().zip(&new_kinds) {
            let number = customer_number(*kind, seq as u64)
                .ok_or_else(|| Error::Corrupt("customer number sequence exhausted".into()))?;
            index_of.insert(party_id, parties.len());
            parties.push(PartyState {
                party_id,
                customer_number: number,
                founded: true,
                records: Vec::new(),
                golden: json!({}),
                lineage: json!({}),
                flags: Vec::new(),
            });
        }
    }
    let new_count = parties.len();

    // The touched parties with their records as they are before the run.
    if !touched.is_empty() {
        let rows = sqlx::query(
            "SELECT party_id, customer_number, golden, lineage, quality_flags FROM party
             WHERE party_id = ANY($1) ORDER BY party_id FOR UPDATE",
        )
        .bind(&touched)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let party_id: i64 = row.try_get("party_id")?;
            index_of.insert(party_id, parties.len());
            parties.push(PartyState {
                party_id,
                customer_number: row.try_get("customer_number")?,
                founded: false,
                records: Vec::new(),
                golden: row.try_get("golden")?,
                lineage: row.try_get("lineage")?,
                flags: row.try_get("quality_flags")?,
            });
        }
        let rows = sqlx::query(
            "SELECT party_id, source_system, source_customer_id, attributes, quality_flags, updated_at
             FROM source_record WHERE party_id = ANY($1)",
        )
        .bind(&touched)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let party_id: i64 = row.try_get("party_id")?;
            let updated: OffsetDateTime = row.try_get("updated_at")?;
            let p = index_of.get(&party_id).ok_or_else(|| Error::Corrupt(format!("party {party_id} vanished")))?;
            parties[*p].records.push((
                row.try_get("source_system")?,
                row.try_get("source_customer_id")?,
                row.try_get("attributes")?,
                row.try_get("quality_flags")?,
                micros(updated),
            ));
        }
    }

    // Apply the records in order, in memory, exactly as one by one would.
    let now_us = micros(now);
    let mut results = Vec::with_capacity(run.len());
    let mut history = History::default();
    let mut events: Vec<OutboxEvent> = Vec::new();
    let mut written: Vec<(&PreparedRecord, i64)> = Vec::new();
    for (r, slot) in run.iter().zip(&slots) {
        let v = &r.validated.record;
        let p = match *slot {
            Slot::Unchanged => {
                results.push(unchanged(r));
                continue;
            }
            Slot::New(n) => n,
            Slot::Party(id) => *index_of.get(&id).ok_or_else(|| Error::Corrupt(format!("party {id} vanished")))?,
        };
        let party = &mut parties[p];
        let entry =
            (v.source_system.clone(), v.source_customer_id.clone(), r.attributes.clone(), r.flags.clone(), now_us);
        match party.records.iter_mut().find(|x| x.0 == v.source_system && x.1 == v.source_customer_id) {
            Some(x) => *x = entry,
            None => party.records.push(entry),
        }
        let survived = super::survive(
            trust,
            party.records.iter().map(|(s, i, a, f, u)| (s.as_str(), i.as_str(), a, f.as_slice(), *u)),
        );
        let changed = super::changed_attributes(&party.golden, &survived.golden);
        let source =
            pb::SourceKey { source_system: v.source_system.clone(), source_customer_id: v.source_customer_id.clone() };
        let src = Some((v.source_system.as_str(), v.source_customer_id.as_str()));
        let after = Value::Object(survived.golden);
        if party.founded && party.records.len() == 1 {
            history.push(party.party_id, "CREATED", src, None, Some(&after));
            events.push(
                OutboxEvent::new(
                    &party.customer_number,
                    &pb::CustomerCreated {
                        customer_number: party.customer_number.clone(),
                        party_kind: match v.party_kind {
                            PartyKind::Corporate => pb::PartyKind::Corporate,
                            PartyKind::Personal => pb::PartyKind::Personal,
                        } as i32,
                        source: Some(source),
                    },
                )
                .in_trace(r.trace.clone()),
            );
        } else if !changed.is_empty() {
            history.push(party.party_id, "UPDATED", src, Some(&party.golden), Some(&after));
            events.push(
                OutboxEvent::new(
                    &party.customer_number,
                    &pb::CustomerUpdated {
                        customer_number: party.customer_number.clone(),
                        changed_attributes: changed,
                        source: Some(source),
                    },
                )
                .in_trace(r.trace.clone()),
            );
        }
        party.golden = after;
        party.lineage = Value::Object(survived.lineage);
        party.flags = survived.flags;
        written.push((r, party.party_id));
        results.push(UpsertResult {
            customer_number: party.customer_number.clone(),
            outcome: if existing_of(r).is_some() { pb::UpsertOutcome::Updated } else { pb::UpsertOutcome::Created },
            quality_flags: r.flags.clone(),
            absorbed: vec![],
        });
    }

    let (updated, inserted): (Vec<_>, Vec<_>) = written.iter().partition(|(r, _)| existing_of(r).is_some());
    let changes = Changes {
        founded: &parties[..new_count],
        kinds: &new_kinds,
        touched: &parties[new_count..],
        groups: &new_groups,
        parties: &parties,
        inserted: &inserted,
        updated: &updated,
        history: &history,
    };
    changes.write(tx, actor, plans).await?;
    enqueue_many(tx, EVENT_SOURCE, &events, actor).await?;
    write_suspects(tx, &written).await?;
    Ok(results)
}

fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

fn joined_flags(flags: &[String]) -> String {
    // Flag codes are upper-case words: a comma never occurs in one.
    flags.join(",")
}

/// Everything a run writes to the ECIF tables, written with one statement: a group of
/// single upserts pays PostgreSQL per statement (a round trip, a wake-up of each side,
/// executor start-up) far more than per row.
struct Changes<'a> {
    /// Parties the run founded, with their kinds.
    founded: &'a [PartyState],
    kinds: &'a [PartyKind],
    /// Existing parties the run changed.
    touched: &'a [PartyState],
    /// New identity groups: (record, index of its party in `parties`).
    groups: &'a [(&'a PreparedRecord, usize)],
    parties: &'a [PartyState],
    /// Source records to insert and to replace, with their parties.
    inserted: &'a [&'a (&'a PreparedRecord, i64)],
    updated: &'a [&'a (&'a PreparedRecord, i64)],
    history: &'a History,
}

/// A stretch of a transaction in which statements use their generic plan, made of key
/// look-ups only: the statements that write a run (and read its parties) are planned
/// once per connection instead of on every call. With PostgreSQL's default choice the
/// write statement got a custom plan every time (~0.3 ms of planning, about as much as
/// running it, for a group of single upserts), because a plan that knows the arrays'
/// lengths always looks cheaper. A generic plan is kept until the tables' statistics
/// change, so one made while the tables were small (a fresh database, the first minute
/// of a load) would keep scanning them as they grow; with scans and hash or merge joins
/// ruled out the plan is a nested loop over the arrays with index look-ups, which is
/// right at any size for the statements inside. The stored-records read stays outside.
/// The stretch ends with PostgreSQL's defaults for the rest of the transaction.
#[must_use = "the write statement ends the stretch"]
struct GenericPlans;

/// The settings of a [`GenericPlans`] stretch: (name, inside, after).
const PLAN_SETTINGS: [(&str, &str, &str); 4] = [
    ("plan_cache_mode", "force_generic_plan", "auto"),
    ("enable_seqscan", "off", "on"),
    ("enable_hashjoin", "off", "on"),
    ("enable_mergejoin", "off", "on"),
];

/// The names of [`PLAN_SETTINGS`] and their values inside the stretch or after it.
fn plan_settings(inside: bool) -> ([&'static str; 4], [&'static str; 4]) {
    (PLAN_SETTINGS.map(|(name, _, _)| name), PLAN_SETTINGS.map(|(_, i, a)| if inside { i } else { a }))
}

impl GenericPlans {
    async fn open(tx: &mut PgConnection) -> Result<Self> {
        let (names, values) = plan_settings(true);
        sqlx::query("SELECT set_config(n, v, true) FROM unnest($1::text[], $2::text[]) AS s(n, v)")
            .bind(names.as_slice())
            .bind(values.as_slice())
            .execute(&mut *tx)
            .await?;
        Ok(Self)
    }
}

/// The columns of source records, for `unnest`.
struct RecordColumns<'a> {
    systems: Vec<&'a str>,
    ids: Vec<&'a str>,
    versions: Vec<i64>,
    parties: Vec<i64>,
    digests: Vec<Option<&'a str>>,
    types: Vec<&'a str>,
    blinds: Vec<Option<&'a str>>,
    attributes: Vec<&'a Value>,
    flags: Vec<String>,
    phones: Vec<Option<&'a str>>,
    id_indexes: Vec<&'a str>,
}

impl<'a> RecordColumns<'a> {
    fn of(written: &[&(&'a PreparedRecord, i64)]) -> Self {
        Self {
            systems: written.iter().map(|(r, _)| r.key().0).collect(),
            ids: written.iter().map(|(r, _)| r.key().1).collect(),
            versions: written.iter().map(|(r, _)| r.validated.record.source_version).collect(),
            parties: written.iter().map(|(_, p)| *p).collect(),
            digests: written.iter().map(|(r, _)| r.digest.as_deref()).collect(),
            types: written.iter().map(|(r, _)| r.validated.record.id_type.code()).collect(),
            blinds: written.iter().map(|(r, _)| r.blind.as_deref()).collect(),
            attributes: written.iter().map(|(r, _)| &r.attributes).collect(),
            flags: written.iter().map(|(r, _)| joined_flags(&r.flags)).collect(),
            phones: written.iter().map(|(r, _)| r.phone_index.as_deref()).collect(),
            id_indexes: written.iter().map(|(r, _)| r.id_index.as_str()).collect(),
        }
    }
}

impl Changes<'_> {
    /// Writes the run (never empty: a run with nothing to write returns before the
    /// stretch opens); its last step ends `_plans`.
    async fn write(&self, tx: &mut PgConnection, actor: Option<&str>, _plans: GenericPlans) -> Result<()> {
        let founded_ids: Vec<i64> = self.founded.iter().map(|p| p.party_id).collect();
        let founded_numbers: Vec<&str> = self.founded.iter().map(|p| p.customer_number.as_str()).collect();
        let founded_kinds: Vec<&str> = self.kinds.iter().map(|k| super::party_kind_code(*k)).collect();
        let founded_goldens: Vec<&Value> = self.founded.iter().map(|p| &p.golden).collect();
        let founded_lineages: Vec<&Value> = self.founded.iter().map(|p| &p.lineage).collect();
        let founded_flags: Vec<String> = self.founded.iter().map(|p| joined_flags(&p.flags)).collect();
        let touched_ids: Vec<i64> = self.touched.iter().map(|p| p.party_id).collect();
        let touched_goldens: Vec<&Value> = self.touched.iter().map(|p| &p.golden).collect();
        let touched_lineages: Vec<&Value> = self.touched.iter().map(|p| &p.lineage).collect();
        let touched_flags: Vec<String> = self.touched.iter().map(|p| joined_flags(&p.flags)).collect();
        let group_digests: Vec<&str> = self.groups.iter().filter_map(|(r, _)| r.digest.as_deref()).collect();
        let group_types: Vec<&str> = self.groups.iter().map(|(r, _)| r.validated.record.id_type.code()).collect();
        let group_blinds: Vec<&str> = self.groups.iter().filter_map(|(r, _)| r.blind.as_deref()).collect();
        let group_names: Vec<&str> = self.groups.iter().filter_map(|(r, _)| r.name_key.as_deref()).collect();
        let group_parties: Vec<i64> = self.groups.iter().map(|(_, n)| self.parties[*n].party_id).collect();
        if [group_digests.len(), group_blinds.len(), group_names.len()].iter().any(|n| *n != group_parties.len()) {
            return Err(Error::Corrupt("an identity without digest".into()));
        }
        let ins = RecordColumns::of(self.inserted);
        let upd = RecordColumns::of(self.updated);
        let h = self.history;
        let (after_names, after_values) = plan_settings(false);
        // New source keys go without `ON CONFLICT`: under the ECIF lock (or the
        // partition's) nobody else inserts them, and a plain insert skips the
        // speculative-insertion work. The parts touch disjoint rows, so that their
        // order within the statement does not matter; foreign keys are checked at its
        // end, when the founded parties exist.
        sqlx::query(
            "WITH founded AS (
                 INSERT INTO party (party_id, customer_number, party_kind, golden, lineage, quality_flags)
                 SELECT id, number, kind, golden, lineage, string_to_array(flags, ',')
                 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::text[])
                      AS u(id, number, kind, golden, lineage, flags)
             ), touched AS (
                 UPDATE party p SET golden = u.golden, lineage = u.lineage,
                        quality_flags = string_to_array(u.flags, ','), updated_at = now()
                 FROM unnest($7::bigint[], $8::jsonb[], $9::jsonb[], $10::text[]) AS u(id, golden, lineage, flags)
                 WHERE p.party_id = u.id
             ), groups AS (
                 INSERT INTO identity_group (identity_digest, id_type, match_key, name_key, party_id)
                 SELECT * FROM unnest($11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[])
             ), inserted AS (
                 INSERT INTO source_record (source_system, source_customer_id, source_version, party_id,
                                            identity_digest, id_type, match_key, attributes, quality_flags,
                                            phone_index, id_index)
                 SELECT sys, id, version, party, digest, id_type, blind, attrs, string_to_array(flags, ','),
                        phone, id_index
                 FROM unnest($16::text[], $17::text[], $18::bigint[], $19::bigint[], $20::text[], $21::text[],
                             $22::text[], $23::jsonb[], $24::text[], $25::text[], $26::text[])
                      AS u(sys, id, version, party, digest, id_type, blind, attrs, flags, phone, id_index)
             ), updated AS (
                 UPDATE source_record s SET source_version = u.version, party_id = u.party,
                        identity_digest = u.digest, id_type = u.id_type, match_key = u.blind, attributes = u.attrs,
                        quality_flags = string_to_array(u.flags, ','), phone_index = u.phone,
                        id_index = u.id_index, updated_at = now()
                 FROM unnest($27::text[], $28::text[], $29::bigint[], $30::bigint[], $31::text[], $32::text[],
                             $33::text[], $34::jsonb[], $35::text[], $36::text[], $37::text[])
                      AS u(sys, id, version, party, digest, id_type, blind, attrs, flags, phone, id_index)
                 WHERE s.source_system = u.sys AND s.source_customer_id = u.id
             ), history AS (
                 INSERT INTO party_history (party_id, actor, change_kind, source_system, source_customer_id,
                                            before, after)
                 SELECT h.party, $38, h.kind, h.sys, h.id, h.before, h.after
                 FROM unnest($39::bigint[], $40::text[], $41::text[], $42::text[], $43::jsonb[], $44::jsonb[])
                      WITH ORDINALITY AS h(party, kind, sys, id, before, after, n)
                 ORDER BY h.n
             )
             SELECT set_config(n, v, true) FROM unnest($45::text[], $46::text[]) AS s(n, v)",
        )
        .bind(&founded_ids)
        .bind(&founded_numbers)
        .bind(&founded_kinds)
        .bind(&founded_goldens)
        .bind(&founded_lineages)
        .bind(&founded_flags)
        .bind(&touched_ids)
        .bind(&touched_goldens)
        .bind(&touched_lineages)
        .bind(&touched_flags)
        .bind(&group_digests)
        .bind(&group_types)
        .bind(&group_blinds)
        .bind(&group_names)
        .bind(&group_parties)
        .bind(&ins.systems)
        .bind(&ins.ids)
        .bind(&ins.versions)
        .bind(&ins.parties)
        .bind(&ins.digests)
        .bind(&ins.types)
        .bind(&ins.blinds)
        .bind(&ins.attributes)
        .bind(&ins.flags)
        .bind(&ins.phones)
        .bind(&ins.id_indexes)
        .bind(&upd.systems)
        .bind(&upd.ids)
        .bind(&upd.versions)
        .bind(&upd.parties)
        .bind(&upd.digests)
        .bind(&upd.types)
        .bind(&upd.blinds)
        .bind(&upd.attributes)
        .bind(&upd.flags)
        .bind(&upd.phones)
        .bind(&upd.id_indexes)
        .bind(actor)
        .bind(&h.party)
        .bind(&h.kind)
        .bind(&h.system)
        .bind(&h.id)
        .bind(&h.before)
        .bind(&h.after)
        .bind(after_names.as_slice())
        .bind(after_values.as_slice())
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Same ID type and number under another name, in another party: a suspect pair,
/// unless known already (in particular when a steward said "different parties").
async fn write_suspects(tx: &mut PgConnection, written: &[(&PreparedRecord, i64)]) -> Result<()> {
    let mut digests = Vec::new();
    let mut types = Vec::new();
    let mut blinds = Vec::new();
    let mut seen = HashSet::new();
    for (r, _) in written {
        if let (Some(d), Some(b)) = (r.digest.as_deref(), r.blind.as_deref())
            && seen.insert(d)
        {
            digests.push(d);
            types.push(r.validated.record.id_type.code());
            blinds.push(b);
        }
    }
    if digests.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO suspect_pair (digest_a, digest_b, id_type, match_key)
         SELECT DISTINCT LEAST(d.digest, g.identity_digest), GREATEST(d.digest, g.identity_digest), d.id_type, d.blind
         FROM unnest($1::text[], $2::text[], $3::text[]) AS d(digest, id_type, blind)
         JOIN identity_group me ON me.identity_digest = d.digest
         JOIN identity_group g ON g.id_type = d.id_type AND g.match_key = d.blind
                              AND g.identity_digest <> d.digest AND g.party_id <> me.party_id
         ON CONFLICT (digest_a, digest_b) DO NOTHING",
    )
    .bind(&digests)
    .bind(&types)
    .bind(&blinds)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Party history rows of a run, as columns for [`Changes::write`].
#[derive(Default)]
struct History {
    party: Vec<i64>,
    kind: Vec<&'static str>,
    system: Vec<Option<String>>,
    id: Vec<Option<String>>,
    before: Vec<Option<Value>>,
    after: Vec<Option<Value>>,
}

impl History {
    fn push(
        &mut self,
        party: i64,
        kind: &'static str,
        src: Option<(&str, &str)>,
        before: Option<&Value>,
        after: Option<&Value>,
    ) {
        self.party.push(party);
        self.kind.push(kind);
        self.system.push(src.map(|s| s.0.to_string()));
        self.id.push(src.map(|s| s.1.to_string()));
        self.before.push(before.cloned());
        self.after.push(after.cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

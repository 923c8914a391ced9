//! A run of simple records: where each record goes, survivorship in memory over the
//! parties' records exactly as one by one would, then one write ([`super::write`]),
//! the events and the suspect pairs.

use std::collections::{BTreeSet, HashMap, HashSet};

use crm_platform::messaging::outbox::{OutboxEvent, write_events};
use crm_proto::crm::customer::v1 as pb;
use serde_json::{Value, json};
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::write::{Changes, GenericPlans};
use super::{PreparedRecord, Stored};
use crate::domain::{PartyKind, TrustTable, changed_attributes, customer_number, survive};
use crate::error::{Error, Result};
use crate::store::parties::RecordRow;
use crate::store::{EVENT_SOURCE, UpsertResult, micros};

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

/// A party as survivorship sees it during a run (read from `party`, or founded).
#[derive(sqlx::FromRow)]
pub(super) struct PartyState {
    pub(super) party_id: i64,
    pub(super) customer_number: String,
    /// Founded by this run.
    #[sqlx(skip)]
    founded: bool,
    /// Source records: (system, id, attributes, flags, updated at µs).
    #[sqlx(skip)]
    records: Vec<(String, String, Value, Vec<String>, i64)>,
    pub(super) golden: Value,
    pub(super) lineage: Value,
    #[sqlx(rename = "quality_flags")]
    pub(super) flags: Vec<String>,
}

/// Applies a run of simple records (see [`super`]) given what is stored of them.
pub(super) async fn apply_run(
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
        outcome: crate::domain::UpsertOutcome::Unchanged,
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
        let rows = sqlx::query_as::<_, PartyState>(
            "SELECT party_id, customer_number, golden, lineage, quality_flags FROM party
             WHERE party_id = ANY($1) ORDER BY party_id FOR UPDATE",
        )
        .bind(&touched)
        .fetch_all(&mut *tx)
        .await?;
        for party in rows {
            index_of.insert(party.party_id, parties.len());
            parties.push(party);
        }
        let rows = sqlx::query_as::<_, RecordRow>(
            "SELECT party_id, source_system, source_customer_id, attributes, quality_flags, updated_at
             FROM source_record WHERE party_id = ANY($1)",
        )
        .bind(&touched)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let party_id = row.party_id;
            let p = index_of.get(&party_id).ok_or_else(|| Error::Corrupt(format!("party {party_id} vanished")))?;
            parties[*p].records.push(row.into_survivorship());
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
        let joined = match party.records.iter_mut().find(|x| x.0 == v.source_system && x.1 == v.source_customer_id) {
            Some(x) => {
                *x = entry;
                false
            }
            None => {
                party.records.push(entry);
                true
            }
        };
        let survived =
            survive(trust, party.records.iter().map(|(s, i, a, f, u)| (s.as_str(), i.as_str(), a, f.as_slice(), *u)));
        let changed = changed_attributes(&party.golden, &survived.golden);
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
                        demographics: Some(crate::convert::demographics(&after)),
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
                        demographics: Some(crate::convert::demographics(&after)),
                    },
                )
                .in_trace(r.trace.clone()),
            );
        } else if joined {
            events.push(
                OutboxEvent::new(
                    &party.customer_number,
                    &pb::SourceRecordLinked { customer_number: party.customer_number.clone(), source: Some(source) },
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
            outcome: if existing_of(r).is_some() {
                crate::domain::UpsertOutcome::Updated
            } else {
                crate::domain::UpsertOutcome::Created
            },
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
    write_events(tx, EVENT_SOURCE, &events, actor).await?;
    write_suspects(tx, &written).await?;
    Ok(results)
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

/// Party history rows of a run, as columns for [`Changes::write`](super::write).
#[derive(Default)]
pub(super) struct History {
    pub(super) party: Vec<i64>,
    pub(super) kind: Vec<&'static str>,
    pub(super) system: Vec<Option<String>>,
    pub(super) id: Vec<Option<String>>,
    pub(super) before: Vec<Option<Value>>,
    pub(super) after: Vec<Option<Value>>,
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

//! The write of a run: everything it changes in the ECIF tables, with one statement
//! (`write.sql`) run under generic plans.

use serde_json::Value;
use sqlx::PgConnection;

use super::PreparedRecord;
use super::run::{History, PartyState};
use crate::domain::PartyKind;
use crate::error::{Error, Result};
use crate::store::party_kind_code;

/// Everything a run writes to the ECIF tables, written with one statement: a group of
/// single upserts pays PostgreSQL per statement (a round trip, a wake-up of each side,
/// executor start-up) far more than per row.
pub(super) struct Changes<'a> {
    /// Parties the run founded, with their kinds.
    pub(super) founded: &'a [PartyState],
    pub(super) kinds: &'a [PartyKind],
    /// Existing parties the run changed.
    pub(super) touched: &'a [PartyState],
    /// New identity groups: (record, index of its party in `parties`).
    pub(super) groups: &'a [(&'a PreparedRecord, usize)],
    pub(super) parties: &'a [PartyState],
    /// Source records to insert and to replace, with their parties.
    pub(super) inserted: &'a [&'a (&'a PreparedRecord, i64)],
    pub(super) updated: &'a [&'a (&'a PreparedRecord, i64)],
    pub(super) history: &'a History,
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
pub(super) struct GenericPlans;

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
    /// Opens the stretch.
    pub(super) async fn open(tx: &mut PgConnection) -> Result<Self> {
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
    pub(super) async fn write(&self, tx: &mut PgConnection, actor: Option<&str>, _plans: GenericPlans) -> Result<()> {
        let founded_ids: Vec<i64> = self.founded.iter().map(|p| p.party_id).collect();
        let founded_numbers: Vec<&str> = self.founded.iter().map(|p| p.customer_number.as_str()).collect();
        let founded_kinds: Vec<&str> = self.kinds.iter().map(|k| party_kind_code(*k)).collect();
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
        sqlx::query(include_str!("write.sql"))
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

/// Flags as one text, for `unnest` (PostgreSQL has no arrays of arrays of differing
/// lengths); `string_to_array` splits them again.
fn joined_flags(flags: &[String]) -> String {
    // Flag codes are upper-case words: a comma never occurs in one.
    flags.join(",")
}

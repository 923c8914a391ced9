//! Balance snapshots and transactions as sent, each kept by its natural key, with the
//! customer that owns it now (`fact_owner` of how it named the customer; NULL while that
//! customer is not known, and the fact waits). [`ingest`] is the one way a batch of
//! facts comes in, from a stream (`LoadBalances`, `RecordTransactions`) or a file
//! (`analytics load-balances`).

use std::collections::{BTreeSet, HashMap};

use sqlx::PgConnection;

use crate::domain::facts::{BalanceSnapshot, Transaction};
use crate::error::Result;

/// What storing a batch of facts did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stored {
    /// New or corrected facts.
    pub accepted: i64,
    /// Facts stored before exactly as sent.
    pub unchanged: i64,
    /// Accepted facts whose customer (or FX rate) is not known yet.
    pub pending: i64,
    /// Customers whose facts changed (marked due for revaluation).
    pub touched: BTreeSet<String>,
}

/// A fact of a stream or a file: its natural key, its product, how a batch of them is
/// stored.
pub(crate) trait Fact: Sized + Sync {
    /// Unique per fact (a transaction's id; a balance's account and day).
    fn key(&self) -> (&str, Option<time::Date>);
    /// The product it names.
    fn product_code(&self) -> &str;
    /// Stores `facts`, unique by key.
    async fn store(tx: &mut PgConnection, facts: &[&Self]) -> Result<Stored>;
}

impl Fact for BalanceSnapshot {
    fn key(&self) -> (&str, Option<time::Date>) {
        (&self.account_id, Some(self.date))
    }
    fn product_code(&self) -> &str {
        &self.product_code
    }
    async fn store(tx: &mut PgConnection, facts: &[&Self]) -> Result<Stored> {
        store_balances(tx, facts).await
    }
}

impl Fact for Transaction {
    fn key(&self) -> (&str, Option<time::Date>) {
        (&self.transaction_id, None)
    }
    fn product_code(&self) -> &str {
        &self.product_code
    }
    async fn store(tx: &mut PgConnection, facts: &[&Self]) -> Result<Stored> {
        store_transactions(tx, facts).await
    }
}

/// What [`ingest`] did with a batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// New or corrected facts (a fact superseded by a later one of the batch counts).
    pub accepted: i64,
    /// Facts stored before exactly as sent.
    pub unchanged: i64,
    /// Of the accepted, those whose customer (or FX rate) is not known yet.
    pub pending: i64,
    /// The facts refused for naming a product outside the catalogue: their positions
    /// (as the batch gave them) and the product code.
    pub unknown_product: Vec<(i64, String)>,
}

/// Stores a batch of facts, each with its position in its stream or file, and marks
/// the customers it touched due for revaluation, all in `tx`: facts naming a product outside
/// the catalogue are refused; of two facts with one key, the later in the batch wins.
pub(crate) async fn ingest<F: Fact>(tx: &mut PgConnection, batch: &[(i64, F)]) -> Result<Ingested> {
    let mut ingested = Ingested::default();
    if batch.is_empty() {
        return Ok(ingested);
    }
    let codes: Vec<&str> = batch.iter().map(|(_, f)| f.product_code()).collect();
    let known = crate::store::catalogue::known_products(&mut *tx, &codes).await?;
    let mut latest: HashMap<(&str, Option<time::Date>), usize> = HashMap::new();
    for (position, (index, fact)) in batch.iter().enumerate() {
        if !known.iter().any(|k| k == fact.product_code()) {
            ingested.unknown_product.push((*index, fact.product_code().to_string()));
        } else if latest.insert(fact.key(), position).is_some() {
            ingested.accepted += 1;
        }
    }
    let mut positions: Vec<usize> = latest.into_values().collect();
    positions.sort_unstable();
    let facts: Vec<&F> = positions.iter().map(|&p| &batch[p].1).collect();
    let stored = F::store(&mut *tx, &facts).await?;
    crate::store::revaluation::mark_due(&mut *tx, &stored.touched).await?;
    ingested.accepted += stored.accepted;
    ingested.unchanged = stored.unchanged;
    ingested.pending = stored.pending;
    Ok(ingested)
}

/// Stores `snapshots` (unique by account and date within the batch): a snapshot sent
/// before unchanged is left alone, a different balance for its key corrects it.
pub async fn store_balances(tx: &mut PgConnection, snapshots: &[&BalanceSnapshot]) -> Result<Stored> {
    let mut columns = BalanceColumns::default();
    for s in snapshots {
        let (number, system, id) = s.customer.columns();
        columns.account.push(s.account_id.as_str());
        columns.date.push(s.date);
        columns.number.push(number);
        columns.system.push(system);
        columns.id.push(id);
        columns.product.push(s.product_code.as_str());
        columns.amount.push(s.balance.amount_minor);
        columns.currency.push(s.balance.currency.as_str());
    }
    let rows: Vec<(Option<String>, Option<String>, bool)> = sqlx::query_as(
        "WITH sent AS (
             SELECT * FROM UNNEST($1::text[], $2::date[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[])
                 AS s(account_id, balance_date, ref_number, ref_system, ref_id, product_code, amount_minor, currency_code)),
         before AS (
             SELECT b.account_id, b.balance_date, b.customer_number FROM balance_snapshot b
             JOIN sent USING (account_id, balance_date))
         INSERT INTO balance_snapshot AS b (account_id, balance_date, ref_customer_number, ref_source_system, ref_source_id,
                                            customer_number, product_code, amount_minor, currency_code)
         SELECT account_id, balance_date, ref_number, ref_system, ref_id, fact_owner(ref_number, ref_system, ref_id),
                product_code, amount_minor, currency_code
         FROM sent
         ON CONFLICT (account_id, balance_date) DO UPDATE SET
             ref_customer_number = EXCLUDED.ref_customer_number, ref_source_system = EXCLUDED.ref_source_system,
             ref_source_id = EXCLUDED.ref_source_id, customer_number = EXCLUDED.customer_number,
             product_code = EXCLUDED.product_code, amount_minor = EXCLUDED.amount_minor,
             currency_code = EXCLUDED.currency_code, loaded_at = now()
         WHERE (b.ref_customer_number, b.ref_source_system, b.ref_source_id, b.product_code, b.amount_minor, b.currency_code)
               IS DISTINCT FROM
               (EXCLUDED.ref_customer_number, EXCLUDED.ref_source_system, EXCLUDED.ref_source_id, EXCLUDED.product_code,
                EXCLUDED.amount_minor, EXCLUDED.currency_code)
         RETURNING b.customer_number,
                   (SELECT p.customer_number FROM before p
                    WHERE p.account_id = b.account_id AND p.balance_date = b.balance_date),
                   b.customer_number IS NULL
                   OR (b.currency_code <> 'CNY' AND NOT EXISTS (
                         SELECT 1 FROM fx_rate r WHERE r.currency_code = b.currency_code AND r.rate_date <= b.balance_date))",
    )
    .bind(&columns.account)
    .bind(&columns.date)
    .bind(&columns.number)
    .bind(&columns.system)
    .bind(&columns.id)
    .bind(&columns.product)
    .bind(&columns.amount)
    .bind(&columns.currency)
    .fetch_all(&mut *tx)
    .await?;
    Ok(tally(snapshots.len(), rows))
}

#[derive(Default)]
struct BalanceColumns<'a> {
    account: Vec<&'a str>,
    date: Vec<time::Date>,
    number: Vec<Option<&'a str>>,
    system: Vec<Option<&'a str>>,
    id: Vec<Option<&'a str>>,
    product: Vec<&'a str>,
    amount: Vec<i64>,
    currency: Vec<&'a str>,
}

/// Stores `transactions` (unique by id within the batch); one stored before is left as
/// it is (a replay changes nothing).
pub async fn store_transactions(tx: &mut PgConnection, transactions: &[&Transaction]) -> Result<Stored> {
    let mut c = TransactionColumns::default();
    for t in transactions {
        let (number, system, id) = t.customer.columns();
        c.id.push(t.transaction_id.as_str());
        c.number.push(number);
        c.system.push(system);
        c.source_id.push(id);
        c.account.push(t.account_id.as_str());
        c.product.push(t.product_code.as_str());
        c.amount.push(t.amount.amount_minor);
        c.currency.push(t.amount.currency.as_str());
        c.channel.push(t.channel.as_str());
        c.posted.push(t.posted_at);
        c.region.push(t.region_code.as_str());
    }
    let rows: Vec<(Option<String>, Option<String>, bool)> = sqlx::query_as(
        "INSERT INTO transaction_fact AS t (transaction_id, ref_customer_number, ref_source_system, ref_source_id,
                                            customer_number, account_id, product_code, amount_minor, currency_code,
                                            channel, posted_at, region_code)
         SELECT id, ref_number, ref_system, ref_id, fact_owner(ref_number, ref_system, ref_id), account_id, product_code,
                amount_minor, currency_code, channel, posted_at, region_code
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[],
                     $9::text[], $10::timestamptz[], $11::text[])
             AS s(id, ref_number, ref_system, ref_id, account_id, product_code, amount_minor, currency_code, channel,
                  posted_at, region_code)
         ON CONFLICT (transaction_id) DO NOTHING
         RETURNING t.customer_number, NULL::text,
                   t.customer_number IS NULL
                   OR (t.currency_code <> 'CNY' AND NOT EXISTS (
                         SELECT 1 FROM fx_rate r WHERE r.currency_code = t.currency_code
                                                   AND r.rate_date <= t.posted_at::date))",
    )
    .bind(&c.id)
    .bind(&c.number)
    .bind(&c.system)
    .bind(&c.source_id)
    .bind(&c.account)
    .bind(&c.product)
    .bind(&c.amount)
    .bind(&c.currency)
    .bind(&c.channel)
    .bind(&c.posted)
    .bind(&c.region)
    .fetch_all(&mut *tx)
    .await?;
    Ok(tally(transactions.len(), rows))
}

#[derive(Default)]
struct TransactionColumns<'a> {
    id: Vec<&'a str>,
    number: Vec<Option<&'a str>>,
    system: Vec<Option<&'a str>>,
    source_id: Vec<Option<&'a str>>,
    account: Vec<&'a str>,
    product: Vec<&'a str>,
    amount: Vec<i64>,
    currency: Vec<&'a str>,
    channel: Vec<&'a str>,
    posted: Vec<time::OffsetDateTime>,
    region: Vec<&'a str>,
}

/// `(owner now, owner before, pending)` per written row → the batch's tally.
fn tally(sent: usize, rows: Vec<(Option<String>, Option<String>, bool)>) -> Stored {
    let mut stored = Stored { accepted: rows.len() as i64, unchanged: (sent - rows.len()) as i64, ..Stored::default() };
    for (now, before, pending) in rows {
        stored.pending += i64::from(pending);
        stored.touched.extend([now, before].into_iter().flatten());
    }
    stored
}

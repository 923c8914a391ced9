//! The product catalogue and FX rates: reference data the facts are valued with.

use sqlx::{PgConnection, PgPool};
use time::Date;

use crate::domain::aum::AssetClass;
use crate::domain::facts::Product;
use crate::error::{Error, Result};

/// A stored product.
#[derive(Debug, sqlx::FromRow)]
struct ProductRow {
    product_code: String,
    name: String,
    asset_class: String,
    risk_level: i16,
    aum_weight_bp: i32,
    family: String,
}

impl TryFrom<ProductRow> for Product {
    type Error = Error;

    fn try_from(r: ProductRow) -> Result<Self> {
        let asset_class: AssetClass = r
            .asset_class
            .parse()
            .map_err(|_| Error::Corrupt(format!("product {}: asset class {:?}", r.product_code, r.asset_class)))?;
        Ok(Product {
            code: r.product_code,
            name: r.name,
            asset_class,
            risk_level: r.risk_level,
            aum_weight_bp: r.aum_weight_bp,
            family: r.family,
        })
    }
}

/// Stores `product`; true when it was new or differed from the stored one.
pub async fn upsert_product(tx: &mut PgConnection, product: &Product) -> Result<bool> {
    let changed = sqlx::query(
        "INSERT INTO product (product_code, name, asset_class, risk_level, aum_weight_bp, family)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (product_code) DO UPDATE SET
             name = EXCLUDED.name, asset_class = EXCLUDED.asset_class, risk_level = EXCLUDED.risk_level,
             aum_weight_bp = EXCLUDED.aum_weight_bp, family = EXCLUDED.family, updated_at = now()
         WHERE (product.name, product.asset_class, product.risk_level, product.aum_weight_bp, product.family)
               IS DISTINCT FROM
               (EXCLUDED.name, EXCLUDED.asset_class, EXCLUDED.risk_level, EXCLUDED.aum_weight_bp, EXCLUDED.family)",
    )
    .bind(&product.code)
    .bind(&product.name)
    .bind(product.asset_class.as_str())
    .bind(product.risk_level)
    .bind(product.aum_weight_bp)
    .bind(&product.family)
    .execute(&mut *tx)
    .await?;
    Ok(changed.rows_affected() == 1)
}

/// Customers holding `code` (their value depends on its class and weight).
pub async fn holders(tx: &mut PgConnection, code: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT customer_number FROM balance_snapshot WHERE product_code = $1 AND customer_number IS NOT NULL",
    )
    .bind(code)
    .fetch_all(&mut *tx)
    .await?)
}

/// The catalogue, by product code.
pub async fn products(pool: &PgPool) -> Result<Vec<Product>> {
    let rows: Vec<ProductRow> = sqlx::query_as(
        "SELECT product_code, name, asset_class, risk_level, aum_weight_bp, family FROM product ORDER BY product_code",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Product::try_from).collect()
}

/// Which of `codes` the catalogue holds.
pub async fn known_products(tx: &mut PgConnection, codes: &[&str]) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT product_code FROM product WHERE product_code = ANY($1)")
        .bind(codes)
        .fetch_all(&mut *tx)
        .await?)
}

/// Stores an FX rate (replacing one for the same currency and date) and answers the
/// customers holding balances in that currency from that date on.
pub async fn set_fx_rate(
    tx: &mut PgConnection,
    currency: &str,
    date: Date,
    cny_per_unit_micros: i64,
) -> Result<Vec<String>> {
    sqlx::query(
        "INSERT INTO fx_rate (currency_code, rate_date, cny_per_unit_micros) VALUES ($1, $2, $3)
         ON CONFLICT (currency_code, rate_date) DO UPDATE SET cny_per_unit_micros = EXCLUDED.cny_per_unit_micros",
    )
    .bind(currency)
    .bind(date)
    .bind(cny_per_unit_micros)
    .execute(&mut *tx)
    .await?;
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT customer_number FROM balance_snapshot
         WHERE currency_code = $1 AND balance_date >= $2 AND customer_number IS NOT NULL",
    )
    .bind(currency)
    .bind(date)
    .fetch_all(&mut *tx)
    .await?)
}

/// Stores the good products of `parsed` in one transaction (a refused one answers
/// false), recomputes the customers holding a changed one and audits the changes.
pub async fn upsert_products<E>(
    pool: &PgPool,
    context: &crm_platform::context::CallContext,
    parsed: &[std::result::Result<Product, E>],
) -> Result<Vec<bool>> {
    let mut tx = pool.begin().await?;
    let mut outcomes = Vec::with_capacity(parsed.len());
    let mut touched = std::collections::BTreeSet::new();
    let mut audit = Vec::new();
    for product in parsed {
        let changed = match product {
            Ok(p) => {
                let changed = upsert_product(&mut tx, p).await?;
                if changed {
                    touched.extend(holders(&mut tx, &p.code).await?);
                    audit.push(context.audit(
                        "product.changed",
                        Some(&p.code),
                        serde_json::json!({"asset_class": p.asset_class.as_str(), "aum_weight_bp": p.aum_weight_bp}),
                    ));
                }
                changed
            }
            Err(_) => false,
        };
        outcomes.push(changed);
    }
    super::revaluation::mark_due(&mut tx, &touched).await?;
    crm_platform::audit::record_in(&mut tx, &audit).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Stores `rates` in one transaction and recomputes the customers they value; answers
/// how many waiting facts now count.
pub async fn set_fx_rates(
    pool: &PgPool,
    context: &crm_platform::context::CallContext,
    rates: &[(crm_platform::convert::Currency, Date, i64)],
) -> Result<i64> {
    let mut tx = pool.begin().await?;
    let mut touched = std::collections::BTreeSet::new();
    let mut released = 0;
    for (currency, date, micros) in rates {
        released += waiting_for_rate(&mut tx, currency.as_str(), *date).await?;
        touched.extend(set_fx_rate(&mut tx, currency.as_str(), *date, *micros).await?);
    }
    super::revaluation::mark_due(&mut tx, &touched).await?;
    let entry = context.audit(
        "fx_rates.set",
        None,
        serde_json::json!({"rates": rates.iter().map(|(c, d, m)| format!("{c} {d} {m}")).collect::<Vec<_>>()}),
    );
    crm_platform::audit::record_in(&mut tx, &[entry]).await?;
    tx.commit().await?;
    Ok(released)
}

/// Facts in `currency` from `date` on that have no rate yet (they count once it exists).
async fn waiting_for_rate(tx: &mut PgConnection, currency: &str, date: Date) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM balance_snapshot b
                 WHERE b.currency_code = $1 AND b.balance_date >= $2
                   AND NOT EXISTS (SELECT 1 FROM fx_rate r WHERE r.currency_code = $1 AND r.rate_date <= b.balance_date))
              + (SELECT count(*) FROM transaction_fact t
                 WHERE t.currency_code = $1 AND t.posted_at::date >= $2
                   AND NOT EXISTS (SELECT 1 FROM fx_rate r WHERE r.currency_code = $1 AND r.rate_date <= t.posted_at::date))",
    )
    .bind(currency)
    .bind(date)
    .fetch_one(&mut *tx)
    .await?)
}

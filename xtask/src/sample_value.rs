//! The analytics half of `cargo xtask sample`: a product catalogue, three months of
//! daily balances for the showcase customers and ten-day balances for the generated
//! ones (named by their source keys, as core banking sends them), month closings, and
//! what analytics made of it: a value card, a level history, and the 360° view's value
//! card from customer-profile; then card transactions, the RFM they give, two rule
//! tags and a segment evaluated over them.

use std::time::Duration;

use crm_platform::grpc::client::BearerToken;
use crm_proto::crm::analytics::v1 as apb;
use crm_proto::crm::common::v1 as common;
use crm_proto::crm::customer::v1 as pb;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Analytics = apb::analytics_service_client::AnalyticsServiceClient<InterceptedService<Channel, BearerToken>>;
type Customers = pb::customer_service_client::CustomerServiceClient<InterceptedService<Channel, BearerToken>>;

fn product(code: &str, name: &str, class: apb::AssetClass, weight_bp: i32) -> apb::Product {
    apb::Product {
        product_code: code.into(),
        name: name.into(),
        asset_class: class as i32,
        risk_level: 2,
        aum_weight_bp: weight_bp,
        family: String::new(),
    }
}

fn yuan(n: i64) -> common::Money {
    common::Money { amount_minor: n * 100, currency_code: "CNY".into() }
}

fn snapshot(
    account: &str,
    system: &str,
    id: &str,
    product: &str,
    amount: i64,
    on: time::Date,
) -> apb::LoadBalancesRequest {
    apb::LoadBalancesRequest {
        snapshot: Some(apb::BalanceSnapshot {
            account_id: account.into(),
            customer: Some(apb::CustomerRef {
                customer: Some(apb::customer_ref::Customer::SourceKey(pb::SourceKey {
                    source_system: system.into(),
                    source_customer_id: id.into(),
                })),
            }),
            product_code: product.into(),
            balance: Some(yuan(amount)),
            balance_date: Some(crm_platform::convert::date(on)),
        }),
    }
}

/// The balances of the sample: the three months before this one.
fn balances(generated: &[pb::SourceRecord], first: time::Date, last: time::Date) -> Vec<apb::LoadBalancesRequest> {
    let mut out = Vec::new();
    let mut day = first;
    let mut i = 0i64;
    while day <= last {
        // 张伟: savings of 30,000 CNY, and a wealth product bought in the second month
        // that lifts him to gold at once; redeemed in the third, so a watch starts.
        out.push(snapshot("SAMPLE-ACC-1", "CORE", "SAMPLE-C-1", "DEP-SAVINGS", 30_000 + i * 10, day));
        let wealth = if (30..60).contains(&i) { 80_000 } else { 0 };
        out.push(snapshot("SAMPLE-ACC-2", "CORE", "SAMPLE-C-1", "WM-STABLE", wealth, day));
        out.push(snapshot("SAMPLE-ACC-3", "LOANS", "SAMPLE-L-1", "LOAN-MORT", -600_000, day));
        // 张玮 (the suspect pair's other half): a small deposit.
        out.push(snapshot("SAMPLE-ACC-4", "CARDS", "SAMPLE-K-2", "DEP-SAVINGS", 2_000, day));
        if i % 10 == 0 {
            for (n, r) in generated.iter().enumerate() {
                let Some(key) = &r.key else { continue };
                let amount = ((n as i64 * 7_919) % 120_000) + i * 100;
                let account = format!("SAMPLE-G-{}-{}", key.source_system, key.source_customer_id);
                out.push(snapshot(&account, &key.source_system, &key.source_customer_id, "TD-1Y", amount, day));
            }
        }
        i += 1;
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    out
}

/// Loads the analytics sample and shows it.
pub async fn run(
    analytics: &mut Analytics,
    customers: &mut Customers,
    generated: &[pb::SourceRecord],
    merged_number: &str,
) -> Result<(), String> {
    let products = vec![
        product("DEP-SAVINGS", "活期储蓄", apb::AssetClass::Deposit, 10_000),
        product("TD-1Y", "一年定期", apb::AssetClass::Deposit, 10_000),
        product("WM-STABLE", "稳健理财", apb::AssetClass::WealthManagement, 10_000),
        apb::Product {
            family: "cards".into(), ..product("CARD-DEBIT", "借记卡", apb::AssetClass::Settlement, 10_000)
        },
        product("LOAN-MORT", "个人住房贷款", apb::AssetClass::Loan, 10_000),
    ];
    analytics.upsert_products(apb::UpsertProductsRequest { products }).await.map_err(|e| e.to_string())?;

    let today = time::OffsetDateTime::now_utc().date();
    let this_month = today.replace_day(1).map_err(|e| e.to_string())?;
    let months: Vec<time::Date> =
        std::iter::successors(Some(this_month), |m| m.previous_day().and_then(|d| d.replace_day(1).ok()))
            .skip(1)
            .take(3)
            .collect();
    let first = *months.last().ok_or("no months")?;
    let last = this_month.previous_day().ok_or("no previous day")?;
    let requests = balances(generated, first, last);
    let sent = requests.len();
    let report = analytics
        .load_balances(tokio_stream::iter(requests))
        .await
        .map_err(|e| e.to_string())?
        .into_inner()
        .report
        .unwrap_or_default();
    println!(
        "\nanalytics: {sent} daily balances from {first} to {last}: {} accepted, {} unchanged, {} waiting for their customer",
        report.accepted_count, report.unchanged_count, report.pending_count
    );

    // Balances name customers by source key; analytics learns who they are from
    // customer-profile's events, which may still be on their way.
    let mut value = None;
    for _ in 0..40 {
        if let Ok(v) =
            analytics.get_customer_value(apb::GetCustomerValueRequest { customer_number: merged_number.into() }).await
        {
            value = Some(v.into_inner());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if value.is_none() {
        return Err(format!("analytics has no value for {merged_number} after 10 s (is it running?)"));
    }
    for month in months.iter().rev() {
        let label = format!("{:04}-{:02}", month.year(), month.month() as u8);
        let mut progress = analytics
            .close_month(apb::CloseMonthRequest { month: label.clone() })
            .await
            .map_err(|e| format!("closing {label}: {}", e.message()))?
            .into_inner();
        let mut last = apb::RecomputeProgress::default();
        while let Some(step) = progress.message().await.map_err(|e| e.to_string())? {
            last = step.progress.unwrap_or_default();
        }
        println!("  closed {label}: {} customers revalued, {} level changes", last.customers_total, last.level_changes);
    }

    let value = analytics
        .get_customer_value(apb::GetCustomerValueRequest { customer_number: merged_number.into() })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    println!("\nvalue card of {merged_number} (张伟):");
    println!(
        "  level {} {}{}  weighted AUM {:.2} CNY (latest closed month {}: {:.2} CNY daily average)",
        value.level_code,
        value.level_name,
        if value.on_watch { format!(", on watch {} month(s)", value.watch_months) } else { String::new() },
        value.weighted_aum_minor as f64 / 100.0,
        value.latest_closed_month,
        value.month_weighted_aum_minor as f64 / 100.0
    );
    for class in value.aum.iter().filter(|c| c.point_in_time_minor != 0 || c.month_daily_average_minor != 0) {
        let name = apb::AssetClass::try_from(class.asset_class).map(|c| c.as_str_name()).unwrap_or("?");
        println!(
            "  {name:<32} {:>14.2} now {:>14.2} month average",
            class.point_in_time_minor as f64 / 100.0,
            class.month_daily_average_minor as f64 / 100.0
        );
    }
    let history = analytics
        .list_level_history(apb::ListLevelHistoryRequest { customer_number: merged_number.into() })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    println!("level history (newest first):");
    for change in history.changes {
        println!("  {} → {}: {}", change.from_level, change.to_level, change.explanation);
    }
    let view = customers
        .get_customer360(pb::GetCustomer360Request { customer_number: merged_number.into() })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let status = pb::ValueCardStatus::try_from(view.value_card_status).map(|s| s.as_str_name()).unwrap_or("?");
    println!("the 360° view's value card: {status}");
    behaviour(analytics, generated, merged_number, last).await
}

/// A card transaction of `yuan` on `on`, named by source key.
fn card_payment(
    id: String,
    system: &str,
    source_id: &str,
    amount: i64,
    on: time::Date,
) -> apb::RecordTransactionsRequest {
    let noon = on.with_hms(12, 0, 0).map(|t| t.assume_utc().unix_timestamp()).unwrap_or_default();
    apb::RecordTransactionsRequest {
        transaction: Some(apb::Transaction {
            transaction_id: id,
            customer: Some(apb::CustomerRef {
                customer: Some(apb::customer_ref::Customer::SourceKey(pb::SourceKey {
                    source_system: system.into(),
                    source_customer_id: source_id.into(),
                })),
            }),
            account_id: format!("SAMPLE-CARD-{system}-{source_id}"),
            product_code: "CARD-DEBIT".into(),
            amount: Some(yuan(-amount)),
            channel: apb::Channel::Pos as i32,
            posted_time: Some(prost_types::Timestamp { seconds: noon, nanos: 0 }),
            region_code: "110105".into(),
        }),
    }
}

/// Card transactions, the RFM they give, two rule tags and a segment.
async fn behaviour(
    analytics: &mut Analytics,
    generated: &[pb::SourceRecord],
    merged_number: &str,
    last: time::Date,
) -> Result<(), String> {
    // 张伟 pays by card every few days of the last month; every third generated
    // customer now and then.
    let mut requests: Vec<apb::RecordTransactionsRequest> = (0..8)
        .map(|k| {
            let on = last - time::Duration::days(k * 3);
            card_payment(format!("SAMPLE-TX-C1-{k}"), "CORE", "SAMPLE-C-1", 200 + k * 35, on)
        })
        .collect();
    for (n, r) in generated.iter().enumerate().filter(|(n, _)| n % 3 == 0) {
        let Some(key) = &r.key else { continue };
        for k in 0..(1 + n as i64 % 4) {
            let on = last - time::Duration::days((n as i64 * 13 + k * 29) % 80);
            let id = format!("SAMPLE-TX-{}-{}-{k}", key.source_system, key.source_customer_id);
            requests.push(card_payment(id, &key.source_system, &key.source_customer_id, 50 + n as i64 % 900, on));
        }
    }
    let sent = requests.len();
    let report = analytics
        .record_transactions(tokio_stream::iter(requests))
        .await
        .map_err(|e| e.to_string())?
        .into_inner()
        .report
        .unwrap_or_default();
    println!(
        "
analytics: {sent} card transactions, {} accepted",
        report.accepted_count
    );

    // The revaluer rescores RFM beside ingestion: wait for it.
    let mut rfm = None;
    for _ in 0..40 {
        let answer = analytics
            .get_customer_rfm(apb::GetCustomerRfmRequest { customer_number: merged_number.into() })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        if answer.overall.as_ref().is_some_and(|o| o.frequency >= 8) {
            rfm = Some(answer);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rfm = rfm.ok_or("analytics has not scored the card transactions after 10 s")?;
    if let Some(o) = &rfm.overall {
        println!(
            "RFM of {merged_number} over {} days to {:?}: code {} (R {} F {} M {}: last paid {} days before, {} payments, {:.2} CNY)",
            rfm.window_days,
            rfm.scored_on.map(|d| format!("{}-{:02}-{:02}", d.year, d.month, d.day)).unwrap_or_default(),
            o.code,
            o.r,
            o.f,
            o.m,
            o.recency_days,
            o.frequency,
            o.monetary_minor as f64 / 100.0
        );
    }

    for (code, name, rule) in
        [("gold_or_better", "金卡及以上", "level >= 'gold'"), ("card_active", "刷卡活跃", "rfm.f >= 4 and rfm.r >= 3")]
    {
        let tag = apb::Tag {
            code: code.into(),
            name: name.into(),
            kind: apb::TagKind::Rule as i32,
            rule: rule.into(),
            version: 0,
        };
        analytics.define_tag(apb::DefineTagRequest { tag: Some(tag) }).await.map_err(|e| e.to_string())?;
        println!("tag {code} ({name}): {rule}");
    }
    let tags = analytics
        .get_customer_tags(apb::GetCustomerTagsRequest { customer_number: merged_number.into() })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    println!("  {merged_number} has: {}", tags.tags.iter().map(|t| t.tag_code.as_str()).collect::<Vec<_>>().join(", "));

    let segment = apb::Segment {
        code: "active_not_gold".into(),
        name: "活跃未达金卡".into(),
        condition: "tag('card_active') and not tag('gold_or_better')".into(),
        version: 0,
    };
    analytics.define_segment(apb::DefineSegmentRequest { segment: Some(segment) }).await.map_err(|e| e.to_string())?;
    let evaluated = analytics
        .evaluate_segment(apb::EvaluateSegmentRequest { segment_code: "active_not_gold".into(), ..Default::default() })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let mut pages = analytics
        .stream_segment_snapshot(apb::StreamSegmentSnapshotRequest { snapshot_id: evaluated.snapshot_id.clone() })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let mut first = Vec::new();
    while let Some(page) = pages.message().await.map_err(|e| e.to_string())? {
        first.extend(page.customer_numbers.into_iter().take(5usize.saturating_sub(first.len())));
    }
    println!(
        "segment active_not_gold (card-active, below gold): {} members in snapshot {}; first: {}",
        evaluated.member_count,
        evaluated.snapshot_id,
        first.join(", ")
    );
    Ok(())
}

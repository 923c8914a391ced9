//! Analyses within the caller's data scope, on four customers in two branches whose
//! figures are worked out by hand:
//!
//! | customer | home org | RM   | balances (yuan)                                    | Jan avg | Feb avg          | level end Jan → end Feb |
//! |----------|----------|------|----------------------------------------------------|---------|------------------|-------------------------|
//! | A …701   | BJ01     | rm-a | DEP 60,000 from Jan 1, 20,000 from Feb 1; WM 10,000 | 70,000  | 30,000           | gold → gold (on watch)  |
//! | B …702   | BJ       | rm-b | DEP 10,000 from Jan 1, 600,000 from Feb 1           | 10,000  | 600,000          | potential → platinum    |
//! | C …703   | SH01     | rm-c | DEP 100,000 from Jan 1                              | 100,000 | 100,000          | gold → gold             |
//! | D …704   | SH01     | rm-c | DEP 5,000 from Feb 10                               | —       | 5,000 × 19 / 28  | — → potential           |
//!
//! A has a transaction on January 20, C on February 15; B and D none. January and
//! February are closed. The org tree: HO › BJ › BJ01, HO › SH › SH01.

use crm_platform::auth::DataScope;
use crm_proto::crm::analytics::v1 as pb;
use crm_proto::crm::common::v1 as common;
use crm_proto::crm::customer::v1 as cpb;
use crm_proto::crm::identity::v1 as ipb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{Client, TestApp, by_number, cny, day, spawn_app};

const A: &str = "100000000701";
const B: &str = "100000000702";
const C: &str = "100000000703";
const D: &str = "100000000704";
/// Fen.
const Y: i64 = 100;
/// D's February daily average: 5,000 yuan for 19 of 28 days, rounded half away from 0.
const D_FEB: i64 = (5_000 * Y * 19 * 2 + 28) / (28 * 2);

fn transaction(id: &str, number: &str, seconds: i64) -> pb::Transaction {
    pb::Transaction {
        transaction_id: id.into(),
        customer: by_number(number),
        account_id: format!("{number}-DEP"),
        product_code: "DEP".into(),
        amount: Some(common::Money { amount_minor: -100 * Y, currency_code: "CNY".into() }),
        channel: pb::Channel::Mobile as i32,
        posted_time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        region_code: String::new(),
    }
}

/// 2026-01-20 08:00 UTC.
const JAN_20: i64 = 1_768_896_000;
/// 2026-02-15 08:00 UTC.
const FEB_15: i64 = 1_771_142_400;

/// The four customers of the module's table, their orgs, RMs, balances and
/// transactions; January and February closed.
async fn two_branches() -> TestApp {
    let mut app = spawn_app().await;
    app.catalogue().await;
    for (org, path) in
        [("HO", "/HO/"), ("BJ", "/HO/BJ/"), ("BJ01", "/HO/BJ/BJ01/"), ("SH", "/HO/SH/"), ("SH01", "/HO/SH/SH01/")]
    {
        let changed =
            ipb::OrgChanged { org: Some(ipb::Org { org_id: org.into(), path: path.into(), ..Default::default() }) };
        app.customer_event(org, &changed).await;
    }
    for (number, org, rm) in [(A, "BJ01", "rm-a"), (B, "BJ", "rm-b"), (C, "SH01", "rm-c"), (D, "SH01", "rm-c")] {
        app.customer_created(number, ("CORE", number)).await;
        let assignment = cpb::Assignment {
            customer_number: number.into(),
            home_org_id: org.into(),
            primary_rm_id: rm.into(),
            related_rm_ids: vec![],
            update_time: Some(prost_types::Timestamp { seconds: 1_790_000_000, nanos: 0 }),
        };
        let assigned =
            cpb::CustomerAssigned { action: cpb::AssignmentAction::Assign as i32, assignment: Some(assignment) };
        app.customer_event(number, &assigned).await;
    }
    let dep = |n: &str| format!("{n}-DEP");
    app.load(vec![
        cny(&dep(A), by_number(A), "DEP", 60_000, day(2026, 1, 1)),
        cny(&dep(A), by_number(A), "DEP", 20_000, day(2026, 2, 1)),
        cny("A-WM", by_number(A), "WM", 10_000, day(2026, 1, 1)),
        cny(&dep(B), by_number(B), "DEP", 10_000, day(2026, 1, 1)),
        cny(&dep(B), by_number(B), "DEP", 600_000, day(2026, 2, 1)),
        cny(&dep(C), by_number(C), "DEP", 100_000, day(2026, 1, 1)),
        cny(&dep(D), by_number(D), "DEP", 5_000, day(2026, 2, 10)),
    ])
    .await;
    let stream = futures::stream::iter(vec![
        pb::RecordTransactionsRequest { transaction: Some(transaction("T-A", A, JAN_20)) },
        pb::RecordTransactionsRequest { transaction: Some(transaction("T-C", C, FEB_15)) },
    ]);
    let report = app.client.record_transactions(stream).await.unwrap().into_inner().report.unwrap();
    assert_eq!(report.accepted_count, 2);
    app.close_month("2026-01").await;
    app.close_month("2026-02").await;
    app
}

/// A reader whose data scope is the Beijing subtree.
fn beijing(app: &TestApp) -> Client {
    app.scoped_client("sup-bj", &[analytics::access::READ], DataScope::Subtree, "/HO/BJ/")
}

/// Rows as (org, level, count, deposit, wealth, total) in fen.
type AumRow = (String, String, i64, i64, i64, i64);

async fn aum_by_org(
    client: &mut Client,
    org: &str,
    at: pb::get_aum_by_org_request::At,
) -> Result<(String, Vec<AumRow>), tonic::Status> {
    let request = pb::GetAumByOrgRequest { org_id: org.into(), at: Some(at) };
    let answer = client.get_aum_by_org(request).await?.into_inner();
    let rows = answer
        .rows
        .iter()
        .map(|r| {
            let class =
                |c: pb::AssetClass| r.amounts.iter().find(|a| a.asset_class == c as i32).map_or(-1, |a| a.amount_minor);
            assert_eq!(r.amounts.len(), 5, "every class is answered");
            let (deposit, wealth) = (class(pb::AssetClass::Deposit), class(pb::AssetClass::WealthManagement));
            (r.org_id.clone(), r.level_code.clone(), r.customer_count, deposit, wealth, r.aum_total_minor)
        })
        .collect();
    Ok((answer.org_id, rows))
}

fn row(org: &str, level: &str, count: i64, deposit: i64, wealth: i64) -> AumRow {
    (org.into(), level.into(), count, deposit, wealth, deposit + wealth)
}

#[tokio::test]
async fn aum_by_org_sums_each_child_subtree_by_level_and_asset_class_for_a_month_and_a_day() {
    let mut app = two_branches().await;
    use pb::get_aum_by_org_request::At;
    let february = At::Month("2026-02".into());
    let (org, rows) = aum_by_org(&mut app.client, "HO", february.clone()).await.unwrap();
    assert_eq!(org, "HO");
    assert_eq!(
        rows,
        [
            row("BJ", "gold", 1, 20_000 * Y, 10_000 * Y),
            row("BJ", "platinum", 1, 600_000 * Y, 0),
            row("SH", "gold", 1, 100_000 * Y, 0),
            row("SH", "potential", 1, D_FEB, 0),
        ],
        "A (BJ01) counts in BJ's subtree; D's month average counts its days"
    );
    let (_, rows) = aum_by_org(&mut app.client, "BJ", february.clone()).await.unwrap();
    assert_eq!(
        rows,
        [row("BJ", "platinum", 1, 600_000 * Y, 0), row("BJ01", "gold", 1, 20_000 * Y, 10_000 * Y)],
        "the org's own customers are under the org itself"
    );

    let (org, rows) = aum_by_org(&mut app.client, "", At::Date(day(2026, 1, 15).unwrap())).await.unwrap();
    assert_eq!(org, "", "a caller who sees everyone gets the whole tree by default");
    assert_eq!(
        rows,
        [row("HO", "gold", 2, 160_000 * Y, 10_000 * Y), row("HO", "potential", 1, 10_000 * Y, 0)],
        "on January 15: A and C gold, B potential, D without a balance yet"
    );
    let (_, rows) = aum_by_org(&mut app.client, "HO", At::Date(day(2026, 2, 1).unwrap())).await.unwrap();
    assert_eq!(
        rows,
        [
            row("BJ", "gold", 1, 20_000 * Y, 10_000 * Y),
            row("BJ", "platinum", 1, 600_000 * Y, 0),
            row("SH", "gold", 1, 100_000 * Y, 0)
        ],
        "on February 1 B is upgraded at once"
    );

    let (org, rows) = aum_by_org(&mut beijing(&app), "", february.clone()).await.unwrap();
    assert_eq!(org, "BJ", "a subtree reader's default is its own org");
    assert_eq!(rows.len(), 2);
    let (_, rows) = aum_by_org(&mut beijing(&app), "HO", february).await.unwrap();
    assert_eq!(
        rows,
        [row("BJ", "gold", 1, 20_000 * Y, 10_000 * Y), row("BJ", "platinum", 1, 600_000 * Y, 0)],
        "asked for head office, a subtree reader still sees only its subtree"
    );

    let open = aum_by_org(&mut app.client, "HO", At::Month("2026-03".into())).await.unwrap_err();
    assert_eq!(open.code(), Code::FailedPrecondition, "March is not closed");
    let unknown = aum_by_org(&mut app.client, "GZ", At::Month("2026-02".into())).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad = aum_by_org(&mut app.client, "HO", At::Month("Feb".into())).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    app.stop().await;
}

async fn migration(client: &mut Client, from: &str, to: &str) -> Vec<(String, String, i64)> {
    let request = pb::GetLevelMigrationRequest { from_month: from.into(), to_month: to.into() };
    let answer = client.get_level_migration(request).await.unwrap().into_inner();
    answer.cells.into_iter().map(|c| (c.from_level, c.to_level, c.customer_count)).collect()
}

#[tokio::test]
async fn the_level_migration_matrix_counts_customers_from_one_month_end_to_the_next() {
    let mut app = two_branches().await;
    let cell = |from: &str, to: &str, n: i64| (from.to_string(), to.to_string(), n);
    assert_eq!(
        migration(&mut app.client, "2026-01", "").await,
        [cell("", "potential", 1), cell("gold", "gold", 2), cell("potential", "platinum", 1)],
        "D had no balance at January's end"
    );
    assert_eq!(
        migration(&mut beijing(&app), "2026-01", "2026-02").await,
        [cell("gold", "gold", 1), cell("potential", "platinum", 1)],
        "a subtree reader sees only its subtree"
    );
    let request = pb::GetLevelMigrationRequest { from_month: "2026-02".into(), to_month: "2026-01".into() };
    let refused = app.client.get_level_migration(request).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(refused.get_error_details().bad_request().unwrap().field_violations[0].field, "to_month");
    app.stop().await;
}

fn churn(signal: pb::ChurnSignal, months: i32, percent: i32, page_size: i32) -> pb::ListChurnSignalsRequest {
    pb::ListChurnSignalsRequest {
        signal: signal as i32,
        months,
        decline_percent: percent,
        month: String::new(),
        page_size,
        page_token: String::new(),
    }
}

#[tokio::test]
async fn churn_signals_list_the_customers_whose_aum_fell_or_who_stopped_transacting_with_their_figures() {
    let mut app = two_branches().await;
    let declined =
        app.client.list_churn_signals(churn(pb::ChurnSignal::AumDecline, 1, 50, 0)).await.unwrap().into_inner();
    assert_eq!((declined.from_month.as_str(), declined.to_month.as_str()), ("2026-01", "2026-02"));
    let figures: Vec<_> = declined
        .customers
        .iter()
        .map(|c| (c.customer_number.as_str(), c.start_weighted_aum_minor, c.end_weighted_aum_minor, c.decline_bp))
        .collect();
    assert_eq!(figures, [(A, 70_000 * Y, 30_000 * Y, 5_714)], "A fell by 57.14 %; D had no January");
    assert!(declined.next_page_token.is_empty());
    let steeper =
        app.client.list_churn_signals(churn(pb::ChurnSignal::AumDecline, 1, 60, 0)).await.unwrap().into_inner();
    assert!(steeper.customers.is_empty(), "57 % is not more than 60 %");

    // February without transactions, a page of one at a time: A (last one on January
    // 20), B (none ever); C transacted, D's first balance came in February.
    let mut request = churn(pb::ChurnSignal::NoTransactions, 1, 0, 1);
    let mut pages = Vec::new();
    loop {
        let page = app.client.list_churn_signals(request.clone()).await.unwrap().into_inner();
        pages.push(
            page.customers
                .iter()
                .map(|c| (c.customer_number.clone(), c.last_transaction_time.map(|t| t.seconds)))
                .collect::<Vec<_>>(),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    assert_eq!(pages, [vec![(A.to_string(), Some(JAN_20))], vec![(B.to_string(), None)], vec![]]);
    let two_months = churn(pb::ChurnSignal::NoTransactions, 2, 0, 0);
    let answer = app.client.list_churn_signals(two_months).await.unwrap().into_inner();
    assert!(answer.customers.is_empty(), "nobody had a balance before January: {:?}", answer.customers);

    let scoped = beijing(&app).list_churn_signals(churn(pb::ChurnSignal::NoTransactions, 1, 0, 0)).await.unwrap();
    let numbers: Vec<_> = scoped.into_inner().customers.into_iter().map(|c| c.customer_number).collect();
    assert_eq!(numbers, [A, B]);

    let mut bad = churn(pb::ChurnSignal::Unspecified, 0, 0, -1);
    bad.month = "2026-13".into();
    let refused = app.client.list_churn_signals(bad).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut fields: Vec<_> =
        refused.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    fields.sort();
    assert_eq!(fields, ["month", "months", "page_size", "signal"]);
    let mut open = churn(pb::ChurnSignal::AumDecline, 1, 50, 0);
    open.month = "2026-03".into();
    assert_eq!(app.client.list_churn_signals(open).await.unwrap_err().code(), Code::FailedPrecondition);
    app.stop().await;
}

#[tokio::test]
async fn rm_performance_sums_each_rms_customers_growth_and_level_changes_over_the_period() {
    let mut app = two_branches().await;
    let request = pb::GetRmPerformanceRequest { from_month: "2026-01".into(), to_month: "2026-02".into() };
    let rms = app.client.get_rm_performance(request.clone()).await.unwrap().into_inner().rms;
    let figures: Vec<_> = rms
        .iter()
        .map(|r| {
            (
                r.rm_id.as_str(),
                r.customer_count,
                r.start_weighted_aum_minor,
                r.end_weighted_aum_minor,
                r.growth_minor,
                r.upgrades,
                r.downgrades,
            )
        })
        .collect();
    assert_eq!(
        figures,
        [
            ("rm-a", 1, 70_000 * Y, 30_000 * Y, -40_000 * Y, 1, 0),
            ("rm-b", 1, 10_000 * Y, 600_000 * Y, 590_000 * Y, 1, 0),
            ("rm-c", 2, 100_000 * Y, 100_000 * Y + D_FEB, D_FEB, 1, 0),
        ],
        "A and C were upgraded on January 1, B on February 1; D adds nothing in January"
    );
    let scoped = beijing(&app).get_rm_performance(request).await.unwrap().into_inner().rms;
    let ids: Vec<_> = scoped.iter().map(|r| r.rm_id.as_str()).collect();
    assert_eq!(ids, ["rm-a", "rm-b"]);
    let february = pb::GetRmPerformanceRequest { from_month: "2026-02".into(), to_month: String::new() };
    let rms = app.client.get_rm_performance(february).await.unwrap().into_inner().rms;
    let upgrades: Vec<_> = rms.iter().map(|r| (r.rm_id.as_str(), r.upgrades, r.growth_minor)).collect();
    assert_eq!(upgrades, [("rm-a", 0, 0), ("rm-b", 1, 0), ("rm-c", 0, 0)], "one month: start and end are the same");
    let open = pb::GetRmPerformanceRequest { from_month: "2026-02".into(), to_month: "2026-03".into() };
    assert_eq!(app.client.get_rm_performance(open).await.unwrap_err().code(), Code::FailedPrecondition);
    app.stop().await;
}

async fn aggregate(client: &mut Client, group_by: &str, measure: &str, width: i64) -> Vec<(String, i64, i64)> {
    let request =
        pb::AggregateCustomersRequest { group_by: group_by.into(), measure: measure.into(), bucket_width: width };
    let groups = client.aggregate_customers(request).await.unwrap().into_inner().groups;
    groups.into_iter().map(|g| (g.key, g.customer_count, g.value)).collect()
}

#[tokio::test]
async fn ad_hoc_aggregations_group_by_level_org_tag_or_an_attribute_and_refuse_unknown_names() {
    let mut app = two_branches().await;
    app.define_tag("vip", "").await;
    for number in [A, C] {
        let set = pb::SetManualTagRequest { customer_number: number.into(), tag_code: "vip".into() };
        app.client.set_manual_tag(set).await.unwrap();
    }
    let g = |key: &str, count: i64, value: i64| (key.to_string(), count, value);
    assert_eq!(
        aggregate(&mut app.client, "level", "count", 0).await,
        [g("gold", 2, 2), g("platinum", 1, 1), g("potential", 1, 1)]
    );
    assert_eq!(
        aggregate(&mut app.client, "level", "sum(aum.total)", 0).await,
        [g("gold", 2, 130_000 * Y), g("platinum", 1, 600_000 * Y), g("potential", 1, 5_000 * Y)],
        "point-in-time weighted AUM: A 30,000 + C 100,000"
    );
    assert_eq!(
        aggregate(&mut app.client, "org", "sum(aum.deposit)", 0).await,
        [g("BJ", 1, 600_000 * Y), g("BJ01", 1, 20_000 * Y), g("SH01", 2, 105_000 * Y)]
    );
    assert_eq!(aggregate(&mut app.client, "tag", "count", 0).await, [g("", 2, 2), g("vip", 2, 2)]);
    assert_eq!(
        aggregate(&mut app.client, "watch_months", "sum(aum.month.total)", 0).await,
        [g("0", 3, 600_000 * Y + 100_000 * Y + D_FEB), g("1", 1, 30_000 * Y)],
        "A is on watch after February"
    );
    assert_eq!(
        aggregate(&mut app.client, "aum.total", "count", 50_000 * Y).await,
        [g("0", 2, 2), g(&(100_000 * Y).to_string(), 1, 1), g(&(600_000 * Y).to_string(), 1, 1)],
        "buckets of 50,000 yuan by their lower bound"
    );
    assert_eq!(
        aggregate(&mut beijing(&app), "level", "count", 0).await,
        [g("gold", 1, 1), g("platinum", 1, 1)],
        "a subtree reader counts only its subtree"
    );

    for (group_by, measure, width, fields) in [
        ("ages", "avg(aum.total)", 0, vec!["group_by", "measure"]),
        ("level; DROP TABLE customer_value", "count", 0, vec!["group_by"]),
        ("level", "sum(level)", 10, vec!["measure", "bucket_width"]),
        ("org", "count", -1, vec!["bucket_width"]),
    ] {
        let request =
            pb::AggregateCustomersRequest { group_by: group_by.into(), measure: measure.into(), bucket_width: width };
        let refused = app.client.aggregate_customers(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{group_by} / {measure}");
        let named: Vec<_> = refused
            .get_error_details()
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect();
        assert_eq!(named, fields, "{group_by} / {measure} / {width}");
    }
    let still = aggregate(&mut app.client, "level", "count", 0).await;
    assert_eq!(still.len(), 3, "nothing was dropped");
    app.stop().await;
}

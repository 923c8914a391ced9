//! Business targets: head office issues a target, orgs decompose it to sub-orgs and
//! RMs (a split that does not add up is refused with its gap and changes nothing),
//! progress rolls the actuals up the org tree inside the caller's data scope.

use analytics::access::{READ, TARGETS};
use crm_platform::auth::DataScope;
use crm_proto::crm::analytics::v1 as pb;
use crm_proto::crm::common::v1 as common;
use crm_proto::crm::customer::v1 as cpb;
use crm_proto::crm::identity::v1 as ipb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{Client, TestApp, by_number, cny, day, spawn_app};

/// One yuan in fen.
const YUAN: i64 = 100;

/// Head office's planner: reads and manages targets everywhere.
fn planner(app: &TestApp) -> Client {
    app.client_for("planner", &[READ, TARGETS])
}

/// Identity's org tree: head office, the Beijing and Shanghai branches, a sub-branch
/// of each.
async fn org_tree(app: &TestApp) {
    let orgs =
        [("HO", "/HO/"), ("BJ", "/HO/BJ/"), ("BJ01", "/HO/BJ/BJ01/"), ("SH", "/HO/SH/"), ("SH01", "/HO/SH/SH01/")];
    for (org, path) in orgs {
        let changed =
            ipb::OrgChanged { org: Some(ipb::Org { org_id: org.into(), path: path.into(), ..Default::default() }) };
        app.customer_event(org, &changed).await;
    }
}

/// Customer `number` created and assigned to home org `org` and primary RM `rm`.
async fn customer(app: &TestApp, number: &str, org: &str, rm: &str) {
    app.customer_created(number, ("CORE", number)).await;
    let assignment = cpb::Assignment {
        customer_number: number.into(),
        home_org_id: org.into(),
        primary_rm_id: rm.into(),
        related_rm_ids: vec![],
        update_time: Some(prost_types::Timestamp { seconds: 1_790_000_000, nanos: 0 }),
    };
    let assigned = cpb::CustomerAssigned { action: cpb::AssignmentAction::Assign as i32, assignment: Some(assignment) };
    app.customer_event(number, &assigned).await;
}

fn org(path: &str) -> Option<pb::TargetAssignee> {
    Some(pb::TargetAssignee { assignee: Some(pb::target_assignee::Assignee::OrgPath(path.into())) })
}

fn rm(id: &str) -> Option<pb::TargetAssignee> {
    Some(pb::TargetAssignee { assignee: Some(pb::target_assignee::Assignee::RmId(id.into())) })
}

fn share(assignee: Option<pb::TargetAssignee>, yuan: i64) -> pb::TargetShare {
    pb::TargetShare { assignee, value: yuan * YUAN }
}

fn aum_growth() -> Option<pb::TargetIndicator> {
    indicator(pb::TargetIndicatorKind::AumGrowth, "", "")
}

/// A share of a target counted in customers.
fn customers(assignee: Option<pb::TargetAssignee>, count: i64) -> pb::TargetShare {
    pb::TargetShare { assignee, value: count }
}

fn indicator(kind: pb::TargetIndicatorKind, level: &str, product: &str) -> Option<pb::TargetIndicator> {
    Some(pb::TargetIndicator { kind: kind as i32, level_code: level.into(), product_code: product.into() })
}

/// Q1 2026 at `path`: `value` in the indicator's unit.
fn issue_q1(path: &str, indicator: Option<pb::TargetIndicator>, value: i64) -> pb::IssueTargetRequest {
    pb::IssueTargetRequest {
        org_path: path.into(),
        indicator,
        period_start: day(2026, 1, 1),
        period_end: day(2026, 3, 31),
        value,
    }
}

async fn issue(client: &mut Client, request: pb::IssueTargetRequest) -> pb::Target {
    client.issue_target(request).await.unwrap().into_inner().target.unwrap()
}

async fn decompose(
    client: &mut Client,
    target: &pb::Target,
    shares: Vec<pb::TargetShare>,
) -> pb::DecomposeTargetResponse {
    let request = pb::DecomposeTargetRequest { target_id: target.target_id.clone(), shares };
    client.decompose_target(request).await.unwrap().into_inner()
}

/// Each target's assignee, target, actual and progress (None: no progress).
async fn progress(client: &mut Client, target: &pb::Target) -> Vec<(String, i64, i64, Option<i64>)> {
    let request = pb::GetTargetProgressRequest { target_id: target.target_id.clone() };
    let answer = client.get_target_progress(request).await.unwrap().into_inner();
    answer
        .progress
        .into_iter()
        .map(|p| {
            let t = p.target.unwrap();
            (assignee(&t), t.value, p.actual, p.has_progress.then_some(p.progress_bp))
        })
        .collect()
}

fn assignee(t: &pb::Target) -> String {
    match t.assignee.as_ref().and_then(|a| a.assignee.as_ref()) {
        Some(pb::target_assignee::Assignee::OrgPath(path)) => path.clone(),
        Some(pb::target_assignee::Assignee::RmId(id)) => format!("RM {id}"),
        None => String::new(),
    }
}

async fn listed(client: &mut Client) -> Vec<(String, i64)> {
    let request = pb::ListTargetsRequest { period_start: day(2026, 1, 1), period_end: day(2026, 12, 31) };
    let targets = client.list_targets(request).await.unwrap().into_inner().targets;
    targets.iter().map(|t| (assignee(t), t.value)).collect()
}

/// The id of RM rm-1's target.
async fn rm_1_target(client: &mut Client) -> String {
    let request = pb::ListTargetsRequest { period_start: day(2026, 1, 1), period_end: day(2026, 12, 31) };
    let targets = client.list_targets(request).await.unwrap().into_inner().targets;
    targets.into_iter().find(|t| assignee(t) == "RM rm-1").unwrap().target_id
}

async fn audited(app: &TestApp, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM crm_kit.audit_entry WHERE action = $1")
        .bind(action)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Head office's Q1 AUM growth target of 1,000,000 yuan, split to Beijing (600,000),
/// Shanghai (300,000) and RM `rm-1` (100,000); Beijing's split to its sub-branch
/// (400,000) and RM `rm-bj` (200,000).
async fn aum_plan(client: &mut Client) -> pb::Target {
    let head_office =
        issue(client, issue_q1("/HO/", indicator(pb::TargetIndicatorKind::AumGrowth, "", ""), 1_000_000 * YUAN)).await;
    let split = decompose(
        client,
        &head_office,
        vec![share(org("/HO/BJ/"), 600_000), share(org("/HO/SH/"), 300_000), share(rm("rm-1"), 100_000)],
    )
    .await;
    assert_eq!(split.version, 1);
    let beijing = &split.children[0];
    decompose(client, beijing, vec![share(org("/HO/BJ/BJ01/"), 400_000), share(rm("rm-bj"), 200_000)]).await;
    head_office
}

#[tokio::test]
async fn head_office_issues_a_target_and_orgs_split_it_down_to_sub_orgs_and_rms() {
    let mut app = spawn_app().await;
    let mut client = planner(&app);
    let head_office = aum_plan(&mut client).await;
    assert_eq!((head_office.parent_target_id.as_str(), head_office.booked_at_org_path.as_str()), ("", "/HO/"));

    let all = listed(&mut client).await;
    assert_eq!(
        all,
        [
            ("/HO/".to_string(), 1_000_000 * YUAN),
            ("RM rm-1".to_string(), 100_000 * YUAN),
            ("/HO/BJ/".to_string(), 600_000 * YUAN),
            ("RM rm-bj".to_string(), 200_000 * YUAN),
            ("/HO/BJ/BJ01/".to_string(), 400_000 * YUAN),
            ("/HO/SH/".to_string(), 300_000 * YUAN),
        ],
        "by booking org; an RM is booked at the org it was decomposed under"
    );
    assert_eq!(audited(&app, "target.issued").await, 1);
    assert_eq!(audited(&app, "target.decomposed").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn a_split_that_does_not_add_up_is_refused_with_its_gap_and_changes_nothing() {
    let mut app = spawn_app().await;
    let mut client = planner(&app);
    let head_office = aum_plan(&mut client).await;
    let before = listed(&mut client).await;

    let cases = [
        (
            vec![share(org("/HO/BJ/"), 600_000), share(org("/HO/SH/"), 300_000)],
            "shares",
            "children sum to 90000000, parent is 100000000, short by 10000000",
        ),
        (
            vec![share(org("/HO/BJ/"), 700_000), share(org("/HO/SH/"), 400_000)],
            "shares",
            "children sum to 110000000, parent is 100000000, over by 10000000",
        ),
        (
            vec![share(org("/HO/BJ/"), 600_000), share(org("/HO/BJ/BJ01/"), 400_000)],
            "shares",
            "org /HO/BJ/BJ01/ lies inside org /HO/BJ/: child orgs of one split must not contain one another",
        ),
        (
            vec![share(org("/HO/BJ/"), 600_000), share(rm("rm-bj"), 400_000)],
            "shares[1].assignee.rm_id",
            "RM rm-bj already has a target in this tree, under /HO/BJ/",
        ),
        (
            vec![share(org("/SH/"), 1_000_000), share(rm(" "), 0)],
            "shares[1].assignee.rm_id",
            "an RM id must not be blank",
        ),
    ];
    for (shares, field, description) in cases {
        let request = pb::DecomposeTargetRequest { target_id: head_office.target_id.clone(), shares };
        let refused = client.decompose_target(request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{description}");
        let violations = refused.get_error_details().bad_request().unwrap().field_violations.clone();
        assert!(
            violations.iter().any(|v| v.field == field && v.description == description),
            "{description}: {violations:?}"
        );
    }
    let rm_target = pb::DecomposeTargetRequest { target_id: rm_1_target(&mut client).await, shares: vec![] };
    let refused = client.decompose_target(rm_target).await.unwrap_err();
    let violations = refused.get_error_details().bad_request().unwrap().field_violations.clone();
    assert_eq!(violations[0].field, "target_id", "an RM's target is never split: {violations:?}");
    assert_eq!(listed(&mut client).await, before, "a refused split changes nothing");
    assert_eq!(audited(&app, "target.decomposed").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn splitting_again_is_a_new_version_that_keeps_the_unchanged_shares_and_what_is_below_them() {
    let mut app = spawn_app().await;
    let mut client = planner(&app);
    let head_office = aum_plan(&mut client).await;
    let again = decompose(
        &mut client,
        &head_office,
        vec![share(org("/HO/BJ/"), 600_000), share(org("/HO/SH/"), 400_000), share(rm("rm-1"), 0)],
    )
    .await;
    assert_eq!(again.version, 2);
    assert_eq!(again.children[0].split_version, 1, "Beijing's share did not change: its own split stays");
    assert_eq!(
        listed(&mut client).await,
        [
            ("/HO/".to_string(), 1_000_000 * YUAN),
            ("RM rm-1".to_string(), 0),
            ("/HO/BJ/".to_string(), 600_000 * YUAN),
            ("RM rm-bj".to_string(), 200_000 * YUAN),
            ("/HO/BJ/BJ01/".to_string(), 400_000 * YUAN),
            ("/HO/SH/".to_string(), 400_000 * YUAN),
        ]
    );
    let versions: Vec<i32> =
        sqlx::query_scalar("SELECT version FROM target_split WHERE target_id = $1::UUID ORDER BY 1")
            .bind(&head_office.target_id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(versions, [1, 2], "the first split is kept as history");
    assert_eq!(audited(&app, "target.decomposed").await, 3);
    app.stop().await;
}

/// The customers of [`aum_plan`]'s tree and their Q1 balances (yuan):
/// - 101, home BJ01, RM rm-z (no target): 100,000 → 300,000: +200,000 at BJ01;
/// - 102, home BJ, RM rm-bj: 50,000 → 150,000 (a loan beside it does not count):
///   +100,000 for rm-bj;
/// - 103, home SH01, RM rm-1: nothing → 10,000 USD at 7.1: +71,000 for rm-1, booked at
///   head office where rm-1's target was decomposed;
/// - 104, home SH, no RM: 200,000 → 150,000: -50,000 at SH;
/// - 105, home somewhere else: +1,000,000, counted nowhere.
async fn aum_facts(app: &mut TestApp) {
    app.catalogue().await;
    org_tree(app).await;
    for (number, home, primary) in
        [("101", "BJ01", "rm-z"), ("102", "BJ", "rm-bj"), ("103", "SH01", "rm-1"), ("104", "SH", ""), ("105", "GZ", "")]
    {
        customer(app, number, home, primary).await;
    }
    let usd = common::Money { amount_minor: 10_000 * YUAN, currency_code: "USD".into() };
    let rates =
        vec![pb::FxRate { currency_code: "USD".into(), rate_date: day(2026, 1, 1), cny_per_unit_micros: 7_100_000 }];
    app.client.set_fx_rates(pb::SetFxRatesRequest { rates }).await.unwrap();
    let report = app
        .load(vec![
            cny("A101", by_number("101"), "DEP", 100_000, day(2025, 12, 31)),
            cny("A101", by_number("101"), "DEP", 300_000, day(2026, 3, 31)),
            cny("A102", by_number("102"), "DEP", 50_000, day(2025, 12, 20)),
            cny("A102", by_number("102"), "DEP", 150_000, day(2026, 2, 10)),
            cny("L102", by_number("102"), "LOAN", 1_000_000, day(2026, 3, 1)),
            pb::BalanceSnapshot {
                account_id: "A103".into(),
                customer: by_number("103"),
                product_code: "WM".into(),
                balance: Some(usd),
                balance_date: day(2026, 1, 15),
            },
            cny("A104", by_number("104"), "DEP", 200_000, day(2025, 12, 31)),
            cny("A104", by_number("104"), "DEP", 150_000, day(2026, 3, 31)),
            cny("A104", by_number("104"), "DEP", 999_000, day(2026, 4, 1)),
            cny("A105", by_number("105"), "DEP", 1_000_000, day(2026, 3, 1)),
        ])
        .await;
    assert!(report.rejections.is_empty(), "{:?}", report.rejections);
}

#[tokio::test]
async fn progress_compares_aum_growth_with_the_target_rolled_up_the_org_tree() {
    let mut app = spawn_app().await;
    aum_facts(&mut app).await;
    let mut client = planner(&app);
    let head_office = aum_plan(&mut client).await;
    #[rustfmt::skip]
    let expected = vec![
        ("/HO/".to_string(), 1_000_000 * YUAN, 321_000 * YUAN, Some(3_210)),
        ("RM rm-1".to_string(), 100_000 * YUAN, 71_000 * YUAN, Some(7_100)),
        ("/HO/BJ/".to_string(), 600_000 * YUAN, 300_000 * YUAN, Some(5_000)),
        ("RM rm-bj".to_string(), 200_000 * YUAN, 100_000 * YUAN, Some(5_000)),
        ("/HO/BJ/BJ01/".to_string(), 400_000 * YUAN, 200_000 * YUAN, Some(5_000)),
        ("/HO/SH/".to_string(), 300_000 * YUAN, -50_000 * YUAN, Some(-1_666)),
    ];
    assert_eq!(progress(&mut client, &head_office).await, expected);
    app.stop().await;
}

#[tokio::test]
async fn a_caller_sees_the_targets_and_progress_of_its_own_scope_only() {
    let mut app = spawn_app().await;
    aum_facts(&mut app).await;
    let head_office = aum_plan(&mut planner(&app)).await;

    let mut beijing = app.scoped_client("sup-bj", &[READ], DataScope::Subtree, "/HO/BJ/");
    let expected = vec![
        ("/HO/BJ/".to_string(), 600_000 * YUAN, 300_000 * YUAN, Some(5_000)),
        ("RM rm-bj".to_string(), 200_000 * YUAN, 100_000 * YUAN, Some(5_000)),
        ("/HO/BJ/BJ01/".to_string(), 400_000 * YUAN, 200_000 * YUAN, Some(5_000)),
    ];
    assert_eq!(progress(&mut beijing, &head_office).await, expected, "the subtree of head office's tree");
    let names: Vec<String> = listed(&mut beijing).await.into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["/HO/BJ/", "RM rm-bj", "/HO/BJ/BJ01/"]);

    let mut rm_1 = app.scoped_client("rm-1", &[READ], DataScope::Own, "/HO/");
    let names: Vec<String> = listed(&mut rm_1).await.into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["RM rm-1"], "an RM sees its own target");

    let mut shanghai = app.scoped_client("sup-sh", &[READ], DataScope::Org, "/HO/SH/SH01/");
    let request = pb::GetTargetProgressRequest { target_id: head_office.target_id.clone() };
    let denied = shanghai.get_target_progress(request).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "no target of the tree is SH01's");
    let unknown = pb::GetTargetProgressRequest { target_id: uuid::Uuid::nil().to_string() };
    assert_eq!(planner(&app).get_target_progress(unknown).await.unwrap_err().code(), Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn managing_targets_needs_analytics_targets_and_the_target_inside_the_callers_scope() {
    let mut app = spawn_app().await;
    let head_office = aum_plan(&mut planner(&app)).await;
    let aum = || indicator(pb::TargetIndicatorKind::AumGrowth, "", "");

    let mut reader = app.client_for("reader", &[READ]);
    let denied = reader.issue_target(issue_q1("/HO/BJ/", aum(), 1)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let request = pb::DecomposeTargetRequest { target_id: head_office.target_id.clone(), shares: vec![] };
    assert_eq!(reader.decompose_target(request).await.unwrap_err().code(), Code::PermissionDenied);

    let mut beijing = app.scoped_client("head-bj", &[READ, TARGETS], DataScope::Subtree, "/HO/BJ/");
    let shares = vec![share(org("/HO/BJ/"), 1_000_000)];
    let request = pb::DecomposeTargetRequest { target_id: head_office.target_id.clone(), shares };
    let outside = beijing.decompose_target(request).await.unwrap_err();
    assert_eq!(outside.code(), Code::PermissionDenied, "head office's target is not Beijing's to split");
    let outside = beijing.issue_target(issue_q1("/HO/SH/", aum(), 1)).await.unwrap_err();
    assert_eq!(outside.code(), Code::PermissionDenied);
    let own = issue(&mut beijing, issue_q1("/HO/BJ/BJ01/", aum(), 5)).await;
    assert_eq!(own.booked_at_org_path, "/HO/BJ/BJ01/", "an org issues targets inside its subtree");

    let again = planner(&app).issue_target(issue_q1("/HO/", aum(), 7)).await.unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists, "one target per org, indicator and period");
    app.stop().await;
}

#[tokio::test]
async fn a_bad_target_is_refused_naming_every_bad_field() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    let mut client = planner(&app);
    let request = pb::IssueTargetRequest {
        org_path: "HO".into(),
        indicator: indicator(pb::TargetIndicatorKind::ProductSales, "gold", ""),
        period_start: day(2026, 3, 31),
        period_end: day(2026, 1, 1),
        value: -1,
    };
    let refused = client.issue_target(request).await.unwrap_err();
    let fields: Vec<String> =
        refused.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["org_path", "indicator.level_code", "indicator.product_code", "period_end", "value"]);

    let unknown = [
        (indicator(pb::TargetIndicatorKind::CustomersAtLevel, "diamond", ""), "indicator.level_code"),
        (indicator(pb::TargetIndicatorKind::ProductSales, "", "NOPE"), "indicator.product_code"),
    ];
    for (indicator, field) in unknown {
        let refused = client.issue_target(issue_q1("/HO/", indicator, 1)).await.unwrap_err();
        let violations = refused.get_error_details().bad_request().unwrap().field_violations.clone();
        assert_eq!(violations.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(), [field]);
    }
    let nul = client.issue_target(issue_q1("/HO/\u{0}/", aum_growth(), 1)).await.unwrap_err();
    let violations = nul.get_error_details().bad_request().unwrap().field_violations.clone();
    assert_eq!(
        (violations[0].field.as_str(), violations[0].description.as_str()),
        ("org_path", "must not contain a NUL character")
    );
    assert!(listed(&mut client).await.is_empty(), "nothing was issued");
    app.stop().await;
}

/// A transaction of `yuan` of `product` posted on `date` (UTC noon).
fn transaction(
    id: &str,
    number: &str,
    product: &str,
    yuan: i64,
    (y, m, d): (i32, u8, u8),
) -> pb::RecordTransactionsRequest {
    let date = time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap();
    let noon = date.with_hms(12, 0, 0).unwrap().assume_utc();
    pb::RecordTransactionsRequest {
        transaction: Some(pb::Transaction {
            transaction_id: id.into(),
            customer: by_number(number),
            account_id: format!("A{number}"),
            product_code: product.into(),
            amount: Some(common::Money { amount_minor: yuan * YUAN, currency_code: "CNY".into() }),
            channel: pb::Channel::Mobile as i32,
            posted_time: Some(prost_types::Timestamp { seconds: noon.unix_timestamp(), nanos: 0 }),
            region_code: String::new(),
        }),
    }
}

#[tokio::test]
async fn each_indicator_counts_its_own_facts() {
    let mut app = spawn_app().await;
    aum_facts(&mut app).await;
    // 101 reaches platinum (500,000) on 2026-03-31, 104 on 2026-04-01: after Q1.
    app.load(vec![cny("A101", by_number("101"), "DEP", 600_000, day(2026, 3, 31))]).await;
    let transactions = vec![
        transaction("T1", "101", "WM", 30_000, (2026, 1, 5)),
        transaction("T2", "101", "WM", -10_000, (2026, 2, 5)),
        transaction("T3", "102", "WM", 20_000, (2026, 3, 31)),
        transaction("T4", "102", "WM", 50_000, (2026, 4, 1)),
        transaction("T5", "104", "DEP", 70_000, (2026, 2, 1)),
        transaction("T6", "104", "WM", 5_000, (2025, 12, 31)),
    ];
    let report = app.client.record_transactions(futures::stream::iter(transactions)).await.unwrap().into_inner();
    assert!(report.report.unwrap().rejections.is_empty());
    let mut client = planner(&app);
    let split = |t: i64| vec![share(org("/HO/BJ/"), t), share(org("/HO/SH/"), t)];

    let sales = issue(
        &mut client,
        issue_q1("/HO/", indicator(pb::TargetIndicatorKind::ProductSales, "", "WM"), 200_000 * YUAN),
    )
    .await;
    decompose(&mut client, &sales, split(100_000)).await;
    let figures: Vec<i64> = progress(&mut client, &sales).await.into_iter().map(|p| p.2).collect();
    assert_eq!(figures, [50_000 * YUAN, 50_000 * YUAN, 0], "WM bought in Q1; a redemption does not reduce it");

    let platinum =
        issue(&mut client, issue_q1("/HO/", indicator(pb::TargetIndicatorKind::CustomersAtLevel, "platinum", ""), 4))
            .await;
    decompose(
        &mut client,
        &platinum,
        vec![customers(org("/HO/BJ/"), 2), customers(org("/HO/SH/"), 1), customers(rm("rm-1"), 1)],
    )
    .await;
    let counts: Vec<(String, i64)> = progress(&mut client, &platinum).await.into_iter().map(|p| (p.0, p.2)).collect();
    assert_eq!(
        counts,
        [("/HO/".to_string(), 1), ("RM rm-1".to_string(), 0), ("/HO/BJ/".to_string(), 1), ("/HO/SH/".to_string(), 0)]
    );

    let today = time::OffsetDateTime::now_utc().date();
    let request = pb::IssueTargetRequest {
        org_path: "/HO/SH/".into(),
        indicator: indicator(pb::TargetIndicatorKind::NewCustomers, "", ""),
        period_start: Some(crm_platform::convert::date(today)),
        period_end: Some(crm_platform::convert::date(today)),
        value: 3,
    };
    let newcomers = issue(&mut client, request).await;
    let counted = progress(&mut client, &newcomers).await;
    assert_eq!(counted, [("/HO/SH/".to_string(), 3, 2, Some(6_666))], "103 and 104 were created today in Shanghai");
    app.stop().await;
}

//! Segments: one over a tag and a level evaluates to the right members, streams them in
//! order, and its snapshot stays what it was when the customers change later. Membership
//! is kept current without any evaluation (balances, tags, transactions, a merge), its
//! history answers per customer and per segment, an as-of snapshot gives the members of
//! a past time, every entry and exit is announced, and the current membership always
//! equals a from-scratch evaluation.

use crm_proto::crm::analytics::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

use crm_platform::auth::DataScope;
use crm_proto::crm::common::v1 as common;
use crm_proto::crm::customer::v1 as cpb;
use prost_types::Timestamp;

use crate::helpers::{TestApp, by_number, cny, day, spawn_app};

/// The members of snapshot `id`, page by page.
async fn pages(app: &mut TestApp, id: &str) -> Vec<Vec<String>> {
    let request = pb::StreamSegmentSnapshotRequest { snapshot_id: id.into() };
    let mut stream = app.client.stream_segment_snapshot(request).await.unwrap().into_inner();
    let mut pages = Vec::new();
    while let Some(page) = stream.message().await.unwrap() {
        pages.push(page.customer_numbers);
    }
    pages
}

async fn define_segment(app: &mut TestApp, code: &str, condition: &str) -> Result<pb::Segment, tonic::Status> {
    let segment =
        pb::Segment { code: code.into(), name: "高端客群".into(), condition: condition.into(), version: 0 };
    Ok(app
        .client
        .define_segment(pb::DefineSegmentRequest { segment: Some(segment) })
        .await?
        .into_inner()
        .segment
        .unwrap())
}

async fn evaluate(app: &mut TestApp, code: &str) -> pb::EvaluateSegmentResponse {
    evaluate_as_of(app, code, None).await.unwrap()
}

async fn evaluate_as_of(
    app: &mut TestApp,
    code: &str,
    as_of: Option<Timestamp>,
) -> Result<pb::EvaluateSegmentResponse, tonic::Status> {
    let request = pb::EvaluateSegmentRequest { segment_code: code.into(), as_of };
    Ok(app.client.evaluate_segment(request).await?.into_inner())
}

/// The members of segment `code` now, through a snapshot.
async fn members_now(app: &mut TestApp, code: &str) -> Vec<String> {
    let snapshot = evaluate(app, code).await;
    pages(app, &snapshot.snapshot_id).await.concat()
}

/// The members of segment `code` at `t`, through a snapshot, and the version then.
async fn members_at(app: &mut TestApp, code: &str, t: Timestamp) -> (Vec<String>, i32) {
    let snapshot = evaluate_as_of(app, code, Some(t)).await.unwrap();
    (pages(app, &snapshot.snapshot_id).await.concat(), snapshot.segment_version)
}

async fn history(app: &mut TestApp, number: &str) -> Vec<pb::SegmentStay> {
    let request = pb::ListCustomerSegmentHistoryRequest { customer_number: number.into() };
    app.client.list_customer_segment_history(request).await.unwrap().into_inner().stays
}

/// `t` moved by `micros` microseconds.
fn shifted(t: &Timestamp, micros: i64) -> Timestamp {
    let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos) + i128::from(micros) * 1_000;
    Timestamp { seconds: (nanos.div_euclid(1_000_000_000)) as i64, nanos: nanos.rem_euclid(1_000_000_000) as i32 }
}

fn micros_between(a: &Timestamp, b: &Timestamp) -> i64 {
    (b.seconds - a.seconds) * 1_000_000 + i64::from(b.nanos - a.nanos) / 1_000
}

/// Four customers: gold with vip (…201, …204), gold without (…202), vip below gold (…203).
async fn four_customers(app: &mut TestApp) -> [String; 4] {
    app.catalogue().await;
    app.define_tag("vip", "").await;
    let numbers = ["100000000201", "100000000202", "100000000203", "100000000204"].map(String::from);
    let yuan = [80_000, 90_000, 10_000, 50_000];
    for (i, number) in numbers.iter().enumerate() {
        app.customer_created(number, ("CORE", &format!("G{i}"))).await;
        app.load(vec![cny(&format!("A{i}"), by_number(number), "DEP", yuan[i], day(2026, 4, 1))]).await;
        if i != 1 {
            let set = pb::SetManualTagRequest { customer_number: number.clone(), tag_code: "vip".into() };
            app.client.set_manual_tag(set).await.unwrap();
        }
    }
    numbers
}

#[tokio::test]
async fn a_segment_over_a_tag_and_a_level_evaluates_to_the_right_members_and_streams_them() {
    let mut app = spawn_app().await;
    let n = four_customers(&mut app).await;
    let segment = define_segment(&mut app, "vip_gold", "TAG('vip') AND level >= 'gold'").await.unwrap();
    assert_eq!((segment.version, segment.condition.as_str()), (1, "tag('vip') and level >= 'gold'"));

    let snapshot = evaluate(&mut app, "vip_gold").await;
    assert_eq!((snapshot.member_count, snapshot.segment_version), (2, 1));
    assert_eq!(pages(&mut app, &snapshot.snapshot_id).await, [vec![n[0].clone(), n[3].clone()]]);

    let unknown = uuid::Uuid::now_v7().to_string();
    let missing = app
        .client
        .stream_segment_snapshot(pb::StreamSegmentSnapshotRequest { snapshot_id: unknown })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let bad = app
        .client
        .stream_segment_snapshot(pb::StreamSegmentSnapshotRequest { snapshot_id: "x".into() })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let none =
        app.client.evaluate_segment(pb::EvaluateSegmentRequest { segment_code: "nope".into(), as_of: None }).await;
    assert_eq!(none.unwrap_err().code(), Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn a_snapshot_stays_what_it_was_when_members_change_later() {
    let mut app = spawn_app().await;
    let n = four_customers(&mut app).await;
    define_segment(&mut app, "vip_gold", "tag('vip') and level >= 'gold'").await.unwrap();
    let before = evaluate(&mut app, "vip_gold").await;

    let remove = pb::RemoveManualTagRequest { customer_number: n[0].clone(), tag_code: "vip".into() };
    app.client.remove_manual_tag(remove).await.unwrap();
    app.load(vec![cny("A2", by_number(&n[2]), "DEP", 70_000, day(2026, 4, 2))]).await;

    let after = evaluate(&mut app, "vip_gold").await;
    assert_eq!(pages(&mut app, &after.snapshot_id).await, [vec![n[2].clone(), n[3].clone()]]);
    assert_eq!(
        pages(&mut app, &before.snapshot_id).await,
        [vec![n[0].clone(), n[3].clone()]],
        "the first snapshot keeps its members"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_segment_naming_an_unknown_tag_or_attribute_is_refused_with_its_column() {
    let mut app = spawn_app().await;
    let cases = [
        ("level >= 'gold' and tag('nope')", "column 21: unknown tag 'nope'"),
        ("aum.totl > 1", "column 1: unknown attribute 'aum.totl'"),
    ];
    for (condition, problem) in cases {
        let refused = define_segment(&mut app, "s", condition).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        let violation = refused.get_error_details().bad_request().unwrap().field_violations[0].clone();
        assert_eq!((violation.field.as_str(), violation.description.as_str()), ("segment.condition", problem));
    }
    let none = app.client.evaluate_segment(pb::EvaluateSegmentRequest { segment_code: "s".into(), as_of: None }).await;
    assert_eq!(none.unwrap_err().code(), Code::NotFound, "nothing was stored");
    app.stop().await;
}

#[tokio::test]
async fn a_large_snapshot_streams_in_ordered_pages_of_ten_thousand() {
    let mut app = spawn_app().await;
    define_segment(&mut app, "everyone", "aum.total >= 0").await.unwrap();
    let empty = evaluate(&mut app, "everyone").await;
    assert_eq!(empty.member_count, 0);
    assert!(pages(&mut app, &empty.snapshot_id).await.is_empty(), "an empty snapshot answers no page");

    // Paging is what is tested here: the members are written directly.
    let id: uuid::Uuid = empty.snapshot_id.parse().unwrap();
    sqlx::query(
        "INSERT INTO segment_member (snapshot_id, customer_number)
         SELECT $1, (100000000000 + n)::TEXT FROM generate_series(20000, 0, -1) AS n",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let pages = pages(&mut app, &empty.snapshot_id).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10_000, 10_000, 1]);
    let all: Vec<String> = pages.concat();
    assert!(all.windows(2).all(|w| w[0] < w[1]), "in order, no overlap");
    assert_eq!((all[0].as_str(), all[20_000].as_str()), ("100000000000", "100000020000"));
    app.stop().await;
}

#[tokio::test]
async fn membership_follows_a_balance_across_a_threshold_without_any_evaluation_and_keeps_its_history() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    let n = "100000000301";
    app.customer_created(n, ("CORE", "M1")).await;
    define_segment(&mut app, "rich", "aum.total >= 5000000").await.unwrap();
    app.load(vec![cny("A", by_number(n), "DEP", 30_000, day(2026, 4, 1))]).await;
    assert!(history(&mut app, n).await.is_empty(), "below the threshold: never a member");

    app.load(vec![cny("A", by_number(n), "DEP", 60_000, day(2026, 4, 2))]).await;
    let stays = history(&mut app, n).await;
    assert_eq!(stays.len(), 1);
    assert_eq!((stays[0].segment_code.as_str(), stays[0].entered_version), ("rich", 1));
    assert_eq!((stays[0].left_time.as_ref(), stays[0].left_version), (None, 0), "a member now");
    assert_eq!(members_now(&mut app, "rich").await, [n]);

    app.load(vec![cny("A", by_number(n), "DEP", 10_000, day(2026, 4, 3))]).await;
    let stays = history(&mut app, n).await;
    assert_eq!(stays.len(), 1, "the same stay, closed");
    let entered = stays[0].entered_time.unwrap();
    let left = stays[0].left_time.unwrap();
    assert!(micros_between(&entered, &left) > 0, "left after it entered");
    assert_eq!(stays[0].left_version, 1);
    assert!(members_now(&mut app, "rich").await.is_empty());

    let between = shifted(&entered, micros_between(&entered, &left) / 2);
    assert_eq!(members_at(&mut app, "rich", between).await, (vec![n.to_string()], 1), "a member then");
    assert_eq!(members_at(&mut app, "rich", entered).await.0, [n], "from the entry on");
    assert!(members_at(&mut app, "rich", shifted(&entered, -1)).await.0.is_empty(), "not before");
    assert!(members_at(&mut app, "rich", left).await.0.is_empty(), "not from the exit on");

    let events = app.membership_changes(2).await;
    let seen: Vec<_> = events.iter().map(|(s, c)| (s.as_str(), c.segment_code.as_str(), c.kind(), c.time)).collect();
    use pb::SegmentMembershipChangeKind::{Entered, Left};
    assert_eq!(seen, [(n, "rich", Entered, Some(entered)), (n, "rich", Left, Some(left))]);
    app.stop().await;
}

#[tokio::test]
async fn a_segments_entries_and_exits_list_by_time_range_in_pages() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    let (a, b) = ("100000000311", "100000000312");
    for number in [a, b] {
        app.customer_created(number, ("CORE", number)).await;
    }
    define_segment(&mut app, "rich", "aum.total >= 5000000").await.unwrap();
    app.load(vec![cny("A", by_number(a), "DEP", 60_000, day(2026, 4, 1))]).await;
    app.load(vec![cny("B", by_number(b), "DEP", 70_000, day(2026, 4, 1))]).await;
    app.load(vec![cny("A", by_number(a), "DEP", 1_000, day(2026, 4, 2))]).await;

    let list = |token: String, start_time: Option<Timestamp>| pb::ListSegmentMembershipChangesRequest {
        segment_code: "rich".into(),
        start_time,
        end_time: None,
        page_size: 2,
        page_token: token,
    };
    let first = app.client.list_segment_membership_changes(list(String::new(), None)).await.unwrap().into_inner();
    let second = app.client.list_segment_membership_changes(list(first.next_page_token.clone(), None)).await;
    let second = second.unwrap().into_inner();
    assert_eq!(second.next_page_token, "", "the last page");
    let all: Vec<_> =
        first.changes.iter().chain(&second.changes).map(|c| (c.customer_number.as_str(), c.kind())).collect();
    use pb::SegmentMembershipChangeKind::{Entered, Left};
    assert_eq!(all, [(a, Entered), (b, Entered), (a, Left)], "oldest first");
    assert!(first.changes.iter().chain(&second.changes).all(|c| c.segment_version == 1));

    let b_entered = first.changes[1].time;
    let later = app.client.list_segment_membership_changes(list(String::new(), b_entered)).await.unwrap().into_inner();
    let later: Vec<_> = later.changes.iter().map(|c| (c.customer_number.as_str(), c.kind())).collect();
    assert_eq!(later, [(b, Entered), (a, Left)], "from a start time on");

    let bad = pb::ListSegmentMembershipChangesRequest {
        segment_code: "Rich!".into(),
        start_time: Some(Timestamp { seconds: 2_000_000_000, nanos: 0 }),
        end_time: Some(Timestamp { seconds: 1_000_000_000, nanos: 0 }),
        page_size: -1,
        page_token: "nope".into(),
    };
    let refused = app.client.list_segment_membership_changes(bad).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let mut fields: Vec<String> =
        refused.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    fields.sort();
    assert_eq!(fields, ["end_time", "page_size", "page_token", "segment_code"]);
    let unknown = pb::ListSegmentMembershipChangesRequest { segment_code: "nope".into(), ..list(String::new(), None) };
    assert_eq!(app.client.list_segment_membership_changes(unknown).await.unwrap_err().code(), Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn a_redefined_segment_is_evaluated_for_everyone_and_an_as_of_snapshot_names_the_version_then_in_force() {
    let mut app = spawn_app().await;
    let n = four_customers(&mut app).await;
    define_segment(&mut app, "vip_gold", "tag('vip') and level >= 'gold'").await.unwrap();
    assert_eq!(members_now(&mut app, "vip_gold").await, [n[0].clone(), n[3].clone()], "evaluated when defined");
    let first = history(&mut app, &n[0]).await[0].entered_time.unwrap();

    let second = define_segment(&mut app, "vip_gold", "tag('vip')").await.unwrap();
    assert_eq!(second.version, 2);
    assert_eq!(members_now(&mut app, "vip_gold").await, [n[0].clone(), n[2].clone(), n[3].clone()]);
    let stays = history(&mut app, &n[2]).await;
    assert_eq!((stays.len(), stays[0].entered_version), (1, 2), "entered under the new version");
    assert_eq!(history(&mut app, &n[0]).await.len(), 1, "a member under both versions stays once");

    assert_eq!(members_at(&mut app, "vip_gold", first).await, (vec![n[0].clone(), n[3].clone()], 1));

    let future = shifted(&Timestamp::from(std::time::SystemTime::now()), 3_600_000_000);
    let early = Timestamp { seconds: 946_684_800, nanos: 0 };
    for (as_of, problem) in [(future, "must not be in the future"), (early, "is before segment vip_gold was defined")] {
        let refused = evaluate_as_of(&mut app, "vip_gold", Some(as_of)).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        let v = refused.get_error_details().bad_request().unwrap().field_violations[0].clone();
        assert_eq!((v.field.as_str(), v.description.as_str()), ("as_of", problem));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_customers_segment_history_needs_the_customer_in_the_callers_data_scope() {
    let mut app = spawn_app().await;
    let n = four_customers(&mut app).await;
    define_segment(&mut app, "vip_gold", "tag('vip') and level >= 'gold'").await.unwrap();
    assert_eq!(history(&mut app, &n[0]).await.len(), 1);

    let mut rm = app.scoped_client("rm-x", &[analytics::access::READ], DataScope::Own, "/HO/BJ/");
    let request = |number: &str| pb::ListCustomerSegmentHistoryRequest { customer_number: number.into() };
    let outside = rm.list_customer_segment_history(request(&n[0])).await.unwrap_err();
    assert_eq!(outside.code(), Code::PermissionDenied, "not the RM's customer");
    let unknown = app.client.list_customer_segment_history(request("999999")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let bad = app.client.list_customer_segment_history(request("12a")).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    app.stop().await;
}

/// A small deterministic generator.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

const SEGMENTS: [(&str, &str); 5] = [
    ("s_aum", "aum.total >= 4000000"),
    ("s_tags", "tag('vip') or tag('rich')"),
    ("s_level", "level >= 'gold' and not tag('vip')"),
    ("s_rfm", "rfm.f >= 3 and aum.deposit >= 1000000"),
    ("s_txn", "txn.count_90d >= 2 or aum.wealth_management > 2000000"),
];

/// The members of every segment now, and a from-scratch evaluation of each.
async fn current_and_fresh(app: &mut TestApp) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let (mut current, mut fresh) = (Vec::new(), Vec::new());
    for (code, _) in SEGMENTS {
        current.push(members_now(app, code).await);
        let segment = analytics::store::segments::definition(&app.pool, &code.parse().unwrap()).await.unwrap();
        let mut conn = app.pool.acquire().await.unwrap();
        fresh.push(analytics::store::segments::fresh_members(&mut conn, &segment).await.unwrap());
    }
    (current, fresh)
}

fn transaction(id: String, number: &str, yuan: i64, day_of_april: i64) -> pb::RecordTransactionsRequest {
    let april_1 = 1_775_001_600; // 2026-04-01T00:00:00Z
    pb::RecordTransactionsRequest {
        transaction: Some(pb::Transaction {
            transaction_id: id,
            customer: by_number(number),
            account_id: format!("T-{number}"),
            product_code: "DEP".into(),
            amount: Some(common::Money { amount_minor: yuan * 100, currency_code: "CNY".into() }),
            channel: pb::Channel::Mobile as i32,
            posted_time: Some(Timestamp { seconds: april_1 + (day_of_april - 1) * 86_400 + 3_600, nanos: 0 }),
            region_code: String::new(),
        }),
    }
}

#[tokio::test]
async fn the_current_membership_always_equals_a_fresh_evaluation_and_as_of_answers_what_it_was() {
    let mut app = spawn_app().await;
    app.catalogue().await;
    app.define_tag("vip", "").await;
    app.define_tag("rich", "aum.total >= 6000000").await;
    for (code, condition) in SEGMENTS {
        define_segment(&mut app, code, condition).await.unwrap();
    }
    let customers: Vec<String> = (0..14).map(|i| format!("1000000004{i:02}")).collect();
    for (i, number) in customers.iter().enumerate() {
        app.customer_created(number, ("CORE", &format!("D{i}"))).await;
    }
    let mut rng = Lcg(20_260_414);
    let products = ["DEP", "WM", "WM50"];
    let mut txn = 0;
    let mut checkpoint = None;
    for round in 1..=5i32 {
        let mut snapshots = Vec::new();
        let loaded: Vec<&String> = customers.iter().filter(|_| rng.next(3) != 0).collect();
        for number in loaded {
            for account in 0..2 {
                let product = products[rng.next(3) as usize];
                let yuan = rng.next(90_000) as i64;
                snapshots.push(cny(
                    &format!("{number}-{account}"),
                    by_number(number),
                    product,
                    yuan,
                    day(2026, 4, round),
                ));
            }
        }
        app.load(snapshots).await;
        let mut transactions = Vec::new();
        let buyers: Vec<&String> = customers.iter().filter(|_| rng.next(2) == 0).collect();
        for number in buyers {
            for _ in 0..=rng.next(3) {
                txn += 1;
                transactions.push(transaction(
                    format!("TX{txn}"),
                    number,
                    rng.next(5_000) as i64 + 1,
                    i64::from(round),
                ));
            }
        }
        let report = app.client.record_transactions(futures::stream::iter(transactions)).await.unwrap().into_inner();
        assert!(report.report.unwrap().rejections.is_empty());
        let tagged: Vec<&String> = customers.iter().filter(|_| rng.next(4) == 0).collect();
        for number in tagged {
            let tag = "vip".to_string();
            if rng.next(2) == 0 {
                let set = pb::SetManualTagRequest { customer_number: number.clone(), tag_code: tag };
                app.client.set_manual_tag(set).await.unwrap();
            } else {
                let remove = pb::RemoveManualTagRequest { customer_number: number.clone(), tag_code: tag };
                app.client.remove_manual_tag(remove).await.unwrap();
            }
        }
        if round == 3 {
            let merged = cpb::CustomerMerged {
                surviving_customer_number: customers[0].clone(),
                absorbed_customer_numbers: vec![customers[1].clone()],
                reason: "STEWARD".into(),
            };
            app.customer_event(&customers[0], &merged).await;
        }
        app.settled().await;
        let (current, fresh) = current_and_fresh(&mut app).await;
        assert_eq!(current, fresh, "round {round}");
        if round == 2 {
            let at: time::OffsetDateTime =
                sqlx::query_scalar("SELECT clock_timestamp()").fetch_one(&app.pool).await.unwrap();
            checkpoint = Some((crm_platform::convert::timestamp(at), current));
        }
    }
    let (current, _) = current_and_fresh(&mut app).await;
    assert!(current.iter().all(|m| !m.contains(&customers[1])), "the absorbed customer left every segment");
    let (at, then) = checkpoint.unwrap();
    for (i, (code, _)) in SEGMENTS.iter().enumerate() {
        assert_eq!(members_at(&mut app, code, at).await.0, then[i], "{code} as of round 2");
    }
    let sizes: Vec<usize> = current.iter().map(Vec::len).collect();
    assert!(sizes.iter().all(|&n| n > 0 && n < customers.len()), "every segment holds some, not all: {sizes:?}");

    let (entries, exits): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(left_at) FROM segment_membership").fetch_one(&app.pool).await.unwrap();
    assert!(exits > 0, "customers left segments along the way");
    let events = app.membership_changes((entries + exits) as usize).await;
    assert_eq!(events.len() as i64, entries + exits, "every entry and exit announced");
    app.stop().await;
}

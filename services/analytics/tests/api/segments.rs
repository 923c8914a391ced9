//! Segments: one over a tag and a level evaluates to the right members, streams them in
//! order, and its snapshot stays what it was when the customers change later.

use crm_proto::crm::analytics::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

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
    app.client.evaluate_segment(pb::EvaluateSegmentRequest { segment_code: code.into() }).await.unwrap().into_inner()
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
    let none = app.client.evaluate_segment(pb::EvaluateSegmentRequest { segment_code: "nope".into() }).await;
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
    let none = app.client.evaluate_segment(pb::EvaluateSegmentRequest { segment_code: "s".into() }).await;
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

use crm_proto::crm::customer::v1 as pb;
use tonic::Code;

use crate::helpers::{Events, ID15, ID18, person, spawn_app};

#[tokio::test]
async fn customers_are_assigned_adjusted_and_recalled_with_history_and_events() {
    let mut app = spawn_app().await;
    let a = app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap();
    let b = app.upsert(person("CORE", "C-2", "110105198001010016", "李娜")).await.unwrap();
    let _ = app.events.take(2).await;

    let assigned = app
        .client
        .assign_customers(pb::AssignCustomersRequest {
            customer_numbers: vec![a.customer_number.clone(), b.customer_number.clone()],
            home_org_id: "BR-SH-01".into(),
            primary_rm_id: "rm-7".into(),
            related_rm_ids: vec!["rm-9".into()],
            reason: "branch portfolio".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .assignments;
    assert_eq!(assigned.len(), 2, "a batch assignment");
    assert!(assigned.iter().all(|x| x.primary_rm_id == "rm-7" && x.home_org_id == "BR-SH-01"));

    // Adjust one: new primary RM; org and related RMs stay.
    let adjusted = app
        .client
        .assign_customers(pb::AssignCustomersRequest {
            customer_numbers: vec![a.customer_number.clone()],
            primary_rm_id: "rm-8".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .assignments;
    assert_eq!((adjusted[0].primary_rm_id.as_str(), adjusted[0].home_org_id.as_str()), ("rm-8", "BR-SH-01"));
    assert_eq!(adjusted[0].related_rm_ids, ["rm-9"]);

    let recalled = app
        .client
        .recall_customers(pb::RecallCustomersRequest {
            customer_numbers: vec![a.customer_number.clone()],
            reason: "RM left".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .assignments;
    assert_eq!((recalled[0].primary_rm_id.as_str(), recalled[0].home_org_id.as_str()), ("", "BR-SH-01"));
    assert!(recalled[0].related_rm_ids.is_empty());

    let history = app
        .client
        .list_assignment_history(pb::ListAssignmentHistoryRequest {
            customer_number: a.customer_number.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    let actions: Vec<i32> = history.iter().map(|c| c.action).collect();
    assert_eq!(
        actions,
        [pb::AssignmentAction::Recall as i32, pb::AssignmentAction::Adjust as i32, pb::AssignmentAction::Assign as i32]
    );
    assert_eq!(history[0].reason, "RM left");

    let events: Vec<pb::CustomerAssigned> = Events::of(&app.events.take(4).await);
    assert_eq!(events.len(), 4, "one event per customer and change");
    app.stop().await;
}

#[tokio::test]
async fn a_batch_with_an_unknown_customer_changes_nothing() {
    let mut app = spawn_app().await;
    let a = app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap();
    let status = app
        .client
        .assign_customers(pb::AssignCustomersRequest {
            customer_numbers: vec![a.customer_number.clone(), "899999999990".into()],
            primary_rm_id: "rm-7".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(status.code(), Code::NotFound | Code::InvalidArgument), "{status:?}");
    assert_eq!(app.count("SELECT count(*) FROM party_assignment").await, 0);
    let bad = app
        .client
        .assign_customers(pb::AssignCustomersRequest { customer_numbers: vec!["12".into()], ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    app.stop().await;
}

#[tokio::test]
async fn search_finds_customers_by_any_form_of_their_id_phone_name_org_and_rm() {
    let mut app = spawn_app().await;
    let mut zhang = person("CORE", "C-1", ID18, "张伟");
    zhang.mobile_phone = "13800001111".into();
    let zhang = app.upsert(zhang).await.unwrap();
    let li = app.upsert(person("CARDS", "K-1", "110105198001010016", "李娜")).await.unwrap();
    let mut other = person("LOANS", "L-1", "A-77881", "王芳");
    other.id_type = pb::IdType::Other as i32;
    let other = app.upsert(other).await.unwrap();
    app.client
        .assign_customers(pb::AssignCustomersRequest {
            customer_numbers: vec![li.customer_number.clone()],
            home_org_id: "BR-BJ".into(),
            related_rm_ids: vec!["rm-3".into()],
            ..Default::default()
        })
        .await
        .unwrap();

    let find = |r: pb::SearchCustomersRequest| {
        let mut client = app.client.clone();
        async move {
            client
                .search_customers(r)
                .await
                .unwrap()
                .into_inner()
                .customers
                .into_iter()
                .map(|c| c.customer_number)
                .collect::<Vec<_>>()
        }
    };
    let by = |f: fn(&mut pb::SearchCustomersRequest)| {
        let mut r = pb::SearchCustomersRequest::default();
        f(&mut r);
        r
    };
    assert_eq!(find(by(|r| r.id_number = ID15.into())).await, [zhang.customer_number.clone()]);
    assert_eq!(
        find(by(|r| r.id_number = "１１０１０５１９４９１２３１００２ｘ".into())).await,
        [zhang.customer_number.clone()]
    );
    assert_eq!(find(by(|r| r.id_number = "a-77881".into())).await, [other.customer_number.clone()]);
    assert_eq!(find(by(|r| r.mobile_phone = "+86 138 0000 1111".into())).await, [zhang.customer_number.clone()]);
    assert_eq!(find(by(|r| r.name_prefix = "李".into())).await, [li.customer_number.clone()]);
    assert_eq!(find(by(|r| r.name_contains = "芳".into())).await, [other.customer_number.clone()]);
    assert_eq!(find(by(|r| r.home_org_id = "BR-BJ".into())).await, [li.customer_number.clone()]);
    assert_eq!(find(by(|r| r.rm_id = "rm-3".into())).await, [li.customer_number.clone()]);
    assert!(find(by(|r| r.name_contains = "%".into())).await.is_empty(), "wildcards are literal");

    let refused = app.client.search_customers(pb::SearchCustomersRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "a search needs a criterion");

    // Paging: all three in one org, one per page.
    app.client
        .assign_customers(pb::AssignCustomersRequest {
            customer_numbers: vec![
                zhang.customer_number.clone(),
                li.customer_number.clone(),
                other.customer_number.clone(),
            ],
            home_org_id: "BR-PG".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut token = String::new();
    for _ in 0..5 {
        let page = app
            .client
            .search_customers(pb::SearchCustomersRequest {
                home_org_id: "BR-PG".into(),
                page_size: 1,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.customers.into_iter().map(|c| c.customer_number));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    seen.sort();
    let mut all = vec![zhang.customer_number, li.customer_number, other.customer_number];
    all.sort();
    assert_eq!(seen, all, "every customer exactly once across pages");
    app.stop().await;
}

use crm_proto::crm::customer::v1 as pb;

use crate::helpers::{Events, ID15, ID18, person, spawn_app};

#[tokio::test]
async fn the_15_and_18_digit_forms_of_one_id_with_one_name_are_one_customer() {
    let mut app = spawn_app().await;
    let mut core = person("CORE", "C-1", ID18, "张伟");
    core.mobile_phone = "13800001111".into();
    let mut cards = person("CARDS", "K-1", ID15, "张伟");
    cards.mobile_phone = "13912345678".into();
    cards.email = "zhang.wei@example.com".into();
    let a = app.upsert(core).await.unwrap();
    let b = app.upsert(cards).await.unwrap();
    assert_eq!(a.customer_number, b.customer_number);

    let c = app.customer(&a.customer_number).await;
    assert_eq!(c.source_keys.len(), 2);
    let lineage = |attr: &str| {
        c.lineage.iter().find(|l| l.attribute == attr).and_then(|l| l.source.clone()).map(|s| s.source_system)
    };
    // Configured trust: cards is trusted more than core for phone and email.
    assert_eq!(lineage("mobile_phone").as_deref(), Some("CARDS"));
    assert_eq!(c.mobile_phone, "139****5678");
    assert_eq!(lineage("email").as_deref(), Some("CARDS"));
    // Core is trusted most for everything else, including the ID number as stored.
    assert_eq!(lineage("id_number").as_deref(), Some("CORE"));
    let stored: String =
        sqlx::query_scalar("SELECT attributes->>'id_number' FROM source_record WHERE source_system = 'CARDS'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let pii = customer_profile::pii::PiiCipher::from_hex(crate::helpers::PII_KEY).unwrap();
    assert_eq!(pii.decrypt("id_number", &stored).unwrap(), ID15, "the 15-digit form is stored as received");
    app.stop().await;
}

#[tokio::test]
async fn records_of_one_source_system_that_match_are_merged_too() {
    let mut app = spawn_app().await;
    let a = app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap();
    let b = app.upsert(person("CORE", "C-2", "11010519491231002x", "张 伟")).await.unwrap();
    assert_eq!(a.customer_number, b.customer_number);
    app.stop().await;
}

#[tokio::test]
async fn the_same_id_with_another_name_is_a_suspect_pair_not_a_merge() {
    let mut app = spawn_app().await;
    let a = app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap();
    let b = app.upsert(person("CARDS", "K-1", ID18, "张玮")).await.unwrap();
    assert_ne!(a.customer_number, b.customer_number);
    let suspects =
        app.client.list_suspect_pairs(pb::ListSuspectPairsRequest::default()).await.unwrap().into_inner().suspect_pairs;
    assert_eq!(suspects.len(), 1);
    let s = &suspects[0];
    let mut pair = [s.customer_number_a.clone(), s.customer_number_b.clone()];
    pair.sort();
    let mut expected = [a.customer_number.clone(), b.customer_number.clone()];
    expected.sort();
    assert_eq!(pair, expected);
    assert_eq!(s.id_number, "110105********002X");
    app.stop().await;
}

#[tokio::test]
async fn a_steward_saying_same_party_merges_the_pair() {
    let mut app = spawn_app().await;
    let a = app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap();
    let b = app.upsert(person("CARDS", "K-1", ID18, "张玮")).await.unwrap();
    let _ = app.events.take(2).await;
    let pairs =
        app.client.list_suspect_pairs(pb::ListSuspectPairsRequest::default()).await.unwrap().into_inner().suspect_pairs;
    let resolved = app
        .client
        .resolve_suspect_pair(pb::ResolveSuspectPairRequest {
            suspect_pair_id: pairs[0].suspect_pair_id.clone(),
            resolution: pb::SuspectResolution::SameParty as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.customer_number, a.customer_number, "the older customer survives");
    // The absorbed number still resolves, to the survivor.
    let via_old = app.customer(&b.customer_number).await;
    assert_eq!(via_old.customer_number, a.customer_number);
    assert_eq!(via_old.source_keys.len(), 2);
    let merged: Vec<pb::CustomerMerged> = Events::of(&app.events.take(1).await);
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].absorbed_customer_numbers, std::slice::from_ref(&b.customer_number));
    assert_eq!(merged[0].reason, "STEWARD");
    let again = app
        .client
        .resolve_suspect_pair(pb::ResolveSuspectPairRequest {
            suspect_pair_id: pairs[0].suspect_pair_id.clone(),
            resolution: pb::SuspectResolution::SameParty as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    app.stop().await;
}

#[tokio::test]
async fn a_pair_a_steward_called_different_is_never_suggested_again() {
    let mut app = spawn_app().await;
    app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap();
    app.upsert(person("CARDS", "K-1", ID18, "张玮")).await.unwrap();
    let pairs =
        app.client.list_suspect_pairs(pb::ListSuspectPairsRequest::default()).await.unwrap().into_inner().suspect_pairs;
    app.client
        .resolve_suspect_pair(pb::ResolveSuspectPairRequest {
            suspect_pair_id: pairs[0].suspect_pair_id.clone(),
            resolution: pb::SuspectResolution::DifferentParties as i32,
        })
        .await
        .unwrap();
    // Another record of either identity arrives: still not suggested again.
    app.upsert(person("LOANS", "L-1", ID18, "张玮")).await.unwrap();
    let pairs =
        app.client.list_suspect_pairs(pb::ListSuspectPairsRequest::default()).await.unwrap().into_inner().suspect_pairs;
    assert!(pairs.is_empty(), "{pairs:?}");
    app.stop().await;
}

#[tokio::test]
async fn customers_with_id_type_other_are_never_merged() {
    let mut app = spawn_app().await;
    let mut a = person("CORE", "C-1", "A-77881", "李娜");
    a.id_type = pb::IdType::Other as i32;
    let mut b = person("CARDS", "K-1", "A-77881", "李娜");
    b.id_type = pb::IdType::Other as i32;
    let a = app.upsert(a).await.unwrap();
    let b = app.upsert(b).await.unwrap();
    assert_ne!(a.customer_number, b.customer_number);
    let pairs =
        app.client.list_suspect_pairs(pb::ListSuspectPairsRequest::default()).await.unwrap().into_inner().suspect_pairs;
    assert!(pairs.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_source_edit_that_makes_two_customers_match_merges_them() {
    let mut app = spawn_app().await;
    let a = app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap();
    let b = app.upsert(person("CARDS", "K-1", ID18, "张玮")).await.unwrap();
    assert_ne!(a.customer_number, b.customer_number);
    let _ = app.events.take(2).await;

    let mut fixed = person("CARDS", "K-1", ID18, "张伟"); // the cards system corrects the name
    fixed.source_version = 2;
    let r = app.upsert(fixed).await.unwrap();
    assert_eq!(r.customer_number, a.customer_number);
    assert_eq!(r.absorbed_customer_numbers, std::slice::from_ref(&b.customer_number));
    let merged: Vec<pb::CustomerMerged> = Events::of(&app.events.take(1).await);
    assert_eq!(merged[0].surviving_customer_number, a.customer_number);
    assert_eq!(merged[0].absorbed_customer_numbers, std::slice::from_ref(&b.customer_number));
    assert_eq!(app.customer(&b.customer_number).await.customer_number, a.customer_number);
    assert_eq!(app.count("SELECT count(*) FROM party_history WHERE change_kind IN ('MERGED', 'ABSORBED')").await, 2);
    app.stop().await;
}

#[tokio::test]
async fn an_edit_that_breaks_the_only_link_splits_the_record_off_again() {
    let mut app = spawn_app().await;
    let a = app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap();
    let b = app.upsert(person("CARDS", "K-1", ID18, "张伟")).await.unwrap();
    assert_eq!(a.customer_number, b.customer_number);
    let _ = app.events.take(1).await;

    let other_id = "110105198001010016";
    let mut moved = person("CARDS", "K-1", other_id, "张伟");
    moved.source_version = 2;
    let r = app.upsert(moved).await.unwrap();
    assert_ne!(r.customer_number, a.customer_number);
    let events = app.events.take(2).await;
    let unmerged: Vec<pb::CustomerUnmerged> = Events::of(&events);
    assert_eq!(unmerged.len(), 1);
    assert_eq!(unmerged[0].customer_number, a.customer_number);
    assert_eq!(unmerged[0].new_customer_number, r.customer_number);
    assert_eq!(app.customer(&a.customer_number).await.source_keys.len(), 1);
    assert_eq!(app.count("SELECT count(*) FROM party_history WHERE change_kind = 'UNMERGED'").await, 1);
    app.stop().await;
}

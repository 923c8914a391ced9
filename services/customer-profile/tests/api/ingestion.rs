use crm_proto::crm::customer::v1 as pb;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{Events, ID18, person, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_new_source_record_creates_a_customer_and_announces_it() {
    let mut app = spawn_app().await;
    let mut record = person("CORE", "C-1", ID18, "张伟");
    record.mobile_phone = "138 0000 1111".into();
    let r = app.upsert(record).await.unwrap();
    assert_eq!(r.outcome, pb::UpsertOutcome::Created as i32);
    assert!(customer_profile::domain::is_valid_customer_number(&r.customer_number));

    let c = app.customer(&r.customer_number).await;
    assert_eq!(c.name, "张伟");
    assert_eq!(c.id_number, "110105********002X", "masked by default");
    assert_eq!(c.mobile_phone, "138****1111", "masked by default");
    assert_eq!(c.birth_date.map(|d| (d.year, d.month, d.day)), Some((1949, 12, 31)), "derived from the ID");
    assert_eq!(c.gender, pb::Gender::Female as i32, "derived from the ID (even sequence)");

    let events = app.events.take(1).await;
    let created: Vec<pb::CustomerCreated> = Events::of(&events);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].customer_number, r.customer_number);
    assert_eq!(events[0].subject, r.customer_number);
    let demographics = created[0].demographics.clone().unwrap();
    assert_eq!(demographics.birth_date.map(|d| (d.year, d.month, d.day)), Some((1949, 12, 31)));
    assert_eq!(demographics.gender, pb::Gender::Female as i32);
    assert_eq!(demographics.region_code, "110105", "the ID's area code; never the ID number itself");
    app.stop().await;
}

#[tokio::test]
async fn a_record_joining_a_customer_without_changing_it_is_announced_as_linked() {
    let mut app = spawn_app().await;
    let first = app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap();
    app.events.take(1).await; // CustomerCreated
    let joined = app.upsert(person("CARD", "K-9", ID18, "张伟")).await.unwrap();
    assert_eq!(joined.customer_number, first.customer_number);

    let events = app.events.take(1).await;
    let linked: Vec<pb::SourceRecordLinked> = Events::of(&events);
    assert_eq!(linked.len(), 1, "{events:?}");
    assert_eq!(linked[0].customer_number, first.customer_number);
    let source = linked[0].source.as_ref().unwrap();
    assert_eq!((source.source_system.as_str(), source.source_customer_id.as_str()), ("CARD", "K-9"));
    app.stop().await;
}

#[tokio::test]
async fn a_replay_or_an_older_version_changes_nothing() {
    let mut app = spawn_app().await;
    let mut v2 = person("CORE", "C-1", ID18, "张伟");
    v2.source_version = 2;
    v2.email = "new@example.com".into();
    let first = app.upsert(v2.clone()).await.unwrap();
    let replay = app.upsert(v2.clone()).await.unwrap();
    assert_eq!(replay.outcome, pb::UpsertOutcome::Unchanged as i32);

    let mut v1 = v2.clone();
    v1.source_version = 1;
    v1.email = "old@example.com".into();
    let older = app.upsert(v1).await.unwrap();
    assert_eq!(older.outcome, pb::UpsertOutcome::Unchanged as i32);
    assert_eq!(older.customer_number, first.customer_number);
    assert_eq!(app.customer(&first.customer_number).await.email, "new@example.com");
    app.stop().await;
}

#[tokio::test]
async fn an_unusable_record_is_rejected_with_field_violations_and_changes_nothing() {
    let mut app = spawn_app().await;
    let good = app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap();

    let mut bad = person("CORE", "C-1", "110105194912310021", ""); // wrong check character, no name
    bad.source_version = 2;
    let status = app.upsert(bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let fields: Vec<String> =
        details.bad_request().expect("bad request").field_violations.iter().map(|v| v.field.clone()).collect();
    assert!(fields.contains(&"record.id_number".to_string()), "{fields:?}");
    assert!(fields.contains(&"record.name".to_string()), "{fields:?}");

    let c = app.customer(&good.customer_number).await;
    assert_eq!(c.name, "张伟", "the stored record is untouched");
    assert_eq!(app.count("SELECT source_version FROM source_record").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn an_imperfect_record_is_accepted_with_quality_flags() {
    let mut app = spawn_app().await;
    let mut record = person("CORE", "C-1", ID18, "张伟");
    record.mobile_phone = "12345".into();
    record.email = "not-an-email".into();
    let r = app.upsert(record).await.unwrap();
    assert!(r.quality_flags.contains(&"PHONE_INVALID".to_string()), "{:?}", r.quality_flags);
    assert!(r.quality_flags.contains(&"EMAIL_INVALID".to_string()), "{:?}", r.quality_flags);
    let c = app.customer(&r.customer_number).await;
    assert_eq!(c.mobile_phone, "", "an invalid phone never becomes golden");
    app.stop().await;
}

#[tokio::test]
async fn a_bulk_import_answers_per_record_and_loads_the_good_ones() {
    let mut app = spawn_app().await;
    let records = vec![
        person("CORE", "C-1", ID18, "张伟"),
        person("CORE", "C-2", "110105194912310021", "李娜"), // broken check character
        person("CARDS", "K-1", ID18, "张伟"),
    ];
    let stream = tokio_stream::iter(records.into_iter().map(|r| pb::ImportSourceRecordsRequest { record: Some(r) }));
    let response = app.client.import_source_records(stream).await.unwrap().into_inner();
    assert_eq!((response.accepted_count, response.rejected_count), (2, 1));
    let outcomes: Vec<i32> = response.outcomes.iter().map(|o| o.outcome).collect();
    assert_eq!(
        outcomes,
        [pb::UpsertOutcome::Created as i32, pb::UpsertOutcome::Rejected as i32, pb::UpsertOutcome::Created as i32]
    );
    assert_eq!(response.outcomes[1].violations[0].field, "record.id_number");
    assert_eq!(response.outcomes[0].customer_number, response.outcomes[2].customer_number, "same person, one customer");
    app.stop().await;
}

#[tokio::test]
async fn a_customer_is_found_by_any_of_its_source_keys() {
    let mut app = spawn_app().await;
    let r = app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap();
    app.upsert(person("LOANS", "L-9", ID18, "张伟")).await.unwrap();
    let by_source = app
        .client
        .get_customer(pb::GetCustomerRequest {
            lookup: Some(pb::get_customer_request::Lookup::SourceKey(pb::SourceKey {
                source_system: "LOANS".into(),
                source_customer_id: "L-9".into(),
            })),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(by_source.customer_number, r.customer_number);
    assert_eq!(by_source.source_keys.len(), 2);

    let missing = app
        .client
        .get_customer(pb::GetCustomerRequest {
            lookup: Some(pb::get_customer_request::Lookup::CustomerNumber("800000000000".into())),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let empty = app.client.get_customer(pb::GetCustomerRequest { lookup: None }).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    app.stop().await;
}

#[tokio::test]
async fn id_and_phone_numbers_are_never_stored_in_clear() {
    let mut app = spawn_app().await;
    let mut a = person("CORE", "C-1", ID18, "张伟");
    a.mobile_phone = "13800001111".into();
    app.upsert(a).await.unwrap();
    app.upsert(person("CARDS", "K-1", ID18, "张玮")).await.unwrap(); // a suspect pair too
    let dump: Vec<String> = sqlx::query_scalar(
        "SELECT t::text FROM (
             SELECT to_jsonb(s) AS t FROM source_record s
             UNION ALL SELECT to_jsonb(p) FROM party p
             UNION ALL SELECT to_jsonb(g) FROM identity_group g
             UNION ALL SELECT to_jsonb(x) FROM suspect_pair x
             UNION ALL SELECT to_jsonb(h) FROM party_history h) rows",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(dump.len() >= 6);
    for row in &dump {
        assert!(!row.contains("491231002"), "ID number in clear: {row}");
        assert!(!row.contains("13800001111"), "phone number in clear: {row}");
    }
    // Still readable through the API, masked.
    let c = app
        .client
        .get_customer(pb::GetCustomerRequest {
            lookup: Some(pb::get_customer_request::Lookup::SourceKey(pb::SourceKey {
                source_system: "CORE".into(),
                source_customer_id: "C-1".into(),
            })),
        })
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!((c.id_number.as_str(), c.mobile_phone.as_str()), ("110105********002X", "138****1111"));
    app.stop().await;
}

#[tokio::test]
async fn concurrent_upserts_of_one_person_from_many_calls_end_in_one_customer() {
    let mut app = spawn_app().await;
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let mut client = app.client.clone();
            let mut record = person(["CORE", "CARDS", "LOANS"][i % 3], &format!("P-{i}"), ID18, "张伟");
            record.email = format!("p{i}@example.com");
            tokio::spawn(async move {
                client.upsert_source_record(pb::UpsertSourceRecordRequest { record: Some(record) }).await
            })
        })
        .collect();
    let mut numbers = std::collections::BTreeSet::new();
    for call in calls {
        let r = call.await.unwrap().unwrap().into_inner();
        assert_eq!(r.outcome, pb::UpsertOutcome::Created as i32);
        numbers.insert(r.customer_number);
    }
    assert_eq!(numbers.len(), 1, "{numbers:?}");
    let number = numbers.into_iter().next().unwrap();
    let sources: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM source_record s JOIN party p USING (party_id) WHERE p.customer_number = $1",
    )
    .bind(&number)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(sources, 40);
    // One creation, then an update whenever a record changed the golden record.
    let events = app.events.take(1).await;
    let created: Vec<pb::CustomerCreated> = Events::of(&events);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].customer_number, number);
    app.stop().await;
}

#[tokio::test]
async fn values_beyond_the_documented_limits_or_with_control_characters_are_refused_and_nothing_is_stored() {
    let mut app = spawn_app().await;
    let huge_name = "王".repeat(100_000);
    let long_id = "C".repeat(5_000);
    let long_address = "路".repeat(200_000);
    type Edit = Box<dyn Fn(&mut pb::SourceRecord)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("record.name", Box::new(move |r| r.name = huge_name.clone())),
        ("record.name", Box::new(|r| r.name = "张\0伟".into())),
        ("record.name", Box::new(|r| r.name = "张\u{1b}伟".into())),
        (
            "record.key.source_customer_id",
            Box::new(move |r| r.key.as_mut().unwrap().source_customer_id = long_id.clone()),
        ),
        ("record.address", Box::new(move |r| r.address = long_address.clone())),
        ("record.id_number", Box::new(|r| r.id_number = "1101\u{0}".into())),
    ];
    for (field, edit) in cases {
        let mut record = person("CORE", "C-1", ID18, "张伟");
        edit(&mut record);
        let refused = app.upsert(record).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{field}: {refused:?}");
        let fields: Vec<String> = refused
            .get_error_details()
            .bad_request()
            .expect("bad request")
            .field_violations
            .iter()
            .map(|v| v.field.clone())
            .collect();
        assert_eq!(fields, vec![field.to_string()]);
    }
    assert_eq!(app.count("SELECT count(*) FROM source_record").await, 0, "nothing stored");
    assert_eq!(app.count("SELECT count(*) FROM party").await, 0, "nothing stored");
    // At the limits a record is accepted.
    let mut record = person("CORE", "C-1", ID18, &"王".repeat(200));
    record.address = "路".repeat(500);
    app.upsert(record).await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_message_over_the_size_limit_answers_resource_exhausted_in_a_call_and_in_a_stream() {
    let mut app = spawn_app_with(&[("grpc.max_message_bytes", "65536")]).await;
    // Just under the limit the message is read (and refused for its overlong name).
    let under = app.upsert(person("CORE", "C-1", ID18, &"x".repeat(60_000))).await.unwrap_err();
    assert_eq!(under.code(), Code::InvalidArgument, "{under:?}");
    let over = app.upsert(person("CORE", "C-1", ID18, &"x".repeat(70_000))).await.unwrap_err();
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");
    assert!(over.message().contains("grpc.max_message_bytes"), "{over:?}");

    let records = [person("CORE", "C-2", ID18, "张伟"), person("CORE", "C-3", ID18, &"x".repeat(70_000))];
    let stream = tokio_stream::iter(records.map(|r| pb::ImportSourceRecordsRequest { record: Some(r) }));
    let over = app.client.import_source_records(stream).await.unwrap_err();
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");

    // Health answers the same way, with no token needed to find out.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{}", app.port))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let huge = tonic_health::pb::HealthCheckRequest { service: "x".repeat(70_000) };
    assert_eq!(health.check(huge).await.unwrap_err().code(), Code::ResourceExhausted);
    app.stop().await;
}

#[tokio::test]
async fn an_import_stream_of_more_records_than_a_stream_holds_is_refused_at_the_first_one_too_many() {
    let mut app = spawn_app().await;
    let limit = customer_profile::limits::MAX_IMPORT_RECORDS;
    // Empty records: each rejected in its outcome, none stored.
    let stream = tokio_stream::iter((0..=limit).map(|_| pb::ImportSourceRecordsRequest { record: None }));
    let refused = app.client.import_source_records(stream).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let fields: Vec<String> =
        refused.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["record"]);
    let stream = tokio_stream::iter((0..limit).map(|_| pb::ImportSourceRecordsRequest { record: None }));
    let answered = app.client.import_source_records(stream).await.unwrap().into_inner();
    assert_eq!(answered.rejected_count, limit);
    assert_eq!(app.count("SELECT count(*) FROM source_record").await, 0);
    app.stop().await;
}

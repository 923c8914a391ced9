use crm_platform::audit::{self, AuditWriter, Entry, Filter};
use crm_platform::paging::Page;
use crm_platform::{FieldViolations, context::CallContext};
use serde_json::json;
use sqlx::Connection;

use crate::support::Kit;

fn entry(actor: &str, action: &str, subject: Option<&str>) -> Entry {
    CallContext::of(&tonic::Request::new(())).acting_as(actor).audit(action, subject, json!({ "n": 1 }))
}

fn first_page(size: i32) -> Page {
    Page::parse("audit", size, "", &mut FieldViolations::new())
}

#[tokio::test]
async fn an_entry_recorded_in_a_rolled_back_change_is_not_kept_and_one_in_a_committed_change_is() {
    let kit = Kit::new().await;
    let mut conn =
        sqlx::PgConnection::connect_with(&crm_platform::db::connect_options(&kit.settings.database).unwrap())
            .await
            .unwrap();
    let mut tx = conn.begin().await.unwrap();
    audit::record_in(&mut tx, &[entry("u-1", "role.updated", Some("RM"))]).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(audit::read(&kit.pool, &Filter::default(), &first_page(10)).await.unwrap().is_empty());

    let mut tx = conn.begin().await.unwrap();
    audit::record_in(&mut tx, &[entry("u-1", "role.updated", Some("RM"))]).await.unwrap();
    tx.commit().await.unwrap();
    let stored = audit::read(&kit.pool, &Filter::default(), &first_page(10)).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].entry, entry("u-1", "role.updated", Some("RM")));
}

#[tokio::test]
async fn concurrent_calls_through_the_writer_are_all_stored_before_they_return() {
    let kit = Kit::new().await;
    let (writer, task) = AuditWriter::new(kit.pool.clone());
    let running = tokio::spawn(task);
    let calls = (0..40).map(|i| {
        let writer = writer.clone();
        async move { writer.write(vec![entry(&format!("u-{i}"), "customer.view_360", Some("C1"))]).await }
    });
    for result in futures::future::join_all(calls).await {
        result.expect("stored");
    }
    let stored = audit::read(&kit.pool, &Filter::default(), &first_page(500)).await.unwrap();
    assert_eq!(stored.len(), 40);
    drop(writer);
    running.await.expect("the writer ends when the last handle is dropped");
}

#[tokio::test]
async fn the_trail_pages_newest_first_and_filters_by_actor_subject_action_and_time() {
    let kit = Kit::new().await;
    let mut entries = Vec::new();
    for i in 0..7 {
        let actor = if i % 2 == 0 { "u-even" } else { "u-odd" };
        let action = if i < 4 { "customer.view_360" } else { "customer.assign" };
        entries.push(entry(actor, action, Some(&format!("C{}", i % 3))));
    }
    audit::record(&kit.pool, &entries).await.unwrap();

    // Paging: 7 entries in pages of 3, newest first, each page after the last one's key.
    let mut seen = Vec::new();
    let mut page = first_page(3);
    loop {
        let rows = audit::read(&kit.pool, &Filter::default(), &page).await.unwrap();
        seen.extend(rows.iter().map(|r| r.audit_id));
        let token = page.next_token(&rows, |r| r.audit_id);
        if token.is_empty() {
            break;
        }
        page = Page::parse("audit", 3, &token, &mut FieldViolations::new());
    }
    assert_eq!(seen.len(), 7);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first: {seen:?}");

    let count = |filter: Filter| {
        let pool = kit.pool.clone();
        async move { audit::read(&pool, &filter, &first_page(100)).await.unwrap().len() }
    };
    let by = |actor: Option<&str>, subject: Option<&str>, action: Option<&str>| Filter {
        actor: actor.map(str::to_string),
        subject: subject.map(str::to_string),
        action: action.map(str::to_string),
        ..Filter::default()
    };
    let cases = [
        (by(Some("u-even"), None, None), 4),
        (by(None, Some("C0"), None), 3),
        (by(None, None, Some("customer.assign")), 3),
        (by(Some("u-odd"), Some("C1"), Some("customer.view_360")), 1),
        (by(Some("nobody"), None, None), 0),
    ];
    for (filter, expected) in cases {
        assert_eq!(count(filter.clone()).await, expected, "{filter:?}");
    }
    let now = time::OffsetDateTime::now_utc();
    let later = now + time::Duration::hours(1);
    assert_eq!(count(Filter { until: Some(later), ..Filter::default() }).await, 7);
    assert_eq!(count(Filter { from: Some(later), ..Filter::default() }).await, 0);
}

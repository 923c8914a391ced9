//! The limits of the contract on every request (`src/limits.rs`): what the sweep of
//! bad input (`tests/tests/sweep`) found answering INTERNAL before they were checked.

use crm_proto::crm::customer::v1 as pb;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::helpers::{ID18, person, spawn_app};

/// The fields of a refusal's field violations, after checking it is INVALID_ARGUMENT.
fn refused_fields<T: std::fmt::Debug>(answer: Result<T, Status>) -> Vec<String> {
    let status = answer.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect()
}

#[tokio::test]
async fn a_nul_in_a_lookup_or_filter_field_is_refused_naming_the_field_not_answered_internal() {
    let mut app = spawn_app().await;
    app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap();
    let c = &mut app.client;
    let nul = || "8000\0".to_string();
    let lookup = pb::get_customer_request::Lookup::CustomerNumber(nul());
    assert_eq!(
        refused_fields(c.get_customer(pb::GetCustomerRequest { lookup: Some(lookup) }).await),
        ["customer_number"]
    );
    let key = pb::SourceKey { source_system: "CORE".into(), source_customer_id: nul() };
    let lookup = pb::get_customer_request::Lookup::SourceKey(key);
    assert_eq!(
        refused_fields(c.get_customer(pb::GetCustomerRequest { lookup: Some(lookup) }).await),
        ["source_key.source_customer_id"]
    );
    let view = pb::GetCustomer360Request { customer_number: nul() };
    assert_eq!(refused_fields(c.get_customer360(view).await), ["customer_number"]);
    let history = pb::ListCustomerHistoryRequest { customer_number: nul(), ..Default::default() };
    assert_eq!(refused_fields(c.list_customer_history(history).await), ["customer_number"]);
    let history = pb::ListAssignmentHistoryRequest { customer_number: nul(), ..Default::default() };
    assert_eq!(refused_fields(c.list_assignment_history(history).await), ["customer_number"]);
    let audit = pb::ListAccessAuditRequest { customer_number: nul(), actor: "a\0".into(), ..Default::default() };
    assert_eq!(refused_fields(c.list_access_audit(audit).await), ["customer_number", "actor"]);
    let search = pb::SearchCustomersRequest {
        name_prefix: "张\0".into(),
        name_contains: "\0".into(),
        home_org_id: "HO\0".into(),
        rm_id: "rm\0".into(),
        ..Default::default()
    };
    assert_eq!(
        refused_fields(c.search_customers(search).await),
        ["name_prefix", "name_contains", "home_org_id", "rm_id"]
    );
    app.stop().await;
}

#[tokio::test]
async fn overlong_or_too_many_values_of_a_change_are_refused_and_nothing_changes() {
    let mut app = spawn_app().await;
    let number = app.upsert(person("CORE", "C-1", ID18, "张伟")).await.unwrap().customer_number;
    let c = &mut app.client;
    let assign = pb::AssignCustomersRequest {
        customer_numbers: vec![number.clone()],
        home_org_id: "HO".into(),
        related_rm_ids: vec!["rm".into(); 21],
        reason: "r".repeat(501),
        ..Default::default()
    };
    assert_eq!(refused_fields(c.assign_customers(assign).await), ["related_rm_ids", "reason"]);
    let set = pb::SetExtendedAttributesRequest {
        customer_number: number.clone(),
        set: [("risk.note".to_string(), "bad\0value".to_string())].into(),
        remove: vec![],
    };
    assert_eq!(refused_fields(c.set_extended_attributes(set).await), ["set[risk.note]"]);
    let remove = pb::RemovePartyDetailRequest { customer_number: number, detail_id: "d\0".into() };
    assert_eq!(refused_fields(c.remove_party_detail(remove).await), ["detail_id"]);
    assert_eq!(app.count("SELECT count(*) FROM assignment_history").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM party_extended_attribute").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_import_outcome_echoes_a_key_only_within_its_limits() {
    let mut app = spawn_app().await;
    let records = [person("CORE", "C-1", ID18, "张伟"), person("CORE", &"C".repeat(100_000), ID18, "张伟")];
    let stream = tokio_stream::iter(records.map(|r| pb::ImportSourceRecordsRequest { record: Some(r) }));
    let answer = app.client.import_source_records(stream).await.unwrap().into_inner();
    assert_eq!((answer.accepted_count, answer.rejected_count), (1, 1));
    assert_eq!(answer.outcomes[0].key.as_ref().map(|k| k.source_customer_id.as_str()), Some("C-1"));
    assert_eq!(answer.outcomes[1].index, 1);
    assert_eq!(answer.outcomes[1].key, None, "the rejected record is named by its index");
    assert_eq!(answer.outcomes[1].violations[0].field, "record.key.source_customer_id");
    app.stop().await;
}

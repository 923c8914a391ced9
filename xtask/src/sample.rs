//! `cargo xtask sample`: loads a generated sample into a running customer-profile and
//! shows what the ECIF made of it: a merged customer's golden record with lineage and
//! source cross-reference, and the work list of suspect pairs; then the analytics
//! sample ([`crate::sample_value`]): balances, levels, the value card. It logs in to identity as the
//! development administrator (`xtask up` generated the password into `.dev/`).

use crm_platform::grpc::client::BearerToken;
use crm_proto::crm::analytics::v1::analytics_service_client::AnalyticsServiceClient;
use crm_proto::crm::common::v1 as common;
use crm_proto::crm::customer::v1 as pb;
use crm_proto::crm::identity::v1 as id;
use id::auth_service_client::AuthServiceClient;
use pb::customer_service_client::CustomerServiceClient;

fn showcase() -> Vec<pb::SourceRecord> {
    let rec = |system: &str, id: &str, id_type: pb::IdType, number: &str, name: &str, phone: &str, email: &str| {
        pb::SourceRecord {
            key: Some(pb::SourceKey { source_system: system.into(), source_customer_id: id.into() }),
            source_version: 1,
            party_kind: pb::PartyKind::Personal as i32,
            id_type: id_type as i32,
            id_number: number.into(),
            name: name.into(),
            gender: pb::Gender::Unspecified as i32,
            birth_date: None,
            nationality: "CHN".into(),
            mobile_phone: phone.into(),
            email: email.into(),
            address: String::new(),
            occupation: String::new(),
        }
    };
    vec![
        // One person in three systems: core banking has the 18-digit ID, the loans
        // system the old 15-digit form, cards a better phone and an email.
        rec("CORE", "SAMPLE-C-1", pb::IdType::ResidentId, "11010519491231002X", "张伟", "13800001111", ""),
        rec("LOANS", "SAMPLE-L-1", pb::IdType::ResidentId, "110105491231002", "张伟", "", ""),
        rec(
            "CARDS",
            "SAMPLE-K-1",
            pb::IdType::ResidentId,
            "11010519491231002x",
            "张伟",
            "13912345678",
            "zhang.wei@example.com",
        ),
        // Same ID, another name: not merged, but a suspect pair for a data steward.
        rec("CARDS", "SAMPLE-K-2", pb::IdType::ResidentId, "11010519491231002X", "张玮", "13700002222", ""),
        // ID type "other": never merged, even with an identical number and name.
        rec("CORE", "SAMPLE-C-3", pb::IdType::Other, "A-77881", "李娜", "", ""),
        rec("CARDS", "SAMPLE-K-3", pb::IdType::Other, "A-77881", "李娜", "", ""),
    ]
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

pub async fn run(args: &[String]) -> Result<(), String> {
    let endpoint = arg(args, "--endpoint").unwrap_or_else(|| "http://127.0.0.1:50052".into());
    let n: usize =
        arg(args, "--records").map(|v| v.parse().map_err(|_| "--records takes a number")).transpose()?.unwrap_or(2000);
    let identity = arg(args, "--identity").unwrap_or_else(|| "http://127.0.0.1:50051".into());
    // customer-profile wants a token: log in as the development administrator.
    let mut auth = AuthServiceClient::connect(identity.clone())
        .await
        .map_err(|e| format!("cannot reach identity at {identity} (is `cargo xtask up` running?): {e}"))?;
    let tokens = auth
        .login(id::LoginRequest { login: crate::dev::DEV_ADMIN_LOGIN.into(), password: crate::dev::admin_password()? })
        .await
        .map_err(|e| format!("cannot log in as `{}`: {}", crate::dev::DEV_ADMIN_LOGIN, e.message()))?
        .into_inner()
        .tokens
        .unwrap_or_default();
    let bearer = BearerToken::new(&tokens.access_token).ok_or("identity issued an unusable token")?;
    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot reach customer-profile at {endpoint} (is `cargo xtask up` running?): {e}"))?;
    let mut client = CustomerServiceClient::with_interceptor(channel, bearer.clone());

    let mut records = showcase();
    let generated = customer_profile::sample::generate(42, n);
    records.extend(generated.iter().cloned());
    let total = records.len();
    let stream =
        tokio_stream::iter(records.into_iter().map(|record| pb::ImportSourceRecordsRequest { record: Some(record) }));
    let response = client.import_source_records(stream).await.map_err(|e| e.to_string())?.into_inner();
    println!(
        "imported {total} source records: {} accepted, {} rejected",
        response.accepted_count, response.rejected_count
    );
    if let Some(bad) = response.outcomes.iter().find(|o| !o.violations.is_empty()) {
        println!(
            "  e.g. record {} rejected: {}",
            bad.index,
            bad.violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; ")
        );
    }

    let merged = client
        .get_customer(pb::GetCustomerRequest {
            lookup: Some(pb::get_customer_request::Lookup::SourceKey(pb::SourceKey {
                source_system: "LOANS".into(),
                source_customer_id: "SAMPLE-L-1".into(),
            })),
        })
        .await
        .map_err(|e| e.to_string())?
        .into_inner()
        .customer
        .unwrap_or_default();
    println!("\nmerged customer {} (found by the loans system's key LOANS/SAMPLE-L-1):", merged.customer_number);
    println!("  name {}  id {}  phone {}  email {}", merged.name, merged.id_number, merged.mobile_phone, merged.email);
    if let Some(common::Date { year, month, day }) = merged.birth_date {
        println!("  birth date {year:04}-{month:02}-{day:02} (derived from the ID)");
    }
    for l in &merged.lineage {
        let s = l.source.clone().unwrap_or_default();
        println!("  {:<12} from {}/{} (trust {})", l.attribute, s.source_system, s.source_customer_id, l.trust);
    }
    println!(
        "  source records: {}",
        merged
            .source_keys
            .iter()
            .map(|k| format!("{}/{}", k.source_system, k.source_customer_id))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let suspects = client
        .list_suspect_pairs(pb::ListSuspectPairsRequest { page_size: 5, page_token: String::new() })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    println!("\nwork list of suspect pairs (first {}):", suspects.suspect_pairs.len());
    for s in suspects.suspect_pairs {
        println!(
            "  #{} {} {} vs {} {}  id {}",
            s.suspect_pair_id, s.customer_number_a, s.name_a, s.customer_number_b, s.name_b, s.id_number
        );
    }

    let analytics_endpoint = arg(args, "--analytics").unwrap_or_else(|| "http://127.0.0.1:50053".into());
    let channel = tonic::transport::Endpoint::from_shared(analytics_endpoint.clone())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot reach analytics at {analytics_endpoint} (is `cargo xtask up` running?): {e}"))?;
    let mut analytics = AnalyticsServiceClient::with_interceptor(channel, bearer);
    crate::sample_value::run(&mut analytics, &mut client, &generated, &merged.customer_number).await?;

    println!(
        "\nmore: grpcurl -plaintext {} describe crm.customer.v1.CustomerService",
        endpoint.trim_start_matches("http://")
    );
    println!(
        "      grpcurl -plaintext {} describe crm.analytics.v1.AnalyticsService",
        analytics_endpoint.trim_start_matches("http://")
    );
    Ok(())
}

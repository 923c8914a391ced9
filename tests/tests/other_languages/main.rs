//! Clients generated from `proto/` in another language: Python's grpcio (C-core), the
//! test `tests/python/test_clients.py` run against identity, customer-profile and
//! analytics started here. Its packages are listed in `tests/python/requirements.txt`
//! (`.ci/run` installs them).

#![allow(clippy::unwrap_used)] // tests fail loudly

use crm_system_tests::{ADMIN_PASSWORD, TestPlatform, run_python};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_generated_from_the_contracts_logs_in_imports_in_parallel_reads_and_searches() {
    let platform = TestPlatform::start().await.unwrap();
    let (identity, customers, analytics) = (platform.identity_port, platform.customers_port, platform.analytics_port);
    let env = vec![
        ("CRM_IDENTITY_ADDR", format!("127.0.0.1:{identity}")),
        ("CRM_CUSTOMERS_ADDR", format!("127.0.0.1:{customers}")),
        ("CRM_ANALYTICS_ADDR", format!("127.0.0.1:{analytics}")),
        ("CRM_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
    ];
    assert!(run_python("test_clients.py", env).await, "the Python client tests failed (output above)");
    platform.stop().await;
}

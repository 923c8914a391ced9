//! Clients generated from `proto/` in another language: Python's grpcio (C-core), the
//! test `tests/python/test_clients.py` run against identity and customer-profile
//! started here. Its packages are listed in `tests/python/requirements.txt`
//! (`.ci/run` installs them).

#![allow(clippy::unwrap_used)] // tests fail loudly

use std::path::Path;
use std::process::Command;

use crm_system_tests::{ADMIN_PASSWORD, TestPlatform};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_generated_from_the_contracts_logs_in_imports_in_parallel_reads_and_searches() {
    let platform = TestPlatform::start().await.unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/test_clients.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let (identity, customers) = (platform.identity_port, platform.customers_port);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(&script)
            .env("CRM_IDENTITY_ADDR", format!("127.0.0.1:{identity}"))
            .env("CRM_CUSTOMERS_ADDR", format!("127.0.0.1:{customers}"))
            .env("CRM_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .output()
    })
    .await
    .unwrap()
    .expect("python3 runs (set PYTHON to choose another interpreter)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{}{stderr}", String::from_utf8_lossy(&output.stdout));
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "the Python packages are missing: pip install -r tests/python/requirements.txt"
    );
    assert!(output.status.success(), "the Python client tests failed (output above)");
    platform.stop().await;
}

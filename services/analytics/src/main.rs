//! `analytics [migrate|healthcheck]`: see `crm_platform::cli`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    crm_platform::cli::main::<analytics::Analytics>().await
}

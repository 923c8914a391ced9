//! Stop signals. The binary waits for SIGTERM (Kubernetes) or SIGINT (Ctrl-C) and
//! passes the resulting future into the application, which is how tests stop an
//! application too: they pass in their own future instead.

use tokio_util::sync::CancellationToken;

/// Resolves on SIGTERM or SIGINT.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for sigterm");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!(signal = "SIGINT", "stop requested"),
        _ = term => tracing::info!(signal = "SIGTERM", "stop requested"),
    }
}

/// A token cancelled when `stop` resolves, for the background tasks of a service.
pub fn token_from(stop: impl std::future::Future<Output = ()> + Send + 'static) -> CancellationToken {
    let token = CancellationToken::new();
    let child = token.clone();
    tokio::spawn(async move {
        stop.await;
        child.cancel();
    });
    token
}

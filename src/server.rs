//! Starting and stopping: the partitions, the HTTP server, signals.
//!
//! `start` is shared by `main` and the black-box tests (which bind port 0 and may
//! pass a mock clock); `run` adds signal handling and waits for the end.

use std::{io, net::SocketAddr, time::Duration};

use actix_web::{App, HttpServer, dev::Server, web};
use log::info;

use crate::{
    config::{Config, Placement},
    http::{self, AppState, Limits},
    store::Store,
};

/// A started server: await `server` to run it to completion.
pub struct Running {
    pub server: Server,
    pub addrs: Vec<SocketAddr>,
    pub store: Store,
}

/// Starts the store and binds the HTTP server. Must be called inside an actix
/// `System`. Signals are not handled here (see `run`).
pub fn start(config: &Config, clock: quanta::Clock) -> io::Result<Running> {
    let store = Store::start(&config.store, clock);
    let state = web::Data::new(AppState {
        store: store.clone(),
        limits: Limits::from_config(config),
    });
    let workers = config.server.resolved_workers();
    let attach = (config.store.placement == Placement::Workers).then(|| store.clone());
    let server = HttpServer::new(move || {
        // Runs on each worker thread as it starts: adopt this worker's partitions.
        if let Some(store) = &attach {
            store.attach_worker_thread(workers);
        }
        App::new()
            .app_data(state.clone())
            .configure(http::configure)
    })
    .workers(workers)
    .shutdown_timeout(config.server.shutdown_timeout.as_secs())
    .client_request_timeout(Duration::from_secs(5))
    .disable_signals()
    .bind((config.server.bind.as_str(), config.server.port))?;
    let addrs = server.addrs();
    Ok(Running {
        server: server.run(),
        addrs,
        store,
    })
}

/// Runs the server until SIGINT or SIGTERM, then stops gracefully: no new
/// connections, requests in flight finish (up to `shutdown_timeout`), exit 0.
pub async fn run(config: Config) -> io::Result<()> {
    let running = start(&config, quanta::Clock::new())?;
    info!(
        "rustkv listening on {:?}: {} partitions, {} workers, capacity {}, max_memory {}",
        running.addrs,
        running.store.partition_count(),
        config.server.resolved_workers(),
        config.store.capacity,
        config.store.max_memory,
    );
    let handle = running.server.handle();
    actix_rt::spawn(async move {
        let signal = shutdown_signal().await;
        info!("{signal} received: finishing requests in flight, then stopping");
        handle.stop(true).await;
    });
    running.server.await?;
    running.store.stop();
    info!("rustkv stopped");
    Ok(())
}

async fn shutdown_signal() -> &'static str {
    use actix_rt::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without signal handlers, never resolve: the process still dies on a signal.
        return std::future::pending().await;
    };
    tokio_select(interrupt.recv(), terminate.recv()).await
}

/// Waits for whichever signal comes first.
async fn tokio_select(
    interrupt: impl std::future::Future<Output = Option<()>>,
    terminate: impl std::future::Future<Output = Option<()>>,
) -> &'static str {
    use futures_util::future::{Either, select};
    match select(std::pin::pin!(interrupt), std::pin::pin!(terminate)).await {
        Either::Left(_) => "SIGINT",
        Either::Right(_) => "SIGTERM",
    }
}

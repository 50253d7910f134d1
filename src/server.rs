//! Starting and stopping: the partitions, the HTTP server, signals (SIGINT and
//! SIGTERM stop, SIGHUP reloads the TLS certificate).
//!
//! `start` is shared by `main` and the black-box tests (which bind port 0 and may
//! pass a mock clock); `run` adds signal handling and waits for the end.
//!
//! The App is served by actix-server and actix-http directly rather than through
//! `HttpServer`, so that connections go through `net` (see there for why).

use std::{
    io,
    net::{SocketAddr, TcpListener, ToSocketAddrs},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use actix_server::{Server, ServerHandle};
use actix_web::{
    App,
    middleware::{Condition, Logger, from_fn},
    web,
};
use log::{info, warn};

use crate::{
    config::{Config, Placement, ServerConfig},
    http::{
        self, AppState, Limits, auth, head::HeaderLimits, metrics::Metrics,
        tracking::RequestMetrics,
    },
    net::{self, Lifecycle, Timeouts},
    persist::{Aof, SyncHook},
    replication::{Feed, PrimaryAccess, Replication},
    store::{Persistence, Replicated, Store, StoreClock},
    tls::Tls,
};

/// A started server: await `server` to run it to completion.
pub struct Running {
    pub server: Server,
    pub addrs: Vec<SocketAddr>,
    pub store: Store,
    /// Running, draining or stopping: `shut_down` moves it on.
    pub lifecycle: Arc<Lifecycle>,
    /// The TLS configuration, with `[tls]` set: `reload_tls` rotates it.
    pub tls: Option<Arc<Tls>>,
}

/// Routes registered ahead of the product's: tests use them to reach inside a
/// running server (e.g. to stop a worker thread). `main` adds none.
pub type ExtraRoutes = fn(&mut web::ServiceConfig);

/// What a server runs on besides its config: the clocks, and what tests inject.
pub struct Environment {
    /// The store's clock (tests pass `quanta::Clock::mock()`).
    pub clock: quanta::Clock,
    /// The wall-clock time at start, which turns TTLs into absolute expiry times
    /// on disk (tests pass a later time to pretend a restart happened later).
    pub wall_start: SystemTime,
    /// How log files are synced (tests observe or delay it); `fdatasync` if `None`.
    pub sync: Option<SyncHook>,
    pub extra: ExtraRoutes,
}

impl Environment {
    pub fn new(clock: quanta::Clock) -> Environment {
        Environment {
            clock,
            wall_start: SystemTime::now(),
            sync: None,
            extra: |_| {},
        }
    }
}

/// Starts the store and binds the HTTP server. Must be called inside an actix
/// `System`. Signals are not handled here (see `run`).
pub fn start(config: &Config, clock: quanta::Clock) -> io::Result<Running> {
    start_in(config, Environment::new(clock))
}

/// `start`, with `extra` routes registered before the product's.
pub fn start_with(
    config: &Config,
    clock: quanta::Clock,
    extra: ExtraRoutes,
) -> io::Result<Running> {
    start_in(
        config,
        Environment {
            extra,
            ..Environment::new(clock)
        },
    )
}

/// Opens the store (empty, or recovered from `[persistence] dir`) with its
/// replication feed; a configured replica follows its primary from the start.
fn open_store(config: &Config, env: &Environment) -> io::Result<(Store, Arc<Feed>)> {
    let clock = StoreClock::starting_at(env.clock.clone(), env.wall_start);
    let persistence: Option<Box<dyn Persistence + Send>> = if config.persistence.enabled() {
        let aof = Aof::open(&config.persistence, env.sync.clone()).map_err(io::Error::other)?;
        Some(Box::new(aof))
    } else {
        None
    };
    let backlog = config.replication.backlog_size.as_u64() as usize;
    let feed = Arc::new(Feed::new(clock.clone(), backlog));
    let replicated = Arc::new(Replicated::new(feed.clone()));
    if !config.replication.primary.is_empty() {
        replicated.set_following(Some(config.replication.primary.clone()));
    }
    let store = Store::open_replicated(&config.store, clock, persistence, Some(replicated))
        .map_err(io::Error::other)?;
    Ok((store, feed))
}

/// The node's replication, started (a configured replica connects now).
fn start_replication(
    config: &Config,
    store: &Store,
    feed: Arc<Feed>,
    token: Option<String>,
    lifecycle: &Arc<Lifecycle>,
) -> io::Result<Arc<Replication>> {
    let own = config
        .replication
        .primary_token()
        .map_err(io::Error::other)?;
    let saved_dir = config
        .persistence
        .enabled()
        .then(|| config.persistence.dir.clone());
    let access = PrimaryAccess {
        token: own.or(token),
        tls: config.replication.primary_tls().map_err(io::Error::other)?,
    };
    let replication = Replication::new(
        store.clone(),
        feed,
        &config.replication,
        access,
        saved_dir,
        Arc::clone(lifecycle),
    );
    replication.start();
    Ok(replication)
}

/// `start` in a given environment.
pub fn start_in(config: &Config, env: Environment) -> io::Result<Running> {
    let extra = env.extra;
    let token = config
        .auth
        .resolve()
        .map_err(io::Error::other)?
        .map(|token| Arc::<[u8]>::from(token.into_bytes()));
    warn_if_exposed(config, token.is_some());
    // Before the store: a bad certificate should not wait for a recovery to be told.
    let tls = match config.tls.enabled() {
        true => Some(Arc::new(Tls::load(&config.tls).map_err(io::Error::other)?)),
        false => None,
    };
    let (store, feed) = open_store(config, &env)?;
    let metrics = Metrics::new(store.clone(), tls.clone()).map_err(io::Error::other)?;
    let lifecycle = Arc::new(Lifecycle::default());
    let own_token = token
        .as_ref()
        .map(|t| String::from_utf8_lossy(t).into_owned());
    let replication = start_replication(config, &store, feed, own_token, &lifecycle)?;
    metrics
        .watch_replication(Arc::clone(&replication))
        .map_err(io::Error::other)?;
    let state = web::Data::new(AppState {
        store: store.clone(),
        limits: Limits::from_config(config),
        metrics: Arc::clone(&metrics),
        lifecycle: Arc::clone(&lifecycle),
        replication,
    });
    let workers = config.server.resolved_workers();
    let attach = (config.store.placement == Placement::Workers).then(|| store.clone());
    let access_log = config.log.access_log;
    let request_metrics = config.metrics.requests;
    let app = move || {
        // Runs on each worker thread as it starts: adopt this worker's partitions.
        if let Some(store) = &attach {
            store.attach_worker_thread(workers);
        }
        let (metrics, token) = (Arc::clone(&metrics), token.clone());
        // `wrap` order: the last registered runs first, so the access log sees the
        // final status of everything, metrics count 431s and 401s, header limits come
        // before anything reads a header, and auth guards the routes.
        App::new()
            .app_data(state.clone())
            .wrap(Condition::new(
                token.is_some(),
                from_fn(move |request, next| {
                    auth::require_token(token.clone().unwrap_or_default(), request, next)
                }),
            ))
            .wrap(HeaderLimits {
                max_headers: state.limits.max_headers,
                max_bytes: state.limits.max_header_bytes,
            })
            .wrap(Condition::new(
                request_metrics,
                RequestMetrics(metrics.routes.clone()),
            ))
            .wrap(Condition::new(
                access_log,
                Logger::new(r#"%a "%r" %s %b %Dms"#),
            ))
            .configure(extra)
            .configure(|cfg| http::configure(cfg, &state.limits))
    };
    let server = &config.server;
    let timeouts = Timeouts {
        head: server.client_request_timeout,
        body: server.client_body_timeout,
        keep_alive: server.keep_alive,
    };
    // actix-server's own timeout only backs ours up (`shut_down`), in whole seconds.
    let backstop = server.shutdown_timeout.as_secs_f64().ceil() as u64 + 1;
    let mut builder = Server::build()
        .workers(workers)
        .max_concurrent_connections(server.max_connections)
        .shutdown_timeout(backstop)
        .disable_signals();
    let mut addrs = Vec::new();
    for addr in (server.bind.as_str(), server.port).to_socket_addrs()? {
        let listener = listen(addr)?;
        let local = listener.local_addr()?;
        addrs.push(local);
        let (app, lifecycle) = (app.clone(), Arc::clone(&lifecycle));
        let (name, tls) = match &tls {
            Some(tls) => ("rustkv-https", Some(Arc::clone(tls))),
            None => ("rustkv", None),
        };
        builder = builder.listen(name, listener, move || {
            net::serve(app(), timeouts, Arc::clone(&lifecycle), local, tls.clone())
        })?;
    }
    Ok(Running {
        server: builder.run(),
        addrs,
        store,
        lifecycle,
        tls,
    })
}

/// A listening socket as actix-web's `HttpServer` makes one (address reuse, a
/// backlog of 1024).
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Binding beyond loopback without a token exposes the whole cache, and with a
/// token but without TLS the token crosses the network readable: say so loudly.
fn warn_if_exposed(config: &Config, has_token: bool) {
    let loopback = (config.server.bind.as_str(), config.server.port)
        .to_socket_addrs()
        .map(|mut addrs| addrs.all(|addr| addr.ip().is_loopback()))
        .unwrap_or(false);
    if loopback {
        return;
    }
    if !has_token {
        warn!(
            "listening on {} without authentication: anyone who can reach it can read and \
             write the cache; set [auth] token_file or RUSTKV_TOKEN",
            config.server.bind
        );
    } else if !config.tls.enabled() {
        warn!(
            "listening on {} over plain HTTP: the bearer token and every key and value \
             cross the network in clear text; set [tls] cert and key",
            config.server.bind
        );
    }
}

/// Reloads the TLS files on each SIGHUP; a bad file keeps the ones in use.
/// Handled without TLS too, where it reloads nothing: a SIGHUP meant for a reload
/// must not stop the server, as its default action would.
async fn reload_on_hangup(tls: Option<Arc<Tls>>) {
    use actix_rt::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        warn!("cannot listen for SIGHUP: TLS certificates will not reload");
        return;
    };
    while hangup.recv().await.is_some() {
        match &tls {
            Some(tls) => reload_tls(tls),
            None => info!("SIGHUP received: nothing to reload ([tls] is not set)"),
        }
    }
}

/// Reloads the TLS files and logs the outcome.
pub fn reload_tls(tls: &Tls) {
    match tls.reload() {
        Ok(()) => info!("SIGHUP received: TLS certificate reloaded; new connections use it"),
        Err(error) => {
            warn!("SIGHUP received: TLS reload failed, keeping the certificate in use: {error}")
        }
    }
}

/// The effective configuration as TOML, with the token redacted, for the start-up log.
fn describe(config: &Config) -> String {
    let mut shown = config.clone();
    if !shown.auth.token.is_empty() {
        shown.auth.token = "<redacted>".into();
    }
    toml::to_string(&shown).unwrap_or_default()
}

/// Runs the server until SIGINT or SIGTERM, then stops gracefully (`shut_down`).
pub async fn run(config: Config) -> io::Result<()> {
    let running = start(&config, quanta::Clock::new())?;
    info!("effective configuration:\n{}", describe(&config));
    info!(
        "rustkv listening on {:?} ({}): {} partitions, {} workers, capacity {}, max_memory {}",
        running.addrs,
        match running.tls {
            Some(_) => "HTTPS",
            None => "plain HTTP",
        },
        running.store.partition_count(),
        config.server.resolved_workers(),
        config.store.capacity,
        config.store.max_memory,
    );
    actix_rt::spawn(reload_on_hangup(running.tls.clone()));
    let handle = running.server.handle();
    let lifecycle = Arc::clone(&running.lifecycle);
    let server = config.server.clone();
    actix_rt::spawn(async move {
        let signal = shutdown_signal().await;
        info!("{signal} received: finishing requests in flight, then stopping");
        shut_down(handle, &lifecycle, &server).await;
    });
    running.server.await?;
    let stats = running.store.stats().total;
    let persists = config.persistence.enabled();
    running.store.stop();
    let fate = if persists {
        format!(
            "written to {} (logs synced)",
            config.persistence.dir.display()
        )
    } else {
        "dropped with the process".to_owned()
    };
    info!(
        "rustkv stopped: requests in flight finished; {} keys ({} bytes) {fate}; served {} \
         hits, {} misses, {} writes, {} deletes",
        stats.keys,
        stats.memory,
        stats.hits,
        stats.misses,
        stats.inserts + stats.updates,
        stats.deletes
    );
    Ok(())
}

/// Drains (`shutdown_drain`), stops reading requests, waits for the connections
/// to close (`shutdown_timeout` at most, to the millisecond), then stops the server.
pub async fn shut_down(handle: ServerHandle, lifecycle: &Lifecycle, server: &ServerConfig) {
    lifecycle.start_draining();
    if !server.shutdown_drain.is_zero() {
        info!(
            "draining for {}: /health answers 503, requests are still served",
            humantime::format_duration(server.shutdown_drain)
        );
        actix_rt::time::sleep(server.shutdown_drain).await;
    }
    handle.pause().await;
    lifecycle.stop_reading();
    let deadline = Instant::now() + server.shutdown_timeout;
    while lifecycle.open_connections() > 0 && Instant::now() < deadline {
        // Polled: the last connection closing is not an event anyone sends.
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    let open = lifecycle.open_connections();
    if open > 0 {
        warn!("shutdown_timeout reached: closing {open} connections with requests unanswered");
    }
    handle.stop(false).await;
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

//! The `rustkv` binary: parse the command line, load the config, start logging,
//! run the server. Everything else lives in the library.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use mimalloc::MiMalloc;
use rustkv::config::{Config, Overrides};

/// mimalloc instead of glibc malloc: no per-allocation header and finer size
/// classes (the entry of a typical small key and value is ~100 bytes), and a faster
/// small-object path; see the README's Performance section for the measurements.
#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

/// An in-memory key-value cache served over a REST API.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// TOML config file; keys it leaves out take the embedded defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides server.bind).
    #[arg(long)]
    bind: Option<String>,
    /// Port to listen on (overrides server.port).
    #[arg(long)]
    port: Option<u16>,
    /// Most entries held (overrides store.capacity).
    #[arg(long)]
    capacity: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        bind: cli.bind,
        port: cli.port,
        capacity: cli.capacity,
    };
    let config = match Config::load(cli.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("rustkv: {error}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::new()
        .parse_filters(&config.log.level)
        .parse_env(env_logger::Env::default())
        .init();
    match actix_web::rt::System::new().block_on(rustkv::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            log::error!("rustkv: {error}");
            ExitCode::FAILURE
        }
    }
}

//! Config parsing, defaults and validation, by table.

use super::*;

#[test]
fn embedded_file_equals_serde_defaults() {
    let parsed = Config::parse(DEFAULT_TOML).expect("default.toml parses");
    assert_eq!(parsed, Config::default());
    parsed.validate().expect("defaults are valid");
}

#[test]
fn missing_keys_take_defaults() {
    let config = Config::parse("[store]\ncapacity = 7\n").unwrap();
    assert_eq!(config.store.capacity, 7);
    assert_eq!(config.server, ServerConfig::default());
    assert_eq!(config.store.tick, Duration::from_millis(100));
}

#[test]
fn sizes_and_durations_are_human_readable() {
    let config = Config::parse(
        "[store]\nmax_memory = \"64MB\"\nmax_value_bytes = \"2KiB\"\nmax_ttl = \"1h\"\ntick = \"5ms\"\n",
    )
    .unwrap();
    assert_eq!(config.store.max_memory.as_u64(), 64_000_000);
    assert_eq!(config.store.max_value_bytes.as_u64(), 2048);
    assert_eq!(config.store.max_ttl, Duration::from_secs(3600));
    assert_eq!(config.store.tick, Duration::from_millis(5));
}

#[test]
fn eviction_policies_parse_and_others_are_named() {
    let config = Config::parse("[store]\neviction = \"tinylfu\"\n").unwrap();
    assert_eq!(config.store.eviction, Eviction::Tinylfu);
    let error = Config::parse("[store]\neviction = \"lfu\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("eviction") && error.contains("tinylfu"),
        "{error}"
    );
}

#[test]
fn unknown_key_is_named() {
    let error = Config::parse("[store]\ncapasity = 7\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("capasity"), "{error}");
}

#[test]
fn bad_type_is_named() {
    let error = Config::parse("[server]\nport = \"http\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("port"), "{error}");
}

#[test]
fn invalid_values_name_their_key() {
    let cases = [
        ("[store]\ncapacity = 0", "store.capacity"),
        ("[store]\ntick = \"0s\"", "store.tick"),
        ("[store]\nmax_ttl = \"0s\"", "store.max_ttl"),
        ("[store]\nmax_key_bytes = 0", "store.max_key_bytes"),
        ("[store]\nmax_memory = \"1KB\"", "store.max_memory"),
        (
            "[store]\ncapacity = 10\npartitions = 11",
            "store.partitions",
        ),
        ("[server]\nmax_body = \"1KB\"", "server.max_body"),
        ("[server]\nbind = \"not an address!\"", "server.bind"),
        (
            "[server]\nclient_request_timeout = \"50ms\"",
            "server.client_request_timeout",
        ),
        (
            "[server]\nclient_body_timeout = \"0s\"",
            "server.client_body_timeout",
        ),
        ("[server]\nmax_connections = 0", "server.max_connections"),
        ("[server]\nmax_headers = 0", "server.max_headers"),
        ("[server]\nmax_headers = 97", "server.max_headers"),
        (
            "[server]\nmax_header_bytes = \"512B\"",
            "server.max_header_bytes",
        ),
        (
            "[server]\nmax_header_bytes = \"1MiB\"",
            "server.max_header_bytes",
        ),
        (
            "[auth]\ntoken_file = \"/nonexistent/token\"",
            "/nonexistent/token",
        ),
        (
            "[persistence]\nmode = \"aof\"\n[store]\nmax_value_bytes = \"200MiB\"\nmax_memory = \"4GiB\"\n[server]\nmax_body = \"300MiB\"",
            "store.max_value_bytes",
        ),
        (
            "[persistence]\nmode = \"aof\"\n[store]\npartitions = 300\n",
            "store.partitions",
        ),
        (
            "[persistence]\nrewrite_percentage = 5",
            "persistence.rewrite_percentage",
        ),
        (
            "[persistence]\nretry_interval = \"1ms\"",
            "persistence.retry_interval",
        ),
        ("[persistence]\nmode = \"rdb\"", "mode"),
        ("[tls]\ncert = \"cert.pem\"", "tls.cert"),
        ("[tls]\nkey = \"key.pem\"", "tls.key"),
        ("[tls]\nclient_ca = \"ca.pem\"", "tls.client_ca"),
        (
            "[replication]\nprimary = \"ftp://h:1\"",
            "replication.primary",
        ),
        (
            "[replication]\nprimary = \"https://h\"",
            "replication.primary",
        ),
        (
            "[replication]\nprimary_ca_file = \"/nonexistent/ca.pem\"",
            "replication.primary_ca_file",
        ),
        (
            "[replication]\nprimary_cert_file = \"c.pem\"",
            "replication.primary_cert_file",
        ),
        (
            "[replication]\nprimary_cert_file = \"c.pem\"\nprimary_key_file = \"k.pem\"",
            "replication.primary_ca_file",
        ),
    ];
    for (text, key) in cases {
        let error = match Config::parse(text) {
            Ok(config) => config.validate().unwrap_err().to_string(),
            Err(error) => error.to_string(),
        };
        assert!(error.contains(key), "{text}: {error}");
    }
}

#[test]
fn the_token_never_appears_in_debug_output() {
    let auth = AuthConfig {
        token: "hunter2-secret".into(),
        token_file: String::new(),
        env_token: Some("env-secret".into()),
    };
    let shown = format!(
        "{:?}",
        Config {
            auth,
            ..Config::default()
        }
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("env-secret"), "{shown}");
    assert!(shown.contains("<redacted>"));
}

#[test]
fn overrides_win() {
    let mut config = Config::default();
    config.apply(&Overrides {
        bind: Some("0.0.0.0".into()),
        port: Some(9),
        capacity: Some(5),
    });
    assert_eq!(
        (config.server.bind.as_str(), config.server.port),
        ("0.0.0.0", 9)
    );
    assert_eq!(config.store.capacity, 5);
}

#[test]
fn auto_partitions_never_smaller_than_1024_entries() {
    let with_capacity = |capacity| StoreConfig {
        capacity,
        ..StoreConfig::default()
    };
    assert_eq!(with_capacity(100).resolved_partitions(), 1);
    assert_eq!(with_capacity(2047).resolved_partitions(), 1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(with_capacity(1 << 30).resolved_partitions(), cores);
    let fixed = StoreConfig {
        partitions: 3,
        ..with_capacity(100)
    };
    assert_eq!(fixed.resolved_partitions(), 3);
}

#[test]
fn token_precedence_environment_then_file_then_key() {
    let file = std::env::temp_dir().join(format!("rustkv-token-{}", std::process::id()));
    std::fs::write(&file, "from-file\n").unwrap();
    let auth = |token: &str, token_file: &str, env_token: Option<&str>| AuthConfig {
        token: token.into(),
        token_file: token_file.into(),
        env_token: env_token.map(String::from),
    };
    let path = file.to_str().unwrap();
    let resolve = |auth: AuthConfig| auth.resolve().map_err(|error| error.to_string());
    let token = |text: &str| Ok(Some(text.to_owned()));
    assert_eq!(resolve(auth("key", path, Some(" env "))), token("env"));
    assert_eq!(resolve(auth("key", path, None)), token("from-file"));
    assert_eq!(resolve(auth("key", "", None)), token("key"));
    assert_eq!(resolve(auth("", "", None)), Ok(None));
    let empty = resolve(auth("key", path, Some("  "))).unwrap_err();
    assert!(empty.contains(TOKEN_ENV), "{empty}");
    std::fs::remove_file(&file).unwrap();
}

/// Only `Config::load` reads `RUSTKV_TOKEN`; a parsed config (the tests' harness)
/// never has it, whatever the environment holds.
#[test]
fn parsed_configs_never_carry_the_environment_token() {
    let config = Config::parse("[auth]\ntoken = \"key\"\n").unwrap();
    assert_eq!(config.auth.env_token, None);
    assert_eq!(config.auth.resolve().unwrap().as_deref(), Some("key"));
    assert_eq!(Config::parse("").unwrap().auth.resolve().unwrap(), None);
}

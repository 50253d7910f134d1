//! # RustKV
//!
//! An in-memory key-value cache served over a REST API.
//!
//! ## The request path
//! 1. `server` runs actix-web; `http::configure` routes a request to a handler.
//! 2. The handler validates it (`http::error::ApiError` for anything wrong).
//! 3. A read goes to `Store::get`: the key's partition's lock-free skiplist, no message.
//! 4. A write goes to `Store::put`/`delete`: a message to the partition's actor, awaited.
//! 5. The actor (`store::partition`) updates the skiplist, LRU list and timer wheel;
//!    when the partition is full, `store.eviction` picks the victim (LRU, or
//!    W-TinyLFU, for which readers also report misses in step 3).
//!
//! A batch (`POST /v1/batch`) sends each partition its ops in one message (gets it
//! does not write first read as in step 3); a transaction (`POST /v1/txn`) takes
//! its partitions' actors in order, applies its branch as intents readers skip,
//! and commits with one flag (`store::group`); a scan (`GET /v1/kv`) merges the
//! partitions' skiplists in key order without any message (`store::scan`).
//!
//! Under 1, `net` frames each HTTP/1 request on the TCP stream before actix-http
//! parses it (timeouts, smuggling, pipelining after a close, shutdown). With
//! `[tls]`, `net` does the TLS handshake first, with the configuration `tls`
//! builds from the certificate files (and rebuilds on SIGHUP), and frames HTTP/1
//! above TLS; HTTP/2, chosen by ALPN (or, on a plain port, by a client opening
//! with HTTP/2's preface: h2c), goes to actix-http's h2 dispatcher.
//!
//! `config` loads and validates the TOML configuration before any of this starts.
//! With persistence on, each partition's actor also hands its changes to its
//! journal; `persist` writes them to disk on its own threads, and step 4 answers
//! only once the write's record is safe. At start-up `persist` replays the files.
//!
//! `replication` also hears every change (`store::Tap`, once a replica has
//! connected), numbers it node-wide and keeps it in a bounded backlog that
//! replicas stream from; on a replica its follower thread applies the primary's
//! records through the partitions' actors, and step 4 answers 409.

#![forbid(unsafe_code)]

pub mod config;
pub mod http;
pub mod net;
pub mod persist;
pub mod replication;
pub mod server;
pub mod store;
pub mod tls;

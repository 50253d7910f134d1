//! Linearizability of the native API (issue 12): histories of concurrent GET, PUT,
//! PUT with `If-Match` and DELETE on a few keys, recorded against the real server and
//! checked per key against a register model.
//!
//! # Layout
//! - `history`: operations, their answers and times; JSON for fixtures.
//! - `model`: one key as a register `Option<(value, version)>`, and `step`.
//! - `checker`: the Wing–Gong/Lowe search with memoization (as porcupine does).
//! - `cases`, `simulate`: the checker on hand-made and simulated histories with known
//!   verdicts.

mod cases;
mod checker;
mod history;
mod model;
mod simulate;

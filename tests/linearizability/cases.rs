//! The checker on hand-made histories whose verdicts are known: two tables, one
//! linearizable and one not (times in µs, one key `k`). Large ones are in `simulate`.

use crate::{
    checker::check,
    history::{Input, Op, Output},
};

fn at(call: u64, ret: u64, input: Input, output: Output) -> Op {
    Op {
        client: 0,
        key: "k".to_owned(),
        call,
        ret: Some(ret),
        input,
        output,
    }
}

/// An operation that got no answer.
fn lost(call: u64, input: Input) -> Op {
    Op {
        ret: None,
        output: Output::Unknown,
        ..at(call, 0, input, Output::Unknown)
    }
}

fn put(value: &str) -> Input {
    Input::Put {
        value: value.to_owned(),
    }
}

fn cas(expected: u64, value: &str) -> Input {
    Input::PutIfMatch {
        expected,
        value: value.to_owned(),
    }
}

const GET: Input = Input::Get;
const DELETE: Input = Input::Delete;
const MISSING: Output = Output::Missing;

fn created(version: u64) -> Output {
    Output::Written {
        version,
        created: true,
    }
}

fn replaced(version: u64) -> Output {
    Output::Written {
        version,
        created: false,
    }
}

fn found(read: &str, version: u64) -> Output {
    Output::Found {
        read: read.to_owned(),
        version,
    }
}

fn refused(current: Option<u64>) -> Output {
    Output::PreconditionFailed { current }
}

fn deleted(existed: bool) -> Output {
    Output::Deleted { existed }
}

/// `put a` as v1 at [0, 10]: the start of most cases.
fn put_a() -> Op {
    at(0, 10, put("a"), created(1))
}

fn linearizable_cases() -> Vec<(&'static str, Vec<Op>)> {
    vec![
        ("empty history", vec![]),
        ("a GET of a key never written", vec![at(0, 5, GET, MISSING)]),
        (
            "sequential put, get, replace, get, delete, get",
            vec![
                put_a(),
                at(20, 30, GET, found("a", 1)),
                at(40, 50, put("b"), replaced(2)),
                at(60, 70, GET, found("b", 2)),
                at(80, 90, DELETE, deleted(true)),
                at(100, 110, GET, MISSING),
                at(120, 130, DELETE, deleted(false)),
                at(140, 150, put("c"), created(3)),
            ],
        ),
        (
            "versions jump (other keys share the counter)",
            vec![
                at(0, 10, put("a"), created(4)),
                at(20, 30, put("b"), replaced(9)),
                at(40, 50, GET, found("b", 9)),
            ],
        ),
        (
            "overlapping writes, reads see either in version order",
            vec![
                at(0, 100, put("a"), created(1)),
                at(10, 110, put("b"), replaced(2)),
                at(20, 30, GET, MISSING),
                at(40, 50, GET, found("a", 1)),
                at(60, 70, GET, found("b", 2)),
            ],
        ),
        (
            "a read overlapping a write sees the old value",
            vec![
                put_a(),
                at(20, 60, put("b"), replaced(2)),
                at(30, 40, GET, found("a", 1)),
                at(70, 80, GET, found("b", 2)),
            ],
        ),
        (
            "compare-and-set on the current version",
            vec![
                put_a(),
                at(20, 30, cas(1, "b"), replaced(2)),
                at(40, 50, cas(1, "c"), refused(Some(2))),
                at(60, 70, GET, found("b", 2)),
            ],
        ),
        (
            "concurrent compare-and-sets: one wins, one is told the new version",
            vec![
                put_a(),
                at(20, 60, cas(1, "b"), replaced(2)),
                at(30, 50, cas(1, "c"), refused(Some(2))),
            ],
        ),
        (
            "compare-and-set on an absent key",
            vec![at(0, 10, cas(7, "a"), refused(None))],
        ),
        (
            "a read misses a key being deleted",
            vec![
                put_a(),
                at(20, 60, DELETE, deleted(true)),
                at(30, 40, GET, MISSING),
            ],
        ),
        (
            "a read sees a write that overlaps it and returns later",
            vec![
                put_a(),
                at(20, 80, put("b"), replaced(2)),
                at(30, 40, GET, found("b", 2)),
                at(50, 60, GET, found("b", 2)),
            ],
        ),
        (
            "a timed-out PUT that took effect",
            vec![
                put_a(),
                lost(20, put("b")),
                at(40, 50, GET, found("b", 2)),
                at(60, 70, put("c"), replaced(3)),
            ],
        ),
        (
            "a timed-out PUT that took effect late",
            vec![
                put_a(),
                lost(20, put("b")),
                at(40, 50, GET, found("a", 1)),
                at(60, 70, GET, found("b", 5)),
            ],
        ),
        (
            "a timed-out PUT that never took effect",
            vec![put_a(), lost(20, put("b")), at(40, 50, GET, found("a", 1))],
        ),
        (
            "a timed-out DELETE that took effect",
            vec![
                put_a(),
                lost(20, DELETE),
                at(40, 50, GET, MISSING),
                at(60, 70, put("c"), created(2)),
            ],
        ),
        (
            "a timed-out compare-and-set that matched",
            vec![
                put_a(),
                lost(20, cas(1, "b")),
                at(40, 50, cas(1, "c"), refused(Some(6))),
                at(60, 70, GET, found("b", 6)),
            ],
        ),
        (
            "a CAS on the unknown version of a timed-out PUT",
            vec![
                put_a(),
                lost(20, put("b")),
                at(40, 50, cas(3, "c"), replaced(4)),
                at(60, 70, GET, found("c", 4)),
            ],
        ),
    ]
}

fn non_linearizable_cases() -> Vec<(&'static str, Vec<Op>)> {
    vec![
        (
            "a stale read after a write returned",
            vec![
                put_a(),
                at(20, 30, put("b"), replaced(2)),
                at(40, 50, GET, found("a", 1)),
            ],
        ),
        (
            "reads disagree with the version order",
            vec![
                at(0, 100, put("a"), created(1)),
                at(10, 110, put("b"), replaced(2)),
                at(20, 30, GET, found("b", 2)),
                at(40, 50, GET, found("a", 1)),
            ],
        ),
        (
            "a read of a value never written",
            vec![put_a(), at(20, 30, GET, found("z", 1))],
        ),
        (
            "a read with the wrong version",
            vec![put_a(), at(20, 30, GET, found("a", 2))],
        ),
        (
            "a read of a key never written",
            vec![at(0, 10, GET, found("a", 1))],
        ),
        (
            "a CAS succeeded on a version already replaced",
            vec![
                put_a(),
                at(20, 30, put("b"), replaced(2)),
                at(40, 50, cas(1, "c"), replaced(3)),
            ],
        ),
        (
            "a CAS overlapping a write, succeeding on the version it replaced after it",
            vec![
                put_a(),
                at(20, 60, put("b"), replaced(2)),
                at(30, 70, cas(1, "c"), replaced(3)),
            ],
        ),
        (
            "a lost update: two CAS on one version both succeed",
            vec![
                put_a(),
                at(20, 60, cas(1, "b"), replaced(2)),
                at(30, 70, cas(1, "c"), replaced(3)),
            ],
        ),
        (
            "a lost update: a read after both writes sees the first",
            vec![
                put_a(),
                at(20, 60, put("b"), replaced(2)),
                at(30, 70, put("c"), replaced(3)),
                at(80, 90, GET, found("b", 2)),
            ],
        ),
        (
            "a 412 naming a version the key does not have",
            vec![put_a(), at(20, 30, cas(5, "b"), refused(Some(2)))],
        ),
        (
            "a 412 saying absent when the key exists",
            vec![put_a(), at(20, 30, cas(5, "b"), refused(None))],
        ),
        (
            "a 412 naming the very version it was given",
            vec![put_a(), at(20, 30, cas(1, "b"), refused(Some(1)))],
        ),
        (
            "a read misses a key that was only ever replaced (the overwrite race)",
            vec![
                put_a(),
                at(20, 60, put("b"), replaced(2)),
                at(30, 40, GET, MISSING),
            ],
        ),
        (
            "a PUT says created on an existing key",
            vec![put_a(), at(20, 30, put("b"), created(2))],
        ),
        (
            "a PUT says replaced on an absent key",
            vec![at(0, 10, put("a"), replaced(1))],
        ),
        (
            "versions go down",
            vec![
                at(0, 10, put("a"), created(5)),
                at(20, 30, put("b"), replaced(3)),
            ],
        ),
        (
            "a DELETE finds a key never written",
            vec![at(0, 10, DELETE, deleted(true))],
        ),
        (
            "a DELETE misses a key just written",
            vec![put_a(), at(20, 30, DELETE, deleted(false))],
        ),
        (
            "a timed-out PUT seen, then unseen",
            vec![
                put_a(),
                lost(20, put("b")),
                at(40, 50, GET, found("b", 2)),
                at(60, 70, GET, found("a", 1)),
            ],
        ),
        (
            "a timed-out PUT seen with an old version",
            vec![
                at(0, 10, put("a"), created(4)),
                lost(20, put("b")),
                at(40, 50, GET, found("b", 3)),
            ],
        ),
        (
            "a timed-out DELETE taken back",
            vec![
                put_a(),
                lost(20, DELETE),
                at(40, 50, GET, MISSING),
                at(60, 70, GET, found("a", 1)),
            ],
        ),
        (
            "a timed-out GET does not excuse a stale read",
            vec![
                put_a(),
                lost(15, GET),
                at(20, 30, put("b"), replaced(2)),
                at(40, 50, GET, found("a", 1)),
            ],
        ),
    ]
}

#[test]
fn known_linearizable_histories_pass() {
    for (name, ops) in linearizable_cases() {
        if let Err(violation) = check(&ops) {
            panic!("{name}: expected linearizable, got\n{violation}");
        }
    }
}

#[test]
fn known_non_linearizable_histories_fail() {
    for (name, ops) in non_linearizable_cases() {
        assert!(check(&ops).is_err(), "{name}: expected not linearizable");
    }
}

#[test]
fn a_violation_names_the_read_that_cannot_be_placed() {
    let ops = vec![
        put_a(),
        at(20, 60, put("b"), replaced(2)),
        at(30, 40, GET, MISSING),
    ];
    let violation = check(&ops).expect_err("not linearizable");
    assert_eq!(violation.ops[violation.stuck], ops[2]);
    let (overlapping, before) = violation.around();
    assert_eq!(overlapping, vec![&ops[1]], "{violation}");
    assert_eq!(before, vec![&ops[0]], "{violation}");
}

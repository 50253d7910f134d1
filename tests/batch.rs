//! `POST /v1/batch`: per-op results in order, same-key ordering, all-or-nothing
//! validation with the op's index, limits, and per-op outcomes.

mod common;

use common::TestServer;
use serde_json::{Value, json};

fn batch(server: &TestServer, body: &Value) -> common::Reply {
    let bytes = serde_json::to_vec(body).unwrap();
    let json = [("Content-Type", "application/json")];
    server.request("POST", "/v1/batch", &json, Some(&bytes))
}

fn results(server: &TestServer, ops: Value) -> Vec<Value> {
    let reply = batch(server, &json!({ "ops": ops }));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["results"].as_array().unwrap().clone()
}

#[test]
fn each_op_has_its_result_in_order() {
    let server = TestServer::start("[store]\npartitions = 4\ncapacity = 10000\n");
    let got = results(
        &server,
        json!([
            {"op": "get", "key": "a"},
            {"op": "put", "key": "a", "value": {"x": [1, 2]}},
            {"op": "get", "key": "a"},
            {"op": "put", "key": "a", "value": null, "ttl": 30},
            {"op": "get", "key": "a"},
            {"op": "put", "key": "b", "value": 1, "if_none_match": "*"},
            {"op": "put", "key": "b", "value": 2, "if_none_match": "*"},
            {"op": "delete", "key": "b", "if_match": "\"999\""},
            {"op": "delete", "key": "b"},
            {"op": "delete", "key": "b"},
            {"op": "get", "key": "b"},
        ]),
    );
    let statuses: Vec<u64> = got.iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(
        statuses,
        [404, 201, 200, 200, 200, 201, 412, 412, 204, 404, 404]
    );
    // A get after a put of the same key sees the put, a get before it does not.
    assert_eq!(got[2]["value"], json!({"x": [1, 2]}));
    assert_eq!(got[2]["version"], got[1]["version"]);
    assert_eq!(got[4]["value"], Value::Null);
    assert!(
        got[4].as_object().unwrap().contains_key("value"),
        "null is a value"
    );
    assert_eq!(got[4]["version"], got[3]["version"]);
    assert_eq!(got[0]["error"], "key_not_found");
    assert_eq!(got[6]["error"], "precondition_failed");
    // The batch's writes are the store's: the native routes see them.
    let reply = server.get("/v1/kv/a");
    assert_eq!((reply.status, reply.body.as_str()), (200, "null"));
    assert_eq!(reply.header("X-Expires-In"), Some("30"));
    assert_eq!(server.get("/v1/kv/b").status, 404);
}

#[test]
fn one_bad_op_fails_the_whole_batch_and_names_its_index() {
    let server = TestServer::start(
        "[store]\npartitions = 4\ncapacity = 10000\nmax_key_bytes = 8\nmax_value_bytes = 16\nmax_batch_ops = 5\n",
    );
    let put = |key: &str| json!({"op": "put", "key": key, "value": 1});
    let cases = [
        (
            json!([put("a"), put("b"), {"op": "put", "key": "c"}]),
            400,
            "ops[2]",
        ),
        (
            json!([put("a"), {"op": "get", "key": "b", "value": 1}]),
            400,
            "ops[1]",
        ),
        (json!([put("a"), {"op": "frob", "key": "b"}]), 400, "ops[1]"),
        (json!([{"op": "get", "key": ""}, put("a")]), 400, "ops[0]"),
        (json!([put("a"), put("123456789")]), 413, "ops[1]"),
        (
            json!([put("a"), {"op": "put", "key": "v", "value": "12345678901234567"}]),
            413,
            "ops[1]",
        ),
        (
            json!([put("a"), {"op": "put", "key": "t", "value": 1, "ttl": -1}]),
            400,
            "ops[1]",
        ),
        (
            json!([put("a"), {"op": "put", "key": "t", "value": 1, "if_match": "3"}]),
            400,
            "ops[1]",
        ),
        (
            json!([put("a"), {"op": "delete", "key": "t", "if_none_match": "\"3\""}]),
            400,
            "ops[1]",
        ),
        (
            json!([put("a"), {"op": "get", "key": "t", "extra": true}]),
            400,
            "ops[1]",
        ),
        (
            json!([put("a"), put("b"), put("c"), put("d"), put("e"), put("f")]),
            413,
            "6 ops",
        ),
    ];
    for (ops, status, named) in cases {
        let reply = batch(&server, &json!({ "ops": ops }));
        assert_eq!(reply.status, status, "{ops}: {}", reply.body);
        let detail = reply.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(named), "{ops}: {detail}");
        // Nothing was applied, not even the valid ops before the bad one.
        assert_eq!(server.get("/v1/kv/a").status, 404, "{ops} applied a put");
    }
    for body in [
        json!({}),
        json!({"ops": {}}),
        json!({"ops": [], "x": 1}),
        json!([1]),
    ] {
        assert_eq!(batch(&server, &body).status, 400, "{body}");
    }
    let text = [("Content-Type", "text/plain")];
    assert_eq!(
        server
            .request("POST", "/v1/batch", &text, Some(b"{}"))
            .status,
        415
    );
    assert_eq!(server.request("GET", "/v1/batch", &[], None).status, 405);
    // An empty batch is valid and does nothing.
    assert_eq!(results(&server, json!([])), Vec::<Value>::new());
}

/// A batch sends each partition it writes one message, however many ops it has
/// there; gets of keys it does not write are read without any message.
#[test]
fn one_message_per_partition_touched() {
    let server = TestServer::start("[store]\npartitions = 8\ncapacity = 10000\n");
    let messages = |server: &TestServer| server.stats()["group_messages"].as_u64().unwrap();
    let puts: Vec<Value> = (0..200)
        .map(|i| json!({"op": "put", "key": format!("k{i}"), "value": i}))
        .collect();
    results(&server, Value::Array(puts));
    assert_eq!(messages(&server), 8, "200 puts over 8 partitions");
    let gets: Vec<Value> = (0..200)
        .map(|i| json!({"op": "get", "key": format!("k{i}")}))
        .collect();
    let got = results(&server, Value::Array(gets));
    assert!(got.iter().all(|r| r["status"] == 200));
    assert_eq!(messages(&server), 8, "gets read lock-free");
    let stats = server.stats();
    assert_eq!(stats["hits"], 200, "batch gets count as hits");
    let per_partition: Vec<u64> = stats["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["group_messages"].as_u64().unwrap())
        .collect();
    assert_eq!(per_partition, [1; 8]);
}

/// Ops on keys of many partitions, with repeats of the same key: every op's
/// result is the one a sequential run in the given order would give.
#[test]
fn same_key_ops_take_effect_in_order_across_partitions() {
    let server =
        TestServer::start("[store]\npartitions = 8\ncapacity = 10000\n[server]\nworkers = 2\n");
    let mut ops = Vec::new();
    let mut expected = Vec::new();
    let mut model = std::collections::HashMap::new();
    for round in 0..6 {
        for key in 0..20 {
            let key = format!("k{key}");
            match (round + key.len()) % 3 {
                0 => {
                    ops.push(json!({"op": "put", "key": key, "value": round}));
                    expected.push(if model.insert(key, round).is_some() {
                        200
                    } else {
                        201
                    });
                }
                1 => {
                    ops.push(json!({"op": "get", "key": key}));
                    expected.push(if model.contains_key(&key) { 200 } else { 404 });
                }
                _ => {
                    ops.push(json!({"op": "delete", "key": key}));
                    expected.push(if model.remove(&key).is_some() {
                        204
                    } else {
                        404
                    });
                }
            }
        }
    }
    let got = results(&server, Value::Array(ops.clone()));
    let statuses: Vec<u64> = got.iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, expected);
    for (key, value) in model {
        assert_eq!(server.get(&format!("/v1/kv/{key}")).json(), json!(value));
    }
}

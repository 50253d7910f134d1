//! The API contract, checked on every response the harness sees: each one must be
//! what the server's own OpenAPI document (`rustkv::http::openapi::ApiDoc`, the
//! document `/openapi.json` serves) says that route answers.
//!
//! For a documented method and path: the status must be listed for it; a listed
//! body must come with its media type and validate against its JSON Schema (with
//! `$ref`s resolved); a response listed without a body must have none; documented
//! headers that are present must match their schemas. A request the document does
//! not describe must get its JSON 404 (unknown path) or 405 (wrong method, with an
//! `Allow` header listing the methods the document gives the path).
//! `/docs` and `/openapi.json` are the documentation itself and are not described.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::Reply;

/// One documented method on one path template.
struct Operation {
    method: String,
    template: String,
    responses: Map<String, Value>,
}

struct Contract {
    operations: Vec<Operation>,
    components: Value,
}

fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let document = serde_json::to_value(rustkv::http::openapi::ApiDoc::openapi())
            .expect("the document serializes");
        let mut operations = Vec::new();
        for (template, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                let responses = operation["responses"].as_object().expect("responses");
                operations.push(Operation {
                    method: method.to_uppercase(),
                    template: template.clone(),
                    responses: responses.clone(),
                });
            }
        }
        // Most literal first, so /kv/insert and /kv/delete/{key} win over /kv/{key}.
        operations.sort_by_key(|operation| std::cmp::Reverse(literal_len(&operation.template)));
        Contract {
            operations,
            components: document["components"].clone(),
        }
    })
}

fn literal_len(template: &str) -> usize {
    template.find('{').unwrap_or(template.len() + 1)
}

/// Whether a raw request path (no query) falls under a template. `{key}` takes the
/// whole rest, `/` included; it may be empty because the server answers an empty
/// key on a key route with that route's own 4xx, which the document lists.
fn matches(template: &str, path: &str) -> bool {
    match template.split_once('{') {
        Some((prefix, _)) => path.starts_with(prefix),
        None => template == path,
    }
}

/// Panics, naming the request, if `reply` breaks the contract.
pub fn check(method: &str, target: &str, reply: &Reply) {
    if let Err(problem) = violation(method, target, reply) {
        panic!(
            "{method} {target} broke the API contract: {problem}\n  got {} {:?} {:?}",
            reply.status, reply.headers, reply.body
        );
    }
}

/// What is wrong with `reply` to `method target`, if anything.
pub fn violation(method: &str, target: &str, reply: &Reply) -> Result<(), String> {
    let path = target.split('?').next().unwrap_or(target);
    if path == "/openapi.json" || path == "/docs" || path.starts_with("/docs/") {
        return Ok(());
    }
    let contract = contract();
    let on_path: Vec<&Operation> = contract
        .operations
        .iter()
        .filter(|operation| matches(&operation.template, path))
        .collect();
    let Some(operation) = on_path.iter().find(|operation| operation.method == method) else {
        if on_path.is_empty() {
            return undescribed(method, path, 404, reply);
        }
        let mut allowed: Vec<&str> = on_path.iter().map(|op| op.method.as_str()).collect();
        undescribed(method, path, 405, reply)?;
        return check_allow(&mut allowed, reply);
    };
    let Some(response) = operation.responses.get(&reply.status.to_string()) else {
        return Err(format!(
            "status {} is not listed for {method} {}",
            reply.status, operation.template
        ));
    };
    check_headers(response, reply)?;
    let content = response.get("content").and_then(Value::as_object);
    match content {
        _ if method == "HEAD" => expect_empty(reply),
        None => expect_empty(reply),
        Some(content) => check_body(content, &contract.components, reply),
    }
}

/// A method or path the document does not describe: a JSON 404 or 405 in the
/// error shape of the path's family.
fn undescribed(method: &str, path: &str, expected: u16, reply: &Reply) -> Result<(), String> {
    if reply.status != expected {
        return Err(format!("undescribed, so {expected} was due"));
    }
    if method == "HEAD" {
        return expect_empty(reply);
    }
    let schema = if path.starts_with("/kv/") {
        "Detail"
    } else {
        "NativeError"
    };
    let content =
        json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}});
    check_body(
        content.as_object().expect("object"),
        &contract().components,
        reply,
    )
}

/// A 405 must say in `Allow` which methods the path takes: all the document lists
/// for every template the path falls under.
fn check_allow(allowed: &mut Vec<&str>, reply: &Reply) -> Result<(), String> {
    allowed.sort_unstable();
    allowed.dedup();
    let header = reply
        .header("allow")
        .ok_or("a 405 without an Allow header")?;
    let mut listed: Vec<&str> = header.split(',').map(str::trim).collect();
    listed.sort_unstable();
    if listed == *allowed {
        Ok(())
    } else {
        Err(format!(
            "Allow: {header}, but the document lists {allowed:?}"
        ))
    }
}

fn expect_empty(reply: &Reply) -> Result<(), String> {
    if reply.body.is_empty() {
        Ok(())
    } else {
        Err("a body where the document lists none".into())
    }
}

fn check_body(
    content: &Map<String, Value>,
    components: &Value,
    reply: &Reply,
) -> Result<(), String> {
    let media = reply
        .header("content-type")
        .ok_or("no Content-Type on a response with a body")?;
    let essence = media.split(';').next().unwrap_or_default().trim();
    let Some(described) = content.get(essence) else {
        return Err(format!("media type {essence:?} is not listed"));
    };
    if essence != "application/json" {
        return Ok(()); // text (the metrics exposition) has its own parser test
    }
    let schema = resolve(&described["schema"], components);
    // Where the schema takes any value, a syntax check with the server's own
    // non-recursive parser is the whole check. A `Value` would refuse valid JSON text
    // the server stores as sent: nesting deeper than its 128 levels, and escaped lone
    // surrogates (`"\ud800"`), which no Rust `String` can hold.
    if takes_anything(&schema) {
        return serde_json::from_str::<serde::de::IgnoredAny>(&reply.body)
            .map(drop)
            .map_err(|error| format!("the body is not JSON: {error}"));
    }
    match serde_json::from_str::<Value>(&reply.body) {
        Ok(body) => validate(&schema, &body),
        Err(error) => Err(format!("the body is not JSON: {error}")),
    }
}

/// A schema with no constraint: `{}`, maybe with a description.
fn takes_anything(schema: &Value) -> bool {
    schema
        .as_object()
        .is_some_and(|object| object.keys().all(|key| key == "description"))
}

fn check_headers(response: &Value, reply: &Reply) -> Result<(), String> {
    let Some(headers) = response.get("headers").and_then(Value::as_object) else {
        return Ok(());
    };
    for (name, header) in headers {
        let Some(value) = reply.header(name) else {
            continue;
        };
        let schema = &header["schema"];
        let instance = match schema["type"].as_str() {
            Some("integer") => serde_json::from_str::<Value>(value)
                .map_err(|_| format!("header {name}: {value:?} is not an integer"))?,
            _ => Value::String(value.to_owned()),
        };
        validate(schema, &instance).map_err(|error| format!("header {name}: {error}"))?;
    }
    Ok(())
}

fn validate(schema: &Value, instance: &Value) -> Result<(), String> {
    let validator = jsonschema::validator_for(schema)
        .map_err(|error| format!("the document's schema {schema} does not compile: {error}"))?;
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{instance} does not match {schema}: {}",
            errors.join("; ")
        ))
    }
}

/// The schema with every `#/components/schemas/...` reference replaced by its
/// target, so it validates on its own.
fn resolve(schema: &Value, components: &Value) -> Value {
    match schema {
        Value::Object(object) => {
            if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
                let name = reference
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("unexpected $ref {reference}"));
                return resolve(&components["schemas"][name], components);
            }
            Value::Object(
                object
                    .iter()
                    .map(|(key, value)| (key.clone(), resolve(value, components)))
                    .collect(),
            )
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| resolve(item, components)).collect())
        }
        other => other.clone(),
    }
}

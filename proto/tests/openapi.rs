//! `store/openapi.yaml` against the crate, both ways: every operation and every schema of the
//! document has its type here (and no type names an operation or schema the document lacks),
//! member names agree, and every example in the document reads as its type.

use std::collections::BTreeSet;

use edge_mfa_proto::{Named, OPERATIONS, SCHEMAS};
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../store/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("store/openapi.yaml");
    serde_yaml_ng::from_str(&text).expect("openapi.yaml is YAML")
}

/// Follows `$ref: "#/components/..."` (one level is all the document uses per hop).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("local $ref");
            resolve(doc, doc.pointer(pointer).unwrap_or_else(|| panic!("dangling $ref {r}")))
        }
        None => v,
    }
}

/// The component schema a `$ref` names, if the schema is one.
fn schema_name(v: &Value) -> Option<&str> {
    v.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/"))
}

/// Member names of a schema (through `$ref` and `allOf`).
fn properties(doc: &Value, schema: &Value) -> BTreeSet<String> {
    let s = resolve(doc, schema);
    let mut out: BTreeSet<String> =
        s.get("properties").and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default();
    for part in s.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        out.extend(properties(doc, part));
    }
    out
}

/// `example` and every `examples.*.value` of a media type object.
fn examples(media: &Value) -> Vec<&Value> {
    let mut out: Vec<&Value> = media.get("example").into_iter().collect();
    if let Some(m) = media.get("examples").and_then(Value::as_object) {
        out.extend(m.values().filter_map(|e| e.get("value")));
    }
    out
}

/// Checks one body (request or success reply) of an operation against its type.
fn check_body(doc: &Value, what: &str, media: Option<&Value>, ty: Option<Named>, problems: &mut Vec<String>) {
    match (media, ty) {
        (None, None) => {}
        (Some(_), None) => problems.push(format!("{what}: the document has a body, the crate none")),
        (None, Some(t)) => problems.push(format!("{what}: the crate has {}, the document no body", t.name)),
        (Some(media), Some(t)) => {
            let schema = media.get("schema").unwrap_or(&Value::Null);
            if let Some(name) = schema_name(schema) {
                if name != t.name {
                    problems.push(format!("{what}: the document says {name}, the crate {}", t.name));
                }
            }
            let documented = properties(doc, schema);
            let typed: BTreeSet<String> = (t.fields)().iter().map(|s| s.to_string()).collect();
            if documented != typed {
                problems.push(format!(
                    "{what} ({}): members only in the document {:?}, only in the crate {:?}",
                    t.name,
                    documented.difference(&typed).collect::<Vec<_>>(),
                    typed.difference(&documented).collect::<Vec<_>>()
                ));
            }
            for e in examples(media) {
                if let Err(err) = (t.check)(e) {
                    problems.push(format!("{what}: an example does not read as {}: {err}", t.name));
                }
            }
        }
    }
}

#[test]
fn every_operation_has_its_types_and_back() {
    let doc = document();
    let paths = doc["paths"].as_object().expect("paths");
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS.iter().filter(|m| item.get(**m).is_some()).map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let typed: BTreeSet<(String, String)> =
        OPERATIONS.iter().map(|o| (o.method.to_string(), o.path.to_string())).collect();
    assert_eq!(typed.len(), OPERATIONS.len(), "an operation is listed twice in OPERATIONS");
    let only_doc: Vec<_> = documented.difference(&typed).collect();
    let only_crate: Vec<_> = typed.difference(&documented).collect();
    assert!(
        only_doc.is_empty() && only_crate.is_empty(),
        "operations only in openapi.yaml: {only_doc:?}; only in edge_mfa_proto::OPERATIONS: {only_crate:?}"
    );

    let mut problems = Vec::new();
    for op in OPERATIONS {
        let item = &paths[op.path][op.method.to_lowercase()];
        let what = format!("{} {}", op.method, op.path);
        let request = item.get("requestBody").map(|b| &resolve(&doc, b)["content"]["application/json"]);
        check_body(&doc, &format!("{what} request"), request, op.request, &mut problems);
        let responses = item["responses"].as_object().expect("responses");
        let success = responses
            .iter()
            .find(|(code, _)| code.starts_with('2'))
            .map(|(_, r)| resolve(&doc, r))
            .unwrap_or_else(|| panic!("{what}: no 2xx response"));
        let reply = success.get("content").map(|c| &c["application/json"]);
        check_body(&doc, &format!("{what} reply"), reply, op.reply, &mut problems);
    }
    assert!(problems.is_empty(), "openapi.yaml and edge_mfa_proto disagree:\n{}", problems.join("\n"));
}

#[test]
fn every_schema_has_its_type_and_back() {
    let doc = document();
    let schemas = doc["components"]["schemas"].as_object().expect("components/schemas");
    let documented: BTreeSet<&str> = schemas.keys().map(String::as_str).collect();
    let typed: BTreeSet<&str> = SCHEMAS.iter().map(|s| s.name).collect();
    let only_doc: Vec<_> = documented.difference(&typed).collect();
    let only_crate: Vec<_> = typed.difference(&documented).collect();
    assert!(
        only_doc.is_empty() && only_crate.is_empty(),
        "schemas only in openapi.yaml: {only_doc:?}; only in edge_mfa_proto::SCHEMAS: {only_crate:?}"
    );
    let mut problems = Vec::new();
    for s in SCHEMAS {
        let documented = properties(&doc, &schemas[s.name]);
        let typed: BTreeSet<String> = (s.fields)().iter().map(|f| f.to_string()).collect();
        if documented != typed {
            problems.push(format!(
                "{}: members only in the document {:?}, only in the crate {:?}",
                s.name,
                documented.difference(&typed).collect::<Vec<_>>(),
                typed.difference(&documented).collect::<Vec<_>>()
            ));
        }
    }
    assert!(problems.is_empty(), "openapi.yaml and edge_mfa_proto disagree:\n{}", problems.join("\n"));
}

#[test]
fn member_names_are_read_from_the_types() {
    let f = SCHEMAS.iter().find(|s| s.name == "Factor").expect("Factor");
    assert!((f.fields)().contains(&"type"), "renames apply");
}

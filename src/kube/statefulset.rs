//! The three fields peerconf takes from a StatefulSet, and the message of a `Status` error
//! object. Typed deserialization that skips every other field, so memory stays near the body's
//! size however large the object is.

use serde::Deserialize;

use crate::sourced::{MAX_REPLICAS, MAX_START_ORDINAL};

/// What `--replicas auto` takes from the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// `spec.replicas` (the API server defaults it to 1).
    pub replicas: i64,
    /// `spec.ordinals.start`, 0 when absent.
    pub start_ordinal: i64,
    /// `spec.serviceName`, `None` when absent or empty.
    pub service_name: Option<String>,
}

#[derive(Deserialize)]
struct Object {
    kind: Option<String>,
    spec: Option<ObjectSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectSpec {
    replicas: Option<i64>,
    service_name: Option<String>,
    ordinals: Option<Ordinals>,
}

#[derive(Deserialize)]
struct Ordinals {
    start: Option<i64>,
}

#[derive(Deserialize)]
struct Status {
    message: Option<String>,
}

/// The fields of a StatefulSet's JSON, or why the body is not one.
pub fn parse(body: &[u8]) -> Result<Spec, String> {
    let object: Object = serde_json::from_slice(body).map_err(|e| format!("invalid JSON ({e})"))?;
    match object.kind.as_deref() {
        Some("StatefulSet") => {}
        Some(other) => return Err(format!("its kind is '{other}'")),
        None => return Err("it has no kind".into()),
    }
    let spec = object.spec.ok_or("it has no spec")?;
    let replicas = spec.replicas.unwrap_or(1);
    if !(0..=i64::from(MAX_REPLICAS)).contains(&replicas) {
        return Err(format!(
            "spec.replicas {replicas} is not in 0..={MAX_REPLICAS}"
        ));
    }
    let start_ordinal = spec.ordinals.and_then(|o| o.start).unwrap_or(0);
    if !(0..=i64::from(MAX_START_ORDINAL)).contains(&start_ordinal) {
        return Err(format!(
            "spec.ordinals.start {start_ordinal} is not in 0..={MAX_START_ORDINAL}"
        ));
    }
    Ok(Spec {
        replicas,
        start_ordinal,
        service_name: spec.service_name.filter(|s| !s.is_empty()),
    })
}

/// The `message` of a `Status` object, if the body is one.
pub fn status_message(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Status>(body)
        .ok()?
        .message
        .filter(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_fields_are_read_and_everything_else_skipped() {
        let body = br#"{"kind":"StatefulSet","apiVersion":"apps/v1","metadata":{"name":"zk","annotations":{"a":"b"}},
            "spec":{"replicas":5,"serviceName":"zk-hs","ordinals":{"start":1},"template":{"spec":{"containers":[]}}},
            "status":{"replicas":3}}"#;
        assert_eq!(
            parse(body).unwrap(),
            Spec {
                replicas: 5,
                start_ordinal: 1,
                service_name: Some("zk-hs".into())
            }
        );
        let bare = parse(br#"{"kind":"StatefulSet","spec":{"serviceName":""}}"#).unwrap();
        assert_eq!(
            bare,
            Spec {
                replicas: 1,
                start_ordinal: 0,
                service_name: None
            }
        );
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"<html>gateway</html>", "invalid JSON"),
            (b"", "invalid JSON"),
            (
                br#"{"kind":"Status","message":"x"}"#,
                "its kind is 'Status'",
            ),
            (br#"{"spec":{"replicas":3}}"#, "it has no kind"),
            (br#"{"kind":"StatefulSet"}"#, "it has no spec"),
            (
                br#"{"kind":"StatefulSet","spec":{"replicas":"3"}}"#,
                "invalid JSON",
            ),
            (
                br#"{"kind":"StatefulSet","spec":{"replicas":-1}}"#,
                "spec.replicas -1",
            ),
            (
                br#"{"kind":"StatefulSet","spec":{"replicas":10001}}"#,
                "spec.replicas 10001",
            ),
            (
                br#"{"kind":"StatefulSet","spec":{"replicas":3,"ordinals":{"start":-2}}}"#,
                "spec.ordinals.start -2",
            ),
            (
                br#"{"kind":"StatefulSet","spec":{"replicas":3.5}}"#,
                "invalid JSON",
            ),
        ];
        for (body, want) in cases {
            let why = parse(body).unwrap_err();
            assert!(
                why.contains(want),
                "{}: {why:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn status_messages_are_found_only_in_status_objects() {
        assert_eq!(
            status_message(br#"{"kind":"Status","message":"forbidden: no"}"#).as_deref(),
            Some("forbidden: no")
        );
        assert_eq!(status_message(b"upstream connect error"), None);
        assert_eq!(status_message(br#"{"message":""}"#), None);
    }
}

//! Values between serde_json and minijinja, both ways, bounded: a leaf module (the engine,
//! JSON mode and `check` all convert through it, and it depends on none of them).

use minijinja::Value;
use minijinja::value::ValueKind;
use serde_json::Value as Json;

use super::limits::MAX_OUTPUT_BYTES;

/// serde_json -> minijinja, done by hand so the template engine needs no serde support.
pub(crate) fn json_to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::from(items.iter().map(json_to_value).collect::<Vec<_>>()),
        Json::Object(map) => Value::from(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect::<std::collections::BTreeMap<String, Value>>(),
        ),
    }
}

/// minijinja -> serde_json, keeping the JSON type of what the expression produced, and
/// bounded: a value whose JSON would pass the output limit fails before it is built (a
/// lazily repeated list, `[1] * 10**8`, is refused by its length, not materialised).
pub(crate) fn value_to_json(value: &Value) -> std::result::Result<Json, String> {
    let mut room = MAX_OUTPUT_BYTES;
    value_to_json_at(value, 0, &mut room)
}

fn too_large() -> String {
    format!(
        "would pass the {} MiB limit of the rendered output",
        MAX_OUTPUT_BYTES / 1024 / 1024
    )
}

/// What one JSON value costs in memory besides its text: the `Value` itself, and for an
/// object's entry its key and slot.
const VALUE_COST: usize = 32;
const ENTRY_COST: usize = 48;

/// Charges `bytes` plus a value's own cost against `room`, which thereby bounds both the
/// text and the memory of the result.
fn charge(room: &mut usize, bytes: usize) -> std::result::Result<(), String> {
    *room = room.checked_sub(bytes + VALUE_COST).ok_or_else(too_large)?;
    Ok(())
}

fn value_to_json_at(
    value: &Value,
    depth: usize,
    room: &mut usize,
) -> std::result::Result<Json, String> {
    if depth > 64 {
        return Err("nests too deeply to become JSON".to_string());
    }
    let container = matches!(
        value.kind(),
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map
    );
    if let Some(len) = value.len().filter(|_| container) {
        // Each item costs at least a value: refuse a huge sequence before iterating it.
        if len.saturating_mul(VALUE_COST) > *room {
            return Err(too_large());
        }
    }
    Ok(match value.kind() {
        ValueKind::Undefined => return Err("contains an undefined value".to_string()),
        ValueKind::None => {
            charge(room, 4)?;
            Json::Null
        }
        ValueKind::Bool => {
            charge(room, 4)?;
            Json::Bool(value.is_true())
        }
        ValueKind::Number if value.is_integer() => {
            // Exact, however large: minijinja computes `2**63` as a 128-bit integer, and
            // serde_json (arbitrary_precision) writes every digit. Never through f64.
            let exact = i128::try_from(value.clone())
                .ok()
                .and_then(serde_json::Number::from_i128)
                .or_else(|| {
                    u128::try_from(value.clone())
                        .ok()
                        .and_then(serde_json::Number::from_u128)
                });
            match exact {
                Some(number) => {
                    charge(room, number.to_string().len())?;
                    Json::Number(number)
                }
                None => return Err(format!("is {value}, an integer too large to write exactly")),
            }
        }
        ValueKind::Number => {
            let f = f64::try_from(value.clone()).map_err(|e| e.to_string())?;
            charge(room, 8)?;
            serde_json::Number::from_f64(f)
                .map(Json::Number)
                .ok_or_else(|| format!("is {f}, which JSON cannot represent"))?
        }
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            charge(room, s.len() + 2)?;
            Json::String(s.to_string())
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let mut items = Vec::new();
            for item in value.try_iter().map_err(|e| e.to_string())? {
                charge(room, 1)?;
                items.push(value_to_json_at(&item, depth + 1, room)?);
            }
            Json::Array(items)
        }
        ValueKind::Map => {
            let mut map = serde_json::Map::new();
            for key in value.try_iter().map_err(|e| e.to_string())? {
                let item = value.get_item(&key).map_err(|e| e.to_string())?;
                let key = match key.as_str() {
                    Some(s) => s.to_string(),
                    None => key.to_string(),
                };
                charge(room, key.len() + ENTRY_COST)?;
                map.insert(key, value_to_json_at(&item, depth + 1, room)?);
            }
            Json::Object(map)
        }
        other => return Err(format!("is a {other}, which has no JSON form")),
    })
}

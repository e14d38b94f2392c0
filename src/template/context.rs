//! The template context: the variables as minijinja values. `peers` and `members` are lazy
//! lists over [`Members`]: each entry is built when a template reads it, so the context of a
//! 10,000-member StatefulSet holds no 10,000 strings, and `check` builds it per ordinal in
//! constant time instead of once per member.

use std::collections::BTreeMap;
use std::sync::Arc;

use minijinja::Value;
use minijinja::value::{Enumerator, Object, ObjectRepr};

use super::value::json_to_value;
use crate::members::Members;
use crate::variables::{VarValue, Variable};

/// The context for `vars`.
pub fn context_of(vars: &[Variable]) -> Value {
    let map: BTreeMap<String, Value> = vars
        .iter()
        .map(|var| {
            let value = match &var.value {
                VarValue::Json(json) => json_to_value(json),
                VarValue::Peers(members) => Value::from_object(PeerList(members.clone())),
                VarValue::Members(members) => Value::from_object(MemberList(members.clone())),
            };
            (var.name.clone(), value)
        })
        .collect();
    Value::from(map)
}

/// `peers`: every member's FQDN, in ordinal order.
#[derive(Debug)]
struct PeerList(Members);

/// `members`: `{name, ordinal, index, fqdn, is_self}` per member, in ordinal order.
#[derive(Debug)]
struct MemberList(Members);

/// The ordinal of list position `key`, if it is one.
fn ordinal_at(members: &Members, key: &Value) -> Option<u32> {
    members.ordinals().nth(key.as_usize()?)
}

impl Object for PeerList {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Value::from(self.0.fqdn(ordinal_at(&self.0, key)?)))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.replicas() as usize)
    }
}

impl Object for MemberList {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let ordinal = ordinal_at(&self.0, key)?;
        let entry: BTreeMap<&str, Value> = [
            ("name", Value::from(self.0.name(ordinal))),
            ("ordinal", Value::from(ordinal)),
            ("index", Value::from(ordinal - self.0.start())),
            ("fqdn", Value::from(self.0.fqdn(ordinal))),
            ("is_self", Value::from(ordinal == self.0.ordinal())),
        ]
        .into_iter()
        .collect();
        Some(Value::from(entry))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.replicas() as usize)
    }
}

//! The template variables: built from the identity, each with the place it came from, so
//! the same list feeds the template context, `explain` and the start-up log.

use serde_json::{Value, json};

use crate::error::UsageError;
use crate::identity::{Identity, Sourced, documentation_ip};
use crate::logging::printable;
use crate::members::Members;

/// The built-in variable names; a `--set` key may not shadow one.
pub const BUILT_IN: [&str; 14] = [
    "namespace",
    "pod_name",
    "statefulset",
    "ordinal",
    "replicas",
    "quorum",
    "service",
    "service_fqdn",
    "cluster_domain",
    "pod_fqdn",
    "pod_ip",
    "peers",
    "members",
    "env",
];

/// What to do about `pod_ip` when POD_IP is not set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownPodIp {
    /// `render`: leave it undefined, so a template that uses it fails with a hint.
    Undefined,
    /// `--dry-run` and `check`: a documentation address, distinct per ordinal.
    Placeholder,
}

/// One template variable.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub name: String,
    pub value: VarValue,
    pub source: String,
}

/// A variable's value: JSON, or one of the member lists, which are built only when read
/// (see `template::context_of`) so that 10,000 members cost no memory here.
#[derive(Debug, Clone, PartialEq)]
pub enum VarValue {
    Json(Value),
    /// `peers`: every member's FQDN.
    Peers(Members),
    /// `members`: `{name, ordinal, fqdn, is_self}` per member.
    Members(Members),
}

impl VarValue {
    /// The value as JSON, lists built in full.
    pub fn to_json(&self) -> Value {
        match self {
            VarValue::Json(json) => json.clone(),
            VarValue::Peers(m) => json!(m.fqdns()),
            VarValue::Members(m) => member_list(m),
        }
    }
}

/// All variables for one member. `env` is the process environment (passed in so tests and
/// `check` control it).
pub fn variables(
    identity: &Identity,
    sets: &[(String, String)],
    env: &[(String, String)],
    unknown_pod_ip: UnknownPodIp,
) -> Result<Vec<Variable>, UsageError> {
    let id = identity;
    let m = &id.members;
    let from_members = "derived from statefulset, replicas and service_fqdn";
    let mut vars = vec![
        sourced("namespace", &id.namespace),
        sourced("pod_name", &id.pod_name),
        sourced("statefulset", &id.statefulset),
        sourced("ordinal", &id.ordinal),
        sourced("replicas", &id.replicas),
        var("quorum", json!(m.quorum()), "derived from replicas/2+1"),
        sourced("service", &id.service),
        var(
            "service_fqdn",
            json!(m.service_fqdn()),
            "derived from service, namespace and cluster_domain",
        ),
        sourced("cluster_domain", &id.cluster_domain),
        var(
            "pod_fqdn",
            json!(m.pod_fqdn()),
            "derived from pod_name and service_fqdn",
        ),
    ];
    match (&id.pod_ip, unknown_pod_ip) {
        (Some(ip), _) => vars.push(var("pod_ip", json!(ip.value.to_string()), &ip.source)),
        (None, UnknownPodIp::Placeholder) => vars.push(var(
            "pod_ip",
            json!(documentation_ip(id.ordinal.value).to_string()),
            "placeholder: POD_IP is not set, so a documentation address (RFC 5737/3849) stands in",
        )),
        (None, UnknownPodIp::Undefined) => {}
    }
    vars.push(Variable {
        name: "peers".into(),
        value: VarValue::Peers(m.clone()),
        source: from_members.into(),
    });
    vars.push(Variable {
        name: "members".into(),
        value: VarValue::Members(m.clone()),
        source: from_members.into(),
    });
    let env_map: serde_json::Map<String, Value> =
        env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    vars.push(var(
        "env",
        Value::Object(env_map),
        "the process environment",
    ));
    for (key, value) in sets {
        if BUILT_IN.contains(&key.as_str()) {
            return Err(UsageError::SetShadowsBuiltIn(key.clone()));
        }
        vars.retain(|v| &v.name != key);
        vars.push(var(key, json!(value), "flag --set"));
    }
    Ok(vars)
}

/// `members`: one object per member, in ordinal order.
fn member_list(m: &Members) -> Value {
    let me = m.ordinal();
    Value::Array(
        m.ordinals()
            .map(
                |i| json!({"name": m.name(i), "ordinal": i, "fqdn": m.fqdn(i), "is_self": i == me}),
            )
            .collect(),
    )
}

fn var(name: &str, value: Value, source: impl ToString) -> Variable {
    Variable {
        name: name.to_string(),
        value: VarValue::Json(value),
        source: source.to_string(),
    }
}

fn sourced<T: Clone + Into<Value>>(name: &str, value: &Sourced<T>) -> Variable {
    var(name, value.value.clone().into(), &value.source)
}

/// The variables as one JSON object: the template context.
pub fn context(vars: &[Variable]) -> Value {
    Value::Object(
        vars.iter()
            .map(|v| (v.name.clone(), v.value.to_json()))
            .collect(),
    )
}

/// A short, log-friendly rendering of a value: lists of peers are long, and the
/// environment may hold secrets, so it is summarised by its names only.
pub fn summary(var: &Variable) -> String {
    const SHOWN: u32 = 10;
    match &var.value {
        VarValue::Json(Value::Object(map)) if var.name == "env" => {
            format!("{} variables (values not shown)", map.len())
        }
        VarValue::Json(Value::String(s)) => printable(s).into_owned(),
        VarValue::Json(other) => other.to_string(),
        VarValue::Members(m) => format!("{} entries", m.replicas()),
        VarValue::Peers(m) => {
            let names: Vec<String> = m
                .ordinals()
                .take(SHOWN as usize)
                .map(|i| m.fqdn(i))
                .collect();
            match m.replicas().saturating_sub(SHOWN) {
                0 => format!("[{}]", names.join(", ")),
                more => format!("[{}, ...] and {more} more", names.join(", ")),
            }
        }
    }
}

/// The process environment, lossily decoded (a non-UTF-8 variable must not stop a render).
pub fn process_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    env.sort();
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Host, Inputs, PodNameFallback, Source};
    use crate::resolv_conf::ResolvConf;

    fn identity(pod: &str, replicas: u32, ip: Option<&str>) -> Identity {
        let dir = tempfile::tempdir().unwrap();
        let host = Host {
            service_account_namespace: dir.path().join("none"),
            resolv_conf: ResolvConf::read(&dir.path().join("none")),
            hostname_env: None,
            kernel_hostname: dir.path().join("none"),
        };
        let inputs = Inputs {
            pod_name: Some(Sourced::new(pod.into(), Source::Env("POD_NAME".into()))),
            replicas: Some(Sourced::new(replicas, Source::Env("REPLICAS".into()))),
            pod_ip: ip.map(|ip| Sourced::new(ip.parse().unwrap(), Source::Env("POD_IP".into()))),
            ..Inputs::default()
        };
        Identity::resolve(inputs, &host, PodNameFallback::HostName).unwrap()
    }

    fn get<'a>(vars: &'a [Variable], name: &str) -> Option<&'a Variable> {
        vars.iter().find(|v| v.name == name)
    }

    #[test]
    fn every_built_in_is_present_with_its_type_and_source() {
        let id = identity("consul-2", 3, Some("10.1.2.3"));
        let vars = variables(
            &id,
            &[],
            &[("HOME".into(), "/root".into())],
            UnknownPodIp::Undefined,
        )
        .unwrap();
        let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, BUILT_IN);
        assert_eq!(get(&vars, "ordinal").unwrap().value.to_json(), json!(2));
        assert_eq!(get(&vars, "replicas").unwrap().value.to_json(), json!(3));
        assert_eq!(get(&vars, "replicas").unwrap().source, "env REPLICAS");
        assert_eq!(get(&vars, "quorum").unwrap().value.to_json(), json!(2));
        assert_eq!(
            get(&vars, "pod_ip").unwrap().value.to_json(),
            json!("10.1.2.3")
        );
        assert_eq!(
            get(&vars, "env").unwrap().value.to_json(),
            json!({"HOME": "/root"})
        );
        assert_eq!(
            get(&vars, "members").unwrap().value.to_json()[2],
            json!({"name": "consul-2", "ordinal": 2, "fqdn": "consul-2.consul.default.svc.cluster.local", "is_self": true})
        );
        assert_eq!(
            get(&vars, "members").unwrap().value.to_json()[0]["is_self"],
            json!(false)
        );
    }

    #[test]
    fn unknown_pod_ip_is_undefined_in_render_and_a_placeholder_elsewhere() {
        let id = identity("consul-1", 3, None);
        let render = variables(&id, &[], &[], UnknownPodIp::Undefined).unwrap();
        assert!(get(&render, "pod_ip").is_none());
        let dry = variables(&id, &[], &[], UnknownPodIp::Placeholder).unwrap();
        let pod_ip = get(&dry, "pod_ip").unwrap();
        assert_eq!(pod_ip.value.to_json(), json!("192.0.2.2"));
        assert!(pod_ip.source.contains("placeholder"));
    }

    #[test]
    fn set_adds_strings_and_refuses_to_shadow_built_ins() {
        let id = identity("consul-0", 1, None);
        let sets = [("datacenter".to_string(), "eu-1".to_string())];
        let vars = variables(&id, &sets, &[], UnknownPodIp::Undefined).unwrap();
        assert_eq!(
            get(&vars, "datacenter").unwrap().value.to_json(),
            json!("eu-1")
        );
        assert_eq!(get(&vars, "datacenter").unwrap().source, "flag --set");
        for name in BUILT_IN {
            let err = variables(
                &id,
                &[(name.to_string(), "x".into())],
                &[],
                UnknownPodIp::Undefined,
            )
            .unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn summaries_hide_the_environment() {
        let id = identity("consul-0", 2, None);
        let env = [("SECRET_TOKEN".to_string(), "hunter2".to_string())];
        let vars = variables(&id, &[], &env, UnknownPodIp::Undefined).unwrap();
        let env_summary = summary(get(&vars, "env").unwrap());
        assert!(!env_summary.contains("hunter2"));
        assert_eq!(summary(get(&vars, "replicas").unwrap()), "2");
        assert_eq!(
            summary(get(&vars, "peers").unwrap()),
            "[consul-0.consul.default.svc.cluster.local, consul-1.consul.default.svc.cluster.local]"
        );
        assert_eq!(summary(get(&vars, "members").unwrap()), "2 entries");
    }
}

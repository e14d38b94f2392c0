//! The template variables: built from the identity, each with the place it came from, so
//! the same list feeds the template context, `explain` and the start-up log.

use serde_json::{Value, json};

use crate::data_path::DataState;
use crate::error::UsageError;
use std::net::IpAddr;

use crate::identity::{Identity, Source, Sourced, documentation_ips};
use crate::logging::printable;
use crate::members::Members;

/// The built-in variable names; a `--set` key may not shadow one.
pub const BUILT_IN: [&str; 20] = [
    "namespace",
    "pod_name",
    "statefulset",
    "ordinal",
    "start_ordinal",
    "index",
    "replicas",
    "quorum",
    "service",
    "service_fqdn",
    "cluster_domain",
    "pod_fqdn",
    "pod_ip",
    "pod_ips",
    "pod_ipv4",
    "pod_ipv6",
    "peers",
    "members",
    "env",
    "has_data",
];

/// What to do about `pod_ip` (and `pod_ips`, `pod_ipv4`, `pod_ipv6`) when neither POD_IP nor
/// POD_IPS is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownPodIp {
    /// `render`: leave them undefined, so a template that uses one fails with a hint.
    Undefined,
    /// `--dry-run` and `check`: documentation addresses of both families, distinct per member.
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
        sourced("start_ordinal", &id.start_ordinal),
        var(
            "index",
            json!(m.index()),
            "derived from ordinal - start_ordinal",
        ),
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
    vars.extend(pod_address_variables(id, unknown_pod_ip));
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
    vars.push(has_data(&DataState::Unknown));
    for (key, value) in sets {
        if BUILT_IN.contains(&key.as_str()) {
            return Err(UsageError::SetShadowsBuiltIn(key.clone()));
        }
        vars.retain(|v| &v.name != key);
        vars.push(var(key, json!(value), "flag --set"));
    }
    Ok(vars)
}

/// `has_data`: does this pod's volume already hold the datastore's data (`--data-path`)? A
/// first boot is shown when it is unknown (`check`, `explain` without `--data-path`).
pub fn has_data(state: &DataState) -> Variable {
    var(
        "has_data",
        json!(state.has_data().unwrap_or(false)),
        state.source(),
    )
}

/// Puts what `--data-path` found into `vars`. In `render` (`keep_unknown` false) an unknown
/// state leaves `has_data` undefined, so a template that branches on it fails instead of
/// guessing a first boot.
pub fn set_data_state(vars: &mut Vec<Variable>, state: &DataState, keep_unknown: bool) {
    vars.retain(|v| v.name != "has_data");
    if keep_unknown || state.has_data().is_some() {
        vars.push(has_data(state));
    }
}

/// `check --has-data BOOL`: renders every pod as a first boot (`false`) or a restart (`true`).
pub fn set_has_data(vars: &mut Vec<Variable>, value: bool, source: &str) {
    vars.retain(|v| v.name != "has_data");
    vars.push(var("has_data", json!(value), source));
}

/// `pod_ip`, `pod_ips`, and `pod_ipv4` / `pod_ipv6` for the families the pod has (a family it
/// lacks stays undefined, so a template that needs it fails instead of rendering a wrong one).
fn address_variables(ip: &Sourced<IpAddr>, ips: &Sourced<Vec<IpAddr>>) -> Vec<Variable> {
    let text = |ip: &IpAddr| json!(ip.to_string());
    let mut vars = vec![
        var("pod_ip", text(&ip.value), &ip.source),
        var(
            "pod_ips",
            Value::Array(ips.value.iter().map(text).collect()),
            &ips.source,
        ),
    ];
    if let Some(v4) = ips.value.iter().find(|ip| ip.is_ipv4()) {
        vars.push(var(
            "pod_ipv4",
            text(v4),
            "derived from pod_ips (its IPv4 address)",
        ));
    }
    if let Some(v6) = ips.value.iter().find(|ip| ip.is_ipv6()) {
        vars.push(var(
            "pod_ipv6",
            text(v6),
            "derived from pod_ips (its IPv6 address)",
        ));
    }
    vars
}

/// `pod_ip`, `pod_ips`, `pod_ipv4`, `pod_ipv6`: from POD_IP/POD_IPS; stand-in documentation
/// addresses for a dry run or `check`; none at all in `render` without them (a template
/// that reads one then fails, with the POD_IP hint).
fn pod_address_variables(id: &Identity, unknown_pod_ip: UnknownPodIp) -> Vec<Variable> {
    let known = match (&id.pod_ip, &id.pod_ips) {
        (Some(ip), Some(ips)) => Some((ip.clone(), ips.clone())),
        _ => None,
    };
    let addresses = match (known, unknown_pod_ip) {
        (Some(known), _) => Some(known),
        (None, UnknownPodIp::Placeholder) => {
            let ips = documentation_ips(id.members.index(), (false, false));
            Some((
                Sourced::new(ips[0], Source::Placeholder),
                Sourced::new(ips, Source::Placeholder),
            ))
        }
        (None, UnknownPodIp::Undefined) => None,
    };
    match addresses {
        Some((ip, ips)) => address_variables(&ip, &ips),
        None => Vec::new(),
    }
}

/// `members`: one object per member, in ordinal order.
fn member_list(m: &Members) -> Value {
    let me = m.ordinal();
    Value::Array(
        m.ordinals()
            .zip(0u32..)
            .map(|(i, index)| {
                json!({"name": m.name(i), "ordinal": i, "index": index, "fqdn": m.fqdn(i), "is_self": i == me})
            })
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
    // `into_string` keeps the buffer a UTF-8 variable already has (one copy fewer each).
    let text = |s: std::ffi::OsString| {
        s.into_string()
            .unwrap_or_else(|s| s.to_string_lossy().into_owned())
    };
    let mut env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| (text(k), text(v)))
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
        identity_with(pod, replicas, ip, None, None)
    }

    fn identity_with(
        pod: &str,
        replicas: u32,
        ip: Option<&str>,
        ips: Option<&str>,
        start: Option<u32>,
    ) -> Identity {
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
            pod_ips: ips.map(|ips| {
                let list = ips.split(',').map(|ip| ip.parse().unwrap()).collect();
                Sourced::new(list, Source::Env("POD_IPS".into()))
            }),
            start_ordinal: start.map(|n| Sourced::new(n, Source::Flag("--start-ordinal".into()))),
            ..Inputs::default()
        };
        Identity::resolve(inputs, &host, PodNameFallback::HostName).unwrap()
    }

    fn get<'a>(vars: &'a [Variable], name: &str) -> Option<&'a Variable> {
        vars.iter().find(|v| v.name == name)
    }

    #[test]
    fn every_built_in_is_present_with_its_type_and_source() {
        let id = identity_with(
            "consul-2",
            3,
            Some("10.1.2.3"),
            Some("10.1.2.3,fd00::3"),
            None,
        );
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
            get(&vars, "pod_ips").unwrap().value.to_json(),
            json!(["10.1.2.3", "fd00::3"])
        );
        assert_eq!(get(&vars, "pod_ips").unwrap().source, "env POD_IPS");
        assert_eq!(
            get(&vars, "pod_ipv4").unwrap().value.to_json(),
            json!("10.1.2.3")
        );
        assert_eq!(
            get(&vars, "pod_ipv6").unwrap().value.to_json(),
            json!("fd00::3")
        );
        assert_eq!(
            get(&vars, "start_ordinal").unwrap().value.to_json(),
            json!(0)
        );
        assert_eq!(get(&vars, "start_ordinal").unwrap().source, "default");
        assert_eq!(get(&vars, "index").unwrap().value.to_json(), json!(2));
        assert_eq!(
            get(&vars, "env").unwrap().value.to_json(),
            json!({"HOME": "/root"})
        );
        assert_eq!(
            get(&vars, "members").unwrap().value.to_json()[2],
            json!({"name": "consul-2", "ordinal": 2, "index": 2, "fqdn": "consul-2.consul.default.svc.cluster.local", "is_self": true})
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
        for name in ["pod_ip", "pod_ips", "pod_ipv4", "pod_ipv6"] {
            assert!(get(&render, name).is_none(), "{name}");
        }
        let dry = variables(&id, &[], &[], UnknownPodIp::Placeholder).unwrap();
        let pod_ip = get(&dry, "pod_ip").unwrap();
        assert_eq!(pod_ip.value.to_json(), json!("192.0.2.2"));
        assert!(pod_ip.source.contains("placeholder"));
        // Stand-ins of both families, so that any template renders in a dry run and in check.
        assert_eq!(
            get(&dry, "pod_ips").unwrap().value.to_json(),
            json!(["192.0.2.2", "2001:db8::2"])
        );
        assert_eq!(
            get(&dry, "pod_ipv6").unwrap().value.to_json(),
            json!("2001:db8::2")
        );
    }

    #[test]
    fn a_family_the_pod_lacks_stays_undefined() {
        let id = identity("db-0", 1, Some("fd00::7"));
        for mode in [UnknownPodIp::Undefined, UnknownPodIp::Placeholder] {
            let vars = variables(&id, &[], &[], mode).unwrap();
            assert_eq!(
                get(&vars, "pod_ips").unwrap().value.to_json(),
                json!(["fd00::7"])
            );
            assert_eq!(
                get(&vars, "pod_ipv6").unwrap().value.to_json(),
                json!("fd00::7")
            );
            assert!(get(&vars, "pod_ipv4").is_none());
        }
    }

    #[test]
    fn a_start_ordinal_gives_real_ordinals_and_indexes_from_zero() {
        let id = identity_with("zk-3", 3, None, None, Some(1));
        let vars = variables(&id, &[], &[], UnknownPodIp::Placeholder).unwrap();
        assert_eq!(get(&vars, "ordinal").unwrap().value.to_json(), json!(3));
        assert_eq!(
            get(&vars, "start_ordinal").unwrap().value.to_json(),
            json!(1)
        );
        assert_eq!(get(&vars, "index").unwrap().value.to_json(), json!(2));
        let members = &get(&vars, "members").unwrap().value.to_json();
        let pairs: Vec<(u64, u64)> = members
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["ordinal"].as_u64().unwrap(), m["index"].as_u64().unwrap()))
            .collect();
        assert_eq!(pairs, [(1, 0), (2, 1), (3, 2)]);
        assert_eq!(
            get(&vars, "peers").unwrap().value.to_json()[0],
            json!("zk-1.zk.default.svc.cluster.local")
        );
        // The stand-in pod IP goes by index (2 here), so members keep distinct ones.
        assert_eq!(
            get(&vars, "pod_ip").unwrap().value.to_json(),
            json!("192.0.2.3")
        );
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
    fn has_data_follows_the_data_state_and_render_leaves_an_unknown_one_undefined() {
        let id = identity("etcd-1", 3, None);
        let mut vars = variables(&id, &[], &[], UnknownPodIp::Undefined).unwrap();
        // Unknown: a first boot for check and explain, with a source that says so.
        let unknown = get(&vars, "has_data").unwrap();
        assert_eq!(unknown.value.to_json(), json!(false));
        assert!(
            unknown.source.contains("no --data-path"),
            "{}",
            unknown.source
        );
        let path = Sourced::new(
            std::path::PathBuf::from("/var/lib/etcd/member"),
            Source::Env("PEERCONF_DATA_PATH".into()),
        );
        set_data_state(&mut vars, &DataState::Restart(path.clone()), false);
        let restart = get(&vars, "has_data").unwrap();
        assert_eq!(restart.value.to_json(), json!(true));
        assert_eq!(
            restart.source,
            "env PEERCONF_DATA_PATH /var/lib/etcd/member: exists (a restart)"
        );
        set_data_state(&mut vars, &DataState::FirstBoot(path), false);
        assert_eq!(
            get(&vars, "has_data").unwrap().value.to_json(),
            json!(false)
        );
        assert_eq!(vars.iter().filter(|v| v.name == "has_data").count(), 1);
        set_data_state(&mut vars, &DataState::Unknown, false);
        assert!(get(&vars, "has_data").is_none());
        set_data_state(&mut vars, &DataState::Unknown, true);
        assert_eq!(
            get(&vars, "has_data").unwrap().value.to_json(),
            json!(false)
        );
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

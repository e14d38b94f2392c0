//! Property tests (proptest) of the pieces a wrong config would come from: the JSON-mode
//! renderer, identity parsing and derivation, the resolv.conf search line, and the atomic
//! writer.
//!
//! The seed is fixed so CI is reproducible; set `PROPTEST_RNG_SEED` (and `PROPTEST_CASES`)
//! to explore further locally. Failures are not persisted to files.

mod support;
use support::listing;

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde_json::{Value as Json, json};

use peerconf::error::Kind;
use peerconf::identity::{
    Host, Identity, Inputs, PodNameFallback, Source, Sourced, split_ordinal, validate_label,
    validate_subdomain,
};
use peerconf::output::{self, OutputFile};
use peerconf::resolv_conf::ResolvConf;
use peerconf::template::{MAX_OUTPUT_BYTES, Mode, Renderer, Syntax, TemplateFile};
use peerconf::variables::{self, UnknownPodIp};

fn config(cases: u32) -> Config {
    let mut config = Config::with_cases(cases);
    config.failure_persistence = None;
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x7065_6572_636f_6e66); // "peerconf"
    }
    config
}

// ---------------------------------------------------------------------------------------
// Helpers

fn nowhere_host() -> Host {
    let nowhere = PathBuf::from("/nonexistent/peerconf-properties");
    Host {
        service_account_namespace: nowhere.clone(),
        resolv_conf: ResolvConf::read(&nowhere),
        hostname_env: None,
        kernel_hostname: nowhere,
    }
}

fn flag(value: &str, name: &'static str) -> Option<Sourced<String>> {
    Some(Sourced::new(value.to_string(), Source::Flag(name.into())))
}

/// The context `render` would build for `pod` of a `replicas`-member StatefulSet.
fn context_for(
    pod: &str,
    replicas: u32,
    sets: &[(String, String)],
    env: &[(String, String)],
) -> Vec<variables::Variable> {
    let inputs = Inputs {
        pod_name: flag(pod, "--pod-name"),
        replicas: Some(Sourced::new(replicas, Source::Flag("--replicas".into()))),
        pod_ip: Some(Sourced::new(
            "10.0.0.7".parse().unwrap(),
            Source::Flag("--pod-ip".into()),
        )),
        ..Inputs::default()
    };
    let identity = Identity::resolve(inputs, &nowhere_host(), PodNameFallback::HostName).unwrap();
    variables::variables(&identity, sets, env, UnknownPodIp::Undefined).unwrap()
}

/// Renders through `template::context_of`, the lazy context the binary uses: the only one.
fn render(vars: &[variables::Variable], text: &str, mode: Mode) -> peerconf::error::Result<String> {
    let renderer =
        Renderer::with_context(&Syntax::default(), peerconf::template::context_of(vars)).unwrap();
    let file = TemplateFile {
        key: "t.json".into(),
        display: "t.json".into(),
        text: text.into(),
    };
    renderer.render(&file, mode).map_err(Into::into)
}

fn has_markup(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// A reference model of an RFC 1123 label, written independently of `validate_label`.
fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

/// Strings without template markup, biased towards the characters that matter to JSON
/// and to the template lexer.
fn plain_string() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        'a', 'z', '0', ' ', '{', '}', '%', '#', '"', '\\', '\n', '\t', '\u{0}', '\u{1f}', 'é',
        '\u{2028}', '😀',
    ]);
    prop_oneof![
        prop::collection::vec(chars, 0..16).prop_map(String::from_iter),
        any::<String>(),
    ]
    .prop_filter("no template markup", |s| !has_markup(s))
}

/// JSON documents without markup and without floats (floats have their own property).
fn plain_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        plain_string().prop_map(Json::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec((plain_string(), inner), 0..6)
                .prop_map(|pairs| Json::Object(pairs.into_iter().collect())),
        ]
    })
}

fn label(max_middle: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-z0-9]([a-z0-9-]{{0,{max_middle}}}[a-z0-9])?"))
        .unwrap()
}

fn domain() -> impl Strategy<Value = String> {
    prop::collection::vec(label(12), 1..4).prop_map(|labels| labels.join("."))
}

// ---------------------------------------------------------------------------------------
// JSON mode

proptest! {
    #![proptest_config(config(256))]

    /// A JSON template without any `{{`, `{%` or `{#` renders to the same JSON value, as
    /// pretty JSON in the template's key order with a trailing newline: peerconf never
    /// rewrites what the operator did not template (the `sed` bug class).
    #[test]
    fn json_without_markup_renders_to_itself(doc in plain_json(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&doc).unwrap()
        } else {
            serde_json::to_string(&doc).unwrap()
        };
        let context = context_for("consul-1", 3, &[], &[]);
        let out = render(&context, &text, Mode::Json).unwrap();
        prop_assert_eq!(&serde_json::from_str::<Json>(&out).unwrap(), &doc);
        prop_assert_eq!(out, serde_json::to_string_pretty(&doc).unwrap() + "\n");
    }

    /// Text without markup renders to itself, byte for byte.
    #[test]
    fn text_without_markup_renders_to_itself(text in plain_string()) {
        let context = context_for("consul-1", 3, &[], &[]);
        prop_assert_eq!(render(&context, &text, Mode::Text).unwrap(), text);
    }

    /// `--set` values and environment values with any characters (quotes, backslashes,
    /// newlines, control characters, even `{{ ... }}`) land verbatim: a lone expression
    /// gives exactly the string, text around it stays, the document stays valid JSON, and
    /// nothing is rendered twice (no template injection through a variable).
    #[test]
    fn variables_with_any_characters_cannot_break_the_document(
        value in prop_oneof![any::<String>(), Just("{{ replicas }}\"}, \"x\": {\"".to_string())],
        env_value in any::<String>(),
    ) {
        let sets = [("dc".to_string(), value.clone())];
        let env = [("SECRET".to_string(), env_value.clone())];
        let context = context_for("consul-0", 1, &sets, &env);
        let out = render(
            &context,
            r#"{"v": "{{ dc }}", "t": "<{{ dc }}>", "e": "{{ env.SECRET }}", "k:{{ dc }}": 1}"#,
            Mode::Json,
        ).unwrap();
        let doc: Json = serde_json::from_str(&out).unwrap();
        prop_assert_eq!(&doc["v"], &json!(value));
        prop_assert_eq!(&doc["t"], &json!(format!("<{value}>")));
        prop_assert_eq!(&doc["e"], &json!(env_value));
        prop_assert_eq!(&doc[format!("k:{value}").as_str()], &json!(1));
        prop_assert_eq!(doc.as_object().unwrap().len(), 4);
        let text = render(&context, "[{{ dc }}]", Mode::Text).unwrap();
        prop_assert_eq!(text, format!("[{value}]"));
    }

    /// Whatever expression a JSON-mode string holds, the result is either valid JSON or a
    /// template error (exit 3) reported on one line; never anything in between.
    #[test]
    fn json_mode_is_valid_json_or_a_template_error(
        exprs in prop::collection::vec(prop::sample::select(EXPRESSIONS.to_vec()), 1..6),
        wrap in prop::collection::vec(any::<bool>(), 6),
        replicas in 1u32..8,
    ) {
        let mut doc = serde_json::Map::new();
        for (i, expr) in exprs.iter().enumerate() {
            let text = if wrap[i] { format!("<{{{{ {expr} }}}}>") } else { format!("{{{{ {expr} }}}}") };
            doc.insert(format!("k{i}"), Json::String(text));
        }
        let template = serde_json::to_string(&Json::Object(doc)).unwrap();
        let context = context_for(&format!("db-{}", replicas - 1), replicas, &[], &[("Q".into(), "a\"b\\\n".into())]);
        match render(&context, &template, Mode::Json) {
            Ok(out) => {
                prop_assert!(out.ends_with('\n'));
                prop_assert!(serde_json::from_str::<Json>(&out).is_ok(), "invalid JSON: {}", out);
            }
            Err(e) => {
                prop_assert_eq!(e.kind(), Kind::Template);
                prop_assert!(e.report().starts_with("peerconf: error: t.json: $.k"), "{}", e.report());
                prop_assert!(e.report().lines().count() <= 2, "{}", e.report());
            }
        }
    }
}

/// Expressions of every result type, including ones that must fail cleanly.
const EXPRESSIONS: [&str; 30] = [
    "replicas",
    "quorum",
    "ordinal == 0",
    "replicas / 2",
    "replicas // 2",
    "peers",
    "members",
    "members[0]",
    "env",
    "env.Q",
    "none",
    "true",
    "'a\"b\\\\c'",
    "peers | join(',')",
    "{'a': [1, 2.5, none], 'b': {'c': true}}",
    "{1: 2}",
    "(1, 2)",
    "range(3)",
    "peers | map('upper')",
    "peers | reverse",
    "0.1 + 0.2",
    "-0.0",
    "1e308 * 10",
    "1 / 0",
    "range",
    "nope",
    "members[99].fqdn",
    "pod_ip ~ ':2380'",
    "dict(a=1)",
    "[1, 2] * 3",
];

/// The shortest text of a finite f64 (as serde_json writes it) is read back as the same
/// f64. Found by fuzzing (render_json): without serde_json's `float_roundtrip` feature the
/// parse is off by one unit in the last place for some literals, so peerconf changes a
/// number the operator wrote in a template that has no markup at all.
#[test]
fn a_number_literal_in_a_json_template_is_kept_exactly() {
    let context = context_for("consul-0", 1, &[], &[]);
    // The literal the fuzzer found, and the f64 it denotes (correctly rounded, as Python,
    // Go and JavaScript read it).
    let literal = "9355555555555555555555555555555555555510";
    let out = render(&context, literal, Mode::Json).unwrap();
    assert_eq!(
        out.trim().parse::<f64>().unwrap(),
        literal.parse::<f64>().unwrap(),
        "peerconf changed the number literal {literal} into {out}"
    );
    let out = render(&context, "[1e-7, 0.1, 1.7976931348623157e308]", Mode::Json).unwrap();
    let back: Vec<f64> = serde_json::from_str(&out).unwrap();
    assert_eq!(back, [1e-7, 0.1, 1.797_693_134_862_315_7e308]);
}

proptest! {
    #![proptest_config(config(512))]

    /// Any finite f64 written in a template comes out as the same f64.
    #[test]
    fn float_literals_survive_a_render(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let context = context_for("consul-0", 1, &[], &[]);
        let text = serde_json::to_string(&[f]).unwrap();
        let out = render(&context, &text, Mode::Json).unwrap();
        let back: Vec<f64> = out.trim().trim_matches(['[', ']']).split(',')
            .map(|s| s.trim().parse::<f64>().unwrap()).collect();
        prop_assert_eq!(back[0].to_bits(), f.to_bits(), "{} became {}", text, out);
    }
}

// ---------------------------------------------------------------------------------------
// Identity and peers

/// StatefulSet, namespace, service, domain and (replicas, ordinal).
fn statefulset_shape() -> impl Strategy<Value = (String, String, Option<String>, String, u32, u32)>
{
    let replicas = prop_oneof![6 => 1u32..=40, 2 => 9u32..=120, 1 => 121u32..=10_000];
    // Names near the 63-character limit, where `<sts>-<ordinal>` fits for some ordinals
    // and not for others.
    let near_limit = (55usize..=62).prop_flat_map(|len| {
        proptest::string::string_regex(&format!("[a-z][a-z0-9]{{{}}}", len - 1)).unwrap()
    });
    (
        prop_oneof![2 => label(60), 1 => near_limit],
        label(20),
        prop::option::of(label(20)),
        domain(),
        replicas,
    )
        .prop_flat_map(|(sts, ns, svc, domain, replicas)| {
            (
                Just(sts),
                Just(ns),
                Just(svc),
                Just(domain),
                Just(replicas),
                0..replicas,
            )
        })
}

proptest! {
    #![proptest_config(config(200))]

    /// Every rendered `peers` list has `replicas` entries in ordinal order, all distinct,
    /// valid DNS names under `<service>.<ns>.svc.<domain>`; `members` agrees with it;
    /// `quorum` is a strict majority; and identities that cannot make valid names (any
    /// member's name over 63, a peer over 253 characters) are refused up front as usage
    /// errors.
    #[test]
    fn rendered_peers_are_replicas_valid_names_under_the_cluster_domain(
        (sts, ns, svc, domain, replicas, ordinal) in statefulset_shape()
    ) {
        let pod = format!("{sts}-{ordinal}");
        let last_member = format!("{sts}-{}", replicas - 1);
        let service = svc.clone().unwrap_or_else(|| sts.clone());
        let suffix = format!(".{service}.{ns}.svc.{domain}");
        let longest = format!("{last_member}{suffix}");
        let inputs = Inputs {
            namespace: flag(&ns, "--namespace"),
            pod_name: flag(&pod, "--pod-name"),
            replicas: Some(Sourced::new(replicas, Source::Flag("--replicas".into()))),
            service: svc.as_deref().and_then(|s| flag(s, "--service")),
            cluster_domain: flag(&domain, "--cluster-domain"),
            ..Inputs::default()
        };
        let identity = match Identity::resolve(inputs, &nowhere_host(), PodNameFallback::HostName) {
            Ok(identity) => identity,
            Err(e) => {
                prop_assert_eq!(peerconf::error::Error::from(e.clone()).kind(), Kind::Usage);
                prop_assert!(last_member.len() > 63 || longest.len() > 253, "refused a valid identity: {}", e);
                return Ok(());
            }
        };
        prop_assert!(last_member.len() <= 63 && longest.len() <= 253, "accepted {} ({}) / {}", pod, last_member, longest);

        let vars = variables::variables(&identity, &[], &[], UnknownPodIp::Placeholder).unwrap();
        let out = render(
            &vars,
            r#"{"peers": "{{ peers }}", "members": "{{ members }}", "replicas": "{{ replicas }}",
                "quorum": "{{ quorum }}", "self": "{{ pod_fqdn }}", "ordinal": "{{ ordinal }}"}"#,
            Mode::Json,
        ).unwrap();
        let doc: Json = serde_json::from_str(&out).unwrap();
        let peers: Vec<String> = serde_json::from_value(doc["peers"].clone()).unwrap();
        prop_assert_eq!(peers.len(), replicas as usize);
        prop_assert_eq!(&doc["replicas"], &json!(replicas));
        prop_assert_eq!(&doc["ordinal"], &json!(ordinal));
        let quorum = doc["quorum"].as_u64().unwrap() as u32;
        prop_assert!(quorum * 2 > replicas && quorum <= replicas);
        prop_assert_eq!(&doc["self"], &json!(peers[ordinal as usize]));
        let unique: std::collections::HashSet<&String> = peers.iter().collect();
        prop_assert_eq!(unique.len(), peers.len());
        for (i, peer) in peers.iter().enumerate() {
            prop_assert!(is_subdomain(peer), "{} is not a DNS name", peer);
            prop_assert!(peer.ends_with(&suffix), "{} is not under {}", peer, suffix);
            prop_assert_eq!(peer, &format!("{sts}-{i}{suffix}"));
            let member = &doc["members"][i];
            prop_assert_eq!(&member["fqdn"], &json!(peer));
            prop_assert_eq!(&member["ordinal"], &json!(i));
            prop_assert_eq!(&member["is_self"], &json!(i == ordinal as usize));
        }
        // Text mode sees the same list.
        let text = render(&vars, "{% for p in peers %}{{ p }}\n{% endfor %}", Mode::Text).unwrap();
        prop_assert_eq!(text.lines().collect::<Vec<_>>(), peers.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// `validate_label` and `validate_subdomain` agree with an independent model of RFC
    /// 1123 on arbitrary strings.
    #[test]
    fn label_and_subdomain_validation_match_rfc_1123(
        s in prop_oneof![
            proptest::string::string_regex("[a-zA-Z0-9._é-]{0,70}").unwrap(),
            prop::collection::vec(label(62), 1..6).prop_map(|l| l.join(".")),
            any::<String>(),
        ]
    ) {
        prop_assert_eq!(validate_label(&s).is_ok(), is_label(&s), "label {:?}", s);
        prop_assert_eq!(validate_subdomain(&s).is_ok(), is_subdomain(&s), "subdomain {:?}", s);
    }

    /// The ordinal is the canonical digits after the last `-`: `<sts>-<n>` splits back into
    /// the two; a sign, a leading zero, a missing stem or an out-of-range number is refused.
    #[test]
    fn pod_names_split_into_statefulset_and_ordinal(sts in label(40), n in any::<u32>(), junk in "[+0a]") {
        let pod = format!("{sts}-{n}");
        prop_assert_eq!(split_ordinal(&pod), Some((sts.as_str(), n)));
        let refused = [
            format!("{sts}-{junk}{n}"),
            format!("-{n}"),
            format!("{sts}-"),
            format!("{sts}-{}0", u64::from(u32::MAX) + 1 + u64::from(n)),
        ];
        for bad in &refused {
            prop_assert_eq!(split_ordinal(bad), None, "{}", bad);
        }
    }

    /// The cluster domain comes from the last `search` line of the pod's resolv.conf, as
    /// the kubelet writes it (`<ns>.svc.<domain> svc.<domain> <domain>`), whatever surrounds
    /// it (trailing dots, tabs, comments, options, other lines, an earlier search line);
    /// a last search line without a `svc.` entry falls back to cluster.local. Namespaces
    /// include `svc`, a valid namespace name whose search entry itself starts with `svc.`.
    #[test]
    fn the_cluster_domain_comes_from_the_resolv_conf_search_line(
        ns in prop_oneof![3 => label(20), 1 => Just("svc".to_string())],
        domain in domain(),
        trailing_dot in any::<bool>(),
        tabs in any::<bool>(),
        earlier in prop::option::of(domain()),
        comment in prop::option::of("[ a-z#;.]{0,20}"),
        extra in prop::collection::vec(prop::sample::select(vec![
            "nameserver 10.96.0.10", "options ndots:5", "domain example.com", "# search svc.nope.example",
            "; comment", "", "   ", "sortlist 10.0.0.0/8",
        ]), 0..4),
    ) {
        let dot = if trailing_dot { "." } else { "" };
        let sep = if tabs { "\t" } else { " " };
        let mut lines: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if let Some(other) = &earlier {
            lines.insert(0, format!("search svc.{other}"));
        }
        let comment = comment.map(|c| format!(" #{c}")).unwrap_or_default();
        lines.push(format!("search{sep}{ns}.svc.{domain}{dot}{sep}svc.{domain}{dot}{sep}{domain}{dot}{comment}"));
        lines.extend(extra.iter().rev().map(|s| s.to_string()));
        let text = lines.join("\n");
        prop_assert_eq!(detected_domain(&ns, &text), domain.clone(), "{}", text);

        // The last search line wins, as in glibc: without an svc. entry, the default.
        let without = format!("{text}\nsearch {ns}-x.example\n");
        prop_assert_eq!(detected_domain(&ns, &without), "cluster.local");
    }
}

/// The cluster domain `Identity::resolve` settles on for a pod in `namespace` whose
/// resolv.conf is `text`.
fn detected_domain(namespace: &str, text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let resolv_conf = dir.path().join("resolv.conf");
    std::fs::write(&resolv_conf, text).unwrap();
    let host = Host {
        resolv_conf: ResolvConf::read(&resolv_conf),
        ..nowhere_host()
    };
    let inputs = Inputs {
        namespace: flag(namespace, "--namespace"),
        pod_name: flag("db-0", "--pod-name"),
        replicas: Some(Sourced::new(1, Source::Flag("--replicas".into()))),
        ..Inputs::default()
    };
    let identity = Identity::resolve(inputs, &host, PodNameFallback::HostName).unwrap();
    identity.cluster_domain.value
}

/// The kubelet's search line for a pod in the namespace `svc` starts with
/// `svc.svc.cluster.local`: the cluster domain is still `cluster.local`, not
/// `svc.cluster.local` (which would make every peer name wrong and the wait time out).
#[test]
fn a_namespace_named_svc_still_gets_the_right_cluster_domain() {
    let text = "nameserver 10.96.0.10\nsearch svc.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n";
    assert_eq!(detected_domain("svc", text), "cluster.local");
}

// ---------------------------------------------------------------------------------------
// Output

proptest! {
    #![proptest_config(config(48))]

    /// Writing over an existing file leaves exactly the new bytes with the asked mode,
    /// removes the temp files killed runs left (unlocked), keeps a live writer's (locked)
    /// temp file, and keeps every other file.
    #[test]
    fn writes_replace_the_file_and_clean_only_dead_temps(
        old in prop::collection::vec(any::<u8>(), 0..512),
        new in prop::collection::vec(any::<u8>(), 0..4096),
        stale in prop::collection::vec("[A-Za-z0-9]{8}", 0..4),
        mode in prop::sample::select(vec![0o600u32, 0o640, 0o644, 0o400]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("consul.json");
        std::fs::write(&target, &old).unwrap();
        let live = output::stage(&[OutputFile { path: dir.path().join("other.json"), contents: b"live".to_vec() }], 0o640).unwrap();
        let keep = [".consul.json.swp", "consul.json.bak", ".x.short.peerconf-tmp"];
        for name in keep {
            std::fs::write(dir.path().join(name), "keep").unwrap();
        }
        for random in &stale {
            std::fs::write(dir.path().join(format!(".consul.json.{random}.peerconf-tmp")), "{\"half\":").unwrap();
            std::fs::write(dir.path().join(format!(".other.json.{random}.peerconf-old")), "old").unwrap();
        }
        output::write_files(&[OutputFile { path: target.clone(), contents: new.clone() }], mode).unwrap();
        prop_assert_eq!(std::fs::read(&target).unwrap(), new);
        use std::os::unix::fs::PermissionsExt;
        prop_assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o7777, mode);
        let names = listing(dir.path());
        let live_temps = names.iter().filter(|n| n.starts_with(".other.json.") && n.ends_with(".peerconf-tmp")).count();
        prop_assert_eq!(live_temps, 1, "the live writer's temp file is kept: {:?}", names);
        live.publish().unwrap();
        let mut want: Vec<&str> = keep.to_vec();
        want.push("consul.json");
        want.push("other.json");
        want.sort();
        prop_assert_eq!(listing(dir.path()), want);
    }
}

/// Rendering is bounded: a template may not produce more than the output limit, in either
/// mode, and says so as a template error.
#[test]
fn output_over_the_limit_is_a_template_error() {
    let context = context_for("consul-0", 1, &[], &[]);
    let big = MAX_OUTPUT_BYTES + 1;
    for (text, mode) in [
        (format!("{{{{ 'x' * {big} }}}}"), Mode::Text),
        (format!(r#"{{"a": "{{{{ 'x' * {big} }}}}"}}"#), Mode::Json),
    ] {
        let err = render(&context, &text, mode).unwrap_err();
        assert_eq!(err.kind(), Kind::Template, "{err}");
        assert!(err.message().contains("16 MiB limit"), "{err}");
    }
}

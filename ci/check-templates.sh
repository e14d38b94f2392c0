#!/usr/bin/env bash
# The shipped templates' unit tests, run by `peerconf check` itself: for Consul, etcd and
# ZooKeeper at 3 and 5 replicas in the IPv4, IPv6 and dual-stack families (check's default
# matrix), every pod's rendered config must satisfy the assertions below, its JSON Schema
# (schemas/) and its golden files (tests/golden/<datastore>/replicas-<N>-<family>/).
#
#   ci/check-templates.sh                  build peerconf with the `schema` feature, then check
#   PEERCONF_BIN=path ci/check-templates.sh   check with this binary (built with --features schema)
#   ci/check-templates.sh --update         rewrite the golden files after a deliberate change
#
# Also proves the checks can fail: a copy of the etcd template with a misspelt key must fail its
# schema (exit 6), and a copy of the Consul template with a wrong bootstrap_expect must fail
# its assertion and its golden files (exit 6).
#
# JUnit reports land in target/check-templates/. Ends with `check-templates: N passed, M failed`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

update=()
[[ ${1:-} == --update ]] && update=(--update)

if [[ -n ${PEERCONF_BIN:-} ]]; then
    bin=$PEERCONF_BIN
else
    echo "==> cargo build --locked --features schema"
    cargo build --locked --features schema
    bin=$ROOT/target/debug/peerconf
fi
reports=$ROOT/target/check-templates
mkdir -p "$reports"
# check is hermetic (no namespace file, resolv.conf or POD_* is read); only check's own
# PEERCONF_* options could change a run, so they are cleared.
common=(--replicas 3,5)
while read -r name; do unset "$name"; done < <(env | sed -n 's/^\(PEERCONF_[A-Z_]*\)=.*/\1/p')

passed=0 failed=0
# run NAME EXPECTED-EXIT peerconf-check-args...
run() {
    local name=$1 want=$2 got=0
    shift 2
    echo "==> $name"
    # Indented: a check's own "N passed, M failed" line (the negative controls' ones say
    # "0 passed") is part of this script's report, not its verdict.
    out=$("$bin" check "${common[@]}" "$@" 2>&1) || got=$?
    printf '%s\n' "$out" | sed 's/^/    /'
    if [[ $got == "$want" ]]; then
        echo "ok    $name (exit $got)"
        passed=$((passed + 1))
    else
        echo "FAIL  $name: exit $got, expected $want"
        failed=$((failed + 1))
    fi
}

run consul 0 --template manifests/consul.json --statefulset consul \
    --schema schemas/consul.schema.json \
    --assert "config.bootstrap_expect == replicas" \
    --assert "config.retry_join == peers" \
    --assert "pod_fqdn in config.retry_join" \
    --assert "config.node_name == pod_name" \
    --assert "config.bind_addr == pod_ip and config.advertise_addr == pod_ip" \
    --assert "config.ui_config.enabled" \
    --golden tests/golden/consul "${update[@]}" --junit "$reports/consul.xml"

run etcd 0 --template manifests/examples/etcd/etcd.json --statefulset etcd \
    --schema schemas/etcd.schema.json \
    --assert "config.name == pod_name" \
    --assert "config['initial-cluster'] | split(',') | list | length == replicas" \
    --assert "(pod_name ~ '=http://' ~ pod_fqdn ~ ':2380') in config['initial-cluster'] | split(',')" \
    --assert "config['initial-advertise-peer-urls'] == 'http://' ~ pod_fqdn ~ ':2380'" \
    --assert "config['listen-peer-urls'] == 'http://' ~ (pod_ip | hostport(2380))" \
    --assert "config['initial-cluster-state'] == 'new'" \
    --golden tests/golden/etcd "${update[@]}" --junit "$reports/etcd.xml"

run zookeeper 0 --template manifests/examples/zookeeper/templates --statefulset zookeeper \
    --assert "files['myid'] | trim | int == ordinal + 1" \
    --assert "files['zoo.cfg'] | lines | select('startingwith', 'server.') | list | length == replicas" \
    --assert "('server.' ~ (ordinal + 1) ~ '=' ~ pod_fqdn ~ ':2888:3888;2181') in files['zoo.cfg'] | lines" \
    --assert "'standaloneEnabled=false' in files['zoo.cfg'] | lines" \
    --golden tests/golden/zookeeper "${update[@]}" --junit "$reports/zookeeper.xml"

# The cookie is a --secret: check reads no secret file (the path is never opened) and renders
# the placeholder peerconf-secret-cookie, so no golden file or report can hold a real cookie.
run rabbitmq 0 --template manifests/examples/rabbitmq/templates --statefulset rabbitmq \
    --secret cookie=/run/secrets/not-read-by-check \
    --assert "files['.erlang.cookie'] == secret.cookie" \
    --assert "files['rabbitmq.conf'] | lines | select('startingwith', 'cluster_formation.classic_config.nodes.') | list | length == replicas" \
    --assert "('cluster_formation.classic_config.nodes.' ~ (index + 1) ~ ' = rabbit@' ~ pod_fqdn) in files['rabbitmq.conf'] | lines" \
    --assert "'cluster_formation.peer_discovery_backend = classic_config' in files['rabbitmq.conf'] | lines" \
    --assert "('NODENAME=rabbit@' ~ pod_fqdn) in files['rabbitmq-env.conf'] | lines" \
    --assert "'USE_LONGNAME=true' in files['rabbitmq-env.conf'] | lines" \
    --golden tests/golden/rabbitmq "${update[@]}" --junit "$reports/rabbitmq.xml"

# cluster.id: the cluster_id of default/kafka, the same in every pod and at every size.
run kafka 0 --template manifests/examples/kafka/templates --statefulset kafka \
    --assert "files['cluster.id'] | trim == 'Emie9P1Ar_sT03hEowoTlw'" \
    --assert "files['cluster.id'] | trim | length == 22" \
    --assert "('node.id=' ~ index) in files['server.properties'] | lines" \
    --assert "(index ~ '@' ~ pod_fqdn ~ ':9093') in (files['server.properties'] | lines | select('startingwith', 'controller.quorum.voters=') | first)[25:] | split(',')" \
    --assert "(files['server.properties'] | lines | select('startingwith', 'controller.quorum.voters=') | first)[25:] | split(',') | list | length == replicas" \
    --assert "('advertised.listeners=PLAINTEXT://' ~ pod_fqdn ~ ':9092') in files['server.properties'] | lines" \
    --golden tests/golden/kafka "${update[@]}" --junit "$reports/kafka.xml"

if [[ ${#update[@]} == 0 ]]; then
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/peerconf-check-templates.XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
    sed 's/"initial-cluster-state"/"initial-cluster-staet"/' manifests/examples/etcd/etcd.json >"$scratch/etcd.json"
    run "etcd with a misspelt key fails its schema" 6 --template "$scratch/etcd.json" \
        --statefulset etcd --schema schemas/etcd.schema.json
    sed 's/"{{ replicas }}"/"{{ quorum }}"/' manifests/consul.json >"$scratch/consul.json"
    run "consul with bootstrap_expect = quorum fails its assertion and goldens" 6 \
        --template "$scratch/consul.json" --statefulset consul \
        --assert "config.bootstrap_expect == replicas" --golden tests/golden/consul
    sed 's/{{ pod_ip | hostport(2380) }}/{{ pod_ip }}:2380/' manifests/examples/etcd/etcd.json >"$scratch/etcd6.json"
    run "etcd with an unbracketed IPv6 listen URL fails with no assertion" 6 \
        --template "$scratch/etcd6.json" --statefulset etcd
fi

echo "check-templates: $passed passed, $failed failed"
[[ $failed == 0 ]]

#!/usr/bin/env bash
# The shipped templates' unit tests: a thin runner of the suite file ci/templates.suite.toml
# (Consul, etcd, ZooKeeper, RabbitMQ and Kafka at 3 and 5 replicas in the IPv4, IPv6 and dual-stack families,
# their assertions, JSON Schemas and golden files, and the negative controls that must fail).
# Every check lives in the suite; this script only builds the binary and runs
# `peerconf test` on it.
#
#   ci/check-templates.sh                     build peerconf with the `schema` feature, then test
#   PEERCONF_BIN=path ci/check-templates.sh   test with this binary (built with --features schema)
#   ci/check-templates.sh --update            rewrite the golden files after a deliberate change
#   ci/check-templates.sh --filter etcd       any other `peerconf test` flag is passed on
#
# JUnit reports land in target/check-templates/<test>.xml. Then (with no argument) the examples
# of docs/testing-templates.md that need the schema build run against it (ci/doc-examples.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [[ -n ${PEERCONF_BIN:-} ]]; then
    bin=$PEERCONF_BIN
else
    echo "==> cargo build --locked --features schema"
    cargo build --locked --features schema
    bin=$ROOT/target/debug/peerconf
fi
# `peerconf test` is hermetic (the identity, matrix and env come from the suite); only the
# global PEERCONF_LOG_* options could change a run, so every PEERCONF_* is cleared.
while read -r name; do unset "$name"; done < <(env | sed -n 's/^\(PEERCONF_[A-Z_]*\)=.*/\1/p')
mkdir -p target/check-templates
"$bin" test ci/templates.suite.toml --color never --junit-dir target/check-templates "$@"
# The docs' suite examples need this (schema) build: run them here, with it.
if [[ $# == 0 ]]; then
    echo "==> docs/testing-templates.md examples with the schema build"
    DOC_EXAMPLES_FEATURES=schema PEERCONF_BIN=$bin ci/doc-examples.sh docs/testing-templates.md docs/commands.md
fi

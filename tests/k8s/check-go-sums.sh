#!/usr/bin/env bash
# Fails if any module in tests/k8s/*/go.sum is marked not-to-use in the machine's package list
# (/work/.library/env/packages/go-partial.tsv, or GO_PARTIAL_TSV): such a module must never be
# a dependency of this project, even of its tests.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tsv=${GO_PARTIAL_TSV:-/work/.library/env/packages/go-partial.tsv}
if [ ! -r "$tsv" ]; then
    echo "check-go-sums: no $tsv on this machine; skipped the not-to-use check" >&2
    exit 0
fi
bad=$(awk -F'\t' 'NR==FNR { if ($2 == "not-to-use") flagged[$1] = 1; next }
                  ($1 in flagged) { print FILENAME ": " $1 " " $2 }' "$tsv" "$here"/*/go.sum | sort -u)
if [ -n "$bad" ]; then
    echo "check-go-sums: modules marked not-to-use in $tsv:" >&2
    echo "$bad" >&2
    exit 1
fi
n=$(cat "$here"/*/go.sum | awk '{print $1}' | sort -u | wc -l)
echo "check-go-sums: $n modules in tests/k8s/*/go.sum, none marked not-to-use in $tsv"

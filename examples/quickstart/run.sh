#!/usr/bin/env bash
# The quickstart, end to end on two local builtin stores:
#   seed -> render before -> plan -> apply -> plan again (no changes) -> render after -> compare.
# Rendered pipelines hold secret values, so only their SHA-256 digests are kept on disk.
set -euo pipefail
cd "$(dirname "$0")"
command -v secretshift >/dev/null || { echo "secretshift is not installed: run 'pip install .' at the repository root" >&2; exit 1; }

step() { printf '\n== %s\n' "$*"; }

digests_of_renders() {  # one line per pipeline: digest of its rendered form
  for f in pipelines/*.yaml; do
    printf '%s  %s\n' "$(secretshift render "$f" | sha256sum | cut -d' ' -f1)" "$f"
  done
}

digests_of_secrets() {  # digest of every secret's bytes in manager $1
  secretshift list "$1" | while read -r kind name; do
    printf '%s  %s %s\n' "$(secretshift get "$1" "$name" --kind "$kind" | sha256sum | cut -d' ' -f1)" "$kind" "$name"
  done
}

rm -rf work && mkdir -m 700 work
new_key() { python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'; }
(umask 077; new_key > work/master.key; new_key > work/fingerprint.key)

step "1. seed the builtin store 'harness' through secretshift put"
./seed.sh
secretshift validate
secretshift list harness
digests_of_secrets harness > work/secrets-before.sha256

step "2. references in pipelines/ (file:line:col, and whether each resolves)"
secretshift refs

step "3. render every pipeline before the migration"
digests_of_renders | tee work/render-before.sha256

step "4. plan (saved to work/plan.json for review; it holds fingerprints, never values)"
secretshift plan --out work/plan.json

step "5. apply exactly the reviewed plan"
secretshift apply work/plan.json

step "6. plan again: no changes expected (exit code 0 with --detailed-exitcode)"
secretshift plan --detailed-exitcode

step "7. render every pipeline after the migration"
digests_of_renders | tee work/render-after.sha256

step "8. compare"
diff work/render-before.sha256 work/render-after.sha256
echo "renders before and after the migration are byte-identical"
digests_of_secrets newstore > work/secrets-after.sha256
diff work/secrets-before.sha256 work/secrets-after.sha256
echo "all $(wc -l < work/secrets-after.sha256) secrets arrived byte for byte in 'newstore'"
test -z "$(secretshift list harness)" && echo "the source store 'harness' is empty (deleted values stay recoverable as tombstoned versions)"

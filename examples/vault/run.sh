#!/usr/bin/env bash
# The quickstart migration into a Vault. Start one first, e.g.
#   vault server -dev -dev-root-token-id=root &   export VAULT_TOKEN=root
# (the address is read from secretshift.yaml: http://127.0.0.1:8200; set VAULT_ADDR to use another).
set -euo pipefail
cd "$(dirname "$0")"
: "${VAULT_TOKEN:?set VAULT_TOKEN to a token that may write secret/harness/*}"
config=secretshift.yaml
if [ -n "${VAULT_ADDR:-}" ]; then  # point the example at another Vault without editing it
  sed "s#http://127.0.0.1:8200#${VAULT_ADDR}#" secretshift.yaml > work.yaml.tmp
  config=work.yaml.tmp
fi
step() { printf '\n== %s\n' "$*"; }
renders() { for f in ../quickstart/pipelines/*.yaml; do secretshift -c "$config" render "$f" | sha256sum; done; }

rm -rf work && mkdir -m 700 work
new_key() { python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'; }
(umask 077; new_key > work/master.key; new_key > work/fingerprint.key)

step "seed the builtin store and check the Vault is reachable"
../quickstart/seed.sh "$config" 2>/dev/null
secretshift -c "$config" validate
renders > work/render-before.sha256

step "plan"
secretshift -c "$config" plan --out work/plan.json

step "apply"
secretshift -c "$config" apply work/plan.json

step "plan again: no changes"
secretshift -c "$config" plan --detailed-exitcode

step "compare renders"
renders > work/render-after.sha256
diff work/render-before.sha256 work/render-after.sha256 && echo "renders identical before and after"
secretshift -c "$config" list corp_vault | head -n 5
rm -f work.yaml.tmp

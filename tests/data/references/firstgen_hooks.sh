#!/usr/bin/env bash
# Pre-deploy hook rendered by Harness FirstGen before it runs on the delegate.
# Secrets used: ${secrets.getValue("hook_token")} (see runbook), ${configFile.getAsString("ca.pem")}
set -euo pipefail

TOKEN="${secrets.getValue("hook_token")}"; USER=${secrets.getValue('hook_user')}; SCHEMA="${secrets.getValue( "hook_schema"
  )}"
cat > /etc/app/ca.pem <<PEM
${configFile.getAsString("ca.pem")}
PEM
echo "${configFile.getAsBase64("keystore.p12")}" | base64 -d > /etc/app/keystore.p12
curl -sf -H "Authorization: Bearer $TOKEN" \
  -d "{\"password\": \"${secrets.getValue(\"hook_db_password\")}\"}" https://hooks.internal/register
for name in a b; do
  echo "${secrets.getValue("hook_${name}")}"   # built at run time: unresolvable
done
echo "${secrets.getValue("hook_token")" # missing brace

#!/usr/bin/env bash
# Seed the quickstart's source store through `secretshift put`. Every value is fake:
# texts are written here, files are generated fresh by make_files.py.
# Usage: seed.sh [CONFIG]   (default: the quickstart's secretshift.yaml); seeds manager 'harness'.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
config="$(realpath "${1:-$here/secretshift.yaml}")"

# Each put is its own process: run four at a time (the store serialises the writes); a
# failed put leaves a mark that fails the script once the others are done.
failed="$(dirname "$config")/work/seed-failed"
rm -f "$failed"
throttle() { while (( $(jobs -rp | wc -l) >= 4 )); do wait -n || true; done; }
finish() { wait; if [ -e "$failed" ]; then echo "seeding failed: $(cat "$failed")" >&2; exit 1; fi; }
put_text() {  # put_text NAME VALUE: stores VALUE byte for byte (printf, so no newline is added)
  throttle
  { printf '%s' "$2" | secretshift -c "$config" put harness "$1" || echo "$1" >> "$failed"; } &
}
put_file() {  # put_file NAME PATH
  throttle
  { secretshift -c "$config" put harness "$1" --kind file --from-file "$2" || echo "$1" >> "$failed"; } &
}

printf '%s' 'fake-Pg-pa55word-2026' | secretshift -c "$config" put harness db_password  # creates the store
put_text db_readonly_password 'ro-FAKE-7c1e09a4b2'
put_text mysql_root_password  'r00t-$ecret-"with quotes"-and-\backslash\-FAKE'
put_text redis_password       'redis:FAKE:pw/with/slashes+plus=eq'
put_text github_token         'ghp_FAKEfakeFAKEfake0123456789abcdefABCD'
put_text slack_webhook_url    'https://hooks.slack.example.invalid/services/T000/B000/FAKEFAKE'
put_text stripe_api_key       'sk_test_FAKE_$HOME_${NOT_EXPANDED}_`nope`'
put_text datadog_api_key      'dd-FAKE-0f9e8d7c6b5a49382716'
put_text sonar_token          "it's a 'single-quoted' FAKE token"
put_text artifactory_password 'art!FAKE#pw%with&symbols*(){}[]'
put_text signing_passphrase   'Pässwörd-ünïcödé-密码-пароль-🔑-FAKE'
put_text jwt_signing_secret   'FAKE.jwt.secret.value=='
put_text smtp_password        $'FAKE-smtp-password-with-trailing-newline\n'
put_text ldap_bind_password   $'FAKE\ttab\tseparated'
put_text webhook_hmac_key     'FAKE-hmac-0123456789abcdef0123456789abcdef'
put_text npm_token            'npm_FAKEfakeFAKEfake0000000000000000000'
put_text shared_token         'FAKE-account-level-token'
put_text terraform_cloud_token 'FAKE.atlasv1.tfc-token-xyz'

files="$(dirname "$config")/work/files"
finish
python3 "$here/make_files.py" "$files"
put_file tls_chain       "$files/tls_chain.pem"
put_file tls_key         "$files/tls_key.pem"
put_file kubeconfig      "$files/kubeconfig"
put_file gcp_sa_key      "$files/gcp_sa.json"
put_file deploy_ssh_key  "$files/deploy_ssh_key"
put_file app_keystore    "$files/keystore.p12"
put_file npmrc           "$files/npmrc"
put_file docker_config   "$files/docker_config.json"
put_file app_env         "$files/app.env"
put_file db_password     "$files/app.env"   # the same name as a text secret: they are independent
finish
rm -rf "$files"  # the generated files now live only in the encrypted store

#!/usr/bin/env bash
# Builds the test APKs the catalogue tests upload: a manifest-only app
# (com.keelson.fixture) in versionCodes 1 to 7, signed with the committed test keystores
# (see README.md for which scheme and key each has). Debian packages: aapt, apksigner,
# zipalign, android-framework-res (framework-res.apk resolves the android: attributes;
# Debian bookworm has no android-sdk-platform-23), and a JDK (openjdk-17-jdk-headless) for
# jarsigner, and for keytool only to make a new keystore. The outputs are committed; re-run
# only to change them (jarsigner stamps the time, so v7 changes at each run).
set -euo pipefail
cd "$(dirname "$0")"

FRAMEWORK=${FRAMEWORK_RES:-/usr/share/android-framework-res/framework-res.apk}
PASS=keelson-test   # test keys: they sign nothing but these fixtures

# test-keystore.p12 signs both versions; test-keystore-other.p12 signs an APK of the same
# package with another key, which the catalogue must refuse (409).
for keystore in test-keystore.p12 test-keystore-other.p12; do
  [ -f "$keystore" ] || keytool -genkeypair -keystore "$keystore" -storetype PKCS12 -storepass "$PASS" -keypass "$PASS" \
    -alias fixture -keyalg RSA -keysize 2048 -validity 36500 -dname "CN=Keelson test fixture ($keystore)"
done

# The other key as unencrypted PKCS#8 PEM (Node's crypto reads no PKCS#12): the tests play an
# attacker holding it, who re-signs an APK's signing block to name a certificate it does not own.
openssl pkcs12 -in test-keystore-other.p12 -passin "pass:$PASS" -nocerts -nodes | openssl pkcs8 -topk8 -nocrypt -out test-keystore-other.key.pem

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The unsigned app in $work/aligned.apk. With "payload" it also carries assets/payload.txt,
# stored uncompressed: a test can flip a byte of an entry's data and the manifest still reads,
# so only the signature check can refuse it.
unsigned() {
  local code=$1 name=$2 assets=()
  sed -e "s/@VERSION_CODE@/$code/" -e "s/@VERSION_NAME@/$name/" AndroidManifest.template.xml >"$work/AndroidManifest.xml"
  if [ "${3:-}" = payload ]; then
    mkdir -p "$work/assets"
    echo "Keelson fixture payload: the tests flip a byte of this stored entry." >"$work/assets/payload.txt"
    assets=(-A "$work/assets" -0 txt)
  fi
  aapt package -f -M "$work/AndroidManifest.xml" -I "$FRAMEWORK" "${assets[@]}" -F "$work/unsigned.apk"
  zipalign -f 4 "$work/unsigned.apk" "$work/aligned.apk"
}

check() {
  apksigner verify --min-sdk-version "${2:-24}" --print-certs "$1" | grep -i 'SHA-256'
}

build() {
  local code=$1 name=$2 out=$3 keystore=$4 payload=
  shift 4  # further apksigner options
  if [ "${1:-}" = payload ]; then payload=payload; shift; fi
  unsigned "$code" "$name" $payload
  apksigner sign --ks "$keystore" --ks-pass "pass:$PASS" --ks-key-alias fixture --min-sdk-version 21 "$@" --out "$out" "$work/aligned.apk"
  rm -f "$out.idsig"
  check "$out"
}

build 1 1.0.0 fixture-v1.apk test-keystore.p12
build 2 1.1.0 fixture-v2.apk test-keystore.p12
build 3 1.2.0 fixture-v3-other-key.apk test-keystore-other.p12
# The APK Signature Scheme v2 block only: no v1 (JAR) signature, no v3 block.
build 4 1.3.0 fixture-v4-v2-signature-only.apk test-keystore.p12 --v1-signing-enabled false --v3-signing-enabled false

# Key rotation (APK Signature Scheme v3): test-keystore.p12 rotated to an EC P-384 key. v1 and
# v2 stay signed by the old key (devices before Android 9 know no rotation); the v3 block is
# signed by the new key (ECDSA with SHA-512, chunked SHA-512 digests) and carries the
# proof-of-rotation lineage, old certificate first, signed by the old key.
[ -f test-keystore-rotated.p12 ] || keytool -genkeypair -keystore test-keystore-rotated.p12 -storetype PKCS12 -storepass "$PASS" -keypass "$PASS" \
  -alias fixture -keyalg EC -groupname secp384r1 -validity 36500 -dname "CN=Keelson test fixture (rotated key)"
apksigner rotate --out "$work/lineage" \
  --old-signer --ks test-keystore.p12 --ks-pass "pass:$PASS" --ks-key-alias fixture \
  --new-signer --ks test-keystore-rotated.p12 --ks-pass "pass:$PASS" --ks-key-alias fixture
build 5 1.4.0 fixture-v5-rotated.apk test-keystore.p12 payload \
  --next-signer --ks test-keystore-rotated.p12 --ks-pass "pass:$PASS" --ks-key-alias fixture --lineage "$work/lineage"
apksigner lineage --in fixture-v5-rotated.apk --print-certs | grep -i 'SHA-256'

# v1 (JAR) signature only, as apksigner writes it (PKCS#7 without signed attributes).
build 6 1.5.0 fixture-v6-v1-only.apk test-keystore.p12 payload --v2-signing-enabled false --v3-signing-enabled false
# v1 only, as the JDK's jarsigner writes it (PKCS#7 with signed attributes), as older build
# chains did.
unsigned 7 1.6.0 payload
jarsigner -keystore test-keystore.p12 -storetype PKCS12 -storepass "$PASS" -sigalg SHA256withRSA -digestalg SHA-256 \
  -signedjar fixture-v7-jarsigner.apk "$work/aligned.apk" fixture
check fixture-v7-jarsigner.apk 21

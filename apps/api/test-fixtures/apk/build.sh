#!/usr/bin/env bash
# Builds the test APKs the catalogue tests upload: a manifest-only app
# (com.keelson.fixture) in versionCode 1 and 2, signed (v1 JAR + v2 scheme) with the
# committed test keystore. Debian packages: aapt, apksigner, zipalign,
# android-framework-res (framework-res.apk resolves the android: attributes; Debian
# bookworm has no android-sdk-platform-23), and a JDK's keytool (default-jre-headless)
# only to make a new keystore. The outputs are committed; re-run only to change them.
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

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build() {
  local code=$1 name=$2 out=$3 keystore=$4
  shift 4  # further apksigner options
  sed -e "s/@VERSION_CODE@/$code/" -e "s/@VERSION_NAME@/$name/" AndroidManifest.template.xml >"$work/AndroidManifest.xml"
  aapt package -f -M "$work/AndroidManifest.xml" -I "$FRAMEWORK" -F "$work/unsigned.apk"
  zipalign -f 4 "$work/unsigned.apk" "$work/aligned.apk"
  apksigner sign --ks "$keystore" --ks-pass "pass:$PASS" --ks-key-alias fixture --min-sdk-version 21 "$@" --out "$out" "$work/aligned.apk"
  rm -f "$out.idsig"
  apksigner verify --min-sdk-version 24 --print-certs "$out" | grep -i 'SHA-256'
}

build 1 1.0.0 fixture-v1.apk test-keystore.p12
build 2 1.1.0 fixture-v2.apk test-keystore.p12
build 3 1.2.0 fixture-v3-other-key.apk test-keystore-other.p12
# No v1 (JAR) signature: the certificate is only in the APK Signature Scheme v2 block.
build 4 1.3.0 fixture-v4-v2-signature-only.apk test-keystore.p12 --v1-signing-enabled false

#!/bin/sh
# One-shot (compose service kafka-tls-init): a development CA and the broker's
# keystore, made with the JDK's keytool of the Kafka image. Idempotent: an
# existing keystore is kept. Writes
#   /tls/ca/ca.p12        the CA's key (this volume is mounted by this service only)
#   /tls/broker/*.p12     the broker's keystore and truststore (broker and kafka-setup only)
#   /tls/public/ca.pem    the CA certificate, all clients need (world-readable)
set -eu
: "${KAFKA_KEYSTORE_PASSWORD:?set RINGTALLY_KAFKA_KEYSTORE_PASSWORD}"
pw="$KAFKA_KEYSTORE_PASSWORD"
san="dns:kafka,dns:localhost,ip:127.0.0.1"
if [ -s /tls/broker/kafka.p12 ] && [ -s /tls/public/ca.pem ]; then
  echo "kafka TLS material exists; keeping it"
  exit 0
fi
rm -f /tls/ca/ca.p12 /tls/broker/kafka.p12 /tls/broker/truststore.p12 /tls/public/ca.pem
keytool -genkeypair -noprompt -alias ca -keyalg EC -groupname secp256r1 -validity 3650 \
  -dname "CN=ringtally development CA" -ext bc:c \
  -keystore /tls/ca/ca.p12 -storetype PKCS12 -storepass "$pw"
keytool -exportcert -rfc -alias ca -keystore /tls/ca/ca.p12 -storepass "$pw" -file /tls/public/ca.pem
keytool -genkeypair -noprompt -alias kafka -keyalg EC -groupname secp256r1 -validity 825 \
  -dname "CN=kafka" -ext "SAN=$san" \
  -keystore /tls/broker/kafka.p12 -storetype PKCS12 -storepass "$pw"
keytool -certreq -alias kafka -keystore /tls/broker/kafka.p12 -storepass "$pw" \
  | keytool -gencert -rfc -alias ca -keystore /tls/ca/ca.p12 -storepass "$pw" -validity 825 \
      -ext "SAN=$san" -ext ku:c=digitalSignature,keyAgreement -ext eku=serverAuth,clientAuth \
      > /tmp/kafka.pem
keytool -importcert -noprompt -alias ca -file /tls/public/ca.pem \
  -keystore /tls/broker/kafka.p12 -storepass "$pw"
keytool -importcert -noprompt -alias kafka -file /tmp/kafka.pem \
  -keystore /tls/broker/kafka.p12 -storepass "$pw"
keytool -importcert -noprompt -alias ca -file /tls/public/ca.pem \
  -keystore /tls/broker/truststore.p12 -storetype PKCS12 -storepass "$pw"
chown -R appuser:appuser /tls/broker
chmod 600 /tls/broker/*.p12 /tls/ca/ca.p12
chmod 644 /tls/public/ca.pem
echo "kafka TLS material written"

#!/bin/bash
# The broker (compose service kafka): single node, KRaft, three listeners:
#   CONTROLLER  localhost:9093  PLAINTEXT, this container only (KRaft's own traffic)
#   INTERNAL    kafka:9094      SASL_SSL, SCRAM-SHA-512: containers on the compose network
#   HOST        :9095           SASL_SSL, SCRAM-SHA-512: published on 127.0.0.1:19092,
#                               advertised as 127.0.0.1:19092 (a client on the host)
# SCRAM users are created when the storage is formatted (KRaft has no other way
# to make the first ones): admin (the broker's own, super user) and ringtally.
set -euo pipefail
: "${KAFKA_KEYSTORE_PASSWORD:?set RINGTALLY_KAFKA_KEYSTORE_PASSWORD}"
: "${KAFKA_ADMIN_PASSWORD:?set RINGTALLY_KAFKA_ADMIN_PASSWORD}"
: "${KAFKA_RINGTALLY_PASSWORD:?set RINGTALLY_KAFKA_SASL_PASSWORD}"
: "${KAFKA_HOST_PORT:=19092}"
config=/var/lib/kafka/server.properties
jaas="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"${KAFKA_ADMIN_PASSWORD}\";"
umask 077
cat > "$config" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
controller.listener.names=CONTROLLER
listeners=CONTROLLER://localhost:9093,INTERNAL://:9094,HOST://:9095
advertised.listeners=INTERNAL://kafka:9094,HOST://127.0.0.1:${KAFKA_HOST_PORT}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:SASL_SSL,HOST:SASL_SSL
inter.broker.listener.name=INTERNAL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.internal.scram-sha-512.sasl.jaas.config=${jaas}
# (every SASL listener needs a JAAS entry; the broker logs in with it on INTERNAL only)
listener.name.host.scram-sha-512.sasl.jaas.config=${jaas}
ssl.keystore.type=PKCS12
ssl.keystore.location=/tls/broker/kafka.p12
ssl.keystore.password=${KAFKA_KEYSTORE_PASSWORD}
ssl.key.password=${KAFKA_KEYSTORE_PASSWORD}
ssl.truststore.type=PKCS12
ssl.truststore.location=/tls/broker/truststore.p12
ssl.truststore.password=${KAFKA_KEYSTORE_PASSWORD}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
# ANONYMOUS is the principal of the CONTROLLER listener, reachable from this container only.
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
log.dirs=/var/lib/kafka/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPERTIES
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  /opt/kafka/bin/kafka-storage.sh format -c "$config" \
    --cluster-id "$(/opt/kafka/bin/kafka-storage.sh random-uuid)" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=${KAFKA_ADMIN_PASSWORD}]" \
    --add-scram "SCRAM-SHA-512=[name=ringtally,password=${KAFKA_RINGTALLY_PASSWORD}]"
fi
# the admin client's settings, for the healthcheck and kafka-setup
cat > /tls/broker/admin.properties <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=${jaas}
ssl.truststore.type=PKCS12
ssl.truststore.location=/tls/broker/truststore.p12
ssl.truststore.password=${KAFKA_KEYSTORE_PASSWORD}
PROPERTIES
chmod 600 /tls/broker/admin.properties
exec /opt/kafka/bin/kafka-server-start.sh "$config"

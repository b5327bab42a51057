#!/bin/bash
# One-shot (compose service kafka-setup), once the broker is healthy: the ACLs
# of the ringtally user. The broker denies what no ACL allows
# (allow.everyone.if.no.acl.found=false); ringtally's worker and sink may use
# (and create) the topics, groups and transactional ids under the ringtally
# prefix and nothing else: no cluster-wide Create, which would let them create
# any topic. Idempotent (adding an existing ACL changes nothing).
set -euo pipefail
acls=(/opt/kafka/bin/kafka-acls.sh --bootstrap-server kafka:9094
      --command-config /tls/broker/admin.properties --add --allow-principal User:ringtally)
"${acls[@]}" --operation All --resource-pattern-type prefixed --topic ringtally
"${acls[@]}" --operation All --resource-pattern-type prefixed --group ringtally
"${acls[@]}" --operation All --resource-pattern-type prefixed --transactional-id ringtally
"${acls[@]}" --operation Describe --operation IdempotentWrite --cluster
echo "ringtally ACLs in place"

"""The Postgres side of ringtally: SQL migrations, the exactly-once sink, audit verification.

Modules, one concept each:

``db``            connecting (search_path = the configured schema), which errors mean "down"
``migrate``       versioned SQL migrations with checksums (``ringtally db migrate``)
``decode``        Kafka record -> output model, or a dead-letter reason
``offsets``       the sink's positions, stored in Postgres beside the rows
``writer``        one batch -> one transaction (rows + offsets), duplicates absorbed
``dlq``           the dead-letter topic ``<prefix>.sink-dlq``
``sink``          the consumer loop (``ringtally sink``)
``metrics``       the sink's ``/metrics`` endpoint
``audit_verify``  recompute every audit hash chain (``ringtally audit verify``)
``cli``           the click commands
"""

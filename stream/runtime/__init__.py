"""All Kafka I/O of a worker: the batch loop, changelogs, assignment, recovery, lag.

`stream.processor` stays pure; this package feeds it batches from aiokafka and writes
what it decides back to Kafka. What other Kafka clients (the simulator) share with the
worker, servers, security and log thinning, is in `stream.kafka_client`, outside it.
"""

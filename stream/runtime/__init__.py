"""All Kafka I/O of a worker: the batch loop, changelogs, assignment, recovery, lag, auth.

`stream.processor` stays pure; this package feeds it batches from aiokafka and writes
what it decides back to Kafka. Import the submodules directly (`stream.runtime.auth` is
light enough for clients that are not workers, such as the simulator).
"""

"""kpi-stream's development tools, outside the worker's package: a local Kafka broker
(`broker`), the event simulator (`simulate`), `kpi-stream demo` and the process
supervisor that the demo, the tests and the benchmarks run their children with.

The worker image does not install this package; `kpi-stream broker|simulate|demo` load
it when run (`stream.cli`)."""

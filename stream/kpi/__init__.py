"""Pure KPI domain: the contract's rules, with no Kafka, aiohttp or Prometheus imports."""

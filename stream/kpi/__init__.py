"""Pure KPI domain: the contract's rules, with no Faust, Kafka or Prometheus imports."""

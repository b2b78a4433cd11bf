# Seed example 12: Troubleshooting / Circuit Breaker Stuck Open
# (the seed document's code, as written, with `src.` replaced by `otelprod.`)

from otelprod.error_handling import error_handler

# Manually reset circuit breaker
error_handler.reset_circuit_breaker("service_name")

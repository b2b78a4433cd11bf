# Seed example 2: Error Handling and Recovery / Configuration
# (the seed document's code, as written, with `src.` replaced by `otelprod.`)

CircuitBreakerConfig(
    failure_threshold=5,      # Open after 5 failures
    success_threshold=2,      # Close after 2 successes in half-open
    timeout=60.0,            # Wait 60s before attempting reset
    half_open_timeout=30.0   # Max time to stay in half-open
)

# Seed example 1: Error Handling and Recovery / Usage
# (the seed document's code, as written, with `src.` replaced by `otelprod.`)

from otelprod.error_handling import with_retry, with_circuit_breaker, RetryConfig, error_handler

# Retry decorator
@with_retry(RetryConfig(max_attempts=3, base_delay=1.0))
def fetch_data():
    # Your code here
    pass

# Circuit breaker decorator
@with_circuit_breaker("twitter_api")
def fetch_tweets():
    # Your code here
    pass

# Manual error handling
try:
    result = risky_operation()
except Exception as e:
    error_handler.handle_error(
        e,
        context="data_processing",
        severity=ErrorSeverity.HIGH,
        additional_info={"user_id": "123"}
    )

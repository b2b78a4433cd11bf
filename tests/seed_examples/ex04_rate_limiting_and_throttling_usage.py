# Seed example 4: Rate Limiting and Throttling / Usage
# (the seed document's code, as written, with `src.` replaced by `otelprod.`)

from otelprod.rate_limiter import rate_limit_manager, RateLimitConfig, RateLimitStrategy

# Register rate limiter
rate_limit_manager.register_limiter(
    "api_requests",
    RateLimitConfig(
        requests_per_second=10.0,
        burst_size=20,
        strategy=RateLimitStrategy.TOKEN_BUCKET,
        wait_on_rate_limit=True
    )
)

# Use rate limiter
limiter = rate_limit_manager.get_limiter("api_requests")
status = limiter.acquire(tokens=1, wait=True)

if status.allowed:
    # Make request
    make_api_request()
else:
    # Handle rate limit
    print(f"Rate limited. Retry after {status.retry_after}s")

# Backpressure management
bp = rate_limit_manager.register_backpressure("processing_queue", max_queue_size=1000)

should_accept, reason = bp.should_accept()
if should_accept:
    bp.add_item()
    process_item()
    bp.remove_item()

# Seed example 10: Integration and Usage / Full Example
# (the seed document's code, as written, with `src.` replaced by `otelprod.`)

from otelprod.production_integration import initialize_production, get_production_system
from otelprod.error_handling import with_retry, with_circuit_breaker
from otelprod.monitoring import monitoring_system
from otelprod.rate_limiter import rate_limit_manager

# Initialize production system
prod = initialize_production("TGE_Monitor", Environment.PRODUCTION)

# Define your operations with production features
@with_circuit_breaker("twitter_api")
@with_retry()
def fetch_tweets():
    # Get rate limiter
    limiter = rate_limit_manager.get_limiter("twitter_api")

    # Acquire rate limit
    status = limiter.acquire(tokens=1, wait=True)

    if not status.allowed:
        raise Exception("Rate limited")

    # Fetch tweets
    return twitter_client.fetch()

# Use structured logging
logger = prod.obs_system.get_logger("twitter_monitor")

# Trace the operation
with prod.obs_system.trace_request("fetch_twitter_data") as ctx:
    logger = ctx['logger']

    try:
        tweets = fetch_tweets()
        logger.info(f"Fetched {len(tweets)} tweets")

        # Record metrics
        monitoring_system.metrics.increment("tweets_fetched", len(tweets))

    except Exception as e:
        logger.error("Failed to fetch tweets", exc_info=e)
        raise

# Get system status
status = prod.get_system_status()
print(f"System health: {status['monitoring']['overall_status']}")

# Shutdown
shutdown_production()

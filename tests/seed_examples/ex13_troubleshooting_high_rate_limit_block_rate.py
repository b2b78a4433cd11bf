# Seed example 13: Troubleshooting / High Rate Limit Block Rate
# (the seed document's code, as written, with `src.` replaced by `otelprod.`)

from otelprod.rate_limiter import rate_limit_manager

# Check rate limiter stats
stats = rate_limit_manager.get_all_stats()
print(stats)

# Adjust rate limit
limiter = rate_limit_manager.get_limiter("service_name")
limiter.reset()

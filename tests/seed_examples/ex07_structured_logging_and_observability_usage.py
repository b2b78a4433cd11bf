# Seed example 7: Structured Logging and Observability / Usage
# (the seed document's code, as written, with `src.` replaced by `otelprod.`)

from otelprod.structured_logging import initialize_observability, setup_json_logging

# Initialize observability
obs_system = initialize_observability("TGE_Monitor")

# Setup JSON logging
setup_json_logging(level="INFO", log_file="logs/app.log")

# Get structured logger
logger = obs_system.get_logger("my_module")

# Log with context
logger.set_context(user_id="123", request_id="abc")
logger.info("Processing request", extra_field="value")

# Trace requests
with obs_system.trace_request("process_data", user_id="123") as ctx:
    logger = ctx['logger']
    logger.info("Starting data processing")

    # Your code here

    logger.info("Data processing complete")

# Get performance report
report = obs_system.get_performance_report()

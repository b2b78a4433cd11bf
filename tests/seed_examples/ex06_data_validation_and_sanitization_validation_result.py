# Seed example 6: Data Validation and Sanitization / Validation Result
# (the seed document's code, as written, with `src.` replaced by `otelprod.`)

ValidationResult(
    is_valid=True,           # Whether validation passed
    sanitized_value="...",   # Cleaned/sanitized value
    errors=[],               # List of error messages
    warnings=[]              # List of warning messages
)

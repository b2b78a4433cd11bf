# Seed example 5: Data Validation and Sanitization / Usage
# (the seed document's code, as written, with `src.` replaced by `otelprod.`)

from otelprod.validation import InputValidator, ContentSanitizer, validate_user_input

# Validate string
result = InputValidator.validate_string(
    user_input,
    min_length=3,
    max_length=100,
    pattern=r'^[a-zA-Z0-9_]+$'
)

if result.is_valid:
    safe_value = result.sanitized_value
else:
    print(f"Validation errors: {result.errors}")

# Validate email
result = InputValidator.validate_email("user@example.com")

# Validate URL
result = InputValidator.validate_url("https://example.com")

# Sanitize HTML
safe_html = ContentSanitizer.sanitize_html(user_html, strict=True)

# Sanitize text
safe_text = ContentSanitizer.sanitize_text(user_text)

# Sanitize filename
safe_filename = ContentSanitizer.sanitize_filename(user_filename)

# Convenience function
result = validate_user_input(value, input_type="email")

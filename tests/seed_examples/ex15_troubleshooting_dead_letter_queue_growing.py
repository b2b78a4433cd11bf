# Seed example 15: Troubleshooting / Dead Letter Queue Growing
# (the seed document's code, as written, with `src.` replaced by `otelprod.`)

from otelprod.error_handling import dead_letter_queue

# Review failed operations
failed_ops = dead_letter_queue.get_all()

# Process or clear
dead_letter_queue.clear()

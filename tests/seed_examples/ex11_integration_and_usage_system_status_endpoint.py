# Seed example 11: Integration and Usage / System Status Endpoint
# (the seed document's code, as written, with `src.` replaced by `otelprod.`)

from fastapi import FastAPI
from otelprod.production_integration import get_production_system

app = FastAPI()

@app.get("/health")
def health_check():
    prod = get_production_system()
    if not prod:
        return {"status": "not_initialized"}

    status = prod.get_system_status()
    return status

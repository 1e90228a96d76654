"""An example shop: FastAPI + SQLAlchemy, with a catalog cache and a payment provider with fallback.

Run it the way users run their services::

    opentelemetry-instrument --service_name shop uvicorn examples.shop.app:app
"""

"""A small payment-provider service that the shop charges cards through.

One process plays several providers, one per path prefix
(``/primary/v1/charges``, ``/fallback/v1/charges``), each with its own
behaviour, so one service on port 8081 gives the shop both its primary and its
fallback provider::

    uvicorn examples.payments.app:app --port 8081

Behaviour of the primary at start comes from the environment;
``PUT /admin/providers/{name}`` changes any provider's while it runs:

=========================  ==============================================
``PAYMENTS_DELAY_MS``      time every charge takes (default 30)
``PAYMENTS_SLOW_RATE``     share of charges that hang (0-1, default 0)
``PAYMENTS_SLOW_MS``       how long a hanging charge takes (default 5000)
``PAYMENTS_FAILURE_RATE``  share of charges answered with 503 (default 0)
=========================  ==============================================

Card token ``tok_declined`` is always declined (402), like a provider's test cards.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

DECLINED_CARD = "tok_declined"


class Behaviour(BaseModel):
    delay_ms: float = Field(default=30, ge=0, le=60_000)
    slow_rate: float = Field(default=0, ge=0, le=1)
    slow_ms: float = Field(default=5000, ge=0, le=60_000)
    failure_rate: float = Field(default=0, ge=0, le=1)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Behaviour:
        env = os.environ if environ is None else environ
        fields = {"delay_ms": "PAYMENTS_DELAY_MS", "slow_rate": "PAYMENTS_SLOW_RATE",
                  "slow_ms": "PAYMENTS_SLOW_MS", "failure_rate": "PAYMENTS_FAILURE_RATE"}  # fmt: skip
        values: dict[str, Any] = {}
        for field, variable in fields.items():
            raw = env.get(variable, "").strip()
            if not raw:
                continue
            try:
                values[field] = float(raw)
            except ValueError:
                raise ValueError(f"{variable}={raw!r}: expected a number") from None
        try:
            return cls(**values)
        except ValueError as exc:
            raise ValueError(f"payments settings from the environment: {exc}") from None


class ChargeIn(BaseModel):
    amount_cents: int = Field(gt=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    reference: str = Field(min_length=1, max_length=100)
    card_token: str = Field(min_length=1, max_length=64)


class Providers:
    """Behaviour per provider name; unknown names start healthy."""

    def __init__(self, primary: Behaviour) -> None:
        self._lock = threading.Lock()
        self._behaviours: dict[str, Behaviour] = {"primary": primary, "fallback": Behaviour()}
        self.charges: dict[str, int] = {}

    def behaviour(self, name: str) -> Behaviour:
        with self._lock:
            return self._behaviours.setdefault(name, Behaviour())

    def set(self, name: str, behaviour: Behaviour) -> None:
        with self._lock:
            self._behaviours[name] = behaviour

    def count(self, name: str) -> None:
        with self._lock:
            self.charges[name] = self.charges.get(name, 0) + 1


def create_app(primary: Behaviour | None = None, seed: int | None = None) -> FastAPI:
    providers = Providers(primary or Behaviour.from_env())
    chance = random.Random(seed)
    app = FastAPI(title="Example payment provider")
    app.state.providers = providers

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/health")
    async def health() -> dict[str, str]:
        # The provider's own liveness, as payment APIs publish it: the shop's health check reads it.
        return {"status": "ok"}

    @app.post("/{provider}/v1/charges", status_code=201, response_model=None)
    async def charge(provider: str, body: ChargeIn) -> dict[str, Any] | JSONResponse:
        behaviour = providers.behaviour(provider)
        roll = chance.random()
        if roll < behaviour.slow_rate:
            await asyncio.sleep(behaviour.slow_ms / 1000)
        else:
            await asyncio.sleep(behaviour.delay_ms / 1000)
        if chance.random() < behaviour.failure_rate:
            return JSONResponse({"error": "provider_unavailable"}, status_code=503)
        if body.card_token == DECLINED_CARD:
            return JSONResponse({"error": "card_declined"}, status_code=402)
        providers.count(provider)
        return {"id": f"ch_{uuid.uuid4().hex[:20]}", "status": "succeeded", "amount_cents": body.amount_cents}

    @app.get("/admin/providers/{provider}")
    async def show_behaviour(provider: str) -> dict[str, Any]:
        return {**providers.behaviour(provider).model_dump(), "charges": providers.charges.get(provider, 0)}

    @app.put("/admin/providers/{provider}")
    async def change_behaviour(provider: str, behaviour: Behaviour) -> dict[str, Any]:
        if not provider.isidentifier():
            raise HTTPException(422, "provider names are letters, digits and underscores")
        providers.set(provider, behaviour)
        return behaviour.model_dump()

    return app


app = create_app()

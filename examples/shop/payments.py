"""The payment client: the primary provider, with a timeout, and a fallback provider.

A provider that times out, cannot be reached or answers with a server error is
skipped for the next one; a declined card is final (another provider would
decline it too).  Which provider served each payment is reported, so a rising
fallback share shows up before the primary is fully down.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

import otel_monitor

PROVIDER_LAYERS = ("primary", "fallback")


class PaymentDeclined(Exception):
    """The provider refused the card; the customer must use another one."""


class PaymentUnavailable(Exception):
    """No provider could take the payment; the customer may try again later."""


class ProviderFailed(Exception):
    """One provider could not take the payment (timeout, network, server error)."""


@dataclass(frozen=True)
class Charge:
    layer: str  # "primary" or "fallback"
    reference: str


class PaymentsClient:
    def __init__(
        self,
        primary_url: str,
        fallback_url: str,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.providers = dict(zip(PROVIDER_LAYERS, (primary_url, fallback_url), strict=True))
        self.timeout = timeout
        # One pooled client for the process: a new connection per payment would cost a handshake each.
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def authorize(self, amount_cents: int, order_reference: str, card_token: str) -> Charge:
        """Charge the card through the first provider that can take it."""
        failures: list[str] = []
        for layer, base_url in self.providers.items():
            try:
                with otel_monitor.operation("payment_authorize", provider=layer):
                    reference = self._charge(base_url, amount_cents, order_reference, card_token)
            except ProviderFailed as exc:
                failures.append(f"{layer} provider {exc}")
                continue
            otel_monitor.served_by(layer, operation="checkout")
            return Charge(layer=layer, reference=reference)
        raise PaymentUnavailable("; ".join(failures))

    def _charge(self, base_url: str, amount_cents: int, order_reference: str, card_token: str) -> str:
        body = {"amount_cents": amount_cents, "currency": "EUR", "reference": order_reference, "card_token": card_token}
        # The order reference doubles as idempotency key: a primary that timed out after
        # charging must not let the fallback charge the same order twice at settlement.
        headers = {"Idempotency-Key": order_reference}
        try:
            response = self._http.post(f"{base_url}/v1/charges", json=body, headers=headers)
        except httpx.TimeoutException:
            raise ProviderFailed(f"timed out after {self.timeout:g}s") from None
        except httpx.TransportError as exc:
            raise ProviderFailed(f"unreachable: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise ProviderFailed(f"answered HTTP {response.status_code}")
        if response.status_code == 402:
            raise PaymentDeclined(response.json().get("error", "card_declined"))
        response.raise_for_status()  # any other 4xx is a bug in our request
        return str(response.json()["id"])

    def close(self) -> None:
        self._http.close()

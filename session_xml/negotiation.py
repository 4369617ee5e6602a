"""Offer/answer: the callee picks one protocol from the caller's offer, the caller checks the answer."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping

from .descriptor import DataType, Role, SessionDescriptor, SyncProtocol
from .errors import NegotiationError
from .fields import IPAddress
from .fingerprint import Fingerprint


def negotiate(
    offer: SessionDescriptor,
    supported: Mapping[DataType, Collection[SyncProtocol]],
    *,
    address: IPAddress | str,
    port: int,
    fingerprint: Fingerprint,
    token: str,
) -> SessionDescriptor:
    """The answer to `offer` from a device that accepts `supported` protocols per data type.

    The first protocol in the offer's order that the device accepts wins: the caller states the
    preference (as in SDP offer/answer), the callee only says what it can do. `address`, `port`,
    `fingerprint` and `token` are the callee's data endpoint and credentials. Raises
    NegotiationError (SIP 488) when nothing is acceptable.
    """
    if offer.role is not Role.OFFER:
        raise NegotiationError("expected an offer, got an answer")
    accepted = supported.get(offer.data_type) or ()
    if not accepted:
        raise NegotiationError(f"this device does not sync {offer.data_type}")
    chosen = next((p for p in offer.sync_protocols if p in accepted), None)
    if chosen is None:
        raise NegotiationError(
            f"no common protocol for {offer.data_type}: offered {_listed(offer.sync_protocols)}, "
            f"this device accepts {_listed(accepted)}"
        )
    return dataclasses.replace(
        offer,
        role=Role.ANSWER,
        sync_protocols=(chosen,),
        destination_ip=address,
        destination_port=port,
        fingerprint=fingerprint,
        token=token,
    )


def check_answer(offer: SessionDescriptor, answer: SessionDescriptor) -> None:
    """Raise NegotiationError unless `answer` answers `offer` with a protocol it offered."""
    if offer.role is not Role.OFFER or answer.role is not Role.ANSWER:
        raise NegotiationError("expected an offer and its answer")
    for field in ("session_id", "source_device", "destination_device", "data_type", "dataset", "direction"):
        if getattr(offer, field) != getattr(answer, field):
            raise NegotiationError(f"the answer changed {field} from {getattr(offer, field)!r}")
    (chosen,) = answer.sync_protocols
    if chosen not in offer.sync_protocols:
        raise NegotiationError(f"the answer chose {chosen}, which was not offered")


def _listed(protocols: Collection[SyncProtocol]) -> str:
    return ", ".join(protocols) or "nothing"
